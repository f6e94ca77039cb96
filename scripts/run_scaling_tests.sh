#!/usr/bin/env bash
# Dataset scaling (Engram's task 004): 100K → 1M → 10M nodes of 768-d, per size
# the server's RSS and bytes per node, preload time, p50/p99 at a fixed rate,
# the highest sustainable rate and the inflection of p99's growth. Sizes that
# would not fit in this machine's memory are refused with the largest that would.
#
#   scripts/run_scaling_tests.sh [SIZES] [DIM]
#
#   SIZES  default 100k,1m,10m
#   DIM    default 768 (a smaller one shows the curve's shape where 768 does not fit)
# Environment:
#   SCALE_ARGS  more `hwprof scale` arguments (e.g. "--rate 500 --duration 30s")
#   SCALE_OUT   output directory (default results/scale)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
sizes=${1:-100k,1m,10m}
dim=${2:-768}
cargo build --release --quiet --bin hwprof
# shellcheck disable=SC2086 # SCALE_ARGS is a list of arguments
exec target/release/hwprof scale --sizes "$sizes" --dim "$dim" --out "${SCALE_OUT:-results/scale}" ${SCALE_ARGS:-}
