import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A response read byte for byte off a raw connection.
public struct RawResponse: Sendable, CustomStringConvertible {
    /// `HTTP/1.1` or `HTTP/1.0`.
    public var version: String
    public var status: Int
    /// Header fields in order, names lower-cased.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// The exact bytes of the status line and header section, for assertions on what went over the wire.
    public var headBytes: [UInt8]

    public var text: String { String(decoding: body, as: UTF8.self) }

    public func header(_ name: String) -> String? { headers.first { $0.name == name.lowercased() }?.value }

    public var description: String { "\(status) \(headers.map { "\($0.name): \($0.value)" }) \(text.prefix(200))" }
}

/// A real TCP connection on which a test writes requests byte for byte (several back to back: pipelining) and
/// parses the responses strictly by HTTP/1.1's framing rules (RFC 9112 §6.3), so a single stray byte between two
/// responses shows up as a parse failure or a wrong second response.
public final class RawHTTPConnection: @unchecked Sendable {
    private let fd: Int32
    private var buffer: [UInt8] = []
    private var closed = false

    /// Connects to the `host:port` of `url` (`http://127.0.0.1:PORT`), with `timeout` on every read.
    public init(url: String, timeout: Duration = .seconds(15)) throws {
        guard let parsed = URL(string: url), let host = parsed.host, let port = parsed.port else {
            throw TestFailure("not an http://host:port URL: \(url)")
        }
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket() failed: \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
            Glibc.close(fd)
            throw TestFailure("not an IPv4 address: \(host)")
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            let code = errno
            Glibc.close(fd)
            throw TestFailure("connect to \(url) failed: errno \(code)")
        }
        var tv = timeval(tv_sec: Int(timeout.components.seconds), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    private var descriptorOpen = true

    deinit { close() }

    /// Closes the connection from this side.
    public func close() {
        guard descriptorOpen else { return }
        descriptorOpen = false
        Glibc.close(fd)
    }

    /// Half-closes the connection: the server reads end-of-stream, the test can still read its answer.
    public func shutdownWrite() {
        guard descriptorOpen else { return }
        _ = Glibc.shutdown(fd, Int32(SHUT_WR))
    }

    /// Writes `text` exactly as given (use `\r\n`).
    public func send(_ text: String) throws {
        try send(Array(text.utf8))
    }

    public func send(_ bytes: [UInt8]) throws {
        guard trySend(bytes) else { throw TestFailure("write failed: errno \(errno)") }
    }

    /// Writes `bytes`; `false` when the server closed or reset the connection first (no SIGPIPE).
    public func trySend(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            guard written > 0 else { return false }
            offset += written
        }
        return true
    }

    /// Waits for the server to close the connection, discarding anything it sends: `true` when it closed (or
    /// reset) it, `false` when it was still open after the read timeout.
    public func waitForClose() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count == 0 { return true }
            if count < 0 { return errno == ECONNRESET || errno == EPIPE }
        }
    }

    /// Reads one response to a request made with `method`, off Swift concurrency's threads (the read blocks).
    public func readResponse(method: String = "GET", interim: Bool = false) async throws -> RawResponse {
        try await blocking { try self.readResponse(method: method, interim: interim) }
    }

    /// Whatever the server sends until it closes the connection, off Swift concurrency's threads.
    public func readToEnd() async throws -> [UInt8] {
        try await blocking { try self.readToEnd() }
    }

    /// ``waitForClose()`` off Swift concurrency's threads.
    public func waitForClose() async -> Bool {
        (try? await blocking { self.waitForClose() }) ?? false
    }

    /// Reads one response to a request made with `method` (with `interim`, a `1xx` one counts too). Blocks: from
    /// async code, the async overload.
    public func readResponse(method: String = "GET", interim: Bool = false) throws -> RawResponse {
        while true {
            let end = try headEnd()
            let head = Array(buffer[..<end])
            buffer.removeFirst(end)
            let lines = String(decoding: head, as: UTF8.self).components(separatedBy: "\r\n").dropLast(2)
            guard let statusLine = lines.first else { throw TestFailure("empty response head") }
            let parts = statusLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count >= 2, parts[0] == "HTTP/1.1" || parts[0] == "HTTP/1.0", parts[1].count == 3,
                let status = Int(parts[1])
            else {
                throw TestFailure("invalid status line: \(statusLine.debugDescription)")
            }
            var headers: [(name: String, value: String)] = []
            for line in lines.dropFirst() {
                guard let colon = line.firstIndex(of: ":"), !line.hasPrefix(" "), !line.hasPrefix("\t") else {
                    throw TestFailure("invalid header line: \(line.debugDescription)")
                }
                let name = String(line[..<colon])
                guard !name.isEmpty, !name.contains(" ") else {
                    throw TestFailure("invalid header name in \(line.debugDescription)")
                }
                headers.append(
                    (name.lowercased(), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
            }
            var response = RawResponse(
                version: String(parts[0]), status: status, headers: headers, body: [], headBytes: head)
            if (100..<200).contains(status) {
                if interim { return response }
                continue  // the final response follows
            }
            if method == "HEAD" || status == 204 || status == 304 { return response }
            let lengths = headers.filter { $0.name == "content-length" }.map(\.value)
            let codings = headers.filter { $0.name == "transfer-encoding" }.map(\.value)
            if !codings.isEmpty {
                guard lengths.isEmpty, codings == ["chunked"] else {
                    throw TestFailure("ambiguous framing: content-length \(lengths), transfer-encoding \(codings)")
                }
                response.body = try readChunked()
            } else if !lengths.isEmpty {
                guard Set(lengths).count == 1, let length = Int(lengths[0]), length >= 0 else {
                    throw TestFailure("invalid content-length \(lengths)")
                }
                response.body = try take(length)
            } else {
                response.body = try readToEnd()
            }
            return response
        }
    }

    /// Whatever the server sends until it closes the connection (or the read times out: then a failure).
    public func readToEnd() throws -> [UInt8] {
        while try fill() {}
        defer { buffer.removeAll() }
        return buffer
    }

    private func readChunked() throws -> [UInt8] {
        var body: [UInt8] = []
        while true {
            let line = try readLine()
            let sizeText = line.split(separator: ";", maxSplits: 1).first.map(String.init) ?? ""
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16), size >= 0 else {
                throw TestFailure("invalid chunk size line \(line.debugDescription)")
            }
            if size == 0 {
                while try !readLine().isEmpty {}  // trailers
                return body
            }
            body += try take(size)
            guard try readLine().isEmpty else { throw TestFailure("chunk not followed by CRLF") }
        }
    }

    private func readLine() throws -> String {
        while true {
            if let index = firstCRLF(from: 0) {
                let line = String(decoding: buffer[..<index], as: UTF8.self)
                buffer.removeFirst(index + 2)
                return line
            }
            guard try fill() else { throw TestFailure("connection closed inside a line") }
        }
    }

    private func take(_ count: Int) throws -> [UInt8] {
        while buffer.count < count {
            guard try fill() else { throw TestFailure("connection closed after \(buffer.count) of \(count) bytes") }
        }
        let bytes = Array(buffer[..<count])
        buffer.removeFirst(count)
        return bytes
    }

    /// The index just past the blank line ending the head at the start of the buffer.
    private func headEnd() throws -> Int {
        while true {
            if let range = find([13, 10, 13, 10]) { return range + 4 }
            guard buffer.count < 1024 * 1024 else { throw TestFailure("response head over 1 MiB") }
            guard try fill() else {
                throw TestFailure(
                    buffer.isEmpty
                        ? "connection closed before a response"
                        : "connection closed inside a response head: "
                            + String(decoding: buffer, as: UTF8.self).prefix(300).debugDescription
                )
            }
        }
    }

    private func firstCRLF(from start: Int) -> Int? {
        guard buffer.count >= 2 else { return nil }
        var index = start
        while index + 1 < buffer.count {
            if buffer[index] == 13 && buffer[index + 1] == 10 { return index }
            index += 1
        }
        return nil
    }

    private func find(_ needle: [UInt8]) -> Int? {
        guard buffer.count >= needle.count else { return nil }
        for index in 0...(buffer.count - needle.count) where buffer[index] == needle[0] {
            if Array(buffer[index..<(index + needle.count)]) == needle { return index }
        }
        return nil
    }

    /// Reads more bytes; false at end of stream.
    private func fill() throws -> Bool {
        if closed { return false }
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count < 0 {
            throw TestFailure("read failed (errno \(errno)); \(buffer.count) bytes unparsed")
        }
        if count == 0 {
            closed = true
            return false
        }
        buffer += chunk[..<count]
        return true
    }
}
