# shellcheck shell=bash
# Shared by the benchmark scripts here (sourced, not run): reporting, failing with the step's name, processes and
# their CPU time, wrk's numbers. The sourcing script sets `set -euo pipefail` and runs from the repository root.

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

# to_ms VALUE: wrk's 812.00us / 1.23ms / 2.01s / 1.00m in milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) x = substr(v, 1, length(v) - 2) / 1000
        else if (v ~ /ms$/) x = substr(v, 1, length(v) - 2)
        else if (v ~ /s$/) x = substr(v, 1, length(v) - 1) * 1000
        else if (v ~ /m$/) x = substr(v, 1, length(v) - 1) * 60000
        else exit 1
        printf "%.3f", x
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
