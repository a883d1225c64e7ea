"""Allocates until something stops it: the worker's memory limit (64 MiB) does."""


def handle(request):
    hoard = []
    while True:
        hoard.append(bytearray(8 * 1024 * 1024))
