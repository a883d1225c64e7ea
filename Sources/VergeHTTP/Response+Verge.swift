import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTP1
import VergeCore

extension Response {
    /// Marks a response the platform produced itself (never a function: hosts drop every `x-verge-*` header a
    /// function sends), with its error code as the value. The gateway reads it to tell a host's own failure or
    /// saturation from a function's answer.
    public static let errorMarker = HTTPField.Name("x-verge-error")!

    /// The one error shape: `status` from the code, body `{"error":{"code":…,"message":…}}`.
    public static func error(_ error: VergeError, headers: HTTPFields = [:]) -> Response {
        var headers = headers
        headers[.contentType] = "application/json"
        headers[errorMarker] = error.code.rawValue
        let body = (try? JSONCoding.encoder.encode(ErrorBody(error))) ?? Data()
        return Response(
            status: .init(code: error.code.status),
            headers: headers,
            body: .init(byteBuffer: ByteBuffer(bytes: body))
        )
    }

    /// A JSON response of `value`, encoded with the project's encoder (sorted keys).
    public static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        var body = try JSONCoding.encoder.encode(value)
        body.append(UInt8(ascii: "\n"))
        return Response(
            status: status,
            headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: body))
        )
    }
}

extension HTTPResponseHead {
    /// The one error shape (see `Response.error`) as an HTTP/1 head and body, for handlers that write NIO's HTTP parts
    /// themselves: `headers`, then `content-type`, `content-length` and the error marker.
    package static func vergeError(
        _ error: VergeError, headers: HTTPHeaders = HTTPHeaders()
    ) -> (head: HTTPResponseHead, body: ByteBuffer) {
        var headers = headers
        let body = (try? JSONCoding.encoder.encode(ErrorBody(error))) ?? Data()
        headers.replaceOrAdd(name: "content-type", value: "application/json")
        headers.replaceOrAdd(name: "content-length", value: String(body.count))
        headers.replaceOrAdd(name: Response.errorMarker.rawName, value: error.code.rawValue)
        let head = HTTPResponseHead(
            version: .http1_1, status: HTTPResponseStatus(statusCode: error.code.status), headers: headers)
        return (head, ByteBuffer(bytes: body))
    }
}

/// JSON coders configured the same way everywhere.
public enum JSONCoding {
    public static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    public static var decoder: JSONDecoder { JSONDecoder() }

    /// Decodes `type` from a request body, answering bad input with a `bad_request` error that says what is wrong.
    public static func decode<T: Decodable>(
        _ type: T.Type, from buffer: ByteBuffer, what: String
    ) throws(VergeError) -> T {
        do {
            return try decoder.decode(type, from: Data(buffer.readableBytesView))
        } catch let error as DecodingError {
            throw VergeError(.badRequest, "invalid \(what): \(describe(error))")
        } catch {
            throw VergeError(.badRequest, "invalid \(what): \(error)")
        }
    }

    /// A one-line, user-facing account of a decoding error.
    public static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let keys = context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }
            return keys.isEmpty ? "document" : keys.joined(separator: ".")
        }
        switch error {
        case .typeMismatch(_, let context): return "\(path(context)): \(context.debugDescription)"
        case .valueNotFound(_, let context): return "\(path(context)): value missing"
        case .keyNotFound(let key, let context):
            let parent = path(context)
            return parent == "document"
                ? "missing key '\(key.stringValue)'" : "\(parent): missing key '\(key.stringValue)'"
        case .dataCorrupted(let context): return "\(path(context)): \(context.debugDescription)"
        @unknown default: return "\(error)"
        }
    }
}
