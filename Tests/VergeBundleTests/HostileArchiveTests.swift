import Foundation
import Testing
import VergeBundle
import VergeCore

/// Archives that break ZIPFoundation's assumptions: each must be refused with an error, never a crash or a hang.
@Suite struct HostileStructureTests {
    @Test func centralDirectoryOffsetPastTheEnd() throws {
        var archive = try TestZip.python()
        TestZip.setU32(&archive, TestZip.endRecord(archive) + 16, 0x0100_0000)
        expectVergeError(.invalidBundle, ["bundle archive is damaged"]) { () throws(VergeError) in
            _ = try BundleArchive.inspect(archive)
        }
    }

    @Test func localHeaderOffsetPastTheEnd() throws {
        var archive = try TestZip.python()
        let central = try TestZip.headers(archive, "main.py").central
        TestZip.setU32(&archive, central + 42, 0x00FF_FFFF)
        expectVergeError(.invalidBundle, ["the local header of entry 'main.py' is missing or out of place"]) {
            () throws(VergeError) in
            _ = try BundleArchive.inspect(archive)
        }
    }

    @Test func compressedSizePastTheCentralDirectory() throws {
        var archive = try TestZip.python()
        let central = try TestZip.headers(archive, "main.py").central
        TestZip.setU32(&archive, central + 20, 0x0FFF_FFFF)
        expectVergeError(.invalidBundle, ["the data of entry 'main.py' run past the central directory"]) {
            () throws(VergeError) in
            _ = try BundleArchive.inspect(archive)
        }
    }

    /// A deflate stream that opens a 65535-byte stored block and then ends: inflating it runs out of input.
    @Test func truncatedDeflateStreamEndsWithAnError() throws {
        let payload: [UInt8] = [0x00, 0xFF, 0xFF, 0x00, 0x00, 0x41, 0x41]
        var archive = try TestZip.python([
            TestZip.Item(path: "cut.bin", contents: payload, compression: .none), .file("z.py", "1"),
        ])
        let (central, local) = try TestZip.headers(archive, "cut.bin")
        TestZip.setU16(&archive, central + 10, 8)
        TestZip.setU16(&archive, local + 8, 8)
        TestZip.setU32(&archive, central + 24, 100_000)
        TestZip.setU32(&archive, local + 22, 100_000)
        expectVergeError(.invalidBundle, ["bundle entry 'cut.bin' is corrupt", "truncated"]) {
            () throws(VergeError) in
            _ = try BundleArchive.inspect(archive)
        }
    }

    @Test func garbageDeflateDataIsCorrupt() throws {
        var archive = try TestZip.python([
            TestZip.Item(path: "bad.bin", contents: [0xFF, 0xFF, 0xFF, 0xFF], compression: .none)
        ])
        let (central, local) = try TestZip.headers(archive, "bad.bin")
        TestZip.setU16(&archive, central + 10, 8)
        TestZip.setU16(&archive, local + 8, 8)
        expectVergeError(.invalidBundle, ["bundle entry 'bad.bin' is corrupt"]) { () throws(VergeError) in
            _ = try BundleArchive.inspect(archive)
        }
    }

    @Test func entriesSharingTheirDataAreRejected() throws {
        var archive = try TestZip.python([.file("a.py", "1"), .file("a.py", "1")])
        let firstLocal = try TestZip.headers(archive, "a.py").local
        // Point the second a.py's central record at the first one's local header.
        let end = TestZip.endRecord(archive)
        var position = TestZip.u32(archive, end + 16)
        var seen = 0
        while position < end {
            let nameLength = Int(archive[position + 28]) | Int(archive[position + 29]) << 8
            if Array(archive[position + 46..<position + 46 + nameLength]) == Array("a.py".utf8) {
                seen += 1
                if seen == 2 { TestZip.setU32(&archive, position + 42, firstLocal) }
            }
            position += 46 + nameLength
        }
        expectVergeError(.invalidBundle, ["entries 'a.py' and 'a.py' overlap"]) { () throws(VergeError) in
            _ = try BundleArchive.inspect(archive)
        }
    }

    @Test func zip64MarkersAreRefused() throws {
        var archive = try TestZip.python()
        let central = try TestZip.headers(archive, "main.py").central
        TestZip.setU32(&archive, central + 24, 0xFFFF_FFFF)
        expectVergeError(.invalidBundle, ["uses ZIP64 extensions"]) { () throws(VergeError) in
            _ = try BundleArchive.inspect(archive)
        }
    }

    @Test func encryptedEntryIsRejected() throws {
        var archive = try TestZip.python()
        let central = try TestZip.headers(archive, "main.py").central
        archive[central + 8] |= 0x01
        expectVergeError(.invalidBundle, ["bundle entry 'main.py' is encrypted"]) { () throws(VergeError) in
            _ = try BundleArchive.inspect(archive)
        }
    }

    @Test func unsupportedCompressionMethodIsRejected() throws {
        var archive = try TestZip.python()
        let central = try TestZip.headers(archive, "main.py").central
        TestZip.setU16(&archive, central + 10, 12)
        expectVergeError(.invalidBundle, ["bundle entry 'main.py' uses compression method 12"]) {
            () throws(VergeError) in
            _ = try BundleArchive.inspect(archive)
        }
    }

    @Test func truncatedArchivesAreRejected() throws {
        let archive = try TestZip.python([.file("lib/a.py", String(repeating: "x = 1\n", count: 100))])
        for length in stride(from: 0, to: archive.count, by: 7) {
            let prefix = Array(archive[..<length])
            #expect(throws: VergeError.self) { try BundleArchive.inspect(prefix) }
        }
    }

    @Test func everySingleByteCorruptionIsRejectedOrHarmless() throws {
        let archive = try TestZip.python([.file("lib/a.py", "x = 1\n")])
        for index in archive.indices {
            var copy = archive
            copy[index] ^= 0x5A
            do {
                let manifest = try BundleArchive.inspect(copy)
                #expect(FunctionName.isValid(manifest.name))
            } catch {
                #expect(error.code == .invalidBundle)
            }
        }
    }
}
