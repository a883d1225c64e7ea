"""Holds its worker for ?ms=N milliseconds (default 5000) and answers with its pid; its manifest allows 15 s."""

import os
import time


def handle(request):
    time.sleep(int(request.query_params.get("ms", "5000")) / 1000)
    return {"pid": os.getpid()}
