"""JSON for the worker without the cost of importing `json`.

Importing `json` pulls in `re` and `enum` and adds 10-20 ms to every cold start. The C accelerators in `_json`
(the same ones `json` uses) need none of that, so the runtime drives them directly and falls back to `json`
when they are missing or when a value needs `json`'s full error reporting.
"""

__all__ = ["dumps", "loads"]

_WHITESPACE = " \t\n\r"


def _default(value):
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


class _ScannerContext:
    # The attributes `_json.make_scanner` reads, with the values `json.JSONDecoder()` uses.
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float  # "NaN", "Infinity", "-Infinity"


try:
    from _json import encode_basestring, encode_basestring_ascii, make_encoder, make_scanner

    _scan = make_scanner(_ScannerContext())
except ImportError:  # an interpreter without the accelerators
    make_encoder = _scan = None


def dumps(value, ensure_ascii=True):
    """Compact JSON text of `value`, exactly as `json.dumps(value, separators=(",", ":"), ensure_ascii=...)`
    writes it."""
    if make_encoder is None:
        import json

        return json.dumps(value, separators=(",", ":"), ensure_ascii=ensure_ascii)
    # A fresh encoder per call, as json does: its circular-reference markers are not cleaned up after an error.
    quote = encode_basestring_ascii if ensure_ascii else encode_basestring
    encode = make_encoder({}, _default, quote, None, ":", ",", False, False, True)
    return "".join(encode(value, 0))


def loads(data):
    """Decodes JSON from `str` or UTF-8 `bytes`; raises what `json.loads` raises on invalid input."""
    if _scan is not None:
        try:
            text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
            start = len(text) - len(text.lstrip(_WHITESPACE))
            value, end = _scan(text, start)
            if not text[end:].strip(_WHITESPACE):
                return value
        except (ValueError, StopIteration, AttributeError, SystemError):
            # Some interpreters' scanner reports errors through `json.decoder`, which is not imported here
            # (SystemError); json.loads below raises the proper JSONDecodeError.
            pass
    import json  # the slow path produces json's own exceptions (or decodes what the fast path does not)

    return json.loads(data)
