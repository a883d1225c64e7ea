import Testing

@testable import VergeSupervisor

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

@Suite("Descriptors")
struct DescriptorsTests {
    @Test func socketPairIsCloseOnExecAndConnected() throws {
        let pair = try Descriptors.socketPair()
        defer {
            Descriptors.close(pair.parent)
            Descriptors.close(pair.child)
        }
        #expect(fcntl(pair.parent, F_GETFD) & FD_CLOEXEC != 0)
        #expect(fcntl(pair.child, F_GETFD) & FD_CLOEXEC != 0)

        let message: [UInt8] = Array("ping".utf8)
        #expect(write(pair.child, message, message.count) == message.count)
        var buffer = [UInt8](repeating: 0, count: 16)
        let n = read(pair.parent, &buffer, buffer.count)
        #expect(Array(buffer[0..<max(n, 0)]) == message)
    }

    @Test func pipeIsCloseOnExecAndFlows() throws {
        let pipe = try Descriptors.pipe()
        defer {
            Descriptors.close(pipe.read)
            Descriptors.close(pipe.write)
        }
        #expect(fcntl(pipe.read, F_GETFD) & FD_CLOEXEC != 0)
        #expect(fcntl(pipe.write, F_GETFD) & FD_CLOEXEC != 0)

        let message: [UInt8] = Array("pong".utf8)
        #expect(write(pipe.write, message, message.count) == message.count)
        var buffer = [UInt8](repeating: 0, count: 16)
        let n = read(pipe.read, &buffer, buffer.count)
        #expect(Array(buffer[0..<max(n, 0)]) == message)
    }

    @Test func closeIgnoresInvalidDescriptors() {
        Descriptors.close(-1)
    }
}
