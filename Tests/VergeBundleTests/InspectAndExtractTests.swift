import Foundation
import Testing
import VergeBundle
import VergeCore
import ZIPFoundation

@Suite struct InspectAndExtractTests {
    @Test func lambdaStyleZipWithoutDirectoryEntriesRoundTrips() throws {
        let archive = try TestZip.python([
            .file("lib/deep/util.py", "X = 1\n"),
            .file("static/index.html", "<h1>hi</h1>", compression: .none),
            .file("empty.txt", "", compression: .none),
        ])
        let manifest = try BundleArchive.inspect(archive)
        #expect(manifest.name == "hello")

        try withTemporaryDirectory { root in
            let target = root + "/functions/hello/1"
            let extracted = try BundleArchive.extract(archive, to: target)
            #expect(extracted == manifest)
            #expect(
                try listTree(target) == [
                    "empty.txt", "lib/", "lib/deep/", "lib/deep/util.py", "main.py", "static/", "static/index.html",
                    "verge.json",
                ]
            )
            #expect(try String(contentsOfFile: target + "/lib/deep/util.py", encoding: .utf8) == "X = 1\n")
            #expect(try String(contentsOfFile: target + "/main.py", encoding: .utf8) == TestZip.mainPy)
            #expect(try posixMode(target) == 0o755)
            #expect(try posixMode(target + "/lib/deep") == 0o755)
            #expect(try posixMode(target + "/verge.json") == 0o644)
            // Nothing but the bundle was left next to it.
            #expect(try listTree(root + "/functions/hello") == ["1/"] + (try listTree(target)).map { "1/" + $0 })
        }
    }

    @Test func packedBundleRoundTripsThroughExtract() throws {
        try withTemporaryDirectory { root in
            try PackTests.makePythonBundle(root + "/src")
            let archive = try BundleArchive.pack(directory: root + "/src")
            try BundleArchive.extract(archive, to: root + "/out")
            #expect(try listTree(root + "/out") == (try listTree(root + "/src")))
            #expect(try Data(contentsOf: URL(fileURLWithPath: root + "/out/lib/util.py")) == Data("X = 1\n".utf8))
        }
    }

    @Test func modesAreNormalisedNeverSetuidOrWorldWritable() throws {
        let archive = try TestZip.python([
            .file("tool", "#!/bin/sh\n", permissions: 0o4777),
            .file("notes.txt", "n", permissions: 0o2666),
            Item(path: "shared/", contents: [], type: .directory, permissions: 0o1777, compression: .none),
        ])
        try withTemporaryDirectory { root in
            try BundleArchive.extract(archive, to: root + "/b")
            #expect(try posixMode(root + "/b/tool") == 0o755)
            #expect(try posixMode(root + "/b/notes.txt") == 0o644)
            #expect(try posixMode(root + "/b/shared") == 0o755)
        }
    }

    @Test func extractRefusesAnExistingTarget() throws {
        let archive = try TestZip.python()
        try withTemporaryDirectory { root in
            try FileManager.default.createDirectory(atPath: root + "/target", withIntermediateDirectories: false)
            expectVergeError(.internalError, ["already exists"]) { () throws(VergeError) in
                try BundleArchive.extract(archive, to: root + "/target")
            }
            #expect(try listTree(root) == ["target/"])

            try FileManager.default.createSymbolicLink(
                atPath: root + "/dangling", withDestinationPath: root + "/nowhere")
            expectVergeError(.internalError, ["already exists"]) { () throws(VergeError) in
                try BundleArchive.extract(archive, to: root + "/dangling")
            }
            #expect(!FileManager.default.fileExists(atPath: root + "/nowhere"))
        }
    }

    typealias Item = TestZip.Item

    static let escapes: [(path: String, rule: String)] = [
        ("../evil.py", "'..'"),
        ("a/../../evil.py", "'..'"),
        ("a/../evil.py", "'..'"),
        ("../../../../../../tmp/evil.py", "'..'"),
        ("/tmp/verge-bundle-tests-absolute-evil.py", "absolute path"),
        ("..\\evil.py", "backslash"),
        ("a//evil.py", "empty component"),
        ("./evil.py", "'.'"),
        ("evil\u{0}.py", "NUL"),
    ]

    @Test(arguments: escapes)
    func zipSlipIsRejectedAndNothingIsWritten(path: String, rule: String) throws {
        let archive = try TestZip.python([.file("lib/ok.py", "1"), .file(path, "pwned"), .file("z.py", "2")])
        expectVergeError(.invalidBundle, ["bundle entry", rule]) { () throws(VergeError) in
            _ = try BundleArchive.inspect(archive)
        }
        try withTemporaryDirectory { root in
            let target = root + "/hosts/cache/target"
            try FileManager.default.createDirectory(atPath: root + "/hosts/cache", withIntermediateDirectories: true)
            expectVergeError(.invalidBundle, ["bundle entry", rule]) { () throws(VergeError) in
                try BundleArchive.extract(archive, to: target)
            }
            #expect(!FileManager.default.fileExists(atPath: target))
            #expect(try listTree(root) == ["hosts/", "hosts/cache/"])
        }
        #expect(!FileManager.default.fileExists(atPath: "/tmp/verge-bundle-tests-absolute-evil.py"))
        #expect(!FileManager.default.fileExists(atPath: "/tmp/evil.py"))
    }

    @Test func symbolicLinkEntryIsRejected() throws {
        let archive = try TestZip.python([.symlink("lib", to: "/etc")])
        expectVergeError(.invalidBundle, ["bundle entry 'lib' is a symbolic link"]) { () throws(VergeError) in
            _ = try BundleArchive.inspect(archive)
        }
        try withTemporaryDirectory { root in
            expectVergeError(.invalidBundle, ["is a symbolic link"]) { () throws(VergeError) in
                try BundleArchive.extract(archive, to: root + "/b")
            }
            let leftovers = try listTree(root)
            #expect(leftovers == [])
        }
    }

    @Test func specialFileEntryIsRejected() throws {
        var archive = try TestZip.python([.file("pipe", "")])
        let central = try TestZip.headers(archive, "pipe").central
        TestZip.setU32(&archive, central + 38, 0o010644 << 16)  // S_IFIFO
        expectVergeError(.invalidBundle, ["bundle entry 'pipe' is a special file"]) { () throws(VergeError) in
            _ = try BundleArchive.inspect(archive)
        }
    }

    @Test func tooManyFilesIsRejected() throws {
        let archive = try TestZip.python([.file("a.py", "a"), .file("b.py", "b")])
        #expect(try BundleArchive.inspect(archive, limits: BundleLimits(maxFiles: 4)).name == "hello")
        expectVergeError(.invalidBundle, ["bundle has 4 entries; the limit is 3"]) { () throws(VergeError) in
            _ = try BundleArchive.inspect(archive, limits: BundleLimits(maxFiles: 3))
        }
    }

    @Test func longPathIsRejected() throws {
        let archive = try TestZip.python([.file("lib/" + String(repeating: "a", count: 30) + ".py", "a")])
        expectVergeError(.invalidBundle, ["is 37 bytes long; the limit is 32 bytes"]) { () throws(VergeError) in
            _ = try BundleArchive.inspect(archive, limits: BundleLimits(maxPathLength: 32))
        }
    }

    @Test func archiveBombIsRejectedFromItsDeclaredSize() throws {
        let zeros = [UInt8](repeating: 0, count: 4 << 20)
        let archive = try TestZip.python([Item(path: "bomb.bin", contents: zeros)])
        #expect(archive.count < 16 << 10)
        let limits = BundleLimits(maxUncompressedBytes: 1 << 20)
        expectVergeError(.invalidBundle, ["bundle unpacks to more than 1048576 bytes", "the limit is 1048576 bytes"]) {
            () throws(VergeError) in
            _ = try BundleArchive.inspect(archive, limits: limits)
        }
        try withTemporaryDirectory { root in
            expectVergeError(.invalidBundle, ["bundle unpacks to more than"]) { () throws(VergeError) in
                try BundleArchive.extract(archive, to: root + "/b", limits: limits)
            }
            let leftovers = try listTree(root)
            #expect(leftovers == [])
        }
    }

    @Test func bombWithALyingHeaderIsStoppedWhileReading() throws {
        let zeros = [UInt8](repeating: 0, count: 4 << 20)
        var archive = try TestZip.python([Item(path: "bomb.bin", contents: zeros), .file("z.py", "1")])
        let (central, local) = try TestZip.headers(archive, "bomb.bin")
        TestZip.setU32(&archive, central + 24, 1000)
        TestZip.setU32(&archive, local + 22, 1000)
        let limits = BundleLimits(maxUncompressedBytes: 1 << 20)
        expectVergeError(.invalidBundle, ["bundle entry 'bomb.bin'", "more than the 1000 bytes its header declares"]) {
            () throws(VergeError) in
            _ = try BundleArchive.inspect(archive, limits: limits)
        }
        try withTemporaryDirectory { root in
            expectVergeError(.invalidBundle, ["more than the 1000 bytes its header declares"]) {
                () throws(VergeError) in
                try BundleArchive.extract(archive, to: root + "/b", limits: limits)
            }
            let leftovers = try listTree(root)
            #expect(leftovers == [])
        }
    }

    @Test func archiveOverItsSizeLimitIsTooLarge() throws {
        let archive = try TestZip.python()
        expectVergeError(.payloadTooLarge, ["bundle archive is \(archive.count) bytes; the limit is 100 bytes"]) {
            () throws(VergeError) in
            _ = try BundleArchive.inspect(archive, limits: BundleLimits(maxArchiveBytes: 100))
        }
    }

    static let notZips: [[UInt8]] = [
        [],
        Array("hello, world".utf8),
        Array(repeating: 0x50, count: 100_000),
        Array(#"{"name":"hello","runtime":"python","entry":"main.py"}"#.utf8),
    ]

    @Test(arguments: notZips)
    func notAZipIsRejected(bytes: [UInt8]) {
        expectVergeError(.invalidBundle, ["bundle is not a zip archive"]) { () throws(VergeError) in
            _ = try BundleArchive.inspect(bytes)
        }
    }

    @Test func missingManifestIsRejected() throws {
        let withoutManifest = try TestZip.make([.file("main.py", TestZip.mainPy)])
        expectVergeError(.invalidBundle, ["bundle has no verge.json at its root"]) { () throws(VergeError) in
            _ = try BundleArchive.inspect(withoutManifest)
        }
        let nested = try TestZip.make([
            .directory("hello/"), .file("hello/verge.json", TestZip.pythonManifest), .file("hello/main.py", "x"),
        ])
        expectVergeError(.invalidBundle, ["has 'hello/verge.json'", "zip the contents of the function's folder"]) {
            () throws(VergeError) in
            _ = try BundleArchive.inspect(nested)
        }
    }

    @Test func invalidManifestInsideAnArchiveIsRejectedWithItsRule() throws {
        let archive = try TestZip.make([
            .file("verge.json", #"{"name":"hello","runtime":"python","entry":"main.py","colour":"blue"}"#),
            .file("main.py", TestZip.mainPy),
        ])
        expectVergeError(.invalidBundle, ["verge.json: unknown key 'colour'"]) { () throws(VergeError) in
            _ = try BundleArchive.inspect(archive)
        }
    }

    @Test func pythonEntryFileMustExist() throws {
        let archive = try TestZip.make([.file("verge.json", TestZip.pythonManifest), .file("app.py", "x")])
        expectVergeError(.invalidBundle, ["bundle has no file 'main.py', which verge.json names as its entry"]) {
            () throws(VergeError) in
            _ = try BundleArchive.inspect(archive)
        }
        let directory = try TestZip.make([.file("verge.json", TestZip.pythonManifest), .directory("main.py/")])
        expectVergeError(.invalidBundle, ["'main.py', which verge.json names as its entry, is a directory"]) {
            () throws(VergeError) in
            _ = try BundleArchive.inspect(directory)
        }
    }

    static let swiftManifest = #"{"name":"resize","runtime":"swift","entry":"Resize"}"#

    @Test func swiftBundleRequiresItsExecutableInBin() throws {
        for archive in [
            try TestZip.make([.file("verge.json", Self.swiftManifest)]),
            try TestZip.make([.file("verge.json", Self.swiftManifest), .file("Resize", "ELF")]),
        ] {
            expectVergeError(.invalidBundle, ["bundle has no executable at 'bin/Resize'"]) { () throws(VergeError) in
                _ = try BundleArchive.inspect(archive)
            }
        }
        let directory = try TestZip.make([.file("verge.json", Self.swiftManifest), .directory("bin/Resize/")])
        expectVergeError(.invalidBundle, ["'bin/Resize', which verge.json names as its entry, is a directory"]) {
            () throws(VergeError) in
            _ = try BundleArchive.inspect(directory)
        }

        // A zip from a tool that lost the executable bit still yields a runnable binary.
        let archive = try TestZip.make([.file("verge.json", Self.swiftManifest), .file("bin/Resize", "ELF")])
        #expect(try BundleArchive.inspect(archive).executablePath == "bin/Resize")
        try withTemporaryDirectory { root in
            try BundleArchive.extract(archive, to: root + "/b")
            #expect(try posixMode(root + "/b/bin/Resize") == 0o755)
        }
    }

    @Test func duplicateAndConflictingPathsAreRejected() throws {
        let duplicate = try TestZip.python([.file("lib/a.py", "1"), .file("lib/a.py", "2")])
        expectVergeError(.invalidBundle, ["bundle has more than one entry for 'lib/a.py'"]) { () throws(VergeError) in
            _ = try BundleArchive.inspect(duplicate)
        }
        let fileAndDirectory = try TestZip.python([.file("lib", "1"), .directory("lib/")])
        expectVergeError(.invalidBundle, ["more than one entry for 'lib'"]) { () throws(VergeError) in
            _ = try BundleArchive.inspect(fileAndDirectory)
        }
        let insideFile = try TestZip.python([.file("main.py/x.py", "1")])
        expectVergeError(.invalidBundle, ["bundle entry 'main.py/x.py' is inside 'main.py', which is a file"]) {
            () throws(VergeError) in
            _ = try BundleArchive.inspect(insideFile)
        }
    }

    @Test func corruptDataIsDetectedAndExtractionLeavesNothing() throws {
        var archive = try TestZip.python([
            .file("a.py", "first"), .file("z.py", "stored contents", compression: .none),
        ])
        let local = try TestZip.headers(archive, "z.py").local
        archive[local + 30 + 4] ^= 0xFF  // a byte of the stored data
        expectVergeError(.invalidBundle, ["bundle entry 'z.py' is corrupt", "CRC-32"]) { () throws(VergeError) in
            _ = try BundleArchive.inspect(archive)
        }
        try withTemporaryDirectory { root in
            expectVergeError(.invalidBundle, ["CRC-32"]) { () throws(VergeError) in
                try BundleArchive.extract(archive, to: root + "/b")
            }
            let leftovers = try listTree(root)
            #expect(leftovers == [])
        }
    }
}
