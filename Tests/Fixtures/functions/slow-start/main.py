"""Takes 1.5 s to import (a slow cold start) and answers at once; its manifest allows 500 ms per call."""

import time

time.sleep(1.5)


def handle(request):
    return "started"
