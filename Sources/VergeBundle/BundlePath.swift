/// The rule every path inside a bundle follows, in archives and in source directories alike: a relative path
/// of `/`-separated components, none of them empty, `.` or `..`, without backslash or NUL.
enum BundlePath {
    /// A path compared byte for byte, as the file system compares names. (`String` equality is Unicode canonical
    /// equivalence, under which different file names, such as the composed and decomposed spellings of "é", are
    /// equal.)
    struct Key: Hashable {
        let bytes: [UInt8]

        init(_ path: String) {
            bytes = Array(path.utf8)
        }
    }

    /// Why `path` cannot name something inside a bundle, as the end of a sentence starting with the path,
    /// or `nil` when it can. Directory paths are given without their trailing `/`.
    static func problem(_ path: String, maxLength: Int) -> String? {
        let length = path.utf8.count
        if length == 0 { return "has an empty path" }
        if path.utf8.contains(0) { return "contains a NUL character" }
        if path.utf8.contains(UInt8(ascii: "\\")) { return "contains a backslash; use '/' to separate directories" }
        if path.utf8.first == UInt8(ascii: "/") { return "is an absolute path; paths in a bundle are relative" }
        if length > maxLength { return "is \(length) bytes long; the limit is \(maxLength) bytes" }
        for component in path.split(separator: "/", omittingEmptySubsequences: false) {
            switch component {
            case "..": return "contains a '..' component; paths must stay inside the bundle"
            case ".": return "contains a '.' component"
            case "": return "contains an empty component ('//' or a trailing '/')"
            default: continue
            }
        }
        return nil
    }

    /// The paths of the directories that contain `path`, outermost first: `a/b/c` → `a`, `a/b`.
    static func ancestors(of path: String) -> [String] {
        var result: [String] = []
        var index = path.startIndex
        while let slash = path[index...].firstIndex(of: "/") {
            result.append(String(path[..<slash]))
            index = path.index(after: slash)
        }
        return result
    }
}
