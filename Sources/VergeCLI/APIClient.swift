import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import VergeCore
import VergeHTTP

/// The CLI's client for the control plane's API. API errors come back as `VergeCLIError` with the server's message.
struct APIClient: Sendable {
    let baseURL: String
    let token: String?

    func get<T: Decodable>(_ path: String, as type: T.Type) async throws -> T {
        try decode(type, try await send(path, method: .GET))
    }

    func post<T: Decodable>(_ path: String, body: [UInt8], contentType: String, as type: T.Type) async throws -> T {
        try decode(type, try await send(path, method: .POST, body: body, contentType: contentType))
    }

    func put<T: Decodable>(_ path: String, body: [UInt8], contentType: String, as type: T.Type) async throws -> T {
        try decode(type, try await send(path, method: .PUT, body: body, contentType: contentType))
    }

    func delete<T: Decodable>(_ path: String, as type: T.Type) async throws -> T {
        try decode(type, try await send(path, method: .DELETE))
    }

    private func send(
        _ path: String, method: HTTPMethod, body: [UInt8]? = nil, contentType: String? = nil
    ) async throws -> (status: Int, body: ByteBuffer) {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        if let token { request.headers.add(name: "authorization", value: "Bearer \(token)") }
        if let contentType { request.headers.add(name: "content-type", value: contentType) }
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        do {
            let response = try await HTTPClient.verge.execute(request, timeout: .seconds(120))
            return (Int(response.status.code), try await response.body.collect(upTo: 256 * 1024 * 1024))
        } catch {
            throw VergeCLIError("cannot reach the control plane at \(baseURL): \(error)")
        }
    }

    private func decode<T: Decodable>(_ type: T.Type, _ response: (status: Int, body: ByteBuffer)) throws -> T {
        let data = Data(response.body.readableBytesView)
        guard (200..<300).contains(response.status) else {
            if let error = try? JSONDecoder().decode(ErrorBody.self, from: data) {
                let hint =
                    response.status == 401 && token == nil
                    ? "; no token for \(baseURL): pass --token, set VERGE_TOKEN, or start `verge dev`, which stores one"
                    : ""
                throw VergeCLIError("\(error.error.message) (\(error.error.code))\(hint)")
            }
            throw VergeCLIError("the control plane answered \(response.status)")
        }
        do {
            return try JSONDecoder().decode(type, from: data)
        } catch {
            throw VergeCLIError("unexpected answer from the control plane: \(error)")
        }
    }
}

/// An error the CLI reports as `error: message` and exit status 1.
struct VergeCLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Writes lines to standard output without buffering surprises.
enum Output {
    static func line(_ text: String) {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }

    static func error(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    static func json(_ value: some Encodable, pretty: Bool = true) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting =
            pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        line(String(decoding: try encoder.encode(value), as: UTF8.self))
    }

    /// A plain aligned table.
    static func table(_ header: [String], _ rows: [[String]]) {
        var widths = header.map(\.count)
        for row in rows { for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) } }
        func format(_ cells: [String]) -> String {
            cells.enumerated().map { index, cell in
                index == cells.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
        line(format(header))
        for row in rows { line(format(row)) }
    }
}
