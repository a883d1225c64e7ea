#!/usr/bin/env bash
# Route-decision micro-benchmark: ns per decision with HOSTS hosts (default 10,000), release build.
# Usage: Samples/bench/route-decision.sh [HOSTS] [DECISIONS]
set -euo pipefail
cd "$(dirname "$0")/../.."
swift build -c release --scratch-path .build-release --product verge-route-bench -j 2 >&2
exec .build-release/release/verge-route-bench "${1:-10000}" "${2:-1000000}"
