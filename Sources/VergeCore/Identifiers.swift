/// The tenant every function belongs to until tenancy is configured.
public let defaultTenant = "default"

/// Function names: 1–63 characters of `a-z`, `0-9` and `-`, starting with a letter — safe in a URL path,
/// a file name and a SQL value alike.
public enum FunctionName {
    public static func isValid(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...63).contains(bytes.count), let first = bytes.first,
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(first)
        else { return false }
        return bytes.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                || byte == UInt8(ascii: "-")
        }
    }
}

/// Tenant names follow the same rule as function names, so `FUNCTION.TENANT.DOMAIN` is a valid host name.
public enum TenantName {
    public static func isValid(_ name: String) -> Bool { FunctionName.isValid(name) }
}

/// Host names follow the same rule as function names.
public enum HostName {
    public static func isValid(_ name: String) -> Bool { FunctionName.isValid(name) }
}
