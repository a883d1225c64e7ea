import AsyncHTTPClient
import Foundation
import HTTPTypes
import HummingbirdCore
import Logging
import Metrics
import NIOCore
import NIOHTTP1
import VergeCore
import VergeHTTP

/// One proxied call: resolve the function, locate the client, try the nearest healthy hosts in order, and stream
/// the answer back. The rules (`docs/` and the README's "Proxy rules"):
/// - framing was checked by the listener (`RequestFramingHandler`) before this runs;
/// - hop-by-hop fields (and those `Connection` names) never cross, in either direction; `x-forwarded-*` are the
///   gateway's; `x-request-id` is kept when valid, else generated, and returned to the client;
/// - a body over `maxRequestBodyBytes` is refused with 413; a host that sends no response head within
///   `firstByteTimeout` gets a 504;
/// - the next host is tried when the current one cannot be reached (any method, the body was never sent), when it
///   answers that it is saturated or shutting down (its own 503; the function never saw the call), or — for
///   idempotent calls only — when it drops the connection before answering. A body is replayable only when it was
///   small enough to buffer (`replayBufferBytes`); a streamed body is sent once.
struct GatewayProxy: Sendable {
    let gateway: Gateway
    let client: HTTPClient
    let refresher: HostListRefresher
    let credential: String

    static let requestIDField = HTTPField.Name("x-request-id")!
    static let serverTiming = HTTPField.Name("server-timing")!

    func forward(_ request: Request, writer: consuming ResponseWriter, channel: any Channel) async throws {
        let peer = channel.remoteAddress
        let clock = ContinuousClock()
        let start = clock.now
        let configuration = gateway.configuration
        let requestID = ForwardingRules.acceptedRequestID(request.headers[Self.requestIDField])
            ?? ForwardingRules.newRequestID()
        var idHeader = HTTPFields()
        idHeader[Self.requestIDField] = requestID
        let path = request.uri.path
        guard
            let address = FunctionAddress.resolve(
                authority: request.head.authority, path: path, domain: configuration.domain)
        else {
            try await writer.writeError(
                VergeError(.functionNotFound, "no function is deployed at '\(path)'"), headers: idHeader)
            return
        }
        let name = address.name
        let function = FunctionRef(tenant: address.tenant, name: name)
        let client = gateway.locator.locate(headers: request.headers, peer: peer)
        var routes = gateway.directory.routes(for: function, from: client.location)
        if routes.first?.host != gateway.directory.nearestHealthy(to: client.location)?.name {
            // A nearer healthy host does not list the function (or none does): a deploy may have reached it
            // after the last periodic refresh, so ask once more now. Refreshes are coalesced, so this cannot
            // turn into a flood of control-plane calls.
            await refresher.refresh(after: clock.now)
            routes = gateway.directory.routes(for: function, from: client.location)
        }
        guard !routes.isEmpty else {
            if gateway.directory.isDeployed(function) {
                idHeader[.retryAfter] = "1"
                try await writer.writeError(
                    VergeError(.noHealthyHost, "no healthy host runs '\(name)' right now"), headers: idHeader)
            } else {
                try await writer.writeError(
                    VergeError(.functionNotFound, "no function is deployed at '/\(name)'"), headers: idHeader)
            }
            return
        }

        // The body: refused when declared too large, buffered when small enough to send to a second host, else
        // streamed once under the size limit.
        let declaredLength = request.headers[.contentLength].flatMap(Int.init)
        let chunked = request.headers[.transferEncoding] != nil
        if let declaredLength, declaredLength > configuration.maxRequestBodyBytes {
            try await writer.writeError(
                VergeError(.payloadTooLarge, "request body exceeds \(configuration.maxRequestBodyBytes) bytes"),
                headers: idHeader)
            return
        }
        var body: UpstreamBody = .none
        if let declaredLength, declaredLength > 0 {
            if declaredLength <= configuration.replayBufferBytes {
                do {
                    body = .buffered(try await request.body.collect(upTo: declaredLength))
                } catch {
                    try await writer.writeError(
                        VergeError(.badRequest, "request body could not be read: \(error)"), headers: idHeader)
                    return
                }
            } else {
                body = .stream(request.body, length: declaredLength)
            }
        } else if chunked {
            body = .stream(request.body, length: nil)
        }
        let idempotent = ForwardingRules.isIdempotent(request.method)

        let forwarded = forwardedFields(request, client: client, peer: peer, address: address, requestID: requestID)
        var lastError: (any Error)?
        for (attempt, route) in routes.prefix(configuration.maxAttempts).enumerated() {
            if attempt > 0 && !body.replayable { break }
            let query = request.uri.query.map { "?" + $0 } ?? ""
            var upstream = HTTPClientRequest(url: route.url + address.hostPath + query)
            upstream.method = HTTPMethod(rawValue: request.method.rawValue)
            upstream.headers = forwarded
            upstream.body = body.clientBody(limit: configuration.maxRequestBodyBytes)
            let response: HTTPClientResponse
            do {
                response = try await self.client.execute(
                    upstream, timeout: TimeAmount(configuration.firstByteTimeout))
            } catch {
                lastError = error
                switch Self.failure(error) {
                case .client(let verge):
                    try await writer.writeError(verge, headers: idHeader)
                    return
                case .timeout:
                    try await writer.writeError(
                        VergeError(.timeout, "host '\(route.host)' sent no response head in time"), headers: idHeader)
                    return
                case .unreachable:
                    // Nothing was sent: safe to try the next host whatever the method.
                    eject(route.host, error: error, reason: "cannot connect")
                    continue
                case .dropped:
                    // The host took (some of) the call and then dropped the connection before answering.
                    eject(route.host, error: error, reason: "connection lost before a response")
                    if idempotent { continue }
                    try await writer.writeError(
                        VergeError(
                            .upstreamFailed,
                            "host '\(route.host)' failed before answering; a \(request.method.rawValue) call is not retried"),
                        headers: idHeader)
                    return
                }
            }
            let status = Int(response.status.code)
            let marker = response.headers.first(name: Response.errorMarker.rawName)
            switch ForwardingRules.classify(status: status, errorMarker: marker) {
            case .spill:
                // Saturated or shutting down: the host never gave the call to a function.
                Counter(label: "verge_gateway_spillovers_total", dimensions: [("host", route.host)]).increment()
                if marker == "shutting_down" { eject(route.host, error: nil, reason: "shutting down") }
                if attempt + 1 < min(routes.count, configuration.maxAttempts) && body.replayable {
                    _ = try? await response.body.collect(upTo: 64 * 1024)
                    continue
                }
                // The last host tried: its 503 (with Retry-After) is the answer.
            case .hostFailure:
                let now = clock.now
                let backoff = configuration.ejectionBackoff
                if gateway.directory.record(route.host, { $0.hostFailed(now: now, backoff: backoff) })
                    == .becameUnhealthy
                {
                    gateway.logger.warning(
                        "host ejected: it answered with errors of its own",
                        metadata: ["host.name": "\(route.host)", "http.status": "\(status)"])
                }
            case .served:
                gateway.directory.record(route.host) { health in
                    health.callSucceeded()
                    return .none
                }
            }
            try await relay(
                response, request: request, route: route, client: client, start: start, requestID: requestID,
                writer: writer, channel: channel)
            return
        }
        gateway.logger.info(
            "call failed at every host tried",
            metadata: ["request.id": "\(requestID)", "error": "\(lastError.map { "\($0)" } ?? "")"])
        idHeader[.retryAfter] = "1"
        try await writer.writeError(VergeError(.upstreamFailed, "no host could take the call"), headers: idHeader)
    }

    /// Streams a host's answer to the client: its fields minus the hop-by-hop ones, plus the request id and the
    /// gateway's `server-timing`.
    private func relay(
        _ response: HTTPClientResponse, request: Request, route: Route, client: LocatedClient,
        start: ContinuousClock.Instant, requestID: String, writer: consuming ResponseWriter, channel: any Channel
    ) async throws {
        var fields = HTTPFields()
        let dropped = ForwardingRules.connectionFields(named: response.headers["connection"])
        for header in response.headers where !dropped.contains(header.name.lowercased()) {
            if let name = HTTPField.Name(header.name), name != Self.requestIDField {
                fields.append(HTTPField(name: name, value: header.value))
            }
        }
        fields[Self.requestIDField] = requestID
        let routeMs = String(format: "%.3f", Double((ContinuousClock.now - start).microseconds) / 1000)
        fields.append(
            HTTPField(
                name: Self.serverTiming,
                value:
                    "gateway;dur=\(routeMs);desc=\"\(route.host) \(Int(route.distanceKm.rounded()))km \(client.source.rawValue)\""
            ))
        Counter(label: "verge_gateway_requests_total", dimensions: [("host", route.host)]).increment()
        let status = Int(response.status.code)
        let bodyWriter: any ResponseBodyWriter
        do {
            bodyWriter = try await writer.writeHead(HTTPResponse(status: .init(code: status), headerFields: fields))
        } catch {
            return
        }
        var body = bodyWriter
        // A host never sends a body HTTP forbids; should one arrive anyway, it is read and dropped here so no byte of
        // it can reach the client's next exchange.
        let bodyAllowed = request.method != .head && status != 204 && status != 304
        var droppedBytes = 0
        do {
            for try await chunk in response.body {
                if bodyAllowed { try await body.write(chunk) } else { droppedBytes += chunk.readableBytes }
            }
        } catch {
            // The host (or the client) went away in the middle of the body. The head is out, so the only honest
            // signal left is to close the client's connection: the client sees a truncated response, never bytes
            // of another one.
            gateway.logger.info(
                "response cut short: the connection closed mid-body",
                metadata: ["host.name": "\(route.host)", "request.id": "\(requestID)", "error": "\(error)"])
            try? await channel.close()
            return
        }
        if droppedBytes > 0 {
            gateway.logger.info(
                "response body dropped: HTTP allows none here",
                metadata: ["host.name": "\(route.host)", "http.status": "\(status)", "bytes": "\(droppedBytes)"])
        }
        try await body.finish(nil)
    }

    /// The fields sent to every host tried for this call.
    private func forwardedFields(
        _ request: Request, client: LocatedClient, peer: SocketAddress?, address: FunctionAddress, requestID: String
    ) -> HTTPHeaders {
        let trusted = gateway.locator.isTrusted(peer)
        let dropped = ForwardingRules.connectionFields(named: request.headers[values: .connection])
        // ---- Client-location fields: the ONE place where the locator's decision becomes request fields. ----
        // `locationFields` says which incoming fields are the locator's to consume (never passed to a function) and
        // which fields tell the function where its client is and how that was found.
        let location = gateway.locationFields(for: client)
        // ----
        var headers = HTTPHeaders()
        var forwardedFor: String?
        var forwardedProto: String?
        var forwardedHost: String?
        for field in request.headers {
            let name = field.name.canonicalName
            if dropped.contains(name) || name.hasPrefix("x-verge-") || name == "host" || location.strip.contains(name)
                || name == "x-request-id"
            {
                continue
            }
            switch name {
            // A trusted proxy's chain is extended; anyone else's is replaced by what the socket says.
            case "x-forwarded-for":
                if trusted { forwardedFor = forwardedFor.map { $0 + ", " + field.value } ?? field.value }
            case "x-forwarded-proto":
                if trusted, forwardedProto == nil { forwardedProto = field.value }
            case "x-forwarded-host":
                if trusted, forwardedHost == nil { forwardedHost = field.value }
            default:
                headers.add(name: name, value: field.value)
            }
        }
        let peerIP = peer?.ipAddress ?? "unknown"
        headers.add(name: "x-forwarded-for", value: forwardedFor.map { "\($0), \(peerIP)" } ?? peerIP)
        headers.add(
            name: "x-forwarded-proto", value: forwardedProto ?? (gateway.configuration.tls.serves ? "https" : "http"))
        if let host = forwardedHost ?? request.head.authority { headers.add(name: "x-forwarded-host", value: host) }
        headers.add(name: "x-request-id", value: requestID)
        for (name, value) in location.add { headers.add(name: name, value: value) }
        headers.add(name: VergeHeaders.tenant, value: address.tenant)
        headers.add(name: VergeHeaders.credential, value: credential)
        return headers
    }

    private func eject(_ host: String, error: (any Error)?, reason: String) {
        let now = ContinuousClock.now
        let backoff = gateway.configuration.ejectionBackoff
        let transition = gateway.directory.record(host) { $0.connectionFailed(now: now, backoff: backoff) }
        if transition == .becameUnhealthy {
            gateway.logger.warning(
                "host ejected: \(reason)", metadata: ["host.name": "\(host)", "error": "\(error.map { "\($0)" } ?? "")"])
        }
        Counter(label: "verge_gateway_upstream_failures_total", dimensions: [("host", host)]).increment()
    }

    /// What an error from the host client means for the call.
    enum Failure {
        /// The client's own request was at fault (body too large, body framing broke): answered, nobody ejected.
        case client(VergeError)
        /// No response head within the first-byte timeout.
        case timeout
        /// The host could not be reached: no byte of the call reached it.
        case unreachable
        /// The connection failed after (part of) the call may have reached the host.
        case dropped
    }

    static func failure(_ error: any Error) -> Failure {
        if let error = error as? VergeError { return .client(error) }
        if error is HTTPParserError {
            return .client(VergeError(.badRequest, "invalid request body framing: \(error)"))
        }
        if Gateway.isConnectFailure(error) { return .unreachable }
        if let error = error as? HTTPClientError, error == .deadlineExceeded || error == .readTimeout {
            return .timeout
        }
        return .dropped
    }
}

/// A call's body as the host client sends it.
enum UpstreamBody: Sendable {
    case none
    /// Small enough to keep: may be sent to a second host.
    case buffered(ByteBuffer)
    /// Streamed once from the client, with its declared length if any.
    case stream(RequestBody, length: Int?)

    var replayable: Bool {
        if case .stream = self { return false }
        return true
    }

    func clientBody(limit: Int) -> HTTPClientRequest.Body? {
        switch self {
        case .none: return nil
        case .buffered(let buffer): return .bytes(buffer)
        case .stream(let body, let length):
            return .stream(
                LimitedBody(base: body, limit: limit), length: length.map { .known(Int64($0)) } ?? .unknown)
        }
    }
}

/// A request body that fails with `413 payload_too_large` once more than `limit` bytes have come.
struct LimitedBody: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let base: RequestBody
    let limit: Int

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: RequestBody.AsyncIterator
        let limit: Int
        var seen = 0

        mutating func next() async throws -> ByteBuffer? {
            guard let chunk = try await base.next() else { return nil }
            seen += chunk.readableBytes
            if seen > limit { throw VergeError(.payloadTooLarge, "request body exceeds \(limit) bytes") }
            return chunk
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: base.makeAsyncIterator(), limit: limit) }
}
