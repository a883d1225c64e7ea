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
# Settings (environment): PYTHON, DURATION, WARMUP, CONNECTIONS, THREADS, ROUNDS, FUNCTION, BUILD. Needs wrk and
# nginx (installed with apt-get when missing and running as root) and a release build (made here unless BUILD=0).
set -euo pipefail

# shellcheck source=Samples/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

load_settings
ROUNDS=${ROUNDS:-1}
FUNCTION=${FUNCTION:-hello}

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"
[[ -d Functions/$FUNCTION ]] || die "no function Functions/$FUNCTION"

step "installing the load tools (wrk, nginx)"
need_tools wrk=wrk
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || need_tools nginx=nginx-light
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

build_release

make_work verge-gateway-bench
NGINX_PID=""

# Each component is a process of its own, as nginx is: the control plane, the host fra and the gateway.
# start NAME ARGS…: runs `verge ARGS…` and waits for its ready line (start_process).
start() {
    local name=$1
    shift
    start_process "$name" "$VERGE" "$@"
}
step "starting the control plane, the host fra and the gateway (separate processes)"
start cp control-plane --api 127.0.0.1:0 --data "$WORK/cp"
API=$(sed -n 's/.* api=\([^ ]*\).*/\1/p' <<<"$READY")
export VERGE_TOKEN
VERGE_TOKEN=$(cat "$WORK/cp/admin-token")
"$VERGE" join-tokens create --role host --api "$API" >"$WORK/fra.join"
"$VERGE" join-tokens create --role gateway --api "$API" >"$WORK/gateway.join"
chmod 600 "$WORK/fra.join" "$WORK/gateway.join"
start fra host --name fra --location 50.11,8.68 --control-plane "$API" --data "$WORK/fra" \
    --idle-timeout 3600 --python "$PYTHON" --join-token-file "$WORK/fra.join"
FRA=$(sed -n 's/.* host=\([^ ]*\).*/\1/p' <<<"$READY")
start gateway gateway --bind 127.0.0.1:0 --control-plane "$API" --trusted-proxy 127.0.0.0/8 \
    --credential-file "$WORK/gateway/credential" --join-token-file "$WORK/gateway.join"
GATEWAY_PID=$PID
GATEWAY=$(sed -n 's/.* gateway=\([^ ]*\).*/\1/p' <<<"$READY")
[[ -n $API && -n $FRA && -n $GATEWAY ]] || die "cannot read the components' URLs"
"$VERGE" deploy "Functions/$FUNCTION" --api "$API" >&2 || die "deploy of $FUNCTION failed"

step "starting nginx in front of fra ($FRA) with a keep-alive upstream pool"
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
NGINX_PORT=$(free_port)
sed -i "s/listen 127.0.0.1:0;/listen 127.0.0.1:$NGINX_PORT;/" "$WORK/nginx/nginx.conf"
"$NGINX" -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" 2>"$WORK/nginx/stderr" &
NGINX_PID=$!
track "$NGINX_PID" nginx
NGINX_URL=http://127.0.0.1:$NGINX_PORT
for _ in $(seq 1 100); do curl -fsS -o /dev/null "$NGINX_URL/$FUNCTION" 2>/dev/null && break; sleep 0.05; done
curl -fsS -o /dev/null "$NGINX_URL/$FUNCTION" || die "nginx does not answer: $(cat "$WORK/nginx/stderr")"
# The gateway routes to fra once fra has learnt the gateway's proof (within two sync intervals of its start).
for _ in $(seq 1 100); do curl -fsS -o /dev/null "$GATEWAY/$FUNCTION" 2>/dev/null && break; sleep 0.05; done
curl -fsS -o /dev/null "$GATEWAY/$FUNCTION" || die "the gateway does not answer /$FUNCTION"
via=$(curl -fsS -D - -o /dev/null "$GATEWAY/$FUNCTION" | tr -d '\r' | sed -n 's/^x-verge-host: //Ip')
[[ $via == fra ]] || die "the gateway routed to '$via', not fra"

# cpu_ticks PID…: CPU time (user + system, clock ticks) the processes and their children used so far.
cpu_ticks() {
    local total=0 pid
    for pid in "$@" $(for p in "$@"; do pgrep -P "$p" || true; done); do
        [[ -r /proc/$pid/stat ]] || continue
        total=$((total + $(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat")))
    done
    echo "$total"
}

declare -A RPS P50 P99 CPU
measure() {
    local name=$1 url=$2 report=$WORK/wrk.txt pids=()
    [[ $name == verge ]] && pids=("$GATEWAY_PID")
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
    p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$report")" 2)
    p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$report")" 2)
    bad=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$report")
    [[ -z $bad ]] || die "$name: $bad non-2xx answers ($(cat "$report"))"
    if grep -q 'Socket errors' "$report"; then note "$name: $(grep 'Socket errors' "$report")"; fi
    note "round $round $name: $rps req/s, p50 $p50 ms, p99 $p99 ms${us:+, proxy CPU $us µs per request}"
    RPS[$name]="${RPS[$name]:-} $rps"
    P50[$name]="${P50[$name]:-} $p50"
    P99[$name]="${P99[$name]:-} $p99"
}

step "wrk -t$THREADS -c$CONNECTIONS -d$DURATION (after $WARMUP warm-up), $ROUNDS round(s), function $FUNCTION"
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
