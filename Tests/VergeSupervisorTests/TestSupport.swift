import Logging
import Synchronization
import Testing
import VergeCore

@testable import VergeSupervisor

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

struct TimedOut: Error, CustomStringConvertible {
    var what: String
    var description: String { "timed out waiting for \(what)" }
}

/// Runs `body`, failing with ``TimedOut`` if it takes longer than `limit`. The wait ends at the deadline even when
/// `body` ignores cancellation or blocks (it is then abandoned), so a broken test fails instead of hanging.
func withDeadline<T: Sendable>(
    _ what: String,
    within limit: Duration = .seconds(10),
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let race = DeadlineRace<T>()
    return try await withCheckedThrowingContinuation { continuation in
        race.waiter.withLock { $0 = continuation }
        let work = Task {
            let result: Result<T, any Error>
            do { result = .success(try await body()) } catch { result = .failure(error) }
            race.waiter.withLock { $0.take() }?.resume(with: result)
            race.timeout.withLock { $0 }?.cancel()
        }
        let timeout = Task {
            try? await Task.sleep(for: limit)
            guard let continuation = race.waiter.withLock({ $0.take() }) else { return }
            work.cancel()
            continuation.resume(throwing: TimedOut(what: what))
        }
        race.timeout.withLock { $0 = timeout }
    }
}

private final class DeadlineRace<T: Sendable>: Sendable {
    let waiter = Mutex<CheckedContinuation<T, any Error>?>(nil)
    let timeout = Mutex<Task<Void, Never>?>(nil)
}

/// Collects the exits reported to `onExit`.
final class ExitRecorder: Sendable {
    private let stream: AsyncStream<ProcessExit>
    private let continuation: AsyncStream<ProcessExit>.Continuation
    private let count = Mutex(0)

    init() {
        (stream, continuation) = AsyncStream.makeStream(of: ProcessExit.self)
    }

    var onExit: @Sendable (ProcessExit) -> Void {
        { exit in
            self.count.withLock { $0 += 1 }
            self.continuation.yield(exit)
        }
    }

    var reported: Int { count.withLock { $0 } }

    /// The next reported exit, or ``TimedOut``.
    func next(within limit: Duration = .seconds(10)) async throws -> ProcessExit {
        let stream = self.stream
        return try await withDeadline("a process exit", within: limit) {
            var iterator = stream.makeAsyncIterator()
            guard let exit = await iterator.next() else { throw TimedOut(what: "a process exit") }
            return exit
        }
    }

    /// Waits until `n` exits were reported, returning them in order.
    func collect(_ n: Int, within limit: Duration = .seconds(20)) async throws -> [ProcessExit] {
        let stream = self.stream
        return try await withDeadline("\(n) process exits", within: limit) {
            var exits: [ProcessExit] = []
            for await exit in stream {
                exits.append(exit)
                if exits.count == n { break }
            }
            return exits
        }
    }
}

/// A loop and a supervisor for one test; the loop is shut down afterwards.
func withSupervisor<T>(_ body: (Supervisor, SupervisorLoop) async throws -> T) async throws -> T {
    let loop = try SupervisorLoop(name: "verge-test")
    defer { loop.shutdown() }
    let logger = Logger(label: "verge.supervisor.test") { _ in SwiftLogNoOpLogHandler() }
    return try await body(Supervisor(loop: loop, logger: logger), loop)
}

let testEnvironment = ["PATH": "/usr/bin:/bin"]

func shell(_ script: String, descriptors: [Int32?], environment: [String: String] = testEnvironment) -> ProcessSpec {
    ProcessSpec(
        executable: "/bin/sh",
        arguments: ["-c", script],
        environment: environment,
        workingDirectory: "/",
        fileDescriptors: descriptors
    )
}

/// Reads `fd` until end of file, or until `stop` says the data so far is enough; fails after `limit`.
func readAll(
    _ fd: Int32,
    within limit: Duration = .seconds(10),
    until stop: (String) -> Bool = { _ in false }
) throws -> String {
    let deadline = ContinuousClock.now.advanced(by: limit)
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let remaining = ContinuousClock.now.duration(to: deadline)
        guard remaining > .zero else { throw TimedOut(what: "data on fd \(fd)") }
        var pollfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&pollfd, 1, Int32(min(remaining.roundedUpMilliseconds, 60_000)))
        if ready < 0 && errno == EINTR { continue }
        guard ready > 0 else { continue }
        let n = read(fd, &buffer, buffer.count)
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { break }
        bytes += buffer[0..<n]
        if stop(String(decoding: bytes, as: UTF8.self)) { break }
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// Polls `condition` until it holds; fails after `limit`.
func eventually(
    within limit: Duration = .seconds(10),
    _ what: String,
    _ condition: () -> Bool
) async throws {
    let deadline = ContinuousClock.now.advanced(by: limit)
    while !condition() {
        guard ContinuousClock.now < deadline else { throw TimedOut(what: what) }
        try await Task.sleep(for: .milliseconds(10))
    }
}
