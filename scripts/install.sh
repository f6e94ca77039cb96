#!/usr/bin/env bash
# Install what hwprof needs on Debian/Ubuntu. Idempotent: checks first, installs
# only what is missing, so a second run takes about a second.
#
#   scripts/install.sh          build and run: libhwloc, pkg-config, lstopo
#   scripts/install.sh --test   also the test tools: perf (agreement checks),
#                               aarch64 cross toolchain + qemu-user, Rust targets
set -euo pipefail

want_tests=0
[ "${1:-}" = "--test" ] && want_tests=1

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"

have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

pkgs=(libhwloc-dev libudev-dev pkg-config hwloc-nox gcc)
if [ "$want_tests" = 1 ]; then
  pkgs+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)
  # perf: Debian ships it as linux-perf, Ubuntu as linux-tools-<kernel>.
  if command -v perf >/dev/null 2>&1; then :; elif apt-cache show linux-perf >/dev/null 2>&1; then
    pkgs+=(linux-perf)
  else
    pkgs+=(linux-tools-common "linux-tools-$(uname -r)")
  fi
fi

missing=()
for p in "${pkgs[@]}"; do have_pkg "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install.sh: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
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
