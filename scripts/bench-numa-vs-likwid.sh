#!/usr/bin/env bash
# Self-benchmark: hwprof numa's bandwidth kernels against likwid-bench (Debian
# likwid) on the same access pattern and thread count, interleaved REPS times:
#   read  <-> load_avx   (likwid counts the bytes loaded)
#   write <-> store_avx  (regular stores; the bytes stored)
#   copy  <-> copy_avx   (regular stores; bytes read + bytes written)
# over 512 MB on NUMA node 0's cores (likwid domain S0 = socket 0; on a machine
# with several nodes per socket, compare with -w M0). Prints hwprof/likwid.
#   scripts/bench-numa-vs-likwid.sh [REPS] [THREADS...]
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${1:-3}
shift || true
threads=("${@:-1 2}")
command -v likwid-bench >/dev/null || { echo "likwid-bench missing: apt-get install likwid" >&2; exit 2; }
cargo build --release --quiet --bin hwprof
hwprof=target/release/hwprof
printf "%-7s %-3s %-4s %10s %10s %7s\n" kernel thr rep "hwprof" "likwid" "ratio"
for t in ${threads[*]}; do
  for r in $(seq "$reps"); do
    json=$("$hwprof" run numa --quick --threads "$t" --json 2>/dev/null)
    for pair in read:load_avx write:store_avx copy:copy_avx; do
      k=${pair%%:*}; lk=${pair#*:}
      ours=$(jq -r --arg v "$k-node0" '.groups[0].variants[] | select(.name==$v) | .metrics.ops_per_sec.median / 1e6' <<<"$json")
      theirs=$(likwid-bench -t "$lk" -w "S0:512MB:$t" 2>/dev/null | awk '/^MByte\/s:/{print $2}')
      printf "%-7s %-3s %-4s %10.0f %10.0f %7.3f\n" "$k" "$t" "$r" "$ours" "$theirs" "$(echo "$ours / $theirs" | bc -l)"
    done
  done
done
