#!/usr/bin/env bash
# The main job: install what is needed, build hwprof, describe this machine and
# run the false-sharing experiment, writing its report under results/.
# Extra arguments go to `hwprof run false-sharing` (e.g. --quick, --pairs same-l3).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install.sh
cargo build --release --quiet
hwprof=target/release/hwprof
out=${HWPROF_OUT:-results/false-sharing}

"$hwprof" info
echo
"$hwprof" run false-sharing --out "$out" "$@"
