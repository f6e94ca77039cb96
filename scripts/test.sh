#!/usr/bin/env bash
# Every test: install tools, then
#   1. the workspace's tests on this machine (x86_64 or aarch64 Linux),
#   2. the unprivileged unit tests cross-built for aarch64 and run under qemu-user
#      (timers, parsing, statistics, CPU identification; sysfs topology backend),
#   3. `cargo check` for macOS (aarch64-apple-darwin), the sysctl backend.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install.sh --test

log=$(mktemp)
trap 'rm -f "$log"' EXIT

cargo fmt --all -- --check
cargo test --workspace --all-targets --no-fail-fast 2>&1 | tee -a "$log"

if [ "$(uname -m)" = "x86_64" ]; then
  if rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu \
     && command -v qemu-aarch64 >/dev/null && command -v aarch64-linux-gnu-gcc >/dev/null; then
    echo "== aarch64 (qemu-user): unprivileged unit tests" >&2
    # hwloc for arm64 would need a multiarch libhwloc; the sysfs backend stands in.
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu" \
    HWPROF_UNDER_EMULATION=1 \
      cargo test --target aarch64-unknown-linux-gnu --no-default-features --workspace --lib 2>&1 | tee -a "$log"
  else
    echo "test.sh: SKIPPED aarch64 tests: aarch64 Rust target, qemu-user or cross gcc missing" >&2
  fi
fi

if rustup target list --installed 2>/dev/null | grep -qx aarch64-apple-darwin; then
  echo "== macOS (aarch64-apple-darwin): cargo check" >&2
  cargo check --target aarch64-apple-darwin --workspace --tests
else
  echo "test.sh: SKIPPED macOS check: Rust target aarch64-apple-darwin missing" >&2
fi

# One closing line over every test binary above (x86_64 and aarch64 together).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
