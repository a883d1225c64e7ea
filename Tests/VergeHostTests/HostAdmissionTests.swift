import Synchronization
import Testing

@testable import VergeHost

/// `HostAdmission` hands each decision to the pool whose worker it concerns, and only when the caller runs the
/// effects (after releasing its own lock).
@Suite struct HostAdmissionTests {
    final class RecordingPool: AdmissionClient {
        let events = Mutex<[String]>([])
        func admissionGranted(worker: Int) { events.withLock { $0.append("grant \(worker)") } }
        func admissionReclaims(worker: Int) { events.withLock { $0.append("reclaim \(worker)") } }
        var recorded: [String] { events.withLock { $0 } }
    }

    static let a = FunctionKey(tenant: "t", name: "a")
    static let b = FunctionKey(tenant: "t", name: "b")

    @Test func grantsAndReclaimsReachTheRightPoolAndWorkerWhenRun() {
        let admission = HostAdmission(capacity: .init(workers: 1, memoryMB: 1024))
        let poolA = RecordingPool()
        let poolB = RecordingPool()
        let first = admission.request(for: poolA, worker: 7, function: Self.a, memoryMB: 128, background: false)
        #expect(first.decision == .granted)
        #expect(first.effects.isEmpty)
        let second = admission.request(for: poolB, worker: 3, function: Self.b, memoryMB: 128, background: false)
        #expect(second.decision == .queued)
        #expect(admission.usage == .init(workers: 1, memoryMB: 128, queued: 1))

        // A's worker goes idle while B waits: it is reclaimed — once the effects run, not before.
        let reclaim = admission.idle(first.slot)
        #expect(poolA.recorded.isEmpty)
        reclaim.run()
        #expect(poolA.recorded == ["reclaim 7"])
        #expect(admission.use(first.slot) == false)

        let grant = admission.release(first.slot)
        #expect(poolB.recorded.isEmpty)
        grant.run()
        #expect(poolB.recorded == ["grant 3"])
        #expect(poolA.recorded == ["reclaim 7"])
        #expect(admission.usage == .init(workers: 1, memoryMB: 128, queued: 0))
    }

    @Test func aWithdrawnRequestIsForgottenAndAGrantedOneCannotBeWithdrawn() {
        let admission = HostAdmission(capacity: .init(workers: 1, memoryMB: 1024))
        let pool = RecordingPool()
        let held = admission.request(for: pool, worker: 1, function: Self.a, memoryMB: 64, background: false)
        let waiting = admission.request(for: pool, worker: 2, function: Self.b, memoryMB: 64, background: false)
        #expect(admission.cancel(waiting.slot)?.isEmpty == true)
        #expect(admission.cancel(held.slot) == nil, "a granted slot is released, not withdrawn")
        admission.release(held.slot).run()
        #expect(pool.recorded.isEmpty, "the withdrawn request got nothing")
        #expect(admission.usage == .init(workers: 0, memoryMB: 0, queued: 0))
    }

    @Test func refusedRequestsHoldNothing() {
        let admission = HostAdmission(capacity: .init(workers: 1, memoryMB: 256))
        let pool = RecordingPool()
        let big = admission.request(for: pool, worker: 1, function: Self.a, memoryMB: 512, background: false)
        #expect(big.decision == .refused(.exceedsCapacity))
        _ = admission.request(for: pool, worker: 2, function: Self.a, memoryMB: 128, background: false)
        let spare = admission.request(for: pool, worker: 3, function: Self.b, memoryMB: 128, background: true)
        #expect(spare.decision == .refused(.noRoom))
        #expect(admission.usage == .init(workers: 1, memoryMB: 128, queued: 0))
    }
}
