import NIOCore
import NIOEmbedded
import NIOTestUtils
import Testing

@testable import VergeHost

@Suite struct LogLineDecoderTests {
    static let max = LogLineDecoder.maxLineLength

    /// Feeds `chunks` to a decoder in a channel, closes it, and returns every line it produced.
    private static func lines(_ chunks: [[UInt8]]) throws -> [String] {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(LogLineDecoder()))
        for chunk in chunks {
            try channel.writeInbound(ByteBuffer(bytes: chunk))
        }
        _ = try channel.finish()
        var lines: [String] = []
        while let line = try channel.readInbound(as: String.self) { lines.append(line) }
        return lines
    }

    private static func lines(_ text: String) throws -> [String] {
        try lines([Array(text.utf8)])
    }

    @Test func splitsLinesWhateverTheChunking() throws {
        try ByteToMessageDecoderVerifier.verifyDecoder(
            stringInputOutputPairs: [
                ("hello\n", ["hello"]),
                ("crlf\r\n", ["crlf"]),
                ("\n", [""]),
                ("two\nlines\n", ["two", "lines"]),
                ("unicode ü ✓\n", ["unicode ü ✓"]),
            ],
            decoderFactory: { LogLineDecoder() }
        )
    }

    @Test func stripsOnlyATrailingCarriageReturn() throws {
        #expect(try Self.lines("a\rb\r\n\r\r\n") == ["a\rb", "\r"])
    }

    @Test func flushesTheUnterminatedRestAtEOF() throws {
        #expect(try Self.lines("first\nsecond") == ["first", "second"])
        #expect(try Self.lines([Array("par".utf8), Array("tial".utf8)]) == ["partial"])
        #expect(try Self.lines("") == [])
        #expect(try Self.lines("done\n") == ["done"])
    }

    @Test func cutsALineWithoutNewlineIntoPiecesOfTheLimit() throws {
        let text = String(repeating: "x", count: 2 * Self.max + 100)
        let lines = try Self.lines(text)
        #expect(lines.map(\.count) == [Self.max, Self.max, 100])
    }

    @Test func cutsALongLineWithANewlineWhateverTheChunking() throws {
        let bytes = Array(String(repeating: "y", count: Self.max + 3616).utf8) + Array("\nnext\n".utf8)
        let whole = try Self.lines([bytes])
        let split = try Self.lines([Array(bytes[..<Self.max]), Array(bytes[Self.max...])])
        let small = try Self.lines(
            stride(from: 0, to: bytes.count, by: 997).map { Array(bytes[$0..<min($0 + 997, bytes.count)]) }
        )
        #expect(whole.map(\.count) == [Self.max, 3616, 4])
        #expect(split.map(\.count) == [Self.max, 3616, 4])
        #expect(small.map(\.count) == [Self.max, 3616, 4])
    }

    @Test func keepsALineOfExactlyTheLimitWhole() throws {
        let bytes = Array(String(repeating: "z", count: Self.max).utf8) + [UInt8(ascii: "\n")]
        #expect(try Self.lines([bytes]).map(\.count) == [Self.max])
        #expect(try Self.lines([Array(bytes.dropLast()), [UInt8(ascii: "\n")]]).map(\.count) == [Self.max])
        let oneOver = Array(String(repeating: "z", count: Self.max + 1).utf8) + [UInt8(ascii: "\n")]
        #expect(try Self.lines([oneOver]).map(\.count) == [Self.max, 1])
        #expect(try Self.lines([Array(oneOver.dropLast()), [UInt8(ascii: "\n")]]).map(\.count) == [Self.max, 1])
    }
}
