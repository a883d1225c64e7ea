#!/usr/bin/env bash
# Verge benchmark: the warm path against uWSGI (warm.sh: a host straight, sandboxed, next to uWSGI serving the
# same function), warm throughput through the gateway and straight at a host, and cold start from zero, each next
# to a baseline measured in the same run. Prints a markdown report and writes it to $OUT.
#
#   Samples/bench/run.sh                      # as root; defaults: 10 s per load run, wrk -t1 -c32, 20 cold starts
#   DURATION=30s COLD_RUNS=50 Samples/bench/run.sh
#
# Settings (environment): PYTHON, DURATION, WARMUP, CONNECTIONS, THREADS, COLD_RUNS, UWSGI_PROCESSES, BUILD, OUT. See
# README.md here.
set -euo pipefail

# shellcheck source=Samples/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

load_settings
COLD_RUNS=${COLD_RUNS:-20}
OUT=${OUT:-Samples/bench/results-$(date -u +%Y-%m-%d-%H%M).md}

# The cold-start cluster retires idle workers after this many seconds, so every measured call starts from zero.
COLD_IDLE_TIMEOUT=0.2
# Idle timeout of the warm cluster: far longer than the run, so no worker is retired under load.
WARM_IDLE_TIMEOUT=3600
# The gateway sees a client in Paris; the nearest host is fra.
PARIS=(-H "cloudfront-viewer-latitude: 48.85" -H "cloudfront-viewer-longitude: 2.35")

[[ $COLD_RUNS =~ ^[1-9][0-9]*$ ]] || die "COLD_RUNS must be a positive integer, got '$COLD_RUNS'"

make_work verge-bench
NGINX_PID=""

# ---------------------------------------------------------------------------------------------------------------
# Processes

# Processes that belong to this run: their command line, working directory or executable lies in $WORK. Workers
# run in their bundle directory under the cluster's data directory, so they show up here too.
leftovers() {
    local proc pid cmd cwd exe
    for proc in /proc/[0-9]*; do
        pid=${proc#/proc/}
        [[ $pid == "$$" || $pid == "$BASHPID" ]] && continue
        cwd=$(readlink "$proc/cwd" 2>/dev/null) || continue
        exe=$(readlink "$proc/exe" 2>/dev/null) || exe=""
        cmd=$(tr '\0' ' ' <"$proc/cmdline" 2>/dev/null) || cmd=""
        if [[ $cwd == "$WORK"* || $exe == "$WORK"* || $cmd == *"$WORK"* ]]; then echo "$pid"; fi
    done
}

# cluster NAME IDLE_TIMEOUT: `verge dev` with its default hosts (start_cluster); sets GATEWAY, API, FRA, READY_S.
cluster() {
    start_cluster "$1" --data "$WORK/$1-data" --idle-timeout "$2" --python "$PYTHON"
    note "verge dev ready in ${READY_S} s: gateway $GATEWAY, api $API, fra $FRA"
}

# stop_cluster_clean: stop_cluster (SIGTERM, a clean exit), then insist that no process of the run is left. Sets STOP_S.
stop_cluster_clean() {
    local left
    stop_cluster
    sleep 0.2
    left=$(leftovers)
    if [[ -n $left ]]; then
        ps -o pid,ppid,etime,args -p "$(paste -sd, <<<"$left")" >&2 || true
        die "processes still running after verge dev stopped (above)"
    fi
    note "verge dev stopped cleanly in ${STOP_S} s; no process of the cluster is left"
}

stop_nginx() {
    [[ -n $NGINX_PID ]] || return 0
    end_process "$NGINX_PID"
    NGINX_PID=""
}

# At exit, once the run's processes are stopped (make_work): none of them may be left.
on_exit() {
    local left
    left=$(leftovers)
    [[ -n $left ]] || return 0
    printf 'bench: processes of this run still running after cleanup:\n' >&2
    ps -o pid,ppid,etime,args -p "$(paste -sd, <<<"$left")" >&2
    return 1
}

# ---------------------------------------------------------------------------------------------------------------
# 1. Tools and the release build

step "installing the load tools"
need_tools wrk=wrk hyperfine=hyperfine curl=curl jq=jq
command -v swift >/dev/null || die "swift is not on PATH"
note "$({ wrk --version 2>&1 || true; } | head -n 1 | cut -d' ' -f1-2), $(hyperfine --version)"

build_release

START_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------------------------------------------
# 2. The warm path against uWSGI (warm.sh, with this run's settings and build); its report becomes a section here.

step "the warm path against uWSGI (Samples/bench/warm.sh)"
PYTHON=$PYTHON DURATION=$DURATION WARMUP=$WARMUP CONNECTIONS=$CONNECTIONS THREADS=$THREADS BUILD=0 \
    OUT="$WORK/warm.md" Samples/bench/warm.sh >/dev/null || die "Samples/bench/warm.sh failed (output above)"

# ---------------------------------------------------------------------------------------------------------------
# 3. Warm throughput through the gateway and straight at a host

declare -A RPS P50 P99 ERRORS
# load NAME URL [wrk options…]: a short warm-up run (workers start, connections open), then the measured run.
load() {
    local name=$1 url=$2
    shift 2
    local report=$WORK/wrk-$name.txt
    note "wrk $name: $url (warm-up $WARMUP, then $DURATION)"
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" "$@" "$url" >/dev/null || die "wrk warm-up against $url failed"
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$@" "$url" >"$report" ||
        die "wrk against $url failed"
    local rps p50 p99 non2xx sockets
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$report")
    p50=$(awk '$1 == "50%" { print $2 }' "$report")
    p99=$(awk '$1 == "99%" { print $2 }' "$report")
    [[ -n $rps && -n $p50 && -n $p99 ]] || { cat "$report" >&2; die "cannot read wrk's report for $name (above)"; }
    non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$report")
    sockets=$(sed -n 's/.*Socket errors: *//p' "$report")
    RPS[$name]=$(fmt "$rps" 0)
    P50[$name]=$(to_ms "$p50")
    P99[$name]=$(to_ms "$p99")
    ERRORS[$name]="${non2xx:-0} non-2xx${sockets:+; sockets: $sockets}"
    if [[ -n $non2xx || -n $sockets ]]; then
        note "WARNING: $name: ${ERRORS[$name]}"
        awk '/Non-2xx|Socket errors/' "$report" >&2
    fi
    note "$name: ${RPS[$name]} req/s, p50 ${P50[$name]} ms, p99 ${P99[$name]} ms"
}

# expect_fra NAME CURL_ARGS…: one call must answer 200 from fra before the load starts.
expect_fra() {
    local name=$1
    shift
    local headers=$WORK/headers-$name body host
    body=$(curl -sS --fail-with-body --max-time 30 -D "$headers" "$@") || die "$name: curl $* failed: $body"
    host=$(awk -F': *' 'tolower($1) == "x-verge-host" { print $2 }' "$headers" | tr -d '\r')
    [[ $host == fra ]] || die "$name: expected an answer from fra, got x-verge-host '$host' (body: $body)"
    grep -q 'from fra' <<<"$body" || die "$name: unexpected body: $body"
}

PEER=""
if command -v nginx >/dev/null; then
    step "peer baseline: nginx answering a fixed body"
    port=$(free_port)
    mkdir -p "$WORK/nginx"
    cat >"$WORK/nginx/nginx.conf" <<EOF
daemon off;
worker_processes auto;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    server {
        listen 127.0.0.1:$port;
        location / { default_type text/plain; return 200 "Hello from nginx!\n"; }
    }
}
EOF
    nginx -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" 2>"$WORK/nginx/stderr.log" &
    NGINX_PID=$!
    track "$NGINX_PID" nginx
    for _ in $(seq 1 100); do curl -fsS -o /dev/null "http://127.0.0.1:$port/hello" 2>/dev/null && break; sleep 0.05; done
    if curl -fsS -o /dev/null "http://127.0.0.1:$port/hello"; then
        load nginx "http://127.0.0.1:$port/hello"
        PEER=nginx
    else
        note "nginx did not answer; skipping the peer baseline ($({ cat "$WORK/nginx/stderr.log" "$WORK/nginx/error.log" 2>/dev/null || true; } | tail -n 3 | tr "\n" " "))"
    fi
    stop_nginx
else
    note "nginx is not installed: no peer baseline (apt-get install -y nginx to add one)"
fi

# idle_cpu SECONDS: CPU used while no request arrives, by verge dev (IDLE_CLUSTER, % of one core) and by each
# worker (IDLE_WORKERS: "name N%, …", busiest first). An idle cluster should use next to nothing.
idle_cpu() {
    local seconds=$1 pid hz after name
    local -A before=()
    for pid in $(leftovers); do before[$pid]=$(ticks "$pid") || true; done
    sleep "$seconds"
    hz=$(getconf CLK_TCK)
    IDLE_CLUSTER=0
    : >"$WORK/idle-workers"
    for pid in "${!before[@]}"; do
        [[ -n ${before[$pid]} ]] || continue
        after=$(ticks "$pid") || continue
        local percent
        percent=$(awk -v d=$((after - before[$pid])) -v hz="$hz" -v s="$seconds" 'BEGIN { printf "%.0f", d / hz / s * 100 }')
        if [[ $pid == "$CLUSTER_PID" ]]; then
            IDLE_CLUSTER=$percent
        else
            name=$(cat "/proc/$pid/comm" 2>/dev/null) || name=worker
            printf '%s\t%s\n' "$percent" "$name" >>"$WORK/idle-workers"
        fi
    done
    IDLE_WORKERS=$(sort -rn "$WORK/idle-workers" | awk -F'\t' '{ printf "%s%s %s%%", (NR > 1 ? ", " : ""), $2, $1 }')
    IDLE_WORKER_MAX=$(sort -rn "$WORK/idle-workers" | awk -F'\t' 'NR == 1 { print $1 } END { if (NR == 0) print 0 }')
}

step "starting the warm cluster (idle timeout ${WARM_IDLE_TIMEOUT} s)"
cluster warm "$WARM_IDLE_TIMEOUT"
WARM_READY_S=$READY_S

step "deploying Functions/hello and Functions/hello-swift"
"$VERGE" deploy Functions/hello --api "$API" >&2 || die "verge deploy Functions/hello failed"
"$VERGE" deploy Functions/hello-swift --api "$API" >&2 || die "verge deploy Functions/hello-swift failed"
SWIFT_BIN=$(swift build -c release --package-path Functions/hello-swift --show-bin-path)/hello-swift
[[ -x $SWIFT_BIN ]] || die "no hello-swift binary at $SWIFT_BIN after the deploy"

step "warm throughput: wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency"
for fn in hello hello-swift; do
    expect_fra "$fn-gateway" "${PARIS[@]}" "$GATEWAY/$fn"
    expect_fra "$fn-direct" "$FRA/$fn"
    load "$fn-gateway" "$GATEWAY/$fn" "${PARIS[@]}"
    load "$fn-direct" "$FRA/$fn"
done

step "idle CPU of the cluster after the load"
sleep 1
idle_cpu 3
note "verge dev: ${IDLE_CLUSTER}% of a core; workers: ${IDLE_WORKERS}"

step "stopping the warm cluster"
stop_cluster_clean
WARM_STOP_S=$STOP_S

# ---------------------------------------------------------------------------------------------------------------
# 4. Cold start from zero

# wait_for_zero FN: until the control plane reports no worker of FN on fra. The first sleep outlasts the idle
# timeout and one host sync, so the status read afterwards is newer than the previous call.
wait_for_zero() {
    local fn=$1 warm started=$SECONDS
    sleep 0.5
    while :; do
        warm=$("$VERGE" hosts --api "$API" --format json |
            jq --arg fn "$fn" '[.[] | select(.name == "fra") | .functions[]? | select(.name == $fn) | .warm_workers] | add // 0') ||
            die "verge hosts --api $API failed"
        ((warm == 0)) && return 0
        ((SECONDS - started < 15)) || die "fra still reports $warm warm worker(s) of $fn 15 s after the last call"
        sleep 0.1
    done
}

declare -A MISSES
# cold FN: COLD_RUNS calls, each to a host with no worker of FN; a call that finds a worker anyway is not counted.
cold() {
    local fn=$1 runs=0 attempts=0 misses=0 result code total timing init exec_ms
    local samples=$WORK/cold-$fn.tsv headers=$WORK/cold-headers
    : >"$samples"
    note "$fn: $COLD_RUNS cold starts on fra"
    while ((runs < COLD_RUNS)); do
        attempts=$((attempts + 1))
        ((attempts <= 2 * COLD_RUNS)) || die "$fn: only $runs of $attempts calls were cold starts"
        wait_for_zero "$fn"
        result=$(curl -sS --max-time 30 -o /dev/null -D "$headers" -w '%{http_code} %{time_total}' "$FRA/$fn") ||
            die "$fn: GET $FRA/$fn failed"
        code=${result% *}
        total=${result#* }
        [[ $code == 200 ]] || die "$fn: GET $FRA/$fn answered HTTP $code"
        timing=$(awk -F': *' 'tolower($1) == "server-timing" { print $2 }' "$headers" | tr -d '\r')
        init=$(sed -n 's/.*cold;dur=\([0-9.]*\).*/\1/p' <<<"$timing")
        exec_ms=$(sed -n 's/.*exec;dur=\([0-9.]*\).*/\1/p' <<<"$timing")
        [[ -n $exec_ms ]] || die "$fn: no exec duration in server-timing '$timing'"
        if [[ -z $init ]]; then
            misses=$((misses + 1))
            continue
        fi
        printf '%s\t%s\t%s\n' "$init" "$(awk -v t="$total" 'BEGIN { printf "%.3f", t * 1000 }')" "$exec_ms" >>"$samples"
        runs=$((runs + 1))
    done
    MISSES[$fn]=$misses
    note "$fn: cold init median $(pct "$samples" 1 50) ms, first request median $(pct "$samples" 2 50) ms ($misses warm hit(s) skipped)"
}

declare -A LEDGER_INIT
# ledger FN: the median init_us of the cold-start usage records the control plane collected for FN.
ledger() {
    local fn=$1 count=0 started=$SECONDS
    local records=$WORK/usage-$fn.jsonl
    while :; do
        "$VERGE" usage --api "$API" --format jsonl --function "$fn" >"$records" || die "verge usage failed"
        count=$(jq -s '[.[] | select(.cold_start)] | length' "$records")
        ((count >= COLD_RUNS)) && break
        ((SECONDS - started < 15)) || die "$fn: the control plane has $count cold-start usage records, expected $COLD_RUNS"
        sleep 0.25
    done
    jq -r 'select(.cold_start) | .init_us / 1000' "$records" >"$WORK/ledger-$fn.txt"
    LEDGER_INIT[$fn]=$(pct "$WORK/ledger-$fn.txt" 1 50)
}

step "starting the cold-start cluster (idle timeout ${COLD_IDLE_TIMEOUT} s)"
cluster cold "$COLD_IDLE_TIMEOUT"
"$VERGE" deploy Functions/hello --api "$API" >&2 || die "verge deploy Functions/hello failed"
"$VERGE" deploy Functions/hello-swift --api "$API" >&2 || die "verge deploy Functions/hello-swift failed"

step "cold starts: $COLD_RUNS per function, straight at fra"
for fn in hello hello-swift; do
    cold "$fn"
    ledger "$fn"
done

step "stopping the cold-start cluster"
stop_cluster_clean
COLD_STOP_S=$STOP_S

# ---------------------------------------------------------------------------------------------------------------
# 5. Process-start baselines (no cluster running)

# bench NAME HYPERFINE_ARGS…: median and p90 in ms of one hyperfine command.
declare -A BASE_P50 BASE_P90
bench() {
    local name=$1
    shift
    hyperfine --warmup 3 --runs "$COLD_RUNS" --style basic --export-json "$WORK/hf-$name.json" "$@" >&2 ||
        die "hyperfine $name failed"
    jq -r '.results[0].times[] * 1000' "$WORK/hf-$name.json" >"$WORK/hf-$name.txt"
    BASE_P50[$name]=$(pct "$WORK/hf-$name.txt" 1 50)
    BASE_P90[$name]=$(pct "$WORK/hf-$name.txt" 1 90)
}

step "process-start baselines (hyperfine --warmup 3 --runs $COLD_RUNS)"
# The bare interpreter, as the host starts it (-I -S), doing nothing.
bench python -N "$PYTHON -I -S -c pass"
# Each worker exactly as the host starts it, but with /dev/null as its channel: it loads its runtime (and for
# Python the function's module), writes `ready`, reads EOF and exits 0. The redirection needs a shell;
# hyperfine subtracts the time of an empty shell.
bench python-worker --shell=sh \
    "cd Functions/hello && VERGE_FD=3 VERGE_PROTOCOL=1 VERGE_BUNDLE_DIR=$ROOT/Functions/hello VERGE_ENTRY=main.py VERGE_HANDLER=handle exec $PYTHON -I -S $ROOT/Runtime/python/verge_worker.py 3<>/dev/null"
bench swift-worker --shell=sh \
    "cd Functions/hello-swift && VERGE_FD=3 VERGE_PROTOCOL=1 VERGE_BUNDLE_DIR=$ROOT/Functions/hello-swift VERGE_ENTRY=hello-swift exec $SWIFT_BIN 3<>/dev/null"

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------------------------------------------
# 6. Report

CPU=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MEM=$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
SWIFT_VERSION=$(swift --version 2>/dev/null | sed -n 's/.*Swift version \([^ ]*\).*/\1/p' | head -n 1)
PY_VERSION=$("$PYTHON" -c 'import sys; print(sys.version.split()[0])')
REPORT=$WORK/report.md
{
    echo "# Verge benchmark, $START_DATE"
    echo
    echo "Machine: $(nproc) CPU(s), ${CPU:-unknown CPU}, $MEM, Linux $(uname -r). Swift $SWIFT_VERSION, Python $PY_VERSION" \
        "($PYTHON). Load average before/after: $LOAD_BEFORE / $LOAD_AFTER."
    echo "Commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with local changes)')." \
        "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency after a $WARMUP warm-up; load generator, gateway, hosts and" \
        "workers share the machine."
    echo
    # warm.sh's report, one heading level down.
    sed 's/^#/##/' "$WORK/warm.md"
    echo
    echo "## Warm throughput"
    echo
    echo "| Target | Path | Requests/s | p50 ms | p99 ms | Errors |"
    echo "|---|---|---:|---:|---:|---|"
    for fn in hello hello-swift; do
        echo "| $fn | gateway → fra | ${RPS[$fn-gateway]} | ${P50[$fn-gateway]} | ${P99[$fn-gateway]} | ${ERRORS[$fn-gateway]} |"
        echo "| $fn | fra directly | ${RPS[$fn-direct]} | ${P50[$fn-direct]} | ${P99[$fn-direct]} | ${ERRORS[$fn-direct]} |"
    done
    if [[ -n $PEER ]]; then
        echo "| nginx (peer: fixed body, no function) | directly | ${RPS[nginx]} | ${P50[nginx]} | ${P99[nginx]} | ${ERRORS[nginx]} |"
    else
        echo "| nginx (peer) | not installed: skipped | | | | |"
    fi
    echo
    echo "| Function | Gateway / direct, requests/s | Gateway / direct, p50 | Gateway / direct, p99 |"
    echo "|---|---:|---:|---:|"
    for fn in hello hello-swift; do
        echo "| $fn | $(ratio "${RPS[$fn-gateway]}" "${RPS[$fn-direct]}") | $(ratio "${P50[$fn-gateway]}" "${P50[$fn-direct]}") | $(ratio "${P99[$fn-gateway]}" "${P99[$fn-direct]}") |"
    done
    if [[ -n $PEER ]]; then
        echo
        echo "nginx / fra directly, requests/s: hello $(ratio "${RPS[nginx]}" "${RPS[hello-direct]}"), hello-swift $(ratio "${RPS[nginx]}" "${RPS[hello-swift-direct]}")."
    fi
    echo
    echo "## Cold start from zero ($COLD_RUNS per function, GET straight at fra, idle timeout ${COLD_IDLE_TIMEOUT} s)"
    echo
    echo "| Function | Cold init median ms | Cold init p90 ms | First request median ms | First request p90 ms | Exec median ms | Usage ledger init median ms | Warm hits skipped |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    for fn in hello hello-swift; do
        s=$WORK/cold-$fn.tsv
        echo "| $fn | $(pct "$s" 1 50) | $(pct "$s" 1 90) | $(pct "$s" 2 50) | $(pct "$s" 2 90) | $(pct "$s" 3 50) | ${LEDGER_INIT[$fn]} | ${MISSES[$fn]} |"
    done
    echo
    echo "Cold init is the host's \`server-timing: cold\` (spawn to \`ready\`); first request is curl's \`time_total\`" \
        "(connect, cold start, call, response)."
    echo
    echo "## Process-start baselines (hyperfine, $COLD_RUNS runs after 3 warm-ups)"
    echo
    echo "| What | Median ms | p90 ms |"
    echo "|---|---:|---:|"
    echo "| \`python3 -I -S -c pass\` (bare interpreter) | ${BASE_P50[python]} | ${BASE_P90[python]} |"
    echo "| Python worker of hello, /dev/null as channel (runtime + main.py, ready, EOF, exit) | ${BASE_P50[python-worker]} | ${BASE_P90[python-worker]} |"
    echo "| hello-swift binary, /dev/null as channel (start, ready, EOF, exit) | ${BASE_P50[swift-worker]} | ${BASE_P90[swift-worker]} |"
    echo
    echo "| Ratio (medians) | Value |"
    echo "|---|---:|"
    echo "| hello cold init / bare Python start | $(ratio "$(pct "$WORK/cold-hello.tsv" 1 50)" "${BASE_P50[python]}") |"
    echo "| hello cold init / Python worker start | $(ratio "$(pct "$WORK/cold-hello.tsv" 1 50)" "${BASE_P50[python-worker]}") |"
    echo "| hello-swift cold init / hello-swift binary start | $(ratio "$(pct "$WORK/cold-hello-swift.tsv" 1 50)" "${BASE_P50[swift-worker]}") |"
    echo
    echo "## Cluster lifecycle"
    echo
    echo "Idle for 3 s after the load, with every worker still alive: verge dev used ${IDLE_CLUSTER}% of a core;" \
        "workers: ${IDLE_WORKERS:-none}."
    if ((IDLE_WORKER_MAX > 5)); then
        echo
        echo "**Warning:** idle workers are burning CPU, which skews every number above taken while they were alive."
    fi
    echo
    echo "\`verge dev\` ready in $WARM_READY_S s (warm cluster); stopped by SIGTERM in $WARM_STOP_S s (warm, after load)" \
        "and $COLD_STOP_S s (cold-start cluster), leaving no process behind."
} >"$REPORT"

publish_report "$REPORT"
