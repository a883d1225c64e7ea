/// One line a worker wrote to stdout or stderr, kept on the host that ran it.
public struct LogLine: Codable, Sendable, Equatable {
    /// When the host read the line, microseconds since the Unix epoch (UTC).
    public var timeUs: Int64
    public var tenant: String
    public var function: String
    public var version: String
    /// The invocation in progress when the line was written; nil when the worker printed between invocations.
    public var invocationID: String?
    /// `"stdout"` or `"stderr"`.
    public var stream: String
    /// The line without its terminating newline.
    public var line: String

    enum CodingKeys: String, CodingKey {
        case timeUs = "time_us"
        case tenant, function, version
        case invocationID = "invocation_id"
        case stream, line
    }

    public init(
        timeUs: Int64, tenant: String, function: String, version: String, invocationID: String?, stream: String,
        line: String
    ) {
        self.timeUs = timeUs
        self.tenant = tenant
        self.function = function
        self.version = version
        self.invocationID = invocationID
        self.stream = stream
        self.line = line
    }
}
