import Foundation
import VergeCore

/// A bounds-checked map of a zip archive's structure, made before ZIPFoundation reads the archive.
///
/// ZIPFoundation 0.9.20 trusts the offsets an archive declares. Reading an in-memory archive whose central
/// directory or local header offset points past its end traps the whole process, and inflating a deflate stream
/// that runs off the end of its archive never returns. So this first walks the end-of-central-directory record,
/// every central directory record and every local header; checks that each lies inside the archive, that the
/// entries' data lie before the central directory and do not overlap; and records where each entry's data is,
/// so that data are read from exactly that range. Names, entry types and decompression stay with ZIPFoundation.
/// ZIP64 archives, encryption and compression methods other than stored and deflate are refused: a bundle
/// within its limits never needs them.
struct ZipLayout {
    struct Record {
        /// The entry's name as stored, before any decoding.
        var nameBytes: [UInt8]
        var method: UInt16
        var crc32: UInt32
        var compressedSize: Int
        var uncompressedSize: Int
        /// Offset of the entry's (compressed) data in the archive.
        var dataStart: Int
        /// The Unix mode (`st_mode`), when the archive was made on a Unix-like system.
        var unixMode: UInt32?

        var dataRange: Range<Int> { dataStart..<dataStart + compressedSize }
        var isDeflated: Bool { method == ZipLayout.methodDeflate }
        var displayName: String { Quoted.single(String(decoding: nameBytes, as: UTF8.self)) }
    }

    /// One record per central directory entry, in central directory order (the order ZIPFoundation iterates).
    let records: [Record]

    static let methodStored: UInt16 = 0
    static let methodDeflate: UInt16 = 8

    private static let endSignature: UInt32 = 0x0605_4b50
    private static let zip64LocatorSignature: UInt32 = 0x0706_4b50
    private static let centralSignature: UInt32 = 0x0201_4b50
    private static let localSignature: UInt32 = 0x0403_4b50
    private static let endRecordSize = 22
    private static let centralRecordSize = 46
    private static let localHeaderSize = 30

    init(_ bytes: Data, maxEntries: Int) throws(VergeError) {
        let reader = Reader(bytes: bytes)
        let end = try Self.findEndRecord(reader)

        let diskNumber = try reader.u16(end + 4)
        let centralDisk = try reader.u16(end + 6)
        let entriesOnDisk = try reader.u16(end + 8)
        let entryCount = try reader.u16(end + 10)
        let centralSize = try reader.u32(end + 12)
        let centralStart = Int(try reader.u32(end + 16))
        let commentLength = Int(try reader.u16(end + 20))
        if end + Self.endRecordSize + commentLength > bytes.count {
            throw Self.damaged("its end record is cut short")
        }
        let hasZIP64Locator = end >= 20 && (try? reader.u32(end - 20)) == Self.zip64LocatorSignature
        if hasZIP64Locator || entryCount == 0xFFFF || centralSize == 0xFFFF_FFFF || centralStart == 0xFFFF_FFFF {
            throw Self.zip64
        }
        if diskNumber != 0 || centralDisk != 0 || entriesOnDisk != entryCount {
            throw VergeError(.invalidBundle, "bundle archive spans several disks; upload a single-file zip")
        }
        if Int(entryCount) > maxEntries {
            throw VergeError(.invalidBundle, "bundle has \(entryCount) entries; the limit is \(maxEntries)")
        }
        if centralStart > end {
            throw Self.damaged("its central directory starts past its end")
        }

        var records: [Record] = []
        records.reserveCapacity(Int(entryCount))
        var extents: [(start: Int, end: Int, name: String)] = []
        var position = centralStart
        for _ in 0..<Int(entryCount) {
            guard position + Self.centralRecordSize <= end, try reader.u32(position) == Self.centralSignature else {
                throw Self.damaged("its central directory is cut short or corrupt")
            }
            let madeBy = try reader.u16(position + 4)
            let flags = try reader.u16(position + 8)
            let method = try reader.u16(position + 10)
            let crc32 = try reader.u32(position + 16)
            let compressedSize = try reader.u32(position + 20)
            let uncompressedSize = try reader.u32(position + 24)
            let nameLength = Int(try reader.u16(position + 28))
            let extraLength = Int(try reader.u16(position + 30))
            let commentLength = Int(try reader.u16(position + 32))
            let disk = try reader.u16(position + 34)
            let externalAttributes = try reader.u32(position + 38)
            let localStart = Int(try reader.u32(position + 42))
            let nameStart = position + Self.centralRecordSize
            let next = nameStart + nameLength + extraLength + commentLength
            guard next <= end else { throw Self.damaged("its central directory is cut short or corrupt") }
            let nameBytes = Array(bytes[nameStart..<nameStart + nameLength])
            position = next

            var record = Record(
                nameBytes: nameBytes,
                method: method,
                crc32: crc32,
                compressedSize: Int(compressedSize),
                uncompressedSize: Int(uncompressedSize),
                dataStart: 0,
                unixMode: nil
            )
            // Values that defer to a ZIP64 extra field. (A ZIP64 field alone, which some tools add out of caution,
            // changes nothing: readers use it only for values marked this way.)
            if compressedSize == 0xFFFF_FFFF || uncompressedSize == 0xFFFF_FFFF || localStart == 0xFFFF_FFFF
                || disk == 0xFFFF
            {
                throw Self.zip64
            }
            if disk != 0 {
                throw VergeError(.invalidBundle, "bundle archive spans several disks; upload a single-file zip")
            }
            if flags & 0x0041 != 0 {
                throw VergeError(
                    .invalidBundle, "bundle entry \(record.displayName) is encrypted; upload an unencrypted zip")
            }
            if method != Self.methodStored && method != Self.methodDeflate {
                throw VergeError(
                    .invalidBundle,
                    "bundle entry \(record.displayName) uses compression method \(method); only stored (0) and "
                        + "deflate (8) are supported"
                )
            }
            if method == Self.methodStored && compressedSize != uncompressedSize {
                throw Self.damaged("the sizes of stored entry \(record.displayName) disagree")
            }

            // The local header: inside the archive, before the central directory, naming the same entry.
            guard localStart + Self.localHeaderSize <= centralStart, try reader.u32(localStart) == Self.localSignature
            else {
                throw Self.damaged("the local header of entry \(record.displayName) is missing or out of place")
            }
            let localNameLength = Int(try reader.u16(localStart + 26))
            let localExtraLength = Int(try reader.u16(localStart + 28))
            let localNameStart = localStart + Self.localHeaderSize
            record.dataStart = localNameStart + localNameLength + localExtraLength
            guard record.dataStart + record.compressedSize <= centralStart else {
                throw Self.damaged("the data of entry \(record.displayName) run past the central directory")
            }
            guard bytes[localNameStart..<localNameStart + localNameLength].elementsEqual(nameBytes) else {
                throw Self.damaged("the local and central names of entry \(record.displayName) differ")
            }
            let system = madeBy >> 8
            if system == 3 || system == 19 {  // Unix, macOS
                record.unixMode = externalAttributes >> 16
            }
            extents.append((localStart, record.dataStart + record.compressedSize, record.displayName))
            records.append(record)
        }

        extents.sort { $0.start < $1.start }
        for (previous, next) in zip(extents, extents.dropFirst()) where next.start < previous.end {
            throw Self.damaged("entries \(previous.name) and \(next.name) overlap")
        }
        self.records = records
    }

    /// The end-of-central-directory record: the last signature within the final 64 KiB + 22 bytes, which is
    /// also the one ZIPFoundation finds, scanning backwards from the end.
    private static func findEndRecord(_ reader: Reader) throws(VergeError) -> Int {
        let count = reader.bytes.count
        if count >= endRecordSize {
            for distance in endRecordSize...min(count, endRecordSize + 0xFFFF) {
                if (try? reader.u32(count - distance)) == endSignature { return count - distance }
            }
        }
        throw VergeError(.invalidBundle, "bundle is not a zip archive")
    }

    private static func damaged(_ detail: String) -> VergeError {
        VergeError(.invalidBundle, "bundle archive is damaged: \(detail)")
    }

    private static var zip64: VergeError {
        VergeError(
            .invalidBundle,
            "bundle archive uses ZIP64 extensions, which a bundle within its limits never needs; "
                + "create it with a standard zip tool without forcing ZIP64"
        )
    }

    /// Little-endian integers at offsets that are checked against the end of the archive.
    private struct Reader {
        /// Indexed from 0 (a `Data` of its own, not a slice).
        let bytes: Data

        func u16(_ offset: Int) throws(VergeError) -> UInt16 {
            guard offset >= 0, offset + 2 <= bytes.count else { throw ZipLayout.damaged("it is cut short") }
            return UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8
        }

        func u32(_ offset: Int) throws(VergeError) -> UInt32 {
            guard offset >= 0, offset + 4 <= bytes.count else { throw ZipLayout.damaged("it is cut short") }
            return UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16
                | UInt32(bytes[offset + 3]) << 24
        }
    }
}
