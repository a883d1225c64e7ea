import VergeCore

/// A record kept on a host with its local sequence number, the position the shipper acknowledges with
/// ``HostLedger/markShipped(through:)``.
public struct ShippableRecord: Sendable, Equatable {
    /// The host's own sequence number: increasing in commit order, never reused.
    public var seq: Int64
    public var record: UsageRecord

    public init(seq: Int64, record: UsageRecord) {
        self.seq = seq
        self.record = record
    }
}
