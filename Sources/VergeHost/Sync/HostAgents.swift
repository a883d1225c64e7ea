import Foundation
import Logging
import ServiceLifecycle
import VergeCore
import VergeUsage

/// Reports the host's status to the control plane and converges on the desired state it answers with:
/// fetches and verifies new bundles, swaps versions, retires removed functions. When the control plane is
/// unreachable the host keeps serving what it has.
struct SyncAgent: Service {
    let host: EdgeHost
    let client: ControlPlaneClient
    let interval: Duration
    let logger: Logger

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            var failures = 0
            while !Task.isCancelled {
                do {
                    let desired = try await client.sync(await host.status())
                    await host.converge(on: desired, client: client)
                    if failures > 0 { logger.info("control plane reachable again") }
                    failures = 0
                } catch is CancellationError {
                    return  // the host is stopping: not an outage
                } catch {
                    failures += 1
                    if failures == 1 || failures % 40 == 0 {
                        logger.info(
                            "control plane unreachable; serving cached functions", metadata: ["error": "\(error)"])
                    }
                }
                try await Task.sleep(for: failures == 0 ? interval : min(interval * (failures + 1), .seconds(5)))
            }
        }
    }
}

/// Ships committed usage records to the control plane, oldest first, and marks them shipped only once the
/// control plane has acknowledged them. Ingestion is idempotent, so a shipment repeated after a failure never
/// doubles a record; a stopped shipper resumes from the host's cursor.
struct UsageShipper: Service {
    let ledger: HostLedger
    let client: ControlPlaneClient
    let doorbell: Doorbell
    let interval: Duration
    let logger: Logger
    var batchSize = 1000
    /// Shortest time between two shipments.
    var batchingDelay: Duration = .milliseconds(100)

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            var failures = 0
            while !Task.isCancelled {
                do {
                    try await shipAll()
                    failures = 0
                } catch {
                    failures += 1
                    if failures == 1 || failures % 20 == 0 {
                        logger.info("usage shipping failed; will retry", metadata: ["error": "\(error)"])
                    }
                }
                // Wait for a new record, but never longer than the interval (backing off while failing).
                let wait = failures == 0 ? interval : min(interval * failures, .seconds(10))
                await doorbell.wait(upTo: wait)
                // Let a busy host's records gather into one shipment instead of one round trip per call.
                try await Task.sleep(for: batchingDelay)
            }
        }
        // One last attempt on the way out, so a clean shutdown leaves nothing behind when the control plane is up.
        try? await shipAll()
    }

    func shipAll() async throws {
        while true {
            // Read and encoded in one pass (no `JSONEncoder`): the host ships every record it serves.
            guard let shipment = try await ledger.unshippedShipment(host: client.hostName, limit: batchSize) else {
                return
            }
            _ = try await client.ship(encoded: shipment.body)
            try await ledger.markShipped(through: shipment.through)
            if shipment.count < batchSize { return }
        }
    }
}

/// Writes captured function log lines to the host ledger in batches, and applies the retention period to logs
/// and to usage records the control plane has acknowledged.
struct LogFlusher: Service {
    let sink: FunctionLogSink
    let ledger: HostLedger
    let interval: Duration
    let retention: Duration
    let logger: Logger

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            let clock = ContinuousClock()
            var lastPrune = clock.now
            while !Task.isCancelled {
                await flush()
                if clock.now - lastPrune > .seconds(600) {
                    lastPrune = clock.now
                    do { try await ledger.prune(olderThan: retention, now: Date()) } catch {
                        logger.warning("pruning the host ledger failed", metadata: ["error": "\(error)"])
                    }
                }
                try await Task.sleep(for: interval)
            }
        }
        await flush()
    }

    func flush() async {
        let (lines, dropped) = sink.drain()
        if dropped > 0 { logger.warning("function log lines dropped", metadata: ["count": "\(dropped)"]) }
        guard !lines.isEmpty else { return }
        do {
            try await ledger.appendLogs(lines)
        } catch {
            logger.warning("function logs not written", metadata: ["error": "\(error)", "count": "\(lines.count)"])
        }
    }
}
