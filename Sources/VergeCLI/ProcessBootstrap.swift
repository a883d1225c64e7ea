import Foundation
import Logging
import Metrics
import Prometheus
import VergeSupervisor

/// What every long-running `verge` command does first: logging on stderr at `--log-level` or `LOG_LEVEL`,
/// Prometheus metrics, and no inherited descriptor left for a worker to find.
enum ProcessBootstrap {
    static func start(logLevel: String?) -> (Logger, PrometheusCollectorRegistry) {
        let name = (logLevel ?? ProcessInfo.processInfo.environment["LOG_LEVEL"] ?? "info").lowercased()
        let level = Logger.Level(rawValue: name) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        Descriptors.markAllCloseOnExec()
        return (Logger(label: "verge"), registry)
    }
}
