#!/usr/bin/env bash
# What a futex probe costs processes it does NOT trace: a getppid() loop on
# CPU 1 (ns per syscall), while nothing is attached, while `hwprof attach
# --probes futex` traces a contended-mutex target with the classic syscall
# tracepoints (the default), with BTF raw tracepoints (HWPROF_PROBES_BTF=1:
# they run for every syscall of every process), and with `--probes
# futex-blocked` (no syscall hook at all). Interleaved, REPS times. Root.
#   scripts/bench-syscall-tax.sh [REPS]
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${1:-5}
cargo build --release --quiet --bin hwprof --bin hwprof-probe-target
loop=$(mktemp -d)/sysloop
cat >"$loop.c" <<'C'
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(void) {
  struct timespec a, b;
  const long n = 5000000;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (long i = 0; i < n; i++) syscall(SYS_getppid);
  clock_gettime(CLOCK_MONOTONIC, &b);
  printf("%.1f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n);
  return 0;
}
C
cc -O2 "$loop.c" -o "$loop"
target=target/release/hwprof-probe-target
hwprof=target/release/hwprof
declare -A results
for r in $(seq "$reps"); do
  for cond in none classic btf blocked; do
    out=$(mktemp)
    "$target" mutex 2 30 >"$out" &
    tpid=$!
    while ! grep -q ready "$out"; do sleep 0.01; done
    pid=$(awk '/ready/{print $2}' "$out")
    case $cond in
      none) ;;
      classic) "$hwprof" attach --pid "$pid" --probes futex --duration 25 >/dev/null 2>&1 & ;;
      btf) HWPROF_PROBES_BTF=1 "$hwprof" attach --pid "$pid" --probes futex --duration 25 >/dev/null 2>&1 & ;;
      blocked) "$hwprof" attach --pid "$pid" --probes futex-blocked --duration 25 >/dev/null 2>&1 & ;;
    esac
    tracer=$!
    sleep 1.5
    v=$(taskset -c 1 "$loop")
    [ "$cond" = none ] || { kill -INT "$tracer" 2>/dev/null || true; wait "$tracer" 2>/dev/null || true; }
    kill "$tpid" 2>/dev/null || true
    wait "$tpid" 2>/dev/null || true
    rm -f "$out"
    results[$cond]="${results[$cond]:-} $v"
    echo "rep $r $cond $v ns/getppid" >&2
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
base=$(echo "${results[none]}" | median)
for cond in none classic btf blocked; do
  m=$(echo "${results[$cond]}" | median)
  awk -v c="$cond" -v m="$m" -v b="$base" -v all="${results[$cond]}" \
    'BEGIN { printf "%-8s median %.1f ns per getppid (%+.1f ns)  runs:%s\n", c, m, m - b, all }'
done
