import Testing

@testable import VergeHost

@Suite struct WorkerLifecycleTests {
    @Test func aWorkerGoesThroughEveryStateInOrder() {
        var worker = WorkerLifecycle()
        #expect(worker.state == .starting)
        let r1 = worker.becameReady(generation: 1)
        #expect(r1)
        #expect(worker.state == .ready(generation: 1))
        let r2 = worker.assign()
        #expect(r2)
        #expect(worker.state == .busy)
        let r3 = worker.finish(generation: 2)
        #expect(r3)
        #expect(worker.state == .ready(generation: 2))
        let r4 = worker.drain()
        #expect(r4 == .ready(generation: 2))
        #expect(worker.state == .draining)
        let r5 = worker.exit()
        #expect(r5 == .draining)
        #expect(worker.state == .exited)
    }

    @Test func aCallWaitingForAStartingWorkerTakesItDirectly() {
        var worker = WorkerLifecycle()
        let r6 = worker.assign()
        #expect(r6)
        #expect(worker.state == .busy)
    }

    @Test func lateAndDuplicateEventsAreRefused() {
        var worker = WorkerLifecycle()
        let r7 = worker.finish(generation: 1)
        #expect(!r7, "not busy")
        let r8 = worker.idleExpired(generation: 1)
        #expect(!r8, "not ready")
        let r9 = worker.becameReady(generation: 1)
        #expect(r9)
        let r10 = worker.becameReady(generation: 2)
        #expect(!r10, "ready twice")
        let r11 = worker.assign()
        #expect(r11)
        let r12 = worker.assign()
        #expect(!r12, "busy twice")
        let r13 = worker.finish(generation: 3)
        #expect(r13)
        let r14 = worker.idleExpired(generation: 1)
        #expect(!r14, "a stale idle timer")
        #expect(worker.state == .ready(generation: 3))
        let r15 = worker.idleExpired(generation: 3)
        #expect(r15)
        #expect(worker.state == .draining)
        let r16 = worker.drain()
        #expect(r16 == nil, "already draining")
        let r17 = worker.assign()
        #expect(!r17, "a draining worker takes no call")
        let r18 = worker.becameReady(generation: 4)
        #expect(!r18)
    }

    @Test(arguments: [0, 1, 2, 3])
    func anyStateCanEndInExitedAndNothingLeavesIt(steps: Int) {
        var worker = WorkerLifecycle()
        if steps > 0 { _ = worker.becameReady(generation: 1) }
        if steps > 1 { _ = worker.assign() }
        if steps > 2 { _ = worker.drain() }
        let before = worker.state
        let r19 = worker.exit()
        #expect(r19 == before)
        let r20 = worker.exit()
        #expect(r20 == nil)
        let r21 = worker.becameReady(generation: 9)
        #expect(!r21)
        let r22 = worker.assign()
        #expect(!r22)
        let r23 = worker.finish(generation: 9)
        #expect(!r23)
        let r24 = worker.drain()
        #expect(r24 == nil)
        #expect(worker.state == .exited)
    }
}
