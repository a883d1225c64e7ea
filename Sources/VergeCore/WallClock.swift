#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The system's real-time clock, for timestamps that leave the process (usage records, logs).
/// Durations are measured with `ContinuousClock`, never with this.
public enum WallClock {
    /// Microseconds since the Unix epoch.
    public static func microseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1_000_000 + Int64(spec.tv_nsec) / 1000
    }

    /// Milliseconds since the Unix epoch.
    public static func milliseconds() -> Int64 { microseconds() / 1000 }
}
