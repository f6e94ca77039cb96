#!/usr/bin/env bash
# The exporter's cost to the load generator (docs/benchmarks.md, "live metrics"):
# the same run with and without --metrics while something scrapes /metrics every
# second, interleaved, ROUNDS times:
#   1. the no-op target, offered above the generator's ceiling (one thread, CPU 0):
#      what it achieves is its ceiling, the worst case for any per-run cost;
#   2. hwprof serve (CPU 1, one thread), search at 2,000 req/s: the p99 latency.
# Usage: scripts/bench-metrics-overhead.sh [ROUNDS=5] [SECONDS=10]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
secs=${2:-10}
cargo build --release --bin hwprof >&2
H=$PWD/target/release/hwprof
out=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null; rm -rf "$out"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
scraper() { # scrape every second until the exporter goes away; count scrapes
  local n=0
  for _ in $(seq 600); do
    if curl -sf "127.0.0.1:$port/metrics" -o /dev/null; then n=$((n + 1)); elif [ $n -gt 0 ]; then break; fi
    sleep 1
  done
  echo "$n" > "$out/scrapes"
}
field() { python3 -c "import json,sys; d=json.load(open('$1')); print($2)"; }

echo "== 1. no-op target, 3M req/s offered, ${secs} s, ${rounds} rounds"
for r in $(seq "$rounds"); do
  taskset -c 0 "$H" load --target noop --threads 1 --cpus 0 --rate 3000000 --duration "$secs" --json > "$out/a.json" 2>/dev/null
  scraper & sp=$!
  taskset -c 0 "$H" load --target noop --threads 1 --cpus 0 --rate 3000000 --duration "$secs" --metrics "127.0.0.1:$port" --json > "$out/b.json" 2>/dev/null
  wait $sp
  a=$(field "$out/a.json" "d['achieved']['rate']"); b=$(field "$out/b.json" "d['achieved']['rate']")
  echo "round $r: without $a ops/s, with --metrics (scraped $(cat "$out/scrapes") times) $b ops/s: $(python3 -c "print('%+.2f%%' % (100 * ($b / $a - 1)))")"
done

echo "== 2. hwprof serve, search at 2000 req/s, ${secs} s, ${rounds} rounds"
taskset -c 1 "$H" serve --port 0 --threads 1 --preload 1000 > "$out/serve.txt" 2>/dev/null &
spid=$!
for _ in $(seq 100); do grep -q http:// "$out/serve.txt" 2>/dev/null && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.:]*' "$out/serve.txt")
cat > "$out/s.toml" <<TOML
name = "search-2000"
[duration]
total_seconds = $secs
[arrival]
pattern = "poisson"
rate = 2000
[operations]
store_weight = 0
recall_weight = 0
embedding_search_weight = 1
[data]
num_nodes = 1000
TOML
for r in $(seq "$rounds"); do
  taskset -c 0 "$H" load --cpus 0 --threads 1 --target "$url" --scenario "$out/s.toml" --json > "$out/a.json" 2>/dev/null
  scraper & sp=$!
  taskset -c 0 "$H" load --cpus 0 --threads 1 --target "$url" --scenario "$out/s.toml" --metrics "127.0.0.1:$port" --json > "$out/b.json" 2>/dev/null
  wait $sp
  echo "round $r: without: achieved $(field "$out/a.json" "'%.1f/s p50 %.3f p99 %.3f ms' % (d['achieved']['rate'], d['latency']['p50_ms'], d['latency']['p99_ms'])"); with --metrics (scraped $(cat "$out/scrapes") times): $(field "$out/b.json" "'%.1f/s p50 %.3f p99 %.3f ms' % (d['achieved']['rate'], d['latency']['p50_ms'], d['latency']['p99_ms'])")"
done
kill -INT $spid; wait $spid 2>/dev/null || true
