/// A host's or gateway's request to join the cluster (`POST /v1/join`, authorised by a one-time join token).
public struct JoinRequest: Codable, Sendable, Equatable {
    public enum Role: String, Codable, Sendable, CaseIterable {
        case host, gateway
    }

    public var role: Role
    /// The host's name (bound to the credential it receives); for a gateway, a label.
    public var name: String

    public init(role: Role, name: String) {
        self.role = role
        self.name = name
    }
}

/// The answer to a join: the component's own credential, shown this once.
public struct JoinResponse: Codable, Sendable, Equatable {
    public var credential: String

    public init(credential: String) {
        self.credential = credential
    }
}
