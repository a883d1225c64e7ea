/// How an invocation ended, as billed.
public enum InvocationStatus: String, Codable, Sendable, CaseIterable {
    /// The function answered (whatever HTTP status it chose).
    case ok
    /// The function raised or returned an error report.
    case functionError = "function_error"
    /// The deadline passed; the worker was killed.
    case timeout
    /// The worker exited or broke the protocol during the call.
    case crashed
    /// The worker could not start (its init failed or timed out).
    case initError = "init_error"
    /// The call was refused before reaching a worker (capacity, shutdown).
    case rejected
    /// A sandbox limit ended the call; the record's `limit` names it.
    case limitExceeded = "limit_exceeded"
}

/// One record per invocation, written by the host that ran it. Field names are the JSON and SQL column names.
public struct UsageRecord: Codable, Sendable, Equatable {
    /// Unique across the whole system; the key that makes ingestion idempotent.
    public var invocationID: String
    public var tenant: String
    public var function: String
    public var version: String
    public var host: String
    /// Start of the call at the host, microseconds since the Unix epoch (UTC).
    public var startTimeUs: Int64
    /// Wall time from the request's arrival at the host to the last response byte handed to the socket, µs.
    public var durationUs: Int64
    /// Time spent waiting for a worker, excluding the cold start itself, µs.
    public var queueUs: Int64
    /// Whether this call started a worker and waited for it.
    public var coldStart: Bool
    /// Spawn-to-ready time of the worker when `coldStart`, otherwise 0, µs.
    public var initUs: Int64
    public var status: InvocationStatus
    /// The HTTP status the client received.
    public var httpStatus: Int
    public var requestBytes: Int64
    public var responseBytes: Int64
    /// For `limit_exceeded`: which limit (`memory`, `cpu`, `processes`, `file_size`); otherwise absent.
    public var limit: String?

    enum CodingKeys: String, CodingKey {
        case invocationID = "invocation_id"
        case tenant, function, version, host
        case startTimeUs = "start_time_us"
        case durationUs = "duration_us"
        case queueUs = "queue_us"
        case coldStart = "cold_start"
        case initUs = "init_us"
        case status
        case httpStatus = "http_status"
        case requestBytes = "request_bytes"
        case responseBytes = "response_bytes"
        case limit
    }

    public init(
        invocationID: String, tenant: String, function: String, version: String, host: String, startTimeUs: Int64,
        durationUs: Int64, queueUs: Int64, coldStart: Bool, initUs: Int64, status: InvocationStatus, httpStatus: Int,
        requestBytes: Int64, responseBytes: Int64, limit: String? = nil
    ) {
        self.invocationID = invocationID
        self.tenant = tenant
        self.function = function
        self.version = version
        self.host = host
        self.startTimeUs = startTimeUs
        self.durationUs = durationUs
        self.queueUs = queueUs
        self.coldStart = coldStart
        self.initUs = initUs
        self.status = status
        self.httpStatus = httpStatus
        self.requestBytes = requestBytes
        self.responseBytes = responseBytes
        self.limit = limit
    }

    /// Wall duration in milliseconds, as `verge usage` prints it.
    public var durationMs: Double { Double(durationUs) / 1000 }
}
