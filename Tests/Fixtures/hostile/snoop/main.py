"""Reads what belongs to others: the host's secrets and data, another tenant's bundle, other processes."""

import os


def attempt_read(path):
    try:
        with open(path, "rb") as file:
            data = file.read(4096)
        return {"outcome": "read", "bytes": len(data), "text": data.decode("utf-8", "replace")}
    except OSError as error:
        return {"outcome": os.strerror(error.errno)}


def attempt_list(path):
    try:
        return {"outcome": "listed", "entries": sorted(os.listdir(path))}
    except OSError as error:
        return {"outcome": os.strerror(error.errno)}


def handle(request):
    params = request.query_params
    report = {
        "uid": os.getuid(),
        "shadow": attempt_read("/etc/shadow"),
        "passwd": attempt_read("/etc/passwd"),
        "root_home": attempt_list("/root"),
        "proc": sorted(name for name in os.listdir("/proc") if name.isdigit()),
        "proc_1_environ": attempt_read("/proc/1/environ"),
        "proc_1_cmdline": attempt_read("/proc/1/cmdline"),
        "own_environ_keys": sorted(os.environ),
        "tmp": attempt_list("/tmp"),
        # Of /usr only the runtime's view: libraries, the interpreter, locale and time zones.
        "usr_local": attempt_list("/usr/local"),
        "usr_bin": attempt_list("/usr/bin"),
        "usr_share_doc": attempt_list("/usr/share/doc"),
        "bin_sh": attempt_read("/bin/sh"),
    }
    for name in ("data_dir", "other_bundle", "host_database"):
        if name in params:
            path = params[name]
            report[name] = attempt_list(path) if name != "host_database" else attempt_read(path)
    return report
