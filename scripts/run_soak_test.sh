#!/usr/bin/env bash
# Soak test (Engram's task 002): HOURS of steady load against a server, the
# server's RSS, fds, threads and p99 sampled every interval, checkpointed every
# 5 minutes, judged for leaks (> 10 MB/h) and drift (> 2 %/h).
#
#   scripts/run_soak_test.sh HOURS [TARGET]
#
#   HOURS    load time, e.g. 24 or 0.25
#   TARGET   http://HOST:PORT of a running server (Engram: http://127.0.0.1:7432);
#            default: an hwprof serve started for the soak
# Environment:
#   SOAK_ARGS  more `hwprof soak` arguments (e.g. "--scenario F --interval 30s")
#   SOAK_OUT   output directory (default results/soak-HOURSh)
#
# A soak killed or interrupted keeps everything up to its last checkpoint:
# continue it with `hwprof soak --resume SOAK_OUT`.
# Exit: hwprof soak's — 0 clean, 1 a leak or drift over its limit, 2 bad
# input, 130 interrupted.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [ $# -lt 1 ] || ! [[ $1 =~ ^[0-9]+([.][0-9]+)?$ ]]; then
    echo "usage: scripts/run_soak_test.sh HOURS [http://HOST:PORT]" >&2
    exit 2
fi
hours=$1
target=${2:-embedded}
out=${SOAK_OUT:-results/soak-${hours}h}
cargo build --release --quiet --bin hwprof
# shellcheck disable=SC2086 # SOAK_ARGS is a list of arguments
exec target/release/hwprof soak --duration "${hours}h" --target "$target" --out "$out" ${SOAK_ARGS:-}
