"""Answers what HTTP forbids or cannot carry, chosen by ?case=NAME, to test that the host keeps every other
exchange intact. It replaces the runtime's response checks so its answers reach the host unfiltered, as a
hostile function could by writing its own frames.

Cases: 204-body, 205-body, 304-body, 1xx, head-body (any body; call it with HEAD), framing (content-length and
transfer-encoding of its own), crlf (CR/LF in a header value), bad-name (a space in a header name), huge-header
(one 100 KiB header), many-headers (1000 headers), slow-after-bad-head (CR/LF in a value, then a body that takes
20 s to stream), length-more / length-fewer (a head that announces 3 or 1000 body bytes, then the 56-byte body),
ok (a plain 200 "fine")."""

import time

import verge._worker as _worker
from verge import Response

MARKER = "HOSTILE-BYTES-" * 4


def _unchecked_prepare(result):
    headers = [[name, value] for name, value in result.headers]
    if isinstance(result.body, (str, bytes)):
        body = result.body.encode("utf-8") if isinstance(result.body, str) else result.body
        return result.status, headers, body, "text/plain"
    return result.status, headers, iter(result.body), None


_worker.prepare = _unchecked_prepare
_encode_response_head = _worker.encode_response_head


def _announcing_response_head(status, headers, body_length=None):
    """The head with the body length an `x-announce` header names instead of the true one."""
    announced = [value for name, value in headers if name == "x-announce"]
    if announced:
        headers = [pair for pair in headers if pair[0] != "x-announce"]
        body_length = int(announced[0])
    return _encode_response_head(status, headers, body_length)


_worker.encode_response_head = _announcing_response_head


def handle(request):
    case = request.query_params.get("case", "ok")
    if case == "204-body":
        return Response(MARKER, status=204, headers=[])
    if case == "205-body":
        return Response(MARKER, status=205, headers=[])
    if case == "304-body":
        return Response(MARKER, status=304, headers=[["etag", '"x"']])
    if case == "1xx":
        return Response(MARKER, status=103, headers=[["link", "</a>; rel=preload"]])
    if case == "head-body":
        return Response(MARKER, status=200, headers=[["content-type", "text/plain"]])
    if case == "framing":
        return Response(MARKER, status=200, headers=[
            ["content-length", "3"], ["transfer-encoding", "chunked"], ["connection", "close"],
            ["Content-Length", "1000"]])
    if case == "crlf":
        return Response(MARKER, status=200, headers=[["x-note", "a\r\nx-injected: 1\r\n\r\n" + MARKER]])
    if case == "bad-name":
        return Response(MARKER, status=200, headers=[["x bad", "1"]])
    if case == "huge-header":
        return Response(MARKER, status=200, headers=[["x-huge", "h" * 100 * 1024]])
    if case == "many-headers":
        return Response(MARKER, status=200, headers=[[f"x-h{index}", "1"] for index in range(1000)])
    if case == "slow-after-bad-head":
        def slowly():
            for _ in range(40):
                time.sleep(0.5)
                yield MARKER
        return Response(slowly(), status=200, headers=[["x-note", "a\r\nb"]])
    if case == "length-more":
        return Response(MARKER, status=200, headers=[["x-announce", "3"]])
    if case == "length-fewer":
        return Response(MARKER, status=200, headers=[["x-announce", "1000"]])
    return Response("fine", status=200, headers=[["content-type", "text/plain"]])
