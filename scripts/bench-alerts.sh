#!/usr/bin/env bash
# The P99 regression alert measured (docs/benchmarks.md, "live metrics"): a real
# Prometheus (1 s scrape and evaluation, hwprof's rules) watches `hwprof load`
# against `hwprof serve`, whose --slowdown 10 switches on mid-run
# (--faults-after); how long from the onset until HwprofP99AboveBaseline fires.
# Then the same run without the slowdown: which alerts fire (none, we hope).
#
#   scripts/bench-alerts.sh [ONSET_S=90] [OBSERVE_S=300] [RATE=800] [BASELINES=3]
#
# Per case: serve (CPU 1, one thread, 20,000 memories) → BASELINES baseline loads
# of 40 s (--out each; one run's p99 moves by up to ~25% run to run here, so the
# alert compares with the highest of several) → the measured load (--baseline
# each, --metrics) for ONSET_S + OBSERVE_S. Recall requests (768-d, the heaviest
# read), Poisson arrivals, the generator with --spin 2ms (this VM's idle vCPU
# takes ~2 ms to wake: without it the generator's own lag trips the
# generator-saturated alert). Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
onset=${1:-90}
observe=${2:-300}
rate=${3:-800}
nbase=${4:-3}
cargo build --release --bin hwprof >&2
H=$PWD/target/release/hwprof
out=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null; rm -rf "$out"' EXIT
cat > "$out/recall.toml" <<TOML
name = "recall"
[duration]
total_seconds = 40
[arrival]
pattern = "poisson"
rate = $rate
[operations]
store_weight = 0
recall_weight = 1
embedding_search_weight = 0
[data]
num_nodes = 20000
TOML
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

case_run() { # $1 = name, $2.. = extra serve args
  local name=$1; shift
  local lead=$((nbase * 41 + 2)) # the baseline runs and their starts
  taskset -c 1 "$H" serve --port 0 --threads 1 --preload 20000 --faults-after $((lead + onset)) "$@" > "$out/serve.txt" 2>/dev/null &
  local spid=$!
  for _ in $(seq 200); do grep -q http:// "$out/serve.txt" 2>/dev/null && break; sleep 0.1; done
  local url; url=$(grep -o 'http://[0-9.:]*' "$out/serve.txt")
  local t_serve; t_serve=$(date +%s.%N)
  # Prometheus first, as in a monitored lab: the baselines run under the same
  # scrapes and rule evaluations as the measured run. SCHED_IDLE: it only gets a
  # CPU neither the server nor the generator wants (2 vCPUs here).
  local mport; mport=$(free_port)
  local pport; pport=$(free_port)
  scripts/setup_performance_dashboard.sh --dir "$out/prom-$name" --no-start --interval 1s \
    --target "hwprof-load=127.0.0.1:$mport" --target "engram=${url#http://}/metrics/prometheus" > /dev/null 2>&1
  chrt -i 0 prometheus --config.file="$out/prom-$name/prometheus.yml" --storage.tsdb.path="$out/prom-$name/tsdb" \
    --web.listen-address="127.0.0.1:$pport" > /dev/null 2>&1 &
  local ppid=$!
  local bases=()
  for b in $(seq "$nbase"); do
    taskset -c 0 "$H" load --cpus 0 --threads 1 --spin 2ms --target "$url" --scenario "$out/recall.toml" \
      --metrics "127.0.0.1:$mport" --out "$out/base-$name-$b" > /dev/null 2>&1
    bases+=(--baseline "$out/base-$name-$b")
  done
  taskset -c 0 "$H" load --cpus 0 --threads 1 --spin 2ms --target "$url" --scenario "$out/recall.toml" \
    --duration "$(python3 -c "print($lead + $onset + $observe - ($(date +%s.%N) - $t_serve))")" \
    "${bases[@]}" --metrics "127.0.0.1:$mport" --out "$out/run-$name" > /dev/null 2>&1 &
  local lpid=$!
  local t_onset; t_onset=$(python3 -c "print($t_serve + $lead + $onset)")
  : > "$out/alerts-$name.txt"
  while kill -0 "$lpid" 2>/dev/null; do
    sleep 1
    chrt -i 0 curl -s "127.0.0.1:$pport/api/v1/alerts" | chrt -i 0 python3 -c "
import json, sys, time
try: d = json.load(sys.stdin)
except Exception: sys.exit(0)
for a in d['data']['alerts']:
    if a['state'] == 'firing':
        print('%.1f %s %s' % (time.time() - $t_onset, a['labels']['alertname'], a['annotations'].get('summary', '')))
" >> "$out/alerts-$name.txt" || true
  done
  local p99; p99=$(curl -s "127.0.0.1:$pport/api/v1/query?query=hwprof:baseline_latency_seconds:p99" | python3 -c "import json,sys; r=json.load(sys.stdin)['data']['result']; print(r[0]['value'][1] if r else 'none')")
  echo "== $name (serve $*): baseline p99 (bucket estimate, highest of $nbase runs) ${p99} s; onset at ${onset} s into the measured run, observed ${observe} s after it"
  if [ -s "$out/alerts-$name.txt" ]; then
    sort -k2,2 -s "$out/alerts-$name.txt" | awk '!seen[$2]++ { printf "   first firing of %s: %+.1f s from the onset (%s)\n", $2, $1, substr($0, index($0,$3)) }'
  else
    echo "   no alert fired"
  fi
  python3 -c "
import json; d = json.load(open('$out/run-$name/report.json')); w = d['windows']
pre = [x['p90_ms'] for x in w if x['start_s'] < $onset and x['p90_ms']]; post = [x['p90_ms'] for x in w if x['start_s'] >= $onset + 30 and x['p90_ms']]
import statistics as s
m = lambda v: '%.2f ms' % s.median(v) if v else 'n/a'
print('   per-second p90, median before the onset %s, from 30 s after it %s; whole run p99 %.2f ms; dispatch lag p99 %s ms' % (m(pre), m(post), d['latency']['p99_ms'], d['dispatch_lag']['p99_ms']))"
  kill "$ppid" 2>/dev/null || true; kill -INT "$spid" 2>/dev/null || true; wait "$spid" "$ppid" 2>/dev/null || true
}

case_run planted --slowdown 10
case_run clean
