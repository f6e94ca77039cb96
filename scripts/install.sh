#!/usr/bin/env bash
# Install what hwprof needs on Debian/Ubuntu. Idempotent: checks first, installs
# only what is missing, so a second run takes about a second.
#
#   scripts/install.sh          build and run: libhwloc, pkg-config, lstopo, and the
#                               eBPF toolchain (nightly rust-src, LLVM 22, bpf-linker)
#   scripts/install.sh --test   also the test tools: perf, bpftrace, bpftool, stress-ng
#                               (agreement and leftover checks), prometheus + promtool
#                               (the live-metrics rules and dashboard), postgresql (the
#                               history's PostgreSQL backend), aarch64 cross
#                               toolchain + qemu-user, Rust targets
set -euo pipefail

want_tests=0
[ "${1:-}" = "--test" ] && want_tests=1

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"

have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

pkgs=(libhwloc-dev libudev-dev pkg-config hwloc-nox gcc)
# bpf-linker links against LLVM 22 (Debian bookworm-backports / trixie have it).
llvm_pkgs=(llvm-22-dev libpolly-22-dev libzstd-dev)
if [ "$want_tests" = 1 ]; then
  pkgs+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user bpftrace bpftool stress-ng prometheus postgresql)
  # perf: Debian ships it as linux-perf, Ubuntu as linux-tools-<kernel>.
  if command -v perf >/dev/null 2>&1; then :; elif apt-cache show linux-perf >/dev/null 2>&1; then
    pkgs+=(linux-perf)
  else
    pkgs+=(linux-tools-common "linux-tools-$(uname -r)")
  fi
fi

missing=()
for p in "${pkgs[@]}"; do have_pkg "$p" || missing+=("$p"); done
llvm_missing=()
for p in "${llvm_pkgs[@]}"; do have_pkg "$p" || llvm_missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install.sh: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ${#llvm_missing[@]} -gt 0 ] && ! command -v bpf-linker >/dev/null 2>&1; then
  echo "install.sh: installing ${llvm_missing[*]} (for bpf-linker)" >&2
  [ ${#missing[@]} -gt 0 ] || $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${llvm_missing[@]}" >/dev/null \
    || echo "install.sh: LLVM 22 not installable here: eBPF probes will not be built" >&2
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "install.sh: hwprof needs a Rust toolchain (cargo, rustc >= 1.85); install rustup, then rerun" >&2
  exit 1
fi

if [ "$want_tests" = 1 ] && command -v rustup >/dev/null 2>&1; then
  installed=$(rustup target list --installed)
  for t in aarch64-unknown-linux-gnu aarch64-apple-darwin; do
    grep -qx "$t" <<<"$installed" || rustup target add "$t" >&2 || echo "install.sh: could not add Rust target $t" >&2
  done
fi

# eBPF probes: nightly with rust-src (build-std=core for bpfel-unknown-none) and
# bpf-linker. Without them hwprof still builds; --probes then says what is missing.
if command -v rustup >/dev/null 2>&1; then
  if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal >&2 || echo "install.sh: no nightly toolchain: eBPF probes will not be built" >&2
  fi
  if rustup toolchain list | grep -q '^nightly' && ! rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^rust-src'; then
    rustup component add rust-src --toolchain nightly >&2 || true
  fi
fi
if ! command -v bpf-linker >/dev/null 2>&1 && [ -d /usr/lib/llvm-22 ]; then
  echo "install.sh: building bpf-linker against LLVM 22 (about a minute)" >&2
  LLVM_PREFIX=/usr/lib/llvm-22 LLVM_SYS_220_PREFIX=/usr/lib/llvm-22 \
    cargo install bpf-linker --version 0.13.0 --locked --no-default-features --features llvm-22 >&2 \
    || echo "install.sh: bpf-linker did not build: eBPF probes will not be built" >&2
fi
