import Foundation
import VergeCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The country-level fallback: Tor's GeoIP files as Debian's `tor-geoipdb` ships them (`/usr/share/tor/geoip` with
/// `FIRST,LAST,CC` lines of decimal IPv4 numbers, `/usr/share/tor/geoip6` with IPv6 literals), held in sorted arrays and
/// searched by bisection. Ranges whose country has no centroid (`??`, `EU`, `AP`, …) are left out.
public final class TorGeoIPDatabase: IPGeolocator, Sendable {
    public static let debianIPv4 = "/usr/share/tor/geoip"
    public static let debianIPv6 = "/usr/share/tor/geoip6"

    private let v4Starts: [UInt32]
    private let v4Ends: [UInt32]
    private let v4Countries: [UInt16]
    private let v6Starts: [UInt128]
    private let v6Ends: [UInt128]
    private let v6Countries: [UInt16]
    private let codes: [String]

    /// How many ranges were loaded.
    public var rangeCount: Int { v4Starts.count + v6Starts.count }

    /// Loads the files; a missing IPv6 file is allowed (IPv4 only), a missing or empty IPv4 file is an error.
    public init(ipv4Path: String = debianIPv4, ipv6Path: String? = debianIPv6) throws {
        guard let v4 = FileManager.default.contents(atPath: ipv4Path) else {
            throw VergeError(.badRequest, "cannot read \(ipv4Path) (Debian package tor-geoipdb)")
        }
        var codes: [String] = []
        // Two ASCII letters as one number → index into `codes`, or `UInt16.max` for a code without a centroid.
        var index = [UInt16](repeating: UInt16.max - 1, count: 65_536)
        func countryIndex(_ key: UInt16) -> UInt16? {
            if index[Int(key)] == UInt16.max - 1 {
                let code = String(decoding: [UInt8(key >> 8), UInt8(key & 0xff)], as: UTF8.self)
                if CountryCentroids.point(for: code) != nil {
                    index[Int(key)] = UInt16(codes.count)
                    codes.append(code)
                } else {
                    index[Int(key)] = UInt16.max
                }
            }
            let found = index[Int(key)]
            return found == UInt16.max ? nil : found
        }
        var v4Ranges: [(UInt32, UInt32, UInt16)] = []
        Self.forEachRange(v4) { first, last, code in
            guard let first = Self.decimal(first), let last = Self.decimal(last), first <= last,
                let country = countryIndex(code)
            else { return }
            v4Ranges.append((first, last, country))
        }
        guard !v4Ranges.isEmpty else { throw VergeError(.badRequest, "\(ipv4Path) holds no IPv4 range") }
        var v6Ranges: [(UInt128, UInt128, UInt16)] = []
        if let ipv6Path, let v6 = FileManager.default.contents(atPath: ipv6Path) {
            Self.forEachRange(v6) { first, last, code in
                guard let first = Self.ipv6Number(first), let last = Self.ipv6Number(last), first <= last,
                    let country = countryIndex(code)
                else { return }
                v6Ranges.append((first, last, country))
            }
        }
        v4Ranges.sort { $0.0 < $1.0 }
        v6Ranges.sort { $0.0 < $1.0 }
        v4Starts = v4Ranges.map(\.0)
        v4Ends = v4Ranges.map(\.1)
        v4Countries = v4Ranges.map(\.2)
        v6Starts = v6Ranges.map(\.0)
        v6Ends = v6Ranges.map(\.1)
        v6Countries = v6Ranges.map(\.2)
        self.codes = codes
    }

    public func lookup(_ address: IPAddress) -> GeoIPMatch? {
        let country: UInt16?
        if address.isIPv4 {
            let number = address.bytes.reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            country = Self.find(number, starts: v4Starts, ends: v4Ends).map { v4Countries[$0] }
        } else {
            let number = address.bytes.reduce(UInt128(0)) { $0 << 8 | UInt128($1) }
            country = Self.find(number, starts: v6Starts, ends: v6Ends).map { v6Countries[$0] }
        }
        return country.map { GeoIPMatch(location: nil, countryCode: codes[Int($0)]) }
    }

    /// The index of the range holding `value`: the last one starting at or before it, if it also ends after it.
    static func find<T: Comparable>(_ value: T, starts: [T], ends: [T]) -> Int? {
        var low = 0
        var high = starts.count
        while low < high {
            let middle = (low + high) / 2
            if starts[middle] <= value { low = middle + 1 } else { high = middle }
        }
        guard low > 0, ends[low - 1] >= value else { return nil }
        return low - 1
    }

    /// Calls `body` with the three fields of every `FIRST,LAST,CC` line; comments and malformed lines are skipped.
    /// Works on the bytes: the files have some 660,000 lines.
    private static func forEachRange(
        _ data: Data, _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer, UInt16) -> Void
    ) {
        data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
            guard let base = bytes.baseAddress else { return }
            // memchr finds the separators: fast even in a debug build, where a byte-by-byte Swift loop is not.
            var lineStart = 0
            while lineStart < bytes.count {
                let remaining = bytes.count - lineStart
                let newline = memchr(base + lineStart, Int32(UInt8(ascii: "\n")), remaining)
                let lineEnd = newline.map { base.distance(to: UnsafeRawPointer($0)) } ?? bytes.count
                defer { lineStart = lineEnd + 1 }
                var end = lineEnd
                if end > lineStart, bytes[end - 1] == UInt8(ascii: "\r") { end -= 1 }
                guard end - lineStart >= 5, bytes[lineStart] != UInt8(ascii: "#") else { continue }
                guard let first = memchr(base + lineStart, Int32(UInt8(ascii: ",")), end - lineStart) else { continue }
                let firstComma = base.distance(to: UnsafeRawPointer(first))
                guard
                    let second = memchr(base + firstComma + 1, Int32(UInt8(ascii: ",")), end - firstComma - 1)
                else { continue }
                let secondComma = base.distance(to: UnsafeRawPointer(second))
                guard end - secondComma == 3 else { continue }
                let code = UInt16(bytes[secondComma + 1]) << 8 | UInt16(bytes[secondComma + 2])
                body(
                    UnsafeRawBufferPointer(rebasing: bytes[lineStart..<firstComma]),
                    UnsafeRawBufferPointer(rebasing: bytes[(firstComma + 1)..<secondComma]), code)
            }
        }
    }

    /// A decimal IPv4 number of at most 10 digits that fits 32 bits.
    private static func decimal(_ text: UnsafeRawBufferPointer) -> UInt32? {
        guard (1...10).contains(text.count) else { return nil }
        var value: UInt64 = 0
        for byte in text {
            guard (48...57).contains(byte) else { return nil }
            value = value * 10 + UInt64(byte - 48)
        }
        return value <= UInt64(UInt32.max) ? UInt32(value) : nil
    }

    private static func ipv6Number(_ text: UnsafeRawBufferPointer) -> UInt128? {
        guard (2...45).contains(text.count) else { return nil }
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: 48) { buffer in
            memcpy(buffer.baseAddress!, text.baseAddress!, text.count)
            buffer[text.count] = 0
            var address = in6_addr()
            guard inet_pton(AF_INET6, buffer.baseAddress!, &address) == 1 else { return nil }
            // Two big-endian halves: far cheaper than sixteen 128-bit shifts in a debug build.
            let (high, low) = withUnsafeBytes(of: &address) { raw in
                (
                    UInt64(bigEndian: raw.loadUnaligned(as: UInt64.self)),
                    UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
                )
            }
            return UInt128(high) << 64 | UInt128(low)
        }
    }
}
