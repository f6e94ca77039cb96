#!/usr/bin/env bash
# Self-benchmark: what attaching costs a futex-heavy target. Runs the contended-
# mutex target (hwprof-probe-target) alone, under `hwprof attach` (default
# probes: sched, futex, memory), and under bpftrace doing equivalent counting
# (futex wait time per address + context switches), interleaved, REPS times each,
# and prints the target's throughput per condition, and its paired ratio to the
# same repetition's "alone" run (median, 95% CI). Needs root.
# scripts/bench-probe-cost.sh gives the programs' own time per event (lower noise).
#   scripts/bench-attach-overhead.sh [REPS] [SECONDS] [THREADS]
# CONDITIONS picks among alone, hwprof, hwprof-PROBES (e.g. hwprof-futex), btf and
# btf-PROBES (the same with HWPROF_PROBES_BTF=1: BTF raw tracepoints instead of the
# classic syscall tracepoints), bpftrace and before (another hwprof build at
# $HWPROF_BEFORE, default probes).
# Besides the %, each traced condition's cost per futex call (ns/event): the
# target's lost wall time per second, 1 - X/X_alone, over the futex calls it made
# in that second (X x calls per op; calls per op from hwprof's own counts). The
# mutex serialises the workers, so this is the cost on the critical path.
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${1:-5}
secs=${2:-6}
threads=${3:-4}
cargo build --release --quiet --bin hwprof --bin hwprof-probe-target
target=target/release/hwprof-probe-target
hwprof=target/release/hwprof

run_one() { # condition
  local cond=$1 out pid json
  out=$(mktemp)
  json=$(mktemp)
  "$target" mutex "$threads" "$secs" >"$out" &
  local tpid=$!
  while ! grep -q ready "$out"; do sleep 0.01; done
  pid=$(awk '/ready/{print $2}' "$out")
  case $cond in
    alone) ;;
    hwprof) "$hwprof" attach --pid "$pid" --duration $((secs + 5)) --json >"$json" 2>/dev/null & ;;
    # Another build (HWPROF_BEFORE=path), default probes: before/after a change.
    before) "$HWPROF_BEFORE" attach --pid "$pid" --duration $((secs + 5)) >/dev/null 2>&1 & ;;
    hwprof-*) "$hwprof" attach --pid "$pid" --probes "${cond#hwprof-}" --duration $((secs + 5)) --json >"$json" 2>/dev/null & ;;
    btf) HWPROF_PROBES_BTF=1 "$hwprof" attach --pid "$pid" --duration $((secs + 5)) --json >"$json" 2>/dev/null & ;;
    btf-*) HWPROF_PROBES_BTF=1 "$hwprof" attach --pid "$pid" --probes "${cond#btf-}" --duration $((secs + 5)) --json >"$json" 2>/dev/null & ;;
    bpftrace) bpftrace -e "
      tracepoint:syscalls:sys_enter_futex /pid == $pid/ { @start[tid] = nsecs; @addr[tid] = args->uaddr; }
      tracepoint:syscalls:sys_exit_futex /@start[tid]/ { @wait[@addr[tid]] = sum(nsecs - @start[tid]); @n[@addr[tid]] = count(); delete(@start[tid]); delete(@addr[tid]); }
      tracepoint:sched:sched_switch /pid == $pid/ { @switches = count(); }" >/dev/null 2>&1 & ;;
  esac
  local tracer=$!
  wait "$tpid"
  [ "$cond" = alone ] || { kill -INT "$tracer" 2>/dev/null || true; wait "$tracer" 2>/dev/null || true; }
  local ops
  ops=$(awk '/ops_per_sec/{print $2}' "$out")
  # Futex calls per op, from hwprof's counts over its window (the target's whole
  # run); futex-blocked sees only the waits that slept, so it does not count.
  if [ -s "$json" ]; then
    jq -r --arg ops "$ops" '.duration_s as $d | (.probes.futex // empty) | select(.seen_from == "syscalls") | (.total_waits + .total_wakes) / ($d * ($ops | tonumber))' "$json" >>"$calls_per_op" || true
  fi
  echo "$ops"
  rm -f "$out" "$json"
}
calls_per_op=$(mktemp)

declare -A results
conditions=${CONDITIONS:-alone hwprof bpftrace}
for r in $(seq "$reps"); do
  for cond in $conditions; do
    v=$(run_one "$cond")
    results[$cond]="${results[$cond]:-} $v"
    echo "rep $r $cond ops_per_sec $v" >&2
  done
done
# Per condition: the median of its runs, and the paired figure: each repetition
# ran every condition back to back, so the ratio to the same repetition's
# "alone" run cancels the machine's drift; its median with a distribution-free
# 95% CI (order statistics of the binomial sign test).
cpo=$(tr ' ' '\n' <"$calls_per_op" | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {if (NR) print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}' || true)
rm -f "$calls_per_op"
for cond in $conditions; do echo "$cond ${results[$cond]}"; done | python3 -c '
import sys, math
cpo = float(sys.argv[1] or 0)
runs = {}
order = []
for line in sys.stdin:
    c, *v = line.split()
    runs[c] = [float(x) for x in v]
    order.append(c)
def median(v):
    v = sorted(v); n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2
def median_ci(v):
    # Largest k with P(Binomial(n, 1/2) < k) <= 2.5%: the CI is [v(k), v(n-k+1)].
    v = sorted(v); n = len(v); k = 0; acc = 0.0
    while True:
        acc += math.comb(n, k) / 2 ** n
        if acc > 0.025: break
        k += 1
    return (v[k - 1], v[n - k]) if k >= 1 else (float("nan"), float("nan"))
base = runs.get("alone")
for c in order:
    m = median(runs[c])
    line = f"{c:<22} median {m:.0f} ops/s"
    if base and c != "alone":
        r = [x / b for x, b in zip(runs[c], base)]
        rm = median(r); lo, hi = median_ci(r)
        line += f", paired vs alone {100 * (rm - 1):+.1f}% (95% CI {100 * (lo - 1):+.1f}% .. {100 * (hi - 1):+.1f}%)"
        if cpo > 0:
            line += f", {(1 - rm) * 1e9 / (rm * median(base) * cpo):.0f} ns per futex call"
    print(line + "  runs: " + " ".join(f"{x:.0f}" for x in runs[c]))
' "${cpo:-}"
[ -z "${cpo:-}" ] || echo "futex calls per op (hwprof's counts): $cpo"
