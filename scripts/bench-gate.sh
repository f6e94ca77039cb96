#!/usr/bin/env bash
# The gate's own error rates (docs/benchmarks.md, "gate"): `hwprof gate` on
# `hwprof serve` against itself (planted change 0%: every regression is a false
# positive) and against `--slowdown 5` and `--slowdown 10` (every regression is
# a detection), plus Engram's one-run ±5% rule on the first A and B run of the
# same gates, and the wall time per gate.
#
#   scripts/bench-gate.sh [FP_GATES=100] [DETECT_GATES=40] [OUT=results/bench-gate] [HOURS=24]
#
# Gates run in a fixed rotation (0, 5, 0, 10, 0, 5, 0, 10, 0 %) so a run cut
# short by HOURS still covers every case; a rerun into the same OUT continues
# (finished gates are kept) and the table is rebuilt from every gate.json
# there (`scripts/bench-gate.sh summary OUT` rebuilds it alone).
#
# Each gate: servers pinned to CPU 1 with one worker thread and 5,000 memories,
# `hwprof load` pinned to CPU 0 with --spin 2ms (this VM's idle vCPU takes ~2 ms
# to wake), recall requests (768-d), Poisson 700 req/s for 1.5 s after 0.5 s of
# discarded warm-up, default metrics (p50, p99, throughput), 6 to 10 runs a
# side (looks at 6 and 10), threshold 5%, α 0.05. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."

summary() {
    python3 - "$1" <<'PY'
import json, sys, glob, os, math
out = sys.argv[1]
rows = {}
for f in sorted(glob.glob(os.path.join(out, "*", "gate.json"))):
    pct = int(os.path.basename(os.path.dirname(f)).split("-")[0].rstrip("pct"))
    g = json.load(open(f))
    if g["interrupted"]:
        continue
    r = rows.setdefault(pct, {"n": 0, "reg": 0, "inc": 0, "pass": 0, "imp": 0, "one": 0, "engram": 0, "wall": []})
    # Engram's compare script exactly: the first A and B runs, regression when
    # P99 rose by more than 5% or throughput fell by more than 5%.
    runs = sorted((x for x in g["runs"] if not x["warmup"]), key=lambda x: x["order"])
    first = {side: dict(next(x for x in runs if x["side"] == side)["values"]) for side in "AB"}
    r["engram"] += (first["B"]["p99"] / first["A"]["p99"] > 1.05
                    or first["B"]["throughput"] / first["A"]["throughput"] < 0.95)
    r["n"] += 1
    r[{"regression": "reg", "inconclusive": "inc", "pass": "pass", "improvement": "imp"}[g["outcome"]]] += 1
    r["one"] += g["one_run_rule"]["outcome"] == "regression"
    r["wall"].append(g["elapsed_s"])

def wilson(k, n):
    if n == 0:
        return (float("nan"), float("nan"))
    z = 1.96
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0, c - h), min(1, c + h))

print("| planted slowdown | gates | hwprof: regression (95% CI) | pass | inconclusive | improvement | Engram's rule (P99 +5% / throughput −5%, one run each): regression (95% CI) | one run each, ±5% on p50/p99/throughput | median s/gate (max) |")
print("|---|---|---|---|---|---|---|---|---|")
for pct in sorted(rows):
    r = rows[pct]
    n = r["n"]
    lo, hi = wilson(r["reg"], n)
    olo, ohi = wilson(r["one"], n)
    elo, ehi = wilson(r["engram"], n)
    w = sorted(r["wall"])
    what = "false positives" if pct == 0 else "detected"
    print(f"| {pct}% | {n} | {r['reg']}/{n} = {100*r['reg']/n:.1f}% ({100*lo:.1f}–{100*hi:.1f}%) {what} | {r['pass']} | {r['inc']} | {r['imp']} "
          f"| {r['engram']}/{n} = {100*r['engram']/n:.1f}% ({100*elo:.1f}–{100*ehi:.1f}%) "
          f"| {r['one']}/{n} = {100*r['one']/n:.1f}% | {w[len(w)//2]:.0f} ({w[-1]:.0f}) |")
PY
}

if [ "${1:-}" = summary ]; then
    summary "${2:-results/bench-gate}"
    exit 0
fi

fp=${1:-100}
detect=${2:-40}
out=${3:-results/bench-gate}
hours=${4:-24}
cargo build --release --bin hwprof >&2
mkdir -p "$out"
# A copy: a rebuild during the hours this runs must not swap the binary under it.
cp target/release/hwprof "$out/hwprof"
H=$(cd "$out" && pwd)/hwprof
cat > "$out/scenario.toml" <<'TOML'
name = "gate-bench"
seed = 42
[duration]
total_seconds = 1.5
[arrival]
pattern = "poisson"
rate = 700.0
[operations]
store_weight = 0.0
recall_weight = 1.0
embedding_search_weight = 0.0
[data]
num_nodes = 5000
TOML
serve="taskset -c 1 $H serve --preload 5000 --threads 1"
deadline=$(( $(date +%s) + $(python3 -c "print(int(float('$hours') * 3600))") ))
declare -A done_n=([0]=0 [5]=0 [10]=0)
for d in "$out"/*pct-*/; do
    [ -f "$d/gate.json" ] || continue
    p=$(basename "$d"); p=${p%%pct-*}
    done_n[$p]=$(( ${done_n[$p]} + 1 ))
done
want() { if [ "$1" = 0 ]; then echo "$fp"; else echo "$detect"; fi; }
rotation=(0 5 0 10 0 5 0 10 0)
while :; do
    progressed=0
    for pct in "${rotation[@]}"; do
        [ "$(date +%s)" -lt "$deadline" ] || break 2
        [ "${done_n[$pct]}" -lt "$(want "$pct")" ] || continue
        i=$(( ${done_n[$pct]} + 1 ))
        dir="$out/${pct}pct-$(printf %03d "$i")"
        rm -rf "$dir"
        b="$serve"
        [ "$pct" = 0 ] || b="$serve --slowdown $pct"
        code=0
        "$H" gate --server-a "$serve" --server-b "$b" --scenario "$out/scenario.toml" \
            --load-args "--cpus 0 --spin 2ms" --warmup 0.5s --repetitions 10 --min-repetitions 6 \
            --quiet --out "$dir" > /dev/null || code=$?
        if [ ! -f "$dir/gate.json" ] || [ "$code" = 2 ]; then
            echo "gate $dir failed (exit $code)" >&2
            exit 1
        fi
        done_n[$pct]=$i
        progressed=1
        echo "$(date +%T) ${pct}% #$i: $(python3 -c "import json;g=json.load(open('$dir/gate.json'));print(g['outcome'], 'one-run:', g['one_run_rule']['outcome'], round(g['elapsed_s']), 's')")" >&2
        # The runs' files are not needed for the table; keep gate.json/md.
        rm -rf "$dir/runs"
    done
    [ "$progressed" = 1 ] || break
done
summary "$out"
