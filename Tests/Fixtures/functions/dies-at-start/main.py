"""Dies of a segmentation fault while being imported: the worker never sends ready nor init_error."""

import os
import signal

os.kill(os.getpid(), signal.SIGSEGV)


def handle(request):
    return "unreachable"
