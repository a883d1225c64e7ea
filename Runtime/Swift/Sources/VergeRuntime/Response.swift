#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// An HTTP response returned by a function.
public struct Response: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(status: Int = 200, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A text response; `content-type` defaults to `text/plain; charset=utf-8`.
    public init(status: Int = 200, headers: [(name: String, value: String)] = [], text: String) {
        var headers = headers
        if !headers.contains(where: { $0.name.lowercased() == "content-type" }) {
            headers.append((name: "content-type", value: "text/plain; charset=utf-8"))
        }
        self.init(status: status, headers: headers, body: Array(text.utf8))
    }

    /// A JSON response of an encodable value.
    public static func json<Value: Encodable>(
        _ value: Value, status: Int = 200, headers: [(name: String, value: String)] = []
    ) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Response(
            status: status,
            headers: headers + [(name: "content-type", value: "application/json")],
            body: Array(try encoder.encode(value))
        )
    }
}
