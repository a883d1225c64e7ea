/// What a host reports about itself: to the control plane on every sync, and on `GET /_verge/status`.
public struct HostStatus: Codable, Sendable, Equatable {
    public struct FunctionStatus: Codable, Sendable, Equatable {
        public var tenant: String
        public var name: String
        public var version: String
        /// Worker processes alive for this function (starting, idle, busy or stopping).
        public var warmWorkers: Int
        public var idleWorkers: Int
        public var busyWorkers: Int
        public var queuedCalls: Int
        /// Pids of the live workers.
        public var workerPIDs: [Int32]
        /// The regions the function's manifest pins it to; absent when it may run anywhere.
        public var regions: [String]?
        /// Methods besides GET, HEAD and OPTIONS the version's manifest marks idempotent (`idempotent_methods`);
        /// absent when none.
        public var idempotentMethods: [String]?

        enum CodingKeys: String, CodingKey {
            case tenant, name, version, regions
            case warmWorkers = "warm_workers"
            case idleWorkers = "idle_workers"
            case busyWorkers = "busy_workers"
            case queuedCalls = "queued_calls"
            case workerPIDs = "worker_pids"
            case idempotentMethods = "idempotent_methods"
        }

        public init(
            tenant: String, name: String, version: String, warmWorkers: Int, idleWorkers: Int, busyWorkers: Int,
            queuedCalls: Int, workerPIDs: [Int32], regions: [String]? = nil,
            idempotentMethods: [String]? = nil
        ) {
            self.regions = regions
            self.idempotentMethods = idempotentMethods
            self.tenant = tenant
            self.name = name
            self.version = version
            self.warmWorkers = warmWorkers
            self.idleWorkers = idleWorkers
            self.busyWorkers = busyWorkers
            self.queuedCalls = queuedCalls
            self.workerPIDs = workerPIDs
        }
    }

    public var name: String
    public var url: String
    public var location: GeoPoint
    /// Total live worker processes on the host.
    public var warmWorkers: Int
    public var functions: [FunctionStatus]
    /// Usage records committed on the host and not yet acknowledged by the control plane.
    public var unshippedRecords: Int
    /// How the host isolates its workers (absent from hosts older than the sandbox).
    public var isolation: IsolationLevel?
    /// Ids of the gateway credentials whose proof for this host the host holds (from its last sync): a gateway
    /// routes to a host only once the host lists it here.
    public var trustedGateways: [String]?

    enum CodingKeys: String, CodingKey {
        case name, url, location, functions, isolation
        case warmWorkers = "warm_workers"
        case unshippedRecords = "unshipped_records"
        case trustedGateways = "trusted_gateways"
    }

    public init(
        name: String, url: String, location: GeoPoint, warmWorkers: Int, functions: [FunctionStatus],
        unshippedRecords: Int, isolation: IsolationLevel?, trustedGateways: [String]? = nil
    ) {
        self.trustedGateways = trustedGateways
        self.isolation = isolation
        self.name = name
        self.url = url
        self.location = location
        self.warmWorkers = warmWorkers
        self.functions = functions
        self.unshippedRecords = unshippedRecords
    }
}

/// The functions a host should serve, as the control plane sends them in answer to a sync.
public struct DesiredState: Codable, Sendable, Equatable {
    public struct Function: Codable, Sendable, Equatable {
        public var tenant: String
        public var name: String
        /// SHA-256 of the bundle; fetched from `GET /v1/bundles/{version}` and verified.
        public var version: String
        /// Changes whenever one of the function's secrets is set or deleted; absent when it has none. The values
        /// come from `GET /v1/internal/hosts/{host}/secrets/{function}`.
        public var secretsVersion: String?
        /// The version's number (1, 2, …) for usage records; absent from control planes that predate it.
        public var number: Int?

        enum CodingKeys: String, CodingKey {
            case tenant, name, version, number
            case secretsVersion = "secrets_version"
        }

        public init(tenant: String, name: String, version: String, secretsVersion: String? = nil, number: Int? = nil) {
            self.tenant = tenant
            self.name = name
            self.version = version
            self.secretsVersion = secretsVersion
            self.number = number
        }
    }

    public var functions: [Function]
    /// Hashes of the credentials that may call the host's platform endpoints and vouch for forwarded calls.
    public var trustedCallers: [TrustedCaller]

    enum CodingKeys: String, CodingKey {
        case functions
        case trustedCallers = "trusted_callers"
    }

    public init(functions: [Function], trustedCallers: [TrustedCaller] = []) {
        self.functions = functions
        self.trustedCallers = trustedCallers
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        functions = try container.decode([Function].self, forKey: .functions)
        trustedCallers = try container.decodeIfPresent([TrustedCaller].self, forKey: .trustedCallers) ?? []
    }
}

/// A credential (by its hash) a host accepts in `x-verge-credential`, and what its holder may do there.
public struct TrustedCaller: Codable, Sendable, Equatable, Hashable {
    public enum Role: String, Codable, Sendable {
        /// May forward calls with the client's location and tenant, and read `/_verge/status`. The hash is that of
        /// the gateway's proof for this host (``Credential/hostProof(for:)``), never of its credential.
        case gateway
        /// May read `/_verge/status` and `/_verge/logs`.
        case controlPlane = "control-plane"
    }

    public var hash: String
    public var role: Role
    /// For a gateway's proof, the id of the gateway credential it was made with (reported back in
    /// ``HostStatus/trustedGateways``).
    public var credentialID: String?

    enum CodingKeys: String, CodingKey {
        case hash, role
        case credentialID = "credential_id"
    }

    public init(hash: String, role: Role, credentialID: String? = nil) {
        self.hash = hash
        self.role = role
        self.credentialID = credentialID
    }
}

/// What a gateway registers with `PUT /v1/internal/gateway/host-proofs`: the SHA-256 of its proof for each host it
/// knows (``Credential/hostProof(for:)``). The list replaces the one registered before with the same credential.
public struct HostProofRegistration: Codable, Sendable, Equatable {
    public struct Proof: Codable, Sendable, Equatable, Hashable {
        public var host: String
        /// SHA-256 of the proof, 64 lowercase hex digits.
        public var hash: String

        public init(host: String, hash: String) {
            self.host = host
            self.hash = hash
        }
    }

    public var proofs: [Proof]

    /// Most proofs one gateway credential may register (one per host).
    public static let maximumProofs = 10_000

    public init(proofs: [Proof]) {
        self.proofs = proofs
    }
}

/// Header names shared by the gateway, the hosts and the control plane.
public enum VergeHeaders {
    /// A cluster credential presented to a host: the gateway's proof for that host on forwarded calls
    /// (``Credential/hostProof(for:)``), the control plane's own credential on `/_verge/*`. (Calls to the control
    /// plane use `Authorization: Bearer`.)
    public static let credential = "x-verge-credential"
    /// The tenant of a forwarded call, set by the gateway; believed only with a gateway credential.
    public static let tenant = "x-verge-tenant"
    public static let clientLatitude = "x-verge-client-latitude"
    public static let clientLongitude = "x-verge-client-longitude"
    public static let clientSource = "x-verge-client-source"
    /// The client's country (ISO 3166-1 alpha-2), when the gateway knows it.
    public static let clientCountry = "x-verge-client-country"
    /// The client address the gateway located (the peer, or from a trusted proxy's `x-forwarded-for`).
    public static let clientAddress = "x-verge-client-address"
    /// The host the gateway chose and its great-circle distance from the client, in whole kilometres.
    public static let routeHost = "x-verge-route-host"
    public static let routeDistanceKm = "x-verge-route-distance-km"
    /// On a host's own refusal of a call (its error code, e.g. `overloaded`), never on a function's response (a
    /// function cannot set `x-verge-*` headers): how the gateway tells "host saturated" from a function's own 503.
    public static let rejected = "x-verge-rejected"
    public static let host = "x-verge-host"
    public static let invocationID = "x-verge-invocation-id"
}

/// A host's shipment of usage records to the control plane.
public struct UsageBatch: Codable, Sendable {
    public var host: String
    public var records: [UsageRecord]

    public init(host: String, records: [UsageRecord]) {
        self.host = host
        self.records = records
    }
}

/// A host as the control plane knows it: what `GET /v1/hosts` returns and `verge hosts` prints.
public struct HostSummary: Codable, Sendable, Equatable {
    public var name: String
    public var url: String
    public var location: GeoPoint
    /// Whether the host synced recently (within the control plane's liveness window).
    public var healthy: Bool
    /// Milliseconds since the host last synced.
    public var lastSeenMs: Int64
    public var warmWorkers: Int
    public var unshippedRecords: Int
    public var functions: [HostStatus.FunctionStatus]
    /// How the host isolates its workers: `sandbox` or `none`; absent when the host did not say.
    public var isolation: IsolationLevel?
    /// Ids of the gateway credentials the host recognises (``HostStatus/trustedGateways``).
    public var trustedGateways: [String]?

    enum CodingKeys: String, CodingKey {
        case name, url, location, healthy, functions, isolation
        case lastSeenMs = "last_seen_ms"
        case warmWorkers = "warm_workers"
        case unshippedRecords = "unshipped_records"
        case trustedGateways = "trusted_gateways"
    }

    public init(
        name: String, url: String, location: GeoPoint, healthy: Bool, lastSeenMs: Int64, warmWorkers: Int,
        unshippedRecords: Int, functions: [HostStatus.FunctionStatus], isolation: IsolationLevel?,
        trustedGateways: [String]? = nil
    ) {
        self.trustedGateways = trustedGateways
        self.isolation = isolation
        self.name = name
        self.url = url
        self.location = location
        self.healthy = healthy
        self.lastSeenMs = lastSeenMs
        self.warmWorkers = warmWorkers
        self.unshippedRecords = unshippedRecords
        self.functions = functions
    }
}

/// A function's secrets as the control plane delivers them to a host that runs it, over the cluster channel.
public struct FunctionSecrets: Codable, Sendable, Equatable {
    /// The `secrets_version` these values belong to; `nil` when the function has no secrets.
    public var version: String?
    /// Name → value. Never logged, never part of an error.
    public var values: [String: String]

    public init(version: String?, values: [String: String]) {
        self.version = version
        self.values = values
    }
}

extension FunctionSecrets: CustomStringConvertible, CustomDebugStringConvertible {
    /// Names only: a stray `"\(secrets)"` in a log line must not print a value.
    public var description: String { "FunctionSecrets(\(values.keys.sorted()))" }
    public var debugDescription: String { description }
}
