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

/// One record per invocation, written by the host that ran it. Field names are the JSON and SQL column names;
/// `docs/002-usage-records.md` gives each field's unit and how it is measured.
public struct UsageRecord: Codable, Sendable, Equatable {
    /// Unique across the whole system; the key that makes ingestion idempotent.
    public var invocationID: String
    public var tenant: String
    public var function: String
    /// The bundle's SHA-256.
    public var version: String
    /// The control plane's number for `version` (1, 2, …); 0 when the host did not know it.
    public var versionNumber: Int
    public var host: String
    /// The host's region (its configured `region`), empty when none is configured.
    public var region: String
    /// Start of the call at the host, microseconds since the Unix epoch (UTC).
    public var startTimeUs: Int64
    /// Wall time from the request's arrival at the host to the last response byte handed to the socket, µs.
    public var durationUs: Int64
    /// Time spent waiting for a worker, excluding the cold start itself, µs.
    public var queueUs: Int64
    /// Whether this call started a worker and waited for it.
    public var coldStart: Bool
    /// Spawn-to-ready time of the worker when `coldStart`, otherwise 0, µs. Billed separately from `billed_ms`.
    public var initUs: Int64
    /// User + system CPU time the worker's cgroup used during the call, µs; 0 when no worker ran.
    public var cpuUs: Int64
    /// The most memory the worker's cgroup held at once during the call, bytes; 0 when no worker ran.
    public var memoryPeakBytes: Int64
    /// The function's configured memory (`memory_mb` of its manifest), MiB.
    public var memoryMB: Int
    public var status: InvocationStatus
    /// The HTTP status the client received.
    public var httpStatus: Int
    public var requestBytes: Int64
    public var responseBytes: Int64
    /// For `limit_exceeded`: which limit (`memory`, `cpu`, `processes`, `file_size`); otherwise absent.
    public var limit: String?
    /// For `rejected`: why (`capacity`, `function_concurrency`, `shutting_down`, `request_too_large`,
    /// `client_aborted`, `function_not_ready`); otherwise absent.
    public var reason: String?

    enum CodingKeys: String, CodingKey {
        case invocationID = "invocation_id"
        case tenant, function, version
        case versionNumber = "version_number"
        case host, region
        case startTimeUs = "start_time_us"
        case durationUs = "duration_us"
        case billedMs = "billed_ms"
        case queueUs = "queue_us"
        case coldStart = "cold_start"
        case initUs = "init_us"
        case cpuUs = "cpu_us"
        case memoryPeakBytes = "memory_peak_bytes"
        case memoryMB = "memory_mb"
        case gbSeconds = "gb_seconds"
        case status
        case httpStatus = "http_status"
        case requestBytes = "request_bytes"
        case responseBytes = "response_bytes"
        case limit, reason
    }

    public init(
        invocationID: String, tenant: String, function: String, version: String, versionNumber: Int = 0,
        host: String, region: String = "", startTimeUs: Int64, durationUs: Int64, queueUs: Int64, coldStart: Bool,
        initUs: Int64, cpuUs: Int64 = 0, memoryPeakBytes: Int64 = 0, memoryMB: Int = 0, status: InvocationStatus,
        httpStatus: Int, requestBytes: Int64, responseBytes: Int64, limit: String? = nil, reason: String? = nil
    ) {
        self.invocationID = invocationID
        self.tenant = tenant
        self.function = function
        self.version = version
        self.versionNumber = versionNumber
        self.host = host
        self.region = region
        self.startTimeUs = startTimeUs
        self.durationUs = durationUs
        self.queueUs = queueUs
        self.coldStart = coldStart
        self.initUs = initUs
        self.cpuUs = cpuUs
        self.memoryPeakBytes = memoryPeakBytes
        self.memoryMB = memoryMB
        self.status = status
        self.httpStatus = httpStatus
        self.requestBytes = requestBytes
        self.responseBytes = responseBytes
        self.limit = limit
        self.reason = reason
    }

    /// Reads records from hosts that predate the billing fields too (those fields then take their zero values).
    /// `billed_ms` and `gb_seconds` are derived, so whatever a sender puts there is ignored.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            invocationID: try c.decode(String.self, forKey: .invocationID),
            tenant: try c.decode(String.self, forKey: .tenant),
            function: try c.decode(String.self, forKey: .function),
            version: try c.decode(String.self, forKey: .version),
            versionNumber: try c.decodeIfPresent(Int.self, forKey: .versionNumber) ?? 0,
            host: try c.decode(String.self, forKey: .host),
            region: try c.decodeIfPresent(String.self, forKey: .region) ?? "",
            startTimeUs: try c.decode(Int64.self, forKey: .startTimeUs),
            durationUs: try c.decode(Int64.self, forKey: .durationUs),
            queueUs: try c.decode(Int64.self, forKey: .queueUs),
            coldStart: try c.decode(Bool.self, forKey: .coldStart),
            initUs: try c.decode(Int64.self, forKey: .initUs),
            cpuUs: try c.decodeIfPresent(Int64.self, forKey: .cpuUs) ?? 0,
            memoryPeakBytes: try c.decodeIfPresent(Int64.self, forKey: .memoryPeakBytes) ?? 0,
            memoryMB: try c.decodeIfPresent(Int.self, forKey: .memoryMB) ?? 0,
            status: try c.decode(InvocationStatus.self, forKey: .status),
            httpStatus: try c.decode(Int.self, forKey: .httpStatus),
            requestBytes: try c.decode(Int64.self, forKey: .requestBytes),
            responseBytes: try c.decode(Int64.self, forKey: .responseBytes),
            limit: try c.decodeIfPresent(String.self, forKey: .limit),
            reason: try c.decodeIfPresent(String.self, forKey: .reason)
        )
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(invocationID, forKey: .invocationID)
        try c.encode(tenant, forKey: .tenant)
        try c.encode(function, forKey: .function)
        try c.encode(version, forKey: .version)
        try c.encode(versionNumber, forKey: .versionNumber)
        try c.encode(host, forKey: .host)
        try c.encode(region, forKey: .region)
        try c.encode(startTimeUs, forKey: .startTimeUs)
        try c.encode(durationUs, forKey: .durationUs)
        try c.encode(billedMs, forKey: .billedMs)
        try c.encode(queueUs, forKey: .queueUs)
        try c.encode(coldStart, forKey: .coldStart)
        try c.encode(initUs, forKey: .initUs)
        try c.encode(cpuUs, forKey: .cpuUs)
        try c.encode(memoryPeakBytes, forKey: .memoryPeakBytes)
        try c.encode(memoryMB, forKey: .memoryMB)
        try c.encode(gbSeconds, forKey: .gbSeconds)
        try c.encode(status, forKey: .status)
        try c.encode(httpStatus, forKey: .httpStatus)
        try c.encode(requestBytes, forKey: .requestBytes)
        try c.encode(responseBytes, forKey: .responseBytes)
        try c.encodeIfPresent(limit, forKey: .limit)
        try c.encodeIfPresent(reason, forKey: .reason)
    }

    /// Wall duration in milliseconds, as `verge usage` prints it.
    public var durationMs: Double { Double(durationUs) / 1000 }

    /// The billed duration: the wall duration rounded up to a whole millisecond (a call of 1 µs bills 1 ms; a
    /// call of 0 µs, only possible for a refusal, bills 0).
    public var billedMs: Int64 { Self.billedMs(durationUs: durationUs) }

    public static func billedMs(durationUs: Int64) -> Int64 {
        durationUs <= 0 ? 0 : (durationUs - 1) / 1000 + 1
    }

    /// Configured memory × billed duration in MiB·ms, the exact integer behind ``gbSeconds``.
    public var memoryMBMs: Int64 { Int64(memoryMB) * billedMs }

    /// Configured memory in GB (1 GB = 1024 MiB, as the major clouds bill) × billed seconds.
    public var gbSeconds: Double { Self.gbSeconds(memoryMBMs: memoryMBMs) }

    public static func gbSeconds(memoryMBMs: Int64) -> Double { Double(memoryMBMs) / 1_024_000 }
}
