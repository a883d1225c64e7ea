import Synchronization
import VergeCore

/// The gateway's proof for each host (``Credential/hostProof(for:)``), made from its own credential and kept per host
/// name: the only credential material the gateway sends a host. A host sees its own proof only, and the control plane
/// tells each host only the hash of the proof made for it, so a proof replayed to another host is refused there.
final class HostProofs: Sendable {
    let credential: Credential
    private let cache = Mutex<[String: String]>([:])
    /// The host names whose proofs the control plane last accepted, and when.
    private let lastRegistration = Mutex<(hosts: Set<String>, at: ContinuousClock.Instant)?>(nil)
    /// How often the same list is registered again (in case the control plane lost it).
    static let reregistrationInterval: Duration = .seconds(60)
    /// Hosts kept in the cache; past it the cache starts over (proofs are cheap to make again).
    private static let maximumCached = 65_536

    /// Refuses anything but a gateway credential, naming what to configure.
    init(credential token: String) throws {
        guard let credential = Credential(parsing: token), credential.kind == .gateway else {
            throw VergeError(
                .unauthorized,
                "the gateway's credential is not a gateway credential (verge_gw_…): join with a token from "
                    + "`verge join-tokens create --role gateway`, or fix the credential file")
        }
        self.credential = credential
    }

    /// The gateway credential's id: hosts list it in their status once they hold this gateway's proof.
    var id: String { credential.id }

    /// The proof to present to host `name` in `x-verge-credential`.
    func token(for name: String) -> String {
        if let cached = cache.withLock({ $0[name] }) { return cached }
        let token = credential.hostProof(for: name)!.token
        cache.withLock { cache in
            if cache.count >= Self.maximumCached { cache.removeAll() }
            cache[name] = token
        }
        return token
    }

    /// Whether the proofs for `hosts` must be registered: the list of names changed, or it was last registered
    /// long ago.
    func needsRegistration(_ hosts: Set<String>, now: ContinuousClock.Instant) -> Bool {
        guard let last = lastRegistration.withLock({ $0 }) else { return true }
        return last.hosts != hosts || now - last.at >= Self.reregistrationInterval
    }

    /// Notes that the control plane accepted the proofs for `hosts`.
    func registered(_ hosts: Set<String>, at moment: ContinuousClock.Instant) {
        lastRegistration.withLock { $0 = (hosts, moment) }
    }

    /// What the gateway registers with the control plane for `hosts`: the SHA-256 of each host's proof.
    func registration(for hosts: some Sequence<String>) -> HostProofRegistration {
        HostProofRegistration(
            proofs: Set(hosts).sorted().map {
                HostProofRegistration.Proof(host: $0, hash: Credential.hash(token(for: $0)))
            })
    }
}
