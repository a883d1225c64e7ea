import Crypto
import Foundation
import VergeCore

/// Seals and opens secret values with ChaCha20-Poly1305 under the control plane's secret key. The tenant, the
/// function and the secret's name are the associated data, so a sealed value copied to another function or name
/// (in the database, say) does not open. Messages never include a value.
struct SecretBox: Sendable {
    /// The key's bytes (`SymmetricKey` is not `Sendable`); a `SymmetricKey` is made of them for each operation.
    private let keyBytes: [UInt8]

    init(key: SymmetricKey) {
        precondition(key.bitCount == 256, "a secret key has 256 bits")
        self.keyBytes = key.withUnsafeBytes { Array($0) }
    }

    private var key: SymmetricKey { SymmetricKey(data: keyBytes) }

    /// Where a sealed value belongs: what it is bound to.
    struct Binding: Sendable, Hashable {
        var tenant: String
        var function: String
        var name: String

        /// `verge.secret.v1`, then tenant, function and name, each ended by a NUL (none of them can contain one).
        var associatedData: Data {
            var data = Data("verge.secret.v1\0".utf8)
            for part in [tenant, function, name] {
                data.append(contentsOf: Array(part.utf8))
                data.append(0)
            }
            return data
        }
    }

    /// Nonce, ciphertext and tag in one blob.
    func seal(_ value: String, for binding: Binding) throws -> Data {
        do {
            return try ChaChaPoly.seal(Data(value.utf8), using: key, authenticating: binding.associatedData).combined
        } catch {
            throw VergeError(.internalError, "cannot seal secret '\(binding.name)'")
        }
    }

    /// The value, or an error when the blob was sealed under another key or for another binding, or was altered.
    func open(_ sealed: Data, for binding: Binding) throws -> String {
        do {
            let box = try ChaChaPoly.SealedBox(combined: sealed)
            let plain = try ChaChaPoly.open(box, using: key, authenticating: binding.associatedData)
            guard let value = String(bytes: plain, encoding: .utf8) else { throw CryptoKitError.authenticationFailure }
            return value
        } catch {
            throw VergeError(
                .internalError,
                "secret '\(binding.name)' of function '\(binding.function)' does not open with this control plane's "
                    + "secret key; was the key file replaced?"
            )
        }
    }
}
