import HummingbirdCore
import Metrics
import NIOCore
import NIOHTTP1
import VergeCore
import VergeHTTP

/// The upstream side of a call: a pooled connection to the chosen host, the request sent over it, the first-byte
/// deadline, and what happens when a host cannot take the call (ejection, the next host, spill-over); then the
/// host's response passed on to the client (rules in ``ProxyHandler``).
extension ProxyHandler {
    /// Sends the call to `call.routes[call.attempt]`.
    func dispatch(_ call: Call) {
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

    func send(_ call: Call, over connection: UpstreamConnection, route: Route, context: ChannelHandlerContext) {
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

    /// The host the call was sent to sent no response head within `firstByteTimeout`.
    func firstByteTimedOut() {
        guard let call, call.upstream != nil, !call.responseStarted, call.attempt < call.routes.count else { return }
        let route = call.routes[call.attempt]
        dropUpstream(call)
        call.closeAfterResponse = !call.requestComplete
        respond(VergeError(.timeout, "host '\(route.host)' sent no response head in time"), call: call)
    }

    /// A host's refusal (saturated, or it lacks the function) has been drained: the call goes to the next host, or
    /// once the host list is fresh to a host that runs the function.
    func afterRefusal(_ call: Call, error: (any Error)?) {
        call.discarding = false
        if call.rerouteAfterRefresh {
            call.rerouteAfterRefresh = false
            reroute(call)
        } else {
            nextAttempt(call, error: error)
        }
    }

    /// A host answered that it does not run the call's function: the host list is behind (a deploy, a rollback or
    /// a region change is on its way to the hosts). Once a list fetched after that answer is in, the call goes to
    /// the nearest host that runs the function, never back to the hosts that said they lack it; when there is none,
    /// the call is answered `503 no_healthy_host` if the function is still deployed somewhere (it is moving), `404`
    /// otherwise.
    func reroute(_ call: Call) {
        guard let address = call.address, let client = call.client else { return }
        let function = FunctionRef(tenant: address.tenant, name: address.name)
        let limit = max(4, gateway.configuration.maxAttempts)
        let moment = ContinuousClock.now
        let generation = gateway.directory.generation
        let refresher = self.refresher
        context?.eventLoop.makeFutureWithTask {
            await refresher.refresh(after: moment)
        }.assumeIsolated().whenComplete { [weak self, weak call] _ in
            guard let self, let call, self.call === call else { return }
            let routes = self.gateway.resolver.routesAfterRefresh(
                for: function, from: client.location, limit: limit, generation: generation
            ).filter { !call.lackedBy.contains($0.host) }
            call.attempt = 0
            self.routed(call, routes)
        }
    }

    func nextAttempt(_ call: Call, error: (any Error)?) {
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

    func eject(_ host: String, reason: String, error: (any Error)?) {
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
    func dropUpstream(_ call: Call) {
        firstByteDeadline?.disarm()
        guard let upstream = call.upstream else { return }
        call.upstream = nil
        upstream.handler.delegate = nil
        upstream.channel.close(promise: nil)
    }

    func requestCounter(_ host: String) -> Counter {
        if let counter = requestCounters[host] { return counter }
        let counter = Counter(label: "verge_gateway_requests_total", dimensions: [("host", host)])
        if requestCounters.count < 64 { requestCounters[host] = counter }
        return counter
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
            case .missing:
                if call.lackedBy.isEmpty && call.replayable {
                    // Read the answer to its end, then wait for a fresh host list and try a host that runs it.
                    call.lackedBy.append(route.host)
                    call.rerouteAfterRefresh = true
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
                afterRefusal(call, error: nil)
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
        if call.discarding {
            // The host had already answered that no function saw the call (saturated, or it lacks the function) and
            // closed while its answer was being drained: go on as if the answer had ended; the host is not at fault.
            afterRefusal(call, error: error)
            return
        }
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
