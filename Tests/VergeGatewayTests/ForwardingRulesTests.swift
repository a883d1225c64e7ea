import HTTPTypes
import Testing
import VergeGateway

@Suite struct ForwardingRulesTests {
    @Test func connectionNamesMoreHopByHopFields() {
        let names = ForwardingRules.connectionFields(named: ["close, X-Secret", " keep-alive ,x-other"])
        #expect(names.isSuperset(of: ForwardingRules.hopByHop))
        #expect(names.contains("x-secret") && names.contains("x-other") && names.contains("close"))
        #expect(!names.contains(""))
        #expect(ForwardingRules.connectionFields(named: []) == ForwardingRules.hopByHop)
    }

    @Test(arguments: ["abc", "0123456789abcdef0123456789abcdef", "req-1_2.3:4/5", String(repeating: "a", count: 128)])
    func validRequestIDsAreKept(id: String) {
        #expect(ForwardingRules.acceptedRequestID(id) == id)
    }

    @Test(arguments: [
        nil, "", " ", "has space", "quote\"", "tab\t", "new\nline", "ünicode", String(repeating: "a", count: 129),
    ])
    func invalidRequestIDsAreReplaced(id: String?) {
        #expect(ForwardingRules.acceptedRequestID(id) == nil)
    }

    @Test func freshRequestIDsAre32HexDigitsAndDiffer() {
        let ids = (0..<100).map { _ in ForwardingRules.newRequestID() }
        #expect(Set(ids).count == ids.count)
        for id in ids {
            #expect(id.count == 32)
            #expect(id.allSatisfy { $0.isHexDigit && !$0.isUppercase })
        }
    }

    @Test func onlySafeMethodsAreIdempotent() {
        #expect(ForwardingRules.isIdempotent(.get))
        #expect(ForwardingRules.isIdempotent(.head))
        #expect(ForwardingRules.isIdempotent(.options))
        #expect(!ForwardingRules.isIdempotent(.post))
        #expect(!ForwardingRules.isIdempotent(.patch))
        #expect(!ForwardingRules.isIdempotent(.delete))
    }

    @Test func onlyTheHostsOwnMarkerDecides() {
        // A function may answer any status; without the host's marker it is the function's answer.
        #expect(ForwardingRules.classify(status: 503, errorMarker: nil) == .served)
        #expect(ForwardingRules.classify(status: 500, errorMarker: nil) == .served)
        #expect(ForwardingRules.classify(status: 503, errorMarker: "overloaded") == .spill)
        #expect(ForwardingRules.classify(status: 503, errorMarker: "shutting_down") == .spill)
        #expect(ForwardingRules.classify(status: 500, errorMarker: "internal_error") == .hostFailure)
        // The function's own failures say nothing about the host.
        for code in [
            "function_error", "worker_crashed", "timeout", "invalid_response", "init_failed", "limit_exceeded",
        ] {
            #expect(ForwardingRules.classify(status: 502, errorMarker: code) == .served)
        }
        // A per-function cap (429) is not saturation of the host.
        #expect(ForwardingRules.classify(status: 429, errorMarker: "too_many_requests") == .served)
        #expect(ForwardingRules.classify(status: 200, errorMarker: "overloaded") == .served)
        // The host's own 404 for a function it does not run: the gateway's list is behind. A function's 404 is
        // the function's answer.
        #expect(ForwardingRules.classify(status: 404, errorMarker: "function_not_found") == .missing)
        #expect(ForwardingRules.classify(status: 404, errorMarker: nil) == .served)
        #expect(ForwardingRules.classify(status: 404, errorMarker: "not_found") == .served)
    }
}
