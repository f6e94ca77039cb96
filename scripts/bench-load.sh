#!/usr/bin/env bash
# The load engine measured, not assumed (docs/benchmarks.md, "load engine"):
#   1. planted stall: hwprof serve --stall 2s:200ms under 1,000 req/s constant;
#      analytic p99 = 180 ms, p99.9 = 198 ms (+ service time); wrk on the same
#      server for what a closed loop hides;
#   2. realised rate vs offered: 10,000 req/s for 30 s to hwprof serve;
#   3. the generator's ceiling on one core against the no-op target;
#   4. maximum rate over loopback: hwprof vs wrk on the same route and connections.
# Loopback only; every run bounded in time. Usage: scripts/bench-load.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null 2>&1 || true; }
cargo build --release --bin hwprof >&2
H=target/release/hwprof
out=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$out"' EXIT

# The server gets CPU 1 (one thread), the generators CPU 0: separate CPUs, as on
# a lab machine, so neither measures the other's contention.
serve() { # args → sets url and spid; server runs in the background
  taskset -c 1 $H serve --port 0 --threads 1 "$@" > "$out/serve.txt" 2>/dev/null &
  spid=$!
  for _ in $(seq 100); do grep -q http:// "$out/serve.txt" 2>/dev/null && break; sleep 0.1; done
  url=$(grep -o 'http://[0-9.:]*' "$out/serve.txt")
}
stop() { kill -INT "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true; }
L() { taskset -c 0 $H load --cpus 0 --threads 1 "$@"; }
jq_() { python3 -c "import json,sys; d=json.load(open('$1')); print($2)"; }

echo "== 1. planted stall (2s:200ms) at 1000 req/s constant, search only, ${secs} s"
cat > "$out/stall.toml" <<EOF
name = "stall"
[duration]
total_seconds = $secs
[arrival]
pattern = "constant"
rate = 1000
[operations]
store_weight = 0
recall_weight = 0
embedding_search_weight = 1
[data]
num_nodes = 1000
EOF
serve --preload 1000 --stall 2s:200ms
L --target "$url" --scenario "$out/stall.toml" --connections 256 --spin 2ms --json > "$out/stall.json" 2>/dev/null || true
jq_ "$out/stall.json" "'hwprof (open loop) p50 %.2f p99 %.2f p99.9 %.2f ms (analytic p99 180 + service, p99.9 198 + service); service p50 %.3f ms; lag limit hit: %s' % (d['latency']['p50_ms'], d['latency']['p99_ms'], d['latency']['p999_ms'], d['operations']['search']['service']['p50_ms'], d['generator_limited'])"
if command -v wrk >/dev/null; then
  echo "-- wrk (closed loop, 16 connections) on the same stalled server, ${secs} s:"
  taskset -c 0 wrk -t1 -c16 -d"${secs}s" --latency "$url/api/v1/memories/search?query=topic-1-2&limit=10" | grep -E "Latency|50%|99%|Requests/sec"
fi
stop

echo "== 2. realised vs offered rate: \${RATE:-5000} req/s constant, ${secs} s, search only"
sed -e "s/rate = 1000/rate = ${RATE:-5000}/" "$out/stall.toml" > "$out/rate.toml"
serve --preload 1000
L --target "$url" --scenario "$out/rate.toml" --connections 64 --json > "$out/rate.json" 2>/dev/null || true
jq_ "$out/rate.json" "'offered %.1f/s achieved %.1f/s (%.2f%% of offered), dropped %d, errors %d, dispatch lag p99 %s ms' % (d['offered']['rate'], d['achieved']['rate'], 100*d['achieved']['rate']/d['offered']['rate'], d['dropped'], sum(d['errors_by_kind'].values()), d['dispatch_lag']['p99_ms'])"
stop

echo "== 3. generator ceiling: no-op target, one thread on CPU 0, 2M req/s scheduled for 5 s"
$H load --target noop --threads 1 --cpus 0 --rate 2000000 --duration 5 --json > "$out/noop.json" 2>/dev/null || true
jq_ "$out/noop.json" "'scheduled %.0f/s achieved %.0f/s, schedule lag p50 %s p99 %s ms' % (d['offered']['rate'], d['achieved']['rate'], d['dispatch_lag']['p50_ms'], d['dispatch_lag']['p99_ms'])"

echo "== 4. maximum rate over loopback, GET search, 16 connections, ${ROUNDS:-9} interleaved rounds of 10 s"
# One server for all rounds; each round runs wrk (closed loop: its maximum), oha
# (-q above capacity with --latency-correction) and hwprof (open loop offered
# above capacity: what it achieves is its maximum), in turn, so host drift hits
# all three alike. All three send the same requests: search with varied query
# text (hwprof's scenarios vary it; wrk through a Lua script, oha through
# --rand-regex-url), space default, the x-memory-space header. (One fixed query
# string would hand wrk and oha a server whose caches always hold the same cluster.)
serve --preload 1000
offer=${OFFER:-40000}
sed -e "s/rate = 1000/rate = $offer/" -e "s/total_seconds = $secs/total_seconds = 10/" "$out/stall.toml" > "$out/max.toml"
cat > "$out/varied.lua" <<'LUA'
wrk.headers["x-memory-space"] = "default"
request = function()
  return wrk.format("GET", "/api/v1/memories/search?query=topic-" .. math.random(0, 9) .. "-" .. math.random(0, 999) .. "&limit=10&space=default")
end
LUA
command -v oha >/dev/null || cargo install oha --locked >&2 || true
: > "$out/rounds.txt"
for round in $(seq "${ROUNDS:-9}"); do
  w=$(taskset -c 0 wrk -t1 -c16 -d10s -s "$out/varied.lua" "$url" | awk '/Requests\/sec/ {print $2}')
  o=0
  if command -v oha >/dev/null; then
    o=$(taskset -c 0 oha --no-tui --output-format json -c 16 -z 10s -q "$offer" --latency-correction \
          -H "x-memory-space: default" \
          --rand-regex-url "$url/api/v1/memories/search\\?query=topic-[0-9]-[0-9]{1,3}&limit=10&space=default" \
        | python3 -c "import json,sys; print('%.0f' % json.load(sys.stdin)['summary']['requestsPerSec'])")
  fi
  L --target "$url" --scenario "$out/max.toml" --connections 16 --json > "$out/max.json" 2>/dev/null || true
  h=$(jq_ "$out/max.json" "'%.0f' % d['achieved']['rate']")
  echo "round $round: wrk $w req/s, oha $o req/s, hwprof $h req/s (offered $offer/s)"
  echo "$w $o $h" >> "$out/rounds.txt"
done
python3 - "$out/rounds.txt" <<'PY'
import statistics as s, sys
r = [list(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
w, o, h = zip(*r)
ratio = sorted(hh / ww for ww, hh in zip(w, h))
print("medians: wrk %.0f, oha %.0f, hwprof %.0f req/s; hwprof/wrk per round: median %.3f, range %.3f-%.3f"
      % (s.median(w), s.median(o), s.median(h), s.median(ratio), ratio[0], ratio[-1]))
PY
stop
