"""With outbound network: connects to every address:port given in ?targets=HOST:PORT,... and reports what happened
("connected: " and what the peer answered to an HTTP request, or the error), and the network interfaces it has."""

import os
import socket
from concurrent.futures import ThreadPoolExecutor


def probe(host, port):
    try:
        connection = socket.create_connection((host, port), timeout=2)
    except OSError as error:
        return os.strerror(error.errno) if error.errno else str(error)
    answer = b""
    with connection:
        try:
            connection.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
            while len(answer) < 4096:
                chunk = connection.recv(4096)
                if not chunk:
                    break
                answer += chunk
        except OSError:
            pass
    return "connected: " + answer.decode("latin-1")


def handle(request):
    targets = [target for target in request.query_params.get("targets", "").split(",") if target]
    # All at once: a blocked address costs the whole connect timeout.
    with ThreadPoolExecutor(max_workers=max(1, len(targets))) as pool:
        outcomes = pool.map(lambda target: probe(target.rpartition(":")[0], int(target.rpartition(":")[2])), targets)
        report = dict(zip(targets, outcomes))
    report["interfaces"] = sorted(name for _, name in socket.if_nameindex())
    return report
