#!/usr/bin/env bash
# CI performance gate (Engram's task 014): the base revision's server against
# this checkout's, interleaved ABBA under one scenario, judged by `hwprof gate`;
# the candidate's runs are recorded in the history.
#
#   scripts/ci_performance_gate.sh [BASE_REF] [SCENARIO]
#
#   BASE_REF     default: origin/main if it exists, else HEAD~1
#   SCENARIO     default: workloads/scenarios/ci-fast.toml
# Environment:
#   GATE_BUILD   build command run in each tree (default: cargo build --release --quiet --bin hwprof)
#   GATE_SERVER  server command, relative to each tree; {port} replaced
#                (default: target/release/hwprof serve --preload 10000 --port {port};
#                Engram: target/release/engram start --port {port})
#   GATE_ARGS    more `hwprof gate` arguments (e.g. "--budget 10m --metric p99")
#   GATE_OUT     output directory (default results/gate)
#
# Exit: hwprof gate's — 0 pass/improvement, 1 regression, 2 bad input,
# 3 inconclusive. gate.md is the pull-request comment; gate.junit.xml and
# gate.bmf.json are for CI dashboards.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
base=${1:-}
if [ -z "$base" ]; then
    if git rev-parse -q --verify origin/main >/dev/null; then base=origin/main; else base=HEAD~1; fi
fi
scenario=${2:-workloads/scenarios/ci-fast.toml}
build=${GATE_BUILD:-cargo build --release --quiet --bin hwprof}
placeholder='{port}'
default_server="target/release/hwprof serve --preload 10000 --port $placeholder"
server=${GATE_SERVER:-$default_server}
out=${GATE_OUT:-results/gate}
tree=$(mktemp -d)
cleanup() { git worktree remove --force "$tree" 2>/dev/null || rm -rf "$tree"; }
trap cleanup EXIT
git worktree add --detach -q "$tree" "$base"
echo "ci_performance_gate: building base $base ($(git rev-parse --short "$base")) and HEAD ($(git rev-parse --short HEAD))" >&2
(cd "$tree" && CARGO_TARGET_DIR="$tree/target" bash -c "$build")
bash -c "$build"
code=0
# shellcheck disable=SC2086
target/release/hwprof gate \
    --server-a "cd $tree && $server" --server-b "cd $root && $server" \
    --scenario "$scenario" --name-a "base $(git rev-parse --short "$base")" \
    --name-b "HEAD $(git rev-parse --short HEAD)" --out "$out" ${GATE_ARGS:-} || code=$?
# The candidate's runs join the history (commit and branch from CI or git).
for r in "$out"/runs/*-B-*/report.json; do
    [ -f "$r" ] && target/release/hwprof history add "$r" 2>/dev/null || true
done
exit $code
