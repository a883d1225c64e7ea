#if os(Linux)
import Foundation
import Glibc
import Testing
import VergeCore
import VergeTestSupport
import VergeUsage

/// `kill -9` of a process that is recording: every record whose `record` call had returned is in the database.
///
/// The writing process is this test binary run again with only ``HostLedgerCrashTests/crashChild()`` selected and the
/// database path in ``HostLedgerCrashTests/childDatabaseKey``, so it exercises the real ledger code. It records from
/// several tasks at once (so kills land inside group commits) and prints `committed ID` after each call returns;
/// the parent kills it with SIGKILL mid-stream, then reopens the database.
@Suite struct HostLedgerCrashTests {
    static let childDatabaseKey = "VERGE_USAGE_CRASH_CHILD_DATABASE"
    static let childTestFilter = "VergeUsageTests.HostLedgerCrashTests/crashChild"

    @Test func everyRecordReportedCommittedSurvivesSIGKILL() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir + "/ledger.sqlite"
            let child = Process()
            child.executableURL = URL(
                fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
            )
            child.arguments = ["--testing-library", "swift-testing", "--filter", Self.childTestFilter]
            var environment = ProcessInfo.processInfo.environment
            environment[Self.childDatabaseKey] = path
            child.environment = environment
            let output = Pipe()
            _ = fcntl(output.fileHandleForReading.fileDescriptor, F_SETFD, FD_CLOEXEC)
            child.standardOutput = output
            child.standardError = FileHandle.nullDevice
            try ProcessLaunch.run(child)

            // Read "committed ID" lines; kill once enough calls have returned, then read what was already written.
            // The child runs for seconds: read it off Swift concurrency's threads.
            nonisolated(unsafe) let running = child
            let reader = output.fileHandleForReading
            let (reported, killed) = try await blocking { () -> ([String], Bool) in
                var reported: [String] = []
                var killed = false
                var pending = Data()
                while true {
                    let chunk = reader.availableData
                    if chunk.isEmpty { break }
                    pending.append(chunk)
                    while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                        let line = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
                        pending.removeSubrange(pending.startIndex...newline)
                        if line.hasPrefix("committed ") {
                            reported.append(String(line.dropFirst("committed ".count)))
                        }
                    }
                    if !killed && reported.count >= 2_000 {
                        kill(running.processIdentifier, SIGKILL)
                        killed = true
                    }
                }
                running.waitUntilExit()
                return (reported, killed)
            }

            try #require(killed, "the child stopped after \(reported.count) records without being killed")
            #expect(child.terminationReason == .uncaughtSignal)
            #expect(child.terminationStatus == SIGKILL)

            let stored = try await HostLedger(path: path).allRecords().map(\.invocationID)
            #expect(Set(stored).count == stored.count)
            let missing = Set(reported).subtracting(stored)
            #expect(missing.isEmpty, "\(missing.count) of \(reported.count) reported records are missing")
        }
    }

    /// The writing process of ``everyRecordReportedCommittedSurvivesSIGKILL()``; enabled only there.
    @Test(.enabled(if: ProcessInfo.processInfo.environment[childDatabaseKey] != nil))
    func crashChild() async throws {
        let path = try #require(ProcessInfo.processInfo.environment[Self.childDatabaseKey])
        let ledger = try HostLedger(path: path)
        let deadline = ContinuousClock.now + .seconds(60)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<8 {
                group.addTask {
                    var index = 0
                    while ContinuousClock.now < deadline {
                        let record = makeRecord(writer * 10_000_000 + index)
                        try await ledger.record(record)
                        // One unbuffered write per line, after `record` returned.
                        FileHandle.standardOutput.write(Data("committed \(record.invocationID)\n".utf8))
                        index += 1
                    }
                }
            }
            try await group.waitForAll()
        }
    }
}
#endif
