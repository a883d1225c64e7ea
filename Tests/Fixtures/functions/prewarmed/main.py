"""Answers with its pid; its manifest starts a worker on deploy (prewarm)."""

import os


def handle(request):
    return {"pid": os.getpid()}
