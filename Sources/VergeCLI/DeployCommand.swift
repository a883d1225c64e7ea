import ArgumentParser
import Foundation
import VergeBundle
import VergeControlPlane
import VergeCore

/// `verge deploy DIR`: validate, build (Swift), pack, upload, then wait until every host serves the new version.
struct DeployCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deploy",
        abstract: "Deploy a function bundle directory and wait until it is live on every healthy host."
    )

    @Argument(help: "The function's directory (with verge.json).")
    var directory: String

    @OptionGroup var api: APIOptions

    @Option(help: "Seconds to wait for every host to serve the new version.")
    var timeout: Double = 60

    @Flag(name: .customLong("no-wait"), help: "Return once the control plane has accepted the version.")
    var noWait = false

    @Option(help: "The swift executable used to build Swift functions.")
    var swift: String = "swift"

    func run() async throws {
        do {
            try await deploy()
        } catch let error as VergeCLIError {
            Output.error("error: \(error)")
            throw ExitCode.failure
        } catch let error as VergeError {
            Output.error("error: \(error.message)")
            throw ExitCode.failure
        }
    }

    private func deploy() async throws {
        let directory = RuntimeLocator.absolute(self.directory)
        guard let manifestBytes = FileManager.default.contents(atPath: directory + "/" + Manifest.fileName) else {
            throw VergeCLIError("no \(Manifest.fileName) in \(self.directory)")
        }
        let manifest = try Manifest.parse(Array(manifestBytes))
        var extraFiles: [(path: String, source: String)] = []
        if manifest.runtime == .swift {
            Output.line("Building \(manifest.entry) (swift build -c release)…")
            let binary = try SwiftBuilder(swift: swift).build(package: directory, product: manifest.entry)
            extraFiles.append((path: "bin/" + manifest.entry, source: binary))
        }
        let archive = try BundleArchive.pack(directory: directory, extraFiles: extraFiles)
        let version = BundleArchive.sha256Hex(archive)
        Output.line("Uploading \(manifest.name) (\(Self.size(archive.count)), sha256 \(version.prefix(12)))…")
        let created = try await api.client.post(
            "/v1/functions/\(manifest.name)/versions", body: archive, contentType: "application/zip",
            as: VersionSummary.self
        )
        Output.line("Version \(created.number) of \(manifest.name) is live at the control plane.")
        if noWait { return }

        let clock = ContinuousClock()
        let start = clock.now
        let deadline = start + .milliseconds(Int64(timeout * 1000))
        var reported = Set<String>()
        while true {
            let detail = try await api.client.get("/v1/functions/\(manifest.name)", as: FunctionDetail.self)
            for host in detail.hosts where host.live && host.version == created.version && !reported.contains(host.host)
            {
                reported.insert(host.host)
                Output.line("  \(host.host): serving version \(created.number)")
            }
            // Hosts outside the function's `regions` never run it: the deploy waits for the others.
            let healthy = detail.hosts.filter { $0.healthy && HostRegion.allows(manifest.regions, host: $0.host) }
            if detail.function.liveVersion == created.version, !healthy.isEmpty,
                healthy.allSatisfy({ $0.version == created.version })
            {
                let elapsed = clock.now - start
                Output.line(
                    "Deployed \(manifest.name) version \(created.number) to \(healthy.count) host(s) in \(Self.seconds(elapsed))."
                )
                return
            }
            if detail.function.liveVersion != created.version {
                throw VergeCLIError("another deploy replaced version \(created.number) while waiting")
            }
            guard clock.now < deadline else {
                let missing = healthy.filter { $0.version != created.version }.map(\.host)
                throw VergeCLIError(
                    healthy.isEmpty
                        ? (manifest.regions.isEmpty
                            ? "no healthy host is connected to the control plane"
                            : "no healthy host of the regions \(manifest.regions.joined(separator: ", ")) is connected")
                        : "not live within \(Int(timeout)) s on: \(missing.joined(separator: ", "))"
                )
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    static func size(_ bytes: Int) -> String {
        bytes < 1024
            ? "\(bytes) B"
            : bytes < 1024 * 1024
                ? String(format: "%.1f KiB", Double(bytes) / 1024)
                : String(format: "%.1f MiB", Double(bytes) / 1_048_576)
    }

    static func seconds(_ duration: Duration) -> String {
        String(format: "%.2f s", duration.seconds)
    }
}

/// Builds a Swift function's executable with SwiftPM.
struct SwiftBuilder {
    let swift: String

    func build(package: String, product: String) throws -> String {
        try run(["build", "-c", "release", "--package-path", package, "--product", product], echo: true)
        let binPath = try run(["build", "-c", "release", "--package-path", package, "--show-bin-path"], echo: false)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let binary = binPath + "/" + product
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw VergeCLIError("swift build produced no executable at \(binary)")
        }
        return binary
    }

    @discardableResult
    private func run(_ arguments: [String], echo: Bool) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [swift] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = echo ? FileHandle.standardError : pipe
        do { try process.run() } catch { throw VergeCLIError("cannot run \(swift): \(error)") }
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: output, as: UTF8.self)
        guard process.terminationStatus == 0 else {
            if echo { Output.error(text) }
            throw VergeCLIError(
                "\(swift) \(arguments.joined(separator: " ")) failed with status \(process.terminationStatus)")
        }
        if echo, !text.isEmpty { Output.error(text.trimmingCharacters(in: .newlines)) }
        return text
    }
}
