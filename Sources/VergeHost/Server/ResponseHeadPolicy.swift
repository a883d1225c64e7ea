import HTTPTypes
import NIOHTTP1

/// What a function's response head may become on the wire. Everything a worker sends is hostile: the host owns
/// HTTP framing, so framing and platform headers are dropped, a head HTTP cannot carry fails the call (502), and a
/// body HTTP forbids (HEAD, 204, 205, 304) is never written — no byte of one response can leak into the next exchange
/// on a kept-alive or pipelined connection.
struct ResponseHeadPolicy: Sendable {
    /// Most header fields a function may send.
    var maxFields = 100
    /// Longest single field (name + value) in bytes.
    var maxFieldBytes = 16 * 1024
    /// Most bytes of all the function's fields together.
    var maxTotalBytes = 64 * 1024

    /// Response headers a function may not set: framing is the host's job, `date` and `server` are the server's.
    static let reservedHeaders: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "transfer-encoding", "content-length", "upgrade", "te",
        "trailer", "date", "server",
    ]

    /// A head the host can send.
    struct Accepted: Sendable, Equatable {
        var status: Int
        var fields: HTTPFields
        /// Whether HTTP lets this response carry a body (not for HEAD, 1xx, 204, 205 or 304).
        var bodyAllowed: Bool
        /// Names of headers dropped because the host or the platform owns them.
        var dropped: [String]
    }

    /// Why a head cannot be sent. Never quotes the offending value (it may be huge or hold anything).
    struct Rejected: Error, Sendable, Equatable, CustomStringConvertible {
        var reason: String
        var description: String { reason }
    }

    /// Checks the head of a response to a `method` request; `fields` are appended after the platform's own.
    func check(
        status: Int, headers: [[String]], method: HTTPMethod, platformFields: HTTPFields
    ) -> Result<Accepted, Rejected> {
        guard (200...599).contains(status) else {
            return .failure(Rejected(reason: "response status \(status) is outside 200-599"))
        }
        guard headers.count <= maxFields else {
            return .failure(Rejected(reason: "\(headers.count) response headers; at most \(maxFields) are allowed"))
        }
        var fields = platformFields
        var dropped: [String] = []
        var total = 0
        for (index, pair) in headers.enumerated() {
            guard pair.count == 2 else {
                return .failure(Rejected(reason: "response header \(index) is not a [name, value] pair"))
            }
            let (name, value) = (pair[0], pair[1])
            let size = name.utf8.count + value.utf8.count
            total += size
            guard size <= maxFieldBytes else {
                return .failure(
                    Rejected(reason: "response header \(index) is \(size) bytes; at most \(maxFieldBytes) are allowed"))
            }
            guard total <= maxTotalBytes else {
                return .failure(
                    Rejected(reason: "response headers exceed \(maxTotalBytes) bytes together"))
            }
            guard let fieldName = HTTPField.Name(name) else {
                return .failure(Rejected(reason: "response header \(index) has an invalid name"))
            }
            guard HTTPField.isValidValue(value) else {
                return .failure(
                    Rejected(
                        reason:
                            "response header '\(fieldName.canonicalName)' has an invalid value "
                                + "(CR, LF, NUL or control characters)"
                    ))
            }
            let canonical = fieldName.canonicalName
            if Self.reservedHeaders.contains(canonical) || canonical.hasPrefix("x-verge-") {
                dropped.append(canonical)
                continue
            }
            fields.append(HTTPField(name: fieldName, value: value))
        }
        let bodyAllowed = method != .HEAD && status != 204 && status != 205 && status != 304
        // 205 Reset Content has no content, but unlike 204 and 304 its framing is not implied: say it.
        if status == 205 { fields[.contentLength] = "0" }
        return .success(Accepted(status: status, fields: fields, bodyAllowed: bodyAllowed, dropped: dropped))
    }
}
