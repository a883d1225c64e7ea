import Testing

@testable import VergeCore

@Suite struct GeoPointTests {
    static let paris = GeoPoint(48.8566, 2.3522)
    static let frankfurt = GeoPoint(50.1109, 8.6821)

    @Test func parisToFrankfurt() {
        let distance = Self.paris.distanceKm(to: Self.frankfurt)
        #expect(abs(distance - 478) < 478 * 0.01)
        #expect(distance == Self.frankfurt.distanceKm(to: Self.paris))
    }

    @Test(arguments: [
        (GeoPoint(0, 0), GeoPoint(0, 180)),
        (GeoPoint(90, 0), GeoPoint(-90, 0)),
        (GeoPoint(48.8566, 2.3522), GeoPoint(-48.8566, -177.6478)),
        (GeoPoint(0, -90), GeoPoint(0, 90)),
    ])
    func antipodesAreHalfTheCircumferenceApart(a: GeoPoint, b: GeoPoint) {
        let halfCircumference = Double.pi * GeoPoint.earthRadiusKm
        #expect(abs(halfCircumference - 20015.1) < 0.1)
        #expect(abs(a.distanceKm(to: b) - halfCircumference) < 0.01)
    }

    @Test(arguments: [GeoPoint(48.8566, 2.3522), GeoPoint(0, 0), GeoPoint(90, 0), GeoPoint(-33.87, 151.21)])
    func aPointIsZeroFromItself(point: GeoPoint) {
        #expect(point.distanceKm(to: point) == 0)
    }

    @Test func theAntimeridianIsNotAWall() {
        let west = GeoPoint(0, 179.5)
        let east = GeoPoint(0, -179.5)
        #expect(abs(west.distanceKm(to: east) - 111.2) < 0.5)
    }

    @Test(arguments: [
        (91.0, 0.0), (-90.5, 0.0), (0.0, 180.1), (0.0, -181.0), (Double.nan, 0.0), (0.0, Double.nan),
        (Double.infinity, 0.0), (0.0, -Double.infinity),
    ])
    func rejectsCoordinatesOutsideTheGlobe(latitude: Double, longitude: Double) {
        #expect(GeoPoint(latitude: latitude, longitude: longitude) == nil)
    }

    @Test(arguments: [(90.0, 180.0), (-90.0, -180.0), (0.0, 0.0)])
    func acceptsTheEdgesOfTheGlobe(latitude: Double, longitude: Double) {
        #expect(GeoPoint(latitude: latitude, longitude: longitude) != nil)
    }
}
