import VergeRuntime

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A geo greeting: says which edge host answered and how far away the client is.
@main
struct Hello {
    static func main() {
        let greeting = getenv("GREETING").map { String(cString: $0) } ?? "Hello"
        Verge.serve { _, context in
            Response(text: message(greeting: greeting, host: context.host, client: context.client) + "\n")
        }
    }

    static func message(greeting: String, host: HostInfo, client: ClientLocation?) -> String {
        guard let client else {
            return "\(greeting) from \(host.name)! Your location is unknown."
        }
        let distance = distanceKm(
            fromLatitude: client.latitude, longitude: client.longitude,
            toLatitude: host.latitude, longitude: host.longitude
        )
        return "\(greeting) from \(host.name)! You are \(Int(distance.rounded())) km away "
            + "(location from \(client.source))."
    }

    /// Great-circle distance in kilometres (haversine formula, mean Earth radius).
    static func distanceKm(
        fromLatitude latitude1: Double, longitude longitude1: Double,
        toLatitude latitude2: Double, longitude longitude2: Double
    ) -> Double {
        let earthRadiusKm = 6371.0088
        let φ1 = latitude1 * .pi / 180
        let φ2 = latitude2 * .pi / 180
        let Δφ = (latitude2 - latitude1) * .pi / 180
        let Δλ = (longitude2 - longitude1) * .pi / 180
        let a = sin(Δφ / 2) * sin(Δφ / 2) + cos(φ1) * cos(φ2) * sin(Δλ / 2) * sin(Δλ / 2)
        return 2 * earthRadiusKm * asin(min(1, a.squareRoot()))
    }
}
