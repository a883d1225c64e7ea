import Foundation
import HTTPTypes
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import VergeBundle
import VergeCore
import VergeHTTP
import VergeProtocol
import VergeSandbox
import VergeUsage

/// Runs one HTTP request as one invocation of a function: takes a worker from the pool, streams the request to
/// it and its response back, and writes exactly one usage record, whatever happens — before the response's last
/// byte is sent, so a response the client received always has its record.
struct InvocationHandler: Sendable {
    let host: HostInfo
    let configuration: HostConfiguration
    let ledger: HostLedger
    let logger: Logger
    let ledgerSignal: @Sendable () -> Void
    let ledgerHealth: LedgerHealth

    /// Runs the call on `pool`. `current` returns the pool serving the function now: when a deploy replaces
    /// the version while the call waits for a worker, the call moves to the new version's pool instead of failing.
    ///
    /// A call whose record cannot be committed gets no response of its function: it is answered with the error
    /// `commit` names when nothing of the response has gone out, and its connection is closed when the head has.
    func handle(
        _ request: HostRequest, writer: HostResponseWriter, pool: FunctionPool, eventLoop: any EventLoop,
        client: ClientLocation?,
        current: () -> FunctionPool? = { nil }
    ) async throws {
        do {
            try await serve(
                request, writer: writer, pool: pool, eventLoop: eventLoop, client: client, current: current)
        } catch let unrecorded as UnrecordedCall {
            writer.writeError(unrecorded.error, fields: unrecorded.fields)
            throw unrecorded.error
        }
    }

    /// A call whose usage record was not committed.
    private struct UnrecordedCall: Error {
        var error: VergeError
        var fields: HTTPFields
    }

    private func serve(
        _ request: HostRequest, writer: HostResponseWriter, pool: FunctionPool, eventLoop: any EventLoop,
        client: ClientLocation?,
        current: () -> FunctionPool?
    ) async throws {
        var pool = pool
        let clock = ContinuousClock()
        let arrival = clock.now
        let deployment = pool.deployment
        var call = CallRecord(
            invocationID: Self.newInvocationID(), deployment: deployment, host: host.name,
            region: configuration.region, startTimeUs: WallClock.microseconds()
        )
        var timeout = Duration.milliseconds(deployment.manifest.timeoutMs)

        if let length = request.header("content-length").flatMap(Int.init), length > configuration.maxRequestBodyBytes {
            call.finish(.rejected, httpStatus: 413, clock: clock, arrival: arrival)
            call.reason = "request_too_large"
            try await commit(call, metrics: pool.metrics, functionRan: false)
            writer.writeError(
                VergeError(.payloadTooLarge, "request body exceeds \(configuration.maxRequestBodyBytes) bytes"),
                fields: call.responseHeaders(host: host.name)
            )
            return
        }

        // 1. A worker: warm at once, or cold after it starts.
        var lease: Lease?
        do {
            while lease == nil {
                do {
                    lease = try await pool.acquire(queueTimeout: timeout, eventLoop: eventLoop)
                } catch let error as VergeError where error.code == .shuttingDown {
                    guard let next = current(), next !== pool else { throw error }
                    pool = next
                }
            }
        } catch {
            let error = (error as? VergeError) ?? VergeError(.internalError, "\(error)")
            let status: InvocationStatus = error.code == .initFailed ? .initError : .rejected
            call.finish(status, httpStatus: error.code.status, clock: clock, arrival: arrival)
            call.queue = clock.now - arrival
            if status == .rejected { call.reason = Self.rejectionReason(error) }
            callLogger(call).info("call not served", metadata: ["error": "\(error)"])
            try await commit(call, metrics: pool.metrics, functionRan: false)
            var headers = call.responseHeaders(host: host.name)
            if [.overloaded, .tooManyRequests, .shuttingDown].contains(error.code) { headers[.retryAfter] = "1" }
            headers[HTTPField.Name(VergeHeaders.rejected)!] = error.code.rawValue
            writer.writeError(error, fields: headers)
            return
        }
        guard let lease else { return }
        call.served(by: pool.deployment)
        timeout = .milliseconds(pool.deployment.manifest.timeoutMs)
        call.coldStart = lease.coldStart
        if lease.coldStart {
            call.initDuration = lease.worker.initDuration
            call.queue = max(.zero, lease.waited - lease.worker.initDuration)
        } else {
            call.queue = lease.waited
        }
        let worker = lease.worker
        worker.begin(invocationID: call.invocationID, deadline: timeout)
        let dispatched = clock.now

        // 2. The request, streamed in frames.
        var outcome: WorkerOutcome
        do {
            outcome = try await sendRequest(
                request, writer: writer, to: worker, call: &call, client: client, timeout: timeout)
        } catch {
            outcome = .broken("\(error)")
        }

        // 3. The response head, or what went wrong instead. A worker with the whole body at hand says how long it
        // is and sends it right behind the head: it is read now, so the response goes out in one write.
        if case .sent = outcome {
            outcome = await receiveHead(from: worker)
        }
        var wholeBody: ByteBuffer?
        if case .head(let head) = outcome, let length = head.bodyLength {
            switch await receiveWholeBody(from: worker, length: length) {
            case .success(let body): wholeBody = body
            case .failure(let failure): outcome = failure.outcome
            }
        }
        call.exec = clock.now - dispatched

        guard case .head(let head) = outcome else {
            let timedOut = worker.end()
            call.measure(worker)
            let limit = await worker.limitThatEndedTheCall()
            let (status, error) =
                limit.map { Self.limitFailure($0, manifest: pool.deployment.manifest) }
                ?? Self.failure(outcome, timedOut: timedOut, timeout: timeout)
            pool.release(lease, reusable: !timedOut && limit == nil && status == .functionError)
            call.limit = limit?.rawValue
            if status == .rejected { call.reason = Self.rejectionReason(outcome) }
            call.finish(status, httpStatus: error.code.status, clock: clock, arrival: arrival)
            callLogger(call).info("call failed", metadata: ["error": "\(error)"])
            try await commit(call, metrics: pool.metrics)
            writer.writeError(error, fields: call.responseHeaders(host: host.name))
            return
        }

        // 4. The response: head, then body frames as they come, then the usage record, then the end. A head HTTP
        // cannot carry fails this call alone (502) and stops the worker; a body HTTP forbids is read and dropped.
        var accepted: ResponseHeadPolicy.Accepted
        switch ResponseHeadPolicy().check(
            status: head.status, headers: head.headers, method: request.method,
            platformFields: call.responseHeaders(host: host.name)
        ) {
        case .success(let head):
            accepted = head
        case .failure(let rejected):
            // The worker is stopped rather than drained: whatever else it would send is never read or waited for.
            _ = worker.end()
            call.measure(worker)
            call.exec = clock.now - dispatched
            pool.release(lease, reusable: false)
            call.finish(
                .functionError, httpStatus: VergeError.Code.invalidResponse.status, clock: clock, arrival: arrival)
            callLogger(call).info("function response rejected", metadata: ["reason": "\(rejected)"])
            try await commit(call, metrics: pool.metrics)
            writer.writeError(
                VergeError(.invalidResponse, "the function's response cannot be sent: \(rejected)"),
                fields: call.responseHeaders(host: host.name)
            )
            return
        }
        if !accepted.dropped.isEmpty, logger.logLevel <= .debug {
            callLogger(call).debug("response headers dropped", metadata: ["headers": "\(accepted.dropped)"])
        }
        let httpStatus = accepted.status
        if var body = wholeBody {
            // The whole answer is here: its record first, then head, body and end in one write.
            _ = worker.end()
            call.measure(worker)
            pool.release(lease, reusable: true)
            if accepted.bodyAllowed {
                call.responseBytes = Int64(body.readableBytes)
                accepted.fields[.contentLength] = String(body.readableBytes)
            } else {
                logDroppedBody(body.readableBytes, status: httpStatus, method: request.method, call: call)
                body.clear()
            }
            call.finish(.ok, httpStatus: httpStatus, clock: clock, arrival: arrival)
            try await commit(call, metrics: pool.metrics)
            writer.write(status: httpStatus, fields: accepted.fields, body: body)
            return
        }
        writer.writeHead(status: httpStatus, fields: accepted.fields)
        // Body parts go to the client as they come, until the client stops taking them.
        var clientReading = true
        var droppedBytes = 0
        var ending: WorkerOutcome = .ended
        while true {
            let frame: WireFrame?
            do { frame = try await worker.receive() } catch {
                ending = .broken("\(error)")
                break
            }
            guard let frame else {
                ending = .exited
                break
            }
            switch frame.kind {
            case .responseBody:
                guard accepted.bodyAllowed else {
                    droppedBytes += frame.payload.readableBytes
                    continue
                }
                call.responseBytes += Int64(frame.payload.readableBytes)
                if clientReading {
                    do { try await writer.writeBody(frame.payload) } catch { clientReading = false }
                }
                continue
            case .responseEnd:
                ending = .ended
            case .invocationError:
                ending = .failed(frame.failureReport)
            default:
                ending = .broken("unexpected \(frame.kind) inside a response")
            }
            break
        }
        let timedOut = worker.end()
        call.measure(worker)
        call.exec = clock.now - dispatched
        logDroppedBody(droppedBytes, status: httpStatus, method: request.method, call: call)
        var status: InvocationStatus
        switch ending {
        case .ended: status = .ok
        case .failed: status = .functionError
        default: status = timedOut ? .timeout : .crashed
        }
        var limit: SandboxLimit?
        if status != .ok, let hit = await worker.limitThatEndedTheCall() {
            limit = hit
            status = .limitExceeded
            call.limit = hit.rawValue
        }
        pool.release(lease, reusable: !timedOut && limit == nil && (status == .ok || status == .functionError))
        call.finish(status, httpStatus: httpStatus, clock: clock, arrival: arrival)
        if status != .ok {
            callLogger(call).info("response failed after its head", metadata: ["outcome": "\(ending)"])
        }
        try await commit(call, metrics: pool.metrics)
        guard status == .ok else {
            // The head is out with a success status; the only honest signal left is to abort the connection.
            throw VergeError(.workerCrashed, "response aborted: \(ending)")
        }
        writer.finish()
    }

    // MARK: Steps

    private enum WorkerOutcome: CustomStringConvertible {
        case sent
        case head(ResponseHead)
        case failed(FailureReport)
        case exited
        case broken(String)
        case tooLarge
        /// The client's request body broke off: the client's doing, not the function's.
        case clientAborted
        case ended

        var description: String {
            switch self {
            case .sent: "sent"
            case .head: "head"
            case .failed(let report): "function error \(report.type): \(report.message)"
            case .exited: "worker exited"
            case .broken(let reason): "protocol error: \(reason)"
            case .tooLarge: "request too large"
            case .clientAborted: "the client broke off its request body"
            case .ended: "ended"
            }
        }
    }

    private func sendRequest(
        _ request: HostRequest, writer: HostResponseWriter, to worker: WorkerProcess, call: inout CallRecord,
        client: ClientLocation?, timeout: Duration
    ) async throws -> WorkerOutcome {
        let path = request.uri.path.isEmpty ? "/" : request.uri.path
        let head = RequestHead(
            invocationID: call.invocationID,
            method: request.head.method.rawValue,
            path: path,
            query: request.uri.query ?? "",
            headers: request.functionFields,
            deadlineMs: WallClock.milliseconds() + timeout.milliseconds,
            client: client,
            host: host,
            function: FunctionInfo(tenant: call.tenant, name: call.function, version: call.version)
        )
        // HTTP/1.1 framing: without Content-Length and Transfer-Encoding a request has no body. Then head and end
        // go to the worker in one write.
        let headFrame = WireFrame(.requestHead, payload: ByteBuffer(bytes: head.jsonBytes()))
        if !request.declaresBody {
            try await worker.send(contentsOf: [headFrame, WireFrame(.requestEnd)])
            return .sent
        }
        try await worker.send(headFrame)
        // The worker waits for the body: a client that does not send it in time does not hold the call longer.
        writer.limitBody(to: timeout)
        var body = request.body.makeAsyncIterator()
        while true {
            let next: ByteBuffer?
            do { next = try await body.next() } catch { return .clientAborted }
            guard var chunk = next else { break }
            call.requestBytes += Int64(chunk.readableBytes)
            if call.requestBytes > configuration.maxRequestBodyBytes { return .tooLarge }
            while chunk.readableBytes > 0 {
                let slice = chunk.readSlice(length: min(chunk.readableBytes, WorkerProtocol.preferredChunkSize))!
                try await worker.send(WireFrame(.requestBody, payload: slice))
            }
        }
        try await worker.send(WireFrame(.requestEnd))
        return .sent
    }

    /// The host's logger with the call's id, function and tenant: made only when a call has something to log.
    private func callLogger(_ call: CallRecord) -> Logger {
        var logger = self.logger
        logger[metadataKey: "request.id"] = "\(call.invocationID)"
        logger[metadataKey: "function.name"] = "\(call.function)"
        logger[metadataKey: "function.tenant"] = "\(call.tenant)"
        return logger
    }

    /// Logs that a body HTTP forbids here (HEAD, 204, 205, 304) was read and not sent; the bytes themselves never.
    private func logDroppedBody(_ bytes: Int, status: Int, method: HTTPMethod, call: CallRecord) {
        guard bytes > 0 else { return }
        callLogger(call).info(
            "response body dropped: HTTP allows none here",
            metadata: ["http.status": "\(status)", "http.method": "\(method)", "bytes": "\(bytes)"])
    }

    /// Why a whole body could not be read.
    private struct WholeBodyFailure: Error {
        var outcome: WorkerOutcome
    }

    /// The most body bytes a worker may announce for a response sent in one piece; a longer body is streamed.
    static let wholeBodyLimit = WorkerProtocol.maxAnnouncedBodyLength

    /// Reads the `length` body bytes a worker announced and the `response_end` behind them. More or fewer bytes, or
    /// a length over ``wholeBodyLimit``, is a protocol error: nothing has reached the client yet, so the call fails
    /// cleanly.
    private func receiveWholeBody(
        from worker: WorkerProcess, length: Int
    ) async -> Result<ByteBuffer, WholeBodyFailure> {
        guard (0...Self.wholeBodyLimit).contains(length) else {
            return .failure(.init(outcome: .broken("announced a body of \(length) bytes")))
        }
        var body: ByteBuffer?
        while true {
            let frame: WireFrame?
            do { frame = try await worker.receive() } catch {
                return .failure(.init(outcome: .broken("\(error)")))
            }
            guard var frame else { return .failure(.init(outcome: .exited)) }
            switch frame.kind {
            case .responseBody:
                let received = (body?.readableBytes ?? 0) + frame.payload.readableBytes
                guard received <= length else {
                    return .failure(.init(outcome: .broken("sent more than the \(length) body bytes it announced")))
                }
                if body == nil {
                    // Usually the whole body is one frame: keep its slice instead of copying it.
                    body = frame.payload
                } else {
                    body!.writeBuffer(&frame.payload)
                }
            case .responseEnd:
                let received = body?.readableBytes ?? 0
                guard received == length else {
                    return .failure(
                        .init(outcome: .broken("sent \(received) body bytes, having announced \(length)")))
                }
                return .success(body ?? ByteBuffer())
            case .invocationError:
                return .failure(.init(outcome: .failed(frame.failureReport)))
            default:
                return .failure(.init(outcome: .broken("unexpected \(frame.kind) inside a response")))
            }
        }
    }

    private func receiveHead(from worker: WorkerProcess) async -> WorkerOutcome {
        do {
            guard let frame = try await worker.receive() else { return .exited }
            switch frame.kind {
            case .responseHead:
                return .head(try frame.responseHead())
            case .invocationError:
                return .failed(try frame.decode(FailureReport.self))
            default:
                return .broken("expected a response head, got \(frame.kind)")
            }
        } catch {
            return .broken("\(error)")
        }
    }

    /// A call a sandbox limit ended: 507 for memory, processes and file size, 504 for CPU time; the body names
    /// the limit.
    static func limitFailure(_ limit: SandboxLimit, manifest: Manifest) -> (InvocationStatus, VergeError) {
        let message: String
        switch limit {
        case .memory: message = "the function exceeded its memory limit of \(manifest.memoryMB) MiB"
        case .cpu:
            message = "the function used more than its CPU time limit of \(manifest.limits.cpuMs ?? 0) ms in one call"
        case .processes: message = "the function reached its limit on processes and threads"
        case .fileSize: message = "the function wrote a file larger than its file size limit"
        }
        return (
            .limitExceeded,
            VergeError(limit == .cpu ? .cpuLimitExceeded : .limitExceeded, message, limit: limit.rawValue)
        )
    }

    private static func failure(
        _ outcome: WorkerOutcome, timedOut: Bool, timeout: Duration
    ) -> (InvocationStatus, VergeError) {
        // A body the client never finished is the client's doing, even when the function's timeout passed while the
        // call waited for it.
        if case .clientAborted = outcome {
            return (.rejected, VergeError(.badRequest, "the request body broke off before its end"))
        }
        if timedOut {
            return (.timeout, VergeError(.timeout, "the function did not answer within its timeout of \(timeout)"))
        }
        switch outcome {
        case .failed(let report):
            return (.functionError, VergeError(.functionError, "\(report.type): \(report.message)"))
        case .tooLarge:
            return (.rejected, VergeError(.payloadTooLarge, "request body exceeds the limit"))
        case .broken(let reason):
            return (.crashed, VergeError(.workerCrashed, "the worker broke the protocol: \(reason)"))
        default:
            return (.crashed, VergeError(.workerCrashed, "the worker exited during the call"))
        }
    }

    /// Why a call was refused before it reached a worker, for its usage record.
    static func rejectionReason(_ error: VergeError) -> String {
        switch error.code {
        case .tooManyRequests: "function_concurrency"
        case .shuttingDown: "shutting_down"
        case .payloadTooLarge: "request_too_large"
        case .initFailed: "function_not_ready"
        default: "capacity"
        }
    }

    private static func rejectionReason(_ outcome: WorkerOutcome) -> String {
        switch outcome {
        case .clientAborted: "client_aborted"
        default: "request_too_large"
        }
    }

    /// Commits the call's record. When it cannot be, the call gets no answer of its function: a call that never
    /// reached one is refused as the host's own `503 ledger_unavailable` (the gateway tries another host), one whose
    /// function ran gets `500 internal_error` (not retried elsewhere).
    private func commit(_ call: CallRecord, metrics: FunctionMetrics, functionRan: Bool = true) async throws {
        let record = call.usageRecord
        #if !VERGE_BENCH_NO_LEDGER
        do {
            try await ledger.record(record)
        } catch {
            logger.error(
                "usage record not committed", metadata: ["request.id": "\(record.invocationID)", "error": "\(error)"])
            if (error as? VergeError)?.code != .badRequest { ledgerHealth.commitFailed(error) }
            var fields = call.responseHeaders(host: host.name)
            guard functionRan else {
                fields[.retryAfter] = "1"
                throw UnrecordedCall(
                    error: VergeError(
                        .ledgerUnavailable, "this host cannot record usage right now; retry on another host"),
                    fields: fields)
            }
            throw UnrecordedCall(
                error: VergeError(
                    .internalError, "this call's usage record could not be committed, so its response is withheld"),
                fields: fields)
        }
        #endif
        ledgerSignal()
        metrics.record(record)
    }

    /// A time-ordered, unique invocation id: 12 hex digits of milliseconds, then 20 random hex digits (80 bits from
    /// the system's generator).
    static func newInvocationID() -> String {
        let millis = UInt64(WallClock.milliseconds())
        // One getentropy(3), a single getrandom(2), for both words (the standard generator makes one per word).
        var words: (UInt64, UInt64) = (0, 0)
        let filled = withUnsafeMutableBytes(of: &words) { getentropy($0.baseAddress, $0.count) == 0 }
        if !filled {
            // Never an id from less randomness than promised.
            var random = SystemRandomNumberGenerator()
            words = (random.next(), random.next())
        }
        let (high, low) = words
        return String(unsafeUninitializedCapacity: 32) { buffer in
            let digits: StaticString = "0123456789abcdef"
            func put(_ value: UInt64, _ count: Int, at start: Int) {
                for index in 0..<count {
                    let nibble = Int((value >> UInt64(4 * (count - 1 - index))) & 0xF)
                    buffer[start + index] = digits.utf8Start[nibble]
                }
            }
            put(millis, 12, at: 0)
            put(high, 16, at: 12)
            put(low, 4, at: 28)
            return 32
        }
    }
}
