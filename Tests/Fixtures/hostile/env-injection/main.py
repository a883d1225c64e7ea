"""Harmless by itself: the attack is in verge.json. Its env asks the dynamic loader of every process started with it
to write a trace to /tmp/verge-env-injection.PID. Inside the sandbox that is the worker's private /tmp; a trace in
the machine's /tmp means a process outside the sandbox (the root helper, bubblewrap) ran with the function's
environment, so LD_PRELOAD, LD_LIBRARY_PATH or GCONV_PATH in a manifest would run the tenant's code there."""

import os


def handle(request):
    return {"uid": os.getuid()}
