import NIOCore
import NIOHTTP1
import VergeCore

extension ProxyHandler {
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
        /// Hosts that answered that they do not run the function; once the host list is fresh the call goes to
        /// another (once per call).
        var lackedBy: [String] = []
        var rerouteAfterRefresh = false
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
}
