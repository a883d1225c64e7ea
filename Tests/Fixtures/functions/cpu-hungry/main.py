"""Burns `?ms=N` milliseconds of CPU time and reports the CPU time the process measured itself (user + system,
from getrusage), so tests can compare it with the usage record's `cpu_us`."""

import resource


def cpu_us():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return int((usage.ru_utime + usage.ru_stime) * 1_000_000)


def handle(request):
    wanted_us = int(request.query_params.get("ms", "300")) * 1000
    start = cpu_us()
    x = 0
    while cpu_us() - start < wanted_us:
        for i in range(20_000):
            x = (x * 31 + i) % 1_000_003
    return {"cpu_us": cpu_us() - start, "x": x}
