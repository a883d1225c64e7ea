import HTTPTypes
import VergeCore

/// The headers that carry a client's location: which ones the gateway removes from a client's request, which ones it
/// sets for the host (and so for the function), and the `server-timing` entry that tells the client the same.
public enum RoutingHeaders {
    /// Client-location claims: believed only from a trusted proxy (see ``ClientLocator``) and never forwarded, so that
    /// a function sees only what the gateway decided. `x-forwarded-for` is set again by the gateway itself.
    static let claimNames: Set<String> = [
        "x-forwarded-for", "forwarded", "x-real-ip", "true-client-ip", "cf-connecting-ip", "cf-connecting-ipv6",
    ]
    static let claimPrefixes = ["cloudfront-viewer-", "cf-ip", "x-verge-client-", "x-verge-route-"]

    /// Whether a request header (by name, any case) must be removed before the request is forwarded to a host.
    public static func mustStrip(_ name: String) -> Bool {
        mustStrip(lowercased: name.lowercased())
    }

    /// ``mustStrip(_:)`` for a name already in lower case.
    static func mustStrip(lowercased name: String) -> Bool {
        claimNames.contains(name) || claimPrefixes.contains { name.hasPrefix($0) }
    }

    /// The names of the request headers to remove before forwarding (each name once, in first-seen order).
    public static func headersToStrip(_ headers: HTTPFields) -> [HTTPField.Name] {
        var seen = Set<String>()
        return headers.compactMap { field in
            let name = field.name.canonicalName
            guard mustStrip(name), seen.insert(name).inserted else { return nil }
            return field.name
        }
    }

    /// The headers the gateway adds to a forwarded call: where the client is, how that was found, the chosen host and
    /// its distance. A host believes them only together with the gateway's credential.
    public static func forwarded(client: LocatedClient, route: Route) -> [(name: String, value: String)] {
        var headers: [(name: String, value: String)] = [
            (VergeHeaders.clientLatitude, "\(client.location.latitude)"),
            (VergeHeaders.clientLongitude, "\(client.location.longitude)"),
            (VergeHeaders.clientSource, client.source.rawValue),
        ]
        if let country = client.countryCode { headers.append((VergeHeaders.clientCountry, country)) }
        if let address = client.address { headers.append((VergeHeaders.clientAddress, address.description)) }
        headers.append((VergeHeaders.routeHost, route.host))
        headers.append((VergeHeaders.routeDistanceKm, "\(Int(route.distanceKm.rounded()))"))
        return headers
    }

    /// Whether a host's answer says the host itself is saturated (`503` with its own `x-verge-rejected: overloaded`
    /// or `shutting_down`), so the call never reached a function and may go to the next candidate
    /// (``HostDirectory/markSaturated(_:function:for:)``). A function's own `503` carries no such marker.
    public static func isHostSaturated(status: Int, rejected: String?) -> Bool {
        status == 503 && (rejected == "overloaded" || rejected == "shutting_down")
    }

    /// The gateway's `server-timing` entry, e.g. `gateway;dur=0.412;desc="fra 478km geoip DE"`: time spent in the
    /// gateway before the host answered, the host, the distance, how the client was located and its country.
    public static func serverTiming(client: LocatedClient, route: Route, duration: Duration) -> String {
        serverTiming(description: serverTimingDescription(client: client, route: route), duration: duration)
    }

    /// The quoted part of ``serverTiming(client:route:duration:)``, the same for every call of a client to a host.
    static func serverTimingDescription(client: LocatedClient, route: Route) -> String {
        var description = "\(route.host) \(Int(route.distanceKm.rounded()))km \(client.source.rawValue)"
        if let country = client.countryCode { description += " \(country)" }
        // Host names are [a-z0-9-] and country codes two letters, so the quoted string needs no escaping; anything
        // else is dropped rather than let a quote or backslash through.
        return String(description.filter { $0 != "\"" && $0 != "\\" && $0.isASCII && !$0.isNewline })
    }

    /// The entry with a description made by ``serverTimingDescription(client:route:)``.
    static func serverTiming(description: String, duration: Duration) -> String {
        let components = duration.components
        let milliseconds = Double(components.seconds) * 1000 + Double(components.attoseconds) / 1e15
        return "gateway;dur=\(formatMilliseconds(milliseconds));desc=\"\(description)\""
    }

    static func formatMilliseconds(_ value: Double) -> String {
        let thousandths = Int((max(0, value) * 1000).rounded())
        let fraction = String(thousandths % 1000)
        return "\(thousandths / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }
}
