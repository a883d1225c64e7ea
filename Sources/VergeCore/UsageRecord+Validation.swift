extension UsageRecord {
    /// The limits a limit-exceeded record may name.
    public static let limitNames: Set<String> = ["memory", "cpu", "processes", "file_size"]
    /// The reasons a rejected record may give.
    public static let rejectionReasons: Set<String> = [
        "capacity", "function_concurrency", "shutting_down", "request_too_large", "client_aborted",
        "function_not_ready",
    ]

    /// Why this record cannot be billed as sent, or nil when it can. Records come over the network from hosts:
    /// every field is checked before it is stored (sizes, signs, ranges, and that `limit` and `reason` go with
    /// their statuses).
    public func validationProblem() -> String? {
        let texts: [(String, String, Int)] = [
            ("invocation_id", invocationID, 128), ("tenant", tenant, 128), ("function", function, 128),
            ("version", version, 128), ("host", host, 128), ("region", region, 64),
        ]
        for (name, value, maximum) in texts {
            if value.utf8.count > maximum { return "\(name) is longer than \(maximum) bytes" }
            if value.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) { return "\(name) contains control characters" }
        }
        for (name, value) in [
            ("invocation_id", invocationID), ("tenant", tenant), ("function", function), ("host", host),
        ]
        where value.isEmpty {
            return "\(name) is empty"
        }
        // A call lasts at most a day (timeouts are far shorter); anything beyond is a broken or hostile sender.
        let day: Int64 = 86_400_000_000
        let durations: [(String, Int64)] = [
            ("duration_us", durationUs), ("queue_us", queueUs), ("init_us", initUs), ("cpu_us", cpuUs),
        ]
        for (name, value) in durations where !(0...day).contains(value) {
            return "\(name) must be between 0 and \(day), got \(value)"
        }
        if !(0...Int64(1) << 50).contains(memoryPeakBytes) { return "memory_peak_bytes is out of range" }
        if !(0...1 << 20).contains(memoryMB) { return "memory_mb must be between 0 and 1048576, got \(memoryMB)" }
        if !(0...1 << 30).contains(versionNumber) { return "version_number is out of range" }
        if !(0...Int64(1) << 50).contains(requestBytes) { return "request_bytes is out of range" }
        if !(0...Int64(1) << 50).contains(responseBytes) { return "response_bytes is out of range" }
        if !(100...599).contains(httpStatus) { return "http_status must be between 100 and 599, got \(httpStatus)" }
        if !(0...Int64.max / 2).contains(startTimeUs) { return "start_time_us is out of range" }
        if !coldStart && initUs != 0 { return "init_us must be 0 for a warm call" }
        switch (status, limit) {
        case (.limitExceeded, let name?) where Self.limitNames.contains(name): break
        case (.limitExceeded, _): return "a limit_exceeded record must name one of \(Self.limitNames.sorted())"
        case (_, nil): break
        case (_, _?): return "only a limit_exceeded record names a limit"
        }
        if let reason {
            guard status == .rejected else { return "only a rejected record gives a reason" }
            guard Self.rejectionReasons.contains(reason) else {
                return "reason must be one of \(Self.rejectionReasons.sorted())"
            }
        }
        return nil
    }
}
