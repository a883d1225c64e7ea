import Foundation
import Testing
import VergeBundle
import VergeCore
import ZIPFoundation

/// A fresh directory under the system temporary directory, removed when `body` returns.
func withTemporaryDirectory<T>(_ body: (String) throws -> T) throws -> T {
    let path = FileManager.default.temporaryDirectory
        .appendingPathComponent("verge-bundle-tests-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try body(path)
}

/// Writes `contents` at `root/path`, creating parent directories, with the given mode.
func writeFile(_ root: String, _ path: String, _ contents: String = "", mode: Int = 0o644) throws {
    let url = URL(fileURLWithPath: root).appendingPathComponent(path)
    try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
    try Data(contents.utf8).write(to: url)
    try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: url.path)
}

func posixMode(_ path: String) throws -> Int {
    let attributes = try FileManager.default.attributesOfItem(atPath: path)
    return (attributes[.posixPermissions] as? NSNumber)?.intValue ?? -1
}

/// Every path under `root`, relative, sorted; directories end with `/`.
func listTree(_ root: String) throws -> [String] {
    var result: [String] = []
    func walk(_ relative: String) throws {
        let directory = relative.isEmpty ? root : root + "/" + relative
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) {
            let path = relative.isEmpty ? name : relative + "/" + name
            var isDirectory: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: root + "/" + path, isDirectory: &isDirectory)
            if isDirectory.boolValue {
                result.append(path + "/")
                try walk(path)
            } else {
                result.append(path)
            }
        }
    }
    try walk("")
    return result.sorted()
}

/// Expects `body` to throw a `VergeError` with `code` whose message contains every fragment.
func expectVergeError(
    _ code: VergeError.Code,
    _ fragments: [String],
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws(VergeError) -> Void
) {
    do {
        try body()
        Issue.record(
            "expected \(code) error containing \(fragments), but nothing was thrown", sourceLocation: sourceLocation)
    } catch {
        #expect(error.code == code, "\(error.message)", sourceLocation: sourceLocation)
        for fragment in fragments {
            #expect(error.message.contains(fragment), "\(error.message)", sourceLocation: sourceLocation)
        }
    }
}

/// Zip archives written entry by entry with ZIPFoundation, including ones no honest tool would write.
enum TestZip {
    struct Item {
        var path: String
        var contents: [UInt8]
        var type: Entry.EntryType = .file
        var permissions: UInt16 = 0o644
        var compression: CompressionMethod = .deflate

        static func file(
            _ path: String,
            _ text: String,
            permissions: UInt16 = 0o644,
            compression: CompressionMethod = .deflate
        ) -> Item {
            Item(path: path, contents: Array(text.utf8), permissions: permissions, compression: compression)
        }

        static func directory(_ path: String) -> Item {
            Item(path: path, contents: [], type: .directory, permissions: 0o755, compression: .none)
        }

        static func symlink(_ path: String, to target: String) -> Item {
            Item(path: path, contents: Array(target.utf8), type: .symlink, permissions: 0o777, compression: .none)
        }
    }

    static func make(_ items: [Item]) throws -> [UInt8] {
        let archive = try Archive(accessMode: .create)
        for item in items {
            let contents = item.contents
            try archive.addEntry(
                with: item.path,
                type: item.type,
                uncompressedSize: Int64(contents.count),
                modificationDate: Date(timeIntervalSince1970: 1_700_000_000),
                permissions: item.permissions,
                compressionMethod: item.compression,
                provider: { position, size in Data(contents[Int(position)..<Int(position) + size]) }
            )
        }
        return Array(try #require(archive.data))
    }

    static let pythonManifest = #"{"name":"hello","runtime":"python","entry":"main.py"}"#
    static let mainPy = "def handle(request):\n    return {'status': 200}\n"

    /// A valid python bundle plus `extra` entries.
    static func python(_ extra: [Item] = []) throws -> [UInt8] {
        try make([.file("verge.json", pythonManifest), .file("main.py", mainPy)] + extra)
    }

    // MARK: Editing raw bytes

    static func u32(_ bytes: [UInt8], _ offset: Int) -> Int {
        Int(bytes[offset]) | Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2]) << 16 | Int(bytes[offset + 3]) << 24
    }

    static func setU16(_ bytes: inout [UInt8], _ offset: Int, _ value: Int) {
        bytes[offset] = UInt8(value & 0xFF)
        bytes[offset + 1] = UInt8(value >> 8 & 0xFF)
    }

    static func setU32(_ bytes: inout [UInt8], _ offset: Int, _ value: Int) {
        for index in 0..<4 { bytes[offset + index] = UInt8(value >> (8 * index) & 0xFF) }
    }

    /// Offset of the end-of-central-directory record (archives written here have no comment).
    static func endRecord(_ bytes: [UInt8]) -> Int { bytes.count - 22 }

    /// Offsets of the central directory record and the local header of the entry named `path`.
    static func headers(_ bytes: [UInt8], _ path: String) throws -> (central: Int, local: Int) {
        let end = endRecord(bytes)
        var position = u32(bytes, end + 16)
        let name = Array(path.utf8)
        while position < end {
            let nameLength = Int(bytes[position + 28]) | Int(bytes[position + 29]) << 8
            let extraLength = Int(bytes[position + 30]) | Int(bytes[position + 31]) << 8
            let commentLength = Int(bytes[position + 32]) | Int(bytes[position + 33]) << 8
            if Array(bytes[position + 46..<position + 46 + nameLength]) == name {
                return (position, u32(bytes, position + 42))
            }
            position += 46 + nameLength + extraLength + commentLength
        }
        throw TestZipError.noSuchEntry(path)
    }

    enum TestZipError: Error { case noSuchEntry(String) }
}
