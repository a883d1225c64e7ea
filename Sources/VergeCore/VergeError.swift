/// The one error shape of Verge. Errors that reach HTTP are answered with `status` and the JSON body
/// `{"error":{"code":…,"message":…}}`.
public struct VergeError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public let status: Int

        private init(_ rawValue: String, status: Int) {
            self.rawValue = rawValue
            self.status = status
        }

        public var description: String { rawValue }

        public static let badRequest = Code("bad_request", status: 400)
        public static let invalidBundle = Code("invalid_bundle", status: 422)
        public static let notFound = Code("not_found", status: 404)
        public static let functionNotFound = Code("function_not_found", status: 404)
        public static let methodNotAllowed = Code("method_not_allowed", status: 405)
        public static let payloadTooLarge = Code("payload_too_large", status: 413)
        public static let unauthorized = Code("unauthorized", status: 401)
        /// A function's own concurrency cap (`max_workers`) is reached and its queue of waiting calls is full.
        public static let tooManyRequests = Code("too_many_requests", status: 429)
        public static let forbidden = Code("forbidden", status: 403)
        public static let conflict = Code("conflict", status: 409)
        public static let rateLimited = Code("rate_limited", status: 429)
        public static let functionError = Code("function_error", status: 500)
        public static let internalError = Code("internal_error", status: 500)
        public static let workerCrashed = Code("worker_crashed", status: 502)
        /// The function answered with a head HTTP cannot carry (status, header names or values, sizes).
        public static let invalidResponse = Code("invalid_response", status: 502)
        public static let initFailed = Code("init_failed", status: 502)
        public static let upstreamFailed = Code("upstream_failed", status: 502)
        public static let noHealthyHost = Code("no_healthy_host", status: 503)
        public static let overloaded = Code("overloaded", status: 503)
        public static let shuttingDown = Code("shutting_down", status: 503)
        /// The host cannot commit usage records (disk full, database error): it serves no call it cannot bill.
        public static let ledgerUnavailable = Code("ledger_unavailable", status: 503)
        /// A host refuses a call that carries the gateway's headers (tenant, client location, credential) from a
        /// caller it does not recognise as the gateway, rather than serve it as the default tenant's.
        public static let untrustedCaller = Code("untrusted_caller", status: 503)
        public static let timeout = Code("timeout", status: 504)
        /// A sandbox limit (memory, processes, file size) ended the call; the body's `limit` names it.
        public static let limitExceeded = Code("limit_exceeded", status: 507)
        /// The call used more CPU time than its function allows.
        public static let cpuLimitExceeded = Code("limit_exceeded", status: 504)
    }

    public var code: Code
    public var message: String
    public var underlying: (any Error)?
    /// The limit that ended a call, for `limit_exceeded` (`memory`, `cpu`, `processes`, `file_size`).
    public var limit: String?

    public init(_ code: Code, _ message: String, underlying: (any Error)? = nil, limit: String? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
        self.limit = limit
    }

    public var description: String {
        if let underlying { return "\(code): \(message) (\(underlying))" }
        return "\(code): \(message)"
    }

    /// A description that is safe as a metric label: the code only.
    public var shortDescription: String { code.rawValue }
}

/// The JSON error body, `{"error":{"code":…,"message":…}}`.
public struct ErrorBody: Codable, Sendable, Equatable {
    public struct Detail: Codable, Sendable, Equatable {
        public var code: String
        public var message: String
        /// Which limit ended the call, for `limit_exceeded`; absent otherwise.
        public var limit: String?
    }

    public var error: Detail

    public init(code: String, message: String, limit: String? = nil) {
        self.error = Detail(code: code, message: message, limit: limit)
    }

    public init(_ error: VergeError) {
        self.init(code: error.code.rawValue, message: error.message, limit: error.limit)
    }
}
