"""Connects to every address:port given in ?targets=HOST:PORT,... and reports what happened."""

import os
import socket


def handle(request):
    report = {}
    for target in request.query_params.get("targets", "").split(","):
        if not target:
            continue
        host, _, port = target.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=1) as connection:
                connection.sendall(b"GET /v1/functions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                report[target] = "connected: " + connection.recv(64).decode("latin-1")
        except OSError as error:
            report[target] = os.strerror(error.errno) if error.errno else str(error)
    report["interfaces"] = sorted(name for _, name in socket.if_nameindex())
    return report
