import Hummingbird
import NIOCore
import VergeCore
import VergeHTTP

/// A gateway registers the hashes of its per-host proofs: `docs/api.md`, "Gateway proofs".
extension ControlPlaneAPI {
    /// Largest registration body: 10 000 proofs of about 100 bytes each, with room for spacing.
    static let maximumHostProofBody = 2 * 1024 * 1024

    func registerHostProofs(on router: Router<VergeRequestContext>) {
        router.put("/v1/internal/gateway/host-proofs") { request, _ in
            let principal = try await authorize(request, .gateway)
            var request = request
            let body: ByteBuffer
            do {
                body = try await request.collectBody(upTo: Self.maximumHostProofBody)
            } catch is NIOTooManyBytesError {
                throw VergeError(
                    .payloadTooLarge, "host proofs are at most \(Self.maximumHostProofBody) bytes; register fewer hosts"
                )
            }
            let registration = try JSONCoding.decode(HostProofRegistration.self, from: body, what: "host proofs")
            try Self.validate(registration)
            try await store.replaceHostProofs(credentialID: principal.credentialID, proofs: registration.proofs)
            return try Response.json(["registered": registration.proofs.count])
        }
    }

    /// Every entry names a valid host once, with a SHA-256 in lowercase hex; at most
    /// ``HostProofRegistration/maximumProofs`` entries.
    static func validate(_ registration: HostProofRegistration) throws(VergeError) {
        let proofs = registration.proofs
        guard proofs.count <= HostProofRegistration.maximumProofs else {
            throw VergeError(
                .badRequest,
                "\(proofs.count) proofs; a gateway may register at most \(HostProofRegistration.maximumProofs)")
        }
        var seen = Set<String>()
        for proof in proofs {
            guard HostName.isValid(proof.host) else {
                throw VergeError(.badRequest, "'\(proof.host.prefix(64))' is not a valid host name (a-z, 0-9, '-')")
            }
            guard proof.hash.utf8.count == 64,
                proof.hash.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) })
            else {
                throw VergeError(
                    .badRequest, "the proof hash for host '\(proof.host)' is not a SHA-256 in lowercase hex")
            }
            guard seen.insert(proof.host).inserted else {
                throw VergeError(.badRequest, "host '\(proof.host)' is listed more than once")
            }
        }
    }
}
