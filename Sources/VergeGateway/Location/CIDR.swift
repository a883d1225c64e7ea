import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv4 or IPv6 network such as `127.0.0.0/8` or `::1/128`.
public struct CIDR: Sendable, Hashable, CustomStringConvertible {
    private let network: [UInt8]
    public let prefixLength: Int

    /// Parses `ADDRESS/LENGTH`, or a bare address (a single host).
    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let bytes = CIDR.parseAddress(String(parts[0])) else { return nil }
        let maxLength = bytes.count * 8
        let length: Int
        if parts.count == 2 {
            guard let parsed = Int(parts[1]), (0...maxLength).contains(parsed) else { return nil }
            length = parsed
        } else {
            length = maxLength
        }
        self.network = CIDR.mask(bytes, length)
        self.prefixLength = length
    }

    /// Whether `address` (an IP literal) lies in this network. IPv4-mapped IPv6 addresses match IPv4 networks.
    public func contains(_ address: String) -> Bool {
        guard var bytes = CIDR.parseAddress(address) else { return false }
        if bytes.count == 16, network.count == 4, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff,
            bytes[11] == 0xff
        {
            bytes = Array(bytes[12...])
        }
        guard bytes.count == network.count else { return false }
        return CIDR.mask(bytes, prefixLength) == network
    }

    /// Whether `address` lies in this network (IPv4 addresses match only IPv4 networks, IPv6 only IPv6).
    public func contains(_ address: IPAddress) -> Bool {
        address.bytes.count == network.count && CIDR.mask(address.bytes, prefixLength) == network
    }

    public func contains(_ address: SocketAddress?) -> Bool {
        guard let ip = address?.ipAddress else { return false }
        return contains(ip)
    }

    public var description: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let family = network.count == 4 ? AF_INET : AF_INET6
        _ = network.withUnsafeBytes { raw in inet_ntop(family, raw.baseAddress, &buffer, socklen_t(buffer.count)) }
        let text = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        return "\(text)/\(prefixLength)"
    }

    static func parseAddress(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        return nil
    }

    private static func mask(_ bytes: [UInt8], _ length: Int) -> [UInt8] {
        bytes.enumerated().map { index, byte in
            let bits = max(0, min(8, length - index * 8))
            return bits == 0 ? 0 : byte & UInt8(truncatingIfNeeded: 0xff << (8 - bits))
        }
    }
}
