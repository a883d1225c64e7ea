import Testing
import VergeCore

/// How the gateway reads which tenant's function a call is for.
struct FunctionAddressTests {
    @Test(arguments: [
        ("hello.acme.localhost", "/", "acme", "hello", "/hello"),
        ("hello.acme.localhost:8080", "/a/b", "acme", "hello", "/hello/a/b"),
        ("HELLO.Acme.LocalHost.", "/", "acme", "hello", "/hello"),
        ("hello.localhost", "/x", "default", "hello", "/hello/x"),
        ("127.0.0.1:8080", "/hello/x", "default", "hello", "/hello/x"),
        ("example.com", "/hello", "default", "hello", "/hello"),
        ("[::1]:8080", "/hello", "default", "hello", "/hello"),
    ])
    func resolves(authority: String, path: String, tenant: String, name: String, hostPath: String) {
        let address = FunctionAddress.resolve(authority: authority, path: path, domain: "localhost")
        #expect(address == FunctionAddress(tenant: tenant, name: name, hostPath: hostPath))
    }

    @Test(arguments: [
        ("a.b.acme.localhost", "/"),  // too many labels
        ("hello.Acme!.localhost", "/"),
        ("1hello.acme.localhost", "/"),
        (".acme.localhost", "/"),
        ("localhost", "/"),  // no function in the path either
        ("127.0.0.1", "/Hello"),
        ("127.0.0.1", "/../etc"),
    ])
    func refusesWhatNamesNoValidFunction(authority: String, path: String) {
        #expect(FunctionAddress.resolve(authority: authority, path: path, domain: "localhost") == nil)
    }

    @Test func theDomainIsConfigurable() {
        #expect(
            FunctionAddress.resolve(authority: "api.acme.fn.example.com", path: "/", domain: "fn.example.com")
                == FunctionAddress(tenant: "acme", name: "api", hostPath: "/api"))
        #expect(
            FunctionAddress.resolve(authority: "api.acme.localhost", path: "/api", domain: "fn.example.com")
                == FunctionAddress(tenant: "default", name: "api", hostPath: "/api"))
    }
}
