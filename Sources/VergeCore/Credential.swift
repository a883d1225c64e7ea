import Crypto

/// A bearer credential of the cluster: `verge_KIND_ID_SECRET`, where `ID` (16 hex digits) names the credential
/// without revealing it and `SECRET` is 256 random bits (64 hex digits). The prefix makes a leaked credential easy
/// to recognise (and to scan for). The control plane stores only ``hash``; comparisons take constant time.
public struct Credential: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, CaseIterable, Codable {
        /// A person's or a program's API token, scoped to a tenant.
        case api
        /// One edge host's own credential, bound to its name.
        case host
        /// The gateway's credential: routing only.
        case gateway = "gw"
        /// A one-time token a host or gateway exchanges for its own credential.
        case join
        /// The control plane's own credential, presented to hosts when it reads their logs.
        case controlPlane = "cp"
        /// A gateway's proof for one host (``hostProof(for:)``): never stored, never sent to the control plane.
        case hostProof = "gwp"
        /// The control plane's proof for one host (``hostProof(for:)``), presented when it reads that host's logs
        /// or status: never stored.
        case controlPlaneProof = "cpp"
    }

    public let kind: Kind
    public let id: String
    let secret: String

    /// The whole credential, as presented in `Authorization: Bearer …`. Never log it.
    public var token: String { "verge_\(kind.rawValue)_\(id)_\(secret)" }

    /// Safe to print: the kind and id only.
    public var description: String { "verge_\(kind.rawValue)_\(id)_…" }

    /// The SHA-256 of ``token``, hex: what the control plane stores and hosts compare against.
    public var hash: String { Self.hash(token) }

    /// A fresh random credential.
    public static func generate(_ kind: Kind) -> Credential {
        Credential(kind: kind, id: randomHex(bytes: 8), secret: randomHex(bytes: 32))
    }

    init(kind: Kind, id: String, secret: String) {
        self.kind = kind
        self.id = id
        self.secret = secret
    }

    /// Parses a presented credential; `nil` for anything malformed (wrong prefix, kind, lengths or characters).
    public init?(parsing text: String) {
        let parts = text.split(separator: "_", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "verge", let kind = Kind(rawValue: String(parts[1])),
            parts[2].utf8.count == 16, parts[3].utf8.count == 64,
            Self.isLowerHex(parts[2]), Self.isLowerHex(parts[3])
        else { return nil }
        self.init(kind: kind, id: String(parts[2]), secret: String(parts[3]))
    }

    /// SHA-256 of `token`, hex.
    public static func hash(_ token: String) -> String {
        SHA256.hash(data: Array(token.utf8)).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }

    /// Whether this credential hashes to `storedHash`, compared in constant time.
    public func matches(hash storedHash: String) -> Bool {
        ClusterKey.matches(hash, storedHash)
    }

    /// The credential of a `Bearer` authorization header value, or `nil`.
    public static func bearer(_ header: String?) -> Credential? {
        guard let header, header.hasPrefix("Bearer ") else { return nil }
        return Credential(parsing: String(header.dropFirst(7)).trimmingCharacters(in: " "))
    }

    private static func isLowerHex(_ text: Substring) -> Bool {
        text.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    private static func randomHex(bytes count: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in
            let byte = UInt8.random(in: 0...255, using: &generator)
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }
}

extension String {
    fileprivate func trimmingCharacters(in character: Character) -> String {
        var text = Substring(self)
        while text.first == character { text = text.dropFirst() }
        while text.last == character { text = text.dropLast() }
        return String(text)
    }
}
