"""Writes one line to its log per call."""


def handle(request):
    print(f"log line for {request.invocation_id}")
    return "ok"
