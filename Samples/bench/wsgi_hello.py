"""`Functions/hello` as a WSGI application, for the uWSGI peer of the warm benchmark (warm.sh).

uWSGI runs the very same handler (Functions/hello/main.py) with the request the host would give it straight at
`fra`: the host's name and location, no client location (no gateway in front), the query and the headers. The
response is what Verge sends: the text with `content-type: text/plain; charset=utf-8`, or JSON.
"""

import json
import os
import sys

_HELLO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Functions", "hello")
sys.dont_write_bytecode = True  # nothing written into the function's directory, which verge deploy packs
sys.path.insert(0, os.path.normpath(_HELLO))
from main import handle  # noqa: E402

HOST = {"name": "fra", "latitude": 50.11, "longitude": 8.68}
_TEXT = [("content-type", "text/plain; charset=utf-8")]
_JSON = [("content-type", "application/json")]


class Request:
    """The attributes of `verge.Request` that a handler reads, filled from the WSGI environ."""

    __slots__ = ("method", "path", "query", "headers", "host", "client", "invocation_id", "_environ", "_params")

    def __init__(self, environ):
        self.method = environ["REQUEST_METHOD"]
        self.path = environ.get("PATH_INFO", "/")
        self.query = environ.get("QUERY_STRING", "")
        self.headers = {key[5:].lower().replace("_", "-"): value for key, value in environ.items()
                        if key.startswith("HTTP_")}
        self.host = HOST
        self.client = None
        self.invocation_id = ""
        self._params = None

    @property
    def query_params(self):
        if self._params is None:
            params = {}
            for pair in self.query.split("&"):
                if pair:
                    name, _, value = pair.partition("=")
                    params[name] = value
            self._params = params
        return self._params


def application(environ, start_response):
    result = handle(Request(environ))
    if isinstance(result, str):
        body, headers = result.encode("utf-8"), _TEXT
    else:
        body, headers = json.dumps(result, separators=(",", ":"), ensure_ascii=False).encode("utf-8"), _JSON
    start_response("200 OK", headers + [("content-length", str(len(body)))])
    return [body]
