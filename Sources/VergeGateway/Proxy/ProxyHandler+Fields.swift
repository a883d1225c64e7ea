import HTTPTypes
import NIOCore
import NIOHTTP1
import VergeCore

/// The fields of both messages as they cross the gateway: what a host receives of a client's request, and what the
/// client receives of a host's response head (rules in ``ProxyHandler``).
extension ProxyHandler {
    /// A client connection's peer as the proxy uses it on every call.
    struct ConnectionPeer {
        var address: SocketAddress?
        /// The address as `x-forwarded-for` carries it (`unknown` when the peer is not an IP socket).
        var ip: String
        /// Whether the peer is a trusted proxy (its forwarding and location fields are believed).
        var trusted: Bool
    }

    /// What ``ProxyHandler/locationFields(_:_:)`` made for a client and a host.
    struct LocationFields {
        var client: LocatedClient
        var route: Route
        var fields: [(name: String, value: String)]
        /// The `server-timing` description (``RoutingHeaders/serverTimingDescription(client:route:)``).
        var timing: String
    }

    /// The fields telling a host where the client is and which host was chosen (``Gateway/locationFields(for:route:)``)
    /// and the `server-timing` description, made once per client and host.
    func locationFields(_ client: LocatedClient, _ route: Route) -> LocationFields {
        if let last = lastLocation, last.route == route, last.client == client { return last }
        let made = LocationFields(
            client: client, route: route, fields: gateway.locationFields(for: client, route: route),
            timing: RoutingHeaders.serverTimingDescription(client: client, route: route))
        lastLocation = made
        return made
    }

    /// The gateway's `server-timing` entry for a call that started at `start`.
    func serverTiming(client: LocatedClient, route: Route, since start: ContinuousClock.Instant) -> String {
        RoutingHeaders.serverTiming(
            description: locationFields(client, route).timing, duration: ContinuousClock.now - start)
    }

    /// The fields sent to every host tried for this call, and the location claims among the client's fields (only
    /// from a trusted peer; the locator's only inputs besides the peer address).
    func forwardedHeaders(
        _ head: HTTPRequestHead, peer: ConnectionPeer, address: FunctionAddress, requestID: String
    ) -> (forwarded: HTTPHeaders, claims: HTTPFields) {
        let trusted = peer.trusted
        let dropped = ForwardingRules.connectionFields(named: head.headers["connection"])
        // The locator's inputs (location claims) never reach a function; what it decided is added per host in
        // `send` (``Gateway/locationFields(for:route:)``).
        var headers = HTTPHeaders()
        var claims = HTTPFields()
        var forwardedFor: String?
        var forwardedProto: String?
        var forwardedHost: String?
        for (original, value) in head.headers {
            let name = original.lowercased()
            let claim = RoutingHeaders.mustStrip(lowercased: name)
            if trusted, claim, let fieldName = HTTPField.Name(name) {
                claims.append(HTTPField(name: fieldName, value: value))
            }
            if dropped.contains(name) || name.hasPrefix("x-verge-") || name == "host" || name == "content-length"
                || name == "expect" || name == "x-request-id" || (claim && name != "x-forwarded-for")
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
        headers.add(name: "x-forwarded-for", value: forwardedFor.map { "\($0), \(peer.ip)" } ?? peer.ip)
        headers.add(
            name: "x-forwarded-proto", value: forwardedProto ?? (gateway.configuration.tls.serves ? "https" : "http"))
        if let host = forwardedHost ?? head.headers.first(name: "host") {
            headers.add(name: "x-forwarded-host", value: host)
        }
        headers.add(name: "x-request-id", value: requestID)
        headers.add(name: VergeHeaders.tenant, value: address.tenant)
        return (headers, claims)
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
            headers.add(name: "server-timing", value: serverTiming(client: client, route: route, since: call.start))
        }
        if !call.keepAlive || call.closeAfterResponse { headers.add(name: "connection", value: "close") }
        // An HTTP/1.0 client gets an HTTP/1.0 head when the body is delimited by the connection's end (the encoder
        // frames an HTTP/1.1 head without a length as chunked, which HTTP/1.0 does not know).
        let version: HTTPVersion = call.head.version.minor == 0 && call.head.version.major == 1 ? .http1_0 : .http1_1
        return HTTPResponseHead(version: version, status: response.status, headers: headers)
    }
}
