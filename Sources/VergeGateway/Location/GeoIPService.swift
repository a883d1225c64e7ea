import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import VergeCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The gateway's IP → place lookup, whichever database backs it:
/// - a configured MaxMind DB (`geoip_database`, `--geoip`), reopened in the background when the file changes (its
///   inode, size or modification time); a new file that cannot be opened keeps the old one in use and is reported;
/// - otherwise the built-in country fallback from Debian's `tor-geoipdb`, loaded in the background when the service
///   starts (until then, and if it cannot be read, clients get the default location);
/// - otherwise nothing (every client not located by a trusted header gets the configured default).
///
/// Lookups copy a reference under a lock and never wait for a reload: the new file is opened before it is swapped in.
public final class GeoIPService: IPGeolocator, Service, Sendable {
    /// Which locator is in use, as the start-up log and the gateway's health report name it.
    public enum Kind: String, Sendable, Codable {
        /// A MaxMind database.
        case maxmind
        /// The country fallback from tor-geoipdb.
        case torGeoIP = "tor-geoipdb"
        /// No database: the default location.
        case none
    }

    struct FileIdentity: Equatable {
        var device: UInt64
        var inode: UInt64
        var size: Int64
        var modified: Int64
    }

    private struct State {
        var kind: Kind
        var database: (any IPGeolocator)?
        var identity: FileIdentity?
        /// The identity of a file that failed to open, so that it is reported once, not on every poll.
        var failed: FileIdentity?
        var reloads = 0
    }

    /// The configured MaxMind database, if any.
    public let databasePath: String?
    public let reloadInterval: Duration
    private let state: Mutex<State>
    private let logger: Logger
    private let fallbackFiles: (ipv4: String, ipv6: String)

    /// Opens the configured database (`databasePath`), or the tor-geoipdb fallback when none is configured.
    /// Throws when a configured database cannot be opened: a gateway told to locate clients by a database it cannot
    /// read does not start (fail closed). A missing fallback is not an error; ``summary`` says what is used.
    public init(
        databasePath: String?, reloadInterval: Duration = .seconds(2),
        fallbackIPv4: String = TorGeoIPDatabase.debianIPv4, fallbackIPv6: String = TorGeoIPDatabase.debianIPv6,
        logger: Logger
    ) throws {
        self.databasePath = databasePath
        self.reloadInterval = reloadInterval
        self.logger = logger
        self.fallbackFiles = (fallbackIPv4, fallbackIPv6)
        var initial = State(kind: .none)
        if let databasePath {
            let identity = Self.identity(of: databasePath)
            do throws(VergeError) {
                initial.database = try MaxMindDatabase(path: databasePath)
            } catch {
                throw VergeError(
                    .badRequest,
                    "\(error.message); fix the file or remove geoip_database / --geoip to locate clients without it")
            }
            initial.identity = identity
            initial.kind = .maxmind
        } else if FileManager.default.isReadableFile(atPath: fallbackIPv4) {
            initial.kind = .torGeoIP
        }
        state = Mutex(initial)
    }

    /// Which locator is in use.
    public var kind: Kind { state.withLock { $0.kind } }

    /// Loads the tor-geoipdb fallback if it is the locator and not loaded yet; on failure the default location is
    /// used and the error logged.
    public func loadFallbackIfNeeded() {
        guard state.withLock({ $0.kind == .torGeoIP && $0.database == nil }) else { return }
        let clock = ContinuousClock()
        let start = clock.now
        do {
            let database = try TorGeoIPDatabase(ipv4Path: fallbackFiles.ipv4, ipv6Path: fallbackFiles.ipv6)
            state.withLock { $0.database = database }
            logger.info(
                "country-level fallback loaded",
                metadata: ["geoip.ranges": "\(database.rangeCount)", "duration": "\(clock.now - start)"])
        } catch {
            state.withLock { $0.kind = .none }
            logger.error(
                "tor-geoipdb cannot be loaded; clients get the default location",
                metadata: ["error": "\(error)"])
        }
    }

    /// One line for the start-up log and the health report: which locator is in use.
    public var summary: String {
        switch kind {
        case .maxmind:
            let database = state.withLock { $0.database } as? MaxMindDatabase
            return "GeoIP database \(databasePath ?? "") (\(database?.databaseType ?? "unknown"))"
        case .torGeoIP:
            let loading = isReady ? "" : ", loading"
            return
                "country-level fallback from tor-geoipdb \(fallbackFiles.ipv4) (no geoip_database configured\(loading))"
        case .none:
            return "default location only: no geoip_database configured, and tor-geoipdb (\(fallbackFiles.ipv4)) "
                + "is not installed or cannot be read"
        }
    }

    /// Whether lookups answer: false while the tor-geoipdb fallback is still loading (and with no locator at all).
    public var isReady: Bool { state.withLock { $0.database != nil } }

    /// How many times a changed database file has been swapped in.
    public var reloads: Int { state.withLock { $0.reloads } }

    public func lookup(_ address: IPAddress) -> GeoIPMatch? {
        state.withLock { $0.database }?.lookup(address)
    }

    /// Loads the fallback (if that is the locator), then polls the configured file for changes until shutdown.
    public func run() async throws {
        // Parsing the files is CPU work of a fraction of a second: done off the cooperative pool.
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                self.loadFallbackIfNeeded()
                done.resume()
            }
        }
        guard databasePath != nil else {
            // Returning early would end the whole service group.
            try? await gracefulShutdown()
            return
        }
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: self.reloadInterval)
                self.reloadIfChanged()
            }
        }
    }

    /// Reopens the configured file if it is not the one in use; keeps the current database when the new one cannot
    /// be opened. Returns whether a new database was swapped in.
    @discardableResult
    public func reloadIfChanged() -> Bool {
        guard let path = databasePath else { return false }
        let identity = Self.identity(of: path)
        let (current, failed) = state.withLock { ($0.identity, $0.failed) }
        guard identity != current, identity != failed || identity == nil else { return false }
        guard let identity else {
            logger.error(
                "GeoIP database disappeared; still using the one opened before", metadata: ["geoip.path": "\(path)"])
            state.withLock { $0.failed = nil }
            return false
        }
        do {
            let database = try MaxMindDatabase(path: path)
            state.withLock {
                $0.database = database
                $0.identity = identity
                $0.failed = nil
                $0.reloads += 1
            }
            logger.info(
                "GeoIP database reloaded",
                metadata: ["geoip.path": "\(path)", "geoip.type": "\(database.databaseType)"])
            return true
        } catch {
            state.withLock { $0.failed = identity }
            logger.error(
                "GeoIP database changed but cannot be opened; still using the previous one",
                metadata: ["geoip.path": "\(path)", "error": "\(error)"])
            return false
        }
    }

    static func identity(of path: String) -> FileIdentity? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        #if os(Linux)
        let modified = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
        #else
        let modified = Int64(info.st_mtimespec.tv_sec) * 1_000_000_000 + Int64(info.st_mtimespec.tv_nsec)
        #endif
        return FileIdentity(
            device: UInt64(info.st_dev), inode: UInt64(info.st_ino), size: Int64(info.st_size), modified: modified)
    }
}
