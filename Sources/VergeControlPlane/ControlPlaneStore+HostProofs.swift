import Foundation
import GRDB
import VergeCore

/// The hashes of the gateways' per-host proofs (`docs/004-trust-model.md`). The control plane never holds a gateway's
/// secret after creating it, so it cannot make a proof: each gateway registers the SHA-256 of its proof for every
/// host it knows, and each host's sync answer lists only the hashes made for that host.
extension ControlPlaneStore {
    static func registerHostProofMigrations(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v4-gateway-host-proofs") { db in
            try db.execute(
                sql: """
                    CREATE TABLE gateway_host_proofs (
                        credential_id TEXT NOT NULL,
                        host TEXT NOT NULL,
                        hash TEXT NOT NULL,
                        created_at_ms INTEGER NOT NULL,
                        PRIMARY KEY (credential_id, host)
                    );
                    CREATE INDEX gateway_host_proofs_host ON gateway_host_proofs(host);
                    """)
        }
    }

    /// Replaces the proof hashes registered with gateway credential `credentialID` by `proofs` (validated by the
    /// caller). Refused when the credential is no longer live, so a registration racing a revocation stores nothing.
    func replaceHostProofs(credentialID: String, proofs: [HostProofRegistration.Proof]) async throws {
        let now = WallClock.milliseconds()
        try await database.write { db in
            guard
                try Bool.fetchOne(
                    db,
                    sql: """
                        SELECT 1 FROM credentials WHERE id = ? AND kind = ? AND revoked_at_ms IS NULL
                        AND (expires_at_ms IS NULL OR expires_at_ms > ?)
                        """,
                    arguments: [credentialID, Credential.Kind.gateway.rawValue, now]) ?? false
            else { throw VergeError(.unauthorized, "unknown, revoked or expired credential") }
            try db.execute(sql: "DELETE FROM gateway_host_proofs WHERE credential_id = ?", arguments: [credentialID])
            let statement = try db.makeStatement(
                sql: "INSERT INTO gateway_host_proofs (credential_id, host, hash, created_at_ms) VALUES (?, ?, ?, ?)")
            for proof in proofs {
                try statement.execute(arguments: [credentialID, proof.host, proof.hash, now])
            }
        }
    }

    /// The proof hashes made for `host` by live gateway credentials, with the credential's id.
    func hostProofs(for host: String) async throws -> [TrustedCaller] {
        let now = WallClock.milliseconds()
        return try await database.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT p.credential_id, p.hash FROM gateway_host_proofs p
                    JOIN credentials c ON c.id = p.credential_id
                    WHERE p.host = ? AND c.kind = ? AND c.revoked_at_ms IS NULL
                    AND (c.expires_at_ms IS NULL OR c.expires_at_ms > ?)
                    ORDER BY p.credential_id
                    """,
                arguments: [host, Credential.Kind.gateway.rawValue, now]
            ).map { TrustedCaller(hash: $0["hash"], role: .gateway, credentialID: $0["credential_id"]) }
        }
    }

    /// How many proof hashes are stored for gateway credential `credentialID` (for tests and diagnostics).
    func hostProofCount(credentialID: String) async throws -> Int {
        try await database.read { db in
            try Int.fetchOne(
                db, sql: "SELECT COUNT(*) FROM gateway_host_proofs WHERE credential_id = ?", arguments: [credentialID])
                ?? 0
        }
    }

    /// Drops the proofs of a credential being revoked, in the revoking transaction.
    static func deleteHostProofs(_ db: Database, credentialID: String) throws {
        try db.execute(sql: "DELETE FROM gateway_host_proofs WHERE credential_id = ?", arguments: [credentialID])
    }
}
