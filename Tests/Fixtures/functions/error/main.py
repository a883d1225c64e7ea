"""Fails every call with ValueError("boom")."""

import sys


def handle(request):
    print("about to fail", file=sys.stderr)
    raise ValueError("boom")
