#!/usr/bin/env bash
# What each tracer's eBPF programs cost per event, measured by the kernel: BPF
# run-time statistics (kernel.bpf_stats_enabled) while the contended-mutex
# target runs under hwprof (default probes, --probes futex, --probes
# futex-blocked), under another hwprof build ($HWPROF_BEFORE, default probes)
# and under bpftrace doing the same counting as bench-attach-overhead.sh.
# Unlike the target's throughput (which moves by ±8% from run to run here),
# the programs' own time is a direct, low-noise figure; it leaves out the
# tracepoints' dispatch and the syscall slow path, which bench-attach-overhead.sh
# (the target's throughput) and bench-syscall-tax.sh (an untraced process) see.
# Needs root.
#   scripts/bench-probe-cost.sh [REPS=3] [SECONDS=4] [THREADS=4]
# CONDITIONS picks among hwprof, hwprof-PROBES, before and bpftrace.
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${1:-3}
secs=${2:-4}
threads=${3:-4}
cargo build --release --quiet --bin hwprof --bin hwprof-probe-target
target=target/release/hwprof-probe-target
hwprof=target/release/hwprof
conditions=${CONDITIONS:-hwprof hwprof-futex hwprof-futex-blocked bpftrace}
[ -z "${HWPROF_BEFORE:-}" ] || conditions="before $conditions"
was=$(sysctl -n kernel.bpf_stats_enabled)
trap 'sysctl -qw kernel.bpf_stats_enabled=$was' EXIT
sysctl -qw kernel.bpf_stats_enabled=1
snapshot() { bpftool prog show --json; }
rows=$(mktemp)
for r in $(seq "$reps"); do
  for cond in $conditions; do
    out=$(mktemp)
    "$target" mutex "$threads" $((secs + 3)) >"$out" &
    tpid=$!
    while ! grep -q ready "$out"; do sleep 0.01; done
    pid=$(awk '/ready/{print $2}' "$out")
    case $cond in
      hwprof) "$hwprof" attach --pid "$pid" --duration $((secs + 5)) >/dev/null 2>&1 & ;;
      hwprof-*) "$hwprof" attach --pid "$pid" --probes "${cond#hwprof-}" --duration $((secs + 5)) >/dev/null 2>&1 & ;;
      before) "$HWPROF_BEFORE" attach --pid "$pid" --duration $((secs + 5)) >/dev/null 2>&1 & ;;
      bpftrace) bpftrace -e "
        tracepoint:syscalls:sys_enter_futex /pid == $pid/ { @start[tid] = nsecs; @addr[tid] = args->uaddr; }
        tracepoint:syscalls:sys_exit_futex /@start[tid]/ { @wait[@addr[tid]] = sum(nsecs - @start[tid]); @n[@addr[tid]] = count(); delete(@start[tid]); delete(@addr[tid]); }
        tracepoint:sched:sched_switch /pid == $pid/ { @switches = count(); }" >/dev/null 2>&1 & ;;
    esac
    tracer=$!
    sleep 2 # attached (bpftrace compiles first)
    a=$(mktemp); b=$(mktemp)
    snapshot >"$a"
    t0=$(date +%s.%N)
    sleep "$secs"
    snapshot >"$b"
    t1=$(date +%s.%N)
    wait "$tpid" || true
    kill -INT "$tracer" 2>/dev/null || true
    wait "$tracer" 2>/dev/null || true
    python3 - "$a" "$b" "$cond" "$t0" "$t1" >>"$rows" <<'PY'
import json, sys
a, b, cond, t0, t1 = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
before = {p["id"]: p for p in json.load(open(a))}
runs = ns = 0
futex_calls = 0
progs = []
for p in json.load(open(b)):
    q = before.get(p["id"])
    if not q or p.get("type") not in ("tracepoint", "raw_tracepoint", "tracing", "perf_event", "kprobe"):
        continue
    dr = p.get("run_cnt", 0) - q.get("run_cnt", 0)
    dn = p.get("run_time_ns", 0) - q.get("run_time_ns", 0)
    if dr <= 0:
        continue
    runs += dr; ns += dn
    name = p.get("name", "?")
    progs.append(f"{name}:{dn / dr:.0f}")
    # Each tracer's futex entry program runs once per futex call (of any
    # process; the target's dominate here).
    if "futex_enter" in name or "sys_enter_futex" in name:
        futex_calls = dr
window = t1 - t0
print(json.dumps({"cond": cond, "runs": runs, "ns": ns, "window": window, "futex_calls": futex_calls, "progs": progs}))
PY
    rm -f "$a" "$b" "$out"
    echo "rep $r $cond done" >&2
  done
done
python3 - "$rows" "$conditions" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def median(v):
    v = sorted(v); n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2
# The target's futex calls per second, from the syscall-hooking conditions'
# entry programs: each such run's ns per futex call uses its own count, and
# futex-blocked (which sees only the waits that slept) uses this median rate.
calls = [r["futex_calls"] / r["window"] for r in rows if r["futex_calls"]]
rate = median(calls) if calls else 0
print(f"target's futex calls: {rate:.0f}/s (median over the syscall-hooking runs)")
print("| tracer | program runs/s | ns per run | program time, % of one CPU | ns per futex call | programs (ns per run) |")
print("|---|---|---|---|---|---|")
for c in sys.argv[2].split():
    rs = [r for r in rows if r["cond"] == c]
    if not rs:
        continue
    per_s = median([r["runs"] / r["window"] for r in rs])
    per_run = median([r["ns"] / r["runs"] for r in rs])
    share = median([r["ns"] / (r["window"] * 1e9) for r in rs])
    # A run's own futex calls where its tracer counts them, else the rate.
    per_call = median([r["ns"] / (r["futex_calls"] or rate * r["window"]) for r in rs]) if rate else float("nan")
    print(f"| {c} | {per_s:,.0f} | {per_run:.0f} | {100 * share:.2f}% | {per_call:.0f} | {' '.join(rs[len(rs) // 2]['progs'])} |")
PY
rm -f "$rows"
