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
///
/// The handler's parts, by concern: `+Client` (the connection's events, a request's intake and routing), `+Upstream`
/// (the exchange with a host: pooled connection, retries and spill-over, first-byte timeout, the host's response),
/// `+Responses` (what the gateway answers itself, and how a call ends), `+Fields` (both messages' fields), `+Call`.
final class ProxyHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let gateway: Gateway
    let pools: UpstreamPools
    let refresher: HostListRefresher
    /// The gateway's proof for each host, sent to that host only.
    let proofs: HostProofs
    var context: ChannelHandlerContext?
    var call: Call?
    var pool: UpstreamPool?
    /// `verge_gateway_requests_total` per host, made once per connection rather than looked up per call.
    var requestCounters: [String: Counter] = [:]
    /// Parts of pipelined requests that arrived while the current call's response was still being sent; served in
    /// order when it ends. Reading stops while more than `maxQueued` wait.
    var queued: [HTTPServerRequestPart] = []
    let maxQueued = 64
    var pausedForQueue = false
    /// The current call's first-byte deadline, armed when it is sent to a host and cleared by the response head;
    /// one per connection (see `LazyDeadline`).
    var firstByteDeadline: LazyDeadline?
    /// The connection's peer: the same for every call on it.
    var peer: ConnectionPeer?
    /// What the locator decided for a call without location claims (which depends on the peer only), reused until
    /// `until` so that a reloaded GeoIP database reaches long-lived connections too.
    var peerClient: (client: LocatedClient, until: ContinuousClock.Instant)?
    /// The location fields and `server-timing` description for the last client and host (on a keep-alive
    /// connection, those of nearly every call).
    var lastLocation: LocationFields?
    /// The last function address resolved on this connection and what from (a keep-alive client mostly calls one).
    var lastAddress: (authority: String?, path: String, address: FunctionAddress)?
    /// Close once the current call is answered (the server is shutting down, or the client's later bytes broke).
    var quiescing = false

    init(gateway: Gateway, pools: UpstreamPools, refresher: HostListRefresher, proofs: HostProofs) {
        self.gateway = gateway
        self.pools = pools
        self.refresher = refresher
        self.proofs = proofs
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
}

@available(*, unavailable)
extension ProxyHandler: Sendable {}
