"""The worker side of the Verge worker protocol (Runtime/PROTOCOL.md): load the function, announce readiness,
then serve one invocation at a time until the host closes the channel."""

import os
import sys
from _struct import Struct

from verge import Request, Response
from verge._codec import dumps
from verge._heads import (decode_request_head, default_response_head, encode_failure, encode_ready,
                          encode_response_head)

PROTOCOL_VERSION = 1
MAX_FRAME_LENGTH = 1 << 20
#: The longest body a response head may announce with `body_length` (PROTOCOL.md §2); a longer one is streamed.
MAX_ANNOUNCED_BODY = 1 << 20
CHUNK_SIZE = 64 * 1024

READY = 0x01
INIT_ERROR = 0x02
REQUEST_HEAD = 0x10
REQUEST_BODY = 0x11
REQUEST_END = 0x12
RESPONSE_HEAD = 0x20
RESPONSE_BODY = 0x21
RESPONSE_END = 0x22
INVOCATION_ERROR = 0x23
KNOWN_TYPES = frozenset((READY, INIT_ERROR, REQUEST_HEAD, REQUEST_BODY, REQUEST_END, RESPONSE_HEAD,
                         RESPONSE_BODY, RESPONSE_END, INVOCATION_ERROR))

#: Exit status after a protocol error (EX_SOFTWARE), as in the Swift runtime.
EXIT_PROTOCOL_ERROR = 70
#: Exit status when the function cannot be loaded.
EXIT_INIT_ERROR = 1

TEXT = "text/plain; charset=utf-8"
BINARY = "application/octet-stream"
JSON = "application/json"
_TOKEN_SEPARATORS = frozenset('()<>@,;:\\"/[]?={} \t')

# A frame's prefix: the 4-byte big-endian length, then the type byte.
_PREFIX = Struct(">IB")
_RESPONSE_END_FRAME = _PREFIX.pack(1, RESPONSE_END)
# Most buffers one writev takes (Linux's IOV_MAX is 1024).
_IOV_MAX = 512


class ProtocolError(Exception):
    """The channel cannot be trusted any more: the worker reports it on stderr and exits."""


class Channel:
    """The worker's end of the socket inherited from the host, read and written with blocking calls: a worker
    serves one invocation at a time, so there is nothing to multiplex. Each response goes out in one `writev`."""

    def __init__(self, fd):
        self.fd = fd
        self._buffer = bytearray()
        self._start = 0  # where the unread bytes of `_buffer` begin

    def read(self):
        """The next frame as (type, payload), or None when the host closed the channel between frames. The
        payload is a bytearray."""
        buffer, start = self._buffer, self._start
        while True:
            available = len(buffer) - start
            if available >= 4:
                if available >= 5:
                    length, kind = _PREFIX.unpack_from(buffer, start)
                else:
                    length, kind = int.from_bytes(buffer[start:start + 4], "big"), None
                if length == 0:
                    raise ProtocolError("frame with zero length")
                if length > MAX_FRAME_LENGTH:
                    raise ProtocolError(f"frame of {length} bytes exceeds the limit of {MAX_FRAME_LENGTH}")
                end = start + 4 + length
                if len(buffer) >= end:
                    if kind not in KNOWN_TYPES:
                        raise ProtocolError(f"unknown frame type 0x{kind:02x}")
                    self._start = end
                    return kind, buffer[start + 5:end]
                wanted = end - start
            else:
                wanted = 5
            # Read more: drop what was consumed first (once per read, not per frame).
            if start:
                del buffer[:start]
                start = self._start = 0
            try:
                data = os.read(self.fd, max(CHUNK_SIZE, wanted - available))
            except OSError as error:
                raise ProtocolError(f"read failed: {error}") from None
            if not data:
                if buffer:
                    raise ProtocolError("channel closed inside a frame")
                return None
            buffer += data

    def write(self, frames):
        """Writes (type, payload) frames in one system call where the socket takes them all."""
        buffers = []
        for kind, payload in frames:
            buffers.append(_PREFIX.pack(len(payload) + 1, kind))
            if payload:
                buffers.append(payload)
        self.send(buffers)

    def send(self, buffers):
        """Writes bytes-like buffers (already framed) in order, with as few `writev` calls as the socket allows."""
        fd = self.fd
        try:
            while buffers:
                batch = buffers[:_IOV_MAX]
                written = os.writev(fd, batch)
                if written == sum(map(len, batch)):  # the usual case: all of it
                    buffers = buffers[len(batch):]
                    continue
                for index, buffer in enumerate(batch):
                    size = len(buffer)
                    if written < size:  # a partial write: go on from the first byte not written
                        buffers = [memoryview(buffer)[written:], *buffers[index + 1:]]
                        break
                    written -= size
                else:
                    buffers = buffers[len(batch):]
        except OSError as error:
            raise ProtocolError(f"write failed: {error}") from None


def main(bundle_dir, environ):
    """Runs a worker; returns the process exit status."""
    for stream in (sys.stdout, sys.stderr):
        # Logs go to pipes the host reads: write each line at once so nothing is held back or lost on a kill.
        stream.reconfigure(encoding="utf-8", errors="backslashreplace", line_buffering=True)
    try:
        fd = int(environ.get("VERGE_FD", "3"))
        os.set_inheritable(fd, False)  # processes the function starts must not hold the channel
    except (ValueError, OSError) as error:
        print(f"verge worker: no channel to a host ({error}); workers are started by a Verge host",
              file=sys.stderr)
        return 2
    channel = Channel(fd)

    sys.dont_write_bytecode = True  # the bundle is read-only and its content is hashed
    try:
        handler = load_handler(bundle_dir, environ.get("VERGE_ENTRY", "main.py"),
                               environ.get("VERGE_HANDLER", "handle"))
    except BaseException as error:  # SyntaxError, SystemExit at import, anything
        report(error)
        flush_logs()
        try:
            channel.write([failure_frame(INIT_ERROR, error)])
        except ProtocolError:
            pass
        return EXIT_INIT_ERROR

    try:
        runtime = "python/%d.%d.%d" % sys.version_info[:3]
        channel.write([(READY, encode_ready(PROTOCOL_VERSION, runtime))])
        while True:
            request = receive(channel)
            if request is None:
                return 0
            invoke(channel, handler, request)
    except ProtocolError as error:
        flush_logs()
        print(f"verge worker: protocol error: {error}", file=sys.stderr)
        return EXIT_PROTOCOL_ERROR


# Loading the function.

def load_handler(bundle_dir, entry, handler_name):
    """Imports the bundle's entry module and returns its handler; raises what went wrong."""
    module_name = module_name_of(entry)
    path = os.path.join(bundle_dir, entry)
    if not os.path.realpath(path).startswith(os.path.realpath(bundle_dir) + os.sep):
        raise ValueError(f"entry {entry!r} is outside the bundle")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"entry {entry!r} is not a file in the bundle")
    __import__(module_name)
    handler = getattr(sys.modules[module_name], handler_name, None)
    if handler is None:
        raise AttributeError(f"{entry} defines no handler named {handler_name!r}")
    if not callable(handler):
        raise TypeError(f"{entry}: {handler_name!r} is a {type(handler).__name__}, not a function")
    return handler


def module_name_of(entry):
    """The dotted module name of a bundle-relative entry such as `main.py` or `app/server.py`."""
    parts = entry.split("/")
    if not entry.endswith(".py") or not all(parts):
        raise ValueError(f"entry {entry!r} must be a relative path to a .py file, like 'main.py'")
    parts[-1] = parts[-1][:-3]
    if not all(part.isidentifier() for part in parts):
        raise ValueError(f"entry {entry!r} does not name an importable module")
    return ".".join(parts)


# Serving invocations.

def receive(channel):
    """The next request, or None when the host closed the channel."""
    frame = channel.read()
    if frame is None:
        return None
    kind, payload = frame
    if kind != REQUEST_HEAD:
        raise ProtocolError(f"expected request_head, got frame type 0x{kind:02x}")
    chunks = []
    while True:
        frame = channel.read()
        if frame is None:
            raise ProtocolError("channel closed inside a request")
        kind, chunk = frame
        if kind == REQUEST_END:
            break
        if kind != REQUEST_BODY:
            raise ProtocolError(f"unexpected frame type 0x{kind:02x} inside a request")
        chunks.append(chunk)
    try:
        return Request(decode_request_head(payload), b"".join(chunks))
    except (ValueError, KeyError, TypeError) as error:
        raise ProtocolError(f"malformed request_head: {error!r}") from None


def invoke(channel, handler, request):
    """Runs the handler and sends its response, or invocation_error if it fails, even after the head went out."""
    stream = None
    try:
        status, headers, body, content_type = prepare(handler(request))
        if isinstance(body, bytes):
            # The whole body follows at once: the head announces its length (the host may then send the response in
            # one piece with a Content-Length), up to the most a head may announce; a longer body is streamed.
            length = len(body) if len(body) <= MAX_ANNOUNCED_BODY else None
            if not headers:  # the common case: only the content type the runtime adds
                head = default_response_head(status, content_type if body else None, length)
            else:
                if body and not has_content_type(headers):
                    headers.append(["content-type", content_type])
                head = encode_response_head(status, headers, length)
            flush_logs()
            buffers = [_PREFIX.pack(len(head) + 1, RESPONSE_HEAD), head]
            append_body(buffers, body)
            buffers.append(_RESPONSE_END_FRAME)
            channel.send(buffers)
            return
        stream = body
        first = next(stream, _END)  # the first chunk decides the default content type
        data = b"" if first is _END else chunk_bytes(first)
        if data and not has_content_type(headers):
            headers.append(["content-type", TEXT if isinstance(first, str) else BINARY])
        head = encode_response_head(status, headers)
        buffers = [_PREFIX.pack(len(head) + 1, RESPONSE_HEAD), head]
        append_body(buffers, data)
        channel.send(buffers)
        for chunk in stream:
            buffers = []
            append_body(buffers, chunk_bytes(chunk))
            channel.send(buffers)
        flush_logs()
        channel.send([_RESPONSE_END_FRAME])
    except ProtocolError:
        raise
    except Exception as error:
        report(error)
        flush_logs()
        channel.write([failure_frame(INVOCATION_ERROR, error)])
    finally:
        close = getattr(stream, "close", None)
        if close is not None:  # runs the generator's cleanup even when the stream was cut short
            try:
                close()
            except Exception as error:
                report(error)


_END = object()


def prepare(result):
    """(status, headers, body, default content type) of what the handler returned; `body` is bytes or, for a
    streamed response, an iterator of chunks."""
    if isinstance(result, Response):
        status, body = result.status, result.body
        headers = header_pairs(result.headers)
    elif isinstance(result, (str, bytes, bytearray, memoryview, dict, list)):
        status, headers, body = 200, [], result
    else:
        raise TypeError(f"the handler returned {type(result).__name__}; return str, bytes, dict, list or "
                        "verge.Response (a generator goes in Response(body=...))")
    if type(status) is not int or not 200 <= status <= 599:
        raise ValueError(f"response status must be an int from 200 to 599, not {status!r}")
    if body is None:
        return status, headers, b"", BINARY
    if isinstance(body, str):
        return status, headers, body.encode("utf-8"), TEXT
    if isinstance(body, (bytes, bytearray, memoryview)):
        return status, headers, bytes(body), BINARY
    if isinstance(body, (dict, list)):
        return status, headers, dumps(body, ensure_ascii=False).encode("utf-8"), JSON
    if hasattr(body, "__iter__"):
        return status, headers, iter(body), None
    raise TypeError(f"response body must be bytes, str, dict, list, None or an iterable of chunks, "
                    f"not {type(body).__name__}")


def header_pairs(headers):
    """Validated [name, value] pairs from a dict, a list of pairs or None."""
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, dict) else headers
    pairs = []
    for name, value in items:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"header names and values must be str, not {name!r}: {value!r}")
        if not name or any(ord(c) <= 32 or ord(c) >= 127 or c in _TOKEN_SEPARATORS for c in name):
            raise ValueError(f"invalid header name {name!r}")
        if "\r" in value or "\n" in value or "\0" in value:
            raise ValueError(f"header {name} has a line break or NUL in its value")
        pairs.append([name, value])
    return pairs


def has_content_type(headers):
    return any(name.lower() == "content-type" for name, _ in headers)


def chunk_bytes(chunk):
    if isinstance(chunk, str):
        return chunk.encode("utf-8")
    if isinstance(chunk, (bytes, bytearray, memoryview)):
        return bytes(chunk)
    raise TypeError(f"stream chunks must be str or bytes, not {type(chunk).__name__}")


def append_body(buffers, data):
    """Appends `data` to `buffers` as framed response_body chunks of at most CHUNK_SIZE bytes, without copying it."""
    size = len(data)
    if size <= CHUNK_SIZE:
        if size:
            buffers.append(_PREFIX.pack(size + 1, RESPONSE_BODY))
            buffers.append(data)
        return
    view = memoryview(data)
    for offset in range(0, size, CHUNK_SIZE):
        chunk = view[offset:offset + CHUNK_SIZE]
        buffers.append(_PREFIX.pack(len(chunk) + 1, RESPONSE_BODY))
        buffers.append(chunk)


def failure_frame(kind, error):
    """An init_error or invocation_error frame reporting `error`."""
    try:
        message = str(error)
    except Exception:  # an exception whose __str__ fails still gets reported
        message = object.__repr__(error)
    return kind, encode_failure(type(error).__name__, message)


def report(error):
    """Prints the traceback of `error` to stderr, which the host records in the function's log."""
    import traceback

    traceback.print_exception(type(error), error, error.__traceback__)


def flush_logs():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
