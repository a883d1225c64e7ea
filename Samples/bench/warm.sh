#!/usr/bin/env bash
# The warm path against uWSGI, in one run on this machine: uWSGI serving Functions/hello as a WSGI application
# (`--http11-socket`, keep-alive, and `--http-socket`, each with 2 processes) and a Verge host serving `hello`
# (Python) and `hello-swift` straight (no gateway), all under the same load. Prints a markdown table with
# requests/s, p50, p99 and the CPU time per request of each target (for Verge split into the host process's own
# share and its workers' share), the ratios against uWSGI's best mode, and writes it to $OUT.
#
#   Samples/bench/warm.sh                    # as root; about 2 minutes after the release build
#   DURATION=30s Samples/bench/warm.sh
#
# Settings (environment): PYTHON, DURATION, WARMUP, CONNECTIONS, THREADS, UWSGI_PROCESSES, ISOLATION, BUILD, PROFILE,
# OUT. See README.md here.
set -euo pipefail

# shellcheck source=Samples/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

load_settings
UWSGI_PROCESSES=${UWSGI_PROCESSES:-2}
FLOOR_WORKERS=${FLOOR_WORKERS:-4}
ISOLATION=${ISOLATION:-sandbox}
BUILD=${BUILD:-1}
# PROFILE=1: after each Verge function's measured run, one more run of the same load with `perf record` sampling
# the verge process; the report lists where its CPU time went.
PROFILE=${PROFILE:-0}
OUT=${OUT:-Samples/bench/warm-results-$(date -u +%Y-%m-%d-%H%M).md}

# The goals of the warm path (issue 7): requests/s against uWSGI's best mode, and the host's own CPU per call.
GOAL_HELLO=1.0
GOAL_SWIFT=1.5
GOAL_HOST_US=30
# What Functions/hello answers straight at fra (no gateway, so no client location); the uWSGI peer must agree.
HELLO_BODY="Hello from fra! Your location is unknown."

[[ $UWSGI_PROCESSES =~ ^[1-9][0-9]*$ ]] || die "UWSGI_PROCESSES must be a positive integer"
[[ $FLOOR_WORKERS =~ ^[1-9][0-9]?$ && $FLOOR_WORKERS -le 64 ]] || die "FLOOR_WORKERS must be 1...64"
((PROFILE == 0 || $(seconds "$DURATION") >= 3)) || die "PROFILE=1 needs a DURATION of at least 3s"
[[ $ISOLATION == sandbox || $ISOLATION == none ]] || die "ISOLATION is sandbox (the product's path) or none"
((EUID == 0)) || [[ $ISOLATION == none ]] || die "run as root: the measured path includes the worker sandbox"

make_work verge-warm
UWSGI_PID=""

stop_uwsgi() {
    [[ -n $UWSGI_PID ]] || return 0
    local pid=$UWSGI_PID
    UWSGI_PID=""
    end_process "$pid"
}

# ---------------------------------------------------------------------------------------------------------------
step "installing the load tools and the peer (wrk, uWSGI with its python3 plugin)"
need_tools wrk=wrk curl=curl jq=jq uwsgi=uwsgi-core
UWSGI_PLUGIN=/usr/lib/uwsgi/plugins/python3_plugin.so
if [[ ! -f $UWSGI_PLUGIN ]]; then
    ((EUID == 0)) || die "missing uwsgi-plugin-python3: run as root or apt-get install -y uwsgi-plugin-python3"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq uwsgi-plugin-python3 >&2 ||
        die "apt-get install uwsgi-plugin-python3 failed"
fi
[[ -f $UWSGI_PLUGIN ]] || die "no $UWSGI_PLUGIN after installing uwsgi-plugin-python3"
[[ $ISOLATION == none ]] || scripts/install-deps >&2
((PROFILE == 0)) || need_tools perf=linux-perf

# Both sides run the same Python: uWSGI embeds the libpython its plugin was built against, Verge runs $PYTHON.
PY_VERSION=$("$PYTHON" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
PY_SO=$(ldd "$UWSGI_PLUGIN" | awk '/libpython/ { print $3; exit }')
[[ -n $PY_SO ]] || die "cannot tell which libpython $UWSGI_PLUGIN uses (ldd shows none)"
PY_SO_VERSION=$(basename "$PY_SO" | sed -n 's/^libpython\([0-9]*\.[0-9]*\)\.so.*/\1/p')
[[ $PY_SO_VERSION == "${PY_VERSION%.*}" ]] ||
    die "uWSGI's python3 plugin embeds Python $PY_SO_VERSION ($PY_SO) but PYTHON=$PYTHON is $PY_VERSION:" \
        "set PYTHON to the interpreter of the same Python (Debian's /usr/bin/python3) so both sides run one Python"
PY_SO_PACKAGE=$(dpkg-query -S "$(readlink -f "$PY_SO")" 2>/dev/null | cut -d: -f1 | head -n 1 || true)
PY_SO_DEB=$([[ -n $PY_SO_PACKAGE ]] && dpkg-query -W -f='${Package} ${Version}' "$PY_SO_PACKAGE" 2>/dev/null || echo "unknown package")
# Debian's package version starts with the upstream one (3.11.2-6+deb12u6): the same release as $PYTHON's, or two
# different builds of one minor version would be compared.
PY_SO_RELEASE=$(sed -n 's/^[^ ]* \([0-9]*\.[0-9]*\.[0-9]*\).*/\1/p' <<<"$PY_SO_DEB")
[[ -z $PY_SO_RELEASE || $PY_SO_RELEASE == "$PY_VERSION" ]] ||
    die "uWSGI's python3 plugin embeds Python $PY_SO_RELEASE ($PY_SO_DEB) but PYTHON=$PYTHON is $PY_VERSION:" \
        "set PYTHON to Debian's /usr/bin/python3 so both run the same Python"
UWSGI_VERSION=$(uwsgi --version)
note "Python: Verge runs $PYTHON ($PY_VERSION); uWSGI's plugin embeds $(readlink -f "$PY_SO") ($PY_SO_DEB); uWSGI $UWSGI_VERSION"

build_release

START_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
HZ=$(getconf CLK_TCK)
note "load average before: $LOAD_BEFORE"

declare -A RPS P50 P99 REQUESTS ERRORS CPU_US HOST_US WORKER_US PROCESSES

# measure NAME URL SAMPLE_FUNCTION [closes]: warm-up, then the measured wrk run; SAMPLE_FUNCTION sets SAMPLE to the CPU
# counters ("HOST_NS WORKERS_NS") and is called right before and right after the measured run.
SAMPLE=""
measure() {
    local name=$1 url=$2 sample=$3 closes=${4:-} before after reads
    note "wrk $name: $url (warm-up $WARMUP, then $DURATION)"
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" "$url" >/dev/null || die "wrk warm-up against $url failed"
    "$sample"
    before=$SAMPLE
    RUN_START_US=$(date +%s%6N)
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$url" >"$WORK/wrk-$name.txt" || die "wrk against $url failed"
    RUN_END_US=$(date +%s%6N)
    "$sample"
    after=$SAMPLE
    read -r "RPS[$name]" "P50[$name]" "P99[$name]" "REQUESTS[$name]" "ERRORS[$name]" reads < <(wrk_numbers "$WORK/wrk-$name.txt")
    # A server that closes every connection makes wrk count one read error per response; nothing else may fail.
    [[ -n $closes ]] || ERRORS[$name]=$((ERRORS[$name] + reads))
    ((ERRORS[$name] == 0)) || { cat "$WORK/wrk-$name.txt" >&2; die "$name: ${ERRORS[$name]} errors under load (above)"; }
    read -r "HOST_US[$name]" "WORKER_US[$name]" "CPU_US[$name]" < <(awk -v b="$before" -v a="$after" -v n="${REQUESTS[$name]}" '
        BEGIN { split(b, x, " "); split(a, y, " "); h = (y[1] - x[1]) / 1000 / n; w = (y[2] - x[2]) / 1000 / n
                printf "%.1f %.1f %.1f\n", h, w, h + w }')
    note "$name: ${RPS[$name]} req/s, p50 ${P50[$name]} ms, p99 ${P99[$name]} ms, CPU ${CPU_US[$name]} µs/request" \
        "(${REQUESTS[$name]} requests)"
}

# ---------------------------------------------------------------------------------------------------------------
# uWSGI

UWSGI_PIDS=""
# uwsgi_cpu: SAMPLE="MASTER_AND_WORKERS_NS 0", the CPU time of the master and the workers it started (the same workers
# before and after: uWSGI replaced none during the run, or the numbers would not add up).
uwsgi_cpu() {
    local pids
    pids="$UWSGI_PID $(pgrep -P "$UWSGI_PID" | sort -n | tr '\n' ' ')"
    [[ -z $UWSGI_PIDS || $pids == "$UWSGI_PIDS" ]] || die "uWSGI's processes changed during the run: $UWSGI_PIDS → $pids"
    UWSGI_PIDS=$pids
    local t
    # shellcheck disable=SC2086
    t=$(ticks_sum $pids) || die "a uWSGI process exited during the run ($pids)"
    SAMPLE="$((t * 1000000000 / HZ)) 0"
}

# uwsgi_run NAME SOCKET_OPTION [closes]: uWSGI with $UWSGI_PROCESSES processes and a master serving Samples/bench/wsgi_hello.py.
uwsgi_run() {
    local name=$1 option=$2 closes=${3:-} port body started=$SECONDS
    step "uWSGI $option, $UWSGI_PROCESSES processes"
    port=$(free_port)
    uwsgi --plugin python3 "--$option" "127.0.0.1:$port" --master --processes "$UWSGI_PROCESSES" \
        --wsgi-file "$ROOT/Samples/bench/wsgi_hello.py" --need-app --disable-logging --die-on-term \
        --logto "$WORK/uwsgi-$name.log" &
    UWSGI_PID=$!
    track "$UWSGI_PID" "uwsgi-$name" uWSGI
    until body=$(curl -fsS --max-time 2 "http://127.0.0.1:$port/hello" 2>/dev/null); do
        if ! alive "$UWSGI_PID"; then
            untrack "$UWSGI_PID"
            UWSGI_PID=""
            tail -n 20 "$WORK/uwsgi-$name.log" >&2
            die "uWSGI exited (log above)"
        fi
        ((SECONDS - started < 20)) || die "uWSGI did not answer within 20 s"
        sleep 0.05
    done
    [[ $body == "$HELLO_BODY" ]] || die "uWSGI answered '$body', expected '$HELLO_BODY'"
    UWSGI_PIDS=""
    measure "$name" "http://127.0.0.1:$port/hello" uwsgi_cpu "$closes"
    PROCESSES[$name]="1 master + $(($(wc -w <<<"$UWSGI_PIDS") - 1)) workers"
    stop_uwsgi
}

uwsgi_run uwsgi-http11 http11-socket
uwsgi_run uwsgi-http http-socket closes

# ---------------------------------------------------------------------------------------------------------------
# The floor: Samples/bench/floor/relay.c does a host's socket work for each warm call and nothing else (one thread,
# epoll; no ledger, no sandbox, no validation) in front of $FLOOR_WORKERS workers of the product's own Python runtime
# running Functions/hello. No host built as Verge is (a host process relaying to worker processes) can beat it here.

RELAY_PID=""
relay_cpu() {
    local workers t w
    workers=$(pgrep -P "$RELAY_PID" | sort -n | tr '\n' ' ')
    # shellcheck disable=SC2086
    t=$(ticks "$RELAY_PID") && w=$(ticks_sum $workers) || die "the relay or one of its workers exited during the run"
    SAMPLE="$((t * 1000000000 / HZ)) $((w * 1000000000 / HZ))"
}

step "the floor: floor/relay.c with $FLOOR_WORKERS workers of the Python runtime"
need_tools cc=gcc
cc -O2 -Wall -o "$WORK/relay" "$ROOT/Samples/bench/floor/relay.c" || die "cc Samples/bench/floor/relay.c failed"
port=$(free_port)
# The environment a host gives the worker of Functions/hello (Runtime/PROTOCOL.md), and nothing else.
start_process floor env -i -C "$ROOT/Functions/hello" VERGE_FD=3 VERGE_PROTOCOL=1 \
    VERGE_BUNDLE_DIR="$ROOT/Functions/hello" VERGE_ENTRY=main.py VERGE_HANDLER=handle VERGE_FUNCTION=hello \
    GREETING=Hello LANG=C.UTF-8 HOME=/tmp PATH=/usr/bin:/bin \
    "$WORK/relay" "$port" "$FLOOR_WORKERS" hello fra -- "$PYTHON" -I -S "$ROOT/Runtime/python/verge_worker.py"
RELAY_PID=$PID
body=$(curl -fsS --max-time 5 "http://127.0.0.1:$port/hello") || die "the relay did not answer"
[[ $body == "$HELLO_BODY" ]] || die "the relay answered '$body', expected '$HELLO_BODY'"
measure floor "http://127.0.0.1:$port/hello" relay_cpu
PROCESSES[floor]="relay + $FLOOR_WORKERS workers"
end_process "$RELAY_PID"

# ---------------------------------------------------------------------------------------------------------------
# Verge

step "starting one Verge host (fra) in verge dev, isolation $ISOLATION, idle timeout 3600 s"
echo '{"hosts":[{"name":"fra","location":{"latitude":50.11,"longitude":8.68}}]}' >"$WORK/cluster.json"
start_cluster cluster --config "$WORK/cluster.json" --data "$WORK/data" --isolation "$ISOLATION" --idle-timeout 3600 \
    --python "$PYTHON"

# The workers' CPU: every worker of the host is in a cgroup under the host's own (cgroup v1 cpuacct, or v2), and
# a parent group's counter keeps the usage of children already removed. Without a sandbox there are no cgroups:
# the workers' own /proc counters are summed instead (the same workers before and after the run).
CGROUP_USAGE=""
if [[ $ISOLATION == sandbox ]]; then
    own=$(awk -F: '$2 ~ /(^|,)cpuacct(,|$)/ { print $3; exit }' "/proc/$CLUSTER_PID/cgroup")
    for dir in "/sys/fs/cgroup/cpuacct$own" "/sys/fs/cgroup/cpu,cpuacct$own"; do
        [[ -n $own && -f ${dir%/}/verge/fra-$CLUSTER_PID/cpuacct.usage ]] && CGROUP_USAGE=${dir%/}/verge/fra-$CLUSTER_PID/cpuacct.usage
    done
    if [[ -z $CGROUP_USAGE ]]; then
        own=$(awk -F: '$1 == "0" { print $3; exit }' "/proc/$CLUSTER_PID/cgroup")
        dir=/sys/fs/cgroup${own%/}/verge/fra-$CLUSTER_PID
        [[ -f $dir/cpu.stat ]] && CGROUP_USAGE=$dir/cpu.stat
    fi
    [[ -n $CGROUP_USAGE ]] || die "cannot find the host's worker cgroup (verge/fra-$CLUSTER_PID) in cpuacct or cgroup v2"
    note "workers' CPU from $CGROUP_USAGE"
fi

worker_pids() {
    "$VERGE" hosts --api "$API" --format json |
        jq -r --arg f "$1" '.[] | select(.name == "fra") | .functions[] | select(.name == $f) | .worker_pids[]'
}

WORKER_PIDS=""
# verge_cpu: SAMPLE="HOST_NS WORKERS_NS".
verge_cpu() {
    local host workers
    host=$(ticks "$CLUSTER_PID") || die "verge dev exited during the run"
    if [[ $CGROUP_USAGE == */cpuacct.usage ]]; then
        workers=$(cat "$CGROUP_USAGE") || die "cannot read $CGROUP_USAGE"
    elif [[ -n $CGROUP_USAGE ]]; then
        workers=$(awk '$1 == "usage_usec" { print $2 * 1000 }' "$CGROUP_USAGE") || die "cannot read $CGROUP_USAGE"
    else
        # shellcheck disable=SC2086
        workers=$(ticks_sum $WORKER_PIDS) || die "a worker exited during the run ($WORKER_PIDS)"
        workers=$((workers * 1000000000 / HZ))
    fi
    SAMPLE="$((host * 1000000000 / HZ)) $workers"
}

# usage_records FUNCTION FROM_US TO_US: how many usage records of successful calls of FUNCTION that started in the
# interval the control plane holds.
usage_records() {
    "$VERGE" usage --api "$API" --format jsonl --function "$1" |
        jq -c --argjson from "$2" --argjson to "$3" \
            'select(.status == "ok" and .http_status == 200 and .start_time_us >= $from and .start_time_us <= $to)' |
        wc -l
}

step "deploying Functions/hello and Functions/hello-swift"
for fn in hello hello-swift; do
    "$VERGE" deploy "Functions/$fn" --api "$API" >/dev/null 2>"$WORK/deploy.err" ||
        { cat "$WORK/deploy.err" >&2; die "verge deploy Functions/$fn failed"; }
done

for fn in hello hello-swift; do
    step "Verge host directly, $fn"
    # The measured path is the product's: one call first shows a worker answered with the call's invocation id
    # and timings.
    body=$(curl -sS --fail-with-body --max-time 30 -D "$WORK/headers-$fn" "$FRA/$fn") || die "GET $FRA/$fn failed: $body"
    header() { awk -F': *' -v n="$1" 'tolower($1) == n { sub(/\r$/, "", $2); print $2 }' "$WORK/headers-$fn"; }
    [[ -n $(header x-verge-invocation-id) ]] || die "$fn: the response has no x-verge-invocation-id header"
    [[ $(header server-timing) == *exec\;dur=* ]] || die "$fn: the response has no server-timing exec entry: '$(header server-timing)'"
    [[ $(header x-verge-host) == fra ]] || die "$fn: x-verge-host is '$(header x-verge-host)', expected fra"
    [[ $body == *"from fra"* ]] || die "$fn: unexpected body '$body'"
    [[ $fn != hello || $body == "$HELLO_BODY" ]] || die "hello answered '$body', expected '$HELLO_BODY' (as uWSGI does)"

    WORKER_PIDS=""
    wrk -t"$THREADS" -c"$CONNECTIONS" -d1s "$FRA/$fn" >/dev/null || die "wrk against $FRA/$fn failed"
    [[ -n $CGROUP_USAGE ]] || WORKER_PIDS=$(worker_pids "$fn" | tr '\n' ' ')
    measure "$fn" "$FRA/$fn" verge_cpu
    workers=$(worker_pids "$fn" | wc -l)
    PROCESSES[$fn]="verge + $workers workers"

    # Every call wrk saw completed has its usage record in the ledger, shipped to the control plane: at least as
    # many successful calls started during the measured run as wrk counted answers.
    waited=$SECONDS
    until records=$(usage_records "$fn" "$RUN_START_US" "$RUN_END_US") && ((records >= REQUESTS[$fn])); do
        ((SECONDS - waited < 60)) ||
            die "$fn: after 60 s the control plane has $records usage records of calls during the run, wrk counted ${REQUESTS[$fn]}"
        sleep 1
    done
    note "$fn: $records usage records of successful calls during the run reached the control plane (wrk counted ${REQUESTS[$fn]}); $workers workers"

    if ((PROFILE)); then
        note "$fn: profiling the verge process under the same load (perf record, $DURATION)"
        # perf samples the verge process while the load runs (it starts first and stops a second before wrk).
        perf record -q -e cpu-clock -F 999 -g -p "$CLUSTER_PID" -o "$WORK/perf-$fn.data" -- \
            sleep $(($(seconds "$DURATION") - 1)) >"$WORK/perf-$fn.err" 2>&1 &
        perf_pid=$!
        wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" "$FRA/$fn" >/dev/null || die "wrk against $FRA/$fn failed"
        wait "$perf_pid" || { cat "$WORK/perf-$fn.err" >&2; die "perf record failed (above)"; }
        # Self time per symbol, Swift names demangled; the 25 largest.
        perf report -i "$WORK/perf-$fn.data" --no-children --sort dso,symbol --stdio -g none \
            >"$WORK/perf-$fn.txt" 2>"$WORK/perf-$fn.err" || { cat "$WORK/perf-$fn.err" >&2; die "perf report failed (above)"; }
        awk '/^ +[0-9.]+%/ && n++ < 25 { sub(/ +- +- *$/, ""); print }' "$WORK/perf-$fn.txt" |
            swift demangle --simplified >"$WORK/profile-$fn.txt"
        [[ -s $WORK/profile-$fn.txt ]] || { head -n 40 "$WORK/perf-$fn.txt" >&2; die "no samples in perf's report (above)"; }
        # And by shared object: the kernel, the Swift runtime, libc, SQLite, the verge binary.
        perf report -i "$WORK/perf-$fn.data" --no-children --sort dso --stdio -g none 2>/dev/null |
            awk '/^ +[0-9.]+%/ && n++ < 10 { sub(/ +- +- *$/, ""); printf "%s%s %s", (n > 1 ? ", " : ""), $2, $1 }' \
                >"$WORK/profile-dso-$fn.txt"
    fi
done

step "stopping verge dev"
stop_cluster
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------------------------------------------
BEST=uwsgi-http11
((RPS[uwsgi-http] > RPS[uwsgi-http11])) && BEST=uwsgi-http
declare -A LABEL=(
    [uwsgi-http11]="uWSGI \`--http11-socket\` (keep-alive)"
    [uwsgi-http]="uWSGI \`--http-socket\` (closes each connection)"
    [floor]="Floor: \`floor/relay.c\` in front of the Python runtime's workers, \`hello\`"
    [hello]="Verge host directly, \`hello\` (Python)"
    [hello-swift]="Verge host directly, \`hello-swift\`"
)
verdict() { awk -v v="$1" -v g="$2" -v op="$3" 'BEGIN { ok = (op == ">=") ? v >= g : v <= g; print ok ? "met" : "not met" }'; }
CPU_MODEL=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
REPORT=$WORK/report.md
{
    echo "# Warm path against uWSGI, $START_DATE"
    echo
    echo "Machine: $(nproc) CPU(s), ${CPU_MODEL:-unknown CPU}, Linux $(uname -r). Commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with local changes)')."
    echo "Python: Verge runs \`$PYTHON\` ($PY_VERSION); uWSGI $UWSGI_VERSION runs its python3 plugin with $(readlink -f "$PY_SO") ($PY_SO_DEB)."
    echo "Load: \`wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency\` after a $WARMUP warm-up, on the same machine." \
        "Verge: one host in \`verge dev\`, isolation \`$ISOLATION\`, usage ledger on (every call's record reached the control plane)."
    echo "Load average before: $LOAD_BEFORE; after: $LOAD_AFTER."
    echo
    echo "| Target | processes | req/s | p50 ms | p99 ms | CPU µs/req | host µs/req | workers µs/req |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|"
    for t in uwsgi-http11 uwsgi-http; do
        echo "| ${LABEL[$t]}, $UWSGI_PROCESSES processes | ${PROCESSES[$t]} | ${RPS[$t]} | ${P50[$t]} | ${P99[$t]} | ${CPU_US[$t]} | | |"
    done
    for t in floor hello hello-swift; do
        echo "| ${LABEL[$t]} | ${PROCESSES[$t]} | ${RPS[$t]} | ${P50[$t]} | ${P99[$t]} | ${CPU_US[$t]} | ${HOST_US[$t]} | ${WORKER_US[$t]} |"
    done
    echo
    echo "CPU per request is user + system time over the measured run divided by the requests wrk counted: uWSGI's" \
        "master and workers (/proc); the \`verge\` process (/proc: control plane, gateway and host in one process, the gateway idle and the" \
        "control plane doing nothing but take in the shipped usage records) and the workers' cgroups under the host's, every process of each sandbox included."
    echo
    hello_ratio=$(ratio "${RPS[hello]}" "${RPS[$BEST]}")
    swift_ratio=$(ratio "${RPS[hello-swift]}" "${RPS[$BEST]}")
    echo "| Against uWSGI's best mode (${LABEL[$BEST]}) | value | goal | |"
    echo "|---|---:|---:|---|"
    echo "| \`hello\` req/s / uWSGI req/s | $hello_ratio × | ≥ $GOAL_HELLO × | $(verdict "$hello_ratio" "$GOAL_HELLO" ">=") |"
    echo "| \`hello\` p99 / uWSGI p99 | $(ratio "${P99[hello]}" "${P99[$BEST]}") × | ≤ 1.0 × | $(verdict "$(ratio "${P99[hello]}" "${P99[$BEST]}")" 1.0 "<=") |"
    echo "| \`hello-swift\` req/s / uWSGI req/s | $swift_ratio × | ≥ $GOAL_SWIFT × | $(verdict "$swift_ratio" "$GOAL_SWIFT" ">=") |"
    echo "| floor req/s / uWSGI req/s (what this architecture allows here) | $(ratio "${RPS[floor]}" "${RPS[$BEST]}") × | | |"
    echo "| \`hello\` req/s / floor req/s | $(ratio "${RPS[hello]}" "${RPS[floor]}") × | | |"
    echo "| host's own CPU per call, \`hello\` | ${HOST_US[hello]} µs | ≤ $GOAL_HOST_US µs | $(verdict "${HOST_US[hello]}" "$GOAL_HOST_US" "<=") |"
    echo "| host's own CPU per call, \`hello-swift\` | ${HOST_US[hello-swift]} µs | ≤ $GOAL_HOST_US µs | $(verdict "${HOST_US[hello-swift]}" "$GOAL_HOST_US" "<=") |"
    if ((PROFILE)); then
        for fn in hello hello-swift; do
            echo
            echo "Where the verge process's CPU time went under the same load, \`$fn\` (perf, cpu-clock, self time)." \
                "By shared object: $(cat "$WORK/profile-dso-$fn.txt"). The largest symbols:"
            echo
            echo '```'
            cat "$WORK/profile-$fn.txt"
            echo '```'
        done
    fi
} >"$REPORT"

publish_report "$REPORT"
