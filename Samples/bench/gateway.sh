#!/usr/bin/env bash
# The gateway hop's cost: the same host (fra) serving `hello`, measured in one run, with the control plane, the
# host and the gateway each a process of its own (as nginx is):
#   1. directly,
#   2. through the Verge gateway,
#   3. through nginx as a reverse proxy with a keep-alive upstream pool,
# each with `wrk` after a warm-up. Prints req/s, p50 and p99 per path and the gateway's ratio to nginx.
#
#   Samples/bench/gateway.sh                         # wrk -t1 -c32 -d10s after a 3 s warm-up, one round
#   ROUNDS=3 DURATION=20s Samples/bench/gateway.sh   # the three paths measured in turn, three times
#
# Settings (environment): PYTHON, DURATION, WARMUP, CONNECTIONS, THREADS, ROUNDS, FUNCTION. Needs wrk and nginx
# (installed with apt-get when missing and running as root) and a release build (made here).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$(pwd)

PYTHON=${PYTHON:-/usr/bin/python3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}
ROUNDS=${ROUNDS:-1}
FUNCTION=${FUNCTION:-hello}

note() { printf '    %s\n' "$*" >&2; }
die() {
    printf '\ngateway bench: %s\n' "$*" >&2
    exit 1
}

[[ $CONNECTIONS =~ ^[1-9][0-9]*$ && $THREADS =~ ^[1-9][0-9]*$ && $ROUNDS =~ ^[1-9][0-9]*$ ]] ||
    die "CONNECTIONS, THREADS and ROUNDS must be positive integers"
[[ $DURATION =~ ^[1-9][0-9]*[smh]?$ && $WARMUP =~ ^[1-9][0-9]*[smh]?$ ]] || die "DURATION and WARMUP look like 10s, 1m"
[[ -x $PYTHON ]] || die "PYTHON=$PYTHON is not an executable (set PYTHON to a python3 interpreter)"
[[ -d Functions/$FUNCTION ]] || die "no function Functions/$FUNCTION"

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
if ((${#missing[@]})); then
    ((EUID == 0)) || die "missing ${missing[*]}: run as root or install them (apt-get install -y ${missing[*]})"
    note "apt-get install -y ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2 ||
        die "apt-get install ${missing[*]} failed"
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

printf '==> building Verge in release\n' >&2
swift build -c release --scratch-path .build-release >&2 || die "swift build -c release failed (output above)"
VERGE=$ROOT/.build-release/release/verge
[[ -x $VERGE ]] || die "no executable at .build-release/release/verge"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/verge-gateway-bench.XXXXXX")
chmod 711 "$WORK"
export XDG_CONFIG_HOME="$WORK/config"
NGINX_PID=""
cleanup() {
    local status=$?
    set +e
    [[ -n $NGINX_PID ]] && kill -TERM "$NGINX_PID" 2>/dev/null && wait "$NGINX_PID" 2>/dev/null
    for name in gateway fra cp; do
        local pid=${PIDS[$name]:-}
        [[ -n $pid ]] || continue
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if ((status != 0)); then
        for log in "$WORK"/*.log; do [[ -s $log ]] && { printf -- '---- %s\n' "$log"; tail -n 20 "$log"; } >&2; done
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Each component is a process of its own, as nginx is: the control plane, the host fra and the gateway.
declare -A PIDS
start() { # start NAME ARGS…: runs `verge ARGS…` and waits for its ready line (left in LINE)
    local name=$1 started=$SECONDS
    shift
    "$VERGE" "$@" >"$WORK/$name.out" 2>"$WORK/$name.log" &
    PIDS[$name]=$!
    until LINE=$(grep -m1 '^ready ' "$WORK/$name.out"); do
        kill -0 "${PIDS[$name]}" 2>/dev/null || { tail -n 20 "$WORK/$name.log" >&2; die "$name exited before it was ready"; }
        ((SECONDS - started < 60)) || die "$name was not ready within 60 s"
        sleep 0.05
    done
}
printf '==> starting the control plane, the host fra and the gateway (separate processes)\n' >&2
start cp control-plane --api 127.0.0.1:0 --data "$WORK/cp"
API=$(sed -n 's/.* api=\([^ ]*\).*/\1/p' <<<"$LINE")
export VERGE_TOKEN
VERGE_TOKEN=$(cat "$WORK/cp/admin-token")
"$VERGE" join-tokens create --role host --api "$API" >"$WORK/fra.join"
"$VERGE" join-tokens create --role gateway --api "$API" >"$WORK/gateway.join"
chmod 600 "$WORK/fra.join" "$WORK/gateway.join"
start fra host --name fra --location 50.11,8.68 --control-plane "$API" --data "$WORK/fra" \
    --idle-timeout 3600 --python "$PYTHON" --join-token-file "$WORK/fra.join"
FRA=$(sed -n 's/.* host=\([^ ]*\).*/\1/p' <<<"$LINE")
start gateway gateway --bind 127.0.0.1:0 --control-plane "$API" --trusted-proxy 127.0.0.0/8 \
    --credential-file "$WORK/gateway/credential" --join-token-file "$WORK/gateway.join"
GATEWAY=$(sed -n 's/.* gateway=\([^ ]*\).*/\1/p' <<<"$LINE")
[[ -n $API && -n $FRA && -n $GATEWAY ]] || die "cannot read the components' URLs"
"$VERGE" deploy "Functions/$FUNCTION" --api "$API" >&2 || die "deploy of $FUNCTION failed"

printf '==> starting nginx in front of fra (%s) with a keep-alive upstream pool\n' "$FRA" >&2
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes auto;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    upstream fra {
        server ${FRA#http://};
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:0;
        keepalive_requests 1000000;
        location / {
            proxy_pass http://fra;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
    }
}
EOF
# nginx cannot listen on port 0 and report it: take a free port from the kernel first.
NGINX_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sed -i "s/listen 127.0.0.1:0;/listen 127.0.0.1:$NGINX_PORT;/" "$WORK/nginx/nginx.conf"
"$NGINX" -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" 2>"$WORK/nginx/stderr" &
NGINX_PID=$!
NGINX_URL=http://127.0.0.1:$NGINX_PORT
for _ in $(seq 1 100); do curl -fsS -o /dev/null "$NGINX_URL/$FUNCTION" 2>/dev/null && break; sleep 0.05; done
curl -fsS -o /dev/null "$NGINX_URL/$FUNCTION" || die "nginx does not answer: $(cat "$WORK/nginx/stderr")"
# The gateway routes to fra once fra has learnt the gateway's proof (within two sync intervals of its start).
for _ in $(seq 1 100); do curl -fsS -o /dev/null "$GATEWAY/$FUNCTION" 2>/dev/null && break; sleep 0.05; done
curl -fsS -o /dev/null "$GATEWAY/$FUNCTION" || die "the gateway does not answer /$FUNCTION"
via=$(curl -fsS -D - -o /dev/null "$GATEWAY/$FUNCTION" | tr -d '\r' | sed -n 's/^x-verge-host: //Ip')
[[ $via == fra ]] || die "the gateway routed to '$via', not fra"

# wrk's 812.00us / 1.23ms / 2.01s in milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) x = substr(v, 1, length(v) - 2) / 1000
        else if (v ~ /ms$/) x = substr(v, 1, length(v) - 2)
        else if (v ~ /s$/) x = substr(v, 1, length(v) - 1) * 1000
        else exit 1
        printf "%.2f", x
    }'
}

# cpu_ticks PID…: CPU time (user + system, clock ticks) the processes and their children used so far.
cpu_ticks() {
    local total=0 pid
    for pid in "$@" $(for p in "$@"; do pgrep -P "$p"; done); do
        [[ -r /proc/$pid/stat ]] || continue
        total=$((total + $(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat")))
    done
    echo "$total"
}

declare -A RPS P50 P99 CPU
measure() {
    local name=$1 url=$2 report=$WORK/wrk.txt pids=()
    [[ $name == verge ]] && pids=("${PIDS[gateway]}")
    [[ $name == nginx ]] && pids=("$NGINX_PID")
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" "$url" >/dev/null || die "wrk warm-up against $url failed"
    local before=0 after=0
    ((${#pids[@]})) && before=$(cpu_ticks "${pids[@]}")
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$url" >"$report" || die "wrk against $url failed"
    ((${#pids[@]})) && after=$(cpu_ticks "${pids[@]}")
    local rps p50 p99 bad requests us=""
    requests=$(awk '/requests in/ { print $1 }' "$report")
    if ((${#pids[@]})); then
        us=$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$requests" 'BEGIN { printf "%.0f", t / hz * 1e6 / n }')
        CPU[$name]="${CPU[$name]:-} $us"
    fi
    rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$report")
    p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$report")")
    p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$report")")
    bad=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$report")
    [[ -z $bad ]] || die "$name: $bad non-2xx answers ($(cat "$report"))"
    if grep -q 'Socket errors' "$report"; then note "$name: $(grep 'Socket errors' "$report")"; fi
    note "round $round $name: $rps req/s, p50 $p50 ms, p99 $p99 ms${us:+, proxy CPU $us µs per request}"
    RPS[$name]="${RPS[$name]:-} $rps"
    P50[$name]="${P50[$name]:-} $p50"
    P99[$name]="${P99[$name]:-} $p99"
}
median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

printf '==> wrk -t%s -c%s -d%s (after %s warm-up), %s round(s), function %s\n' \
    "$THREADS" "$CONNECTIONS" "$DURATION" "$WARMUP" "$ROUNDS" "$FUNCTION" >&2
for round in $(seq 1 "$ROUNDS"); do
    measure direct "$FRA/$FUNCTION"
    measure verge "$GATEWAY/$FUNCTION"
    measure nginx "$NGINX_URL/$FUNCTION"
done

printf '\n| path (%s, wrk -t%s -c%s -d%s, median of %s) | req/s | p50 ms | p99 ms | proxy CPU µs/request |\n|---|---:|---:|---:|---:|\n' \
    "$FUNCTION" "$THREADS" "$CONNECTIONS" "$DURATION" "$ROUNDS"
for name in direct verge nginx; do
    label=$name
    [[ $name == direct ]] && label="fra host directly"
    [[ $name == verge ]] && label="Verge gateway → fra"
    [[ $name == nginx ]] && label="nginx (keep-alive pool) → fra"
    printf '| %s | %s | %s | %s | %s |\n' "$label" "$(median "${RPS[$name]}")" "$(median "${P50[$name]}")" \
        "$(median "${P99[$name]}")" "$( [[ -n ${CPU[$name]:-} ]] && median "${CPU[$name]}" || echo -)"
done
awk -v v="$(median "${RPS[verge]}")" -v n="$(median "${RPS[nginx]}")" \
    -v vp="$(median "${P99[verge]}")" -v np="$(median "${P99[nginx]}")" \
    -v vc="$(median "${CPU[verge]}")" -v nc="$(median "${CPU[nginx]}")" \
    'BEGIN { printf "\nVerge gateway / nginx: %.2f x req/s, p99 %.2f ms vs %.2f ms, CPU per request %.0f µs vs %.0f µs\n", v / n, vp, np, vc, nc }'
