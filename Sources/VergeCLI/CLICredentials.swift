import Foundation
import VergeCore

/// The CLI's stored credentials: `$XDG_CONFIG_HOME/verge/credentials.json` (else `~/.config/verge/…`), mode 0600,
/// one API token per control-plane URL. `verge dev` stores its admin token there, so the CLI needs no flags.
struct CLICredentials {
    struct Entry: Codable {
        var token: String
    }

    let path: String

    /// The file for this user and environment.
    static var standard: CLICredentials {
        let environment = ProcessInfo.processInfo.environment
        let base =
            environment["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? ((environment["HOME"] ?? NSHomeDirectory()) + "/.config")
        return CLICredentials(path: base + "/verge/credentials.json")
    }

    /// `http://HOST:PORT` without a trailing slash: the key of an entry.
    static func key(_ apiURL: String) -> String {
        apiURL.hasSuffix("/") ? String(apiURL.dropLast()) : apiURL
    }

    func token(for apiURL: String) -> String? {
        guard let text = try? SecretFile.read(path),
            let entries = try? JSONDecoder().decode([String: Entry].self, from: Data(text.utf8))
        else { return nil }
        return entries[Self.key(apiURL)]?.token
    }

    /// Stores `token` for `apiURL`, keeping the other entries.
    func store(_ token: String, for apiURL: String) throws {
        var entries: [String: Entry] = [:]
        if let text = try SecretFile.read(path) {
            entries = (try? JSONDecoder().decode([String: Entry].self, from: Data(text.utf8))) ?? [:]
        }
        entries[Self.key(apiURL)] = Entry(token: token)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        try SecretFile.write(String(decoding: try encoder.encode(entries), as: UTF8.self), to: path)
    }
}
