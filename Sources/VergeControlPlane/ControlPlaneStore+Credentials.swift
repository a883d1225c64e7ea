import Foundation
import GRDB
import VergeCore

/// Tenants and credentials (API tokens, host and gateway credentials, join tokens). Only hashes are stored.
extension ControlPlaneStore {
    /// A stored credential, as `authorize` sees it.
    struct StoredCredential: Sendable {
        var id: String
        var kind: Credential.Kind
        var tenant: String
        var scopes: [String]
        var subject: String?
        var url: String?
    }

    static func registerCredentialMigrations(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v2-credentials") { db in
            try db.execute(
                sql: """
                    CREATE TABLE tenants (
                        name TEXT PRIMARY KEY,
                        created_at_ms INTEGER NOT NULL
                    );
                    CREATE TABLE credentials (
                        id TEXT PRIMARY KEY,
                        kind TEXT NOT NULL,
                        tenant TEXT NOT NULL,
                        scopes TEXT NOT NULL,
                        subject TEXT,
                        url TEXT,
                        hash TEXT NOT NULL,
                        created_at_ms INTEGER NOT NULL,
                        expires_at_ms INTEGER,
                        revoked_at_ms INTEGER,
                        used_at_ms INTEGER
                    );
                    CREATE INDEX credentials_kind_subject ON credentials(kind, subject);
                    """)
        }
    }

    // MARK: Bootstrap

    /// On first start (no tenant at all): creates the `default` tenant and an admin token for it, and returns the
    /// token. Later starts return `nil`.
    func bootstrapIfEmpty() throws -> Credential? {
        try database.write { db -> Credential? in
            guard try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM tenants") == 0 else { return nil }
            try db.execute(
                sql: "INSERT INTO tenants (name, created_at_ms) VALUES (?, ?)",
                arguments: [defaultTenant, WallClock.milliseconds()])
            let credential = Credential.generate(.api)
            try Self.insert(
                db, credential, tenant: defaultTenant, scopes: [Scope.admin.rawValue],
                subject: "created on first start",
                expiresAtMs: nil)
            return credential
        }
    }

    // MARK: Tenants

    func createTenant(_ name: String) async throws -> TenantSummary {
        guard TenantName.isValid(name) else {
            throw VergeError(
                .badRequest, "'\(name)' is not a valid tenant name (a-z, 0-9 and '-', starting with a letter)")
        }
        let now = WallClock.milliseconds()
        return try await database.write { db in
            guard try !Self.tenantExists(db, name) else {
                throw VergeError(.conflict, "tenant '\(name)' already exists")
            }
            try db.execute(sql: "INSERT INTO tenants (name, created_at_ms) VALUES (?, ?)", arguments: [name, now])
            return TenantSummary(name: name, createdAtMs: now)
        }
    }

    func tenants() async throws -> [TenantSummary] {
        try await database.read { db in
            try Row.fetchAll(db, sql: "SELECT name, created_at_ms FROM tenants ORDER BY name").map {
                TenantSummary(name: $0["name"], createdAtMs: $0["created_at_ms"])
            }
        }
    }

    func tenantExists(_ name: String) async throws -> Bool {
        try await database.read { db in try Self.tenantExists(db, name) }
    }

    private static func tenantExists(_ db: Database, _ name: String) throws -> Bool {
        try Bool.fetchOne(db, sql: "SELECT 1 FROM tenants WHERE name = ?", arguments: [name]) ?? false
    }

    // MARK: API tokens

    func createToken(
        tenant: String, scopes: [Scope], expiresAtMs: Int64?, description: String?
    ) async throws -> CreatedToken {
        let credential = Credential.generate(.api)
        let scopeNames = Set(scopes).sorted().map(\.rawValue)
        return try await database.write { db in
            guard try Self.tenantExists(db, tenant) else {
                throw VergeError(.notFound, "no tenant named '\(tenant)'")
            }
            let summary = try Self.insert(
                db, credential, tenant: tenant, scopes: scopeNames, subject: description, expiresAtMs: expiresAtMs)
            return CreatedToken(token: credential.token, summary: summary)
        }
    }

    /// Every credential (never a secret), optionally of one tenant.
    func tokens(tenant: String?) async throws -> [TokenSummary] {
        try await database.read { db in
            var sql = "SELECT * FROM credentials"
            var arguments: StatementArguments = []
            if let tenant {
                sql += " WHERE tenant = ?"
                arguments = [tenant]
            }
            return try Row.fetchAll(db, sql: sql + " ORDER BY created_at_ms, id", arguments: arguments).map(
                Self.summary)
        }
    }

    /// Revokes a credential by id. Returns `false` when there is none. The last live admin token cannot be revoked:
    /// nobody could manage the cluster any more.
    func revoke(id: String) async throws -> Bool {
        let now = WallClock.milliseconds()
        return try await database.write { db in
            let liveAdmins = try String.fetchAll(
                db,
                sql: """
                    SELECT id FROM credentials WHERE kind = ? AND revoked_at_ms IS NULL
                    AND (expires_at_ms IS NULL OR expires_at_ms > ?) AND (' ' || scopes || ' ') LIKE '% admin %'
                    """,
                arguments: [Credential.Kind.api.rawValue, now])
            if liveAdmins == [id] {
                throw VergeError(.conflict, "\(id) is the last admin token; create another one before revoking it")
            }
            try db.execute(
                sql: "UPDATE credentials SET revoked_at_ms = COALESCE(revoked_at_ms, ?) WHERE id = ?",
                arguments: [WallClock.milliseconds(), id])
            let found = db.changesCount > 0
            // A revoked gateway's proofs go with it: hosts stop trusting them at their next sync.
            try Self.deleteHostProofs(db, credentialID: id)
            return found
        }
    }

    /// The stored credential `credential` presents, if it exists under its kind, its hash matches (constant-time),
    /// and it is neither revoked nor expired. Join tokens are only valid until used.
    func verify(_ credential: Credential, now: Int64 = WallClock.milliseconds()) async throws -> StoredCredential? {
        try await database.read { db in
            guard
                let row = try Row.fetchOne(
                    db, sql: "SELECT * FROM credentials WHERE id = ? AND kind = ?",
                    arguments: [credential.id, credential.kind.rawValue])
            else { return nil }
            let hash: String = row["hash"]
            guard credential.matches(hash: hash), row["revoked_at_ms"] as Int64? == nil,
                (row["expires_at_ms"] as Int64?).map({ $0 > now }) ?? true,
                credential.kind != .join || row["used_at_ms"] as Int64? == nil
            else { return nil }
            return StoredCredential(
                id: row["id"], kind: credential.kind, tenant: row["tenant"], scopes: Self.scopes(row),
                subject: row["subject"], url: row["url"])
        }
    }

    // MARK: Hosts and gateways

    /// A join token for a host or a gateway, valid once, until `expiresAtMs`.
    func createJoinToken(role: JoinRequest.Role, expiresAtMs: Int64) async throws -> CreatedToken {
        let credential = Credential.generate(.join)
        return try await database.write { db in
            let summary = try Self.insert(
                db, credential, tenant: defaultTenant, scopes: [role.rawValue], subject: nil, expiresAtMs: expiresAtMs)
            return CreatedToken(token: credential.token, summary: summary)
        }
    }

    /// Exchanges a join token (used up in the same transaction) for the component's own credential. A host name
    /// that already has a live credential cannot be joined again until that credential is revoked.
    func redeem(joinToken: Credential, request: JoinRequest) async throws -> Credential {
        let now = WallClock.milliseconds()
        return try await database.write { db in
            guard
                let row = try Row.fetchOne(
                    db, sql: "SELECT * FROM credentials WHERE id = ? AND kind = ?",
                    arguments: [joinToken.id, Credential.Kind.join.rawValue]),
                joinToken.matches(hash: row["hash"]), row["revoked_at_ms"] as Int64? == nil,
                row["used_at_ms"] as Int64? == nil, (row["expires_at_ms"] as Int64?).map({ $0 > now }) ?? true
            else { throw VergeError(.unauthorized, "the join token is unknown, used, revoked or expired") }
            guard Self.scopes(row) == [request.role.rawValue] else {
                throw VergeError(
                    .forbidden, "this join token is for a \(Self.scopes(row).joined()), not a \(request.role.rawValue)")
            }
            guard HostName.isValid(request.name) else {
                throw VergeError(.badRequest, "'\(request.name)' is not a valid name (a-z, 0-9, '-')")
            }
            try db.execute(sql: "UPDATE credentials SET used_at_ms = ? WHERE id = ?", arguments: [now, joinToken.id])
            switch request.role {
            case .host:
                if let existing = try Self.liveHostCredentialID(db, name: request.name) {
                    throw VergeError(
                        .conflict,
                        "host '\(request.name)' already has a credential (\(existing)); revoke it first with `verge tokens revoke \(existing)`"
                    )
                }
                let credential = Credential.generate(.host)
                try Self.insert(
                    db, credential, tenant: defaultTenant, scopes: [], subject: request.name, expiresAtMs: nil)
                return credential
            case .gateway:
                let credential = Credential.generate(.gateway)
                try Self.insert(
                    db, credential, tenant: defaultTenant, scopes: [], subject: request.name, expiresAtMs: nil)
                return credential
            }
        }
    }

    /// Issues a host's credential directly (the embedded local cluster), revoking earlier ones of that name.
    func issueHostCredential(name: String) throws -> Credential {
        try issueReplacing(.host, subject: name)
    }

    /// Issues a gateway credential directly (the embedded local cluster), revoking earlier ones with that label.
    func issueGatewayCredential(label: String) throws -> Credential {
        try issueReplacing(.gateway, subject: label)
    }

    /// A new credential of `kind` for `subject`, in one transaction with the revocation of the live ones it replaces.
    private func issueReplacing(_ kind: Credential.Kind, subject: String) throws -> Credential {
        let credential = Credential.generate(kind)
        try database.write { db in
            let replaced = try String.fetchAll(
                db, sql: "SELECT id FROM credentials WHERE kind = ? AND subject = ? AND revoked_at_ms IS NULL",
                arguments: [kind.rawValue, subject])
            for id in replaced { try Self.deleteHostProofs(db, credentialID: id) }
            try db.execute(
                sql:
                    "UPDATE credentials SET revoked_at_ms = ? WHERE kind = ? AND subject = ? AND revoked_at_ms IS NULL",
                arguments: [WallClock.milliseconds(), kind.rawValue, subject])
            try Self.insert(db, credential, tenant: defaultTenant, scopes: [], subject: subject, expiresAtMs: nil)
        }
        return credential
    }

    /// Binds `url` (a `HostAddress.bindingKey`) to host credential `id`, unless another live host credential holds it.
    func bindHostURL(credentialID id: String, url: String) async throws {
        try await database.write { db in
            if let holder = try String.fetchOne(
                db,
                sql: """
                    SELECT subject FROM credentials
                    WHERE kind = ? AND url = ? AND id != ? AND revoked_at_ms IS NULL
                    """,
                arguments: [Credential.Kind.host.rawValue, url, id])
            {
                throw VergeError(.forbidden, "the URL \(url) is bound to host '\(holder)'")
            }
            try db.execute(sql: "UPDATE credentials SET url = ? WHERE id = ?", arguments: [url, id])
        }
    }

    // MARK: Rows

    private static func liveHostCredentialID(_ db: Database, name: String) throws -> String? {
        try String.fetchOne(
            db, sql: "SELECT id FROM credentials WHERE kind = ? AND subject = ? AND revoked_at_ms IS NULL",
            arguments: [Credential.Kind.host.rawValue, name])
    }

    @discardableResult
    private static func insert(
        _ db: Database, _ credential: Credential, tenant: String, scopes: [String], subject: String?,
        expiresAtMs: Int64?
    ) throws -> TokenSummary {
        let now = WallClock.milliseconds()
        try db.execute(
            sql: """
                INSERT INTO credentials (id, kind, tenant, scopes, subject, hash, created_at_ms, expires_at_ms)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                credential.id, credential.kind.rawValue, tenant, scopes.joined(separator: " "), subject,
                credential.hash, now, expiresAtMs,
            ])
        return TokenSummary(
            id: credential.id, kind: credential.kind.rawValue, tenant: tenant, scopes: scopes, subject: subject,
            createdAtMs: now, expiresAtMs: expiresAtMs, revoked: false)
    }

    private static func scopes(_ row: Row) -> [String] {
        (row["scopes"] as String).split(separator: " ").map(String.init)
    }

    private static func summary(_ row: Row) -> TokenSummary {
        TokenSummary(
            id: row["id"], kind: row["kind"], tenant: row["tenant"], scopes: scopes(row), subject: row["subject"],
            createdAtMs: row["created_at_ms"], expiresAtMs: row["expires_at_ms"],
            revoked: row["revoked_at_ms"] as Int64? != nil)
    }
}
