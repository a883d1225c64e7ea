"""Starts a Python worker of Verge.

The host runs `python3 -I -S verge_worker.py` in the bundle directory with the worker channel at fd 3 (see
Runtime/PROTOCOL.md). This script stays tiny because a script is compiled on every start, unlike modules.
"""

import os
import sys


def main():
    # Nothing but the channel and stdio belongs to a worker: close any descriptor the host may have leaked
    # before a line of the function runs (close_range, one system call).
    channel = int(os.environ.get("VERGE_FD", "3"))
    os.closerange(max(channel, 2) + 1, 1 << 20)
    bundle_dir = os.environ.get("VERGE_BUNDLE_DIR") or os.getcwd()
    # -I leaves both the runtime and the bundle off the import path; the runtime comes first so a bundle
    # cannot shadow the `verge` package.
    sys.path[:0] = [os.path.dirname(os.path.abspath(__file__)), bundle_dir]
    from verge._worker import main as run

    return run(bundle_dir, os.environ)


if __name__ == "__main__":
    sys.exit(main())
