import Logging
import Testing
import VergeCore

@testable import VergeSupervisor

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

@Suite("Supervisor processes")
struct SupervisorTests {
    @Test func childWritesToTheSocketPairAtDescriptorThree() async throws {
        try await withSupervisor { supervisor, _ in
            let pair = try Descriptors.socketPair()
            defer { Descriptors.close(pair.parent) }
            let exits = ExitRecorder()
            let pid = try await supervisor.spawn(
                shell("echo hi >&3", descriptors: [nil, nil, nil, pair.child]),
                onExit: exits.onExit
            )
            Descriptors.close(pair.child)
            #expect(pid > 0)
            #expect(try readAll(pair.parent) == "hi\n")
            #expect(try await exits.next() == .exited(0))
            #expect(supervisor.liveProcessCount == 0)
        }
    }

    @Test(arguments: [0, 7, 255] as [Int32])
    func exitStatusPropagates(status: Int32) async throws {
        try await withSupervisor { supervisor, _ in
            let exits = ExitRecorder()
            _ = try await supervisor.spawn(shell("exit \(status)", descriptors: []), onExit: exits.onExit)
            #expect(try await exits.next() == .exited(status))
        }
    }

    @Test func killedProcessReportsTheSignal() async throws {
        try await withSupervisor { supervisor, _ in
            let exits = ExitRecorder()
            let spec = ProcessSpec(
                executable: "sleep",
                arguments: ["100"],
                environment: testEnvironment,
                workingDirectory: "/",
                fileDescriptors: []
            )
            let pid = try await supervisor.spawn(spec, onExit: exits.onExit)
            #expect(supervisor.liveProcessCount == 1)
            supervisor.signal(pid: pid, SIGKILL, group: false)
            #expect(try await exits.next() == .signaled(SIGKILL))
            #expect(supervisor.liveProcessCount == 0)
            #expect(exits.reported == 1)
        }
    }

    @Test func environmentIsExactlyTheGivenOne() async throws {
        try await withSupervisor { supervisor, _ in
            let output = try Descriptors.pipe()
            defer { Descriptors.close(output.read) }
            let exits = ExitRecorder()
            let environment = ["PATH": "/usr/bin:/bin", "VERGE_FUNCTION": "hello world", "EMPTY": ""]
            _ = try await supervisor.spawn(
                ProcessSpec(
                    executable: "env",  // found on the PATH above
                    arguments: [],
                    environment: environment,
                    workingDirectory: "/",
                    fileDescriptors: [nil, output.write]
                ),
                onExit: exits.onExit
            )
            Descriptors.close(output.write)
            let lines = try readAll(output.read).split(separator: "\n").map(String.init)
            #expect(Set(lines) == ["PATH=/usr/bin:/bin", "VERGE_FUNCTION=hello world", "EMPTY="])
            #expect(lines.count == 3)
            #expect(try await exits.next() == .exited(0))
        }
    }

    @Test func workingDirectoryIsHonoured() async throws {
        let directory = try makeTemporaryDirectory()
        defer { rmdir(directory) }
        let expected = try #require(
            realpath(directory, nil).map { pointer in
                defer { free(pointer) }
                return String(cString: pointer)
            })

        try await withSupervisor { supervisor, _ in
            let output = try Descriptors.pipe()
            defer { Descriptors.close(output.read) }
            let exits = ExitRecorder()
            var spec = shell("pwd -P", descriptors: [nil, output.write])
            spec.workingDirectory = directory
            _ = try await supervisor.spawn(spec, onExit: exits.onExit)
            Descriptors.close(output.write)
            #expect(try readAll(output.read) == expected + "\n")
            #expect(try await exits.next() == .exited(0))
        }
    }

    @Test func groupSignalKillsTheChildAndItsBackgroundGrandchild() async throws {
        try await withSupervisor { supervisor, _ in
            let pair = try Descriptors.socketPair()
            defer { Descriptors.close(pair.parent) }
            let exits = ExitRecorder()
            let pid = try await supervisor.spawn(
                shell("sleep 100 & echo $! >&3; wait", descriptors: [nil, nil, nil, pair.child]),
                onExit: exits.onExit
            )
            Descriptors.close(pair.child)
            // The grandchild keeps fd 3 open: read up to the newline, not to end of file.
            let line = try readAll(pair.parent) { $0.contains("\n") }
            let grandchild = try #require(Int32(line.filter(\.isNumber)))
            #expect(getpgid(grandchild) == pid)
            #expect(getsid(pid) == pid)

            supervisor.signal(pid: pid, SIGKILL, group: true)
            #expect(try await exits.next() == .signaled(SIGKILL))
            try await eventually("the grandchild \(grandchild) to die") { isGone(grandchild) }
        }
    }

    @Test func singleSignalLeavesTheGroupAlone() async throws {
        try await withSupervisor { supervisor, _ in
            let pair = try Descriptors.socketPair()
            defer { Descriptors.close(pair.parent) }
            let exits = ExitRecorder()
            let pid = try await supervisor.spawn(
                shell("sleep 100 & echo $! >&3; wait", descriptors: [nil, nil, nil, pair.child]),
                onExit: exits.onExit
            )
            Descriptors.close(pair.child)
            let line = try readAll(pair.parent) { $0.contains("\n") }
            let grandchild = try #require(Int32(line.filter(\.isNumber)))

            supervisor.signal(pid: pid, SIGKILL, group: false)
            #expect(try await exits.next() == .signaled(SIGKILL))
            #expect(!isGone(grandchild))
            // The group outlives its reaped leader and can still be signalled as a whole.
            supervisor.signal(pid: pid, SIGKILL, group: true)
            try await eventually("the grandchild \(grandchild) to die") { isGone(grandchild) }
        }
    }

    @Test func signallingAReapedProcessIsIgnored() async throws {
        try await withSupervisor { supervisor, _ in
            let exits = ExitRecorder()
            let pid = try await supervisor.spawn(shell("exit 0", descriptors: []), onExit: exits.onExit)
            #expect(try await exits.next() == .exited(0))
            supervisor.signal(pid: pid, SIGTERM, group: false)
            supervisor.signal(pid: pid, SIGTERM, group: true)
            supervisor.signal(pid: 0, SIGTERM)  // never the host's own group
        }
    }

    @Test(arguments: ["/nonexistent/verge-worker", "verge-no-such-command"])
    func missingExecutableThrowsAndNeverExits(executable: String) async throws {
        try await withSupervisor { supervisor, _ in
            let exits = ExitRecorder()
            let spec = ProcessSpec(
                executable: executable,
                arguments: [],
                environment: testEnvironment,
                workingDirectory: "/",
                fileDescriptors: []
            )
            let error = try await #require(throws: VergeError.self) {
                try await supervisor.spawn(spec, onExit: exits.onExit)
            }
            #expect(error.code == .initFailed)
            #expect(error.message == "cannot start '\(executable)': No such file or directory")
            #expect(supervisor.liveProcessCount == 0)
            try await Task.sleep(for: .milliseconds(200))
            #expect(exits.reported == 0)
        }
    }

    @Test func nonExecutableFileThrowsPermissionDenied() async throws {
        let directory = try makeTemporaryDirectory()
        let file = directory + "/worker"
        try writeFile(file, "#!/bin/sh\n", mode: 0o644)
        defer {
            unlink(file)
            rmdir(directory)
        }
        try await withSupervisor { supervisor, _ in
            let exits = ExitRecorder()
            let spec = ProcessSpec(
                executable: file,
                arguments: [],
                environment: testEnvironment,
                workingDirectory: "/",
                fileDescriptors: []
            )
            let error = try await #require(throws: VergeError.self) {
                try await supervisor.spawn(spec, onExit: exits.onExit)
            }
            #expect(error.code == .initFailed)
            #expect(error.message == "cannot start '\(file)': Permission denied")
            #expect(exits.reported == 0)
        }
    }

    @Test func missingWorkingDirectoryThrows() async throws {
        try await withSupervisor { supervisor, _ in
            var spec = shell("exit 0", descriptors: [])
            spec.workingDirectory = "/nonexistent/verge-directory"
            let error = try await #require(throws: VergeError.self) {
                try await supervisor.spawn(spec, onExit: { _ in Issue.record("unexpected exit") })
            }
            #expect(error.code == .initFailed)
        }
    }

    @Test func childSeesOnlyItsOwnDescriptors() async throws {
        try await withSupervisor { supervisor, _ in
            let output = try Descriptors.pipe()
            defer { Descriptors.close(output.read) }
            let pair = try Descriptors.socketPair()
            defer { Descriptors.close(pair.parent) }
            // An unrelated close-on-exec descriptor, parked at a number nothing else would use.
            let unrelated = try Descriptors.pipe()
            let parked = fcntl(unrelated.write, F_DUPFD_CLOEXEC, 200)
            #expect(parked >= 200)
            defer {
                Descriptors.close(unrelated.read)
                Descriptors.close(unrelated.write)
                Descriptors.close(parked)
            }

            // Descriptors this test process itself inherited without close-on-exec (from whatever launched it) pass
            // on to children too: libuv does not close them, and they are not ours to judge here.
            let inheritedByHost = try inheritableDescriptors()
            #expect(!inheritedByHost.contains(parked))

            let exits = ExitRecorder()
            _ = try await supervisor.spawn(
                shell("ls /proc/self/fd", descriptors: [nil, output.write, nil, pair.child]),
                onExit: exits.onExit
            )
            Descriptors.close(output.write)
            Descriptors.close(pair.child)
            let listed = Set(try readAll(output.read).split(separator: "\n").compactMap { Int32($0) })
            #expect(try await exits.next() == .exited(0))

            #expect(listed.isSuperset(of: [0, 1, 2, 3]))
            #expect(!listed.contains(parked))
            #expect(!listed.contains(unrelated.read))
            // Besides 0–3, only the directory ls itself opened to list /proc/self/fd. Other tests of this process open
            // descriptors meanwhile: those inheritable before or after the spawn are theirs.
            let extra = listed.subtracting([0, 1, 2, 3]).subtracting(inheritedByHost)
                .subtracting(try inheritableDescriptors())
            #expect(extra.count <= 1, "child saw \(listed.sorted()); the host leaks \(inheritedByHost.sorted())")
        }
    }

    @Test func fiftyConcurrentSpawnsAreAllReaped() async throws {
        try await withSupervisor { supervisor, _ in
            let exits = ExitRecorder()
            let pids = try await withThrowingTaskGroup(of: Int32.self) { group in
                for i in 0..<50 {
                    group.addTask {
                        try await supervisor.spawn(shell("exit \(i % 3)", descriptors: []), onExit: exits.onExit)
                    }
                }
                return try await group.reduce(into: Set<Int32>()) { $0.insert($1) }
            }
            #expect(pids.count == 50)
            let reported = try await exits.collect(50)
            #expect(reported.count == 50)
            #expect(reported.filter { $0 == .exited(0) }.count == 17)
            #expect(supervisor.liveProcessCount == 0)
        }
    }

    @Test func supervisorsSharingALoopCountTheirOwnProcesses() async throws {
        try await withSupervisor { first, loop in
            let second = Supervisor(loop: loop, logger: .init(label: "second") { _ in SwiftLogNoOpLogHandler() })
            let exits = ExitRecorder()
            let pid = try await first.spawn(shell("sleep 100", descriptors: []), onExit: exits.onExit)
            #expect(first.liveProcessCount == 1)
            #expect(second.liveProcessCount == 0)
            second.signal(pid: pid, SIGKILL, group: false)  // not its process: ignored
            try await Task.sleep(for: .milliseconds(100))
            #expect(first.liveProcessCount == 1)
            first.signal(pid: pid, SIGKILL)
            #expect(try await exits.next() == .signaled(SIGKILL))
        }
    }

    @Test func processExitDescriptions() {
        #expect(ProcessExit.exited(7).description == "exited with status 7")
        #expect(ProcessExit.signaled(9).description == "terminated by signal 9")
    }
}

// File access here goes through close-on-exec descriptors: a plain open() racing with a spawn in a concurrent test
// would leak into that test's child.

/// The contents of a small file, or nil.
func readFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { Descriptors.close(fd) }
    var buffer = [UInt8](repeating: 0, count: 4096)
    let n = read(fd, &buffer, buffer.count)
    return n >= 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : nil
}

func writeFile(_ path: String, _ contents: String, mode: mode_t) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
    guard fd >= 0 else { throw VergeError(.internalError, "cannot create \(path)") }
    defer { Descriptors.close(fd) }
    let bytes = Array(contents.utf8)
    guard write(fd, bytes, bytes.count) == bytes.count else { throw VergeError(.internalError, "cannot write \(path)") }
}

/// A new empty directory under `TMPDIR` (or /tmp).
func makeTemporaryDirectory() throws -> String {
    let base = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
    var template = Array((base + "/verge-supervisor-XXXXXX").utf8CString)
    guard let path = mkdtemp(&template) else {
        throw VergeError(.internalError, "cannot create a temporary directory in \(base)")
    }
    return String(cString: path)
}

/// This process's descriptors above 2 that lack close-on-exec.
func inheritableDescriptors() throws -> Set<Int32> {
    guard let directory = opendir("/proc/self/fd") else {
        throw VergeError(.internalError, "cannot list /proc/self/fd")
    }
    defer { closedir(directory) }
    var listed: [Int32] = []
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if let fd = Int32(name) { listed.append(fd) }
    }
    let own = dirfd(directory)
    return Set(listed.filter { $0 > 2 && $0 != own && fcntl($0, F_GETFD) >= 0 && fcntl($0, F_GETFD) & FD_CLOEXEC == 0 })
}

/// Whether `pid` is gone: no such process, or a zombie waiting for an init that does not reap orphans (some
/// container inits never do); either way it no longer runs.
func isGone(_ pid: Int32) -> Bool {
    if kill(pid, 0) != 0 && errno == ESRCH { return true }
    guard let stat = readFile("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")")
    else { return true }
    return stat[stat.index(after: close)...].drop { $0 == " " }.hasPrefix("Z")
}
