import Testing
import VergeCore

@Suite struct ClusterKeyTests {
    static let key = "4f1c0a9be27d3c55a6e0b8d91f2c7e43"

    @Test func equalKeysMatch() {
        #expect(ClusterKey.matches(Self.key, Self.key))
        #expect(ClusterKey.matches(String(Self.key), Self.key))
    }

    @Test(arguments: [
        "4f1c0a9be27d3c55a6e0b8d91f2c7e44",  // last byte differs
        "5f1c0a9be27d3c55a6e0b8d91f2c7e43",  // first byte differs
        "4F1C0A9BE27D3C55A6E0B8D91F2C7E43",  // case matters
        "4f1c0a9be27d3c55a6e0b8d91f2c7e4",  // shorter
        "4f1c0a9be27d3c55a6e0b8d91f2c7e430",  // longer
        "",
    ])
    func differentKeysDoNotMatch(presented: String) {
        #expect(!ClusterKey.matches(presented, Self.key))
    }

    @Test func aMissingKeyDoesNotMatch() {
        #expect(!ClusterKey.matches(nil, Self.key))
    }

    @Test func anEmptyExpectedKeyMatchesNothing() {
        #expect(!ClusterKey.matches("", ""))
        #expect(!ClusterKey.matches("anything", ""))
        #expect(!ClusterKey.matches(nil, ""))
    }

    @Test func generatedKeysAre64HexCharacters() {
        let key = ClusterKey.generate()
        #expect(key.count == 64)
        #expect(
            key.utf8.allSatisfy {
                (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0)
                    || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0)
            })
        #expect(ClusterKey.matches(key, key))
    }

    @Test func generatedKeysDiffer() {
        let keys = Set((0..<20).map { _ in ClusterKey.generate() })
        #expect(keys.count == 20)
    }
}

/// The waits here are 30 s when the ring is missed; the bounds sit well below that but far above scheduling delays,
/// which on a loaded 2-core machine running the whole suite reach several seconds.
@Suite struct DoorbellTests {
    static let missedRing = Duration.seconds(20)

    private static func elapsed(_ body: () async -> Void) async -> Duration {
        let clock = ContinuousClock()
        let start = clock.now
        await body()
        return clock.now - start
    }

    @Test func aRingBeforeWaitReturnsAtOnce() async {
        let bell = Doorbell()
        bell.ring()
        let waited = await Self.elapsed { await bell.wait(upTo: .seconds(30)) }
        #expect(waited < Self.missedRing)
    }

    @Test func waitWithoutRingReturnsAfterTheTimeout() async {
        let bell = Doorbell()
        let waited = await Self.elapsed { await bell.wait(upTo: .milliseconds(200)) }
        #expect(waited >= .milliseconds(200))
        #expect(waited < Self.missedRing)
    }

    @Test func aRingWakesAWaiter() async {
        let bell = Doorbell()
        let waited = await Self.elapsed {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await bell.wait(upTo: .seconds(30)) }
                group.addTask {
                    try? await Task.sleep(for: .milliseconds(50))
                    bell.ring()
                }
                await group.waitForAll()
            }
        }
        #expect(waited < Self.missedRing)
    }

    @Test func severalRingsCountOnce() async {
        let bell = Doorbell()
        bell.ring()
        bell.ring()
        bell.ring()
        let first = await Self.elapsed { await bell.wait(upTo: .seconds(30)) }
        #expect(first < Self.missedRing)
        let second = await Self.elapsed { await bell.wait(upTo: .milliseconds(200)) }
        #expect(second >= .milliseconds(200))
    }

    @Test func aTimedOutWaitLeavesNoRingBehind() async {
        let bell = Doorbell()
        await bell.wait(upTo: .milliseconds(50))
        let waited = await Self.elapsed { await bell.wait(upTo: .milliseconds(200)) }
        #expect(waited >= .milliseconds(200))
        bell.ring()
        let rung = await Self.elapsed { await bell.wait(upTo: .seconds(30)) }
        #expect(rung < Self.missedRing)
    }
}
