import Logging
import Synchronization
import VergeCore
import VergeUsage

/// Whether the host can bill the calls it serves. A usage record that cannot be committed (disk full, database
/// error) turns the host unhealthy: `/_verge/health` answers 503, so the gateway routes away, and every call is
/// refused with 503 `ledger_unavailable` instead of being served unbilled. The host turns healthy again once a probe
/// transaction commits; probes run when a health check or a call arrives, at most one per ``probeInterval``.
final class LedgerHealth: Sendable {
    private struct State {
        var failure: String?
        var lastProbe: ContinuousClock.Instant?
        var probing = false
    }

    static let probeInterval: Duration = .milliseconds(200)

    private let ledger: HostLedger
    private let logger: Logger
    private let state = Mutex(State())

    init(ledger: HostLedger, logger: Logger) {
        self.ledger = ledger
        self.logger = logger
    }

    /// Called when a record could not be committed.
    func commitFailed(_ error: any Error) {
        let wasHealthy = state.withLock { state in
            defer { state.failure = "\(error)" }
            return state.failure == nil
        }
        if wasHealthy {
            logger.error(
                "usage ledger cannot commit: the host refuses calls and reports itself unhealthy until it can",
                metadata: ["error": "\(error)"])
        }
    }

    /// Nil when the ledger commits; otherwise why not. When unhealthy, probes the ledger first (rate-limited).
    func problem() async -> String? {
        let shouldProbe = state.withLock { state -> Bool in
            guard state.failure != nil, !state.probing else { return false }
            if let last = state.lastProbe, ContinuousClock.now - last < Self.probeInterval { return false }
            state.probing = true
            state.lastProbe = .now
            return true
        }
        if shouldProbe {
            var recovered = false
            do {
                try await ledger.probe()
                recovered = true
            } catch {
                state.withLock { $0.failure = "\(error)" }
            }
            state.withLock { state in
                state.probing = false
                if recovered { state.failure = nil }
            }
            if recovered { logger.info("usage ledger commits again: the host takes calls") }
        }
        return state.withLock { $0.failure }
    }

    var isHealthy: Bool { state.withLock { $0.failure == nil } }
}
