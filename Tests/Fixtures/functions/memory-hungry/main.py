"""Holds `?mb=N` MiB (every page touched) during the call and reports the process's own high-water mark of
resident memory (VmHWM from /proc/self/status, bytes), so tests can compare it with the usage record's
`memory_peak_bytes`."""


def vm_hwm_bytes():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def handle(request):
    size = int(request.query_params.get("mb", "200")) * 1024 * 1024
    block = bytearray(size)
    for offset in range(0, size, 4096):
        block[offset] = 1
    peak = vm_hwm_bytes()
    del block
    return {"vm_hwm_bytes": peak}
