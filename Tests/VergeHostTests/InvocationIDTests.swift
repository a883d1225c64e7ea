import Testing

@testable import VergeHost

@Suite("Invocation ids and server-timing values")
struct InvocationIDTests {
    @Test func idsAre32LowerCaseHexDigitsOrderedByTimeAndUnique() {
        let ids = (0..<2000).map { _ in InvocationHandler.newInvocationID() }
        #expect(Set(ids).count == ids.count)
        for id in ids {
            #expect(id.utf8.count == 32 && id.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) })
        }
        // The first 12 digits are the milliseconds: ids made later never sort before ids made earlier.
        let prefixes = ids.map { $0.prefix(12) }
        #expect(prefixes == prefixes.sorted())
        #expect(UInt64(ids[0].prefix(12), radix: 16)! > 1_700_000_000_000)
        // The random part varies in every digit position.
        for position in 12..<32 {
            let digits = Set(ids.map { $0.utf8[$0.utf8.index($0.utf8.startIndex, offsetBy: position)] })
            #expect(digits.count > 8, "digit \(position) barely varies")
        }
    }

    @Test func serverTimingMillisecondsHaveThreeDecimals() {
        #expect(CallRecord.ms(.zero) == "0.000")
        #expect(CallRecord.ms(.microseconds(7)) == "0.007")
        #expect(CallRecord.ms(.microseconds(1_234)) == "1.234")
        #expect(CallRecord.ms(.microseconds(120_050)) == "120.050")
        #expect(CallRecord.ms(.microseconds(-5)) == "0.000")
    }
}
