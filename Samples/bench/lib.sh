# shellcheck shell=bash
# Shared by the benchmark scripts here (sourced, not run): reporting, failing with the step's name, the load settings,
# the work folder, the release build, the processes a run starts (and stops whatever happens), `verge dev` clusters,
# CPU time, wrk's numbers. The sourcing script sets `set -euo pipefail`; this moves it to the repository root (ROOT).

cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
ROOT=$(pwd)

STEP="checking settings"
step() {
    STEP=$1
    printf '\n==> %s\n' "$1" >&2
}
note() { printf '    %s\n' "$*" >&2; }
die() {
    trap - ERR
    printf '\nbench: FAILED while %s: %s\n' "$STEP" "$*" >&2
    exit 1
}
# Any other failing command stops the run the same way, naming the command.
set -o errtrace
trap 'die "line $LINENO: \"$BASH_COMMAND\" failed with status $?"' ERR

# need_tools COMMAND=PACKAGE…: installs the Debian packages of the commands that are missing (needs root).
need_tools() {
    local pair packages=()
    for pair in "$@"; do
        command -v "${pair%%=*}" >/dev/null || packages+=("${pair#*=}")
    done
    ((${#packages[@]})) || return 0
    ((EUID == 0)) || die "missing ${packages[*]}: run as root or install them first (apt-get install -y ${packages[*]})"
    note "apt-get install -y ${packages[*]}"
    apt-get update -qq >&2 || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >&2 || die "apt-get install ${packages[*]} failed"
    for pair in "$@"; do command -v "${pair%%=*}" >/dev/null || die "${pair%%=*} is still missing after apt-get install"; done
}

alive() {
    local state
    state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    [[ $state != Z* ]]
}

# ---------------------------------------------------------------------------------------------------------------
# Settings, the work folder and the release build

# load_settings: the load settings every benchmark takes from the environment, with their defaults, checked:
# PYTHON (/usr/bin/python3), DURATION (10s), WARMUP (3s), CONNECTIONS (32), THREADS (1).
load_settings() {
    PYTHON=${PYTHON:-/usr/bin/python3}
    DURATION=${DURATION:-10s}
    WARMUP=${WARMUP:-3s}
    CONNECTIONS=${CONNECTIONS:-32}
    THREADS=${THREADS:-1}
    [[ $CONNECTIONS =~ ^[1-9][0-9]*$ && $THREADS =~ ^[1-9][0-9]*$ ]] ||
        die "CONNECTIONS and THREADS must be positive integers"
    ((THREADS <= CONNECTIONS)) || die "THREADS ($THREADS) must not exceed CONNECTIONS ($CONNECTIONS)"
    [[ $DURATION =~ ^[1-9][0-9]*[smh]?$ && $WARMUP =~ ^[1-9][0-9]*[smh]?$ ]] ||
        die "DURATION and WARMUP look like 10s, 1m"
    [[ -x $PYTHON ]] || die "PYTHON=$PYTHON is not an executable (set PYTHON to a python3 interpreter)"
}

# median VALUE…: the median of numbers given as arguments or as space-separated lists (for an even count, the mean of
# the two middle ones).
median() {
    # shellcheck disable=SC2048,SC2086 # splitting is the point: a list may come as one argument
    printf '%s\n' $* | sort -g |
        awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# seconds DURATION: wrk's 10s / 2m / 1h (or a bare number of seconds) in seconds.
seconds() {
    local n=${1%[smh]}
    case $1 in *m) echo $((n * 60)) ;; *h) echo $((n * 3600)) ;; *) echo "$n" ;; esac
}

# make_work NAME: the run's work folder, $WORK (removed at exit), and the traps that stop every process the run
# started (start_process, track) however it ends. verge dev keeps its CLI credential under XDG_CONFIG_HOME: in
# $WORK, out of the user's own configuration.
WORK=""
make_work() {
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
    # Traversable by everyone (harmless; sandboxed workers reach their bundles through bind mounts, not this path).
    chmod 711 "$WORK"
    export XDG_CONFIG_HOME="$WORK/config"
    trap bench_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# build_release: unless BUILD=0, the release build of `verge` and `verge-sandbox-exec` (which hosts find next to
# their own executable) in .build-release; sets VERGE.
build_release() {
    if ((${BUILD:-1})); then
        step "building Verge in release (swift build -c release --scratch-path .build-release)"
        swift build -c release --scratch-path .build-release --product verge >&2 || die "swift build -c release failed"
        swift build -c release --scratch-path .build-release --product verge-sandbox-exec >&2 ||
            die "swift build -c release --product verge-sandbox-exec failed"
    fi
    VERGE=$ROOT/.build-release/release/verge
    [[ -x $VERGE && -x $ROOT/.build-release/release/verge-sandbox-exec ]] ||
        die "no release build of verge and verge-sandbox-exec in .build-release/release (run with BUILD=1)"
}

# ---------------------------------------------------------------------------------------------------------------
# Processes of the run

# The processes the run started and has not stopped yet, oldest first; their names (their log is $WORK/NAME.log when
# there is one) and what they are (`verge dev`, `uWSGI`…) for messages.
RUNNING=()
declare -A PROCESS_NAME=() PROCESS_WHAT=()

# track PID NAME [WHAT]: the EXIT trap stops the process if the run has not.
track() {
    RUNNING+=("$1")
    PROCESS_NAME[$1]=$2
    PROCESS_WHAT[$1]=${3:-$2}
}

# untrack PID: the run stops the process itself.
untrack() {
    local pid kept=()
    for pid in "${RUNNING[@]}"; do [[ $pid == "$1" ]] || kept+=("$pid"); done
    RUNNING=("${kept[@]}")
}

# start_process NAME COMMAND…: runs COMMAND in the background, its output in $WORK/NAME.out and its log in
# $WORK/NAME.log, until it prints its ready line; sets PID, READY (the line) and READY_S (seconds it took).
start_process() {
    local name=$1 started=$SECONDS t0
    shift
    local what="${1##*/} ${2:-} ($name)"
    t0=$(date +%s.%N)
    # Emptied before the process starts: a ready line left from an earlier run must never be read as this one's.
    : >"$WORK/$name.out"
    "$@" >"$WORK/$name.out" 2>"$WORK/$name.log" &
    PID=$!
    track "$PID" "$name" "$what"
    until READY=$(grep -m1 '^ready ' "$WORK/$name.out"); do
        if ! alive "$PID"; then
            untrack "$PID"
            tail -n 20 "$WORK/$name.log" >&2
            die "$what exited before printing its ready line (log above)"
        fi
        ((SECONDS - started < 60)) || die "$what printed no ready line within 60 s"
        sleep 0.05
    done
    # shellcheck disable=SC2034 # for the sourcing script
    READY_S=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
}

# stop_process PID: SIGTERM, then a clean exit within 30 s (else SIGKILL and a failure), status 0 (else its log's last
# lines and a failure). Sets STOP_S.
stop_process() {
    local pid=$1 name=${PROCESS_NAME[$1]} what=${PROCESS_WHAT[$1]} status=0 started=$SECONDS t0
    untrack "$pid"
    t0=$(date +%s.%N)
    kill -TERM "$pid" 2>/dev/null || true
    while alive "$pid"; do
        if ((SECONDS - started >= 30)); then
            kill -KILL "$pid" 2>/dev/null || true
            die "$what was still running 30 s after SIGTERM (killed it)"
        fi
        sleep 0.05
    done
    wait "$pid" 2>/dev/null || status=$?
    # shellcheck disable=SC2034 # for the sourcing script
    STOP_S=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
    if ((status != 0)); then
        [[ -s $WORK/$name.log ]] && tail -n 20 "$WORK/$name.log" >&2
        die "$what exited with status $status after SIGTERM (log above)"
    fi
}

# end_process PID: SIGTERM, SIGKILL after 30 s, reaped; how it exits does not matter (a peer, or cleaning up).
end_process() {
    local pid=$1
    untrack "$pid"
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 300); do alive "$pid" || break; sleep 0.1; done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
}

# show_log PID: after a failure, what a process of the run logged last; for one that crashed, the crashed thread.
show_log() {
    local pid=$1 what=${PROCESS_WHAT[$1]} status=0
    local log=$WORK/${PROCESS_NAME[$1]}.log
    if ! alive "$pid"; then
        wait "$pid" 2>/dev/null || status=$?
        printf 'bench: %s had died during the run (status %s%s)\n' "$what" "$status" \
            "$( ((status > 128)) && echo ", signal $((status - 128))")" >&2
    fi
    [[ -s $log ]] || return 0
    if grep -q '^\*\*\* Program crashed' "$log"; then
        printf '\nbench: %s crashed; what it logged last, and the crashed thread:\n' "$what" >&2
        grep -B 5 -m 1 '^\*\*\* Signal' "$log" | grep -v '^\*\*\* Signal' >&2
        grep -m 1 '^\*\*\* Program crashed' "$log" >&2
        grep -m 1 -A 14 ' crashed:$' "$log" >&2
    else
        printf '\nbench: the last lines %s logged:\n' "$what" >&2
        tail -n 30 "$log" >&2
    fi
}

# The EXIT trap (make_work): after a failure, what each running process logged last; then stops them, newest first,
# runs the script's own `on_exit` if it has one (a failing on_exit fails the run), and removes $WORK.
bench_exit() {
    local status=$? i
    set +e
    trap - EXIT ERR
    if ((status != 0)); then
        for i in "${RUNNING[@]}"; do show_log "$i"; done
    fi
    for ((i = ${#RUNNING[@]} - 1; i >= 0; i--)); do end_process "${RUNNING[i]}"; done
    if declare -F on_exit >/dev/null; then on_exit || status=1; fi
    [[ -n $WORK ]] && rm -rf "$WORK"
    exit "$status"
}

# ---------------------------------------------------------------------------------------------------------------
# A cluster in one process (`verge dev`)

CLUSTER_PID=""
CLUSTER_LOG=""

# start_cluster NAME VERGE_DEV_OPTION…: `verge dev` with its gateway and API on free ports and the given options
# (start_process NAME); sets CLUSTER_PID, CLUSTER_LOG, GATEWAY, API, FRA (host fra's URL) and READY_S.
start_cluster() {
    local name=$1
    shift
    start_process "$name" "$VERGE" dev --gateway 127.0.0.1:0 --api 127.0.0.1:0 "$@"
    CLUSTER_PID=$PID
    # shellcheck disable=SC2034 # for the sourcing script
    CLUSTER_LOG=$WORK/$name.log
    GATEWAY=$(sed -n 's/.* gateway=\([^ ]*\).*/\1/p' <<<"$READY")
    API=$(sed -n 's/.* api=\([^ ]*\).*/\1/p' <<<"$READY")
    FRA=$(sed -n 's/.* hosts=\([^ ]*\).*/\1/p' <<<"$READY" | tr ',' '\n' | sed -n 's/^fra=//p')
    [[ -n $GATEWAY && -n $API && -n $FRA ]] || die "cannot read gateway, api and fra from the ready line: $READY"
}

# stop_cluster: stop_process of the running cluster, if any. Sets STOP_S.
stop_cluster() {
    [[ -n $CLUSTER_PID ]] || return 0
    local pid=$CLUSTER_PID
    CLUSTER_PID=""
    stop_process "$pid"
}

# free_port: a TCP port on 127.0.0.1 that nothing listened on a moment ago.
free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ticks PID: user + system CPU time of a process (all its threads), in clock ticks; fails when it is gone.
ticks() {
    local line fields
    line=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
    read -r -a fields <<<"$line"
    echo $((fields[11] + fields[12]))
}

# ticks_sum PID…: the sum of `ticks` over the processes; fails when one is gone.
ticks_sum() {
    local pid total=0 t
    for pid in "$@"; do
        t=$(ticks "$pid") || return 1
        total=$((total + t))
    done
    echo "$total"
}

# to_ms VALUE [DECIMALS]: wrk's 812.00us / 1.23ms / 2.01s / 1.00m in milliseconds, with DECIMALS (3) decimals.
to_ms() {
    awk -v v="$1" -v d="${2:-3}" 'BEGIN {
        if (v ~ /us$/) x = substr(v, 1, length(v) - 2) / 1000
        else if (v ~ /ms$/) x = substr(v, 1, length(v) - 2)
        else if (v ~ /s$/) x = substr(v, 1, length(v) - 1) * 1000
        else if (v ~ /m$/) x = substr(v, 1, length(v) - 1) * 60000
        else exit 1
        printf "%.*f", d, x
    }'
}

# pct FILE COLUMN P: the P-th percentile (nearest rank) of a tab-separated column.
pct() {
    cut -f "$2" "$1" | sort -g | awk -v p="$3" '
        { v[NR] = $1 }
        END { if (NR == 0) exit 1; r = int(p / 100 * NR); if (r < p / 100 * NR) r++; if (r < 1) r = 1; printf "%.2f", v[r] }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }
fmt() { awk -v a="$1" -v d="${2:-2}" 'BEGIN { printf "%.*f", d, a }'; }

# wrk_numbers REPORT: "requests/s p50_ms p99_ms requests errors read_errors" of a `wrk --latency` report: errors
# counts non-2xx answers and connect, write and timeout errors; read_errors the connections the server closed
# (expected, once per request, from a server that closes every connection).
wrk_numbers() {
    local report=$1 rps p50 p99 requests errors
    rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$report")
    p50=$(awk '$1 == "50%" { print $2 }' "$report")
    p99=$(awk '$1 == "99%" { print $2 }' "$report")
    requests=$(awk '/ requests in / { print $1 }' "$report")
    [[ -n $rps && -n $p50 && -n $p99 && -n $requests ]] || { cat "$report" >&2; die "cannot read wrk's report $report (above)"; }
    errors=$(awk '/Non-2xx or 3xx responses:/ { n += $NF }
        /Socket errors:/ { gsub(/,/, ""); for (i = 3; i < NF; i += 2) if ($i == "read") r += $(i + 1); else n += $(i + 1) }
        END { print n + 0, r + 0 }' "$report")
    echo "$rps $(to_ms "$p50") $(to_ms "$p99") $requests $errors"
}

# publish_report FILE: the report on stdout, and a copy at $OUT.
publish_report() {
    mkdir -p "$(dirname "$OUT")"
    cp "$1" "$OUT"
    printf '\n' >&2
    cat "$1"
    printf '\n(written to %s)\n' "$OUT" >&2
}
