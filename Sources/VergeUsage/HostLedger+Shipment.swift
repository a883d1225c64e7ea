import GRDB
import VergeCore

extension HostLedger {
    /// The oldest records not yet acknowledged by the control plane, already in the shipping JSON.
    public struct Shipment: Sendable {
        /// The body of `POST /v1/internal/usage`: a `UsageBatch` (see `UsageBatch.wireJSON(host:records:)`).
        public var body: [UInt8]
        /// How many records it holds.
        public var count: Int
        /// The local sequence number of its last record, for ``HostLedger/markShipped(through:)``.
        public var through: Int64
    }

    /// The oldest records not yet acknowledged by the control plane, at most `limit` (1...``maximumLimit``),
    /// encoded as the `UsageBatch` of host `host`; nil when every record was acknowledged. The same records, in the
    /// same order, as ``unshipped(limit:)``; encoded while they are read, without `JSONEncoder`.
    public func unshippedShipment(host: String, limit: Int) async throws -> Shipment? {
        try LedgerErrors.checkLimit(limit, 1...Self.maximumLimit)
        return try await LedgerErrors.wrapping("reading unshipped records") {
            try await database.read { db in
                let rows = try Row.fetchCursor(db, sql: Self.unshippedSQL, arguments: [limit])
                var body: [UInt8] = []
                body.reserveCapacity(16 * 1024)
                body.append(contentsOf: #"{"host":"#.utf8)
                UsageRecord.appendWireString(host, to: &body)
                body.append(contentsOf: #","records":["#.utf8)
                var count = 0
                var through: Int64 = 0
                while let row = try rows.next() {
                    if count > 0 { body.append(UInt8(ascii: ",")) }
                    through = row[0]
                    try UsageRecord(row: row, startingAt: 1).appendWireJSON(to: &body)
                    count += 1
                }
                guard count > 0 else { return nil }
                body.append(contentsOf: "]}".utf8)
                return Shipment(body: body, count: count, through: through)
            }
        }
    }
}
