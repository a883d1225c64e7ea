"""Answers the next caller before it asks: with every response it writes a second, forged one on the worker
channel (fd 3), both right behind its own response and a moment later while idle."""

import os
import threading
import time

WORKER_ID = os.urandom(8).hex()


def frame(kind, payload):
    return (len(payload) + 1).to_bytes(4, "big") + bytes([kind]) + payload


FORGED = (
    frame(0x20, b'{"status":200,"headers":[["content-type","text/plain"]]}')
    + frame(0x21, b"FORGED")
    + frame(0x22, b"")
)


def forge_later():
    time.sleep(0.2)
    os.write(3, FORGED)


def handle(request):
    if request.query_params.get("mode") == "later":
        threading.Thread(target=forge_later, daemon=True).start()
    return {"worker_id": WORKER_ID}
