import Foundation
import GRDB
import VergeBundle
import VergeCore
import VergeUsage

/// The control plane's state in SQLite: functions, versions, hosts, usage. Bundles themselves live as files.
final class ControlPlaneStore: Sendable {
    let database: DatabasePool
    let usage: UsageStore

    init(path: String) throws {
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        // WAL (DatabasePool's mode) with NORMAL sync: a committed transaction survives a crash of the process;
        // only an OS crash or power loss can lose the last ones. Hosts keep their records until acknowledged.
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = NORMAL") }
        database = try DatabasePool(path: path, configuration: configuration)
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-functions") { db in
            try db.execute(
                sql: """
                    CREATE TABLE functions (
                        tenant TEXT NOT NULL,
                        name TEXT NOT NULL,
                        live_version TEXT NOT NULL,
                        updated_at_ms INTEGER NOT NULL,
                        PRIMARY KEY (tenant, name)
                    );
                    CREATE TABLE versions (
                        tenant TEXT NOT NULL,
                        name TEXT NOT NULL,
                        version TEXT NOT NULL,
                        number INTEGER NOT NULL,
                        manifest TEXT NOT NULL,
                        size_bytes INTEGER NOT NULL,
                        created_at_ms INTEGER NOT NULL,
                        PRIMARY KEY (tenant, name, version),
                        UNIQUE (tenant, name, number)
                    );
                    CREATE TABLE hosts (
                        name TEXT PRIMARY KEY,
                        url TEXT NOT NULL,
                        latitude REAL NOT NULL,
                        longitude REAL NOT NULL,
                        status TEXT NOT NULL,
                        last_seen_ms INTEGER NOT NULL
                    );
                    """)
        }
        UsageStore.registerMigrations(&migrator)
        Self.registerCredentialMigrations(&migrator)
        Self.registerSecretMigrations(&migrator)
        Self.registerPlacementMigrations(&migrator)
        Self.registerHostProofMigrations(&migrator)
        try migrator.migrate(database)
        usage = UsageStore(database: database)
    }

    // MARK: Functions and versions

    /// Records a version (idempotent: uploading the same bundle again returns the existing version) and makes it live.
    func addVersion(
        tenant: String, manifest: Manifest, version: String, size: Int, activate: Bool
    ) async throws -> VersionSummary {
        let manifestJSON = String(decoding: manifest.encoded(), as: UTF8.self)
        let now = WallClock.milliseconds()
        return try await database.write { db in
            let existing = try Int.fetchOne(
                db, sql: "SELECT number FROM versions WHERE tenant = ? AND name = ? AND version = ?",
                arguments: [tenant, manifest.name, version]
            )
            let number: Int
            if let existing {
                number = existing
            } else {
                number =
                    (try Int.fetchOne(
                        db, sql: "SELECT MAX(number) FROM versions WHERE tenant = ? AND name = ?",
                        arguments: [tenant, manifest.name]
                    ) ?? 0) + 1
                try db.execute(
                    sql:
                        "INSERT INTO versions (tenant, name, version, number, manifest, size_bytes, created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    arguments: [tenant, manifest.name, version, number, manifestJSON, size, now]
                )
            }
            let hasFunction =
                try Bool.fetchOne(
                    db, sql: "SELECT 1 FROM functions WHERE tenant = ? AND name = ?",
                    arguments: [tenant, manifest.name]
                ) ?? false
            if activate || !hasFunction {
                try db.execute(
                    sql: """
                        INSERT INTO functions (tenant, name, live_version, updated_at_ms) VALUES (?, ?, ?, ?)
                        ON CONFLICT (tenant, name) DO UPDATE SET live_version = excluded.live_version, updated_at_ms = excluded.updated_at_ms
                        """,
                    arguments: [tenant, manifest.name, version, now]
                )
            }
            return try Self.versions(db, tenant: tenant, name: manifest.name).first { $0.version == version }!
        }
    }

    func functions(tenant: String) async throws -> [FunctionSummary] {
        try await database.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT f.tenant, f.name, f.live_version, f.updated_at_ms,
                           (SELECT number FROM versions v WHERE v.tenant = f.tenant AND v.name = f.name AND v.version = f.live_version) AS live_number,
                           (SELECT COUNT(*) FROM versions v WHERE v.tenant = f.tenant AND v.name = f.name) AS version_count
                    FROM functions f WHERE f.tenant = ? ORDER BY f.name
                    """, arguments: [tenant]
            ).map { row in
                FunctionSummary(
                    tenant: row["tenant"], name: row["name"], liveVersion: row["live_version"],
                    liveNumber: row["live_number"] ?? 0, versionCount: row["version_count"],
                    updatedAtMs: row["updated_at_ms"]
                )
            }
        }
    }

    func function(tenant: String, name: String) async throws -> FunctionSummary? {
        try await functions(tenant: tenant).first { $0.name == name }
    }

    func versions(tenant: String, name: String) async throws -> [VersionSummary] {
        try await database.read { db in try Self.versions(db, tenant: tenant, name: name) }
    }

    private static func versions(_ db: Database, tenant: String, name: String) throws -> [VersionSummary] {
        let live = try String.fetchOne(
            db, sql: "SELECT live_version FROM functions WHERE tenant = ? AND name = ?", arguments: [tenant, name]
        )
        return try Row.fetchAll(
            db, sql: "SELECT * FROM versions WHERE tenant = ? AND name = ? ORDER BY number DESC",
            arguments: [tenant, name]
        ).map { row in
            let manifestText: String = row["manifest"]
            return VersionSummary(
                version: row["version"], number: row["number"], sizeBytes: row["size_bytes"],
                createdAtMs: row["created_at_ms"], live: row["version"] == live,
                manifest: try Manifest.parse(Array(manifestText.utf8))
            )
        }
    }

    /// Makes an existing version live. Returns `nil` when the function or version does not exist.
    func setLive(tenant: String, name: String, version: String) async throws -> FunctionSummary? {
        let updated = try await database.write { db -> Bool in
            guard
                try Bool.fetchOne(
                    db, sql: "SELECT 1 FROM versions WHERE tenant = ? AND name = ? AND version = ?",
                    arguments: [tenant, name, version]
                ) ?? false
            else { return false }
            try db.execute(
                sql: "UPDATE functions SET live_version = ?, updated_at_ms = ? WHERE tenant = ? AND name = ?",
                arguments: [version, WallClock.milliseconds(), tenant, name]
            )
            return db.changesCount > 0
        }
        return updated ? try await function(tenant: tenant, name: name) : nil
    }

    /// Removes a function from service; its versions stay recorded (and its bundles stored) for the audit trail.
    func deleteFunction(tenant: String, name: String) async throws -> Bool {
        try await database.write { db in
            try db.execute(sql: "DELETE FROM functions WHERE tenant = ? AND name = ?", arguments: [tenant, name])
            return db.changesCount > 0
        }
    }

    /// The live functions `host` should serve: every one whose manifest's `regions` allow the host (all of them
    /// for `host` nil, the cluster-wide view).
    func desiredState(for host: String?, trustedCallers: [TrustedCaller] = []) async throws -> DesiredState {
        try await database.read { db in
            DesiredState(
                functions: try Row.fetchAll(
                    db,
                    sql: """
                        SELECT f.tenant, f.name, f.live_version, v.number,
                            json_extract(v.manifest, '$.regions') AS regions
                        FROM functions f
                        LEFT JOIN versions v ON v.tenant = f.tenant AND v.name = f.name AND v.version = f.live_version
                        ORDER BY f.tenant, f.name
                        """
                ).compactMap { row -> DesiredState.Function? in
                    if let host, !HostRegion.allows(Self.regions(row["regions"]), host: host) { return nil }
                    return DesiredState.Function(
                        tenant: row["tenant"], name: row["name"], version: row["live_version"], number: row["number"])
                },
                trustedCallers: trustedCallers)
        }
    }

    /// A manifest's `regions` as stored (a JSON array of strings; NULL when the manifest has none).
    static func regions(_ json: String?) -> [String]? {
        guard let json else { return nil }
        // The manifest was validated at upload: an unreadable value here is a damaged row, placed nowhere.
        return (try? JSONDecoder().decode([String].self, from: Data(json.utf8))) ?? ["-"]
    }

    func hasVersion(_ version: String) async throws -> Bool {
        try await database.read { db in
            try Bool.fetchOne(db, sql: "SELECT 1 FROM versions WHERE version = ? LIMIT 1", arguments: [version])
                ?? false
        }
    }

    // MARK: Hosts

    func recordHost(_ status: HostStatus) async throws {
        let json = String(decoding: try JSONEncoder().encode(status), as: UTF8.self)
        try await database.write { db in
            try db.execute(
                sql: """
                    INSERT INTO hosts (name, url, latitude, longitude, status, last_seen_ms) VALUES (?, ?, ?, ?, ?, ?)
                    ON CONFLICT (name) DO UPDATE SET url = excluded.url, latitude = excluded.latitude,
                        longitude = excluded.longitude, status = excluded.status, last_seen_ms = excluded.last_seen_ms
                    """,
                arguments: [
                    status.name, status.url, status.location.latitude, status.location.longitude, json,
                    WallClock.milliseconds(),
                ]
            )
        }
    }

    func hosts(livenessWindow: Duration) async throws -> [HostSummary] {
        let now = WallClock.milliseconds()
        let window = livenessWindow.milliseconds
        return try await database.read { db in
            // Only hosts with a live credential: a revoked host drops out of routing and log gathering at once.
            try Row.fetchAll(
                db,
                sql: """
                    SELECT status, last_seen_ms FROM hosts
                    WHERE name IN (SELECT subject FROM credentials WHERE kind = 'host' AND revoked_at_ms IS NULL)
                    ORDER BY name
                    """
            ).compactMap { row in
                let text: String = row["status"]
                guard let status = try? JSONDecoder().decode(HostStatus.self, from: Data(text.utf8)) else { return nil }
                let age = now - (row["last_seen_ms"] as Int64)
                return HostSummary(
                    name: status.name, url: status.url, location: status.location, healthy: age <= window,
                    lastSeenMs: age, warmWorkers: status.warmWorkers, unshippedRecords: status.unshippedRecords,
                    functions: status.functions, isolation: status.isolation, trustedGateways: status.trustedGateways
                )
            }
        }
    }
}
