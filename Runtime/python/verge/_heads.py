"""The payloads of the worker protocol's head frames (Runtime/PROTOCOL.md §2): the one place that knows their
format. The worker decodes `request_head` and encodes `response_head`, `ready` and `Failure` payloads here and
nowhere else, so a change of the head format touches this module only.
"""

from verge._codec import loads

try:
    from _json import encode_basestring_ascii as _quote
except ImportError:  # an interpreter without the accelerators
    from json.encoder import py_encode_basestring_ascii as _quote

__all__ = ["decode_request_head", "default_response_head", "encode_failure", "encode_ready", "encode_response_head"]


def decode_request_head(payload):
    """The `RequestHead` in `payload` (UTF-8 JSON) as a dict; raises ValueError or TypeError when it is not a JSON
    object. The caller reads the keys it needs (a missing one raises KeyError)."""
    head = loads(payload)
    if type(head) is not dict:
        raise TypeError(f"request_head is a JSON {type(head).__name__}, not an object")
    return head


def encode_response_head(status, headers, body_length=None):
    """The `ResponseHead` payload of an int status and [name, value] pairs of str, as compact ASCII JSON;
    `body_length` (an int) when the whole body follows at once, None for a stream."""
    return _head_start(status, headers) + _head_end(body_length)


def _head_start(status, headers):
    pairs = ",".join(["[" + _quote(name) + "," + _quote(value) + "]" for name, value in headers])
    return b'{"status":%d,"headers":[%s]' % (status, pairs.encode("ascii"))


def _head_end(body_length):
    return b"}" if body_length is None else b',"body_length":%d}' % body_length


_default_starts = {}


def default_response_head(status, content_type, body_length=None):
    """`encode_response_head` of a response without headers of its own but the content type the runtime adds
    (None: no body, no header). The part before the body length is encoded once per (status, content type)."""
    start = _default_starts.get((status, content_type))
    if start is None:
        start = _head_start(status, [["content-type", content_type]] if content_type else [])
        if len(_default_starts) < 64:  # statuses are 200-599 and there are four content types: this stays small
            _default_starts[(status, content_type)] = start
    return start + _head_end(body_length)


def encode_ready(protocol, runtime):
    """The `Ready` payload."""
    return b'{"protocol":%d,"runtime":%s}' % (protocol, _quote(runtime).encode("ascii"))


def encode_failure(type_name, message):
    """The `Failure` payload of `init_error` and `invocation_error`."""
    return b'{"type":%s,"message":%s}' % (_quote(type_name).encode("ascii"), _quote(message).encode("ascii"))
