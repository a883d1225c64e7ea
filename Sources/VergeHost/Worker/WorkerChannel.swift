import DequeModule
import NIOCore
import Synchronization
import VergeProtocol

/// The host's end of a worker's socket: frames in and out, for the one call that holds the worker at a time.
///
/// A call's task runs on its connection's event loop (see `HostConnectionHandler`), and a worker started for it
/// lives on the same loop; there, receiving a frame that is already read and sending one are plain function calls
/// on the loop, and a call that waits is resumed from the handler that read its frame. From any other executor,
/// both hop to the loop. (`NIOAsyncChannel`'s general-purpose producer and writer cost several lock round trips and
/// unspecialized generic code per frame on this path, which every warm call takes four times.)
///
/// Inbound frames are buffered with back-pressure: past ``FrameInbox/highWatermark`` frames not yet received, the
/// socket is not read until the receiver has taken all but ``FrameInbox/lowWatermark`` of them. A decoding error is
/// thrown after the frames read before it; end of file is `nil` after them.
struct WorkerChannel: Sendable {
    let channel: any Channel
    private let inbox: NIOLoopBound<FrameInbox>
    /// Numbers every wait of every worker channel.
    private static let waits = Atomic<UInt64>(0)

    /// Adds the inbox as the last inbound handler of `channel`'s pipeline; call on its event loop.
    static func attach(to channel: any Channel) throws -> WorkerChannel {
        let inbox = FrameInbox()
        try channel.pipeline.syncOperations.addHandler(inbox)
        return WorkerChannel(channel: channel, inbox: NIOLoopBound(inbox, eventLoop: channel.eventLoop))
    }

    /// The next frame from the worker; `nil` once its socket closed and every frame before was received. Only one
    /// receiver at a time (the pool's lease guarantees it).
    ///
    /// A cancelled receiver stops waiting with `CancellationError` (the worker is then in the middle of a call and
    /// is not used again).
    func next() async throws -> WireFrame? {
        let eventLoop = channel.eventLoop
        if eventLoop.inEventLoop, let ready = try inbox.value.takeReady() {
            return ready.frame
        }
        try Task.checkCancellation()
        let inbox = self.inbox
        // The wait and its cancellation may reach the loop in either order: the id tells them apart.
        let id = Self.waits.wrappingAdd(1, ordering: .relaxed).newValue
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<WireFrame?, any Error>) in
                if eventLoop.inEventLoop {
                    inbox.value.wait(id, continuation)
                } else {
                    // A loop already shut down runs nothing: then the receiver learns so instead of waiting forever.
                    eventLoop.submit { inbox.value.wait(id, continuation) }.whenFailure { error in
                        continuation.resume(throwing: error)
                    }
                }
            }
        } onCancel: {
            eventLoop.execute { inbox.value.cancel(id) }
        }
    }

    /// Writes `frame` and returns once it has reached the socket, so a worker that stops reading holds up its
    /// sender instead of filling the host's memory.
    func write(_ frame: WireFrame) async throws {
        try await channel.writeAndFlush(frame).get()
    }

    /// Writes `frames` in one system call where they fit.
    func write(contentsOf frames: [WireFrame]) async throws {
        guard let last = frames.last else { return }
        for frame in frames.dropLast() { channel.write(frame, promise: nil) }
        try await channel.writeAndFlush(last).get()
    }

    func close() {
        channel.close(promise: nil)
    }

    /// Whether the worker's socket is still open: a worker that closed it, or broke the protocol right behind its
    /// last frame, is not lent again.
    var isOpen: Bool { channel.isActive }
}

/// The inbound end of ``WorkerChannel``: confined to the channel's event loop.
final class FrameInbox: ChannelDuplexHandler {
    typealias InboundIn = WireFrame
    typealias OutboundIn = WireFrame
    typealias OutboundOut = WireFrame

    /// Frames buffered before the socket is no longer read.
    static let highWatermark = 8
    /// Frames left when reading resumes.
    static let lowWatermark = 2

    private var frames = Deque<WireFrame>()
    private var waiter: (id: UInt64, continuation: CheckedContinuation<WireFrame?, any Error>)?
    /// A wait cancelled before it reached the loop.
    private var cancelledWait: UInt64?
    /// Thrown once the buffered frames are received; `nil` with `closed` means end of file.
    private var failure: (any Error)?
    private var closed = false
    /// A read the pipeline asked for while the buffer was full, issued once the receiver has caught up.
    private var readPending = false
    private var context: ChannelHandlerContext?

    /// Either a frame, or a reason that none will come.
    struct Ready {
        var frame: WireFrame?
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        finish(nil)
    }

    /// A frame already read, or the end (`nil` frame); `nil` when the receiver must wait. Throws the channel's error
    /// once the frames before it are taken.
    func takeReady() throws -> Ready? {
        if let frame = frames.popFirst() {
            resumeReadingIfDrained()
            return Ready(frame: frame)
        }
        guard closed else { return nil }
        if let failure { throw failure }
        return Ready(frame: nil)
    }

    func wait(_ id: UInt64, _ continuation: CheckedContinuation<WireFrame?, any Error>) {
        if cancelledWait == id {
            cancelledWait = nil
            continuation.resume(throwing: CancellationError())
            return
        }
        do {
            if let ready = try takeReady() {
                continuation.resume(returning: ready.frame)
                return
            }
        } catch {
            continuation.resume(throwing: error)
            return
        }
        guard waiter == nil else {
            // The pool lends a worker to one call at a time, so this cannot happen; if it did, the newcomer fails
            // rather than the host.
            continuation.resume(throwing: ProtocolError("two receivers on one worker channel"))
            return
        }
        waiter = (id, continuation)
    }

    /// Ends the wait `id` with `CancellationError`: now if it waits, or as soon as it arrives.
    func cancel(_ id: UInt64) {
        guard let waiter, waiter.id == id else {
            cancelledWait = id
            return
        }
        self.waiter = nil
        waiter.continuation.resume(throwing: CancellationError())
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        if let waiter {
            self.waiter = nil
            waiter.continuation.resume(returning: frame)
        } else {
            frames.append(frame)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A protocol violation: nothing after it can be trusted.
        finish(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(nil)
        context.fireChannelInactive()
    }

    func read(context: ChannelHandlerContext) {
        if frames.count >= Self.highWatermark {
            readPending = true
        } else {
            context.read()
        }
    }

    private func resumeReadingIfDrained() {
        guard readPending, frames.count <= Self.lowWatermark, let context else { return }
        readPending = false
        context.read()
    }

    private func finish(_ error: (any Error)?) {
        guard !closed else { return }
        closed = true
        failure = error
        guard let waiter else { return }
        self.waiter = nil
        // A waiter exists only while no frame is buffered.
        if let error {
            waiter.continuation.resume(throwing: error)
        } else {
            waiter.continuation.resume(returning: nil)
        }
    }
}
