import Foundation
import GRDB
import VergeCore

/// Placement: what a host is told to run, asked one function or one bundle at a time. The same rule as
/// ``ControlPlaneStore/desiredState(for:trustedCallers:)`` (a live version, its manifest's `regions` allowing the
/// host), so a host may fetch exactly the bundles and secrets its sync answer lists, and nothing else.
extension ControlPlaneStore {
    static func registerPlacementMigrations(_ migrator: inout DatabaseMigrator) {
        // A bundle fetch looks its version up among the live ones: an index, not a scan of every function.
        migrator.registerMigration("v3-functions-live-version") { db in
            try db.execute(sql: "CREATE INDEX functions_live_version ON functions(live_version)")
        }
    }

    /// Whether `version` is the live version of a function placed on `host`: one of the versions host's sync
    /// answer lists. The same bundle may be live for several tenants' functions; one placing it is enough.
    func isPlaced(version: String, on host: String) async throws -> Bool {
        try await database.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT json_extract(v.manifest, '$.regions') AS regions
                    FROM functions f
                    LEFT JOIN versions v ON v.tenant = f.tenant AND v.name = f.name AND v.version = f.live_version
                    WHERE f.live_version = ?
                    """,
                arguments: [version]
            ).contains { row in HostRegion.allows(Self.regions(row["regions"]), host: host) }
        }
    }

    /// Whether the live version of `tenant`'s function `name` is placed on `host` (its sync answer lists it).
    func isPlaced(tenant: String, function name: String, on host: String) async throws -> Bool {
        try await database.read { db in
            guard
                let row = try Row.fetchOne(
                    db,
                    sql: """
                        SELECT json_extract(v.manifest, '$.regions') AS regions
                        FROM functions f
                        LEFT JOIN versions v ON v.tenant = f.tenant AND v.name = f.name AND v.version = f.live_version
                        WHERE f.tenant = ? AND f.name = ?
                        """,
                    arguments: [tenant, name])
            else { return false }
            return HostRegion.allows(Self.regions(row["regions"]), host: host)
        }
    }
}
