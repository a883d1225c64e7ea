/// What ``UsageStore/ingest(_:)`` did with a batch.
public struct IngestResult: Codable, Sendable, Equatable {
    /// Records stored by this call.
    public var inserted: Int
    /// Records whose invocation id was already stored (or repeated within the batch); left unchanged.
    public var duplicates: Int

    public init(inserted: Int, duplicates: Int) {
        self.inserted = inserted
        self.duplicates = duplicates
    }
}
