#!/usr/bin/env bash
# Route-decision micro-benchmark: ns per decision with HOSTS hosts (default 10,000), release build. Also times a
# MaxMind lookup in a generated city database of 20,000 networks (scripts/make-test-mmdb; set NO_MMDB=1 to skip).
# Usage: Samples/bench/route-decision.sh [HOSTS] [DECISIONS]
set -euo pipefail
cd "$(dirname "$0")/../.."
swift build -c release --scratch-path .build-release --product verge-route-bench -j 2 >&2
mmdb=""
if [ -z "${NO_MMDB:-}" ]; then
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    python3 - "$work/spec.json" <<'PY'
import json, random, sys
random.seed(1)
networks = []
for index in range(20000):
    a, b = 1 + index // 256 % 223, index % 256
    networks.append({"network": f"{a}.{b}.0.0/16", "country": "DE", "city": "Somewhere",
                     "latitude": random.uniform(-60, 70), "longitude": random.uniform(-180, 180)})
json.dump({"database_type": "Verge-Bench-City", "networks": networks}, open(sys.argv[1], "w"))
PY
    scripts/make-test-mmdb "$work/spec.json" "$work/bench.mmdb" >&2
    mmdb="$work/bench.mmdb"
fi
.build-release/release/verge-route-bench "${1:-10000}" "${2:-1000000}" $mmdb
