#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `ready`: the worker has loaded the function and waits for its first request.
public struct Ready: Codable, Sendable, Equatable {
    public var `protocol`: Int
    /// Free text naming the runtime and its version, e.g. `python/3.11.2`.
    public var runtime: String

    public init(protocol: Int = WorkerProtocol.version, runtime: String) {
        self.protocol = `protocol`
        self.runtime = runtime
    }
}

/// `initError` and `invocationError`: what went wrong, as the function's language names it.
public struct FailureReport: Codable, Sendable, Equatable {
    /// The error's type, e.g. `ZeroDivisionError`.
    public var type: String
    public var message: String

    public init(type: String, message: String) {
        self.type = type
        self.message = message
    }
}

/// Where the client is, as the gateway resolved it.
public struct ClientLocation: Codable, Sendable, Equatable {
    public var latitude: Double
    public var longitude: Double
    /// How the location was found: `header` (a trusted proxy's geo headers), `geoip` (the client address in the
    /// gateway's MaxMind database), `country` (the address's country, placed at its centroid) or `default`.
    public var source: String
    /// ISO 3166-1 alpha-2 code, when known.
    public var country: String?
    /// The client's IP address as the gateway located it (the peer, or from a trusted proxy's `x-forwarded-for`).
    public var address: String?
    /// Great-circle distance from the client to the host running the call, in kilometres.
    public var distanceKm: Double?

    enum CodingKeys: String, CodingKey {
        case latitude, longitude, source, country, address
        case distanceKm = "distance_km"
    }

    public init(
        latitude: Double, longitude: Double, source: String, country: String? = nil, address: String? = nil,
        distanceKm: Double? = nil
    ) {
        self.latitude = latitude
        self.longitude = longitude
        self.source = source
        self.country = country
        self.address = address
        self.distanceKm = distanceKm
    }
}

/// The host that runs the invocation.
public struct HostInfo: Codable, Sendable, Equatable {
    public var name: String
    public var latitude: Double
    public var longitude: Double

    public init(name: String, latitude: Double, longitude: Double) {
        self.name = name
        self.latitude = latitude
        self.longitude = longitude
    }
}

/// The function version being invoked.
public struct FunctionInfo: Codable, Sendable, Equatable {
    public var tenant: String
    public var name: String
    public var version: String

    public init(tenant: String, name: String, version: String) {
        self.tenant = tenant
        self.name = name
        self.version = version
    }
}

/// `requestHead`: starts an invocation. Body frames and `requestEnd` follow.
public struct RequestHead: Codable, Sendable, Equatable {
    public var invocationID: String
    public var method: String
    /// The path as the client sent it, starting with `/`, without the query.
    public var path: String
    /// The raw query string without `?`, empty when there is none.
    public var query: String
    /// Header fields in the order received; names are lower-case.
    public var headers: [[String]]
    /// Milliseconds since the Unix epoch after which the host abandons the invocation and kills the worker.
    public var deadlineMs: Int64
    public var client: ClientLocation?
    public var host: HostInfo
    public var function: FunctionInfo

    enum CodingKeys: String, CodingKey {
        case invocationID = "invocation_id"
        case method, path, query, headers
        case deadlineMs = "deadline_ms"
        case client, host, function
    }

    public init(
        invocationID: String, method: String, path: String, query: String, headers: [[String]],
        deadlineMs: Int64, client: ClientLocation?, host: HostInfo, function: FunctionInfo
    ) {
        self.invocationID = invocationID
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.deadlineMs = deadlineMs
        self.client = client
        self.host = host
        self.function = function
    }
}

/// `responseHead`: status and header fields. Body frames and `responseEnd` follow.
public struct ResponseHead: Codable, Sendable, Equatable {
    public var status: Int
    public var headers: [[String]]
    /// The exact number of body bytes that follow, when the worker has the whole body at hand: it then sends the
    /// body frames and `response_end` right behind the head, and the host may send the response in one piece with
    /// a `Content-Length`. Absent for a streamed body.
    public var bodyLength: Int?

    enum CodingKeys: String, CodingKey {
        case status, headers
        case bodyLength = "body_length"
    }

    public init(status: Int, headers: [[String]], bodyLength: Int? = nil) {
        self.status = status
        self.headers = headers
        self.bodyLength = bodyLength
    }
}

extension Frame {
    /// A head frame whose payload is `message` as JSON.
    public static func json<Message: Encodable>(_ kind: Kind, _ message: Message) throws -> Frame {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Frame(kind, payload: Array(try encoder.encode(message)))
    }

    /// Decodes the JSON payload of a head frame.
    public func decode<Message: Decodable>(_ type: Message.Type) throws(ProtocolError) -> Message {
        do {
            return try JSONDecoder().decode(type, from: Data(payload))
        } catch {
            throw ProtocolError("malformed \(kind) payload: \(error)")
        }
    }
}
