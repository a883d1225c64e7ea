"""Signals everything it can: the host's pid (given in the query), then every process it may (kill -9 -1)."""

import os
import signal


def handle(request):
    report = {}
    if "host_pid" in request.query_params:
        try:
            os.kill(int(request.query_params["host_pid"]), signal.SIGKILL)
            report["host"] = "signalled"
        except OSError as error:
            report["host"] = os.strerror(error.errno)
    if request.query_params.get("all") == "1":
        try:
            os.kill(-1, signal.SIGKILL)
            report["all"] = "signalled"
        except OSError as error:
            report["all"] = os.strerror(error.errno)
    return report
