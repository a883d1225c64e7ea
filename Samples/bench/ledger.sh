#!/usr/bin/env bash
# What the usage ledger costs and how fast the control plane takes records, in one run:
#   1. warm throughput straight at one host with the ledger on, next to a benchmark-only build whose host writes no
#      usage record (VERGE_BENCH_NO_LEDGER), alternating the two builds ROUNDS times;
#   2. the control plane's ingest rate through POST /v1/internal/usage (hidden `verge bench-ingest`).
# Prints a markdown report and writes it to $OUT.
#
#   Samples/bench/ledger.sh
#   ROUNDS=5 DURATION=20s Samples/bench/ledger.sh
#
# Settings (environment): PYTHON, ROUNDS (3), DURATION (10s), WARMUP (3s), CONNECTIONS (32), THREADS (1),
# ISOLATION (none; sandbox needs root), FUNCTIONS ("hello hello-swift"), RECORDS (200000), BATCH (1000), OUT.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$(pwd)

PYTHON=${PYTHON:-/usr/bin/python3}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}
ISOLATION=${ISOLATION:-none}
FUNCTIONS=${FUNCTIONS:-hello hello-swift}
RECORDS=${RECORDS:-200000}
BATCH=${BATCH:-1000}
OUT=${OUT:-Samples/bench/ledger-results-$(date -u +%Y-%m-%d-%H%M).md}

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
set -o errtrace
trap 'die "line $LINENO: \"$BASH_COMMAND\" failed with status $?"' ERR

[[ $ROUNDS =~ ^[1-9][0-9]*$ && $RECORDS =~ ^[1-9][0-9]*$ && $BATCH =~ ^[1-9][0-9]*$ ]] ||
    die "ROUNDS, RECORDS and BATCH are counts"
[[ -x $PYTHON ]] || die "PYTHON=$PYTHON is not an executable"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/verge-ledger-bench.XXXXXX")
PIDS=()
cleanup() {
    local status=$?
    set +e
    trap - EXIT ERR
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step "installing tools and building both builds (release)"
missing=()
for tool in wrk curl jq; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if ((${#missing[@]})); then
    apt-get install -y -qq "${missing[@]}" >/dev/null || die "cannot install ${missing[*]}"
fi
build() {
    swift build -c release --scratch-path .build-release --product verge >&2
    swift build -c release --scratch-path .build-release --product verge-sandbox-exec >&2
}
BIN=$(swift build -c release --scratch-path .build-release --show-bin-path)
# The benchmark-only build first, then the real one, so the build folder is left holding a host that bills.
VERGE_BENCH_NO_LEDGER=1 build
cp "$BIN/verge" "$WORK/verge-noledger"
build
cp "$BIN/verge" "$WORK/verge-ledger"
cp "$BIN/verge-sandbox-exec" "$WORK/verge-sandbox-exec"
# Hosts find verge-sandbox-exec next to their own executable.

export VERGE_RUNTIME_DIR=$ROOT/Runtime
CONFIG=$WORK/cluster.json
echo '{"hosts":[{"name":"fra","location":{"latitude":50.11,"longitude":8.68}}]}' >"$CONFIG"

# start_cluster BUILD: sets API, FRA, CLUSTER_PID.
start_cluster() {
    local build=$1 started=$SECONDS line=""
    rm -rf "$WORK/data-$build"
    "$WORK/verge-$build" dev --config "$CONFIG" --gateway 127.0.0.1:0 --api 127.0.0.1:0 --data "$WORK/data-$build" \
        --isolation "$ISOLATION" --idle-timeout 3600 --python "$PYTHON" >"$WORK/$build.out" 2>"$WORK/$build.log" &
    CLUSTER_PID=$!
    PIDS+=("$CLUSTER_PID")
    until line=$(grep -m1 '^ready ' "$WORK/$build.out"); do
        kill -0 "$CLUSTER_PID" 2>/dev/null || { tail -n 20 "$WORK/$build.log" >&2; die "verge dev exited"; }
        ((SECONDS - started < 60)) || die "verge dev printed no ready line within 60 s"
        sleep 0.05
    done
    API=$(sed -n 's/.* api=\([^ ]*\).*/\1/p' <<<"$line")
    FRA=$(sed -n 's/.* hosts=fra=\([^ ,]*\).*/\1/p' <<<"$line")
    [[ -n $API && -n $FRA ]] || die "cannot read api and fra from: $line"
}

stop_cluster() {
    kill -TERM "$CLUSTER_PID"
    wait "$CLUSTER_PID" || die "verge dev exited with status $? on SIGTERM"
    CLUSTER_PID=""
}

declare -A SUM COUNT RECORDED
# ---------------------------------------------------------------------------------------------------------------
step "warm throughput, ledger on vs off (wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $ROUNDS rounds, isolation $ISOLATION)"
for round in $(seq 1 "$ROUNDS"); do
    for build in ledger noledger; do
        start_cluster "$build"
        grep -q 'writes NO usage records' "$WORK/$build.log" && [[ $build == ledger ]] && die "the ledger build does not write records"
        for function in $FUNCTIONS; do
            "$WORK/verge-$build" deploy "$ROOT/Functions/$function" --api "$API" >/dev/null 2>"$WORK/deploy.err" ||
                { cat "$WORK/deploy.err" >&2; die "cannot deploy $function"; }
            curl -fsS -o /dev/null "$FRA/$function" || die "$function does not answer"
            wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" "$FRA/$function" >/dev/null
            rps=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" "$FRA/$function" | awk '/^Requests\/sec/ { print $2 }')
            [[ -n $rps ]] || die "wrk printed no rate"
            note "round $round, $build, $function: $rps req/s"
            SUM[$build-$function]=$(awk -v a="${SUM[$build-$function]:-0}" -v b="$rps" 'BEGIN { print a + b }')
            COUNT[$build-$function]=$((${COUNT[$build-$function]:-0} + 1))
        done
        if [[ $build == ledger ]]; then
            RECORDED[$round]=$(sqlite3 "$WORK/data-ledger/hosts/fra/host.sqlite" 'SELECT COUNT(*) FROM usage_records' 2>/dev/null || echo "?")
        fi
        stop_cluster
    done
done

# ---------------------------------------------------------------------------------------------------------------
step "control-plane ingest through POST /v1/internal/usage ($RECORDS records, batches of $BATCH)"
"$WORK/verge-ledger" control-plane --api 127.0.0.1:0 --data "$WORK/cp" >"$WORK/cp.out" 2>"$WORK/cp.log" &
CP_PID=$!
PIDS+=("$CP_PID")
started=$SECONDS
until line=$(grep -m1 '^ready ' "$WORK/cp.out"); do
    kill -0 "$CP_PID" 2>/dev/null || { tail -n 20 "$WORK/cp.log" >&2; die "the control plane exited"; }
    ((SECONDS - started < 60)) || die "the control plane printed no ready line within 60 s"
    sleep 0.05
done
CP=$(sed -n 's/.* api=\([^ ]*\).*/\1/p' <<<"$line")
INGEST=()
umask 077  # join tokens and credentials are written below
for concurrency in 1 4; do
    VERGE_TOKEN=$(cat "$WORK/cp/admin-token") "$WORK/verge-ledger" join-tokens create --role host --api "$CP" \
        >"$WORK/join-$concurrency"
    result=$("$WORK/verge-ledger" bench-ingest --api "$CP" --join-token-file "$WORK/join-$concurrency" \
        --credential-file "$WORK/credential-$concurrency" --host-name "bench-$concurrency" --records "$RECORDS" \
        --batch "$BATCH" --concurrency "$concurrency")
    note "$result"
    INGEST+=("$result")
done

# ---------------------------------------------------------------------------------------------------------------
{
    echo "## Usage ledger benchmark ($(date -u +%Y-%m-%d), $(nproc) CPUs, kernel $(uname -r), isolation $ISOLATION)"
    echo
    echo "| function | ledger on, req/s | ledger off, req/s | cost |"
    echo "|---|---:|---:|---:|"
    for function in $FUNCTIONS; do
        on=$(awk -v s="${SUM[ledger-$function]}" -v n="${COUNT[ledger-$function]}" 'BEGIN { printf "%.0f", s / n }')
        off=$(awk -v s="${SUM[noledger-$function]}" -v n="${COUNT[noledger-$function]}" 'BEGIN { printf "%.0f", s / n }')
        cost=$(awk -v a="$on" -v b="$off" 'BEGIN { printf "%.1f %%", (b - a) / b * 100 }')
        echo "| $function | $on | $off | $cost |"
    done
    echo
    echo "Means over $ROUNDS alternating rounds of wrk -t$THREADS -c$CONNECTIONS -d$DURATION straight at the host."
    echo "Records the ledger build's host committed per round: ${RECORDED[*]}."
    echo
    echo "Control-plane ingest (POST /v1/internal/usage, $RECORDS records, batches of $BATCH):"
    echo
    for line in "${INGEST[@]}"; do echo "- $line"; done
} | tee "$OUT"
