"""A busy loop past the function's CPU time limit (300 ms per call, far below its 10 s deadline)."""


def handle(request):
    n = 0
    while True:
        n += 1
