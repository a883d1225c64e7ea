import Foundation
import Testing
import VergeBundle
import VergeCore
import ZIPFoundation

@Suite struct PackTests {
    /// A python bundle directory with a nested package, an executable script and an empty directory.
    static func makePythonBundle(_ root: String) throws {
        try writeFile(root, "verge.json", TestZip.pythonManifest)
        try writeFile(root, "main.py", TestZip.mainPy)
        try writeFile(root, "lib/util.py", "X = 1\n")
        try writeFile(root, "lib/__init__.py")
        try writeFile(root, "scripts/run.sh", "#!/bin/sh\n", mode: 0o755)
        try FileManager.default.createDirectory(atPath: root + "/data/empty", withIntermediateDirectories: true)
    }

    /// Entry paths and permissions of an archive, in archive order.
    static func entries(_ archive: [UInt8]) throws -> [(path: String, permissions: Int)] {
        let zip = try Archive(data: Data(archive), accessMode: .read)
        return zip.map { entry in
            (entry.path, (entry.fileAttributes[.posixPermissions] as? NSNumber)?.intValue ?? -1)
        }
    }

    @Test func packingIsDeterministic() throws {
        try withTemporaryDirectory { root in
            try Self.makePythonBundle(root)
            let first = try BundleArchive.pack(directory: root)
            let second = try BundleArchive.pack(directory: root)
            #expect(first == second)
            #expect(BundleArchive.sha256Hex(first) == BundleArchive.sha256Hex(second))

            // New modification times (and a new creation order) change nothing.
            for path in ["main.py", "lib/util.py", "data/empty"] {
                try FileManager.default.setAttributes(
                    [.modificationDate: Date(timeIntervalSinceNow: -86_400)],
                    ofItemAtPath: root + "/" + path
                )
            }
            try FileManager.default.removeItem(atPath: root + "/lib/__init__.py")
            try writeFile(root, "lib/__init__.py")
            #expect(try BundleArchive.pack(directory: root) == first)

            // A content change changes the hash.
            try writeFile(root, "lib/util.py", "X = 2\n")
            #expect(BundleArchive.sha256Hex(try BundleArchive.pack(directory: root)) != BundleArchive.sha256Hex(first))
        }
    }

    @Test func entriesAreSortedDatedAndNormalised() throws {
        try withTemporaryDirectory { root in
            try Self.makePythonBundle(root)
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: root + "/main.py")
            try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: root + "/lib")
            let archive = try BundleArchive.pack(directory: root)
            let entries = try Self.entries(archive)
            #expect(
                entries.map(\.path) == [
                    "data/", "data/empty/", "lib/", "lib/__init__.py", "lib/util.py", "main.py", "scripts/",
                    "scripts/run.sh", "verge.json",
                ]
            )
            let permissions = Dictionary(uniqueKeysWithValues: entries.map { ($0.path, $0.permissions) })
            #expect(permissions["main.py"] == 0o644)
            #expect(permissions["lib/"] == 0o755)
            #expect(permissions["scripts/run.sh"] == 0o755)
            #expect(permissions["verge.json"] == 0o644)

            let zip = try Archive(data: Data(archive), accessMode: .read)
            for entry in zip {
                let date = entry.fileAttributes[.modificationDate] as? Date
                #expect(date == Date(timeIntervalSince1970: 315_532_800), "\(entry.path)")
            }
        }
    }

    @Test func executableBitSurvivesARoundTrip() throws {
        try withTemporaryDirectory { root in
            try Self.makePythonBundle(root)
            let archive = try BundleArchive.pack(directory: root + "/")
            let target = root + "/out/bundle"
            try BundleArchive.extract(archive, to: target)
            #expect(try posixMode(target + "/scripts/run.sh") == 0o755)
            #expect(try posixMode(target + "/main.py") == 0o644)
            #expect(try posixMode(target + "/data/empty") == 0o755)
        }
    }

    @Test func skippedNamesAreLeftOut() throws {
        try withTemporaryDirectory { root in
            try Self.makePythonBundle(root)
            try writeFile(root, ".git/config", "[core]\n")
            try writeFile(root, ".build/debug/thing", "x")
            try writeFile(root, "__pycache__/main.cpython-312.pyc", "x")
            try writeFile(root, "lib/__pycache__/util.cpython-312.pyc", "x")
            try writeFile(root, ".DS_Store", "x")
            try writeFile(root, "lib/.DS_Store", "x")
            try writeFile(root, ".gitignore", "*.pyc\n")
            let paths = try Self.entries(try BundleArchive.pack(directory: root)).map(\.path)
            #expect(paths.contains(".gitignore"))
            for skipped in [".git", ".build", "__pycache__", ".DS_Store"] {
                #expect(!paths.contains { $0.split(separator: "/").contains(Substring(skipped)) }, "\(paths)")
            }
        }
    }

    @Test func symbolicLinkIsRejectedByPath() throws {
        try withTemporaryDirectory { root in
            try Self.makePythonBundle(root)
            try FileManager.default.createSymbolicLink(
                atPath: root + "/lib/secrets", withDestinationPath: "/etc/passwd")
            expectVergeError(.invalidBundle, ["bundle path 'lib/secrets' is a symbolic link"]) {
                () throws(VergeError) in
                _ = try BundleArchive.pack(directory: root)
            }
        }
    }

    @Test func symbolicLinkToADirectoryIsRejectedToo() throws {
        try withTemporaryDirectory { root in
            try Self.makePythonBundle(root)
            try FileManager.default.createSymbolicLink(atPath: root + "/vendor", withDestinationPath: root + "/lib")
            expectVergeError(.invalidBundle, ["'vendor' is a symbolic link"]) { () throws(VergeError) in
                _ = try BundleArchive.pack(directory: root)
            }
        }
    }

    @Test func missingDirectoryOrManifestIsABadRequest() throws {
        try withTemporaryDirectory { root in
            expectVergeError(.badRequest, ["no bundle directory at", "nowhere"]) { () throws(VergeError) in
                _ = try BundleArchive.pack(directory: root + "/nowhere")
            }
            try writeFile(root, "main.py", TestZip.mainPy)
            expectVergeError(.badRequest, ["no verge.json in"]) { () throws(VergeError) in
                _ = try BundleArchive.pack(directory: root)
            }
        }
    }

    @Test func invalidManifestIsReportedBeforePacking() throws {
        try withTemporaryDirectory { root in
            try writeFile(root, "verge.json", #"{"name":"hello","runtime":"python","entry":"main.py","timeout_ms":0}"#)
            try writeFile(root, "main.py", TestZip.mainPy)
            expectVergeError(.invalidBundle, ["verge.json: timeout_ms must be between 1 and 900000, got 0"]) {
                () throws(VergeError) in
                _ = try BundleArchive.pack(directory: root)
            }
        }
    }

    @Test func pythonEntryMustExist() throws {
        try withTemporaryDirectory { root in
            try writeFile(root, "verge.json", TestZip.pythonManifest)
            try writeFile(root, "app.py", TestZip.mainPy)
            expectVergeError(.invalidBundle, ["verge.json names 'main.py' as its entry, but there is no such file"]) {
                () throws(VergeError) in
                _ = try BundleArchive.pack(directory: root)
            }
        }
    }

    @Test func swiftBundleGetsItsBinaryAsAnExtraFile() throws {
        try withTemporaryDirectory { root in
            let bundle = root + "/fn"
            try writeFile(bundle, "verge.json", #"{"name":"resize","runtime":"swift","entry":"Resize"}"#)
            try writeFile(root, "build/release/Resize", "\u{7F}ELF binary", mode: 0o644)
            expectVergeError(.invalidBundle, ["bundle has no executable at 'bin/Resize'", "extra file"]) {
                () throws(VergeError) in
                _ = try BundleArchive.pack(directory: bundle)
            }

            let archive = try BundleArchive.pack(
                directory: bundle,
                extraFiles: [(path: "bin/Resize", source: root + "/build/release/Resize")]
            )
            let entries = try Self.entries(archive)
            #expect(entries.map(\.path) == ["bin/", "bin/Resize", "verge.json"])
            #expect(entries[1].permissions == 0o755)
            let manifest = try BundleArchive.inspect(archive)
            #expect(manifest.executablePath == "bin/Resize")
        }
    }

    @Test func extraFileReplacesAStaleCopyButNotADirectory() throws {
        try withTemporaryDirectory { root in
            let bundle = root + "/fn"
            try writeFile(bundle, "verge.json", #"{"name":"resize","runtime":"swift","entry":"Resize"}"#)
            try writeFile(bundle, "bin/Resize", "old")
            try writeFile(root, "Resize", "new")
            let archive = try BundleArchive.pack(directory: bundle, extraFiles: [("bin/Resize", root + "/Resize")])
            try BundleArchive.extract(archive, to: root + "/out")
            #expect(try String(contentsOfFile: root + "/out/bin/Resize", encoding: .utf8) == "new")

            expectVergeError(.invalidBundle, ["would replace the directory 'bin'"]) { () throws(VergeError) in
                _ = try BundleArchive.pack(directory: bundle, extraFiles: [("bin", root + "/Resize")])
            }
            expectVergeError(.badRequest, ["extra file path '../Resize'", "'..'"]) { () throws(VergeError) in
                _ = try BundleArchive.pack(directory: bundle, extraFiles: [("../Resize", root + "/Resize")])
            }
            expectVergeError(.badRequest, ["does not exist or is not a regular file"]) { () throws(VergeError) in
                _ = try BundleArchive.pack(directory: bundle, extraFiles: [("bin/Resize", root + "/missing")])
            }
        }
    }

    @Test func packLimitsAreEnforced() throws {
        try withTemporaryDirectory { root in
            try Self.makePythonBundle(root)
            expectVergeError(.invalidBundle, ["more than 5 files and directories"]) { () throws(VergeError) in
                _ = try BundleArchive.pack(directory: root, limits: BundleLimits(maxFiles: 5))
            }
            expectVergeError(.invalidBundle, ["bundle files total more than 40 bytes"]) { () throws(VergeError) in
                _ = try BundleArchive.pack(directory: root, limits: BundleLimits(maxUncompressedBytes: 40))
            }
            expectVergeError(.payloadTooLarge, ["packed bundle is", "the limit is 100 bytes"]) {
                () throws(VergeError) in
                _ = try BundleArchive.pack(directory: root, limits: BundleLimits(maxArchiveBytes: 100))
            }
            expectVergeError(.invalidBundle, ["bundle path 'lib/__init__.py' is 15 bytes long; the limit is 10 bytes"])
            {
                () throws(VergeError) in
                _ = try BundleArchive.pack(directory: root, limits: BundleLimits(maxPathLength: 10))
            }
        }
    }

    /// Composed and decomposed "é" are equal Swift strings but different file names: both must survive.
    @Test func canonicallyEquivalentNamesStayDistinctFiles() throws {
        try withTemporaryDirectory { root in
            try Self.makePythonBundle(root + "/src")
            try writeFile(root + "/src", "caf\u{E9}.txt", "composed")
            try writeFile(root + "/src", "cafe\u{301}.txt", "decomposed")
            let archive = try BundleArchive.pack(directory: root + "/src")
            let paths = try Self.entries(archive).map { Array($0.path.utf8) }
            #expect(paths.contains(Array("caf\u{E9}.txt".utf8)))
            #expect(paths.contains(Array("cafe\u{301}.txt".utf8)))
            try BundleArchive.extract(archive, to: root + "/out")
            let composed = try Data(contentsOf: URL(fileURLWithPath: root + "/out/caf\u{E9}.txt"))
            let decomposed = try Data(contentsOf: URL(fileURLWithPath: root + "/out/cafe\u{301}.txt"))
            #expect(composed == Data("composed".utf8))
            #expect(decomposed == Data("decomposed".utf8))
        }
    }

    @Test func sha256HexIsLowerCaseHex() {
        #expect(
            BundleArchive.sha256Hex(Array("abc".utf8))
                == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        )
        #expect(
            BundleArchive.sha256Hex(Data())
                == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        )
        // A collection without contiguous storage hashes the same.
        let lazyBytes = Array("abc".utf8).lazy.map { $0 }
        #expect(BundleArchive.sha256Hex(lazyBytes) == BundleArchive.sha256Hex(Array("abc".utf8)))
    }
}
