import Testing
import VergeBundle
import VergeCore

@Suite struct ManifestRegionsTests {
    static let base = #""name":"hello","runtime":"python","entry":"main.py""#

    static func parse(_ json: String) throws(VergeError) -> Manifest {
        try Manifest.parse(Array(json.utf8))
    }

    @Test func regionsAreReadAndRoundTrip() throws {
        let manifest = try Self.parse("{\(Self.base),\"regions\":[\"fra\",\"iad\"]}")
        #expect(manifest.regions == ["fra", "iad"])
        #expect(try Manifest.parse(manifest.encoded()) == manifest)
        #expect(String(decoding: manifest.encoded(), as: UTF8.self).contains(#""regions":["fra","iad"]"#))
    }

    @Test func withoutRegionsTheFunctionRunsEverywhereAndTheBytesDoNotChange() throws {
        let manifest = try Self.parse("{\(Self.base)}")
        #expect(manifest.regions.isEmpty)
        #expect(!String(decoding: manifest.encoded(), as: UTF8.self).contains("regions"))
    }

    @Test(arguments: [
        (#""regions":"fra""#, "regions must be an array"),
        (#""regions":[1]"#, "regions must hold region names"),
        (#""regions":["FRA"]"#, #"regions entry "FRA" is not a region name"#),
        (#""regions":[""]"#, "is not a region name"),
        (#""regions":["fra","fra"]"#, #"regions names "fra" twice"#),
        (#""regions":["a/b"]"#, "is not a region name"),
    ])
    func badRegionsAreRefused(fragment: String, message: String) {
        let error = #expect(throws: VergeError.self) { try Self.parse("{\(Self.base),\(fragment)}") }
        #expect(error?.message.contains(message) == true, "\(error?.message ?? "")")
    }

    @Test func atMost32Regions() {
        let many = (1...33).map { "\"r\($0)\"" }.joined(separator: ",")
        let error = #expect(throws: VergeError.self) { try Self.parse("{\(Self.base),\"regions\":[\(many)]}") }
        #expect(error?.message.contains("at most 32") == true)
    }
}
