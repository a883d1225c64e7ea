"""A small JSON API: an index document and a string-reversing endpoint."""

from verge import Response


def handle(request):
    route = route_of(request)
    if route == "/":
        if request.method != "GET":
            return method_not_allowed("GET")
        return index(request)
    if route == "/reverse":
        if request.method != "POST":
            return method_not_allowed("POST")
        return reverse(request)
    return error(404, "not_found", f"no route {request.method} {request.path}")


def index(request):
    base = "/" + request.function["name"]
    return {
        "name": request.function["name"],
        "version": request.function["version"],
        "endpoints": [
            {"method": "GET", "path": base + "/", "description": "this document"},
            {"method": "POST", "path": base + "/reverse", "description": "reverses text",
             "body": {"text": "string"}, "returns": {"reversed": "string", "length": "integer"}},
        ],
    }


def reverse(request):
    try:
        document = request.json()
    except ValueError as exc:
        return error(400, "bad_request", f"the body is not valid JSON: {exc}")
    if not isinstance(document, dict) or not isinstance(document.get("text"), str):
        return error(400, "bad_request", 'expected a JSON object like {"text": "..."}')
    text = document["text"]
    return {"reversed": text[::-1], "length": len(text)}


def route_of(request):
    """The path below the function's own prefix: "/json-api/reverse" → "/reverse"."""
    path = request.path
    prefix = "/" + request.function["name"]
    if path == prefix or path.startswith(prefix + "/"):
        path = path[len(prefix):]
    return "/" + path.strip("/")


def error(status, code, message, headers=None):
    return Response({"error": {"code": code, "message": message}}, status=status, headers=headers)


def method_not_allowed(allowed):
    return error(405, "method_not_allowed", f"use {allowed}", headers={"allow": allowed})
