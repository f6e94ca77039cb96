#!/usr/bin/env bash
# The main job: install what is needed, build hwprof, describe this machine and
# run the whole suite of experiments, writing results/suite/index.html (every
# verdict and plot), suite.json, suite.md and one folder per experiment.
# Extra arguments go to `hwprof suite` (e.g. --quick: about a minute here).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install.sh
cargo build --release --quiet
hwprof=target/release/hwprof
out=${HWPROF_OUT:-results/suite}

"$hwprof" info
echo
"$hwprof" suite --out "$out" "$@"
