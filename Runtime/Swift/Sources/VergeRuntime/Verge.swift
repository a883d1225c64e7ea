import VergeProtocol

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A function handler: one request in, one response out.
public typealias Handler = @Sendable (Request, Context) async throws -> Response

/// Entry point of a Swift function:
///
/// ```swift
/// import VergeRuntime
///
/// @main struct Hello {
///     static func main() {
///         Verge.serve { request, context in
///             Response(text: "hello from \(context.host.name)\n")
///         }
///     }
/// }
/// ```
public enum Verge {
    /// Announces readiness to the host and serves invocations until the host closes the channel.
    /// Never returns: the process exits 0 when the host is gone and 70 on a protocol error.
    public static func run(_ handler: @escaping Handler) async -> Never {
        serve(handler)
    }

    /// The same as ``run(_:)`` from a synchronous `main`: preferred, because a worker that never enters Swift's
    /// cooperative thread pool runs each call on its one thread, with no thread hand-offs.
    ///
    /// ```swift
    /// @main struct Hello {
    ///     static func main() {
    ///         Verge.serve { request, context in Response(text: "hello from \(context.host.name)\n") }
    ///     }
    /// }
    /// ```
    public static func serve(_ handler: @escaping Handler) -> Never {
        let fd = Int32(ProcessInfo.processInfo.environment[WorkerProtocol.channelFDVariable] ?? "3") ?? 3
        closeDescriptors(above: max(fd, 2))
        var channel = Channel(fd: fd)
        let executor = InlineExecutor()
        do {
            try channel.write(.json(.ready, Ready(runtime: "swift")))
            while let invocation = try receiveInvocation(&channel) {
                let (request, context) = invocation
                do {
                    let response = try executor.run { try await handler(request, context) }
                    flushLogs()
                    try send(response, on: channel)
                } catch let error as ProtocolError {
                    throw error
                } catch {
                    flushLogs()
                    let report = FailureReport(type: String(reflecting: type(of: error)), message: "\(error)")
                    try channel.write(.json(.invocationError, report))
                }
            }
            exit(0)
        } catch {
            flushLogs()
            let message = Array("verge runtime: \(error)\n".utf8)
            _ = message.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
            exit(70)
        }
    }

    /// Hands what the function printed to the host before the invocation completes: stdout is a pipe, so stdio
    /// buffers it, and a worker killed at its deadline would otherwise lose it.
    private static func flushLogs() {
        fflush(nil)
    }

    private static func receiveInvocation(_ channel: inout Channel) throws -> (Request, Context)? {
        guard let first = try channel.read() else { return nil }
        guard first.kind == .requestHead else { throw ProtocolError("expected requestHead, got \(first.kind)") }
        let head = try RequestHead(json: first.payload)
        var body: [UInt8] = []
        loop: while true {
            guard let frame = try channel.read() else { throw ProtocolError("channel closed inside a request") }
            switch frame.kind {
            case .requestBody: body.append(contentsOf: frame.payload)
            case .requestEnd: break loop
            default: throw ProtocolError("unexpected \(frame.kind) inside a request")
            }
        }
        let request = Request(
            method: head.method,
            path: head.path,
            query: head.query,
            headers: head.headers.compactMap { $0.count == 2 ? (name: $0[0], value: $0[1]) : nil },
            body: body
        )
        let context = Context(
            invocationID: head.invocationID,
            deadline: Date(timeIntervalSince1970: Double(head.deadlineMs) / 1000),
            client: head.client,
            host: head.host,
            function: head.function
        )
        return (request, context)
    }

    private static func send(_ response: Response, on channel: borrowing Channel) throws {
        let head = ResponseHead(
            status: response.status, headers: response.headers.map { [$0.name, $0.value] },
            bodyLength: response.body.count <= WorkerProtocol.maxAnnouncedBodyLength ? response.body.count : nil)
        // Head, body and end in one write: the host reads the whole answer at once (a body over 1 MiB is not
        // announced, and the host streams it).
        var out = Frame(.responseHead, payload: head.jsonBytes()).encoded()
        Channel.appendBody(.responseBody, response.body, to: &out)
        out.append(contentsOf: Frame(.responseEnd).encoded())
        try channel.write(bytes: out)
    }
}

/// Closes every descriptor above `lowest` that survived `exec` (it has no close-on-exec flag): a worker owns its
/// stdio and its channel, nothing else the host had. Descriptors the Swift runtime opened for itself (its event
/// loop, timers) are close-on-exec and stay open.
private func closeDescriptors(above lowest: Int32) {
    #if os(Linux)
    guard let directory = opendir("/proc/self/fd") else { return }
    var descriptors: [Int32] = []
    let own = dirfd(directory)
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        if let fd = Int32(name), fd > lowest, fd != own, fcntl(fd, F_GETFD) & FD_CLOEXEC == 0 {
            descriptors.append(fd)
        }
    }
    closedir(directory)
    for fd in descriptors { close(fd) }
    #endif
}
