import Foundation

/// The URL a host advertises to the gateway and the control plane: one others can reach.
public enum HostAddress {
    /// Throws when `url` is not an `http(s)://HOST:PORT` URL or names an unspecified address (`0.0.0.0`, `::`).
    public static func validateAdvertised(_ url: String) throws(VergeError) {
        guard let components = URLComponents(string: url), let scheme = components.scheme,
            ["http", "https"].contains(scheme), let host = components.host, !host.isEmpty
        else {
            throw VergeError(.badRequest, "advertised URL '\(url)' is not an http(s)://HOST:PORT URL")
        }
        let bare = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        guard !["0.0.0.0", "::", "0:0:0:0:0:0:0:0"].contains(bare) else {
            throw VergeError(
                .badRequest,
                "advertised URL '\(url)' names an unspecified address; set --advertise-url to an address others can reach"
            )
        }
    }
}
