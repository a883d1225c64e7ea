import CVergeSeccomp
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Runs a short host command (a firewall tool) to completion: stdin `/dev/null`, stdout and stderr captured (first
/// 64 KiB). Blocks; for start-up and for the few commands of a worker's launch.
enum HelperCommand {
    /// The exit status (128 + signal when killed, -1 when it could not run) and the output.
    static func run(_ executable: String, _ arguments: [String]) -> (status: Int32, output: String) {
        let (status, output) = run(executable, arguments, environment: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"])
        return (status, output.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Runs `executable` with exactly `environment` (`NAME=value` entries) and, besides stdio, each of
    /// `descriptors` (ours → the child's number); `afterSpawn` runs once the child has its copies.
    static func run(
        _ executable: String, _ arguments: [String], environment: [String], descriptors: [(Int32, Int32)] = [],
        afterSpawn: () -> Void = {}, onChildExit: () -> Void = {}
    ) -> (status: Int32, output: String) {
        var output: [Int32] = [-1, -1]
        guard verge_pipe_cloexec(&output) == 0 else { return (-1, "cannot create a pipe") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, output[1], 1)
        posix_spawn_file_actions_adddup2(&actions, output[1], 2)
        for (ours, theirs) in descriptors { posix_spawn_file_actions_adddup2(&actions, ours, theirs) }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, nil, argv, envp)
        close(output[1])
        afterSpawn()
        guard rc == 0 else {
            close(output[0])
            return (-1, "cannot start \(executable): \(String(cString: strerror(rc)))")
        }
        var collected: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        var status: Int32 = 0
        var exited = false
        // Read until EOF; but once the child itself has exited, `onChildExit` ends whatever it left behind holding
        // the pipe (a sandbox's processes), so this never waits on a straggler.
        while true {
            var poller = pollfd(fd: output[0], events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, 100)
            if ready > 0 {
                let count = buffer.withUnsafeMutableBytes { Glibc.read(output[0], $0.baseAddress, $0.count) }
                if count > 0 && collected.count < 64 * 1024 { collected += buffer[0..<count] }
                if count == 0 || (count < 0 && errno != EINTR) { break }
            } else if ready < 0 && errno != EINTR {
                break
            }
            if !exited, waitpid(pid, &status, WNOHANG) == pid {
                exited = true
                onChildExit()
            }
        }
        close(output[0])
        if !exited {
            var waited: pid_t
            repeat { waited = waitpid(pid, &status, 0) } while waited < 0 && errno == EINTR
            guard waited == pid else { return (-1, "cannot wait for \(executable)") }
        }
        let exitStatus = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (exitStatus, String(decoding: collected, as: UTF8.self))
    }
}
