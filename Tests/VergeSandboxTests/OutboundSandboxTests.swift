import Foundation
import Testing
import VergeCore
import VergeTestSupport

@testable import VergeSandbox

/// Outbound network in the sandbox: up before the function's first instruction, refused — never run without its
/// protections — when slirp4netns or the firewall rules are missing. Needs a root host.
@Suite(.serialized, .cluster, .enabled(if: geteuid() == 0, "sandboxes need a root host (CI runs as root)"))
struct OutboundSandboxTests {
    static func run(
        _ sandbox: Sandbox, bundle: String, network: SandboxNetwork, _ code: String
    ) throws -> (Int32, String) {
        let spec = SandboxSpec(
            workerName: "t-\(UUID().uuidString.prefix(8))", tenant: "acme", bundleDirectory: bundle,
            runtimeDirectory: nil, sharedDirectories: [],
            systemPaths: SystemView.base + SystemView.python(SandboxTests.python),
            command: [SandboxTests.python, "-I", "-S", "-c", code],
            environment: ["PATH": "/usr/bin:/bin"], limits: SandboxTests.limits, inheritedDescriptors: 3,
            network: network)
        let launch = try sandbox.launch(spec)
        defer { launch.cgroup.remove() }
        return launch.runToCompletion()
    }

    /// Interfaces and the address a UDP socket towards slirp4netns's gateway would use, at the first instruction.
    static let networkReport = """
        import json, socket
        address = None
        try:
            probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            probe.connect(("10.0.2.2", 9))
            address = probe.getsockname()[0]
        except OSError as error:
            address = error.strerror
        print(json.dumps({"interfaces": sorted(n for _, n in socket.if_nameindex()), "address": address}))
        """

    @Test func anOutboundWorkerStartsWithItsNetworkUpAndAPlainOneWithLoopbackOnly() async throws {
        try await offThread {
            try SandboxTests.withSandbox { sandbox, bundle in
                #expect(sandbox.outboundProblem == nil, "\(sandbox.outboundProblem ?? "")")
                let (status, output) = try Self.run(sandbox, bundle: bundle, network: .outbound, Self.networkReport)
                #expect(status == 0, "\(output)")
                let report = try #require(
                    try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any], "\(output)")
                #expect(report["interfaces"] as? [String] == ["lo", "tap0"])
                #expect(report["address"] as? String == "10.0.2.100", "configured before the function ran")

                let (plainStatus, plainOutput) = try Self.run(sandbox, bundle: bundle, network: .none, Self.networkReport)
                #expect(plainStatus == 0, "\(plainOutput)")
                let plain = try #require(
                    try JSONSerialization.jsonObject(with: Data(plainOutput.utf8)) as? [String: Any], "\(plainOutput)")
                #expect(plain["interfaces"] as? [String] == ["lo"])
                #expect(plain["address"] as? String == "Network is unreachable")
            }
        }
    }

    @Test func withoutSlirp4netnsOutboundWorkersAreRefusedAndOthersStillRun() async throws {
        try await offThread {
            try SandboxTests.withSandbox(configure: { $0.slirp4netns = "/nonexistent/slirp4netns" }) { sandbox, bundle in
                let problem = try #require(sandbox.outboundProblem)
                #expect(problem.contains("install Debian's slirp4netns"), "\(problem)")
                let error = #expect(throws: VergeError.self) {
                    _ = try Self.run(sandbox, bundle: bundle, network: .outbound, "print('ran')")
                }
                #expect(error?.code == .initFailed)
                #expect(
                    error?.message.contains("cannot give functions outbound network") == true, "\(error?.message ?? "")")
                #expect(error?.message.contains("slirp4netns") == true)
                let (status, output) = try Self.run(sandbox, bundle: bundle, network: .none, "print('ran')")
                #expect(status == 0 && output == "ran\n", "\(output)")
            }
        }
    }

    @Test func aNetworkStackThatFailsStopsTheSandboxAndTheHostRefusesOutbound() async throws {
        try await offThread {
            // Exists and runs, but never reports a network: the attacher must kill the sandbox, not let it run.
            try SandboxTests.withSandbox(configure: { $0.slirp4netns = "/usr/bin/false" }) { sandbox, bundle in
                let problem = try #require(sandbox.outboundProblem)
                #expect(problem.contains("a test sandbox with outbound network failed"), "\(problem)")
                #expect(problem.contains("/usr/bin/false failed"), "\(problem)")
                let error = #expect(throws: VergeError.self) {
                    _ = try Self.run(sandbox, bundle: bundle, network: .outbound, "print('ran')")
                }
                #expect(error?.code == .initFailed)
            }
        }
    }

    /// A range of its own, so the rules the test adds and removes concern no other sandbox on the machine.
    static let testRange: ClosedRange<UInt32> = 2_101_000_000...2_101_000_999

    @Test func firewallRulesAreInstalledOnceAndAMissingRuleRefusesOutboundWorkers() async throws {
        try await offThread {
            let rule =
                "-A \(SandboxFirewall.chain) -m owner --uid-owner \(Self.testRange.lowerBound)-\(Self.testRange.upperBound)"
            func rules() -> [String] {
                HelperCommand.run("/usr/sbin/iptables", ["-w", "-S", SandboxFirewall.chain]).output
                    .split(separator: "\n").map { String($0) }.filter { $0.hasPrefix(rule) }
            }
            func jumps() -> Int {
                HelperCommand.run("/usr/sbin/iptables", ["-w", "-S", "OUTPUT"]).output
                    .split(separator: "\n").filter { $0 == "-A OUTPUT -j \(SandboxFirewall.chain)" }.count
            }
            defer {
                // Leave no rule of the test's range behind, in either family.
                let firewall = SandboxFirewall(range: Self.testRange)
                for tool in firewall.tools {
                    while HelperCommand.run(tool, ["-w", "-D", SandboxFirewall.chain] + firewall.rule).status == 0 {}
                }
            }
            try SandboxTests.withSandbox(configure: { $0.uidRange = Self.testRange }) { _, _ in }
            try SandboxTests.withSandbox(configure: { $0.uidRange = Self.testRange }) { sandbox, bundle in
                #expect(rules().count == 1, "installed once: \(rules())")
                #expect(rules().first?.contains("--dst-type LOCAL -j REJECT") == true)
                #expect(jumps() == 1)
                let (status, output) = try Self.run(sandbox, bundle: bundle, network: .outbound, "print('ran')")
                #expect(status == 0 && output == "ran\n", "\(output)")

                // An operator's firewall reload removed the rule: outbound workers are refused until it is back.
                let deleted = HelperCommand.run(
                    "/usr/sbin/iptables", ["-w", "-D", SandboxFirewall.chain] + SandboxFirewall(range: Self.testRange).rule)
                #expect(deleted.status == 0, "\(deleted.output)")
                let error = #expect(throws: VergeError.self) {
                    _ = try Self.run(sandbox, bundle: bundle, network: .outbound, "print('ran')")
                }
                #expect(error?.message.contains("is not in place") == true, "\(error?.message ?? "")")
            }
        }
    }
}
