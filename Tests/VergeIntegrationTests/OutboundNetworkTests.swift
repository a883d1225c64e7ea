import Foundation
import Testing
import VergeTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// `"network": "outbound"` on a live local cluster: the function reaches a server in a network namespace the test
/// creates (nothing here reaches the internet) and nothing of its host; a function without the setting reaches
/// nothing at all.
@Suite(
    .serialized, .cluster, .timeLimit(.minutes(3)),
    .enabled(if: geteuid() == 0, "network namespaces and sandboxes need a root host (CI runs as root)"))
struct OutboundNetworkTests {
    @Test func anOutboundFunctionReachesAServerElsewhereButNothingOfItsHost() async throws {
        var stacks: [(pid: Int32, uid: UInt32)] = []
        try await TestNetwork.with { network in
            try await LocalClusterProcess.with { cluster in
                let deployed = try await cluster.deploy(Paths.hostileFunction("outbound-prober"))
                #expect(deployed.status == 0, "\(deployed.stderr)")
                #expect(try await cluster.deploy(Paths.hostileFunction("prober")).status == 0)
                let fra = try #require(cluster.hostURLs["fra"])

                // A listener on the host's end of the veth: a host-local address that is not loopback, which the
                // host itself reaches.
                let listener = try TCPListener(address: network.hostAddress)
                defer { listener.close() }
                #expect(TCPListener.canConnect(network.hostAddress, listener.port), "the host reaches its listener")

                let platform = [cluster.apiURL, cluster.gatewayURL, fra].map {
                    $0.replacingOccurrences(of: "http://", with: "")
                }
                let platformPorts = platform.compactMap { $0.split(separator: ":").last.map(String.init) }
                let forbidden =
                    platform
                    + ["\(network.hostAddress):\(listener.port)"]
                    // slirp4netns's gateway is the host's loopback unless disabled.
                    + platformPorts.map { "10.0.2.2:\($0)" }
                    + platformPorts.map { "\(network.hostAddress):\($0)" }
                let targets = [network.server] + forbidden
                let response = try await TestHTTP.get(
                    fra + "/outbound-prober?targets=" + targets.joined(separator: ","))
                #expect(response.status == 200, "\(response.text)")
                let report = try response.json()
                let reached = report[network.server] as? String ?? "missing"
                #expect(reached.hasPrefix("connected: HTTP/1.0 200"), "\(reached)")
                #expect(reached.hasSuffix(network.token), "the test server's answer: \(reached)")
                for target in forbidden {
                    let outcome = report[target] as? String ?? "missing"
                    #expect(!outcome.hasPrefix("connected") && outcome != "missing", "\(target): \(outcome)")
                }
                #expect(report["interfaces"] as? [String] == ["lo", "tap0"])

                // The network stack of the worker runs as its tenant's user, in its cgroup.
                stacks = Self.networkStacks(of: "outbound-prober")
                #expect(!stacks.isEmpty, "no slirp4netns in the worker's cgroup")
                #expect(stacks.allSatisfy { $0.uid >= 2_100_000_000 }, "\(stacks)")

                // Without the setting: only loopback, and the test server is out of reach.
                let plain = try await TestHTTP.get(fra + "/prober?targets=" + network.server)
                #expect(plain.status == 200, "\(plain.text)")
                let plainReport = try plain.json()
                let outcome = plainReport[network.server] as? String ?? "missing"
                #expect(!outcome.hasPrefix("connected") && outcome != "missing", "\(outcome)")
                #expect(plainReport["interfaces"] as? [String] == ["lo"])
            }
        }
        // Stopping the host stopped the workers, and their network stacks with them.
        #expect(
            try await eventually { stacks.allSatisfy { kill($0.pid, 0) != 0 } }, "a slirp4netns outlived its worker")
    }

    /// The slirp4netns processes in the cgroups of `function`'s workers, with their real uids.
    static func networkStacks(of function: String) -> [(pid: Int32, uid: UInt32)] {
        func read(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
        var found: [(pid: Int32, uid: UInt32)] = []
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry), read("/proc/\(entry)/comm") == "slirp4netns\n",
                read("/proc/\(entry)/cgroup").contains("/\(function)-")
            else { continue }
            let uidLine = read("/proc/\(entry)/status").split(separator: "\n").first { $0.hasPrefix("Uid:") }
            let uid = uidLine?.split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().first.flatMap {
                UInt32($0)
            }
            found.append((pid, uid ?? 0))
        }
        return found
    }
}

/// A network namespace of the test's own, joined to the host by a veth pair on a /30 of 10.203.0.0/16, with an
/// HTTP server inside answering a token to every GET. Everything is removed afterwards.
struct TestNetwork {
    let namespace: String
    let hostAddress: String
    let serverAddress: String
    let token: String
    static let serverPort = 8080
    var server: String { "\(serverAddress):\(Self.serverPort)" }

    static func with(_ body: (TestNetwork) async throws -> Void) async throws {
        let suffix = String(UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(6)).lowercased()
        let namespace = "verge-test-\(suffix)"
        let hostEnd = "vth\(suffix)"
        let innerEnd = "vtn\(suffix)"
        // A /30 no address of the host is in.
        let used = try await ip(["-o", "-4", "addr", "show"]).stdout
        let block = try #require(
            (0..<64).lazy.map { _ in (Int.random(in: 0...255), Int.random(in: 0...63) * 4) }
                .first { !used.contains("10.203.\($0.0).") }, "no free 10.203.X.0 block")
        let hostAddress = "10.203.\(block.0).\(block.1 + 1)"
        let serverAddress = "10.203.\(block.0).\(block.1 + 2)"
        let token = "verge-outbound-\(UUID().uuidString)"
        var server: Process?
        defer {
            // SIGKILL: the server inherits the test runner's blocked SIGTERM.
            if let server { kill(server.processIdentifier, SIGKILL) }
            server?.waitUntilExit()
            // Deleting the namespace deletes its veth end, and with it the host's.
            _ = try? runSync("/usr/sbin/ip", ["netns", "delete", namespace])
            _ = try? runSync("/usr/sbin/ip", ["link", "delete", hostEnd])
        }
        for arguments in [
            ["netns", "add", namespace],
            ["link", "add", hostEnd, "type", "veth", "peer", "name", innerEnd],
            ["link", "set", innerEnd, "netns", namespace],
            ["addr", "add", hostAddress + "/30", "dev", hostEnd],
            ["link", "set", hostEnd, "up"],
            ["-n", namespace, "addr", "add", serverAddress + "/30", "dev", innerEnd],
            ["-n", namespace, "link", "set", innerEnd, "up"],
            ["-n", namespace, "link", "set", "lo", "up"],
        ] {
            let result = try await ip(arguments)
            try #require(result.status == 0, "ip \(arguments.joined(separator: " ")): \(result.stderr)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments = [
            "netns", "exec", namespace, "/usr/bin/python3", "-c", serverCode, serverAddress, "\(serverPort)", token,
        ]
        process.standardInput = FileHandle.nullDevice
        try ProcessLaunch.run(process)
        server = process
        let network = TestNetwork(
            namespace: namespace, hostAddress: hostAddress, serverAddress: serverAddress, token: token)
        let up = try await eventually {
            (try? await TestHTTP.get("http://\(network.server)/").text) == token
        }
        try #require(up, "the test server in \(namespace) did not answer")
        try await body(network)
    }

    static let serverCode = """
        import http.server, sys
        address, port, token = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", str(len(token)))
                self.end_headers()
                self.wfile.write(token)
            def log_message(self, *arguments):
                pass
        http.server.ThreadingHTTPServer((address, port), Handler).serve_forever()
        """

    static func ip(_ arguments: [String]) async throws -> CommandResult {
        try await CommandRunner.run("/usr/sbin/ip", arguments, timeout: .seconds(20))
    }

    static func runSync(_ executable: String, _ arguments: [String]) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try ProcessLaunch.run(process)
        process.waitUntilExit()
        return process.terminationStatus
    }
}

/// A listening TCP socket on `address`, port chosen by the kernel; connections wait in its backlog.
struct TCPListener {
    let descriptor: Int32
    let port: Int

    init(address: String) throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var socketAddress = Self.address(address, 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) }
        }
        guard descriptor >= 0, bound == 0, listen(descriptor, 16) == 0 else {
            throw TestFailure("cannot listen on \(address): \(String(cString: strerror(errno)))")
        }
        _ = withUnsafeMutablePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        self.descriptor = descriptor
        self.port = Int(UInt16(bigEndian: socketAddress.sin_port))
    }

    func close() { _ = Glibc.close(descriptor) }

    static func address(_ text: String, _ port: Int) -> sockaddr_in {
        var socketAddress = sockaddr_in()
        socketAddress.sin_family = sa_family_t(AF_INET)
        socketAddress.sin_port = UInt16(port).bigEndian
        inet_pton(AF_INET, text, &socketAddress.sin_addr)
        return socketAddress
    }

    /// Whether a connection from this process to `address:port` succeeds.
    static func canConnect(_ address: String, _ port: Int) -> Bool {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { _ = Glibc.close(descriptor) }
        var socketAddress = Self.address(address, port)
        return withUnsafePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        } == 0
    }
}
