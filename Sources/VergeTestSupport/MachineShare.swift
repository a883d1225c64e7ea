import Foundation
import Testing

/// How much of the machine the test suites that run process trees (a cluster, a set of components, sandboxes) may
/// use at once.
///
/// Swift Testing starts every suite at once. Two dozen suites each starting a control plane, a gateway and three
/// hosts on a 2-core machine put 60 runnable threads on the run queue for the first minute: a worker's cold start
/// that takes 0.3 s alone then takes 10 s, and tests time out for reasons that say nothing about the code. A suite
/// with the ``Trait/cluster`` trait holds one share while it runs (its tests are serialized, so one cluster at a
/// time); a suite that measures latency (``Trait/wholeMachine``) holds every share, so what it measures is the code
/// and not its neighbours. Shares are handed out first come, first served, so a suite waiting for the whole machine
/// is not overtaken forever.
///
/// The wait happens in the suite's scope, outside any test's time limit. `VERGE_TEST_SHARES` sets the number of
/// shares (default: the number of cores plus one, at least 3: most of a cluster's time is spent waiting).
public actor MachineShare {
    public static let shared = MachineShare(shares: MachineShare.defaultShares)

    static var defaultShares: Int {
        if let text = ProcessInfo.processInfo.environment["VERGE_TEST_SHARES"], let shares = Int(text), shares > 0 {
            return shares
        }
        return max(3, ProcessInfo.processInfo.activeProcessorCount + 1)
    }

    public let shares: Int
    private var inUse = 0
    private var waiting: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []

    /// How many scopes wait for shares.
    public var waitingCount: Int { waiting.count }

    public init(shares: Int) {
        precondition(shares > 0)
        self.shares = shares
    }

    /// How many shares the current task already holds (scopes nest: a whole-machine suite that starts a cluster
    /// does not wait for itself; a scope never asks for more than the scope around it holds).
    @TaskLocal static var held = 0

    /// Runs `body` holding `count` shares (at most ``shares``), waiting for them first.
    public nonisolated func run<T: Sendable>(
        shares count: Int, _ body: @Sendable () async throws -> T
    ) async throws -> T {
        let count = min(count, shares)
        guard Self.held < count else { return try await body() }
        // Asking for more while holding some could deadlock two such scopes (each holds what the other waits for).
        precondition(Self.held == 0, "a scope holding \(Self.held) share(s) asks for \(count): take the most first")
        await acquire(count)
        do {
            let result = try await Self.$held.withValue(count) { try await body() }
            await release(count)
            return result
        } catch {
            await release(count)
            throw error
        }
    }

    private func acquire(_ count: Int) async {
        if waiting.isEmpty, inUse + count <= shares {
            inUse += count
            return
        }
        await withCheckedContinuation { waiting.append((count, $0)) }
    }

    private func release(_ count: Int) {
        inUse -= count
        while let first = waiting.first, inUse + first.count <= shares {
            waiting.removeFirst()
            inUse += first.count
            first.continuation.resume()
        }
    }
}

/// A suite trait that runs the suite holding a share of the machine (see ``MachineShare``).
public struct MachineShareTrait: SuiteTrait, TestScoping {
    /// Every share: nothing else that holds one runs meanwhile.
    public let wholeMachine: Bool

    public var isRecursive: Bool { false }

    public func scopeProvider(for test: Test, testCase: Test.Case?) -> MachineShareTrait? {
        test.isSuite && testCase == nil ? self : nil
    }

    public func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        let share = MachineShare.shared
        try await share.run(shares: wholeMachine ? share.shares : 1, function)
    }
}

extension Trait where Self == MachineShareTrait {
    /// The suite starts process trees (clusters, components, sandboxes): it holds one share of the machine while
    /// it runs. Its tests should be `.serialized`.
    public static var cluster: Self { MachineShareTrait(wholeMachine: false) }

    /// The suite measures latency or load: it runs alone among the suites that hold a share.
    public static var wholeMachine: Self { MachineShareTrait(wholeMachine: true) }
}
