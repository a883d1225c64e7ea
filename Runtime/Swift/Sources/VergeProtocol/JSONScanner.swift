#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A strict reader of JSON text (RFC 8259) that decodes each value where it stands, for the texts read on every
/// call or in bulk: the worker protocol's heads, and the usage batches hosts ship.
///
/// Foundation's `JSONDecoder` first builds a tree of every value and then decodes it through `Codable`'s generic
/// machinery: for a request head that was three quarters of a Swift worker's instructions per call, and about
/// nine tenths of the control plane's cost of a usage record. A reader of one shape walks the bytes once with
/// this scanner instead, asking for the value it expects at each place:
///
/// ```swift
/// try scanner.expect(UInt8(ascii: "{"), "expected an object")
/// if try !scanner.consume(UInt8(ascii: "}")) {
///     repeat {
///         let key = try scanner.keyBytes()
///         if key.elementsEqual("status".utf8) { status = try scanner.integer() } else { try scanner.skipValue() }
///     } while try scanner.nextMember()
/// }
/// try scanner.end()
/// ```
///
/// Strict where JSON is: no trailing commas, comments, leading zeros, raw control characters, invalid UTF-8 or lone
/// surrogate escapes; integers within `Int64`, finite numbers. ``skipValue()`` bounds nesting
/// (``maximumDepth``), so hostile input cannot exhaust the stack. Whether a key may repeat or be unknown is the
/// reader's rule, not the scanner's.
public struct JSONScanner {
    /// The deepest nesting of arrays and objects ``skipValue()`` follows.
    public static let maximumDepth = 64

    /// What is wrong, and at which byte.
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var message: String
        public var offset: Int
        public var description: String { "\(message) at byte \(offset)" }

        public init(_ message: String, at offset: Int) {
            self.message = message
            self.offset = offset
        }
    }

    public let bytes: UnsafeRawBufferPointer
    /// Where the scanner is.
    public var offset = 0

    /// A scanner over `bytes`, which must outlive it.
    public init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    /// A failure at the scanner's position.
    public func failure(_ message: String) -> Failure {
        Failure(message, at: offset)
    }

    // MARK: Structure

    public mutating func skipWhitespace() {
        while offset < bytes.count {
            switch bytes[offset] {
            case 0x20, 0x0A, 0x0D, 0x09: offset += 1
            default: return
            }
        }
    }

    /// Skips whitespace and `byte` if it is next.
    public mutating func consume(_ byte: UInt8) throws(Failure) -> Bool {
        skipWhitespace()
        guard offset < bytes.count else { throw failure("unexpected end of data") }
        if bytes[offset] == byte {
            offset += 1
            return true
        }
        return false
    }

    public mutating func expect(_ byte: UInt8, _ message: String) throws(Failure) {
        guard try consume(byte) else { throw failure(message) }
    }

    /// After an object member: true for `,`, false for `}`.
    public mutating func nextMember() throws(Failure) -> Bool {
        if try consume(UInt8(ascii: ",")) { return true }
        guard try consume(UInt8(ascii: "}")) else { throw failure("expected ',' or '}' after a value") }
        return false
    }

    /// After an array element: true for `,`, false for `]`.
    public mutating func nextElement() throws(Failure) -> Bool {
        if try consume(UInt8(ascii: ",")) { return true }
        guard try consume(UInt8(ascii: "]")) else { throw failure("expected ',' or ']' after a value") }
        return false
    }

    /// An object key and its colon: the bytes between the quotes, as written. A key with escapes or non-ASCII
    /// characters is checked like any string and returned escaped, so it never equals a plain ASCII name.
    public mutating func keyBytes() throws(Failure) -> UnsafeRawBufferPointer {
        try expect(UInt8(ascii: "\""), "expected a key")
        let start = offset
        while offset < bytes.count, bytes[offset] != UInt8(ascii: "\"") {
            let byte = bytes[offset]
            if byte < 0x20 || byte >= 0x80 || byte == UInt8(ascii: "\\") {
                offset = start - 1
                _ = try string()  // checks it; its end is the key's
                let name = UnsafeRawBufferPointer(rebasing: bytes[start..<(offset - 1)])
                try expect(UInt8(ascii: ":"), "expected ':' after a key")
                return name
            }
            offset += 1
        }
        guard offset < bytes.count else { throw failure("unexpected end of data in a key") }
        let name = UnsafeRawBufferPointer(rebasing: bytes[start..<offset])
        offset += 1
        try expect(UInt8(ascii: ":"), "expected ':' after a key")
        return name
    }

    /// Checks that nothing but whitespace follows.
    public mutating func end() throws(Failure) {
        skipWhitespace()
        guard offset == bytes.count else { throw failure("unexpected data after the value") }
    }

    /// Skips one value of any kind, checking it as strictly as reading it would.
    public mutating func skipValue() throws(Failure) {
        try skipValue(depth: 0)
    }

    private mutating func skipValue(depth: Int) throws(Failure) {
        skipWhitespace()
        guard offset < bytes.count else { throw failure("unexpected end of data") }
        switch bytes[offset] {
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            guard depth < Self.maximumDepth else { throw failure("nested deeper than \(Self.maximumDepth) levels") }
            let object = bytes[offset] == UInt8(ascii: "{")
            offset += 1
            if try consume(object ? UInt8(ascii: "}") : UInt8(ascii: "]")) { return }
            repeat {
                if object { _ = try keyBytes() }
                try skipValue(depth: depth + 1)
            } while try object ? nextMember() : nextElement()
        case UInt8(ascii: "\""): _ = try string()
        case UInt8(ascii: "t"), UInt8(ascii: "f"): _ = try boolean()
        case UInt8(ascii: "n"):
            guard try consumeNull() else { throw failure("expected a value") }
        default: try skipNumber()
        }
    }

    // MARK: Values

    /// Consumes `null` if it stands here; false (and nothing consumed) when another value does.
    public mutating func consumeNull() throws(Failure) -> Bool {
        skipWhitespace()
        guard offset + 4 <= bytes.count, bytes[offset] == UInt8(ascii: "n") else { return false }
        guard matches("null") else { throw failure("invalid literal") }
        offset += 4
        return true
    }

    public mutating func boolean() throws(Failure) -> Bool {
        skipWhitespace()
        if matches("true") {
            offset += 4
            return true
        }
        if matches("false") {
            offset += 5
            return false
        }
        throw failure("expected true or false")
    }

    /// Whether `literal` stands at the scanner's position.
    public func matches(_ literal: StaticString) -> Bool {
        let count = literal.utf8CodeUnitCount
        guard offset + count <= bytes.count else { return false }
        return literal.withUTF8Buffer { UnsafeRawBufferPointer($0).elementsEqual(bytes[offset..<offset + count]) }
    }

    /// A JSON integer (optional minus, no leading zero, no fraction or exponent) that fits in `Int64`.
    public mutating func integer() throws(Failure) -> Int64 {
        skipWhitespace()
        let negative = offset < bytes.count && bytes[offset] == UInt8(ascii: "-")
        if negative { offset += 1 }
        let start = offset
        var value: Int64 = 0
        while offset < bytes.count, case let digit = bytes[offset] &- UInt8(ascii: "0"), digit < 10 {
            // Accumulated negatively, so Int64.min fits.
            let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (next, overflow2) = times10.subtractingReportingOverflow(Int64(digit))
            guard !overflow1, !overflow2 else { throw failure("the number is out of range") }
            value = next
            offset += 1
        }
        guard offset > start else { throw failure("expected an integer") }
        guard offset - start == 1 || bytes[start] != UInt8(ascii: "0") else {
            throw failure("a number may not start with 0")
        }
        if offset < bytes.count, bytes[offset] == UInt8(ascii: ".") || bytes[offset] | 0x20 == UInt8(ascii: "e") {
            throw failure("expected an integer, without fraction or exponent")
        }
        if negative { return value }
        guard value != .min else { throw failure("the number is out of range") }
        return -value
    }

    /// Any JSON number, as a finite `Double`.
    public mutating func number() throws(Failure) -> Double {
        skipWhitespace()
        let start = offset
        try skipNumber()
        let text = bytes[start..<offset]
        // strtod reads what the number grammar already checked; a NUL-terminated copy keeps it inside it.
        let value = withUnsafeTemporaryAllocation(of: CChar.self, capacity: text.count + 1) { buffer -> Double in
            for (index, byte) in text.enumerated() { buffer[index] = CChar(bitPattern: byte) }
            buffer[text.count] = 0
            return strtod(buffer.baseAddress!, nil)
        }
        guard value.isFinite else { throw Failure("the number is out of range", at: start) }
        return value
    }

    /// Any JSON number, not kept.
    public mutating func skipNumber() throws(Failure) {
        skipWhitespace()
        if offset < bytes.count, bytes[offset] == UInt8(ascii: "-") { offset += 1 }
        func digits(_ scanner: inout JSONScanner) -> Int {
            let start = scanner.offset
            while scanner.offset < scanner.bytes.count, scanner.bytes[scanner.offset] &- UInt8(ascii: "0") < 10 {
                scanner.offset += 1
            }
            return scanner.offset - start
        }
        let start = offset
        let integerDigits = digits(&self)
        guard integerDigits > 0 else { throw failure("expected a number") }
        guard integerDigits == 1 || bytes[start] != UInt8(ascii: "0") else {
            throw failure("a number may not start with 0")
        }
        if offset < bytes.count, bytes[offset] == UInt8(ascii: ".") {
            offset += 1
            guard digits(&self) > 0 else { throw failure("expected digits after '.'") }
        }
        if offset < bytes.count, bytes[offset] | 0x20 == UInt8(ascii: "e") {
            offset += 1
            if offset < bytes.count, bytes[offset] == UInt8(ascii: "+") || bytes[offset] == UInt8(ascii: "-") {
                offset += 1
            }
            guard digits(&self) > 0 else { throw failure("expected digits in the exponent") }
        }
        guard offset - start <= 64 else { throw failure("the number is too long") }
    }

    /// A JSON string. When its bytes equal `previous`'s, returns `previous` (no new storage: texts such as a
    /// batch's tenants and versions repeat).
    public mutating func string(reusing previous: String? = nil) throws(Failure) -> String {
        skipWhitespace()
        guard offset < bytes.count, bytes[offset] == UInt8(ascii: "\"") else { throw failure("expected a string") }
        offset += 1
        let start = offset
        var ascii = true
        while offset < bytes.count {
            let byte = bytes[offset]
            if byte == UInt8(ascii: "\"") {
                let raw = UnsafeRawBufferPointer(rebasing: bytes[start..<offset])
                offset += 1
                if let previous, previous.utf8.count == raw.count,
                    previous.utf8.withContiguousStorageIfAvailable({ UnsafeRawBufferPointer($0).elementsEqual(raw) })
                        == true
                {
                    return previous
                }
                let utf8 = raw.assumingMemoryBound(to: UInt8.self)
                if ascii { return String(decoding: utf8, as: UTF8.self) }
                guard let text = String(validating: utf8, as: UTF8.self) else {
                    offset = start
                    throw failure("the string is not valid UTF-8")
                }
                return text
            }
            if byte == UInt8(ascii: "\\") { return try escapedString(from: start) }
            guard byte >= 0x20 else { throw failure("a control character must be escaped in a string") }
            if byte >= 0x80 { ascii = false }
            offset += 1
        }
        throw failure("unexpected end of data in a string")
    }

    /// The rest of a string that has escapes, from its first byte at `start`.
    private mutating func escapedString(from start: Int) throws(Failure) -> String {
        var text: [UInt8] = Array(bytes[start..<offset])
        while offset < bytes.count {
            let byte = bytes[offset]
            offset += 1
            switch byte {
            case UInt8(ascii: "\""):
                guard let result = String(validating: text, as: UTF8.self) else {
                    offset = start
                    throw failure("the string is not valid UTF-8")
                }
                return result
            case UInt8(ascii: "\\"):
                guard offset < bytes.count else { break }
                let escape = bytes[offset]
                offset += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): text.append(escape)
                case UInt8(ascii: "b"): text.append(0x08)
                case UInt8(ascii: "f"): text.append(0x0C)
                case UInt8(ascii: "n"): text.append(0x0A)
                case UInt8(ascii: "r"): text.append(0x0D)
                case UInt8(ascii: "t"): text.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar) {
                        guard matches("\\u") else { throw failure("a lone surrogate escape in a string") }
                        offset += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else {
                            throw failure("a lone surrogate escape in a string")
                        }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(scalar) {
                        throw failure("a lone surrogate escape in a string")
                    }
                    text.append(contentsOf: UTF8.encode(Unicode.Scalar(scalar)!)!)
                default:
                    offset -= 1
                    throw failure("invalid escape in a string")
                }
            default:
                guard byte >= 0x20 else {
                    offset -= 1
                    throw failure("a control character must be escaped in a string")
                }
                text.append(byte)
            }
        }
        throw failure("unexpected end of data in a string")
    }

    /// Four hex digits of a `\u` escape.
    private mutating func hex4() throws(Failure) -> UInt32 {
        guard offset + 4 <= bytes.count else { throw failure("unexpected end of data in a string") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[offset]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw failure("invalid \\u escape in a string")
            }
            value = value << 4 | UInt32(digit)
            offset += 1
        }
        return value
    }
}
