import Foundation
import Testing
import VergeTestSupport

/// `Samples/netns/run.sh` in CI: the gateway and three hosts in network namespaces of their own, load from three
/// locations, fra killed with SIGKILL mid-run; every location keeps being served and no idempotent call fails
/// after the kill.
@Suite(.serialized, .cluster, .timeLimit(.minutes(2)))
struct NetworkNamespaceFailoverTests {
    /// Whether this kernel can delay packets with netem (a container often has no sch_netem).
    static func netemAvailable() async throws -> Bool {
        let namespace = "vgprobe\(getpid())"
        _ = try await CommandRunner.run("/usr/sbin/ip", ["netns", "add", namespace])
        defer { _ = try? Process.run(URL(fileURLWithPath: "/usr/sbin/ip"), arguments: ["netns", "del", namespace]) }
        let probe = try await CommandRunner.run(
            "/usr/sbin/ip",
            ["netns", "exec", namespace, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"])
        return probe.status == 0
    }

    @Test(.enabled(if: geteuid() == 0, "needs root: it creates network namespaces and veth links"))
    func aHostKilledAcrossNamespacesCostsNoIdempotentCall() async throws {
        // Without netem the topology and the kill are the same; only the delays are missing (said in the output).
        let netem = try await Self.netemAvailable()
        let result = try await CommandRunner.run(
            Paths.repository + "/Samples/netns/run.sh", [],
            environment: [
                "VERGE": Paths.vergeExecutable, "DURATION": "8", "KILL_AT": "3", "CONCURRENCY": "2",
                "NO_NETEM": netem ? "" : "1",
            ],
            timeout: .seconds(90))
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.contains("0 failed after it"), "\(result.stdout)")
        for line in ["| paris |", "| newyork |", "| tokyo |"] {
            let row = result.stdout.split(separator: "\n").first { $0.hasPrefix(line) }.map(String.init) ?? ""
            #expect(!row.isEmpty, "no row for \(line): \(result.stdout)")
            // Each location was served on both sides of the kill; Paris moved from fra to another host.
            let cells = row.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            #expect(cells.count >= 5 && cells[1] != "-" && cells[2] != "-", "\(row)")
            if line == "| paris |" { #expect(cells[1].contains("fra") && !cells[2].contains("fra"), "\(row)") }
        }
    }
}
