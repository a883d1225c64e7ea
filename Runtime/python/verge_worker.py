"""Starts a Python worker of Verge.

The host runs `python3 -I -S verge_worker.py` in the bundle directory with the worker channel at fd 3 (see
Runtime/PROTOCOL.md). This script stays tiny because a script is compiled on every start, unlike modules.
"""

import os
import sys


def main():
    # Nothing but the channel and stdio belongs to a worker: before a line of the function runs, close any
    # descriptor that survived exec (inheritable). Python's own descriptors are never inheritable (PEP 446).
    channel = int(os.environ.get("VERGE_FD", "3"))
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > max(channel, 2):
            try:
                if os.get_inheritable(fd):
                    os.close(fd)
            except OSError:
                pass
    bundle_dir = os.environ.get("VERGE_BUNDLE_DIR") or os.getcwd()
    # -I leaves both the runtime and the bundle off the import path; the runtime comes first so a bundle
    # cannot shadow the `verge` package.
    sys.path[:0] = [os.path.dirname(os.path.abspath(__file__)), bundle_dir]
    from verge._worker import main as run

    return run(bundle_dir, os.environ)


if __name__ == "__main__":
    sys.exit(main())
