import HTTPTypes
import NIOHTTP1
import Testing

@testable import VergeHost

@Suite struct ResponseHeadPolicyTests {
    let policy = ResponseHeadPolicy()
    let platform: HTTPFields = [HTTPField.Name("x-verge-host")!: "fra"]

    func check(
        _ status: Int = 200, _ headers: [[String]], method: HTTPMethod = .GET
    )
        -> Result<ResponseHeadPolicy.Accepted, ResponseHeadPolicy.Rejected>
    {
        policy.check(status: status, headers: headers, method: method, platformFields: platform)
    }

    @Test func keepsOrdinaryHeadersAfterThePlatformsAndDropsFraming() throws {
        let accepted = try check(
            200,
            [
                ["Content-Type", "text/plain"], ["content-length", "3"], ["Transfer-Encoding", "chunked"],
                ["x-verge-host", "forged"], ["set-cookie", "a=1"], ["set-cookie", "b=2"],
            ]
        ).get()
        #expect(
            accepted.fields.map(\.name.canonicalName) == ["x-verge-host", "content-type", "set-cookie", "set-cookie"])
        #expect(accepted.fields[HTTPField.Name("x-verge-host")!] == "fra")
        #expect(accepted.dropped == ["content-length", "transfer-encoding", "x-verge-host"])
        #expect(accepted.bodyAllowed)
    }

    @Test(arguments: [(204, HTTPMethod.GET), (205, .POST), (304, .GET), (200, .HEAD), (404, .HEAD)])
    func noBodyWhereHTTPForbidsOne(status: Int, method: HTTPMethod) throws {
        let accepted = try check(status, [], method: method).get()
        #expect(accepted.bodyAllowed == false)
        #expect(accepted.fields[.contentLength] == (status == 205 ? "0" : nil))
    }

    @Test(arguments: [100, 101, 103, 199, 600, 0, -1, 999])
    func statusOutside200To599IsRejected(status: Int) {
        #expect(throws: ResponseHeadPolicy.Rejected.self) { try check(status, []).get() }
    }

    @Test(arguments: [
        [["x-a", "one\r\nx-injected: 1"]], [["x-a", "line\nbreak"]], [["x-a", "nul\0"]], [["x a", "1"]],
        [["", "1"]], [["x:a", "1"]], [["x-a"]], [["x-a", "1", "2"]],
        [["x-huge", String(repeating: "h", count: 17_000)]],
        (0..<101).map { ["x-h\($0)", "1"] }, (0..<10).map { ["x-h\($0)", String(repeating: "v", count: 15_000)] },
    ])
    func headsHTTPCannotCarryAreRejected(headers: [[String]]) {
        #expect(throws: ResponseHeadPolicy.Rejected.self) { try check(200, headers).get() }
    }

    @Test func rejectionsNeverQuoteTheValue() {
        let secret = "s3cr3t-value"
        guard case .failure(let rejected) = check(200, [["x-a", secret + "\r\n"]]) else {
            Issue.record("accepted a CR/LF value")
            return
        }
        #expect(!rejected.reason.contains(secret))
    }
}
