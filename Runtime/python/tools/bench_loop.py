"""Per-call cost of the Python worker's loop: decode, dispatch, encode, with the channel's system calls.

    python3 -I -S Runtime/python/tools/bench_loop.py [--calls N] [--profile] [--bundle DIR] [--python EXE]
        [--wrap "strace -c -o FILE"] [--instructions] [--executable FILE]

Runs the worker's real `main` in this process against a socket pair: a feeder thread plays the host (writes
`request_head` + `request_end` for each call, the same head the host writes for `Functions/hello` called
directly, and reads the response through `response_end`) while the worker serves. It prints the wall time and the
worker's CPU time per call; `--wrap` runs the worker under a command such as strace; `--instructions` counts the instructions per call
with valgrind (repeatable where time is not; use --calls 2000 or so); `--profile` runs the worker under cProfile and prints the top functions.
`--executable` measures a compiled worker instead (a Swift function's binary, e.g.
`Functions/hello-swift/.build/release/hello-swift` after `swift build -c release` there) with the same requests.

"""

import os
import socket
import sys
import threading
import time

RUNTIME_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_ROOT = os.path.dirname(os.path.dirname(RUNTIME_DIR))
sys.path.insert(0, RUNTIME_DIR)

REQUEST_HEAD, REQUEST_END = 0x10, 0x12
RESPONSE_END, INVOCATION_ERROR = 0x22, 0x23

# What the host sends for `GET /hello` from wrk, straight at the host (no client location).
HEAD = (
    b'{"deadline_ms":1700000010000,"function":{"name":"hello","tenant":"default","version":"v1"},'
    b'"headers":[["host","127.0.0.1:8080"]],"host":{"latitude":50.11,"longitude":8.68,"name":"fra"},'
    b'"invocation_id":"0193a6f0-7c1e-7d43-9a51-3f0c2b8e1d2a","method":"GET","path":"\\/hello","query":""}'
)


def frame(kind, payload=b""):
    return (len(payload) + 1).to_bytes(4, "big") + bytes([kind]) + payload


def feeder(sock, calls, done):
    request = frame(REQUEST_HEAD, HEAD) + frame(REQUEST_END)
    buffer = bytearray()
    end = frame(RESPONSE_END)
    sock.recv(1 << 16)  # ready
    for _ in range(calls):
        sock.sendall(request)
        while True:
            data = sock.recv(1 << 16)
            if not data:
                raise SystemExit("worker closed the channel")
            buffer += data
            if buffer.endswith(end):
                break
            if INVOCATION_ERROR in buffer[4:5]:
                raise SystemExit(f"invocation_error: {bytes(buffer)!r}")
        buffer.clear()
    sock.shutdown(socket.SHUT_WR)
    done.append(time.perf_counter())


def spawn_worker(bundle, python, wrapper=(), executable=None):
    """The worker exactly as the host starts it, with our end of a socket pair as its channel at fd 3: the Python
    runtime with `python`, or the compiled worker `executable`."""
    import subprocess

    host_end, worker_end = socket.socketpair()
    fd = worker_end.fileno()

    def place_channel_at_fd_3():
        if fd == 3:
            os.set_inheritable(3, True)
        else:
            os.dup2(fd, 3)

    env = {"VERGE_FD": "3", "VERGE_PROTOCOL": "1", "VERGE_BUNDLE_DIR": bundle, "VERGE_ENTRY": "main.py",
           "VERGE_HANDLER": "handle"}
    command = [executable] if executable else [python, "-I", "-S", os.path.join(RUNTIME_DIR, "verge_worker.py")]
    process = subprocess.Popen([*wrapper, *command], cwd=bundle,
                               env=env, stdin=subprocess.DEVNULL, preexec_fn=place_channel_at_fd_3, close_fds=False)
    worker_end.close()
    return process, host_end


def main():
    args = sys.argv[1:]
    calls = int(args[args.index("--calls") + 1]) if "--calls" in args else 100_000
    bundle = args[args.index("--bundle") + 1] if "--bundle" in args else os.path.join(REPO_ROOT, "Functions", "hello")
    python = args[args.index("--python") + 1] if "--python" in args else sys.executable
    executable = os.path.abspath(args[args.index("--executable") + 1]) if "--executable" in args else None
    if executable and "--profile" in args:
        raise SystemExit("--profile runs the Python runtime in this process; it cannot profile --executable")
    done = []
    if "--instructions" in args:
        # Instructions executed per call, counted by valgrind (repeatable on a noisy machine): the difference
        # between two runs of different lengths, so start-up cancels out.
        import tempfile

        counts = []
        short, long = 500, 500 + calls
        for n in (short, long):
            with tempfile.NamedTemporaryFile(prefix="verge-bench-") as log:
                wrapper = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", f"--log-file={log.name}"]
                process, host_end = spawn_worker(bundle, python, wrapper, executable)
                feeder(host_end, n, done)
                assert process.wait() == 0, process.returncode
                text = open(log.name).read()
            counts.append(int(text.split("Collected : ")[1].split()[0]))
        print(f"{(counts[1] - counts[0]) / (long - short):,.0f} instructions per call (user space, valgrind)")
        return
    if "--profile" not in args:
        # The worker in a process of its own; its CPU time comes from the kernel's accounting when it exits.
        wrapper = args[args.index("--wrap") + 1].split() if "--wrap" in args else ()
        process, host_end = spawn_worker(bundle, python, wrapper, executable)
        wall0 = time.perf_counter()
        feeder(host_end, calls, done)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - wall0
        assert process.returncode == 0, process.returncode
        cpu = usage.ru_utime + usage.ru_stime
        print(f"{calls} calls: {wall / calls * 1e6:.1f} µs wall per call (round trip through a socket pair), "
              f"worker CPU {cpu / calls * 1e6:.1f} µs per call (user {usage.ru_utime / calls * 1e6:.1f}, "
              f"system {usage.ru_stime / calls * 1e6:.1f}; start-up included)")
        return

    # --profile: the worker's main in this process under cProfile, the feeder in a thread.
    import cProfile
    import pstats

    host_end, worker_end = socket.socketpair()
    os.chdir(bundle)
    environ = {"VERGE_FD": str(worker_end.fileno()), "VERGE_PROTOCOL": "1", "VERGE_BUNDLE_DIR": bundle,
               "VERGE_ENTRY": "main.py", "VERGE_HANDLER": "handle"}
    sys.path.insert(1, bundle)
    from verge._worker import main as run

    thread = threading.Thread(target=feeder, args=(host_end, calls, done))
    thread.start()
    profile = cProfile.Profile()
    status = profile.runcall(run, bundle, environ)
    thread.join()
    assert status == 0, status
    pstats.Stats(profile).sort_stats("tottime").print_stats(20)


if __name__ == "__main__":
    main()
