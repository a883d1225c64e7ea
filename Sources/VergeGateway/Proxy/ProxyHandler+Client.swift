import Foundation
import NIOCore
import NIOHTTP1
import VergeCore
import VergeHTTP

/// The client side of a call: the connection's events, a request's parts as they arrive (pipelined ones wait their
/// turn), the checks on its target and body, and where it is routed (rules in ``ProxyHandler``).
extension ProxyHandler {
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

    func handle(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
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
        // The current call's request is whole, so the broken bytes belong to a later, pipelined request: the current
        // call is answered as it would have been, then the connection closes; nothing queued is served.
        if let call, call.requestComplete, error is HTTPParserError || error is ByteToMessageDecoderError {
            queued.removeAll()
            call.closeAfterResponse = true
            quiescing = true
            return
        }
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

    func begin(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
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

    func routed(_ call: Call, _ routes: [Route]) {
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

    func connectionPeer(_ context: ChannelHandlerContext) -> ConnectionPeer {
        if let peer { return peer }
        let address = context.channel.remoteAddress
        let made = ConnectionPeer(
            address: address, ip: address?.ipAddress ?? "unknown", trusted: gateway.locator.isTrusted(address))
        peer = made
        return made
    }
}
