#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A strict reader of JSON text (RFC 8259) that decodes values where they stand, for heads read on every call.
///
/// Foundation's `JSONDecoder` first builds a tree of every value and then decodes it through `Codable`'s generic
/// machinery: for a request head that is about three quarters of a Swift worker's instructions per call, and a
/// visible share of the host's. A head's reader walks the bytes once with this scanner instead, asking for the
/// value it expects at each place (``string()``, ``integer()``, ``number()``, ``members(_:)``…).
///
/// Strict where JSON is: no trailing commas, no comments, no leading zeros, no raw control characters or invalid
/// UTF-8 in strings, no lone surrogate escapes, numbers that fit (an integer within `Int64`, a finite double).
/// Nesting is bounded (``maximumDepth``), so hostile input cannot exhaust the stack.
public struct JSONScanner {
    /// The deepest nesting of arrays and objects ``skipValue()`` and the members' readers follow.
    public static let maximumDepth = 64

    private let bytes: UnsafeRawBufferPointer
    /// Where the next token starts (after whitespace once ``skipWhitespace()`` ran).
    public private(set) var offset = 0
    private var depth = 0

    /// A scanner over `bytes`, which must outlive it.
    public init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    /// What is wrong, and where.
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var message: String
        public var offset: Int
        public var description: String { "\(message) at byte \(offset)" }
    }

    private func failure(_ message: String) -> Failure {
        Failure(message: message, offset: offset)
    }

    // MARK: Structure

    public mutating func skipWhitespace() {
        while offset < bytes.count {
            switch bytes[offset] {
            case 0x20, 0x09, 0x0A, 0x0D: offset += 1
            default: return
            }
        }
    }

    private mutating func peek() -> UInt8? {
        skipWhitespace()
        return offset < bytes.count ? bytes[offset] : nil
    }

    private mutating func expect(_ byte: UInt8, _ what: String) throws {
        guard peek() == byte else { throw failure("expected \(what)") }
        offset += 1
    }

    /// Reads an object, calling `member` with each key (its unescaped UTF-8 bytes, valid only during the call) and
    /// the scanner positioned at its value, which `member` must read or skip. Keys are not checked for repeats: the
    /// reader of a shape knows its keys and refuses a repeated one (``KeySet``).
    public mutating func members(
        _ member: (_ key: UnsafeRawBufferPointer, _ scanner: inout JSONScanner) throws -> Void
    ) throws {
        try expect(UInt8(ascii: "{"), "an object")
        try enter()
        defer { depth -= 1 }
        if peek() == UInt8(ascii: "}") {
            offset += 1
            return
        }
        while true {
            guard peek() == UInt8(ascii: "\"") else { throw failure("expected a key") }
            let key = try scanString()
            try expect(UInt8(ascii: ":"), "':' after a key")
            skipWhitespace()
            try Self.withBytes(of: key, in: bytes) { raw in try member(raw, &self) }
            switch peek() {
            case UInt8(ascii: ","): offset += 1
            case UInt8(ascii: "}"):
                offset += 1
                return
            default: throw failure("expected ',' or '}' in an object")
            }
        }
    }

    /// Reads an array, calling `element` with the scanner positioned at each element, which it must read or skip.
    public mutating func elements(_ element: (_ scanner: inout JSONScanner) throws -> Void) throws {
        try expect(UInt8(ascii: "["), "an array")
        try enter()
        defer { depth -= 1 }
        if peek() == UInt8(ascii: "]") {
            offset += 1
            return
        }
        while true {
            skipWhitespace()
            try element(&self)
            switch peek() {
            case UInt8(ascii: ","): offset += 1
            case UInt8(ascii: "]"):
                offset += 1
                return
            default: throw failure("expected ',' or ']' in an array")
            }
        }
    }

    private mutating func enter() throws {
        guard depth < Self.maximumDepth else { throw failure("nested deeper than \(Self.maximumDepth) levels") }
        depth += 1
    }

    /// Skips one value of any kind, checking it as strictly as reading it would.
    public mutating func skipValue() throws {
        switch peek() {
        case UInt8(ascii: "{"): try members { (_, scanner) throws in try scanner.skipValue() }
        case UInt8(ascii: "["): try elements { (scanner) throws in try scanner.skipValue() }
        case UInt8(ascii: "\""): _ = try scanString()
        case UInt8(ascii: "t"), UInt8(ascii: "f"): _ = try boolean()
        case UInt8(ascii: "n"):
            guard consumeNull() else { throw failure("expected a value") }
        default: _ = try numberText()
        }
    }

    /// Checks that nothing but whitespace follows.
    public mutating func end() throws {
        if peek() != nil { throw failure("unexpected text after the value") }
    }

    // MARK: Values

    /// Consumes `null` if it stands here; false (and nothing consumed) otherwise.
    public mutating func consumeNull() -> Bool {
        guard literal("null") else { return false }
        return true
    }

    public mutating func boolean() throws -> Bool {
        _ = peek()
        if literal("true") { return true }
        if literal("false") { return false }
        throw failure("expected true or false")
    }

    private mutating func literal(_ text: StaticString) -> Bool {
        _ = peek()
        let count = text.utf8CodeUnitCount
        guard offset + count <= bytes.count else { return false }
        for index in 0..<count where bytes[offset + index] != text.utf8Start[index] { return false }
        offset += count
        return true
    }

    /// A string value.
    public mutating func string() throws -> String {
        let span = try scanString()
        return Self.withBytes(of: span, in: bytes) { String(decoding: $0, as: UTF8.self) }  // validated UTF-8
    }

    /// An array of strings.
    public mutating func strings() throws -> [String] {
        var values: [String] = []
        try elements { (scanner) throws in values.append(try scanner.string()) }
        return values
    }

    /// A JSON integer (no fraction, no exponent) within `Int64`.
    public mutating func integer() throws -> Int64 {
        let start = offset
        let (text, isInteger) = try numberText()
        guard isInteger else {
            offset = start
            throw failure("expected an integer")
        }
        var value: Int64 = 0
        let negative = text.first == UInt8(ascii: "-")
        for byte in text.dropFirst(negative ? 1 : 0) {
            let digit = Int64(byte - UInt8(ascii: "0"))
            let (shifted, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (next, overflow2) =
                negative ? shifted.subtractingReportingOverflow(digit) : shifted.addingReportingOverflow(digit)
            guard !overflow1, !overflow2 else {
                offset = start
                throw failure("the integer does not fit in 64 bits")
            }
            value = next
        }
        return value
    }

    /// Any JSON number, as a finite `Double`.
    public mutating func number() throws -> Double {
        let start = offset
        let (text, _) = try numberText()
        // strtod reads what the number grammar already checked; a NUL-terminated copy keeps it inside it.
        let value = withUnsafeTemporaryAllocation(of: CChar.self, capacity: text.count + 1) { buffer -> Double in
            for (index, byte) in text.enumerated() { buffer[index] = CChar(bitPattern: byte) }
            buffer[text.count] = 0
            return strtod(buffer.baseAddress!, nil)
        }
        guard value.isFinite else {
            offset = start
            throw failure("the number is out of range")
        }
        return value
    }

    /// The bytes of a number that follows JSON's grammar, and whether it has neither fraction nor exponent.
    private mutating func numberText() throws -> (UnsafeRawBufferPointer.SubSequence, Bool) {
        _ = peek()
        let start = offset
        func digits(_ scanner: inout JSONScanner) -> Int {
            let first = scanner.offset
            while scanner.offset < scanner.bytes.count, (0x30...0x39).contains(scanner.bytes[scanner.offset]) {
                scanner.offset += 1
            }
            return scanner.offset - first
        }
        if offset < bytes.count, bytes[offset] == UInt8(ascii: "-") { offset += 1 }
        let leading = offset
        guard digits(&self) > 0 else {
            offset = start
            throw failure("expected a value")
        }
        if bytes[leading] == UInt8(ascii: "0"), offset - leading > 1 {
            offset = start
            throw failure("a number with a leading zero")
        }
        var isInteger = true
        if offset < bytes.count, bytes[offset] == UInt8(ascii: ".") {
            offset += 1
            isInteger = false
            guard digits(&self) > 0 else { throw failure("expected digits after '.'") }
        }
        if offset < bytes.count, bytes[offset] | 0x20 == UInt8(ascii: "e") {
            offset += 1
            isInteger = false
            if offset < bytes.count, bytes[offset] == UInt8(ascii: "+") || bytes[offset] == UInt8(ascii: "-") {
                offset += 1
            }
            guard digits(&self) > 0 else { throw failure("expected digits in the exponent") }
        }
        return (bytes[start..<offset], isInteger)
    }

    /// A string as ``scanString()`` found it: where it stands in the input (no escapes), or unescaped.
    private enum StringSpan {
        case raw(Range<Int>)
        case unescaped([UInt8])
    }

    /// Calls `body` with the unescaped UTF-8 bytes of `span`.
    private static func withBytes<T>(
        of span: StringSpan, in bytes: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) throws -> T
    ) rethrows -> T {
        switch span {
        case .raw(let range): try body(UnsafeRawBufferPointer(rebasing: bytes[range]))
        case .unescaped(let array): try array.withUnsafeBytes(body)
        }
    }

    /// Moves past the string that stands here, checking it (escapes, control characters, UTF-8); where it stands
    /// when it has no escapes, so the common case copies nothing.
    private mutating func scanString() throws -> StringSpan {
        try expect(UInt8(ascii: "\""), "a string")
        let start = offset
        // The common case: no escapes. One pass finds the end and checks for control characters.
        while offset < bytes.count {
            let byte = bytes[offset]
            if byte == UInt8(ascii: "\"") {
                offset += 1
                try Self.validateUTF8(UnsafeRawBufferPointer(rebasing: bytes[start..<(offset - 1)]), at: start)
                return .raw(start..<(offset - 1))
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { throw failure("a control character in a string") }
            offset += 1
        }
        var out = Array(bytes[start..<offset])
        while offset < bytes.count {
            let byte = bytes[offset]
            switch byte {
            case UInt8(ascii: "\""):
                offset += 1
                try out.withUnsafeBytes { try Self.validateUTF8($0, at: start) }
                return .unescaped(out)
            case UInt8(ascii: "\\"):
                guard offset + 1 < bytes.count else { throw failure("the string does not end") }
                let escape = bytes[offset + 1]
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(escape)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"): break
                default: throw failure("an invalid escape in a string")
                }
                offset += 2
                if escape == UInt8(ascii: "u") { try appendUnicodeEscape(to: &out) }
            case 0..<0x20:
                throw failure("a control character in a string")
            default:
                out.append(byte)
                offset += 1
            }
        }
        throw failure("the string does not end")
    }

    /// After `\u`: one escape, or a surrogate pair of two, as UTF-8.
    private mutating func appendUnicodeEscape(to out: inout [UInt8]) throws {
        var scalar = try hex4()
        if (0xD800..<0xDC00).contains(scalar) {
            guard literal("\\u") else { throw failure("a lone surrogate escape") }
            let low = try hex4()
            guard (0xDC00..<0xE000).contains(low) else { throw failure("a lone surrogate escape") }
            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
        } else if (0xDC00..<0xE000).contains(scalar) {
            throw failure("a lone surrogate escape")
        }
        out.append(contentsOf: UTF8.encode(Unicode.Scalar(scalar)!)!)
    }

    private mutating func hex4() throws -> UInt32 {
        guard offset + 4 <= bytes.count else { throw failure("a short \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[offset]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw failure("an invalid \\u escape")
            }
            value = value << 4 | UInt32(digit)
            offset += 1
        }
        return value
    }

    private static func validateUTF8(_ bytes: UnsafeRawBufferPointer, at start: Int) throws {
        // ASCII, the usual case, needs no decoding.
        if bytes.allSatisfy({ $0 < 0x80 }) { return }
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue: continue
            case .emptyInput: return
            case .error: throw Failure(message: "invalid UTF-8 in a string", offset: start)
            }
        }
    }
}

/// The keys of a shape seen so far, to refuse one that appears twice.
public struct KeySet {
    private var bits: UInt64 = 0

    public init() {}

    /// Notes key number `index` (0–63) read at `offset`; throws if it was seen before.
    public mutating func insert(_ index: Int, _ name: StaticString, at offset: Int) throws {
        let bit: UInt64 = 1 << UInt64(index)
        guard bits & bit == 0 else {
            throw JSONScanner.Failure(message: "the key '\(name)' appears twice", offset: offset)
        }
        bits |= bit
    }

    public func contains(_ index: Int) -> Bool { bits & (1 << UInt64(index)) != 0 }
}

extension UnsafeRawBufferPointer {
    /// Whether these bytes are the UTF-8 of `text` (for matching keys without making strings).
    @inlinable
    public func equals(_ text: StaticString) -> Bool {
        guard count == text.utf8CodeUnitCount else { return false }
        for index in 0..<count where self[index] != text.utf8Start[index] { return false }
        return true
    }
}
