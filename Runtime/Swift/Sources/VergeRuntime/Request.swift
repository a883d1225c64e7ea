import VergeProtocol

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

public typealias ClientLocation = VergeProtocol.ClientLocation
public typealias HostInfo = VergeProtocol.HostInfo
public typealias FunctionInfo = VergeProtocol.FunctionInfo

/// An HTTP request as the function sees it.
public struct Request: Sendable {
    public var method: String
    /// The path the client asked for, starting with `/`, without the query string.
    public var path: String
    /// The raw query string, without `?`.
    public var query: String
    /// Header fields in the order received; names are lower-case.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    /// The first value of a header field, matched case-insensitively.
    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first { $0.name == lower }?.value
    }

    /// Query parameters decoded from `query` (`+` and percent-escapes undone); later duplicates win.
    public var queryItems: [String: String] {
        var items: [String: String] = [:]
        for pair in query.split(separator: "&") where !pair.isEmpty {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = Self.unescape(parts[0])
            items[name] = parts.count > 1 ? Self.unescape(parts[1]) : ""
        }
        return items
    }

    /// The body as UTF-8 text (invalid sequences repaired).
    public var text: String { String(decoding: body, as: UTF8.self) }

    /// Decodes the body as JSON.
    public func decode<Value: Decodable>(_ type: Value.Type) throws -> Value {
        try JSONDecoder().decode(type, from: Data(body))
    }

    /// Undoes `+` and `%XX` escapes; a `%` without two hex digits stays as it is and invalid UTF-8 is repaired.
    /// (FoundationEssentials has no percent-decoding.)
    private static func unescape(_ part: Substring) -> String {
        let bytes = Array(part.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "%"), index + 2 < bytes.count,
                let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2])
            {
                out.append(high << 4 | low)
                index += 3
            } else {
                out.append(byte == UInt8(ascii: "+") ? UInt8(ascii: " ") : byte)
                index += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// What the runtime knows about the invocation besides the request.
public struct Context: Sendable {
    public var invocationID: String
    /// When the host gives up on this invocation.
    public var deadline: Date
    /// Where the client is, when the gateway could tell.
    public var client: ClientLocation?
    /// The edge host running this invocation.
    public var host: HostInfo
    public var function: FunctionInfo

    /// Time left before the deadline.
    public var remainingTime: Duration {
        .milliseconds(Int64((deadline.timeIntervalSinceNow * 1000).rounded(.down)))
    }
}
