"""Floods its logs: 2 MiB of 16 KiB lines, then 20000 empty lines, as fast as it can. Reports how long it took."""

import sys
import time


def handle(request):
    start = time.monotonic()
    line = "x" * (16 * 1024 - 1)
    for _ in range(128):
        print(line)
    for _ in range(20000):
        print()
    sys.stdout.flush()
    return {"seconds": time.monotonic() - start}
