#!/usr/bin/env bash
# What the sandbox costs, measured in one run against the same cluster without it (--isolation none) and against
# the raw process starts it wraps: cold start from zero, warm throughput, memory per warm worker, and the host's
# memory with many deployed, idle functions. Prints a markdown report and writes it to $OUT.
#
#   Samples/bench/sandbox.sh
#   COLD_RUNS=50 DURATION=30s IDLE_FUNCTIONS=1000 Samples/bench/sandbox.sh
#
# Needs root (sandboxes do). Settings (environment): PYTHON, COLD_RUNS, DURATION, WARMUP, CONNECTIONS, THREADS,
# WARM_ROUNDS, IDLE_FUNCTIONS, BUILD, OUT. See README.md here.
set -euo pipefail

# shellcheck source=Samples/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

load_settings
COLD_RUNS=${COLD_RUNS:-20}
WARM_ROUNDS=${WARM_ROUNDS:-3}
IDLE_FUNCTIONS=${IDLE_FUNCTIONS:-1000}
BUILD=${BUILD:-1}
OUT=${OUT:-Samples/bench/sandbox-results-$(date -u +%Y-%m-%d-%H%M).md}

(($(id -u) == 0)) || die "run as root: a sandboxed host needs root"
[[ $COLD_RUNS =~ ^[1-9][0-9]*$ && $IDLE_FUNCTIONS =~ ^[1-9][0-9]*$ && $WARM_ROUNDS =~ ^[1-9][0-9]*$ ]] ||
    die "COLD_RUNS, WARM_ROUNDS and IDLE_FUNCTIONS are counts"

step "installing tools"
need_tools wrk=wrk hyperfine=hyperfine curl=curl jq=jq bwrap=bubblewrap
scripts/install-deps
build_release

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)

make_work verge-sandbox-bench

# One host, fra, so every number is one host's.
CONFIG=$WORK/cluster.json
echo '{"hosts":[{"name":"fra","location":{"latitude":50.11,"longitude":8.68}}]}' >"$CONFIG"

# cluster NAME ISOLATION IDLE_TIMEOUT: `verge dev` with the one host fra, its data in $WORK/NAME (start_cluster).
cluster() {
    start_cluster "$1" --config "$CONFIG" --data "$WORK/$1" --isolation "$2" --idle-timeout "$3" --python "$PYTHON"
}

deploy() {
    "$VERGE" deploy "$ROOT/Functions/$1" --api "$API" >/dev/null 2>"$WORK/deploy.err" ||
        { cat "$WORK/deploy.err" >&2; die "cannot deploy $1"; }
}

# workers FUNCTION: fra's live workers of FUNCTION (host-side pids), one per line.
workers() {
    "$VERGE" hosts --api "$API" --format json |
        jq -r --arg f "$1" '.[] | select(.name == "fra") | .functions[] | select(.name == $f) | .worker_pids[]'
}

# stats FILE: "median p90" of the numbers in FILE (nearest rank).
stats() {
    sort -n "$1" | awk '{ v[NR] = $1 } END {
        m = v[int((NR + 1) / 2)]; p = v[int(NR * 0.9 + 0.999)]; if (p == "") p = v[NR]; printf "%.2f %.2f\n", m, p }'
}

# rss_kib PID…: the resident memory of the processes, summed, in KiB.
rss_kib() {
    local total=0 pid kib
    for pid in "$@"; do
        kib=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
        total=$((total + ${kib:-0}))
    done
    echo "$total"
}

# sandbox_processes PID: every process in the worker's own cgroup (v1 pids hierarchy, or v2) when it has one
# (a sandboxed worker), else PID alone.
sandbox_processes() {
    local path
    path=$(awk -F: '$2 == "pids" || $2 == "" { print $3; exit }' "/proc/$1/cgroup")
    for base in /sys/fs/cgroup/pids /sys/fs/cgroup; do
        if [[ $path == */verge/* && -f $base$path/cgroup.procs ]]; then
            cat "$base$path/cgroup.procs"
            return
        fi
    done
    echo "$1"
}

# worker_memory_kib PID: memory the worker's cgroup is charged (v1 memory.usage_in_bytes, v2 memory.current).
worker_memory_kib() {
    local path
    path=$(awk -F: '$2 == "memory" { print $3; exit }' "/proc/$1/cgroup")
    if [[ -n $path && -f /sys/fs/cgroup/memory$path/memory.usage_in_bytes ]]; then
        echo $(($(cat "/sys/fs/cgroup/memory$path/memory.usage_in_bytes") / 1024))
    else
        echo "-"
    fi
}

declare -A COLD_MEDIAN COLD_P90 RPS P50 P99 RSS CGMEM CPU_US

# ---------------------------------------------------------------------------------------------------------------
step "cold start from zero, with and without the sandbox ($COLD_RUNS runs each)"
for isolation in sandbox none; do
    cluster "cold-$isolation" "$isolation" 0.2
    deploy hello
    deploy hello-swift
    for function in hello hello-swift; do
        : >"$WORK/cold-$isolation-$function"
        runs=0
        while ((runs < COLD_RUNS)); do
            waited=$SECONDS
            while [[ -n $(workers "$function") ]]; do
                ((SECONDS - waited < 30)) || die "$function kept a worker for 30 s"
                sleep 0.05
            done
            timing=$(curl -sS -D - -o /dev/null "$FRA/$function" | tr -d '\r' | sed -n 's/^server-timing: //Ip')
            cold=$(grep -o 'cold;dur=[0-9.]*' <<<"$timing" | cut -d= -f2 || true)
            [[ -n $cold ]] || continue
            echo "$cold" >>"$WORK/cold-$isolation-$function"
            runs=$((runs + 1))
        done
        read -r COLD_MEDIAN[$isolation-$function] COLD_P90[$isolation-$function] < <(stats "$WORK/cold-$isolation-$function")
        note "$isolation $function: median ${COLD_MEDIAN[$isolation-$function]} ms, p90 ${COLD_P90[$isolation-$function]} ms"
    done
    stop_cluster
done

# ---------------------------------------------------------------------------------------------------------------
# Right after the cold starts, so the ratio compares numbers taken under the same load of the machine.
step "process-start baselines (hyperfine, $COLD_RUNS runs)"
SWIFT_BINARY=$(find "$WORK/cold-sandbox/hosts/fra/bundles" -path "*/bin/hello-swift" -type f | head -n 1)
[[ -x $SWIFT_BINARY ]] || die "no built hello-swift binary in the host's bundle cache"
BWRAP_ARGS=(--unshare-all --die-with-parent --new-session --ro-bind /usr /usr --symlink usr/lib /lib
    --symlink usr/lib64 /lib64 --symlink usr/bin /bin --proc /proc --dev /dev --tmpfs /tmp)
hyperfine_ms() {
    local name=$1
    shift
    hyperfine --warmup 3 --runs "$COLD_RUNS" --style basic --export-json "$WORK/hf-$name.json" "$@" >&2
    jq -r '.results[0] | "\(.median * 1000) \(.times | sort | .[(length * 0.9 | ceil) - 1] * 1000)"' \
        "$WORK/hf-$name.json" | awk '{ printf "%.2f %.2f\n", $1, $2 }'
}
read -r BWRAP_MEDIAN BWRAP_P90 < <(hyperfine_ms bwrap -N -- "bwrap ${BWRAP_ARGS[*]} /usr/bin/true")
read -r SWIFT_MEDIAN SWIFT_P90 < <(hyperfine_ms swift \
    "VERGE_FD=3 VERGE_PROTOCOL=1 $SWIFT_BINARY 3<>/dev/null")
read -r PYTHON_MEDIAN PYTHON_P90 < <(hyperfine_ms python -N -- "$PYTHON -I -S -c pass")
note "bwrap … /usr/bin/true ${BWRAP_MEDIAN} ms, hello-swift alone ${SWIFT_MEDIAN} ms, $PYTHON -I -S ${PYTHON_MEDIAN} ms"

# ---------------------------------------------------------------------------------------------------------------
step "warm throughput straight at the host (wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $WARM_ROUNDS rounds), memory per warm worker"
CLOCK_TICK=$(getconf CLK_TCK)
# The two isolations take turns WARM_ROUNDS times, each with a cluster of its own, so a change in the machine's load
# falls on both; the report gives each figure's median over the rounds.
declare -A ROUND_RPS ROUND_P50 ROUND_P99 ROUND_CPU
for round in $(seq 1 "$WARM_ROUNDS"); do
    for isolation in sandbox none; do
        cluster "warm-$isolation-$round" "$isolation" 3600
        deploy hello
        deploy hello-swift
        for function in hello hello-swift; do
            curl -fsS -o /dev/null "$FRA/$function" || die "$function does not answer"
            wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" "$FRA/$function" >/dev/null
            # CPU of the cluster process and of every process in the workers' cgroups over the measured run.
            before=$(awk '{ print $14 + $15 }' "/proc/$CLUSTER_PID/stat")
            wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$FRA/$function" >"$WORK/wrk-$isolation-$function"
            after=$(awk '{ print $14 + $15 }' "/proc/$CLUSTER_PID/stat")
            RPS[$isolation-$function]=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$WORK/wrk-$isolation-$function")
            P50[$isolation-$function]=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$WORK/wrk-$isolation-$function")" 2)
            P99[$isolation-$function]=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$WORK/wrk-$isolation-$function")" 2)
            requests=$(awk '/requests in/ { print $1 }' "$WORK/wrk-$isolation-$function")
            CPU_US[$isolation-$function]=$(awk -v t=$((after - before)) -v hz="$CLOCK_TICK" -v n="$requests" \
                'BEGIN { printf "%.0f", t / hz * 1e6 / n }')
            mapfile -t pids < <(workers "$function")
            ((${#pids[@]} > 0)) || die "no warm worker of $function after the load"
            processes=()
            for pid in "${pids[@]}"; do mapfile -t -O "${#processes[@]}" processes < <(sandbox_processes "$pid"); done
            RSS[$isolation-$function]=$(($(rss_kib "${processes[@]}") / ${#pids[@]}))
            CGMEM[$isolation-$function]=$([[ $isolation == sandbox ]] && worker_memory_kib "${pids[0]}" || echo "-")
            note "round $round, $isolation $function: ${RPS[$isolation-$function]} req/s, p50 ${P50[$isolation-$function]} ms, p99 ${P99[$isolation-$function]} ms, host CPU ${CPU_US[$isolation-$function]} µs/request, ${#pids[@]} workers, RSS ${RSS[$isolation-$function]} KiB each"
            key=$isolation-$function
            ROUND_RPS[$key]="${ROUND_RPS[$key]:-} ${RPS[$key]}"
            ROUND_P50[$key]="${ROUND_P50[$key]:-} ${P50[$key]}"
            ROUND_P99[$key]="${ROUND_P99[$key]:-} ${P99[$key]}"
            ROUND_CPU[$key]="${ROUND_CPU[$key]:-} ${CPU_US[$key]}"
        done
        stop_cluster
    done
done
for key in "${!ROUND_RPS[@]}"; do
    # shellcheck disable=SC2086 # the lists are space-separated numbers
    RPS[$key]=$(median ${ROUND_RPS[$key]}) P50[$key]=$(median ${ROUND_P50[$key]}) \
        P99[$key]=$(median ${ROUND_P99[$key]}) CPU_US[$key]=$(median ${ROUND_CPU[$key]})
done

# ---------------------------------------------------------------------------------------------------------------
step "host memory with $IDLE_FUNCTIONS deployed, idle functions"
# Deploying this many functions is far above the API's default write rate for one token.
echo '{"hosts":[{"name":"fra","location":{"latitude":50.11,"longitude":8.68}}],"write_rate_per_s":1000,"write_burst":1000}' \
    >"$CONFIG"
cluster idle sandbox 300
sleep 1
RSS_BEFORE=$(rss_kib "$CLUSTER_PID")
mkdir -p "$WORK/functions"
for i in $(seq 1 "$IDLE_FUNCTIONS"); do
    mkdir -p "$WORK/functions/idle-$i"
    printf '{"name":"idle-%d","runtime":"python","entry":"main.py"}\n' "$i" >"$WORK/functions/idle-$i/verge.json"
    printf 'def handle(request):\n    return "idle %d"\n' "$i" >"$WORK/functions/idle-$i/main.py"
done
seq 1 "$IDLE_FUNCTIONS" | xargs -P 4 -I{} "$VERGE" deploy "$WORK/functions/idle-{}" --api "$API" --no-wait \
    >/dev/null 2>"$WORK/deploy.err" || { tail -n 5 "$WORK/deploy.err" >&2; die "deploying the idle functions failed"; }
waited=$SECONDS
until [[ $("$VERGE" hosts --api "$API" --format json | jq '.[] | select(.name == "fra") | .functions | length') \
    == "$IDLE_FUNCTIONS" ]]; do
    ((SECONDS - waited < 600)) || die "fra did not install $IDLE_FUNCTIONS functions within 600 s"
    sleep 0.5
done
sleep 2
RSS_AFTER=$(rss_kib "$CLUSTER_PID")
LIVE_WORKERS=$("$VERGE" hosts --api "$API" --format json | jq '.[] | select(.name == "fra") | .warm_workers')
curl -fsS -o /dev/null "$FRA/idle-1" || die "an idle function does not answer"
stop_cluster
note "verge dev RSS ${RSS_BEFORE} KiB → ${RSS_AFTER} KiB with $IDLE_FUNCTIONS functions ($LIVE_WORKERS worker processes)"

# ---------------------------------------------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
{
    echo "# Sandbox benchmark — $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(uname -r)"
    echo
    echo "One host (fra) in \`verge dev\`, release build of $COMMIT, Python \`$PYTHON\`; load average before: $LOAD_BEFORE."
    echo
    echo "## Cold start from zero (spawn → ready, \`server-timing: cold\`; $COLD_RUNS runs)"
    echo
    echo "| Function | sandbox median | sandbox p90 | none median | none p90 | sandbox / none |"
    echo "|---|---:|---:|---:|---:|---:|"
    for f in hello hello-swift; do
        echo "| $f | ${COLD_MEDIAN[sandbox-$f]} ms | ${COLD_P90[sandbox-$f]} ms | ${COLD_MEDIAN[none-$f]} ms | ${COLD_P90[none-$f]} ms | $(ratio "${COLD_MEDIAN[sandbox-$f]}" "${COLD_MEDIAN[none-$f]}") |"
    done
    echo
    echo "| Baseline (hyperfine) | median | p90 |"
    echo "|---|---:|---:|"
    echo "| \`bwrap --unshare-all … /usr/bin/true\` | $BWRAP_MEDIAN ms | $BWRAP_P90 ms |"
    echo "| hello-swift binary alone (start, ready, EOF, exit; shell subtracted) | $SWIFT_MEDIAN ms | $SWIFT_P90 ms |"
    echo "| \`$PYTHON -I -S -c pass\` | $PYTHON_MEDIAN ms | $PYTHON_P90 ms |"
    echo
    goal=$(awk -v b="$BWRAP_MEDIAN" -v s="$SWIFT_MEDIAN" 'BEGIN { printf "%.2f", b + s }')
    echo "Sandboxed hello-swift cold start / (bwrap start + bare start) = ${COLD_MEDIAN[sandbox-hello-swift]} / $goal" \
        "= **$(ratio "${COLD_MEDIAN[sandbox-hello-swift]}" "$goal")** (goal ≤ 1.2)."
    echo
    echo "## Warm throughput straight at the host (\`wrk -t$THREADS -c$CONNECTIONS -d$DURATION\`, medians of $WARM_ROUNDS alternating rounds)"
    echo
    echo "| Function | isolation | req/s | p50 | p99 | cluster CPU µs/request | RSS per worker | cgroup memory per worker |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|"
    for f in hello hello-swift; do
        for i in sandbox none; do
            echo "| $f | $i | ${RPS[$i-$f]} | ${P50[$i-$f]} ms | ${P99[$i-$f]} ms | ${CPU_US[$i-$f]} | ${RSS[$i-$f]} KiB | ${CGMEM[$i-$f]} KiB |"
        done
        echo "| $f | sandbox / none | $(ratio "${RPS[sandbox-$f]}" "${RPS[none-$f]}") | | | | | |"
    done
    echo
    echo "Requests/s per round, sandbox | none: $(for f in hello hello-swift; do printf '%s%s |%s' "$f" "${ROUND_RPS[sandbox-$f]}" "${ROUND_RPS[none-$f]}"; [[ $f == hello ]] && printf '; '; done)."
    echo
    echo "RSS per worker sums every process of a worker (sandboxed: the outer bubblewrap, its init and the worker), last round."
    echo
    echo "## Host memory with $IDLE_FUNCTIONS deployed, idle functions"
    echo
    echo "\`verge dev\` (control plane, gateway, one host): ${RSS_BEFORE} KiB before, ${RSS_AFTER} KiB after;" \
        "$(awk -v a="$RSS_AFTER" -v b="$RSS_BEFORE" -v n="$IDLE_FUNCTIONS" 'BEGIN { printf "%.1f", (a - b) / n }') KiB per" \
        "function; $LIVE_WORKERS worker processes (every function at zero)."
    echo
    echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
} | tee "$OUT"
