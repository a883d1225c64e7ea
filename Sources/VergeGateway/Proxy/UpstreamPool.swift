import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// Where a host listens, parsed once from its URL.
struct UpstreamTarget: Hashable, Sendable {
    var host: String
    var port: Int
    var secure: Bool
    /// The `host` field of a request sent to it (`host:port`).
    var authority: String

    init?(url: String) {
        guard let components = URLComponents(string: url), let scheme = components.scheme,
            scheme == "http" || scheme == "https", let host = components.host, !host.isEmpty
        else { return nil }
        self.secure = scheme == "https"
        self.host = host
        self.port = components.port ?? (secure ? 443 : 80)
        self.authority = "\(host):\(port)"
    }
}

/// Keep-alive HTTP/1.1 connections to hosts, one pool per event loop: a proxied call takes a connection on the
/// event loop of the client's connection, so a call never crosses threads. Idle connections a host closes leave
/// the pool at once; an idle connection is closed after `maxIdle` (well before a host's own idle timeout, so a
/// pooled connection is not closed under a call that was just written to it) by a sweep the pool schedules while it
/// holds idle connections (no task per released connection).
final class UpstreamPool {
    let eventLoop: any EventLoop
    private let connectTimeout: TimeAmount
    private let tls: NIOSSLContext?
    private let maxIdlePerHost = 64
    private let maxIdle = TimeAmount.seconds(30)
    private var idle: [UpstreamTarget: [UpstreamConnection]] = [:]
    private var targets: [String: UpstreamTarget] = [:]
    private var sweep: Scheduled<Void>?

    init(eventLoop: any EventLoop, connectTimeout: TimeAmount, tls: NIOSSLContext?) {
        self.eventLoop = eventLoop
        self.connectTimeout = connectTimeout
        self.tls = tls
    }

    func target(_ url: String) -> UpstreamTarget? {
        if let known = targets[url] { return known }
        let parsed = UpstreamTarget(url: url)
        if let parsed, targets.count < 10_000 { targets[url] = parsed }
        return parsed
    }

    /// A live idle connection to `target`, if the pool has one (no future: the common case stays synchronous).
    func idleConnection(_ target: UpstreamTarget) -> UpstreamConnection? {
        eventLoop.preconditionInEventLoop()
        while let connection = idle[target]?.popLast() {
            if connection.channel.isActive { return connection }
        }
        return nil
    }

    /// A live idle connection to `target`, or a new one.
    func acquire(_ target: UpstreamTarget) -> EventLoopFuture<UpstreamConnection> {
        if let connection = idleConnection(target) { return eventLoop.makeSucceededFuture(connection) }
        let handler = UpstreamHandler()
        let tls = self.tls
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(connectTimeout)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    if target.secure {
                        guard let tls else { throw NIOSSLError.noCertificateToValidate }
                        try pipeline.addHandler(
                            try NIOSSLClientHandler(
                                context: tls, serverHostname: target.host.first?.isNumber == true ? nil : target.host))
                    }
                    try pipeline.addHTTPClientHandlers()
                    try pipeline.addHandler(handler)
                }
            }
        return bootstrap.connect(host: target.host, port: target.port).map { channel in
            UpstreamConnection(channel: channel, handler: handler, target: target)
        }
    }

    /// Returns a connection after a complete exchange; anything else is closed.
    func release(_ connection: UpstreamConnection, reusable: Bool) {
        eventLoop.preconditionInEventLoop()
        connection.handler.delegate = nil
        guard reusable, connection.channel.isActive, (idle[connection.target]?.count ?? 0) < maxIdlePerHost else {
            connection.channel.close(promise: nil)
            return
        }
        idle[connection.target, default: []].append(connection)
        if connection.handler.onClose == nil {
            // Set once per connection: closing while idle takes it out of the pool (while in use, it is not in it).
            connection.handler.onClose = { [weak self, weak connection] in
                guard let self, let connection else { return }
                self.idle[connection.target]?.removeAll { $0 === connection }
            }
        }
        connection.idleSince = .now()
        if sweep == nil { scheduleSweep(at: connection.idleSince + maxIdle) }
    }

    private func scheduleSweep(at time: NIODeadline) {
        sweep = eventLoop.assumeIsolated().scheduleTask(deadline: time) { [weak self] in
            self?.closeExpired()
        }
    }

    /// Closes the connections idle for `maxIdle` or more; runs again when the next one is due.
    private func closeExpired() {
        sweep = nil
        let now = NIODeadline.now()
        var next: NIODeadline?
        for (_, connections) in idle {
            for connection in connections {
                let due = connection.idleSince + maxIdle
                if due <= now {
                    // Its `onClose` takes it out of `idle`.
                    connection.channel.close(promise: nil)
                } else {
                    next = min(next ?? due, due)
                }
            }
        }
        if let next { scheduleSweep(at: next) }
    }
}

/// One keep-alive connection to a host. Created, used and released on its channel's event loop only (the pool
/// asserts it): unchecked Sendable only so a connect future can carry it back to that same event loop.
final class UpstreamConnection: @unchecked Sendable {
    let channel: any Channel
    let handler: UpstreamHandler
    let target: UpstreamTarget
    /// When it was last returned to the pool.
    var idleSince = NIODeadline.now()

    init(channel: any Channel, handler: UpstreamHandler, target: UpstreamTarget) {
        self.channel = channel
        self.handler = handler
        self.target = target
    }
}

/// What a proxied call hears from its host connection.
protocol UpstreamDelegate: AnyObject {
    func upstreamRead(_ part: HTTPClientResponsePart, from connection: UpstreamHandler)
    func upstreamReadComplete(from connection: UpstreamHandler)
    func upstreamClosed(_ error: (any Error)?, from connection: UpstreamHandler)
    func upstreamWritabilityChanged(_ writable: Bool, from connection: UpstreamHandler)
}

/// The last handler of a host connection: hands what it reads to the call using the connection. Lives on its
/// channel's event loop (unchecked Sendable only to be handed to the channel initializer running there).
final class UpstreamHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    weak var delegate: (any UpstreamDelegate)?
    /// Run when the connection closes (the pool forgets an idle connection).
    var onClose: (() -> Void)?
    private var closed = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if let delegate {
            delegate.upstreamRead(unwrapInboundIn(data), from: self)
        } else {
            // Bytes on an idle connection belong to no call: the connection cannot be trusted any more.
            context.close(promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        delegate?.upstreamReadComplete(from: self)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        delegate?.upstreamWritabilityChanged(context.channel.isWritable, from: self)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        finish(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(nil)
    }

    private func finish(_ error: (any Error)?) {
        guard !closed else { return }
        closed = true
        let delegate = self.delegate
        self.delegate = nil
        onClose?()
        onClose = nil
        delegate?.upstreamClosed(error, from: self)
    }
}

/// The pools of all event loops.
final class UpstreamPools: Sendable {
    private let pools = Mutex<[ObjectIdentifier: NIOLoopBound<UpstreamPool>]>([:])
    private let connectTimeout: TimeAmount
    private let tls: NIOSSLContext?

    init(connectTimeout: TimeAmount, tls: NIOSSLContext?) {
        self.connectTimeout = connectTimeout
        self.tls = tls
    }

    /// The pool of `eventLoop`; call on that event loop.
    func pool(for eventLoop: any EventLoop) -> UpstreamPool {
        let key = ObjectIdentifier(eventLoop)
        let connectTimeout = self.connectTimeout
        let tls = self.tls
        let bound = pools.withLock { pools -> NIOLoopBound<UpstreamPool> in
            if let existing = pools[key] { return existing }
            let created = NIOLoopBound(
                UpstreamPool(eventLoop: eventLoop, connectTimeout: connectTimeout, tls: tls), eventLoop: eventLoop)
            pools[key] = created
            return created
        }
        return bound.value
    }
}
