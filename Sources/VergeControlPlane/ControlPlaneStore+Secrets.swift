import Crypto
import Foundation
import GRDB
import VergeCore

/// Secrets at rest: one row per (tenant, function, name) holding the sealed value (see `SecretBox`), never the
/// value itself.
extension ControlPlaneStore {
    static func registerSecretMigrations(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v2-secrets") { db in
            try db.execute(
                sql: """
                    CREATE TABLE secrets (
                        tenant TEXT NOT NULL,
                        function TEXT NOT NULL,
                        name TEXT NOT NULL,
                        sealed BLOB NOT NULL,
                        updated_at_ms INTEGER NOT NULL,
                        PRIMARY KEY (tenant, function, name)
                    );
                    """)
        }
    }

    /// Stores a sealed value, replacing the one of that name; refuses a new name beyond `limit` per function.
    func setSecret(
        tenant: String, function: String, name: String, sealed: Data, limit: Int
    ) async throws -> SecretSummary {
        let now = WallClock.milliseconds()
        return try await database.write { db in
            let exists =
                try Bool.fetchOne(
                    db, sql: "SELECT 1 FROM secrets WHERE tenant = ? AND function = ? AND name = ?",
                    arguments: [tenant, function, name]) ?? false
            if !exists {
                let count =
                    try Int.fetchOne(
                        db, sql: "SELECT COUNT(*) FROM secrets WHERE tenant = ? AND function = ?",
                        arguments: [tenant, function]) ?? 0
                guard count < limit else {
                    throw VergeError(
                        .badRequest, "function '\(function)' has \(count) secrets; at most \(limit) are allowed")
                }
            }
            try db.execute(
                sql: """
                    INSERT INTO secrets (tenant, function, name, sealed, updated_at_ms) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT (tenant, function, name) DO UPDATE SET sealed = excluded.sealed,
                        updated_at_ms = excluded.updated_at_ms
                    """,
                arguments: [tenant, function, name, sealed, now])
            return SecretSummary(name: name, updatedAtMs: now)
        }
    }

    /// Names and times of a function's secrets, by name.
    func secretNames(tenant: String, function: String) async throws -> [SecretSummary] {
        try await database.read { db in
            try Row.fetchAll(
                db, sql: "SELECT name, updated_at_ms FROM secrets WHERE tenant = ? AND function = ? ORDER BY name",
                arguments: [tenant, function]
            ).map { SecretSummary(name: $0["name"], updatedAtMs: $0["updated_at_ms"]) }
        }
    }

    func deleteSecret(tenant: String, function: String, name: String) async throws -> Bool {
        try await database.write { db in
            try db.execute(
                sql: "DELETE FROM secrets WHERE tenant = ? AND function = ? AND name = ?",
                arguments: [tenant, function, name])
            return db.changesCount > 0
        }
    }

    /// A function's sealed secrets by name, and the version of that set.
    func sealedSecrets(tenant: String, function: String) async throws -> (version: String?, sealed: [String: Data]) {
        let rows = try await database.read { db in
            try Row.fetchAll(
                db, sql: "SELECT name, sealed FROM secrets WHERE tenant = ? AND function = ? ORDER BY name",
                arguments: [tenant, function]
            ).map { (name: $0["name"] as String, sealed: $0["sealed"] as Data) }
        }
        var sealed: [String: Data] = [:]
        for row in rows { sealed[row.name] = row.sealed }
        return (Self.secretsVersion(rows), sealed)
    }

    /// The version of every function's secret set that has one, keyed by tenant and function.
    func secretsVersions() async throws -> [SecretOwner: String] {
        let rows = try await database.read { db in
            try Row.fetchAll(
                db, sql: "SELECT tenant, function, name, sealed FROM secrets ORDER BY tenant, function, name"
            )
            .map {
                (
                    key: SecretOwner(tenant: $0["tenant"], function: $0["function"]),
                    name: $0["name"] as String, sealed: $0["sealed"] as Data
                )
            }
        }
        var grouped: [SecretOwner: [(name: String, sealed: Data)]] = [:]
        for row in rows { grouped[row.key, default: []].append((row.name, row.sealed)) }
        return grouped.compactMapValues { Self.secretsVersion($0) }
    }

    /// SHA-256 over the names and sealed blobs (never the values): it changes whenever a secret is set or deleted,
    /// because every seal uses a fresh nonce. `nil` for no secrets.
    private static func secretsVersion(_ rows: [(name: String, sealed: Data)]) -> String? {
        guard !rows.isEmpty else { return nil }
        var hash = SHA256()
        for row in rows {
            hash.update(data: Data(row.name.utf8))
            hash.update(data: Data([0]))
            hash.update(data: row.sealed)
            hash.update(data: Data([0]))
        }
        return hash.finalize().map { String(format: "%02x", $0) }.joined()
    }
}

/// The function a set of secrets belongs to.
struct SecretOwner: Hashable, Sendable {
    var tenant: String
    var function: String
}
