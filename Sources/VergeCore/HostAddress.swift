import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The URL a host advertises to the gateway and the control plane: one others can reach.
public enum HostAddress {
    /// Throws when `url` is not an `http(s)://HOST:PORT` URL (a path other than `/`, a query, a fragment or user
    /// information are refused: the gateway sends calls to the address alone) or names an unspecified address
    /// (`0.0.0.0`, `::`, or another spelling of them such as `0`).
    public static func validateAdvertised(_ url: String) throws(VergeError) {
        _ = try bindingKey(url)
    }

    /// The place `url` reaches, spelled one way: `scheme://HOST:PORT` with the host in lower case, the port explicit,
    /// an IPv4 address in dotted decimal (`127.1` and `0x7f.0.0.1` are `127.0.0.1`), an IPv6 address in its shortest
    /// form (an IPv4-mapped one as IPv4), `localhost` as `127.0.0.1`, and no trailing dot. Two hosts whose URLs have
    /// the same key would receive each other's calls, so the control plane binds keys, not strings. DNS names other
    /// than `localhost` are not resolved: two names of one address still differ.
    public static func bindingKey(_ url: String) throws(VergeError) -> String {
        guard let components = URLComponents(string: url), let scheme = components.scheme,
            ["http", "https"].contains(scheme), let rawHost = components.host, !rawHost.isEmpty
        else {
            throw VergeError(.badRequest, "advertised URL '\(url)' is not an http(s)://HOST:PORT URL")
        }
        guard ["", "/"].contains(components.percentEncodedPath), components.percentEncodedQuery == nil,
            components.percentEncodedFragment == nil, components.percentEncodedUser == nil,
            components.percentEncodedPassword == nil
        else {
            throw VergeError(
                .badRequest,
                "advertised URL '\(url)' has a path, query, fragment or user; advertise http(s)://HOST:PORT only")
        }
        let port = components.port ?? (scheme == "https" ? 443 : 80)
        guard (1...65535).contains(port) else {
            throw VergeError(.badRequest, "advertised URL '\(url)' has no valid port")
        }
        let host = canonicalHost(rawHost)
        guard host != "0.0.0.0", host != "[::]" else {
            throw VergeError(
                .badRequest,
                "advertised URL '\(url)' names an unspecified address; set --advertise-url to an address others can reach"
            )
        }
        return "\(scheme)://\(host):\(port)"
    }

    /// An IP address in its one canonical spelling (IPv6 in brackets), else the lower-cased name.
    static func canonicalHost(_ raw: String) -> String {
        var host = raw.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        if host.hasSuffix(".") { host.removeLast() }
        if host == "localhost" { return "127.0.0.1" }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 {
            let bytes = withUnsafeBytes(of: &v6) { Array($0) }
            if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff {
                return bytes[12..<16].map(String.init).joined(separator: ".")
            }
            var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            guard inet_ntop(AF_INET6, &v6, &buffer, socklen_t(buffer.count)) != nil else { return host }
            return "[" + String(cString: buffer) + "]"
        }
        // inet_aton reads every form a resolver accepts for IPv4 (`127.1`, `0x7f.0.0.1`, `2130706433`, `0`).
        var v4 = in_addr()
        if inet_aton(host, &v4) != 0 {
            return withUnsafeBytes(of: &v4) { $0.map(String.init).joined(separator: ".") }
        }
        return host
    }
}
