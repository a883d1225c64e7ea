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
