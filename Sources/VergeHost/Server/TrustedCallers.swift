import Foundation
import Synchronization
import VergeCore

/// The credentials (by hash) that may call this host's platform endpoints and vouch for forwarded calls: the
/// gateway's and the control plane's, as the control plane lists them in every sync answer. The list is kept in
/// `DATA/trusted-callers.json` (0600) so that a host restarted while the control plane is down still recognises
/// the gateway; a host that never synced trusts nobody (fail closed).
final class TrustedCallerList: Sendable {
    private let roles: Mutex<[String: TrustedCaller.Role]>
    private let path: String?

    /// Loads the list saved at `path`, if any; `nil` keeps it in memory only.
    init(path: String?) {
        self.path = path
        var initial: [String: TrustedCaller.Role] = [:]
        if let path, let text = try? SecretFile.read(path),
            let callers = try? JSONDecoder().decode([TrustedCaller].self, from: Data(text.utf8))
        {
            for caller in callers { initial[caller.hash] = caller.role }
        }
        roles = Mutex(initial)
    }

    /// Replaces the list; saves it when it changed.
    func update(_ callers: [TrustedCaller]) throws {
        var next: [String: TrustedCaller.Role] = [:]
        for caller in callers { next[caller.hash] = caller.role }
        let changed = roles.withLock { roles in
            defer { roles = next }
            return roles != next
        }
        guard changed, let path else { return }
        let sorted = callers.sorted { $0.hash < $1.hash }
        try SecretFile.write(String(decoding: try JSONEncoder().encode(sorted), as: UTF8.self), to: path)
    }

    /// The role of the credential in a `x-verge-credential` header value, or `nil`.
    func role(of presented: String?) -> TrustedCaller.Role? {
        guard let presented, let credential = Credential(parsing: presented) else { return nil }
        let hash = credential.hash
        return roles.withLock { $0[hash] }
    }
}
