"""Tests of the Python runtime: each spawns the real worker with a socket pair at fd 3 and speaks the protocol.

Run from the repository root: python3 -m unittest discover -s Runtime/python/tests -v
The interpreter under test is $VERGE_PYTHON (default /usr/bin/python3).
"""

import hashlib
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest
import unittest.mock
import urllib.parse

RUNTIME_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_ROOT = os.path.dirname(os.path.dirname(RUNTIME_DIR))
FIXTURES = os.path.join(REPO_ROOT, "Tests", "Fixtures", "functions")
WORKER = os.path.join(RUNTIME_DIR, "verge_worker.py")
PYTHON = os.environ.get("VERGE_PYTHON", "/usr/bin/python3")

sys.path.insert(0, RUNTIME_DIR)
from verge import Request  # noqa: E402

READY, INIT_ERROR = 0x01, 0x02
REQUEST_HEAD, REQUEST_BODY, REQUEST_END = 0x10, 0x11, 0x12
RESPONSE_HEAD, RESPONSE_BODY, RESPONSE_END, INVOCATION_ERROR = 0x20, 0x21, 0x22, 0x23

TIMEOUT = 10


def frame(kind, payload=b""):
    return (len(payload) + 1).to_bytes(4, "big") + bytes([kind]) + payload


def head(invocation_id="inv-1", method="GET", path="/fn/", query="", headers=(), client=None, deadline_ms=None):
    """A request_head as the host writes it; like the host, it leaves `client` out when the location is unknown."""
    fields = {
        "invocation_id": invocation_id,
        "method": method,
        "path": path,
        "query": query,
        "headers": [list(pair) for pair in headers],
        "deadline_ms": deadline_ms or int(time.time() * 1000) + 10_000,
        "host": {"name": "fra", "latitude": 50.11, "longitude": 8.68},
        "function": {"tenant": "default", "name": "fn", "version": "v1"},
    }
    if client is not None:
        fields["client"] = client
    return fields


class Worker:
    """A worker process with the test holding the host's end of its channel."""

    def __init__(self, bundle, entry="main.py", handler=None):
        self.socket, worker_end = socket.socketpair()
        self.socket.settimeout(TIMEOUT)
        fd = worker_end.fileno()

        def place_channel_at_fd_3():
            if fd == 3:
                os.set_inheritable(3, True)
            else:
                os.dup2(fd, 3)

        env = {"VERGE_FD": "3", "VERGE_PROTOCOL": "1", "VERGE_BUNDLE_DIR": bundle, "VERGE_ENTRY": entry}
        if handler:
            env["VERGE_HANDLER"] = handler
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            [PYTHON, "-I", "-S", WORKER], cwd=bundle, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=place_channel_at_fd_3, close_fds=False,
        )
        worker_end.close()
        self._buffer = b""

    def send(self, kind, payload=b""):
        self.socket.sendall(frame(kind, payload))

    def receive(self):
        """The next frame as (type, payload), or None at end of stream."""
        while True:
            if len(self._buffer) >= 5:
                length = int.from_bytes(self._buffer[:4], "big")
                if len(self._buffer) >= 4 + length:
                    kind, payload = self._buffer[4], self._buffer[5:4 + length]
                    self._buffer = self._buffer[4 + length:]
                    return kind, payload
            data = self.socket.recv(1 << 16)
            if not data:
                return None
            self._buffer += data

    def ready(self):
        kind, payload = self.receive()
        assert kind == READY, (kind, payload, self.finish())
        return json.loads(payload)

    def start_request(self, body_chunks=(), **fields):
        self.send(REQUEST_HEAD, json.dumps(head(**fields)).encode())
        for chunk in body_chunks:
            self.send(REQUEST_BODY, chunk)
        self.send(REQUEST_END)

    def request(self, body_chunks=(), **fields):
        """Sends a request; returns (status, headers, body, body frame sizes) or ("error", report)."""
        self.start_request(body_chunks, **fields)
        kind, payload = self.receive()
        if kind == INVOCATION_ERROR:
            return "error", json.loads(payload)
        assert kind == RESPONSE_HEAD, (kind, payload)
        response = json.loads(payload)
        sizes, body = [], b""
        while True:
            kind, payload = self.receive()
            if kind == RESPONSE_END:
                return response["status"], response["headers"], body, sizes
            assert kind == RESPONSE_BODY, (kind, payload)
            sizes.append(len(payload))
            body += payload

    def finish(self):
        """Closes the channel; returns (exit status, stdout, stderr)."""
        self.socket.close()
        try:
            out, err = self.process.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, err = self.process.communicate()
        return self.process.returncode, out.decode(), err.decode()


CASES = textwrap.dedent('''
    import time

    from verge import Response


    def handle(request):
        route = request.path
        if route == "/str":
            return "héllo"
        if route == "/bytes":
            return bytes(range(256))
        if route == "/dict":
            return {"ok": True, "n": 1.5, "list": [1, None]}
        if route == "/list":
            return [1, "two"]
        if route == "/response":
            return Response("created", status=201, headers=[("x-one", "1"), ("x-one", "2"), ("location", "/a")])
        if route == "/json-error":
            return Response({"error": {"code": "bad_request", "message": "no"}}, status=400)
        if route == "/empty":
            return Response(status=204)
        if route == "/big":
            return b"x" * (200 * 1024 + 7)
        if route == "/1mib":
            return b"m" * (1 << 20)
        if route == "/huge":
            return b"h" * ((1 << 20) + 1)
        if route == "/stream":
            def chunks():
                for index in range(3):
                    yield f"part {index};"
                    time.sleep(0.01)
                yield b"\\x00" * (70 * 1024)
            return Response(chunks())
        if route == "/stream-fails":
            def chunks():
                yield "first"
                raise KeyError("gone")
            return Response(chunks(), headers={"content-type": "text/event-stream"})
        if route == "/none":
            return None
        if route == "/bad-status":
            return Response("x", status="200")
        if route == "/bad-header":
            return Response("x", headers={"x-evil": "a\\r\\nset-cookie: 1"})
        if route == "/unserializable":
            return {"when": object()}
        if route == "/bad-chunk":
            return Response(iter([1, 2]))
        if route == "/deadline":
            return {"remaining_ms": request.remaining_ms(), "deadline": request.deadline}
        if route == "/echo":
            return {"body": request.text(), "json": request.json() if request.body else None,
                    "query_params": request.query_params, "headers": request.headers}
        raise LookupError(route)
''')


class RuntimeTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.temp = tempfile.mkdtemp(prefix="verge-runtime-test-")
        cls.cases = os.path.join(cls.temp, "cases")
        os.mkdir(cls.cases)
        with open(os.path.join(cls.cases, "main.py"), "w") as file:
            file.write(CASES)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.temp)

    def bundle(self, name, source):
        path = os.path.join(self.temp, name)
        os.mkdir(path)
        with open(os.path.join(path, "main.py"), "w") as file:
            file.write(textwrap.dedent(source))
        return path

    def worker(self, bundle, **options):
        worker = Worker(bundle, **options)
        self.addCleanup(lambda: worker.process.poll() is None and worker.finish())
        return worker

    # Start and stop.

    def test_ready_handshake_announces_protocol_and_runtime(self):
        worker = self.worker(self.cases)
        self.assertEqual(worker.ready(), {"protocol": 1, "runtime": "python/%d.%d.%d" % sys.version_info[:3]})
        self.assertEqual(worker.finish(), (0, "", ""))

    def test_eof_on_the_channel_ends_an_idle_worker_with_status_0(self):
        worker = self.worker(self.cases)
        worker.ready()
        worker.request(path="/str")
        status, _, err = worker.finish()
        self.assertEqual(status, 0, err)

    def test_import_failure_sends_init_error_and_exits_1(self):
        worker = self.worker(os.path.join(FIXTURES, "initfail"))
        kind, payload = worker.receive()
        self.assertEqual(kind, INIT_ERROR)
        self.assertEqual(json.loads(payload), {"type": "RuntimeError", "message": "cannot start"})
        self.assertIsNone(worker.receive())
        status, _, err = worker.finish()
        self.assertEqual(status, 1)
        self.assertIn("Traceback", err)
        self.assertIn("RuntimeError: cannot start", err)

    def test_syntax_error_missing_handler_and_bad_entry_are_init_errors(self):
        broken = self.bundle("broken", "def handle(request)\n    return 1\n")
        cases = [
            (broken, {}, "SyntaxError"),
            (self.cases, {"handler": "missing"}, "AttributeError"),
            (self.cases, {"entry": "nothere.py"}, "FileNotFoundError"),
            (self.cases, {"entry": "../cases/main.py"}, "ValueError"),
            (self.cases, {"entry": "/etc/passwd.py"}, "ValueError"),
        ]
        for bundle, options, error_type in cases:
            with self.subTest(options=options, error_type=error_type):
                worker = self.worker(bundle, **options)
                kind, payload = worker.receive()
                self.assertEqual((kind, json.loads(payload)["type"]), (INIT_ERROR, error_type))
                self.assertEqual(worker.finish()[0], 1)

    # Requests.

    def test_get_with_query_and_headers_reaches_the_handler(self):
        worker = self.worker(os.path.join(FIXTURES, "echo"))
        worker.ready()
        client = {"latitude": 48.85, "longitude": 2.35, "source": "header"}
        status, headers, body, _ = worker.request(
            invocation_id="inv-42", path="/echo/a/b", query="x=1&name=J%C3%BCrgen+M&x=2&flag",
            headers=[("accept", "*/*"), ("x-multi", "a"), ("x-multi", "b"), ("cookie", "a=1"), ("cookie", "b=2")],
            client=client,
        )
        self.assertEqual(status, 200)
        self.assertEqual(headers, [["content-type", "application/json"]])
        seen = json.loads(body)
        self.assertEqual(seen["method"], "GET")
        self.assertEqual(seen["path"], "/echo/a/b")
        self.assertEqual(seen["query"], "x=1&name=J%C3%BCrgen+M&x=2&flag")
        self.assertEqual(seen["query_params"], {"x": "2", "name": "Jürgen M", "flag": ""})
        self.assertEqual(seen["headers"], {"accept": "*/*", "x-multi": "a, b", "cookie": "a=1; b=2"})
        self.assertEqual(seen["client"], client)
        self.assertEqual(seen["host"]["name"], "fra")
        self.assertEqual(seen["function"], {"tenant": "default", "name": "fn", "version": "v1"})
        self.assertEqual(seen["invocation_id"], "inv-42")
        self.assertEqual(seen["pid"], worker.process.pid)
        self.assertEqual(seen["body_length"], 0)

    def test_post_body_split_over_several_frames_is_joined(self):
        worker = self.worker(os.path.join(FIXTURES, "echo"))
        worker.ready()
        chunks = [os.urandom(65536), b"", os.urandom(1000), os.urandom(300_000)]
        status, _, body, _ = worker.request(method="POST", body_chunks=chunks)
        seen = json.loads(body)
        self.assertEqual(status, 200)
        self.assertEqual(seen["body_length"], sum(map(len, chunks)))
        self.assertEqual(seen["body_sha256"], hashlib.sha256(b"".join(chunks)).hexdigest())

    def test_request_text_json_and_query_helpers(self):
        worker = self.worker(self.cases)
        worker.ready()
        document = {"text": "grüße", "n": [1, 2.5, None, True]}
        raw = json.dumps(document, ensure_ascii=False).encode()
        _, _, body, _ = worker.request(path="/echo", method="POST", body_chunks=[raw[:5], raw[5:]])
        self.assertEqual(json.loads(body)["json"], document)
        self.assertEqual(json.loads(body)["body"], raw.decode())

    def test_deadline_and_remaining_time(self):
        worker = self.worker(self.cases)
        worker.ready()
        deadline_ms = int(time.time() * 1000) + 5000
        _, _, body, _ = worker.request(path="/deadline", deadline_ms=deadline_ms)
        seen = json.loads(body)
        self.assertEqual(seen["deadline"], deadline_ms / 1000)
        self.assertTrue(3000 < seen["remaining_ms"] <= 5000, seen)

    # Responses.

    def test_return_values_map_to_responses(self):
        worker = self.worker(self.cases)
        worker.ready()
        expected = {
            "/str": (200, [["content-type", "text/plain; charset=utf-8"]], "héllo".encode()),
            "/bytes": (200, [["content-type", "application/octet-stream"]], bytes(range(256))),
            "/dict": (200, [["content-type", "application/json"]], b'{"ok":true,"n":1.5,"list":[1,null]}'),
            "/list": (200, [["content-type", "application/json"]], b'[1,"two"]'),
            "/response": (
                201,
                [["x-one", "1"], ["x-one", "2"], ["location", "/a"], ["content-type", "text/plain; charset=utf-8"]],
                b"created",
            ),
            "/json-error": (
                400,
                [["content-type", "application/json"]],
                b'{"error":{"code":"bad_request","message":"no"}}',
            ),
            "/empty": (204, [], b""),
        }
        for path, (status, headers, body) in expected.items():
            with self.subTest(path=path):
                self.assertEqual(worker.request(path=path)[:3], (status, headers, body))

    def test_large_bodies_are_sent_in_chunks_of_at_most_64_kib(self):
        worker = self.worker(self.cases)
        worker.ready()
        _, _, body, sizes = worker.request(path="/big")
        self.assertEqual(body, b"x" * (200 * 1024 + 7))
        self.assertEqual(sizes, [65536, 65536, 65536, 8199])

    def test_a_whole_body_is_announced_with_its_length_and_a_stream_is_not(self):
        worker = self.worker(self.cases)
        worker.ready()
        # A head may announce at most 1 MiB (PROTOCOL.md): a longer whole body goes out like a stream.
        for path, length, size in (("/big", 200 * 1024 + 7, 200 * 1024 + 7), ("/stream", None, None),
                                   ("/1mib", 1 << 20, 1 << 20), ("/huge", None, (1 << 20) + 1)):
            worker.start_request(path=path)
            kind, payload = worker.receive()
            self.assertEqual(kind, RESPONSE_HEAD)
            self.assertEqual(json.loads(payload).get("body_length"), length, path)
            body = b""
            while True:
                kind, chunk = worker.receive()
                if kind == RESPONSE_END:
                    break
                body += chunk
            if size is not None:
                self.assertEqual(len(body), size, path)

    def test_generator_body_is_streamed_chunk_by_chunk(self):
        worker = self.worker(self.cases)
        worker.ready()
        status, headers, body, sizes = worker.request(path="/stream")
        self.assertEqual(status, 200)
        self.assertEqual(headers, [["content-type", "text/plain; charset=utf-8"]])
        self.assertEqual(body, b"part 0;part 1;part 2;" + b"\x00" * (70 * 1024))
        self.assertEqual(sizes, [7, 7, 7, 65536, 70 * 1024 - 65536])

    def test_stream_fixture_sends_each_chunk_as_it_is_produced(self):
        worker = self.worker(os.path.join(FIXTURES, "stream"))
        worker.ready()
        worker.start_request(query="chunks=3")
        kinds = []
        while not kinds or kinds[-1][0] != RESPONSE_END:
            kinds.append(worker.receive())
        self.assertEqual([kind for kind, _ in kinds], [RESPONSE_HEAD] + [RESPONSE_BODY] * 3 + [RESPONSE_END])
        self.assertEqual(b"".join(payload for kind, payload in kinds[1:]), b"chunk 0\nchunk 1\nchunk 2\n")

    def test_slow_and_flaky_fixtures(self):
        slow = self.worker(os.path.join(FIXTURES, "slow"))
        slow.ready()
        self.assertEqual(slow.request(query="ms=20")[2], b"done")
        self.assertEqual(slow.finish()[1], "sleeping 20 ms\n")
        flaky = self.worker(os.path.join(FIXTURES, "flaky"))
        flaky.ready()
        self.assertEqual(json.loads(flaky.request()[2])["pid"], flaky.process.pid)
        flaky.start_request(query="crash=1")
        self.assertIsNone(flaky.receive())
        self.assertEqual(flaky.finish()[0], -9)

    # Failures.

    def test_handler_exception_is_reported_and_the_worker_serves_the_next_request(self):
        worker = self.worker(os.path.join(FIXTURES, "error"))
        worker.ready()
        self.assertEqual(worker.request(), ("error", {"type": "ValueError", "message": "boom"}))
        self.assertEqual(worker.request(invocation_id="inv-2"), ("error", {"type": "ValueError", "message": "boom"}))
        status, _, err = worker.finish()
        self.assertEqual(status, 0)
        self.assertEqual(err.count("about to fail"), 2)
        self.assertIn("ValueError: boom", err)

    def test_failure_after_the_head_still_sends_invocation_error(self):
        worker = self.worker(self.cases)
        worker.ready()
        worker.start_request(path="/stream-fails")
        kind, payload = worker.receive()
        self.assertEqual(kind, RESPONSE_HEAD)
        self.assertEqual(json.loads(payload)["headers"], [["content-type", "text/event-stream"]])
        self.assertEqual(worker.receive(), (RESPONSE_BODY, b"first"))
        kind, payload = worker.receive()
        self.assertEqual((kind, json.loads(payload)), (INVOCATION_ERROR, {"type": "KeyError", "message": "'gone'"}))
        self.assertEqual(worker.request(path="/str")[0], 200)

    def test_invalid_results_are_invocation_errors(self):
        worker = self.worker(self.cases)
        worker.ready()
        for path, error_type in [("/none", "TypeError"), ("/bad-status", "ValueError"),
                                 ("/bad-header", "ValueError"), ("/bad-chunk", "TypeError"),
                                 ("/unserializable", "TypeError")]:
            with self.subTest(path=path):
                outcome, report = worker.request(path=path)
                self.assertEqual((outcome, report["type"]), ("error", error_type))
        self.assertIn("verge.Response", worker.request(path="/none")[1]["message"])
        self.assertEqual(worker.request(path="/str")[0], 200)

    def test_logs_are_flushed_before_the_invocation_completes(self):
        worker = self.worker(os.path.join(FIXTURES, "logs"))
        worker.ready()
        self.assertEqual(worker.request(invocation_id="inv-log")[2], b"ok")
        readable, _, _ = select.select([worker.process.stdout], [], [], TIMEOUT)
        self.assertTrue(readable)
        self.assertEqual(os.read(worker.process.stdout.fileno(), 4096), b"log line for inv-log\n")

    # Protocol errors.

    def test_protocol_errors_end_the_worker_with_a_nonzero_status(self):
        cases = {
            "oversized": (1 << 20 | 1).to_bytes(4, "big") + bytes([REQUEST_BODY]),
            "zero length": bytes(5),
            "unknown type": frame(0x7F),
            "body before head": frame(REQUEST_BODY, b"x"),
            "malformed head": frame(REQUEST_HEAD, b"{") + frame(REQUEST_END),
            "closed inside a frame": frame(REQUEST_HEAD, b"{}")[:6],
        }
        for name, data in cases.items():
            with self.subTest(name):
                worker = self.worker(self.cases)
                worker.ready()
                worker.socket.sendall(data)
                worker.socket.shutdown(socket.SHUT_WR)
                self.assertIsNone(worker.receive())
                status, _, err = worker.finish()
                self.assertEqual(status, 70)
                self.assertIn("protocol error", err)

    def test_worker_run_without_a_channel_explains_itself(self):
        result = subprocess.run([PYTHON, "-I", "-S", WORKER], cwd=self.cases, env={"VERGE_FD": "9"},
                                capture_output=True, text=True, timeout=TIMEOUT)
        self.assertEqual(result.returncode, 2)
        self.assertIn("started by a Verge host", result.stderr)


class RequestTests(unittest.TestCase):
    def test_query_params_decode_like_urllib(self):
        for query in ["a=%zz&b=%4", "a=%E2%82%AC&b=%ff", "a+b=c+d&&=x", "k=1=2", "%41%42=%43"]:
            with self.subTest(query=query):
                request = Request(head(query=query))
                expected = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
                self.assertEqual(request.query_params, expected)

    def test_invalid_json_body_raises_json_decode_error(self):
        request = Request(head(), b'{"a": ')
        with self.assertRaises(json.JSONDecodeError):
            request.json()
        self.assertEqual(Request(head(), b' [1, {"b": "\\u00e9"}] ').json(), [1, {"b": "é"}])


class ChannelTests(unittest.TestCase):
    """The worker's framing in this process, over a real socket pair, with the kernel's short reads and writes
    forced so every path of the buffer handling runs."""

    def setUp(self):
        from verge import _worker

        self.worker_module = _worker
        self.host, worker_end = socket.socketpair()
        self.host.settimeout(TIMEOUT)
        self.addCleanup(self.host.close)
        self.addCleanup(worker_end.close)
        self.channel = _worker.Channel(worker_end.fileno())

    def test_send_goes_on_after_short_writes_and_batches_more_buffers_than_one_writev_takes(self):
        buffers = [bytes([index % 251]) * (index % 13 + 1) for index in range(1500)]
        expected = b"".join(buffers)
        real_writev, offered = os.writev, []

        def short_writev(fd, batch):
            # The kernel may take less than it is offered: take at most 1000 bytes per call, cutting a buffer.
            offered.append(len(batch))
            taken, budget = [], 1000
            for buffer in batch:
                taken.append(bytes(buffer)[:budget])
                budget -= len(taken[-1])
                if not budget:
                    break
            return real_writev(fd, taken)

        with unittest.mock.patch.object(os, "writev", short_writev):
            self.channel.send(list(buffers))
        received = bytearray()
        while len(received) < len(expected):
            received += self.host.recv(1 << 16)
        self.assertEqual(bytes(received), expected)
        self.assertGreaterEqual(len(offered), len(expected) // 1000)
        self.assertLessEqual(max(offered), 512)

    def test_read_reassembles_frames_that_arrive_a_byte_at_a_time(self):
        frames = [(REQUEST_HEAD, b'{"a":1}'), (REQUEST_BODY, b"x" * 300), (REQUEST_BODY, b""), (REQUEST_END, b"")]
        self.host.sendall(b"".join(frame(kind, payload) for kind, payload in frames))
        self.host.shutdown(socket.SHUT_WR)
        real_read = os.read
        with unittest.mock.patch.object(os, "read", lambda fd, size: real_read(fd, 1)):
            received = [self.channel.read() for _ in frames]
            self.assertIsNone(self.channel.read())
        self.assertEqual([(kind, bytes(payload)) for kind, payload in received], frames)

    def test_a_response_is_one_writev_with_head_body_and_end(self):
        real_writev, calls = os.writev, []

        def counting_writev(fd, batch):
            calls.append(len(batch))
            return real_writev(fd, batch)

        request = Request(head(path="/str"))
        with unittest.mock.patch.object(os, "writev", counting_writev):
            self.worker_module.invoke(self.channel, lambda request: "hi", request)
        self.assertEqual(calls, [5])
        expected = (frame(RESPONSE_HEAD,
                          b'{"status":200,"headers":[["content-type","text/plain; charset=utf-8"]],"body_length":2}')
                    + frame(RESPONSE_BODY, b"hi") + frame(RESPONSE_END))
        self.assertEqual(self.host.recv(1 << 16), expected)

    def test_heads_are_the_json_the_protocol_specifies(self):
        from verge import _heads

        self.assertEqual(json.loads(_heads.encode_response_head(201, [["x-é", "a\"b\u2028"], ["k", ""]])),
                         {"status": 201, "headers": [["x-é", "a\"b\u2028"], ["k", ""]]})
        self.assertEqual(json.loads(_heads.encode_response_head(200, [], 0)),
                         {"status": 200, "headers": [], "body_length": 0})
        self.assertEqual(_heads.default_response_head(404, "application/json", 7),
                         _heads.encode_response_head(404, [["content-type", "application/json"]], 7))
        self.assertEqual(_heads.default_response_head(204, None), _heads.encode_response_head(204, []))
        self.assertEqual(json.loads(_heads.encode_ready(1, "python/3.11.2")),
                         {"protocol": 1, "runtime": "python/3.11.2"})
        self.assertEqual(json.loads(_heads.encode_failure("ValueError", "bad \ud800 value\n")),
                         {"type": "ValueError", "message": "bad \ud800 value\n"})
        request_head = head()  # once: its deadline comes from the clock
        self.assertEqual(_heads.decode_request_head(json.dumps(request_head).encode()), request_head)
        for payload in [b"[1]", b'"x"', b"{", b"\xff"]:
            with self.subTest(payload=payload), self.assertRaises((ValueError, TypeError)):
                _heads.decode_request_head(bytearray(payload))


if __name__ == "__main__":
    unittest.main()
