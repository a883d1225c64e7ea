import Crypto

extension Credential {
    /// The proof a gateway or the control plane presents to host `hostName` instead of its credential:
    /// `verge_gwp_ID_MAC` (a gateway's) or `verge_cpp_ID_MAC` (the control plane's), where `ID` is the credential's
    /// id and `MAC` is HMAC-SHA256 keyed with its secret over the host's name (hex). Each host sees only its own
    /// proof and is told only that proof's hash, so a host that replays what it received to another host is not
    /// recognised there. `nil` for any other credential.
    public func hostProof(for hostName: String) -> Credential? {
        let proofKind: Kind
        switch kind {
        case .gateway: proofKind = .hostProof
        case .controlPlane: proofKind = .controlPlaneProof
        case .api, .host, .join, .hostProof, .controlPlaneProof: return nil
        }
        let key = SymmetricKey(data: Array(secret.utf8))
        let message = Array((Self.hostProofContext + hostName).utf8)
        let mac = HMAC<SHA256>.authenticationCode(for: message, using: key).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
        return Credential(kind: proofKind, id: id, secret: mac)
    }

    /// Binds the MAC to its purpose, so the same secret keyed over another kind of message never yields a proof.
    static let hostProofContext = "verge host proof v1\n"
}
