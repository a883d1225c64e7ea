import ArgumentParser
import Foundation
import VergeCore
import VergeUsage

/// `verge usage`: the usage records the control plane has collected — listed, exported for billing, summed.
struct UsageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "usage", abstract: "Per-call usage records: list, export for billing, summarise.",
        subcommands: [UsageListCommand.self, UsageExportCommand.self, UsageSummaryCommand.self],
        defaultSubcommand: UsageListCommand.self
    )
}

/// `verge usage [list]`: every record after a cursor, as a table or JSON.
struct UsageListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "Print per-call usage records (table, json, jsonl or csv)."
    )
    @OptionGroup var api: APIOptions
    @Option(help: "table, json, jsonl or csv") var format: OutputFormat = .table
    @Option(help: "Only records after this cursor.") var after: Int64 = 0
    @Option(help: "Only this function's records.") var function: String?

    func run() async throws {
        try await reportingErrors {
            var records: [UsageRecord] = []
            var first = true
            _ = try await UsagePager(api: api, function: function).pages(after: after) { page in
                switch format {
                case .jsonl:
                    for record in page.records { try Output.json(UsageLine(record), pretty: false) }
                case .csv:
                    if first { Output.line(UsageLine.csvHeader) }
                    for record in page.records { Output.line(UsageLine(record).csv) }
                case .json, .table:
                    records.append(contentsOf: page.records)
                }
                first = false
            }
            if format == .json {
                try Output.json(records.map(UsageLine.init))
            } else if format == .table {
                Output.table(
                    [
                        "INVOCATION", "FUNCTION", "V", "HOST", "STATUS", "HTTP", "COLD", "DURATION", "INIT", "CPU",
                        "PEAK MEM",
                        "IN", "OUT",
                    ],
                    records.map { r in
                        [
                            r.invocationID, r.function, r.versionNumber > 0 ? "\(r.versionNumber)" : "",
                            r.host, r.status.rawValue + (r.limit.map { "(\($0))" } ?? r.reason.map { "(\($0))" } ?? ""),
                            "\(r.httpStatus)", r.coldStart ? "cold" : "warm",
                            String(format: "%.2f ms", r.durationMs),
                            r.coldStart ? String(format: "%.2f ms", Double(r.initUs) / 1000) : "",
                            String(format: "%.2f ms", Double(r.cpuUs) / 1000),
                            String(format: "%.1f MiB", Double(r.memoryPeakBytes) / 1_048_576),
                            "\(r.requestBytes)", "\(r.responseBytes)",
                        ]
                    }
                )
            }
        }
    }
}

/// `verge usage export`: the records after a cursor, for a billing job, and the cursor to continue from.
struct UsageExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Export usage records after a cursor as JSON lines or CSV; print the next cursor.",
        discussion: """
            Records come in the control plane's stable order. The next cursor goes to standard error as \
            `next_cursor: N`, or, with --cursor-file, into that file (read as the starting cursor when it exists, \
            replaced atomically once every record was written). Running export again from the printed cursor never \
            repeats or skips a record, even while new records arrive.
            """
    )
    @OptionGroup var api: APIOptions
    @Option(help: "Start after this cursor (0: from the first record).") var since: Int64?
    @Option(help: "jsonl or csv") var format: OutputFormat = .jsonl
    @Option(
        name: .customLong("cursor-file"), help: "Read the starting cursor from, and write the next one to, this file.")
    var cursorFile: String?
    @Option(help: "Only this function's records.") var function: String?
    @Option(help: "Stop after this many records (the cursor then points after the last one written).")
    var limit: Int?

    func validate() throws {
        guard format == .jsonl || format == .csv else { throw ValidationError("--format must be jsonl or csv") }
        if let since, since < 0 { throw ValidationError("--since must not be negative") }
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
    }

    func run() async throws {
        try await reportingErrors {
            var start = since ?? 0
            if since == nil, let cursorFile, FileManager.default.fileExists(atPath: cursorFile) {
                let text = try String(contentsOfFile: cursorFile, encoding: .utf8)
                    .trimmingCharacters(in: .whitespacesAndNewlines)
                guard let value = Int64(text), value >= 0 else {
                    throw VergeCLIError(
                        "\(cursorFile) does not hold a cursor (a non-negative integer): '\(text.prefix(40))'")
                }
                start = value
            }
            if format == .csv { Output.line(UsageLine.csvHeader) }
            var written = 0
            let next = try await UsagePager(api: api, function: function).pages(
                after: start, remaining: limit
            ) { page in
                for record in page.records {
                    if format == .csv {
                        Output.line(UsageLine(record).csv)
                    } else {
                        try Output.json(record, pretty: false)
                    }
                }
                written += page.records.count
            }
            if let cursorFile {
                let temporary = cursorFile + ".tmp"
                try "\(next)\n".write(toFile: temporary, atomically: false, encoding: .utf8)
                guard rename(temporary, cursorFile) == 0 else {
                    throw VergeCLIError("cannot replace \(cursorFile): \(String(cString: strerror(errno)))")
                }
            } else {
                Output.error("next_cursor: \(next)")
            }
        }
    }
}

/// `verge usage summary`: requests, GB-seconds, CPU, init and egress per group.
struct UsageSummaryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "summary", abstract: "Sum usage over a time range, grouped by tenant, function, hour, …")
    @OptionGroup var api: APIOptions
    @Option(help: "Start (RFC 3339, e.g. 2026-11-27T00:00:00Z, or µs since the epoch). Default: 24 hours ago.")
    var from: String?
    @Option(help: "End, exclusive (same forms). Default: now.") var to: String?
    @Option(name: .customLong("group-by"), help: "Comma-separated: tenant, function, hour, day, host, region, status.")
    var groupBy: String = "tenant,function"
    @Option(help: "Admin only: one tenant's usage.") var tenant: String?
    @Option(help: "table or json") var format: OutputFormat = .table

    func validate() throws {
        guard format == .table || format == .json else { throw ValidationError("--format must be table or json") }
        _ = try UsageSummaryQuery.parseGroupBy(groupBy)
    }

    func run() async throws {
        try await reportingErrors {
            let now = WallClock.microseconds()
            let fromUs = try from.map { try UsageSummaryQuery.parseTime($0, name: "--from") } ?? now - 86_400_000_000
            let toUs = try to.map { try UsageSummaryQuery.parseTime($0, name: "--to") } ?? now + 1
            var path = "/v1/usage/summary?from=\(fromUs)&to=\(toUs)&group_by=\(groupBy)"
            if let tenant {
                path += "&tenant=\(tenant.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")"
            }
            let summary = try await api.client.get(path, as: UsageSummary.self)
            if format == .json {
                try Output.json(summary)
                return
            }
            let keys = summary.groupBy
            Output.table(
                keys.map { $0.rawValue.uppercased() } + [
                    "REQUESTS", "GB-S", "CPU-MS", "INIT-MS", "EGRESS", "BY STATUS",
                ],
                summary.rows.map { row in
                    keys.map { key -> String in
                        switch key {
                        case .tenant: row.tenant ?? ""
                        case .function: row.function ?? ""
                        case .hour: row.hour ?? ""
                        case .day: row.day ?? ""
                        case .host: row.host ?? ""
                        case .region: row.region ?? ""
                        case .status: row.status ?? ""
                        }
                    } + [
                        "\(row.requests)", String(format: "%.6f", row.gbSeconds), String(format: "%.3f", row.cpuMs),
                        String(format: "%.3f", row.initMs), "\(row.egressBytes)",
                        row.byStatus.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "),
                    ]
                }
            )
        }
    }
}

/// Pages through `GET /v1/usage` from a cursor until no record is left (or `remaining` were read).
struct UsagePager {
    let api: APIOptions
    let function: String?

    /// Calls `body` with each non-empty page; returns the cursor after the last record read.
    func pages(
        after start: Int64, remaining: Int? = nil, _ body: (UsagePage) async throws -> Void
    ) async throws -> Int64 {
        var cursor = start
        var left = remaining ?? Int.max
        while left > 0 {
            var path = "/v1/usage?after=\(cursor)&limit=\(min(1000, left))"
            if let function {
                path += "&function=\(function.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")"
            }
            let page = try await api.client.get(path, as: UsagePage.self)
            guard !page.records.isEmpty, page.nextCursor > cursor else { break }
            try await body(page)
            left -= page.records.count
            cursor = page.nextCursor
        }
        return cursor
    }
}

/// One listed usage line: the record's fields plus `duration_ms`.
struct UsageLine: Encodable {
    let record: UsageRecord

    init(_ record: UsageRecord) { self.record = record }

    enum Keys: String, CodingKey { case durationMs = "duration_ms" }

    func encode(to encoder: any Encoder) throws {
        try record.encode(to: encoder)
        var container = encoder.container(keyedBy: Keys.self)
        try container.encode(record.durationMs, forKey: .durationMs)
    }

    static let csvHeader =
        "invocation_id,tenant,function,version,version_number,host,region,start_time_us,duration_us,billed_ms,"
        + "queue_us,cold_start,init_us,cpu_us,memory_peak_bytes,memory_mb,gb_seconds,status,limit,reason,"
        + "http_status,request_bytes,response_bytes"

    var csv: String {
        let r = record
        return [
            Self.quoted(r.invocationID), Self.quoted(r.tenant), Self.quoted(r.function), Self.quoted(r.version),
            "\(r.versionNumber)", Self.quoted(r.host), Self.quoted(r.region), "\(r.startTimeUs)", "\(r.durationUs)",
            "\(r.billedMs)", "\(r.queueUs)", r.coldStart ? "true" : "false", "\(r.initUs)", "\(r.cpuUs)",
            "\(r.memoryPeakBytes)", "\(r.memoryMB)", "\(r.gbSeconds)", r.status.rawValue, Self.quoted(r.limit ?? ""),
            Self.quoted(r.reason ?? ""), "\(r.httpStatus)", "\(r.requestBytes)", "\(r.responseBytes)",
        ].joined(separator: ",")
    }

    /// RFC 4180 quoting when a field needs it (names are validated, but a CSV must never be ambiguous).
    static func quoted(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
