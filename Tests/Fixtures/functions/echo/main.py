"""Echoes what the function saw of the request, for tests of the gateway and the host. `?pad=N` adds N bytes of
padding to the answer."""

import hashlib
import os

# Tells workers apart: inside a sandbox every worker's pid is the same (its own PID namespace).
WORKER_ID = os.urandom(8).hex()


def handle(request):
    pad = int(request.query_params.get("pad", "0"))
    return {
        "pad": "x" * pad,
        "method": request.method,
        "path": request.path,
        "query": request.query,
        "query_params": request.query_params,
        "headers": request.headers,
        "body_length": len(request.body),
        "body_sha256": hashlib.sha256(request.body).hexdigest(),
        "client": request.client,
        "host": request.host,
        "function": request.function,
        "invocation_id": request.invocation_id,
        "pid": os.getpid(),
        "worker_id": WORKER_ID,
        "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd")),
    }
