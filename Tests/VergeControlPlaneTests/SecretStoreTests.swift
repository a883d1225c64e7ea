import Crypto
import Foundation
import Testing
import VergeCore
import VergeTestSupport

@testable import VergeControlPlane

@Suite struct SecretBoxTests {
    let binding = SecretBox.Binding(tenant: "default", function: "api", name: "DB_PASSWORD")
    let value = "correct horse battery staple ✓"

    @Test func sealsAndOpens() throws {
        let box = SecretBox(key: SymmetricKey(size: .bits256))
        let sealed = try box.seal(value, for: binding)
        #expect(try box.open(sealed, for: binding) == value)
        #expect(sealed.range(of: Data(value.utf8)) == nil, "the sealed blob holds the value in clear")
        // A fresh nonce every time: the same value never seals to the same bytes.
        #expect(try box.seal(value, for: binding) != sealed)
    }

    @Test func aWrongKeyDoesNotOpen() throws {
        let sealed = try SecretBox(key: SymmetricKey(size: .bits256)).seal(value, for: binding)
        let other = SecretBox(key: SymmetricKey(size: .bits256))
        #expect(throws: VergeError.self) { try other.open(sealed, for: binding) }
    }

    @Test(arguments: [
        SecretBox.Binding(tenant: "other", function: "api", name: "DB_PASSWORD"),
        SecretBox.Binding(tenant: "default", function: "apix", name: "DB_PASSWORD"),
        SecretBox.Binding(tenant: "default", function: "api", name: "DB_PASSWORD2"),
        // The parts are delimited: moving a character from one to the next is another binding.
        SecretBox.Binding(tenant: "default", function: "ap", name: "iDB_PASSWORD"),
    ])
    func anotherBindingDoesNotOpen(other: SecretBox.Binding) throws {
        let box = SecretBox(key: SymmetricKey(size: .bits256))
        let sealed = try box.seal(value, for: binding)
        #expect(throws: VergeError.self) { try box.open(sealed, for: other) }
    }

    @Test func anAlteredBlobDoesNotOpenAndTheErrorHoldsNoValue() throws {
        let box = SecretBox(key: SymmetricKey(size: .bits256))
        var sealed = try box.seal(value, for: binding)
        sealed[sealed.count / 2] ^= 1
        do {
            _ = try box.open(sealed, for: binding)
            Issue.record("an altered blob opened")
        } catch {
            #expect(!"\(error)".contains(value))
        }
        #expect(throws: VergeError.self) { try box.open(Data([1, 2, 3]), for: binding) }
    }
}

@Suite struct SecretKeyFileTests {
    @Test func isCreatedOwnerOnlyAndReadBack() throws {
        let directory = try TemporaryDirectory(prefix: "verge-key")
        defer { directory.remove() }
        let path = directory.path + "/nested/secret.key"
        let key = try SecretKeyFile.loadOrCreate(path: path)
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let again = try SecretKeyFile.loadOrCreate(path: path)
        #expect(key == again)
        // The same key opens what the first one sealed: a restart keeps every secret.
        let binding = SecretBox.Binding(tenant: "t", function: "f", name: "N")
        let sealed = try SecretBox(key: key).seal("v", for: binding)
        #expect(try SecretBox(key: again).open(sealed, for: binding) == "v")
    }

    @Test func aFileOthersCanReadIsRefused() throws {
        let directory = try TemporaryDirectory(prefix: "verge-key")
        defer { directory.remove() }
        let path = directory.path + "/secret.key"
        _ = try SecretKeyFile.loadOrCreate(path: path)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
        #expect { try SecretKeyFile.loadOrCreate(path: path) } throws: { error in
            "\(error)".contains("chmod 600")
        }
    }

    @Test(arguments: ["", "abc", String(repeating: "zz", count: 32), String(repeating: "ab", count: 31)])
    func aFileWithoutAKeyIsRefused(content: String) throws {
        let directory = try TemporaryDirectory(prefix: "verge-key")
        defer { directory.remove() }
        let path = directory.path + "/secret.key"
        FileManager.default.createFile(
            atPath: path, contents: Data(content.utf8), attributes: [.posixPermissions: 0o600])
        #expect(throws: VergeError.self) { try SecretKeyFile.loadOrCreate(path: path) }
    }
}

@Suite struct SecretStoreTests {
    @Test func storesSealedValuesAndVersionsTheSet() async throws {
        let directory = try TemporaryDirectory(prefix: "verge-secrets")
        defer { directory.remove() }
        let store = try ControlPlaneStore(path: directory.path + "/control.sqlite")
        let box = SecretBox(key: SymmetricKey(size: .bits256))
        let binding = SecretBox.Binding(tenant: "default", function: "api", name: "TOKEN")
        #expect(try await store.sealedSecrets(tenant: "default", function: "api").version == nil)

        _ = try await store.setSecret(
            tenant: "default", function: "api", name: "TOKEN", sealed: try box.seal("one", for: binding), limit: 2)
        let first = try await store.sealedSecrets(tenant: "default", function: "api")
        #expect(try box.open(try #require(first.sealed["TOKEN"]), for: binding) == "one")
        #expect(try await store.secretsVersions()[SecretOwner(tenant: "default", function: "api")] == first.version)

        _ = try await store.setSecret(
            tenant: "default", function: "api", name: "TOKEN", sealed: try box.seal("two", for: binding), limit: 2)
        let second = try await store.sealedSecrets(tenant: "default", function: "api")
        #expect(second.version != nil && second.version != first.version)
        #expect(try await store.secretNames(tenant: "default", function: "api").map(\.name) == ["TOKEN"])

        _ = try await store.setSecret(tenant: "default", function: "api", name: "B", sealed: Data([1]), limit: 2)
        await #expect(throws: VergeError.self) {
            try await store.setSecret(tenant: "default", function: "api", name: "C", sealed: Data([1]), limit: 2)
        }
        #expect(try await store.deleteSecret(tenant: "default", function: "api", name: "TOKEN"))
        #expect(try await !store.deleteSecret(tenant: "default", function: "api", name: "TOKEN"))
        #expect(try await store.secretNames(tenant: "default", function: "api").map(\.name) == ["B"])
        #expect(try await store.sealedSecrets(tenant: "default", function: "other").version == nil)
    }
}
