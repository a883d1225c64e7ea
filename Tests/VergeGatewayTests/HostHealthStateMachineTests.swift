import Testing
import VergeGateway

@Suite struct HostHealthStateMachineTests {
    @Test func startsHealthy() {
        let health = HostHealthStateMachine(unhealthyThreshold: 3)
        #expect(health.isHealthy)
        #expect(health.consecutiveFailures == 0)
    }

    @Test(arguments: [1, 2, 3, 5])
    func becomesUnhealthyAtTheThreshold(threshold: Int) {
        var health = HostHealthStateMachine(unhealthyThreshold: threshold)
        for _ in 1..<threshold {
            #expect(health.checkFailed() == .none)
            #expect(health.isHealthy)
        }
        #expect(health.checkFailed() == .becameUnhealthy)
        #expect(!health.isHealthy)
        #expect(health.consecutiveFailures == threshold)
        // Further failures change nothing.
        #expect(health.checkFailed() == .none)
        #expect(!health.isHealthy)
    }

    @Test func aSuccessResetsTheFailureCount() {
        var health = HostHealthStateMachine(unhealthyThreshold: 3)
        #expect(health.checkFailed() == .none)
        #expect(health.checkFailed() == .none)
        #expect(health.checkSucceeded() == .none)
        #expect(health.consecutiveFailures == 0)
        #expect(health.checkFailed() == .none)
        #expect(health.checkFailed() == .none)
        #expect(health.isHealthy)
        #expect(health.checkFailed() == .becameUnhealthy)
    }

    @Test(arguments: [1, 3])
    func recoversAfterOneSuccess(threshold: Int) {
        var health = HostHealthStateMachine(unhealthyThreshold: threshold)
        for _ in 0..<(threshold + 2) { _ = health.checkFailed() }
        #expect(!health.isHealthy)
        #expect(health.checkSucceeded() == .becameHealthy)
        #expect(health.isHealthy)
        #expect(health.consecutiveFailures == 0)
        #expect(health.checkSucceeded() == .none)
    }

    @Test func aFailedConnectionEjectsAtOnce() {
        var health = HostHealthStateMachine(unhealthyThreshold: 5)
        #expect(health.connectionFailed() == .becameUnhealthy)
        #expect(!health.isHealthy)
        #expect(health.consecutiveFailures == 5)
        #expect(health.connectionFailed() == .none)
        #expect(health.checkFailed() == .none)
        #expect(health.checkSucceeded() == .becameHealthy)
        #expect(health.isHealthy)
    }

    @Test func aFailedConnectionKeepsAHigherFailureCount() {
        var health = HostHealthStateMachine(unhealthyThreshold: 2)
        for _ in 0..<4 { _ = health.checkFailed() }
        #expect(health.connectionFailed() == .none)
        #expect(health.consecutiveFailures == 4)
    }

    @Test func aFailedConnectionAfterSomeFailedChecksEjects() {
        var health = HostHealthStateMachine(unhealthyThreshold: 3)
        #expect(health.checkFailed() == .none)
        #expect(health.connectionFailed() == .becameUnhealthy)
        #expect(health.consecutiveFailures == 3)
    }
}

@Suite struct HostHealthBackoffTests {
    let backoff = HostHealthStateMachine.Backoff(initial: .seconds(1), maximum: .seconds(8))

    @Test func delaysDoubleUpToTheMaximum() {
        #expect(backoff.delay(ejections: 0) == .zero)
        #expect(backoff.delay(ejections: 1) == .seconds(1))
        #expect(backoff.delay(ejections: 2) == .seconds(2))
        #expect(backoff.delay(ejections: 3) == .seconds(4))
        #expect(backoff.delay(ejections: 4) == .seconds(8))
        #expect(backoff.delay(ejections: 1000) == .seconds(8))
    }

    @Test func anEjectedHostReturnsOnlyAfterItsBackoff() {
        let start = ContinuousClock.now
        var health = HostHealthStateMachine(unhealthyThreshold: 2)
        #expect(health.connectionFailed(now: start, backoff: backoff) == .becameUnhealthy)
        #expect(health.checkSucceeded(now: start + .milliseconds(500), backoff: backoff) == .none)
        #expect(!health.isHealthy)
        #expect(health.checkSucceeded(now: start + .seconds(1), backoff: backoff) == .becameHealthy)
        // Ejected again at once: the second time it stays out twice as long.
        #expect(health.connectionFailed(now: start + .seconds(2), backoff: backoff) == .becameUnhealthy)
        #expect(health.ejections == 2)
        #expect(health.checkSucceeded(now: start + .milliseconds(3500), backoff: backoff) == .none)
        #expect(health.checkSucceeded(now: start + .seconds(4), backoff: backoff) == .becameHealthy)
        // Healthy for a whole maximum backoff: the count starts over.
        #expect(health.checkSucceeded(now: start + .seconds(13), backoff: backoff) == .none)
        #expect(health.ejections == 0)
        #expect(health.connectionFailed(now: start + .seconds(14), backoff: backoff) == .becameUnhealthy)
        #expect(health.returnsAt == start + .seconds(15))
    }

    @Test func theHostsOwnErrorsEjectAtTheThreshold() {
        let now = ContinuousClock.now
        var health = HostHealthStateMachine(unhealthyThreshold: 3)
        #expect(health.hostFailed(now: now, backoff: backoff) == .none)
        #expect(health.hostFailed(now: now, backoff: backoff) == .none)
        health.callSucceeded()
        #expect(health.consecutiveFailures == 0)
        for _ in 0..<2 { #expect(health.hostFailed(now: now, backoff: backoff) == .none) }
        #expect(health.hostFailed(now: now, backoff: backoff) == .becameUnhealthy)
        #expect(health.returnsAt == now + .seconds(1))
    }
}
