#!/usr/bin/env bash
# Engram's Milestone 17 comparison, on hwprof's statistics: the latest
# `before` and `after` runs of a task (scripts/m17_performance_check.sh) judged
# by `hwprof gate --baseline/--current` on P99 latency and throughput (Engram's
# criteria: >5% P99 increase or >5% throughput decrease), each with a CI and a
# rank test instead of one run against one run.
#
#   scripts/compare_m17_performance.sh <task_id> [--competitive]
#
# Exit codes (Engram's meanings):
#   0  acceptable (pass or improvement; also "inconclusive", announced as such,
#      unless M17_STRICT=1, which turns it into 1)
#   1  regression (internal: the 5% rule)
#   2  competitive regression (--competitive: P99 more than 10% worse than the
#      competitor's published figure; hwprof history compare, and it says how
#      the scenario differs from the competitor's benchmark)
#   3  missing or unusable results
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
task=${1:-}
competitive=false
[ "${2:-}" = "--competitive" ] && competitive=true
if [ -z "$task" ]; then
    echo "Usage: $0 <task_id> [--competitive]" >&2
    exit 3
fi
if [ -z "${HWPROF:-}" ]; then
    (cd "$root" && cargo build --release --quiet --bin hwprof) || exit 3
    HWPROF=$root/target/release/hwprof
fi
prefix=$task
$competitive && prefix=competitive_$task
latest() { ls -d tmp/m17_performance/"${prefix}_$1"_*/ 2>/dev/null | sort | tail -1; }
before=$(latest before)
after=$(latest after)
if [ -z "$before" ] || [ -z "$after" ]; then
    echo "ERROR: need both before and after results for task $task in tmp/m17_performance/ (run scripts/m17_performance_check.sh $task before|after)" >&2
    exit 3
fi
threshold=5
out=tmp/m17_performance/${prefix}_comparison
echo "=== M17 comparison: task $task ==="
echo "before: $before"
echo "after:  $after"
"$HWPROF" gate --baseline "$before" --current "$after" --metric p99 --metric throughput \
    --threshold "$threshold" --name-a before --name-b after --out "$out"
code=$?
case $code in
    0) result=0 ;;
    1) echo "REGRESSION: see $out/gate.md"; result=1 ;;
    3)
        echo "INCONCLUSIVE: the runs cannot tell a ${threshold}% change from noise; more repetitions (M17_REPS) would"
        if [ "${M17_STRICT:-0}" = 1 ]; then result=1; else result=0; fi
        ;;
    *) echo "ERROR: hwprof gate failed (exit $code)" >&2; exit 3 ;;
esac
if $competitive && [ "$result" = 0 ]; then
    scenario=$(basename "${M17_SCENARIO:-competitive-neo4j-traversal.toml}" .toml)
    competitor=${M17_COMPETITOR:-neo4j}
    json=$("$HWPROF" history compare --competitor "$competitor" --scenario "$scenario" \
        ${M17_HISTORY:+--history "$M17_HISTORY"} --json) || exit 3
    "$HWPROF" history compare --competitor "$competitor" --scenario "$scenario" \
        ${M17_HISTORY:+--history "$M17_HISTORY"}
    if echo "$json" | python3 -c 'import json,sys; c=json.load(sys.stdin); sys.exit(0 if any(x["metric"]=="p99" and x["flag"]=="worse" for x in c["comparisons"]) else 1)'; then
        echo "WARNING: competitive regression: P99 more than 10% worse than $competitor's published figure" >&2
        result=2
    fi
fi
exit $result
