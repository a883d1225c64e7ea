"""Kills its own worker in the middle of a call when asked with ?crash=1."""

import os
import signal

WORKER_ID = os.urandom(8).hex()


def handle(request):
    if request.query_params.get("crash") == "1":
        print(f"crashing worker {os.getpid()}")
        os.kill(os.getpid(), signal.SIGKILL)
    return {"pid": os.getpid(), "worker_id": WORKER_ID}
