/// Renders untrusted text for error messages: control and bidirectional-override characters escaped and long
/// text shortened, so that a hostile name can neither break nor disguise a log line, nor flood it.
enum Quoted {
    /// `"text"`, escaped like a JSON string.
    static func json(_ text: String, limit: Int = 100) -> String {
        "\"" + escaped(text, quote: "\"", limit: limit) + "\""
    }

    /// `'text'`, for paths and names.
    static func single(_ text: String, limit: Int = 200) -> String {
        "'" + escaped(text, quote: "'", limit: limit) + "'"
    }

    private static func escaped(_ text: String, quote: Unicode.Scalar, limit: Int) -> String {
        var result = ""
        var count = 0
        for scalar in text.unicodeScalars {
            if count == limit {
                result += "…"
                break
            }
            count += 1
            switch scalar {
            case quote, "\\": result += "\\\(scalar)"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case _
            where scalar.value < 0x20 || (0x7F..<0xA0).contains(scalar.value)
                || (0x202A...0x202E).contains(scalar.value) || (0x2066...0x2069).contains(scalar.value):
                result += "\\u{\(String(scalar.value, radix: 16))}"
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result
    }
}
