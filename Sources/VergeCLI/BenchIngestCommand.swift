import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import VergeCore
import VergeHTTP
import VergeUsage

/// `verge bench-ingest` (hidden, benchmark only; see `Samples/bench/ledger.sh`): joins a control plane as a host and
/// ships synthetic usage records through `POST /v1/internal/usage`, the path real hosts use, and reports the rate
/// at which the control plane stored them. The batches are encoded before the clock starts, so the number is the
/// control plane's (HTTP, JSON decoding, checks, SQLite), not the sender's.
struct BenchIngestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-ingest", abstract: "Benchmark the control plane's usage ingestion.", shouldDisplay: false)
    @Option(help: "The control plane's URL.") var api: String?
    @Option(name: .customLong("join-token-file"), help: "A host join token (joins once; the credential is kept).")
    var joinTokenFile: String?
    @Option(name: .customLong("credential-file"), help: "Where the host credential is kept.") var credentialFile:
        String?
    @Option(
        name: .customLong("in-process"),
        help: "Instead of a control plane: decode and store in this process, into a new database in this directory.")
    var inProcess: String?
    @Option(name: .customLong("host-name"), help: "The host name to join as.") var hostName: String = "bench"
    @Option(help: "Records to ship.") var records: Int = 200_000
    @Option(help: "Records per batch (a host ships up to 1000).") var batch: Int = 1000
    @Option(help: "Batches in flight at once.") var concurrency: Int = 1

    func validate() throws {
        guard (1...10_000_000).contains(records), (1...10_000).contains(batch), (1...64).contains(concurrency) else {
            throw ValidationError("--records 1…10000000, --batch 1…10000, --concurrency 1…64")
        }
    }

    func run() async throws {
        if let inProcess {
            try await reportingErrors { try await runInProcess(directory: inProcess) }
            return
        }
        guard let api, let credentialFile else {
            throw ValidationError("--api and --credential-file, or --in-process DIRECTORY")
        }
        try await reportingErrors {
            let credential: String
            do {
                credential = try await ClusterJoin.credential(
                    file: credentialFile,
                    joinToken: try ClusterJoin.secret(file: joinTokenFile, variable: "VERGE_JOIN_TOKEN"),
                    role: .host, name: hostName, controlPlaneURL: api)
            } catch let error as VergeError {
                throw VergeCLIError(error.message)
            }
            let run = String(UUID().uuidString.prefix(8)).lowercased()
            let start = WallClock.microseconds()
            var bodies: [ByteBuffer] = []
            var index = 0
            while index < records {
                let count = min(batch, records - index)
                let batchRecords = (index..<index + count).map {
                    Self.record($0, run: run, host: hostName, start: start)
                }
                bodies.append(
                    ByteBuffer(bytes: try JSONCoding.encoder.encode(UsageBatch(host: hostName, records: batchRecords))))
                index += count
            }
            let clock = ContinuousClock()
            let began = clock.now
            let inserted = try await withThrowingTaskGroup(of: Int.self) { group in
                var next = 0
                var total = 0
                func ship(_ body: ByteBuffer) async throws -> Int {
                    var request = HTTPClientRequest(url: api + "/v1/internal/usage")
                    request.method = .POST
                    request.headers.add(name: "authorization", value: "Bearer " + credential)
                    request.headers.add(name: "content-type", value: "application/json")
                    request.body = .bytes(body)
                    let response = try await HTTPClient.verge.execute(request, timeout: .seconds(120))
                    let answer = try await response.body.collect(upTo: 1 << 20)
                    guard response.status == .ok else {
                        throw VergeCLIError(
                            "ingest answered \(response.status.code): \(String(buffer: answer).prefix(300))")
                    }
                    return try JSONCoding.decoder.decode(IngestResultBody.self, from: Data(answer.readableBytesView))
                        .inserted
                }
                while next < bodies.count && next < concurrency {
                    let body = bodies[next]
                    group.addTask { try await ship(body) }
                    next += 1
                }
                while let done = try await group.next() {
                    total += done
                    if next < bodies.count {
                        let body = bodies[next]
                        group.addTask { try await ship(body) }
                        next += 1
                    }
                }
                return total
            }
            let elapsed = clock.now - began
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            guard inserted == records else {
                throw VergeCLIError("the control plane stored \(inserted) of \(records) records")
            }
            Output.line(
                String(
                    format: "ingested %d records in %.3f s: %.0f records/s (batch %d, concurrency %d)", records,
                    seconds, Double(records) / seconds, batch, concurrency))
        }
    }
}

extension BenchIngestCommand {
    /// The control plane's ingest work without HTTP, split into decoding (with the field checks) and storing.
    func runInProcess(directory: String) async throws {
        let store = try UsageStore.standalone(path: directory + "/usage.sqlite")
        let start = WallClock.microseconds()
        var bodies: [Data] = []
        var index = 0
        while index < records {
            let count = min(batch, records - index)
            let batchRecords = (index..<index + count).map {
                Self.record($0, run: "inproc", host: hostName, start: start)
            }
            bodies.append(try JSONCoding.encoder.encode(UsageBatch(host: hostName, records: batchRecords)))
            index += count
        }
        // Each stage over all batches, timed by the wall clock and by this process's CPU time (steadier on a
        // shared machine).
        let clock = ContinuousClock()
        func measure(_ body: () async throws -> Void) async rethrows -> (wall: Double, cpu: Double) {
            func cpuSeconds() -> Double {
                var usage = rusage()
                getrusage(RUSAGE_SELF.rawValue, &usage)
                return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
                    + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
            }
            let (began, cpuBegan) = (clock.now, cpuSeconds())
            try await body()
            let elapsed = clock.now - began
            return (
                Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18,
                cpuSeconds() - cpuBegan
            )
        }
        func check(_ batch: UsageBatch) throws {
            for record in batch.records where record.validationProblem() != nil {
                throw VergeCLIError("a generated record is invalid: \(record.validationProblem()!)")
            }
        }
        // For comparison: Foundation's JSONDecoder, which the control plane used before its own decoder.
        let foundation = try await measure {
            for body in bodies { try check(try JSONCoding.decoder.decode(UsageBatch.self, from: body)) }
        }
        var decoded: [UsageBatch] = []
        let decoding = try await measure {
            for body in bodies {
                let batch = try body.withUnsafeBytes { bytes throws(VergeError) in try UsageBatchDecoder.decode(bytes) }
                try check(batch)
                decoded.append(batch)
            }
        }
        var inserted = 0
        let storing = try await measure {
            for batch in decoded { inserted += try await store.ingest(batch.records).inserted }
        }
        guard inserted == records else { throw VergeCLIError("stored \(inserted) of \(records) records") }
        func stage(_ name: String, _ time: (wall: Double, cpu: Double)) -> String {
            String(
                format: "%@ %.0f records/s (%.2f µs CPU/record)", name, Double(records) / time.wall,
                time.cpu / Double(records) * 1e6)
        }
        Output.line(
            "in process, \(records) records in batches of \(batch): " + stage("decode+check", decoding) + ", "
                + stage("store", storing) + ", "
                + stage("both", (decoding.wall + storing.wall, decoding.cpu + storing.cpu))
                + "; Foundation JSONDecoder " + stage("decode+check", foundation))
    }

    static func record(_ i: Int, run: String, host: String, start: Int64) -> UsageRecord {
        let cold = i % 100 == 0
        let n = Int64(i)
        return UsageRecord(
            invocationID: "\(run)-\(String(i, radix: 16))", tenant: "bench", function: "f\(i % 16)",
            version: String(repeating: "a", count: 64), versionNumber: 1, host: host, region: "bench",
            startTimeUs: start + n, durationUs: 1_000 + n % 5_000, queueUs: 10, coldStart: cold,
            initUs: cold ? 20_000 : 0, cpuUs: 500 + n % 900, memoryPeakBytes: 30_000_000, memoryMB: 128, status: .ok,
            httpStatus: 200, requestBytes: 120, responseBytes: 2_048)
    }
}

/// The part of the ingest answer the benchmark checks.
private struct IngestResultBody: Decodable {
    var inserted: Int
}
