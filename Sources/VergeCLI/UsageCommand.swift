import ArgumentParser
import Foundation
import VergeCore
import VergeUsage

/// `verge usage`: every usage record the control plane has collected, paged by cursor.
struct UsageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "usage", abstract: "Print per-call usage records (table, jsonl or csv)."
    )
    @OptionGroup var api: APIOptions
    @Option(help: "table, json, jsonl or csv") var format: OutputFormat = .table
    @Option(help: "Only records after this cursor.") var after: Int64 = 0
    @Option(help: "Only this function's records.") var function: String?

    func run() async throws {
        try await reportingErrors {
            var cursor = after
            var records: [UsageRecord] = []
            var first = true
            while true {
                var path = "/v1/usage?after=\(cursor)&limit=1000"
                if let function { path += "&function=\(function)" }
                let page = try await api.client.get(path, as: UsagePage.self)
                if format == .jsonl {
                    for record in page.records { try Output.json(UsageLine(record), pretty: false) }
                } else if format == .csv {
                    if first { Output.line(UsageLine.csvHeader) }
                    for record in page.records { Output.line(UsageLine(record).csv) }
                } else {
                    records.append(contentsOf: page.records)
                }
                first = false
                if page.records.isEmpty || page.nextCursor == cursor { break }
                cursor = page.nextCursor
            }
            if format == .json {
                try Output.json(records.map(UsageLine.init))
            } else if format == .table {
                Output.table(
                    ["INVOCATION", "FUNCTION", "HOST", "STATUS", "HTTP", "COLD", "DURATION", "INIT", "IN", "OUT"],
                    records.map { r in
                        [
                            r.invocationID, r.function, r.host, r.status.rawValue, "\(r.httpStatus)",
                            r.coldStart ? "cold" : "warm",
                            String(format: "%.2f ms", r.durationMs),
                            r.coldStart ? String(format: "%.2f ms", Double(r.initUs) / 1000) : "",
                            "\(r.requestBytes)", "\(r.responseBytes)",
                        ]
                    }
                )
            }
        }
    }
}

/// One exported usage line: the record's fields plus `duration_ms`.
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
        "invocation_id,tenant,function,version,host,start_time_us,duration_us,duration_ms,queue_us,cold_start,init_us,status,http_status,request_bytes,response_bytes"

    var csv: String {
        let r = record
        return [
            r.invocationID, r.tenant, r.function, r.version, r.host, "\(r.startTimeUs)", "\(r.durationUs)",
            String(format: "%.3f", r.durationMs), "\(r.queueUs)", r.coldStart ? "true" : "false", "\(r.initUs)",
            r.status.rawValue, "\(r.httpStatus)", "\(r.requestBytes)", "\(r.responseBytes)",
        ].joined(separator: ",")
    }
}
