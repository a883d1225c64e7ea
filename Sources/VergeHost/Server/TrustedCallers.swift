import Foundation
import Synchronization
import VergeCore

/// The credentials (by hash) that may call this host's platform endpoints and vouch for forwarded calls: the
/// gateways' proofs made for this host and the control plane's own credential, as the control plane lists them in
/// every sync answer. The list is kept in `DATA/trusted-callers.json` (0600) so that a host restarted while the
/// control plane is down still recognises the gateway; a host that never synced trusts nobody (fail closed).
final class TrustedCallerList: Sendable {
    private struct State {
        var roles: [String: TrustedCaller.Role] = [:]
        /// Ids of the gateway credentials whose proof for this host is in the list.
        var gateways: [String] = []

        init(_ callers: [TrustedCaller]) {
            for caller in callers { roles[caller.hash] = caller.role }
            gateways = Set(callers.filter { $0.role == .gateway }.compactMap(\.credentialID)).sorted()
        }
    }

    private let state: Mutex<State>
    private let path: String?

    /// Loads the list saved at `path`, if any; `nil` keeps it in memory only.
    init(path: String?) {
        self.path = path
        var initial: [TrustedCaller] = []
        if let path, let text = try? SecretFile.read(path),
            let callers = try? JSONDecoder().decode([TrustedCaller].self, from: Data(text.utf8))
        {
            initial = callers
        }
        state = Mutex(State(initial))
    }

    /// Replaces the list; saves it when it changed.
    func update(_ callers: [TrustedCaller]) throws {
        let next = State(callers)
        let changed = state.withLock { state in
            defer { state = next }
            return state.roles != next.roles || state.gateways != next.gateways
        }
        guard changed, let path else { return }
        let sorted = callers.sorted { $0.hash < $1.hash }
        try SecretFile.write(String(decoding: try JSONEncoder().encode(sorted), as: UTF8.self), to: path)
    }

    /// The role of the credential in a `x-verge-credential` header value, or `nil`.
    func role(of presented: String?) -> TrustedCaller.Role? {
        guard let presented, let credential = Credential(parsing: presented) else { return nil }
        let hash = credential.hash
        return state.withLock { $0.roles[hash] }
    }

    /// Ids of the gateway credentials this host recognises, reported in its status.
    var gatewayIDs: [String] { state.withLock { $0.gateways } }
}
