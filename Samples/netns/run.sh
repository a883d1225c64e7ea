#!/usr/bin/env bash
# Verge across real network separation: the gateway and each host (fra, iad, sin) in a network namespace of their
# own, joined to this one by veth links whose `tc netem` delay matches the host's distance from the gateway (in
# Frankfurt). Load comes from several client locations through the gateway (as a trusted CDN hop announces them:
# geo headers, or x-forwarded-for when the gateway has a GeoIP database), one host is killed with SIGKILL mid-run,
# and the report gives, per location, which hosts served it before and after the kill and every failed call.
#
#   sudo Samples/netns/run.sh                       # 12 s of load, fra killed after 5 s
#   DURATION=30 KILL_AT=10 KILL=iad CONCURRENCY=8 Samples/netns/run.sh
#   XFF_CLIENTS="berlin@81.2.69.160" GEOIP=/path/to/City.mmdb Samples/netns/run.sh   # also locate by address
#
# VERGE=PATH runs another build of verge. Needs root, iproute2 (ip, tc with netem: kernel module sch_netem) and python3; NO_NETEM=1 runs without delays where
# the kernel has no netem. Uses the release build (.build-release, built when missing).
# Exit status 0 when no idempotent call failed except those in flight on the killed host at the kill.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$(pwd)

DURATION=${DURATION:-12}
KILL_AT=${KILL_AT:-5}
KILL=${KILL:-fra}
CONCURRENCY=${CONCURRENCY:-4}
FUNCTION=${FUNCTION:-hello}
PYTHON=${PYTHON:-/usr/bin/python3}
ISOLATION=${ISOLATION:-sandbox}
GEO_CLIENTS=${GEO_CLIENTS:-"paris=48.85,2.35 newyork=40.71,-74.01 tokyo=35.68,139.69"}
XFF_CLIENTS=${XFF_CLIENTS:-}
GEOIP=${GEOIP:-}

die() {
    printf '\nnetns: %s\n' "$*" >&2
    exit 1
}
note() { printf '    %s\n' "$*" >&2; }

((EUID == 0)) || die "needs root (ip netns, tc); run it with sudo"
for tool in ip tc nsenter curl "$PYTHON"; do command -v "$tool" >/dev/null || die "$tool is not installed (apt-get install -y iproute2 python3)"; done
[[ $DURATION =~ ^[0-9]+$ && $KILL_AT =~ ^[0-9]+$ && $CONCURRENCY =~ ^[1-9][0-9]*$ ]] || die "DURATION, KILL_AT, CONCURRENCY are integers"
((KILL_AT < DURATION)) || die "KILL_AT ($KILL_AT) must come before the end of the run ($DURATION)"
[[ -z $XFF_CLIENTS || -n $GEOIP ]] || die "XFF_CLIENTS are located by address: set GEOIP to a .mmdb file"

VERGE=${VERGE:-$ROOT/.build-release/release/verge}
if [[ ! -x $VERGE ]]; then
    printf '==> building Verge in release\n' >&2
    swift build -c release --scratch-path .build-release >&2 || die "swift build -c release failed"
fi

# name, location, index (10.77.INDEX.0/24)
HOSTS=("fra 50.11,8.68 1" "iad 39.04,-77.49 2" "sin 1.35,103.82 3")
GATEWAY_LOCATION=50.11,8.68
GW_INDEX=10
P=vg$$
WORK=$(mktemp -d "${TMPDIR:-/tmp}/verge-netns.XXXXXX")
chmod 711 "$WORK"
export XDG_CONFIG_HOME=$WORK/config
FORWARD_BEFORE=$(cat /proc/sys/net/ipv4/ip_forward)
declare -A PID
NAMESPACES=()

cleanup() {
    local status=$?
    set +e
    for name in "${!PID[@]}"; do kill -TERM "${PID[$name]}" 2>/dev/null; done
    for name in "${!PID[@]}"; do
        for _ in $(seq 1 100); do kill -0 "${PID[$name]}" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "${PID[$name]}" 2>/dev/null
        wait "${PID[$name]}" 2>/dev/null
    done
    for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null; done
    echo "$FORWARD_BEFORE" >/proc/sys/net/ipv4/ip_forward
    if ((status != 0)); then
        for log in "$WORK"/*.log; do [[ -s $log ]] && { printf -- '---- %s\n' "$log"; tail -n 15 "$log"; } >&2; done
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# namespace NAME INDEX DELAY_MS: a namespace linked to this one (10.77.INDEX.1 here, .2 there), default route back
# here, and DELAY_MS of netem delay on what leaves it (so a round trip to it costs that much more).
namespace() {
    local ns=$P-$1 index=$2 delay=$3
    ip netns add "$ns"
    NAMESPACES+=("$ns")
    ip link add "$P-$index" type veth peer name eth0 netns "$ns"
    ip addr add "10.77.$index.1/24" dev "$P-$index"
    ip link set "$P-$index" up
    ip -n "$ns" addr add "10.77.$index.2/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    ip -n "$ns" route add default via "10.77.$index.1"
    if [[ -z ${NO_NETEM:-} ]]; then
        ip netns exec "$ns" tc qdisc add dev eth0 root netem delay "${delay}ms" ||
            die "tc netem failed in $ns: this kernel has no sch_netem (modprobe sch_netem), or run with NO_NETEM=1 to measure without delays"
    fi
}

# in_namespace NS COMMAND…: runs COMMAND in the network namespace NS only. (`ip netns exec` also mounts a fresh
# /sys, which hides the cgroup hierarchy a sandboxing host needs.)
in_namespace() {
    local ns=$1
    shift
    exec nsenter --net="/run/netns/$ns" -- "$@"
}

# ready NAME: waits for the `ready` line of component NAME and prints it.
ready() {
    local started=$SECONDS line
    until line=$(grep -m1 '^ready ' "$WORK/$1.out" 2>/dev/null); do
        kill -0 "${PID[$1]}" 2>/dev/null || die "$1 exited before it was ready (log below)"
        ((SECONDS - started < 60)) || die "$1 was not ready within 60 s"
        sleep 0.05
    done
    echo "$line"
}

distance_ms() { # round-trip delay for the great-circle distance between two points, light in fibre (~200 km/ms)
    "$PYTHON" - "$1" "$2" <<'EOF'
import math, sys
(a, b), (c, d) = (map(float, p.split(",")) for p in sys.argv[1:3])
a, b, c, d = map(math.radians, (a, b, c, d))
h = math.sin((c - a) / 2) ** 2 + math.cos(a) * math.cos(c) * math.sin((d - b) / 2) ** 2
km = 2 * 6371 * math.asin(math.sqrt(h))
print(max(1, round(2 * km / 200)))
EOF
}

printf '==> network: a namespace per component, netem delays by distance from the gateway\n' >&2
[[ -z ${NO_NETEM:-} ]] || note "NO_NETEM is set: NO delays are applied; routing still follows the hosts' locations"

echo 1 >/proc/sys/net/ipv4/ip_forward
namespace gw "$GW_INDEX" 1
for entry in "${HOSTS[@]}"; do
    read -r name location index <<<"$entry"
    delay=$(distance_ms "$GATEWAY_LOCATION" "$location")
    namespace "$name" "$index" "$delay"
    note "$name at $location: 10.77.$index.2, round trip from the gateway +${delay} ms"
done

printf '==> control plane (here), hosts and gateway (each in its namespace)\n' >&2
CP_PORT=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("0.0.0.0",0)); print(s.getsockname()[1])')
"$VERGE" control-plane --api "0.0.0.0:$CP_PORT" --data "$WORK/cp" >"$WORK/cp.out" 2>"$WORK/cp.log" &
PID[cp]=$!
ready cp >/dev/null
API=http://127.0.0.1:$CP_PORT
export VERGE_TOKEN
VERGE_TOKEN=$(cat "$WORK/cp/admin-token")
join_token() {
    "$VERGE" join-tokens create --role "$1" --api "$API" >"$WORK/$2.join" || die "join-tokens create failed"
    chmod 600 "$WORK/$2.join"
}
for entry in "${HOSTS[@]}"; do
    read -r name location index <<<"$entry"
    join_token host "$name"
    in_namespace "$P-$name" "$VERGE" host --name "$name" --location "$location" --bind "10.77.$index.2:8080" \
        --advertise-url "http://10.77.$index.2:8080" --control-plane "http://10.77.$index.1:$CP_PORT" \
        --data "$WORK/$name" --join-token-file "$WORK/$name.join" --python "$PYTHON" --isolation "$ISOLATION" \
        >"$WORK/$name.out" 2>"$WORK/$name.log" &
    PID[$name]=$!
done
join_token gateway gateway
geoip=()
[[ -n $GEOIP ]] && geoip=(--geoip "$GEOIP")
in_namespace "$P-gw" "$VERGE" gateway --bind "10.77.$GW_INDEX.2:8080" \
    --control-plane "http://10.77.$GW_INDEX.1:$CP_PORT" --trusted-proxy 10.77.0.0/16 \
    --default-location "$GATEWAY_LOCATION" --credential-file "$WORK/gateway/credential" \
    --join-token-file "$WORK/gateway.join" "${geoip[@]}" >"$WORK/gateway.out" 2>"$WORK/gateway.log" &
PID[gateway]=$!
for entry in "${HOSTS[@]}"; do read -r name _ <<<"$entry"; ready "$name" >/dev/null; done
ready gateway >/dev/null
"$VERGE" deploy "Functions/$FUNCTION" --api "$API" >&2 || die "deploy failed"

GATEWAY_IP=10.77.$GW_INDEX.2
# Every host serves the function (the gateway refreshes its list in the background) before the load starts.
started=$SECONDS
for spec in $GEO_CLIENTS; do
    point=${spec#*=}
    until curl -fsS -o /dev/null -H "cloudfront-viewer-latitude: ${point%,*}" \
        -H "cloudfront-viewer-longitude: ${point#*,}" "http://$GATEWAY_IP:8080/$FUNCTION"; do
        ((SECONDS - started < 30)) || die "the gateway does not serve /$FUNCTION to $spec"
        sleep 0.2
    done
done

printf '==> load: %s connection(s) per location for %s s; SIGKILL to %s after %s s\n' \
    "$CONCURRENCY" "$DURATION" "$KILL" "$KILL_AT" >&2
# shellcheck disable=SC2086
"$PYTHON" Samples/netns/load.py "$GATEWAY_IP" 8080 "$FUNCTION" "$DURATION" "$CONCURRENCY" \
    $GEO_CLIENTS $XFF_CLIENTS >"$WORK/results.json" &
LOAD=$!
sleep "$KILL_AT"
kill -KILL "${PID[$KILL]}"
wait "${PID[$KILL]}" 2>/dev/null || true
# Calls that started from here on found the host dead; those before may have been in flight on it.
KILLED_AT=$(date +%s.%N)
unset "PID[$KILL]"
note "killed $KILL"
wait "$LOAD" || die "the load generator failed"

"$PYTHON" - "$WORK/results.json" "$KILLED_AT" "$KILL" <<'EOF'
import collections, json, sys
results = json.load(open(sys.argv[1]))
killed_at, killed = float(sys.argv[2]), sys.argv[3]
by = collections.defaultdict(lambda: {"before": collections.Counter(), "after": collections.Counter(),
                                      "inflight": [], "failed": []})
for name, started, status, host, error in results:
    entry = by[name]
    phase = "before" if started < killed_at else "after"
    if status == 200:
        entry[phase][host] += 1
    elif started < killed_at:
        entry["inflight"].append(f"{status or error}")
    else:
        entry["failed"].append(f"{status or error}")
print(f"\n| location | served before the kill | served after the kill | lost in flight at the kill | failed after |")
print("|---|---|---|---:|---:|")
failed_after = 0
for name in sorted(by):
    entry = by[name]
    fmt = lambda c: ", ".join(f"{h} {n}" for h, n in sorted(c.items())) or "-"
    failed_after += len(entry["failed"])
    print(f"| {name} | {fmt(entry['before'])} | {fmt(entry['after'])} | {len(entry['inflight'])} | {len(entry['failed'])} |")
total = len(results)
print(f"\n{total} calls, {sum(len(e['inflight']) for e in by.values())} lost in flight on {killed} at the kill, "
      f"{failed_after} failed after it.")
if failed_after:
    print("failures after the kill:", sorted({f for e in by.values() for f in e["failed"]}))
sys.exit(1 if failed_after else 0)
EOF
