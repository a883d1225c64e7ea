import NIOCore
import NIOHTTP1
import VergeCore

/// The fields of both messages as they cross the gateway: what a host receives of a client's request, and what the
/// client receives of a host's response head (rules in ``ProxyHandler``).
extension ProxyHandler {
    /// The fields sent to every host tried for this call.
    func forwardedHeaders(
        _ head: HTTPRequestHead, client: LocatedClient, peer: SocketAddress?, address: FunctionAddress,
        requestID: String
    ) -> HTTPHeaders {
        let trusted = gateway.locator.isTrusted(peer)
        let dropped = ForwardingRules.connectionFields(named: head.headers["connection"])
        // The locator's inputs (location claims) never reach a function; what it decided is added per host in
        // `send` (``Gateway/locationFields(for:route:)``).
        var headers = HTTPHeaders()
        var forwardedFor: String?
        var forwardedProto: String?
        var forwardedHost: String?
        for (original, value) in head.headers {
            let name = original.lowercased()
            if dropped.contains(name) || name.hasPrefix("x-verge-") || name == "host" || name == "content-length"
                || name == "expect" || name == "x-request-id" || gateway.isLocatorInput(name)
            {
                continue
            }
            switch name {
            // A trusted proxy's chain is extended; anyone else's is replaced by what the socket says.
            case "x-forwarded-for":
                if trusted { forwardedFor = forwardedFor.map { $0 + ", " + value } ?? value }
            case "x-forwarded-proto":
                if trusted, forwardedProto == nil { forwardedProto = value }
            case "x-forwarded-host":
                if trusted, forwardedHost == nil { forwardedHost = value }
            default:
                headers.add(name: name, value: value)
            }
        }
        let peerIP = peer?.ipAddress ?? "unknown"
        headers.add(name: "x-forwarded-for", value: forwardedFor.map { "\($0), \(peerIP)" } ?? peerIP)
        headers.add(
            name: "x-forwarded-proto", value: forwardedProto ?? (gateway.configuration.tls.serves ? "https" : "http"))
        if let host = forwardedHost ?? head.headers.first(name: "host") {
            headers.add(name: "x-forwarded-host", value: host)
        }
        headers.add(name: "x-request-id", value: requestID)
        headers.add(name: VergeHeaders.tenant, value: address.tenant)
        headers.add(name: VergeHeaders.credential, value: credential)
        return headers
    }

    /// The host's response head as the client gets it: its fields minus the connection's, the request id and the
    /// gateway's `server-timing`.
    func responseHead(_ response: HTTPResponseHead, call: Call, route: Route) -> HTTPResponseHead {
        let dropped = ForwardingRules.connectionFields(named: response.headers["connection"])
        var headers = HTTPHeaders()
        for (name, value) in response.headers {
            let lower = name.lowercased()
            if dropped.contains(lower) || lower == "x-request-id" { continue }
            headers.add(name: name, value: value)
        }
        if call.bodyAllowed && !headers.contains(name: "content-length") {
            if call.head.version.major == 1 && call.head.version.minor == 0 {
                // HTTP/1.0 has no chunked coding: the body ends where the connection does.
                call.closeAfterResponse = true
            } else {
                headers.add(name: "transfer-encoding", value: "chunked")
            }
        }
        headers.add(name: "x-request-id", value: call.requestID)
        if let client = call.client {
            let duration = ContinuousClock.now - call.start
            headers.add(
                name: "server-timing", value: RoutingHeaders.serverTiming(client: client, route: route, duration: duration))
        }
        if !call.keepAlive || call.closeAfterResponse { headers.add(name: "connection", value: "close") }
        // An HTTP/1.0 client gets an HTTP/1.0 head when the body is delimited by the connection's end (the encoder
        // frames an HTTP/1.1 head without a length as chunked, which HTTP/1.0 does not know).
        let version: HTTPVersion = call.head.version.minor == 0 && call.head.version.major == 1 ? .http1_0 : .http1_1
        return HTTPResponseHead(version: version, status: response.status, headers: headers)
    }
}
