import HTTPTypes
import VergeCore

/// What is known about a call as it proceeds; becomes its usage record.
struct CallRecord {
    let invocationID: String
    let tenant: String
    let function: String
    /// The version that served the call (it can change while the call waits, when a deploy replaces it).
    var version: String
    var versionNumber: Int
    let host: String
    let region: String
    let startTimeUs: Int64
    var duration: Duration = .zero
    var queue: Duration = .zero
    var exec: Duration = .zero
    var coldStart = false
    var initDuration: Duration = .zero
    var status: InvocationStatus = .ok
    var httpStatus = 200
    var requestBytes: Int64 = 0
    var responseBytes: Int64 = 0
    /// The sandbox limit that ended the call, for `limit_exceeded`.
    var limit: String?
    /// Why the call was refused, for `rejected`.
    var reason: String?
    var memoryMB: Int
    var cpu: Duration = .zero
    var memoryPeakBytes: Int64 = 0

    init(invocationID: String, deployment: Deployment, host: String, region: String, startTimeUs: Int64) {
        self.invocationID = invocationID
        self.tenant = deployment.tenant
        self.function = deployment.name
        self.version = deployment.version
        self.versionNumber = deployment.versionNumber ?? 0
        self.memoryMB = deployment.manifest.memoryMB
        self.host = host
        self.region = region
        self.startTimeUs = startTimeUs
    }

    /// The version that got the call (a deploy may have replaced the one it arrived for).
    mutating func served(by deployment: Deployment) {
        version = deployment.version
        versionNumber = deployment.versionNumber ?? 0
        memoryMB = deployment.manifest.memoryMB
    }

    /// What the worker's cgroup used during the call; call once, right after `worker.end()`.
    mutating func measure(_ worker: WorkerProcess) {
        guard let usage = worker.callUsage() else { return }
        cpu = usage.cpu
        memoryPeakBytes = usage.memoryPeak
    }

    mutating func finish(
        _ status: InvocationStatus, httpStatus: Int, clock: ContinuousClock, arrival: ContinuousClock.Instant
    ) {
        self.status = status
        self.httpStatus = httpStatus
        self.duration = clock.now - arrival
    }

    /// `x-verge-host`, `x-verge-invocation-id` and `server-timing` (queue, cold start, exec in milliseconds).
    func responseHeaders(host: String) -> HTTPFields {
        var fields = HTTPFields()
        fields[HTTPField.Name("x-verge-host")!] = host
        fields[HTTPField.Name("x-verge-invocation-id")!] = invocationID
        var timing = ["queue;dur=\(Self.ms(queue))"]
        if coldStart { timing.append("cold;dur=\(Self.ms(initDuration))") }
        timing.append("exec;dur=\(Self.ms(exec))")
        fields[HTTPField.Name("server-timing")!] = timing.joined(separator: ", ")
        return fields
    }

    /// Milliseconds with three decimals, as `server-timing` writes them.
    static func ms(_ duration: Duration) -> String {
        let micros = max(0, duration.microseconds)
        let fraction = String(micros % 1000)
        return "\(micros / 1000)." + String(repeating: "0", count: 3 - fraction.utf8.count) + fraction
    }

    var usageRecord: UsageRecord {
        UsageRecord(
            invocationID: invocationID, tenant: tenant, function: function, version: version,
            versionNumber: versionNumber, host: host, region: region, startTimeUs: startTimeUs,
            durationUs: duration.microseconds, queueUs: queue.microseconds, coldStart: coldStart,
            initUs: coldStart ? initDuration.microseconds : 0, cpuUs: cpu.microseconds,
            memoryPeakBytes: memoryPeakBytes, memoryMB: memoryMB, status: status, httpStatus: httpStatus,
            requestBytes: requestBytes, responseBytes: responseBytes, limit: limit, reason: reason
        )
    }
}
