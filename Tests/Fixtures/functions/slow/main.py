"""Sleeps ?ms=N milliseconds (default 60000) before answering; its manifest allows 1000 ms."""

import time


def handle(request):
    ms = int(request.query_params.get("ms", "60000"))
    print(f"sleeping {ms} ms")
    time.sleep(ms / 1000)
    return "done"
