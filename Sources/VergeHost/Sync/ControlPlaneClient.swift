import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import VergeCore
import VergeHTTP
import VergeUsage

/// The host's calls to the control plane, each bounded in time.
struct ControlPlaneClient: Sendable {
    let baseURL: String
    /// The host's own credential.
    let credential: String
    let hostName: String
    var timeout: TimeAmount = .seconds(10)

    func sync(_ status: HostStatus) async throws -> DesiredState {
        let body = try JSONCoding.encoder.encode(status)
        let response = try await send(
            "/v1/internal/hosts/\(hostName)/sync", method: .POST, body: ByteBuffer(bytes: body))
        return try decode(DesiredState.self, response)
    }

    /// Ships a `UsageBatch` of this host, already encoded (``HostLedger/unshippedShipment(host:limit:)``).
    func ship(encoded body: [UInt8]) async throws -> IngestResult {
        let response = try await send("/v1/internal/usage", method: .POST, body: ByteBuffer(bytes: body))
        return try decode(IngestResult.self, response)
    }

    /// The secrets of a function this host is told to run. The answer is never logged.
    func secrets(tenant: String, function: String) async throws -> FunctionSecrets {
        var request = HTTPClientRequest(
            url: baseURL + "/v1/internal/hosts/\(hostName)/secrets/\(function)?tenant=\(tenant)")
        authorize(&request)
        let response = try await HTTPClient.verge.execute(request, timeout: timeout)
        let body = try await response.body.collect(upTo: 4 * 1024 * 1024)
        return try decode(FunctionSecrets.self, (Int(response.status.code), body))
    }

    /// The bundle archive of `version`, at most `limit` bytes.
    func bundle(_ version: String, limit: Int) async throws -> [UInt8] {
        var request = HTTPClientRequest(url: baseURL + "/v1/bundles/" + version)
        authorize(&request)
        let response = try await HTTPClient.verge.execute(request, timeout: .seconds(60))
        guard response.status == .ok else {
            throw VergeError(.upstreamFailed, "control plane answered \(response.status.code) for bundle \(version)")
        }
        let body = try await response.body.collect(upTo: limit)
        return Array(body.readableBytesView)
    }

    private func send(
        _ path: String, method: HTTPMethod, body: ByteBuffer
    ) async throws -> (status: Int, body: ByteBuffer) {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        request.headers.add(name: "content-type", value: "application/json")
        authorize(&request)
        request.body = .bytes(body)
        let response = try await HTTPClient.verge.execute(request, timeout: timeout)
        let bytes = try await response.body.collect(upTo: 64 * 1024 * 1024)
        return (Int(response.status.code), bytes)
    }

    private func authorize(_ request: inout HTTPClientRequest) {
        request.headers.add(name: "authorization", value: "Bearer " + credential)
    }

    private func decode<T: Decodable>(_ type: T.Type, _ response: (status: Int, body: ByteBuffer)) throws -> T {
        guard response.status == 200 else {
            let text = String(buffer: response.body)
            throw VergeError(.upstreamFailed, "control plane answered \(response.status): \(text.prefix(300))")
        }
        return try JSONCoding.decoder.decode(type, from: Data(response.body.readableBytesView))
    }
}
