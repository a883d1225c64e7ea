import Foundation

/// Starts a Foundation `Process`, one at a time in this test process.
///
/// On Linux, `Process.run()` makes a socket pair without close-on-exec, leaves one end to the child and learns of
/// the child's exit when that end closes. Two runs at once race: a child started by one can inherit the other's end
/// and keep it open, so the first child's exit goes unnoticed until the second exits (a zombie, and a test waiting
/// for it forever while the process it waits behind waits for that test). Runs under one lock cannot race: each
/// closes its end in this process before the next starts. Use it for every `Process` tests start.
public enum ProcessLaunch {
    private static let lock = NSLock()

    public static func run(_ process: Process) throws {
        lock.lock()
        defer { lock.unlock() }
        try process.run()
    }
}
