import Foundation
import Testing
import VergeTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A host whose disk fills up serves no call it cannot bill: the call whose record fails gets a 500 instead of its
/// function's response; from then on, as long as its ledger cannot commit, it answers 503
/// `ledger_unavailable` (with its `x-verge-host` marker) and its health check says unhealthy, so the gateway routes
/// away; when space returns it takes calls again. Every call that was answered 200 is in the export.
@Suite(
    .serialized, .cluster, .timeLimit(.minutes(3)),
    .enabled(if: geteuid() == 0, "mounting a tiny tmpfs as the host's data directory needs root (CI runs as root)"))
struct LedgerDiskFullTests {
    /// Fills the filesystem holding `path` with a file of its own until the disk is full.
    static func fill(_ path: String) -> Int {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        let chunk = [UInt8](repeating: 0x5A, count: 4096)
        var written = 0
        while true {
            let count = chunk.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if count <= 0 { break }
            written += count
        }
        // The last partial blocks too.
        for _ in 0..<64 where write(fd, chunk, 1) == 1 { written += 1 }
        return written
    }

    @Test func aFullDiskTurnsTheHostUnhealthyAndItRefusesCallsUntilSpaceReturns() async throws {
        let scratch = try TemporaryDirectory(prefix: "verge-disk-full")
        let data = scratch.path + "/fra"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        let mount = try await CommandRunner.run(
            "/bin/mount", ["-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", data])
        try #require(mount.status == 0, "mount failed: \(mount.stderr)")
        var components: [ComponentProcess] = []
        defer {
            _ = umount2(data, Int32(MNT_DETACH))
            scratch.remove()
        }
        do {
            let (controlPlane, api, adminToken) = try await ComponentProcess.startControlPlane(in: scratch.path)
            components.append(controlPlane)
            let admin = ["VERGE_TOKEN": adminToken]
            let joinFile = try await JoinTokens.file(
                role: "host", name: "fra", api: api, adminToken: adminToken, directory: scratch.path)
            let host = try await ComponentProcess.start(
                [
                    "host", "--name", "fra", "--location", "50.11,8.68", "--control-plane", api, "--data", data,
                    "--isolation", "none", "--join-token-file", joinFile,
                ],
                logPath: scratch.path + "/fra.log")
            components.append(host)
            let hostURL = try #require(host.ready["host"])
            let deploy = try await CommandRunner.verge(
                ["deploy", Paths.fixtureFunction("echo"), "--api", api], environment: admin)
            #expect(deploy.status == 0, "\(deploy.stderr)")
            #expect(
                try await eventually(timeout: .seconds(10)) { try await TestHTTP.get(hostURL + "/echo").status == 200 })
            #expect(try await TestHTTP.get(hostURL + "/_verge/health").status == 200)

            let filler = data + "/filler"
            #expect(Self.fill(filler) > 0)
            // Calls go on until the ledger needs space it cannot get (the WAL may still have room for a while).
            var answered: [String] = []
            var refused: TestResponse?
            for _ in 0..<20_000 {
                guard let response = try? await TestHTTP.request(hostURL + "/echo", timeout: .seconds(10)) else {
                    continue
                }
                if response.status == 200, let id = response.header("x-verge-invocation-id") {
                    answered.append(id)
                } else if response.status == 500 {
                    // The call whose record failed: it never gets its function's response, only the host's error.
                    #expect(response.header("x-verge-error") == "internal_error")
                    #expect(response.header("x-verge-host") == "fra")
                    #expect(response.text.contains("usage record could not be committed"))
                } else {
                    refused = response
                    break
                }
            }
            let refusal = try #require(refused, "the host kept answering 200 on a full disk")
            #expect(refusal.status == 503)
            #expect(refusal.header("x-verge-host") == "fra")
            #expect(refusal.header("retry-after") == "1")
            #expect((try refusal.json()["error"] as? [String: Any])?["code"] as? String == "ledger_unavailable")
            let health = try await TestHTTP.get(hostURL + "/_verge/health")
            #expect(health.status == 503)
            #expect(try health.json()["status"] as? String == "unhealthy")
            #expect(try await TestHTTP.get(hostURL + "/echo").status == 503)
            #expect(try String(contentsOfFile: scratch.path + "/fra.log", encoding: .utf8).contains("cannot commit"))

            // Space returns: the host probes its ledger and takes calls again.
            try FileManager.default.removeItem(atPath: filler)
            #expect(
                try await eventually(timeout: .seconds(10)) {
                    try await TestHTTP.get(hostURL + "/_verge/health").status == 200
                })
            let again = try await TestHTTP.get(hostURL + "/echo")
            #expect(again.status == 200)
            if let id = again.header("x-verge-invocation-id") { answered.append(id) }

            // Every call answered 200 reaches the control plane once.
            var exported: [String] = []
            let complete = try await eventually(timeout: .seconds(30), every: .milliseconds(200)) {
                let result = try await CommandRunner.verge(
                    ["usage", "export", "--since", "0", "--api", api], environment: admin)
                exported = result.stdout.split(separator: "\n").compactMap {
                    (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["invocation_id"]
                        as? String
                }
                return Set(answered).isSubset(of: Set(exported))
            }
            #expect(complete, "\(Set(answered).subtracting(exported).count) answered calls are not exported")
            #expect(Set(exported).count == exported.count)
        } catch {
            for component in components { await component.stop() }
            throw error
        }
        for component in components { await component.stop() }
    }
}
