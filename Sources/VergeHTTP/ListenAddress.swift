import NIOCore
import VergeCore

/// The address a server actually bound (port 0 becomes a real port), available once it listens.
public final class ListenAddress: Sendable {
    private let address = OneShot<(address: SocketAddress, secure: Bool)>()

    public init() {}

    /// Called by the server once it is listening; `secure` when it speaks TLS.
    public func set(_ address: SocketAddress, secure: Bool = false) { self.address.set((address, secure)) }

    /// Waits until the server listens.
    public func wait() async -> SocketAddress { await address.wait().address }

    /// `http://ip:port` (or `https://` with TLS) of the bound address; `""` when the waiting task is cancelled
    /// first (the server never came up).
    public func url() async -> String {
        guard let (address, secure) = await self.address.waitUnlessCancelled() else { return "" }
        let ip = address.ipAddress ?? "127.0.0.1"
        let host = ip.contains(":") ? "[\(ip)]" : ip
        return "\(secure ? "https" : "http")://\(host):\(address.port ?? 0)"
    }
}

/// `host:port` as given on a command line or in a config file.
public struct BindAddress: Sendable, Equatable, CustomStringConvertible, Codable {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `HOST:PORT` or `[IPv6]:PORT`; the port may be 0 (any free port).
    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        var host = String(text[..<colon])
        guard let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port), !host.isEmpty else {
            return nil
        }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        self.init(host: host, port: port)
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let parsed = BindAddress(text) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "expected HOST:PORT, got '\(text)'"))
        }
        self = parsed
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
