#!/usr/bin/env bash
# One short run of the #6 experiments on a bigger lab machine (the session's
# device machine: 16 cores), with a prebuilt binary carried in BIN_DIR (hwprof +
# the libhwloc/libudev it links). Everything it measures lands in OUT.
#   scripts/device-check.sh BIN_DIR OUT
set -uo pipefail
bin_dir=$(cd "$1" && pwd); out=$2
mkdir -p "$out"
export LD_LIBRARY_PATH="$bin_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
hw="$bin_dir/hwprof"
step() { # name, command...
  local name=$1; shift
  local t0=$SECONDS
  "$@" >"$out/$name.out" 2>"$out/$name.err"
  echo "$name: exit $? in $((SECONDS - t0)) s"
}
{ uname -a; nproc; cat /proc/cpuinfo | grep -m1 "model name"; ldd "$hw"; } >"$out/env.txt" 2>&1
command -v lstopo-no-graphics >/dev/null && lstopo-no-graphics >"$out/lstopo.txt" 2>&1
cat /sys/kernel/mm/transparent_hugepage/enabled >>"$out/env.txt" 2>&1
step info "$hw" info --json
step c2c "$hw" run c2c --quick --duration 0.05 --repetitions 5 --json --out "$out/c2c"
step false-sharing "$hw" run false-sharing --quick --json --out "$out/false-sharing"
step prefetch "$hw" run prefetch --quick --json --out "$out/prefetch"
step numa "$hw" run numa --quick --json --out "$out/numa"
step scaling "$hw" run scaling --quick --json --out "$out/scaling"
# Figures worth reading without jq on this side.
for e in c2c false-sharing prefetch numa scaling; do
  grep -o '"verdict":\["[^]]*\]' "$out/$e.out" | head -c 3000 >"$out/$e.findings.txt" 2>/dev/null
done
true
