import VergeCore

/// One page of the usage export.
public struct UsagePage: Codable, Sendable, Equatable {
    /// Records in cursor order.
    public var records: [UsageRecord]
    /// The cursor of the last record returned, or the requested `after` when the page is empty; pass it as the next
    /// `after`.
    public var nextCursor: Int64

    enum CodingKeys: String, CodingKey {
        case records
        case nextCursor = "next_cursor"
    }

    public init(records: [UsageRecord], nextCursor: Int64) {
        self.records = records
        self.nextCursor = nextCursor
    }
}
