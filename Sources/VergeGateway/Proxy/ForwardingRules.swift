import Foundation
import HTTPTypes
import Synchronization

/// What the gateway passes on between a client and a host, as pure functions (tested without sockets): which
/// header fields are the connection's and never forwarded, which request id a call carries, and which calls may be
/// sent to a second host.
public enum ForwardingRules {
    /// Fields that describe one connection, not the message (RFC 9110 §7.6.1), in both directions. Every field a
    /// `Connection` header names is one too.
    public static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer",
        "transfer-encoding", "upgrade",
    ]

    /// The lower-cased names of a message's hop-by-hop fields: the fixed list plus those its `Connection` fields
    /// (`values`) name.
    public static func connectionFields(named values: [String]) -> Set<String> {
        // The common cases name nothing beyond the fixed list: no set is built per message.
        if values.allSatisfy({ ["keep-alive", "close", ""].contains($0.lowercased()) }) { return hopByHop }
        var names = hopByHop
        for value in values {
            for token in value.split(separator: ",") {
                let name = token.trimmingCharacters(in: .whitespaces).lowercased()
                if !name.isEmpty { names.insert(name) }
            }
        }
        return names
    }

    /// Request ids a client may choose: 1–128 characters of `A–Z a–z 0–9 - _ . : /`. Anything else (empty, too
    /// long, spaces, control characters, quotes) is replaced by a fresh id, so a request id is always safe to log
    /// and to echo.
    public static func acceptedRequestID(_ value: String?) -> String? {
        guard let value, (1...128).contains(value.utf8.count) else { return nil }
        let valid = value.utf8.allSatisfy { byte in
            (48...57).contains(byte) || (65...90).contains(byte) || (97...122).contains(byte)
                || [UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: ":"), UInt8(ascii: "/")]
                    .contains(byte)
        }
        return valid ? value : nil
    }

    /// A fresh request id: 32 lower-case hex digits, unique in the process and across processes (a random
    /// 64-bit prefix drawn once per process, then a counter mixed through SplitMix64). No system call per id: two
    /// `getrandom` calls per request were a measurable part of the proxy's cost. Ids are for tracing, not secrets.
    public static func newRequestID() -> String {
        let sequence = requestSequence.add(1, ordering: .relaxed).newValue
        return requestIDPrefixHex + hex(splitMix64(sequence ^ requestIDPrefix))
    }

    private static let requestIDPrefix: UInt64 = {
        var generator = SystemRandomNumberGenerator()
        return generator.next()
    }()
    private static let requestIDPrefixHex = hex(requestIDPrefix)
    private static let requestSequence = Atomic<UInt64>(0)

    private static func splitMix64(_ seed: UInt64) -> UInt64 {
        var z = seed &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// 16 lower-case hex digits, written in place.
    private static func hex(_ value: UInt64) -> String {
        String(unsafeUninitializedCapacity: 16) { buffer in
            let digits: StaticString = "0123456789abcdef"
            for index in 0..<16 {
                let nibble = Int((value >> UInt64(60 - 4 * index)) & 0xF)
                buffer[index] = digits.utf8Start[nibble]
            }
            return 16
        }
    }

    /// Methods that HTTP defines as idempotent and safe to send again after a host failed before answering.
    public static func isIdempotent(_ method: HTTPRequest.Method) -> Bool {
        method == .get || method == .head || method == .options
    }

    /// What a host's own error (its `x-verge-error` code) on a proxied call means for routing.
    public enum HostAnswer: Equatable, Sendable {
        /// Not the host's own failure (a function's answer, success or not).
        case served
        /// The host is saturated or going away and did not hand the call to a function: try the next host.
        case spill
        /// The host failed by itself (not its function): counts against its health; the answer is passed on.
        case hostFailure
        /// The host does not run the function (any more, or not yet): the gateway's host list is behind. No
        /// function saw the call; it goes to another host that runs the function once the list is fresh.
        case missing
    }

    public static func classify(status: Int, errorMarker: String?) -> HostAnswer {
        if status == 404, errorMarker == "function_not_found" { return .missing }
        guard let code = errorMarker, status >= 500 else { return .served }
        switch code {
        // Saturated, stopping, or not (yet, or any more) trusting this gateway: no function saw the call.
        case "overloaded", "shutting_down", "untrusted_caller": return status == 503 ? .spill : .hostFailure
        case "internal_error", "upstream_failed", "no_healthy_host": return .hostFailure
        // A function that crashed, timed out, hit a limit or answered badly says nothing about the host.
        default: return .served
        }
    }
}
