import NIOCore
import Testing

@testable import VergeGateway

@Suite struct CIDRTests {
    @Test func parsesIPv4Networks() throws {
        let network = try #require(CIDR("10.0.0.0/8"))
        #expect(network.prefixLength == 8)
        #expect(network.description == "10.0.0.0/8")
        #expect(network.contains("10.0.0.0"))
        #expect(network.contains("10.255.255.255"))
        #expect(!network.contains("11.0.0.0"))
        #expect(!network.contains("9.255.255.255"))
    }

    @Test func parsesIPv6Networks() throws {
        let network = try #require(CIDR("2001:db8::/32"))
        #expect(network.prefixLength == 32)
        #expect(network.description == "2001:db8::/32")
        #expect(network.contains("2001:db8::1"))
        #expect(network.contains("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"))
        #expect(!network.contains("2001:db9::"))
        #expect(!network.contains("10.0.0.1"))
    }

    @Test func clearsHostBits() throws {
        let network = try #require(CIDR("192.168.17.42/16"))
        #expect(network.description == "192.168.0.0/16")
        #expect(network == CIDR("192.168.0.0/16"))
        #expect(CIDR("2001:db8:aaaa::1/48")?.description == "2001:db8:aaaa::/48")
    }

    @Test func aBareAddressIsASingleHost() throws {
        let v4 = try #require(CIDR("192.0.2.7"))
        #expect(v4.prefixLength == 32)
        #expect(v4.contains("192.0.2.7"))
        #expect(!v4.contains("192.0.2.6"))
        let v6 = try #require(CIDR("::1"))
        #expect(v6.prefixLength == 128)
        #expect(v6.contains("::1"))
        #expect(!v6.contains("::2"))
    }

    @Test func prefixZeroContainsEveryAddressOfItsFamily() throws {
        let v4 = try #require(CIDR("0.0.0.0/0"))
        #expect(v4.contains("0.0.0.0"))
        #expect(v4.contains("255.255.255.255"))
        #expect(v4.contains("::ffff:203.0.113.9"))
        #expect(!v4.contains("2001:db8::1"))
        let v6 = try #require(CIDR("::/0"))
        #expect(v6.contains("::"))
        #expect(v6.contains("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"))
        #expect(!v6.contains("203.0.113.9"))
        // Host bits of a /0 are all cleared.
        #expect(CIDR("203.0.113.9/0") == v4)
    }

    @Test func fullLengthPrefixesContainOneAddress() throws {
        let v4 = try #require(CIDR("198.51.100.1/32"))
        #expect(v4.contains("198.51.100.1"))
        #expect(!v4.contains("198.51.100.0"))
        let v6 = try #require(CIDR("2001:db8::ff/128"))
        #expect(v6.contains("2001:db8::ff"))
        #expect(v6.contains("2001:0db8:0000:0000:0000:0000:0000:00ff"))
        #expect(!v6.contains("2001:db8::fe"))
    }

    @Test(arguments: [
        ("172.16.0.0/12", "172.31.255.255", true),
        ("172.16.0.0/12", "172.32.0.0", false),
        ("172.16.0.0/12", "172.15.255.255", false),
        ("128.0.0.0/1", "200.1.1.1", true),
        ("128.0.0.0/1", "127.255.255.255", false),
        ("10.0.0.0/31", "10.0.0.1", true),
        ("10.0.0.0/31", "10.0.0.2", false),
        ("fe80::/10", "febf::1", true),
        ("fe80::/10", "fec0::1", false),
        ("2001:db8::/127", "2001:db8::1", true),
        ("2001:db8::/127", "2001:db8::2", false),
    ])
    func prefixesThatDoNotEndOnAByteBoundary(network: String, address: String, expected: Bool) throws {
        #expect(try #require(CIDR(network)).contains(address) == expected)
    }

    @Test(arguments: ["10.0.0.0/8", "10.1.2.3/32", "0.0.0.0/0"])
    func ipv4MappedIPv6AddressesMatchIPv4Networks(network: String) throws {
        let cidr = try #require(CIDR(network))
        #expect(cidr.contains("::ffff:10.1.2.3"))
        #expect(cidr.contains("::FFFF:10.1.2.3"))
        #expect(cidr.contains("::ffff:a01:203"))
    }

    @Test func onlyMappedAddressesAreUnwrapped() throws {
        let network = try #require(CIDR("10.0.0.0/8"))
        #expect(!network.contains("::ffff:11.1.2.3"))
        // IPv4-compatible (deprecated) and NAT64 forms are not IPv4-mapped.
        #expect(!network.contains("::10.1.2.3"))
        #expect(!network.contains("64:ff9b::10.1.2.3"))
    }

    @Test(arguments: [
        "", "/", "/8", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/8/9", "10.0.0.0/x", "::/129",
        "10.0.0/8", "256.0.0.0/8", "10.0.0.0.0/8", " 10.0.0.0/8", "10.0.0.0 /8", "localhost", "::g/64",
        "2001:db8:::1/64", "10.0.0.0/99999999999999999999",
    ])
    func rejectsGarbage(text: String) {
        #expect(CIDR(text) == nil)
    }

    @Test(arguments: ["", "garbage", "10.0.0", "10.0.0.1/8", "::ffff:10.0.0.256"])
    func garbageAddressesAreNeverContained(address: String) throws {
        #expect(try !#require(CIDR("0.0.0.0/0")).contains(address))
        #expect(try !#require(CIDR("::/0")).contains(address))
    }

    @Test func matchesSocketAddresses() throws {
        let network = try #require(CIDR("127.0.0.0/8"))
        #expect(network.contains(try SocketAddress(ipAddress: "127.0.0.1", port: 8080)))
        #expect(!network.contains(try SocketAddress(ipAddress: "192.0.2.1", port: 8080)))
        #expect(network.contains(try SocketAddress(ipAddress: "::ffff:127.0.0.1", port: 8080)))
        #expect(!network.contains(nil as SocketAddress?))
        #expect(try #require(CIDR("::1/128")).contains(try SocketAddress(ipAddress: "::1", port: 1)))
    }
}
