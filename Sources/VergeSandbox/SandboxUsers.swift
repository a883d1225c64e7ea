import Foundation
import GRDB
import Synchronization
import VergeCore

/// The unprivileged users workers run as: one uid (and gid of the same number) per tenant of a host, from a range
/// that no `/etc/subuid` or `/etc/subgid` allocation overlaps. Allocations are recorded in a machine-wide SQLite
/// database shared by every host process on the machine, so an id is never handed to two tenants (nor to two
/// hosts' tenants), and a tenant keeps its id across restarts.
public final class SandboxUsers: Sendable {
    public let range: ClosedRange<UInt32>
    private let database: DatabaseQueue
    private let scope: String
    private let cache = Mutex<[String: UInt32]>([:])

    /// The default range: far above login users, dynamic users and the usual subordinate-id ranges.
    public static let defaultRange: ClosedRange<UInt32> = 2_100_000_000...2_100_999_999

    /// Opens (creating) the registry at `path`. `scope` tells apart the tenants of different hosts or clusters on
    /// one machine (a host uses its data directory). Throws when the range overlaps a subordinate-id allocation.
    public init(
        path: String, scope: String, range: ClosedRange<UInt32> = defaultRange,
        subordinateFiles: [String] = ["/etc/subuid", "/etc/subgid"]
    ) throws(VergeError) {
        guard range.lowerBound >= 65_536 else {
            throw VergeError(.internalError, "the sandbox uid range must start at 65536 or above")
        }
        for file in subordinateFiles {
            if let overlap = Self.overlap(of: range, with: (try? String(contentsOfFile: file, encoding: .utf8)) ?? "") {
                throw VergeError(
                    .internalError,
                    "the sandbox uid range \(range.lowerBound)-\(range.upperBound) overlaps \(file) (\(overlap)); "
                        + "choose another range")
            }
        }
        self.range = range
        self.scope = scope
        do {
            try FileManager.default.createDirectory(
                atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o700])
            var configuration = Configuration()
            configuration.busyMode = .timeout(10)
            database = try DatabaseQueue(path: path, configuration: configuration)
            chmod(path, 0o600)
            try database.write { db in
                try db.execute(
                    sql: """
                        CREATE TABLE IF NOT EXISTS sandbox_users (
                            scope TEXT NOT NULL,
                            tenant TEXT NOT NULL,
                            uid INTEGER NOT NULL UNIQUE,
                            created_at_us INTEGER NOT NULL,
                            PRIMARY KEY (scope, tenant)
                        )
                        """)
            }
        } catch {
            throw VergeError(.internalError, "cannot open the sandbox user registry \(path): \(error)")
        }
    }

    /// The uid (and gid) of `tenant`'s workers, allocated on first use.
    public func id(for tenant: String) throws(VergeError) -> UInt32 {
        if let known = cache.withLock({ $0[tenant] }) { return known }
        let range = self.range
        let scope = self.scope
        let id: UInt32
        do {
            id = try database.write { db -> UInt32 in
                if let existing = try UInt32.fetchOne(
                    db, sql: "SELECT uid FROM sandbox_users WHERE scope = ? AND tenant = ?", arguments: [scope, tenant])
                {
                    return existing
                }
                let highest = try Int64.fetchOne(
                    db, sql: "SELECT MAX(uid) FROM sandbox_users WHERE uid BETWEEN ? AND ?",
                    arguments: [Int64(range.lowerBound), Int64(range.upperBound)])
                let next = highest.map { $0 + 1 } ?? Int64(range.lowerBound)
                guard next <= Int64(range.upperBound) else {
                    throw VergeError(.internalError, "the sandbox uid range is used up; configure a larger one")
                }
                try db.execute(
                    sql: "INSERT INTO sandbox_users (scope, tenant, uid, created_at_us) VALUES (?, ?, ?, ?)",
                    arguments: [scope, tenant, next, WallClock.microseconds()])
                return UInt32(next)
            }
        } catch let error as VergeError {
            throw error
        } catch {
            throw VergeError(.internalError, "cannot allocate a sandbox user for tenant '\(tenant)': \(error)")
        }
        cache.withLock { $0[tenant] = id }
        return id
    }

    /// The first `/etc/subuid`-style line (`name:start:count`) whose range meets `range`, if any.
    static func overlap(of range: ClosedRange<UInt32>, with subordinateIDs: String) -> String? {
        for line in subordinateIDs.split(separator: "\n") {
            let fields = line.split(separator: ":")
            guard fields.count == 3, let start = UInt64(fields[1]), let count = UInt64(fields[2]), count > 0 else {
                continue
            }
            let end = start + count - 1
            if start <= UInt64(range.upperBound) && UInt64(range.lowerBound) <= end { return String(line) }
        }
        return nil
    }
}
