#!/usr/bin/env bash
# Self-benchmark: what attaching costs a futex-heavy target. Runs the contended-
# mutex target (hwprof-probe-target) alone, under `hwprof attach` (default
# probes: sched, futex, memory), and under bpftrace doing equivalent counting
# (futex wait time per address + context switches), interleaved, REPS times each,
# and prints the target's throughput per condition. Needs root.
#   scripts/bench-attach-overhead.sh [REPS] [SECONDS] [THREADS]
# CONDITIONS picks among alone, hwprof, hwprof-PROBES (e.g. hwprof-futex), bpftrace
# and before (another hwprof build at $HWPROF_BEFORE, default probes).
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${1:-5}
secs=${2:-6}
threads=${3:-4}
cargo build --release --quiet --bin hwprof --bin hwprof-probe-target
target=target/release/hwprof-probe-target
hwprof=target/release/hwprof

run_one() { # condition
  local cond=$1 out pid
  out=$(mktemp)
  "$target" mutex "$threads" "$secs" >"$out" &
  local tpid=$!
  while ! grep -q ready "$out"; do sleep 0.01; done
  pid=$(awk '/ready/{print $2}' "$out")
  case $cond in
    alone) ;;
    hwprof) "$hwprof" attach --pid "$pid" --duration $((secs + 5)) >/dev/null 2>&1 & ;;
    # Another build (HWPROF_BEFORE=path), default probes: before/after a change.
    before) "$HWPROF_BEFORE" attach --pid "$pid" --duration $((secs + 5)) >/dev/null 2>&1 & ;;
    hwprof-*) "$hwprof" attach --pid "$pid" --probes "${cond#hwprof-}" --duration $((secs + 5)) >/dev/null 2>&1 & ;;
    bpftrace) bpftrace -e "
      tracepoint:syscalls:sys_enter_futex /pid == $pid/ { @start[tid] = nsecs; @addr[tid] = args->uaddr; }
      tracepoint:syscalls:sys_exit_futex /@start[tid]/ { @wait[@addr[tid]] = sum(nsecs - @start[tid]); @n[@addr[tid]] = count(); delete(@start[tid]); delete(@addr[tid]); }
      tracepoint:sched:sched_switch /pid == $pid/ { @switches = count(); }" >/dev/null 2>&1 & ;;
  esac
  local tracer=$!
  wait "$tpid"
  [ "$cond" = alone ] || { kill -INT "$tracer" 2>/dev/null || true; wait "$tracer" 2>/dev/null || true; }
  awk '/ops_per_sec/{print $2}' "$out"
  rm -f "$out"
}

declare -A results
conditions=${CONDITIONS:-alone hwprof bpftrace}
for r in $(seq "$reps"); do
  for cond in $conditions; do
    v=$(run_one "$cond")
    results[$cond]="${results[$cond]:-} $v"
    echo "rep $r $cond ops_per_sec $v" >&2
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
base=$(echo "${results[alone]}" | median)
for cond in $conditions; do
  m=$(echo "${results[$cond]}" | median)
  awk -v c="$cond" -v m="$m" -v b="$base" -v all="${results[$cond]}" \
    'BEGIN { printf "%-9s median %.0f ops/s (%+.1f%% vs alone)  runs:%s\n", c, m, 100*(m-b)/b, all }'
done
