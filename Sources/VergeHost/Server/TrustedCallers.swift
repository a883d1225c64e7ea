import Synchronization
import VergeCore

/// The credentials (by hash) that may call this host's platform endpoints and vouch for forwarded calls: the
/// gateway's and the control plane's, as the control plane lists them in every sync answer. Until the first sync
/// the list is empty and nobody is trusted (fail closed).
final class TrustedCallerList: Sendable {
    private let roles = Mutex<[String: TrustedCaller.Role]>([:])

    func update(_ callers: [TrustedCaller]) {
        var next: [String: TrustedCaller.Role] = [:]
        for caller in callers { next[caller.hash] = caller.role }
        roles.withLock { $0 = next }
    }

    /// The role of the credential in a `x-verge-credential` header value, or `nil`.
    func role(of presented: String?) -> TrustedCaller.Role? {
        guard let presented, let credential = Credential(parsing: presented) else { return nil }
        let hash = credential.hash
        return roles.withLock { $0[hash] }
    }
}
