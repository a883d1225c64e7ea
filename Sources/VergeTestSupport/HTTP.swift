import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL

/// A response as a test sees it.
public struct TestResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: [UInt8]
    /// Time from sending the request to the end of the body.
    public var elapsed: Duration

    public var text: String { String(decoding: body, as: UTF8.self) }

    public func header(_ name: String) -> String? { headers.first(name: name) }

    public func json() throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
            throw TestFailure("body is not a JSON object: \(text)")
        }
        return object
    }
}

public struct TestFailure: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A real HTTP client for tests.
public enum TestHTTP {
    public static func request(
        _ url: String, method: HTTPMethod = .GET, headers: [(String, String)] = [], body: [UInt8]? = nil,
        timeout: Duration = .seconds(30)
    ) async throws -> TestResponse {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        let clock = ContinuousClock()
        let start = clock.now
        let response = try await HTTPClient.shared.execute(request, timeout: TimeAmount(timeout))
        let bytes = try await response.body.collect(upTo: 64 * 1024 * 1024)
        return TestResponse(
            status: Int(response.status.code), headers: response.headers, body: Array(bytes.readableBytesView),
            elapsed: clock.now - start
        )
    }

    /// A GET over HTTPS trusting only the CA certificates in the PEM file `caFile` (a client of its own).
    public static func get(_ url: String, trusting caFile: String, timeout: Duration = .seconds(30)) async throws
        -> TestResponse
    {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .file(caFile)
        let client = HTTPClient(
            eventLoopGroupProvider: .singleton, configuration: HTTPClient.Configuration(tlsConfiguration: tls))
        do {
            let response = try await client.execute(HTTPClientRequest(url: url), timeout: TimeAmount(timeout))
            let bytes = try await response.body.collect(upTo: 64 * 1024 * 1024)
            try await client.shutdown()
            return TestResponse(
                status: Int(response.status.code), headers: response.headers, body: Array(bytes.readableBytesView),
                elapsed: .zero)
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    /// A GET from a client at the given coordinates, as a trusted proxy (CloudFront) would announce it.
    public static func get(_ url: String, from location: (Double, Double)? = nil) async throws -> TestResponse {
        var headers: [(String, String)] = []
        if let location {
            headers = [
                ("cloudfront-viewer-latitude", "\(location.0)"), ("cloudfront-viewer-longitude", "\(location.1)"),
            ]
        }
        return try await request(url, headers: headers)
    }
}
