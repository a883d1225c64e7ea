"""Opens an AF_VSOCK socket and binds ?port=N. Virtual-machine sockets are not scoped to network namespaces: a
socket here shares the port space of the whole machine and reaches the hypervisor (CID 2), whatever the sandbox's
network namespace says. Nothing is connected or sent."""

import os
import socket


def handle(request):
    port = int(request.query_params.get("port", "0"))
    report = {}
    try:
        sock = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    except OSError as error:
        report["socket"] = os.strerror(error.errno)
        return report
    report["socket"] = "created"
    with sock:
        try:
            sock.bind((socket.VMADDR_CID_ANY, port))
            report["bind"] = "bound"
        except OSError as error:
            report["bind"] = os.strerror(error.errno)
    return report
