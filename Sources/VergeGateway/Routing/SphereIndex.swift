import VergeCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A k-d tree over points on the unit sphere for "the k nearest hosts to this client" in O(log n).
///
/// Each point is a unit vector (x, y, z); the straight-line (chord) distance between unit vectors grows with the
/// great-circle distance, so the nearest by chord is the nearest on the globe, and there is no seam at the
/// antimeridian or the poles. The tree is a balanced, implicit one: the node of a range `lo..<hi` is its middle
/// element, split on the axis of widest spread. Built once per host-list change; searched without allocation beyond
/// the result.
struct SphereIndex: Sendable {
    struct Point: Sendable {
        var x: Double
        var y: Double
        var z: Double
        /// The caller's identifier; among points at the same distance the smaller id comes first.
        var id: Int32
    }

    private var points: [Point]
    private var axes: [UInt8]

    var count: Int { points.count }

    init(_ input: [Point]) {
        points = input
        axes = [UInt8](repeating: 0, count: input.count)
        build(0, points.count)
    }

    static func unitVector(_ point: GeoPoint) -> (x: Double, y: Double, z: Double) {
        let latitude = point.latitude * .pi / 180
        let longitude = point.longitude * .pi / 180
        let cosLatitude = cos(latitude)
        return (cosLatitude * cos(longitude), cosLatitude * sin(longitude), sin(latitude))
    }

    private mutating func build(_ low: Int, _ high: Int) {
        guard high - low > 1 else { return }
        var minimum = (Double.infinity, Double.infinity, Double.infinity)
        var maximum = (-Double.infinity, -Double.infinity, -Double.infinity)
        for index in low..<high {
            let point = points[index]
            minimum = (Swift.min(minimum.0, point.x), Swift.min(minimum.1, point.y), Swift.min(minimum.2, point.z))
            maximum = (Swift.max(maximum.0, point.x), Swift.max(maximum.1, point.y), Swift.max(maximum.2, point.z))
        }
        let spread = (maximum.0 - minimum.0, maximum.1 - minimum.1, maximum.2 - minimum.2)
        let axis: UInt8 = spread.0 >= spread.1 && spread.0 >= spread.2 ? 0 : (spread.1 >= spread.2 ? 1 : 2)
        points[low..<high].sort { Self.coordinate($0, axis) < Self.coordinate($1, axis) }
        let middle = (low + high) / 2
        axes[middle] = axis
        build(low, middle)
        build(middle + 1, high)
    }

    @inline(__always)
    private static func coordinate(_ point: Point, _ axis: UInt8) -> Double {
        axis == 0 ? point.x : (axis == 1 ? point.y : point.z)
    }

    /// The `k` points nearest to `target`, nearest first, as (squared chord length, id).
    func nearest(to target: (x: Double, y: Double, z: Double), k: Int) -> [(distance: Double, id: Int32)] {
        guard k > 0, !points.isEmpty else { return [] }
        var best: [(distance: Double, id: Int32)] = []
        best.reserveCapacity(k + 1)
        points.withUnsafeBufferPointer { points in
            axes.withUnsafeBufferPointer { axes in
                Self.search(points, axes, 0, points.count, target, k, &best)
            }
        }
        return best
    }

    private static func search(
        _ points: UnsafeBufferPointer<Point>, _ axes: UnsafeBufferPointer<UInt8>, _ low: Int, _ high: Int,
        _ target: (x: Double, y: Double, z: Double), _ k: Int, _ best: inout [(distance: Double, id: Int32)]
    ) {
        guard low < high else { return }
        let middle = (low + high) / 2
        let point = points[middle]
        let dx = point.x - target.x
        let dy = point.y - target.y
        let dz = point.z - target.z
        let distance = dx * dx + dy * dy + dz * dz
        if best.count < k || (distance, point.id) < (best[best.count - 1].distance, best[best.count - 1].id) {
            var position = best.count
            while position > 0, (distance, point.id) < (best[position - 1].distance, best[position - 1].id) {
                position -= 1
            }
            best.insert((distance, point.id), at: position)
            if best.count > k { best.removeLast() }
        }
        guard high - low > 1 else { return }
        let axis = axes[middle]
        let difference = axis == 0 ? target.x - point.x : (axis == 1 ? target.y - point.y : target.z - point.z)
        let (near, far) = difference < 0 ? ((low, middle), (middle + 1, high)) : ((middle + 1, high), (low, middle))
        search(points, axes, near.0, near.1, target, k, &best)
        if best.count < k || difference * difference <= best[best.count - 1].distance {
            search(points, axes, far.0, far.1, target, k, &best)
        }
    }
}
