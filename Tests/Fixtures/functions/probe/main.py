"""Tries what a hostile function would: reports, for each attempt, whether the platform allowed it."""

import os
import signal


def attempt(action):
    try:
        action()
        return "allowed"
    except PermissionError:
        return "denied"
    except OSError as error:
        return f"error {error.errno}"


def handle(request):
    # Bundles live at DATA/bundles/TENANT/VERSION.
    bundle = os.environ["VERGE_BUNDLE_DIR"]
    params = request.query_params
    report = {
        "uid": os.getuid(),
        "gid": os.getgid(),
        "signal_host": attempt(lambda: os.kill(os.getppid(), 0)),
        "read_host_database": attempt(lambda: open(os.path.join(bundle, "..", "..", "..", "host.sqlite"), "rb").read(1)),
        "list_bundles": attempt(lambda: os.listdir(os.path.join(bundle, ".."))),
        "write_own_bundle": attempt(lambda: open(os.path.join(bundle, "main.py"), "a").close()),
    }
    if "other_bundle" in params:
        other = os.path.join(bundle, "..", params["other_bundle"], "main.py")
        report["read_other_bundle"] = attempt(lambda: open(other, "rb").read(1))
    if "other_pid" in params:
        pid = int(params["other_pid"])
        report["signal_other_worker"] = attempt(lambda: os.kill(pid, 0))
        report["read_other_environ"] = attempt(lambda: open(f"/proc/{pid}/environ", "rb").read(1))
    return report
