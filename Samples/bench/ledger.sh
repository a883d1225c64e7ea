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

# shellcheck source=Samples/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

load_settings
ROUNDS=${ROUNDS:-3}
ISOLATION=${ISOLATION:-none}
FUNCTIONS=${FUNCTIONS:-hello hello-swift}
RECORDS=${RECORDS:-200000}
BATCH=${BATCH:-1000}
OUT=${OUT:-Samples/bench/ledger-results-$(date -u +%Y-%m-%d-%H%M).md}

[[ $ROUNDS =~ ^[1-9][0-9]*$ && $RECORDS =~ ^[1-9][0-9]*$ && $BATCH =~ ^[1-9][0-9]*$ ]] ||
    die "ROUNDS, RECORDS and BATCH are counts"

make_work verge-ledger-bench

step "installing tools"
need_tools wrk=wrk curl=curl jq=jq
# Both builds, always: the benchmark-only one first, then the real one, so the build folder is left holding a host
# that bills.
BUILD=1 VERGE_BENCH_NO_LEDGER=1 build_release
cp "$VERGE" "$WORK/verge-noledger"
BUILD=1 build_release
cp "$VERGE" "$WORK/verge-ledger"
cp "$ROOT/.build-release/release/verge-sandbox-exec" "$WORK/verge-sandbox-exec"
# Hosts find verge-sandbox-exec next to their own executable.

export VERGE_RUNTIME_DIR=$ROOT/Runtime
umask 077  # join tokens and credentials are written below
HZ=$(getconf CLK_TCK)

# A control plane and one host as separate processes, so each one's CPU is its own. Sets CP_PID, API, HOST_PID, FRA.
start_components() {
    local build=$1
    rm -rf "${WORK:?}/$build"
    start_process "cp-$build" "$WORK/verge-$build" control-plane --api 127.0.0.1:0 --data "$WORK/$build/cp"
    CP_PID=$PID
    API=$(sed -n 's/.* api=\([^ ]*\).*/\1/p' <<<"$READY")
    VERGE_TOKEN=$(cat "$WORK/$build/cp/admin-token") "$WORK/verge-$build" join-tokens create --role host --api "$API" \
        >"$WORK/$build/join"
    start_process "host-$build" "$WORK/verge-$build" host --name fra --location 50.11,8.68 --control-plane "$API" \
        --data "$WORK/$build/fra" --isolation "$ISOLATION" --idle-timeout 3600 --python "$PYTHON" \
        --join-token-file "$WORK/$build/join"
    HOST_PID=$PID
    FRA=$(sed -n 's/.* host=\([^ ]*\).*/\1/p' <<<"$READY")
    [[ -n $API && -n $FRA ]] || die "cannot read the control plane's and the host's URLs"
}

declare -A SUM COUNT HOST_US CP_US RECORDED
# ---------------------------------------------------------------------------------------------------------------
step "warm throughput, ledger on vs off (wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $ROUNDS rounds, isolation $ISOLATION)"
for round in $(seq 1 "$ROUNDS"); do
    for build in ledger noledger; do
        start_components "$build"
        if [[ $build == ledger ]] && grep -q 'writes NO usage records' "$WORK/host-$build.log"; then
            die "the ledger build does not write records"
        fi
        for function in $FUNCTIONS; do
            VERGE_TOKEN=$(cat "$WORK/$build/cp/admin-token") "$WORK/verge-$build" deploy "$ROOT/Functions/$function" \
                --api "$API" >/dev/null 2>"$WORK/deploy.err" || { cat "$WORK/deploy.err" >&2; die "cannot deploy $function"; }
            waited=$SECONDS
            until curl -fsS -o /dev/null "$FRA/$function" 2>/dev/null; do
                ((SECONDS - waited < 60)) || die "$function does not answer"
                sleep 0.1
            done
            wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" "$FRA/$function" >/dev/null
            host0=$(ticks "$HOST_PID")
            cp0=$(ticks "$CP_PID")
            out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" "$FRA/$function")
            host1=$(ticks "$HOST_PID")
            cp1=$(ticks "$CP_PID")
            rps=$(awk '/^Requests\/sec/ { print $2 }' <<<"$out")
            requests=$(awk '/requests in/ { print $1 }' <<<"$out")
            [[ -n $rps && -n $requests ]] || die "wrk printed no rate"
            key=$build-$function
            host_us=$(awk -v t=$((host1 - host0)) -v n="$requests" -v hz="$HZ" 'BEGIN { printf "%.1f", t / hz / n * 1e6 }')
            cp_us=$(awk -v t=$((cp1 - cp0)) -v n="$requests" -v hz="$HZ" 'BEGIN { printf "%.1f", t / hz / n * 1e6 }')
            note "round $round, $build, $function: $rps req/s; host $host_us µs/request, control plane $cp_us µs/request"
            SUM[$key]=$(awk -v a="${SUM[$key]:-0}" -v b="$rps" 'BEGIN { print a + b }')
            HOST_US[$key]=$(awk -v a="${HOST_US[$key]:-0}" -v b="$host_us" 'BEGIN { print a + b }')
            CP_US[$key]=$(awk -v a="${CP_US[$key]:-0}" -v b="$cp_us" 'BEGIN { print a + b }')
            COUNT[$key]=$((${COUNT[$key]:-0} + 1))
        done
        if [[ $build == ledger ]]; then
            RECORDED[$round]=$(sqlite3 "$WORK/ledger/fra/host.sqlite" 'SELECT COUNT(*) FROM usage_records' 2>/dev/null || echo "?")
        fi
        stop_process "$HOST_PID"
        stop_process "$CP_PID"
    done
done

# ---------------------------------------------------------------------------------------------------------------
step "control-plane ingest through POST /v1/internal/usage ($RECORDS records, batches of $BATCH)"
start_process cp-ingest "$WORK/verge-ledger" control-plane --api 127.0.0.1:0 --data "$WORK/cp"
CP_PID=$PID
CP=$(sed -n 's/.* api=\([^ ]*\).*/\1/p' <<<"$READY")
INGEST=()
for concurrency in 1 4; do
    VERGE_TOKEN=$(cat "$WORK/cp/admin-token") "$WORK/verge-ledger" join-tokens create --role host --api "$CP" \
        >"$WORK/join-$concurrency"
    cp0=$(ticks "$CP_PID")
    result=$("$WORK/verge-ledger" bench-ingest --api "$CP" --join-token-file "$WORK/join-$concurrency" \
        --credential-file "$WORK/credential-$concurrency" --host-name "bench-$concurrency" --records "$RECORDS" \
        --batch "$BATCH" --concurrency "$concurrency")
    cp1=$(ticks "$CP_PID")
    result="$result; control-plane CPU $(awk -v t=$((cp1 - cp0)) -v n="$RECORDS" -v hz="$HZ" 'BEGIN { printf "%.1f µs/record", t / hz / n * 1e6 }')"
    note "$result"
    INGEST+=("$result")
done
result=$("$WORK/verge-ledger" bench-ingest --in-process "$WORK" --records "$RECORDS" --batch "$BATCH")
note "$result"
INGEST+=("$result")

# ---------------------------------------------------------------------------------------------------------------
{
    echo "## Usage ledger benchmark ($(date -u +%Y-%m-%d), $(nproc) CPUs, kernel $(uname -r), isolation $ISOLATION)"
    echo
    echo "| function | ledger on, req/s | ledger off, req/s | cost | host CPU on, µs/req | off | control plane CPU on, µs/req | off |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    for function in $FUNCTIONS; do
        avg() { awk -v s="$1" -v n="$2" 'BEGIN { printf "%.1f", s / n }'; }
        on=$(avg "${SUM[ledger-$function]}" "${COUNT[ledger-$function]}")
        off=$(avg "${SUM[noledger-$function]}" "${COUNT[noledger-$function]}")
        cost=$(awk -v a="$on" -v b="$off" 'BEGIN { printf "%.1f %%", (b - a) / b * 100 }')
        echo "| $function | $on | $off | $cost | $(avg "${HOST_US[ledger-$function]}" "${COUNT[ledger-$function]}") |" \
            "$(avg "${HOST_US[noledger-$function]}" "${COUNT[noledger-$function]}") |" \
            "$(avg "${CP_US[ledger-$function]}" "${COUNT[ledger-$function]}") |" \
            "$(avg "${CP_US[noledger-$function]}" "${COUNT[noledger-$function]}") |"
    done
    echo
    echo "Means over $ROUNDS alternating rounds of wrk -t$THREADS -c$CONNECTIONS -d$DURATION straight at the host (a"
    echo "control plane and a host as separate processes; CPU from /proc/PID/stat over the measured run)."
    echo "Records the ledger build's host committed per round: ${RECORDED[*]}."
    echo
    echo "Control-plane ingest (POST /v1/internal/usage, $RECORDS records, batches of $BATCH):"
    echo
    for line in "${INGEST[@]}"; do echo "- $line"; done
} | tee "$OUT"
