"""The payloads of the worker protocol's head frames (Runtime/PROTOCOL.md §2): the one place that knows their
format. The worker decodes `request_head` and encodes `response_head`, `ready` and `Failure` payloads here and
nowhere else, so a change of the head format touches this module only.
"""

from verge._codec import loads

try:
    from _json import encode_basestring_ascii as _quote
except ImportError:  # an interpreter without the accelerators
    from json.encoder import py_encode_basestring_ascii as _quote

__all__ = ["decode_request_head", "encode_failure", "encode_ready", "encode_response_head"]


def decode_request_head(payload):
    """The `RequestHead` in `payload` (UTF-8 JSON) as a dict; raises ValueError or TypeError when it is not a JSON
    object. The caller reads the keys it needs (a missing one raises KeyError)."""
    head = loads(payload)
    if type(head) is not dict:
        raise TypeError(f"request_head is a JSON {type(head).__name__}, not an object")
    return head


def encode_response_head(status, headers):
    """The `ResponseHead` payload of an int status and [name, value] pairs of str, as compact ASCII JSON."""
    pairs = ",".join(["[" + _quote(name) + "," + _quote(value) + "]" for name, value in headers])
    return b'{"status":%d,"headers":[%s]}' % (status, pairs.encode("ascii"))


def encode_ready(protocol, runtime):
    """The `Ready` payload."""
    return b'{"protocol":%d,"runtime":%s}' % (protocol, _quote(runtime).encode("ascii"))


def encode_failure(type_name, message):
    """The `Failure` payload of `init_error` and `invocation_error`."""
    return b'{"type":%s,"message":%s}' % (_quote(type_name).encode("ascii"), _quote(message).encode("ascii"))
