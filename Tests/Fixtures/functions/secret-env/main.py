"""Says which environment variables it has and, for those named in ?names=A,B, the SHA-256 of each value (null
when absent) — never a value itself, so tests can check a secret arrived without printing it anywhere."""

import hashlib
import os


def handle(request):
    names = [name for name in request.query_params.get("names", "").split(",") if name]
    return {
        "names": sorted(os.environ),
        "sha256": {
            name: hashlib.sha256(os.environ[name].encode("utf-8")).hexdigest() if name in os.environ else None
            for name in names
        },
    }
