"""The API of Python functions on Verge.

A function is a module with a handler that takes a `Request` and returns the response:

    def handle(request):
        return f"hello from {request.host['name']}"

The handler may return `str` (text/plain), `bytes` (application/octet-stream), a `dict` or `list` (JSON) or a
`Response`. A `Response` whose body is any other iterable, a generator for instance, is streamed to the client
chunk by chunk as the iterable produces `str` or `bytes` chunks.
"""

import time

from verge._codec import loads as _loads

__all__ = ["Request", "Response"]

_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")


class Request:
    """An HTTP request as the gateway received it, plus what the platform knows about the invocation."""

    def __init__(self, head, body=b""):
        self.invocation_id = head["invocation_id"]
        self.method = head["method"]
        #: The path the client asked for, starting with "/", without the query string.
        self.path = head["path"]
        #: The raw query string, without "?"; empty when there is none.
        self.query = head["query"]
        #: Header fields as (name, value) pairs in the order received; names are lower-case.
        self.header_list = [(name, value) for name, value in head["headers"]]
        #: Header fields by lower-case name; repeated fields are joined with ", " ("; " for cookie).
        self.headers = _join_headers(self.header_list)
        self.body = body
        #: When the platform abandons the invocation, in seconds since the Unix epoch.
        self.deadline = head["deadline_ms"] / 1000
        #: Where the client is ({"latitude", "longitude", "source"}, and "country", "address", "distance_km" when
        #: known; "source" is "header", "geoip", "country" or "default"), or None when the gateway could not tell.
        self.client = head.get("client")
        #: The edge host running the invocation: {"name", "latitude", "longitude"}.
        self.host = head["host"]
        #: The function being invoked: {"tenant", "name", "version"}.
        self.function = head["function"]
        self._query_params = None

    @property
    def query_params(self):
        """Query parameters by name, percent-decoded ("+" is a space); the last of repeated names wins."""
        if self._query_params is None:
            params = {}
            for pair in self.query.split("&"):
                if pair:
                    name, _, value = pair.partition("=")
                    params[_unquote_plus(name)] = _unquote_plus(value)
            self._query_params = params
        return self._query_params

    def text(self):
        """The body decoded as UTF-8; invalid sequences become U+FFFD."""
        return self.body.decode("utf-8", "replace")

    def json(self):
        """The body decoded as JSON; raises `json.JSONDecodeError` (a `ValueError`) when it is not JSON."""
        return _loads(self.body)

    def remaining_ms(self):
        """Milliseconds left before the deadline, never negative."""
        return max(0, int(self.deadline * 1000 - time.time() * 1000))

    def __repr__(self):
        return f"<Request {self.invocation_id} {self.method} {self.path}>"


class Response:
    """A response with a status, header fields and a body.

    `body` may be `bytes`, `str` (sent as UTF-8), a `dict` or `list` (sent as JSON), `None` (empty) or an
    iterable of `str`/`bytes` chunks (streamed). `headers` is a dict or a list of (name, value) pairs. Without
    a content-type header the runtime adds one that fits the body: text/plain; charset=utf-8 for text,
    application/json for JSON, application/octet-stream for bytes; a stream gets the type of its first chunk.
    """

    def __init__(self, body=b"", status=200, headers=None):
        self.body = body
        self.status = status
        self.headers = headers

    def __repr__(self):
        return f"<Response {self.status}>"


def _join_headers(pairs):
    headers = {}
    for name, value in pairs:
        if name in headers:
            headers[name] = headers[name] + ("; " if name == "cookie" else ", ") + value
        else:
            headers[name] = value
    return headers


def _unquote_plus(text):
    # What urllib.parse.unquote_plus does, without importing urllib (and re) into every worker.
    text = text.replace("+", " ")
    if "%" not in text:
        return text
    parts = text.encode("utf-8").split(b"%")
    out = bytearray(parts[0])
    for part in parts[1:]:
        if len(part) >= 2 and part[0] in _HEX_DIGITS and part[1] in _HEX_DIGITS:
            out.append(int(part[:2], 16))
            out += part[2:]
        else:
            out += b"%"
            out += part
    return out.decode("utf-8", "replace")
