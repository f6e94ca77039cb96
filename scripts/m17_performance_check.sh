#!/usr/bin/env bash
# Engram's Milestone 17 check, on hwprof's statistics: same arguments, same
# output directory (tmp/m17_performance/), but M17_REPS repetitions (each a
# fresh server and a fresh `hwprof load`) instead of one run, so the compare
# script can give a CI instead of a ±5% guess.
#
#   scripts/m17_performance_check.sh <task_id> <before|after> [--competitive]
#
# Environment:
#   M17_SERVER    server command; {port} is replaced (default: hwprof serve with
#                 the scenario's memories preloaded). For Engram:
#                 M17_SERVER='./target/release/engram start --port {port}'
#   M17_REPS      repetitions (default 5)
#   M17_DURATION  seconds per repetition (default: the scenario's, 60 s)
#   M17_SCENARIO  scenario file (default workloads/scenarios/m17-baseline.toml;
#                 --competitive: competitive-neo4j-traversal.toml)
#   M17_HISTORY   history database for `hwprof history add` (default
#                 results/history.db; "none" to skip)
#   HWPROF        the hwprof binary (default: this checkout's release build)
#
# Exit: 0 done; 1 bad arguments or a failed run (as Engram's script).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
task=${1:-unknown}
phase=${2:-before}
competitive=false
if [ "${3:-}" = "--competitive" ] || { [ "${2:-}" = "--competitive" ] && [ -z "${3:-}" ]; }; then
    competitive=true
    [ "${2:-}" = "--competitive" ] && phase=before
fi
if [ "$phase" != before ] && [ "$phase" != after ]; then
    echo "ERROR: Phase must be 'before' or 'after'" >&2
    echo "Usage: $0 <task_id> <phase> [--competitive]" >&2
    exit 1
fi
if [ -z "${HWPROF:-}" ]; then
    (cd "$root" && cargo build --release --quiet --bin hwprof)
    HWPROF=$root/target/release/hwprof
fi
if $competitive; then
    scenario=${M17_SCENARIO:-$root/workloads/scenarios/competitive-neo4j-traversal.toml}
    prefix=competitive_${task}_${phase}
else
    scenario=${M17_SCENARIO:-$root/workloads/scenarios/m17-baseline.toml}
    prefix=${task}_${phase}
fi
nodes=$(sed -n 's/^num_nodes *= *\([0-9]*\).*/\1/p' "$scenario" | head -1)
placeholder='{port}'
default_server="$HWPROF serve --preload ${nodes:-10000} --port $placeholder"
server=${M17_SERVER:-$default_server}
reps=${M17_REPS:-5}
out_root=tmp/m17_performance
stamp=$(date +%Y%m%d_%H%M%S)
out=$out_root/${prefix}_${stamp}
mkdir -p "$out"
echo "=== M17 Performance Check: Task ${task} (${phase}) — ${reps} repetitions ==="
echo "Scenario: $scenario"
echo "Results will be saved to: $out"

duration_args=()
[ -n "${M17_DURATION:-}" ] && duration_args=(--duration "$M17_DURATION")
server_pid=""
stop_server() {
    if [ -n "$server_pid" ]; then
        kill -TERM -- "-$server_pid" 2>/dev/null || kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    fi
}
trap stop_server EXIT

for i in $(seq 1 "$reps"); do
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    cmd=${server//"$placeholder"/$port}
    setsid bash -c "exec $cmd" > "$out/server-$i.log" 2>&1 &
    server_pid=$!
    # Ready when the port answers; the server's own exit ends the wait.
    for _ in $(seq 1 600); do
        if (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then break; fi
        if ! kill -0 "$server_pid" 2>/dev/null; then
            echo "ERROR: Server process terminated during startup (see $out/server-$i.log)" >&2
            exit 1
        fi
        sleep 0.1
    done
    rep=$out/rep-$i
    code=0
    "$HWPROF" load --target "http://127.0.0.1:$port" --scenario "$scenario" "${duration_args[@]}" \
        --out "$rep" > "$out/load-$i.log" 2>&1 || code=$?
    stop_server
    if [ "$code" = 2 ] || [ ! -f "$rep/report.json" ]; then
        echo "ERROR: hwprof load failed (exit $code): $(tail -1 "$out/load-$i.log")" >&2
        exit 1
    fi
    echo "  repetition $i/$reps: $(python3 -c "import json;r=json.load(open('$rep/report.json'));l=r['latency'];print(f\"p99 {l['p99_ms']} ms, {r['achieved']['rate']:.1f} req/s\")")"
    if [ "${M17_HISTORY:-}" != none ]; then
        "$HWPROF" history add "$rep" --scenario "$(basename "$scenario" .toml)" \
            ${M17_HISTORY:+--history "$M17_HISTORY"} 2>/dev/null || true
    fi
done
# Engram's single results file: the repetition with the median p99.
python3 - "$out" "$out_root/${prefix}_${stamp}.json" <<'PY'
import json, sys, glob
reps = sorted(glob.glob(sys.argv[1] + "/rep-*/report.json"))
rs = [json.load(open(p)) for p in reps]
rs.sort(key=lambda r: r["latency"]["p99_ms"] or 0)
json.dump(rs[len(rs) // 2]["engram"], open(sys.argv[2], "w"), indent=2)
PY
echo
echo "=== Performance Check Complete ==="
echo "Results:      $out ($reps repetitions) and ${out}.json (the median repetition, Engram's format)"
