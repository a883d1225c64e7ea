import Foundation
import Testing
import VergeBundle
import VergeCore

@Suite struct ManifestTests {
    static func parse(_ json: String) throws(VergeError) -> Manifest {
        try Manifest.parse(Array(json.utf8))
    }

    @Test func minimalPythonManifestGetsDefaults() throws {
        let manifest = try Self.parse(#"{"name":"hello","runtime":"python","entry":"main.py"}"#)
        #expect(manifest.name == "hello")
        #expect(manifest.runtime == .python)
        #expect(manifest.entry == "main.py")
        #expect(manifest.handler == "handle")
        #expect(manifest.memoryMB == 128)
        #expect(manifest.timeoutMs == 10_000)
        #expect(manifest.maxWorkers == 4)
        #expect(manifest.idleTimeoutSeconds == nil)
        #expect(manifest.minInstances == 0)
        #expect(manifest.prewarm == false)
        #expect(manifest.env == [:])
        #expect(manifest.network == .none)
        #expect(manifest.entryPath == "main.py")
        #expect(manifest.executablePath == nil)
    }

    @Test func everyKeyIsRead() throws {
        let manifest = try Self.parse(
            """
            {
              "name": "json-api", "runtime": "python", "entry": "app/server.py", "handler": "serve",
              "memory_mb": 64, "timeout_ms": 5000, "max_workers": 16, "idle_timeout_s": 300,
              "min_instances": 2, "prewarm": true, "env": {"GREETING": "Hello", "_X1": ""}
            }
            """
        )
        #expect(
            manifest
                == Manifest(
                    name: "json-api", runtime: .python, entry: "app/server.py", handler: "serve", memoryMB: 64,
                    timeoutMs: 5000, maxWorkers: 16, idleTimeoutSeconds: 300, minInstances: 2, prewarm: true,
                    env: ["GREETING": "Hello", "_X1": ""]
                )
        )
    }

    @Test func swiftManifestNamesItsExecutable() throws {
        let manifest = try Self.parse(#"{"name":"resize","runtime":"swift","entry":"Resize-Image_2"}"#)
        #expect(manifest.runtime == .swift)
        #expect(manifest.executablePath == "bin/Resize-Image_2")
        #expect(manifest.entryPath == "bin/Resize-Image_2")
    }

    @Test func encodingIsCanonical() throws {
        let manifest = Manifest(
            name: "hello", runtime: .python, entry: "main.py", memoryMB: 64, env: ["B": "2", "A": "1/2"]
        )
        let expected =
            #"{"entry":"main.py","env":{"A":"1/2","B":"2"},"handler":"handle","max_workers":4,"memory_mb":64,"#
            + #""name":"hello","runtime":"python","timeout_ms":10000}"#
        #expect(String(decoding: manifest.encoded(), as: UTF8.self) == expected)
        #expect(try Manifest.parse(manifest.encoded()) == manifest)
    }

    @Test func swiftEncodingLeavesOutHandlerAndRoundTrips() throws {
        let manifest = Manifest(name: "resize", runtime: .swift, entry: "Resize", idleTimeoutSeconds: 60)
        let text = String(decoding: manifest.encoded(), as: UTF8.self)
        #expect(!text.contains("handler"))
        #expect(text.contains(#""idle_timeout_s":60"#))
        #expect(try Manifest.parse(manifest.encoded()) == manifest)
    }

    @Test func minInstancesAndPrewarmAreEncodedOnlyWhenSetAndRoundTrip() throws {
        let plain = String(decoding: Manifest(name: "a", runtime: .python, entry: "m.py").encoded(), as: UTF8.self)
        #expect(!plain.contains("min_instances") && !plain.contains("prewarm"))
        let warm = Manifest(name: "a", runtime: .python, entry: "m.py", maxWorkers: 3, minInstances: 3, prewarm: true)
        let text = String(decoding: warm.encoded(), as: UTF8.self)
        #expect(text.contains(#""min_instances":3"#))
        #expect(text.contains(#""prewarm":true"#))
        #expect(try Manifest.parse(warm.encoded()) == warm)
    }

    @Test func networkIsNoneUnlessOutboundIsAskedFor() throws {
        #expect(try Self.parse("{\(Self.base),\"network\":\"none\"}").network == .none)
        let outbound = try Self.parse("{\(Self.base),\"network\":\"outbound\"}")
        #expect(outbound.network == .outbound)
        #expect(String(decoding: outbound.encoded(), as: UTF8.self).contains(#""network":"outbound""#))
        #expect(try Manifest.parse(outbound.encoded()) == outbound)
        // The default is not written, so manifests without the key keep their canonical bytes.
        let plain = try Self.parse("{\(Self.base),\"network\":\"none\"}")
        #expect(!String(decoding: plain.encoded(), as: UTF8.self).contains("network"))
    }

    @Test func decodingThroughJSONDecoderAppliesTheSameRules() throws {
        struct Envelope: Decodable { var manifest: Manifest }
        let good = #"{"manifest":{"name":"a","runtime":"python","entry":"m.py"}}"#
        #expect(try JSONDecoder().decode(Envelope.self, from: Data(good.utf8)).manifest.memoryMB == 128)
        let bad = #"{"manifest":{"name":"a","runtime":"python","entry":"m.py","memory_mb":1}}"#
        #expect(throws: VergeError.self) { try JSONDecoder().decode(Envelope.self, from: Data(bad.utf8)) }
    }

    @Test func validateChecksManifestsBuiltInCode() throws {
        try Manifest(name: "ok", runtime: .python, entry: "main.py").validate()
        expectVergeError(.invalidBundle, ["verge.json: max_workers must be between 1 and 256, got 0"]) {
            () throws(VergeError) in
            try Manifest(name: "ok", runtime: .python, entry: "main.py", maxWorkers: 0).validate()
        }
    }

    static let base = #""name":"hello","runtime":"python","entry":"main.py""#

    /// Each invalid manifest and fragments its error message must contain.
    static let rejected: [(json: String, fragments: [String])] = [
        ("", ["verge.json is not valid JSON"]),
        ("{\"name\": ", ["verge.json is not valid JSON"]),
        ("[1, 2]", ["verge.json must contain a JSON object, got an array"]),
        ("{\(base),\"memory\":128}", ["unknown key 'memory'", "allowed keys: entry, env, handler"]),
        ("{\(base),\"b\":1,\"a\":2}", ["unknown keys 'a', 'b'"]),
        (#"{"runtime":"python","entry":"main.py"}"#, ["missing required key 'name'"]),
        (#"{"name":"hello","runtime":"python"}"#, ["missing required key 'entry'"]),
        (#"{"name":"hello"}"#, ["missing required keys 'runtime', 'entry'"]),
        (#"{"name":"Hello","runtime":"python","entry":"main.py"}"#, ["name must be 1–63 characters", #""Hello""#]),
        (#"{"name":"9lives","runtime":"python","entry":"main.py"}"#, ["name must be", "starting with a letter"]),
        (#"{"name":7,"runtime":"python","entry":"main.py"}"#, ["name must be a string, got 7"]),
        (
            #"{"name":"hello","runtime":"node","entry":"main.py"}"#,
            [#"runtime must be "python" or "swift", got "node""#]
        ),
        (#"{"name":"hello","runtime":"python","entry":"../main.py"}"#, ["entry \"../main.py\"", "'..'"]),
        (#"{"name":"hello","runtime":"python","entry":"/srv/main.py"}"#, ["absolute path"]),
        (#"{"name":"hello","runtime":"python","entry":"main.js"}"#, ["is not a .py file", "like \"main.py\""]),
        (
            #"{"name":"hello","runtime":"swift","entry":"bin/app"}"#,
            ["entry must be the executable product's name", #"got "bin/app""#]
        ),
        (
            #"{"name":"hello","runtime":"swift","entry":"app","handler":"handle"}"#,
            ["handler applies only to runtime python"]
        ),
        ("{\(base),\"handler\":\"2fast\"}", ["handler must be a Python identifier", #"got "2fast""#]),
        ("{\(base),\"handler\":\"def\"}", [#"handler cannot be the Python keyword "def""#]),
        ("{\(base),\"memory_mb\":8}", ["memory_mb must be between 16 and 10240, got 8"]),
        ("{\(base),\"memory_mb\":20000}", ["memory_mb must be between 16 and 10240, got 20000"]),
        ("{\(base),\"memory_mb\":\"128\"}", [#"memory_mb must be an integer, got "128""#]),
        ("{\(base),\"memory_mb\":12.5}", ["memory_mb must be an integer, got 12.5"]),
        ("{\(base),\"timeout_ms\":0}", ["timeout_ms must be between 1 and 900000, got 0"]),
        ("{\(base),\"timeout_ms\":true}", ["timeout_ms must be an integer, got true"]),
        ("{\(base),\"max_workers\":257}", ["max_workers must be between 1 and 256, got 257"]),
        ("{\(base),\"max_workers\":null}", ["max_workers must be an integer, got null"]),
        ("{\(base),\"idle_timeout_s\":0}", ["idle_timeout_s must be between 1 and 86400, got 0"]),
        ("{\(base),\"min_instances\":-1}", ["min_instances must be between 0 and max_workers (4), got -1"]),
        ("{\(base),\"min_instances\":5}", ["min_instances must be between 0 and max_workers (4), got 5"]),
        (
            "{\(base),\"max_workers\":8,\"min_instances\":9}",
            ["min_instances must be between 0 and max_workers (8), got 9"]
        ),
        ("{\(base),\"min_instances\":\"1\"}", [#"min_instances must be an integer, got "1""#]),
        ("{\(base),\"prewarm\":1}", ["prewarm must be true or false, got 1"]),
        ("{\(base),\"prewarm\":\"yes\"}", [#"prewarm must be true or false, got "yes""#]),
        ("{\(base),\"prewarm\":null}", ["prewarm must be true or false, got null"]),
        ("{\(base),\"network\":\"internet\"}", [#"network must be "none" or "outbound", got "internet""#]),
        ("{\(base),\"network\":true}", [#"network must be "none" or "outbound", got true"#]),
        ("{\(base),\"network\":\"Outbound\"}", [#"got "Outbound""#]),
        ("{\(base),\"env\":[\"A\"]}", ["env must be an object mapping variable names to strings, got an array"]),
        ("{\(base),\"env\":{\"lower\":\"x\"}}", ["env name 'lower' is invalid", "A-Z, 0-9 and '_'"]),
        ("{\(base),\"env\":{\"1ST\":\"x\"}}", ["env name '1ST' is invalid"]),
        ("{\(base),\"env\":{\"VERGE_TOKEN\":\"x\"}}", ["env name 'VERGE_TOKEN' is reserved", "VERGE_"]),
        ("{\(base),\"env\":{\"PORT\":8080}}", ["env value of 'PORT' must be a string, got 8080"]),
        ("{\(base),\"env\":{\"NUL\":\"a\\u0000b\"}}", ["env value of 'NUL' contains a NUL character"]),
    ]

    @Test(arguments: rejected)
    func invalidManifestIsRejectedWithItsRule(json: String, fragments: [String]) {
        expectVergeError(.invalidBundle, fragments) { () throws(VergeError) in _ = try Self.parse(json) }
    }

    @Test func envValueMayBe4096BytesButNot4097() throws {
        let value = String(repeating: "x", count: 4096)
        #expect(try Self.parse("{\(Self.base),\"env\":{\"BIG\":\"\(value)\"}}").env["BIG"] == value)
        expectVergeError(.invalidBundle, ["env value of 'BIG' is 4097 bytes; the limit is 4096 bytes"]) {
            () throws(VergeError) in
            _ = try Self.parse("{\(Self.base),\"env\":{\"BIG\":\"\(value)y\"}}")
        }
    }

    @Test func envMayHave64VariablesButNot65() throws {
        func json(_ count: Int) -> String {
            "{\(Self.base),\"env\":{\((0..<count).map { "\"V\($0)\":\"x\"" }.joined(separator: ","))}}"
        }
        #expect(try Self.parse(json(64)).env.count == 64)
        expectVergeError(.invalidBundle, ["env has 65 variables; at most 64 are allowed"]) { () throws(VergeError) in
            _ = try Self.parse(json(65))
        }
    }

    @Test func envNameMayBe128CharactersButNot129() throws {
        let long = String(repeating: "A", count: 128)
        #expect(try Self.parse("{\(Self.base),\"env\":{\"\(long)\":\"x\"}}").env[long] == "x")
        expectVergeError(.invalidBundle, ["is invalid"]) { () throws(VergeError) in
            _ = try Self.parse("{\(Self.base),\"env\":{\"\(long)B\":\"x\"}}")
        }
    }
}

@Suite struct IdempotentMethodsManifestTests {
    @Test func markedMethodsAreReadAndRoundTrip() throws {
        let manifest = try ManifestTests.parse(
            #"{"name":"put","runtime":"python","entry":"main.py","idempotent_methods":["PUT","DELETE"]}"#)
        #expect(manifest.idempotentMethods == ["PUT", "DELETE"])
        #expect(try Manifest.parse(manifest.encoded()) == manifest)
        // Absent, it is not written: manifests without it keep their bytes.
        let plain = try ManifestTests.parse(#"{"name":"plain","runtime":"python","entry":"main.py"}"#)
        #expect(!String(decoding: plain.encoded(), as: UTF8.self).contains("idempotent_methods"))
    }

    @Test(arguments: [
        (#"["GET"]"#, "may name POST, PUT, PATCH, DELETE"),
        (#"["put"]"#, "may name POST, PUT, PATCH, DELETE"),
        (#"["PUT","PUT"]"#, "names a method twice"),
        (#""PUT""#, "must be an array"),
        (#"[1]"#, "must hold method names"),
    ])
    func invalidMarksAreRefused(value: String, problem: String) {
        #expect {
            _ = try ManifestTests.parse(
                #"{"name":"bad","runtime":"python","entry":"main.py","idempotent_methods":"# + value + "}")
        } throws: { error in
            "\(error)".contains(problem)
        }
    }
}
