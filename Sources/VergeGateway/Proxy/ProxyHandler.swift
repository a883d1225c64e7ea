import Foundation
import HTTPTypes
import HummingbirdCore
import Logging
import Metrics
import NIOCore
import NIOHTTP1
import VergeCore
import VergeHTTP

/// The gateway's proxy, one per client connection, driven by the connection's event loop: a call takes a pooled
/// keep-alive connection to its host on the same event loop and the parts of both messages are passed on as they
/// arrive, with backpressure both ways (a side that cannot write stops reading the other). The rules:
/// - framing was checked by the listener (`RequestFramingHandler`) before a part arrives here;
/// - hop-by-hop fields (and those `Connection` names) never cross, in either direction; `x-forwarded-*` are the
///   gateway's (a trusted proxy's chain is extended); `x-request-id` is kept when valid, else generated, and
///   returned to the client;
/// - a body over `maxRequestBodyBytes` is answered `413`; a host that sends no response head within
///   `firstByteTimeout` gets the call answered `504`;
/// - the next host is tried when the current one cannot be reached (any method: nothing was sent), when it answers
///   its own 503 (saturated or shutting down: no function saw the call), or — for GET, HEAD and OPTIONS only — when
///   it drops the connection before answering. A body is replayable only when small enough to be kept
///   (`replayBufferBytes`); a streamed body goes to one host only.
final class ProxyHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let gateway: Gateway
    let pools: UpstreamPools
    let refresher: HostListRefresher
    /// The gateway's proof for each host, sent to that host only.
    let proofs: HostProofs
    private var context: ChannelHandlerContext?
    private var call: Call?
    private var pool: UpstreamPool?
    /// `verge_gateway_requests_total` per host, made once per connection rather than looked up per call.
    private var requestCounters: [String: Counter] = [:]
    /// Parts of pipelined requests that arrived while the current call's response was still being sent; served in
    /// order when it ends. Reading stops while more than `maxQueued` wait.
    private var queued: [HTTPServerRequestPart] = []
    private let maxQueued = 64
    private var pausedForQueue = false
    /// The current call's first-byte deadline, armed when it is sent to a host and cleared by the response head;
    /// one per connection (see `LazyDeadline`).
    private var firstByteDeadline: LazyDeadline?
    /// The connection's peer: the same for every call on it.
    private var peer: ConnectionPeer?
    /// What the locator decided for a call without location claims (which depends on the peer only), reused until
    /// `until` so that a reloaded GeoIP database reaches long-lived connections too.
    private var peerClient: (client: LocatedClient, until: ContinuousClock.Instant)?
    /// The location fields and `server-timing` description for the last client and host (on a keep-alive
    /// connection, those of nearly every call).
    private var lastLocation: LocationFields?
    /// The last function address resolved on this connection and what from (a keep-alive client mostly calls one).
    private var lastAddress: (authority: String?, path: String, address: FunctionAddress)?
    /// The server is shutting down: close once the current call is answered.
    private var quiescing = false

    init(gateway: Gateway, pools: UpstreamPools, refresher: HostListRefresher, proofs: HostProofs) {
        self.gateway = gateway
        self.pools = pools
        self.refresher = refresher
        self.proofs = proofs
    }

    /// One call in progress.
    final class Call {
        enum Body {
            case none
            case buffered(ByteBuffer)
            case streamed
        }

        let head: HTTPRequestHead
        let requestID: String
        let start = ContinuousClock.now
        let keepAlive: Bool
        /// Whether the call may go to another host after one failed before answering (its method, or the
        /// function's manifest, says it is idempotent).
        var idempotent: Bool
        var address: FunctionAddress?
        var client: LocatedClient?
        var routes: [Route] = []
        var attempt = 0
        var forwarded = HTTPHeaders()
        var body = Body.none
        var bodyBytes = 0
        /// The client's request has ended.
        var requestComplete = false
        /// Parts of a streamed body not written to a host yet.
        var pending: [HTTPClientRequestPart] = []
        /// Some of a streamed body went to a host: it cannot go to another.
        var streamSent = false
        var upstream: UpstreamConnection?
        /// A saturated host's answer being read and dropped before the next host is tried.
        var discarding = false
        var responseStarted = false
        var responseDone = false
        var bodyAllowed = true
        var routed = false
        var closeAfterResponse = false
        /// Reading paused for backpressure: the client's connection (its host reads slowly) or the host's (the
        /// client reads slowly).
        var clientPaused = false
        var upstreamPaused = false

        init(head: HTTPRequestHead, requestID: String) {
            self.head = head
            self.requestID = requestID
            self.keepAlive = head.isKeepAlive
            self.idempotent = false
        }

        var replayable: Bool {
            switch body {
            case .none, .buffered: return true
            case .streamed: return !streamSent
            }
        }
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.pool = pools.pool(for: context.eventLoop)
        firstByteDeadline = LazyDeadline(eventLoop: context.eventLoop) { [weak self] in self?.firstByteTimedOut() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        abandonCall()
        firstByteDeadline?.cancel()
        self.context = nil
    }

    // MARK: Client side

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        // A part of the next (pipelined) request while this one's response is still going out: it waits its turn.
        if !queued.isEmpty || (call.map { $0.requestComplete } ?? false) {
            queued.append(part)
            if queued.count > maxQueued && !pausedForQueue {
                pausedForQueue = true
                context.channel.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in }
            }
            return
        }
        handle(part, context: context)
    }

    private func handle(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch part {
        case .head(let head):
            begin(head, context: context)
        case .body(let buffer):
            guard let call else { return }
            call.bodyBytes += buffer.readableBytes
            let limit = gateway.configuration.maxRequestBodyBytes
            if call.bodyBytes > limit {
                guard !call.responseStarted else {
                    context.close(promise: nil)
                    return
                }
                call.closeAfterResponse = true
                dropUpstream(call)
                respond(VergeError(.payloadTooLarge, "request body exceeds \(limit) bytes"), call: call)
                return
            }
            if call.responseDone || call.closeAfterResponse { return }
            switch call.body {
            case .none: break
            case .buffered(var kept):
                call.body = .none
                kept.writeImmutableBuffer(buffer)
                call.body = .buffered(kept)
            case .streamed:
                if let upstream = call.upstream, !call.discarding {
                    upstream.channel.write(HTTPClientRequestPart.body(.byteBuffer(buffer)), promise: nil)
                } else {
                    call.pending.append(.body(.byteBuffer(buffer)))
                }
            }
        case .end:
            guard let call else { return }
            call.requestComplete = true
            if call.responseDone {
                finish(call)
                return
            }
            if call.closeAfterResponse { return }
            switch call.body {
            case .none, .buffered:
                if call.routed && call.upstream == nil && !call.responseStarted { dispatch(call) }
            case .streamed:
                if let upstream = call.upstream, !call.discarding {
                    upstream.channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
                } else {
                    call.pending.append(.end(nil))
                }
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        call?.upstream?.channel.flush()
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        // The client reads slowly: stop reading the host until it catches up.
        if let call, let upstream = call.upstream {
            call.upstreamPaused = !context.channel.isWritable
            upstream.channel.setOption(ChannelOptions.autoRead, value: !call.upstreamPaused).whenFailure { _ in }
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        abandonCall()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            if call == nil && queued.isEmpty { context.close(promise: nil) }
            return
        }
        if let event = event as? ChannelEvent, event == .inputClosed {
            // The client sent all it will send: answer what it asked (if anything), then close.
            if let call {
                call.closeAfterResponse = true
            } else if queued.isEmpty {
                context.close(promise: nil)
            }
            return
        }
        if event is ChannelShouldQuiesceEvent {
            // Shutting down: an idle connection closes now, a busy one once its current call is answered.
            quiescing = true
            if let call {
                call.closeAfterResponse = true
            } else {
                context.close(promise: nil)
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // The client's bytes broke mid-request (the parser refused a later chunk): nothing more can be trusted.
        if let call, let upstream = call.upstream {
            call.upstream = nil
            upstream.channel.close(promise: nil)
        }
        if let call, !call.responseStarted, error is HTTPParserError {
            call.closeAfterResponse = true
            respond(VergeError(.badRequest, "invalid request framing: \(error)"), call: call)
            return
        }
        context.close(promise: nil)
    }

    private func begin(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let configuration = gateway.configuration
        let requestID =
            ForwardingRules.acceptedRequestID(head.headers.first(name: "x-request-id"))
            ?? ForwardingRules.newRequestID()
        let call = Call(head: head, requestID: requestID)
        self.call = call
        if head.headers.first(name: "expect")?.lowercased() == "100-continue" {
            context.writeAndFlush(
                wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .continue))), promise: nil)
        }
        let uri = head.uri
        let path = uri.firstIndex(of: "?").map { String(uri[..<$0]) } ?? uri
        if path == "/_verge/health" {
            respond(json: (try? JSONCoding.encoder.encode(gateway.health)) ?? Data(), call: call)
            return
        }
        let authority = head.headers.first(name: "host")
        let resolved: FunctionAddress?
        if let last = lastAddress, last.path == path, last.authority == authority {
            resolved = last.address
        } else {
            resolved = FunctionAddress.resolve(authority: authority, path: path, domain: configuration.domain)
            if let resolved { lastAddress = (authority, path, resolved) }
        }
        guard let address = resolved else {
            respond(VergeError(.functionNotFound, "no function is deployed at '\(path)'"), call: call)
            return
        }
        call.address = address
        let peer = connectionPeer(context)
        let (forwarded, claims) = forwardedHeaders(head, peer: peer, address: address, requestID: requestID)
        let client: LocatedClient
        if claims.isEmpty, let cached = peerClient, call.start < cached.until {
            client = cached.client
        } else {
            client = gateway.locator.locate(headers: claims, peer: peer.address)
            if claims.isEmpty { peerClient = (client, call.start + .seconds(10)) }
        }
        call.client = client
        call.forwarded = forwarded

        // The body: refused when declared too large, kept when small enough to go to a second host, else streamed.
        if let length = head.headers.first(name: "content-length").flatMap(Int.init) {
            if length > configuration.maxRequestBodyBytes {
                call.closeAfterResponse = true
                respond(
                    VergeError(
                        .payloadTooLarge, "request body exceeds \(configuration.maxRequestBodyBytes) bytes"),
                    call: call)
                return
            }
            if length > 0 {
                call.body =
                    length <= configuration.replayBufferBytes
                    ? .buffered(context.channel.allocator.buffer(capacity: length)) : .streamed
            }
        } else if head.headers.contains(name: "transfer-encoding") {
            call.body = .streamed
        }

        let function = FunctionRef(tenant: address.tenant, name: address.name)
        call.idempotent = gateway.isIdempotent(head.method.rawValue, for: function)
        // Nearest first. A call waits for a (coalesced, rate-limited) host-list refresh only in the cases
        // RouteResolver describes: an unknown name, or a nearest host that lacks the function.
        let limit = max(4, gateway.configuration.maxAttempts)
        switch gateway.resolver.decide(for: function, from: client.location, limit: limit) {
        case .route(let routes):
            routed(call, routes)
        case .refresh(let moment, let generation):
            let refresher = self.refresher
            context.eventLoop.makeFutureWithTask {
                await refresher.refresh(after: moment)
            }.assumeIsolated().whenComplete { [weak self, weak call] _ in
                guard let self, let call, self.call === call else { return }
                self.routed(
                    call,
                    self.gateway.resolver.routesAfterRefresh(
                        for: function, from: client.location, limit: limit, generation: generation))
            }
        }
    }

    private func routed(_ call: Call, _ routes: [Route]) {
        guard let address = call.address else { return }
        guard !routes.isEmpty else {
            if gateway.directory.isDeployed(FunctionRef(tenant: address.tenant, name: address.name)) {
                respond(
                    VergeError(.noHealthyHost, "no healthy host runs '\(address.name)' right now"), call: call,
                    retryAfter: true)
            } else {
                respond(VergeError(.functionNotFound, "no function is deployed at '/\(address.name)'"), call: call)
            }
            return
        }
        call.routes = Array(routes.prefix(gateway.configuration.maxAttempts))
        call.routed = true
        switch call.body {
        case .streamed: dispatch(call)
        case .none, .buffered: if call.requestComplete { dispatch(call) }
        }
    }

    // MARK: Host side

    /// Sends the call to `call.routes[call.attempt]`.
    private func dispatch(_ call: Call) {
        guard let pool, let context else { return }
        let route = call.routes[call.attempt]
        guard let target = pool.target(route.url) else {
            eject(route.host, reason: "its URL cannot be used: \(route.url)", error: nil)
            nextAttempt(call, error: nil)
            return
        }
        if let connection = pool.idleConnection(target) {
            send(call, over: connection, route: route, context: context)
            return
        }
        pool.acquire(target).assumeIsolated().whenComplete { [weak self, weak call] result in
            guard let self, let call, self.call === call else {
                if case .success(let connection) = result { connection.channel.close(promise: nil) }
                return
            }
            switch result {
            case .failure(let error):
                // Nothing was sent: any call may go to the next host.
                self.eject(route.host, reason: "cannot connect", error: error)
                self.nextAttempt(call, error: error)
            case .success(let connection):
                self.send(call, over: connection, route: route, context: context)
            }
        }
    }

    private func send(_ call: Call, over connection: UpstreamConnection, route: Route, context: ChannelHandlerContext) {
        call.upstream = connection
        connection.handler.delegate = self
        let address = call.address!
        let query = call.head.uri.firstIndex(of: "?").map { String(call.head.uri[$0...]) } ?? ""
        var head = HTTPRequestHead(
            version: .http1_1, method: call.head.method, uri: address.hostPath + query, headers: call.forwarded)
        head.headers.add(name: "host", value: connection.target.authority)
        head.headers.add(name: VergeHeaders.credential, value: proofs.token(for: route.host))
        if let client = call.client {
            for (name, value) in locationFields(client, route).fields {
                head.headers.add(name: name, value: value)
            }
        }
        let channel = connection.channel
        switch call.body {
        case .none:
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        case .buffered(let buffer):
            head.headers.replaceOrAdd(name: "content-length", value: "\(buffer.readableBytes)")
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            channel.write(HTTPClientRequestPart.body(.byteBuffer(buffer)), promise: nil)
            channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        case .streamed:
            if let length = call.head.headers.first(name: "content-length") {
                head.headers.replaceOrAdd(name: "content-length", value: length)
            } else {
                head.headers.replaceOrAdd(name: "transfer-encoding", value: "chunked")
            }
            call.streamSent = true
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            for part in call.pending { channel.write(part, promise: nil) }
            call.pending.removeAll()
            channel.flush()
        }
        firstByteDeadline?.arm(in: TimeAmount(gateway.configuration.firstByteTimeout))
    }

    private func connectionPeer(_ context: ChannelHandlerContext) -> ConnectionPeer {
        if let peer { return peer }
        let address = context.channel.remoteAddress
        let made = ConnectionPeer(
            address: address, ip: address?.ipAddress ?? "unknown", trusted: gateway.locator.isTrusted(address))
        peer = made
        return made
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

    /// The host the call was sent to sent no response head within `firstByteTimeout`.
    private func firstByteTimedOut() {
        guard let call, call.upstream != nil, !call.responseStarted, call.attempt < call.routes.count else { return }
        let route = call.routes[call.attempt]
        dropUpstream(call)
        call.closeAfterResponse = !call.requestComplete
        respond(VergeError(.timeout, "host '\(route.host)' sent no response head in time"), call: call)
    }

    private func nextAttempt(_ call: Call, error: (any Error)?) {
        call.attempt += 1
        if call.attempt < call.routes.count && call.replayable {
            dispatch(call)
            return
        }
        gateway.logger.info(
            "call failed at every host tried",
            metadata: ["request.id": "\(call.requestID)", "error": "\(error.map { "\($0)" } ?? "")"])
        call.closeAfterResponse = call.closeAfterResponse || !call.requestComplete
        respond(VergeError(.upstreamFailed, "no host could take the call"), call: call, retryAfter: true)
    }

    private func eject(_ host: String, reason: String, error: (any Error)?) {
        let now = ContinuousClock.now
        let backoff = gateway.configuration.ejectionBackoff
        if gateway.directory.record(host, { $0.connectionFailed(now: now, backoff: backoff) }) == .becameUnhealthy {
            gateway.logger.warning(
                "host ejected: \(reason)",
                metadata: ["host.name": "\(host)", "error": "\(error.map { "\($0)" } ?? "")"])
        }
        Counter(label: "verge_gateway_upstream_failures_total", dimensions: [("host", host)]).increment()
    }

    /// Closes the call's host connection without reusing it.
    private func dropUpstream(_ call: Call) {
        firstByteDeadline?.disarm()
        guard let upstream = call.upstream else { return }
        call.upstream = nil
        upstream.handler.delegate = nil
        upstream.channel.close(promise: nil)
    }

    // MARK: Answers

    /// Answers the call with the platform's JSON error shape.
    /// A 200 with a JSON body the gateway itself answers (its health).
    private func respond(json body: Data, call: Call) {
        guard let context, !call.responseStarted else { return }
        call.responseStarted = true
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "content-length", value: "\(body.count)")
        headers.add(name: "x-request-id", value: call.requestID)
        if call.closeAfterResponse || !call.keepAlive { headers.add(name: "connection", value: "close") }
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
        if call.head.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body)))), promise: nil)
        }
        endResponse(call)
    }

    private func respond(_ error: VergeError, call: Call, retryAfter: Bool = false) {
        guard let context, !call.responseStarted else { return }
        call.responseStarted = true
        let body = (try? JSONCoding.encoder.encode(ErrorBody(error))) ?? Data()
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "content-length", value: "\(body.count)")
        headers.add(name: Response.errorMarker.rawName, value: error.code.rawValue)
        headers.add(name: "x-request-id", value: call.requestID)
        if retryAfter { headers.add(name: "retry-after", value: "1") }
        if call.closeAfterResponse || !call.keepAlive { headers.add(name: "connection", value: "close") }
        context.write(
            wrapOutboundOut(
                .head(
                    HTTPResponseHead(
                        version: .http1_1, status: HTTPResponseStatus(statusCode: error.code.status),
                        headers: headers))), promise: nil)
        if call.head.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body)))), promise: nil)
        }
        endResponse(call)
    }

    private func requestCounter(_ host: String) -> Counter {
        if let counter = requestCounters[host] { return counter }
        let counter = Counter(label: "verge_gateway_requests_total", dimensions: [("host", host)])
        if requestCounters.count < 64 { requestCounters[host] = counter }
        return counter
    }

    private func resumeClient(_ call: Call) {
        guard call.clientPaused, let context else { return }
        call.clientPaused = false
        context.channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
    }

    private func endResponse(_ call: Call) {
        guard let context else { return }
        resumeClient(call)
        call.responseDone = true
        if call.closeAfterResponse || !call.keepAlive || quiescing {
            self.call = nil
            queued.removeAll()
            context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
            return
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        if call.requestComplete { finish(call) }
    }

    private func finish(_ call: Call) {
        guard self.call === call else { return }
        firstByteDeadline?.disarm()
        self.call = nil
        drainQueue()
    }

    /// Serves the pipelined parts that waited for the call that just ended, up to the end of the next request.
    private func drainQueue() {
        guard let context else { return }
        while !queued.isEmpty {
            if let call, call.requestComplete { break }
            handle(queued.removeFirst(), context: context)
        }
        if queued.count <= maxQueued && pausedForQueue {
            pausedForQueue = false
            context.channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
        }
    }

    /// The client went away or the handler is removed: nothing of the call survives.
    private func abandonCall() {
        queued.removeAll()
        guard let call else { return }
        self.call = nil
        dropUpstream(call)
    }
}

extension ProxyHandler: UpstreamDelegate {
    func upstreamRead(_ part: HTTPClientResponsePart, from connection: UpstreamHandler) {
        guard let call, let upstream = call.upstream, upstream.handler === connection, let context else { return }
        switch part {
        case .head(let response):
            if response.status.code < 200 { return }  // interim: the final head follows
            firstByteDeadline?.disarm()
            let route = call.routes[call.attempt]
            let status = Int(response.status.code)
            let marker = response.headers.first(name: Response.errorMarker.rawName)
            switch ForwardingRules.classify(status: status, errorMarker: marker) {
            case .spill:
                Counter(label: "verge_gateway_spillovers_total", dimensions: [("host", route.host)]).increment()
                if marker == "shutting_down" { eject(route.host, reason: "shutting down", error: nil) }
                if call.attempt + 1 < call.routes.count && call.replayable {
                    // Read the saturated host's answer to its end, then try the next host.
                    call.discarding = true
                    return
                }
            case .hostFailure:
                let now = ContinuousClock.now
                let backoff = gateway.configuration.ejectionBackoff
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
            requestCounter(route.host).increment()
            call.responseStarted = true
            call.bodyAllowed = call.head.method != .HEAD && status != 204 && status != 304
            context.write(wrapOutboundOut(.head(responseHead(response, call: call, route: route))), promise: nil)
        case .body(let buffer):
            if call.discarding { return }
            // A host never sends a body HTTP forbids; should one arrive anyway, it is dropped here so no byte of it
            // can reach the client's next exchange.
            if call.bodyAllowed { context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil) }
        case .end:
            let reusable = call.requestComplete && !call.pending.contains { if case .end = $0 { true } else { false } }
            call.upstream = nil
            if call.upstreamPaused {
                call.upstreamPaused = false
                upstream.channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
            }
            resumeClient(call)
            pool?.release(upstream, reusable: reusable && upstream.channel.isActive)
            if call.discarding {
                call.discarding = false
                nextAttempt(call, error: nil)
                return
            }
            // A host that answered before the whole body came: the rest of the client's body is read and dropped.
            endResponse(call)
        }
    }

    func upstreamReadComplete(from connection: UpstreamHandler) {
        guard let call, call.upstream?.handler === connection else { return }
        context?.flush()
    }

    func upstreamWritabilityChanged(_ writable: Bool, from connection: UpstreamHandler) {
        guard let call, call.upstream?.handler === connection, let context else { return }
        // The host reads the body slowly: stop reading the client until it catches up.
        call.clientPaused = !writable
        context.channel.setOption(ChannelOptions.autoRead, value: writable).whenFailure { _ in }
    }

    func upstreamClosed(_ error: (any Error)?, from connection: UpstreamHandler) {
        guard let call, let upstream = call.upstream, upstream.handler === connection, let context else { return }
        call.upstream = nil
        firstByteDeadline?.disarm()
        resumeClient(call)
        let route = call.routes[call.attempt]
        if call.responseStarted && !call.discarding {
            // The head is out: the only honest signal left is to close the client's connection (the client sees a
            // truncated response, never bytes of another one).
            gateway.logger.info(
                "response cut short: the host connection closed mid-body",
                metadata: ["host.name": "\(route.host)", "request.id": "\(call.requestID)"])
            self.call = nil
            context.close(promise: nil)
            return
        }
        call.discarding = false
        eject(route.host, reason: "connection lost before a response", error: error)
        if call.idempotent && call.replayable {
            nextAttempt(call, error: error)
            return
        }
        call.closeAfterResponse = !call.requestComplete
        respond(
            VergeError(
                .upstreamFailed,
                "host '\(route.host)' failed before answering; a \(call.head.method.rawValue) call is not retried"),
            call: call)
    }
}

@available(*, unavailable)
extension ProxyHandler: Sendable {}
