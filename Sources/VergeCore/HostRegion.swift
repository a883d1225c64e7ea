/// Region pinning: a host is in region `R` when its name is `R` or starts with `R-` (`fra`, `fra-2`, `fra-b-1`).
/// The control plane places a pinned function (its manifest's `regions`) only on such hosts, and the gateway routes
/// it only to them.
public enum HostRegion {
    public static func contains(host: String, region: String) -> Bool {
        host == region || (host.hasPrefix(region) && host.dropFirst(region.count).first == "-")
    }

    /// Whether a function pinned to `regions` (empty or nil: anywhere) may run on `host`.
    public static func allows(_ regions: [String]?, host: String) -> Bool {
        guard let regions, !regions.isEmpty else { return true }
        return regions.contains { contains(host: host, region: $0) }
    }
}
