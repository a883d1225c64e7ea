import CMaxMindDB
import VergeCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An open MaxMind DB file (`.mmdb`: GeoLite2-City/-Country, GeoIP2, DB-IP), read through libmaxminddb with the file
/// memory-mapped. Lookups are safe from any thread; the file is closed when the last reference goes away, so a
/// lookup that holds a reference is never cut short by a reload.
public final class MaxMindDatabase: IPGeolocator, @unchecked Sendable {
    // Written only in `init` and `deinit`; libmaxminddb lookups only read it.
    private let handle: UnsafeMutablePointer<MMDB_s>
    public let path: String
    /// The database's own description: `database_type` from its metadata (e.g. `GeoLite2-City`).
    public let databaseType: String
    /// When the database was built, seconds since 1970 (from its metadata).
    public let buildEpoch: UInt64

    /// Opens `path`; throws a `VergeError` naming the file and libmaxminddb's reason when it cannot.
    public init(path: String) throws(VergeError) {
        handle = .allocate(capacity: 1)
        let status = MMDB_open(path, UInt32(MMDB_MODE_MMAP), handle)
        guard status == MMDB_SUCCESS else {
            handle.deallocate()
            throw VergeError(
                .badRequest, "cannot open GeoIP database \(path): \(String(cString: MMDB_strerror(status)))")
        }
        self.path = path
        databaseType = handle.pointee.metadata.database_type.map { String(cString: $0) } ?? "unknown"
        buildEpoch = handle.pointee.metadata.build_epoch
    }

    deinit {
        MMDB_close(handle)
        handle.deallocate()
    }

    public func lookup(_ address: IPAddress) -> GeoIPMatch? {
        var gaiError: Int32 = 0
        var mmdbError: Int32 = 0
        var result = MMDB_lookup_string(handle, address.description, &gaiError, &mmdbError)
        guard gaiError == 0, mmdbError == MMDB_SUCCESS, result.found_entry else { return nil }
        let country =
            string(&result.entry, ["country", "iso_code"]) ?? string(&result.entry, ["registered_country", "iso_code"])
        let countryCode = ClientLocator.countryCode(country)
        var location: GeoPoint?
        if let latitude = double(&result.entry, ["location", "latitude"]),
            let longitude = double(&result.entry, ["location", "longitude"])
        {
            location = GeoPoint(latitude: latitude, longitude: longitude)
        }
        guard location != nil || countryCode != nil else { return nil }
        return GeoIPMatch(location: location, countryCode: countryCode)
    }

    private func value(_ entry: inout MMDB_entry_s, _ path: [StaticString]) -> MMDB_entry_data_s? {
        var data = MMDB_entry_data_s()
        // `MMDB_aget_value` takes a NULL-terminated array of C strings; static strings are NUL-terminated and live
        // for the whole program, so no copy is needed.
        var pointers: [UnsafePointer<CChar>?] =
            path.map { UnsafeRawPointer($0.utf8Start).assumingMemoryBound(to: CChar.self) } + [nil]
        let status = pointers.withUnsafeMutableBufferPointer { buffer in
            MMDB_aget_value(&entry, &data, buffer.baseAddress)
        }
        guard status == MMDB_SUCCESS, data.has_data else { return nil }
        return data
    }

    private func string(_ entry: inout MMDB_entry_s, _ path: [StaticString]) -> String? {
        guard let data = value(&entry, path), data.type == UInt32(MMDB_DATA_TYPE_UTF8_STRING),
            let bytes = data.utf8_string, data.data_size <= 64
        else { return nil }
        let buffer = UnsafeRawBufferPointer(start: bytes, count: Int(data.data_size))
        return String(decoding: buffer, as: UTF8.self)
    }

    private func double(_ entry: inout MMDB_entry_s, _ path: [StaticString]) -> Double? {
        guard let data = value(&entry, path) else { return nil }
        switch data.type {
        case UInt32(MMDB_DATA_TYPE_DOUBLE): return data.double_value
        case UInt32(MMDB_DATA_TYPE_FLOAT): return Double(data.float_value)
        default: return nil
        }
    }
}
