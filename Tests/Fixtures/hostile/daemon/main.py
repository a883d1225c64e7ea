"""Leaves a daemon behind: double fork, setsid, and a child that outlives the call by ten minutes."""

import os
import time


def handle(request):
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork() != 0:
            os._exit(0)
        for fd in range(0, 64):
            try:
                os.close(fd)
            except OSError:
                pass
        time.sleep(600)
        os._exit(0)
    os.waitpid(pid, 0)
    return {"daemon_started": True, "worker_pid": os.getpid()}
