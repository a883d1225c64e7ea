import Metrics
import VergeCore

/// A function version's call metrics on this host, made once per pool rather than looked up in the metrics registry
/// on every call.
struct FunctionMetrics: Sendable {
    private let invocations: [InvocationStatus: Counter]
    private let coldStarts: Counter
    private let duration: Timer

    init(host: String, tenant: String, function: String) {
        let dimensions = [("host", host), ("tenant", tenant), ("function", function)]
        var invocations: [InvocationStatus: Counter] = [:]
        for status in InvocationStatus.allCases {
            invocations[status] = Counter(
                label: "verge_invocations_total", dimensions: dimensions + [("status", status.rawValue)])
        }
        self.invocations = invocations
        self.coldStarts = Counter(label: "verge_cold_starts_total", dimensions: dimensions)
        self.duration = Timer(
            label: "verge_invocation_duration_seconds", dimensions: dimensions, preferredDisplayUnit: .seconds)
    }

    func record(_ record: UsageRecord) {
        invocations[record.status]?.increment()
        if record.coldStart { coldStarts.increment() }
        duration.recordMicroseconds(record.durationUs)
    }
}
