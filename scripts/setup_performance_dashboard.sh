#!/usr/bin/env bash
# Bring up Prometheus (Debian's `prometheus`) with hwprof's recording rules and
# alerts and a scrape config for hwprof and Engram, on loopback.
#
#   scripts/setup_performance_dashboard.sh [--dir DIR] [--listen 127.0.0.1:9090]
#       [--interval 15s] [--target JOB=HOST:PORT[/PATH]]... [--no-start]
#
# Default targets (each only answers while the command runs):
#   hwprof-load    127.0.0.1:9464/metrics              hwprof load --metrics :9464 ...
#   hwprof-attach  127.0.0.1:9465/metrics              hwprof attach --metrics :9465 ...
#   hwprof-suite   127.0.0.1:9466/metrics              hwprof suite --metrics :9466 ...
#   engram         127.0.0.1:7432/metrics/prometheus   Engram, or hwprof serve (default port)
# --no-start writes DIR/prometheus.yml and checks it (promtool) without starting.
# Prometheus then runs in the background: its pid is in DIR/prometheus.pid
# (stop: kill $(cat DIR/prometheus.pid)); its UI at http://LISTEN/.
#
# Grafana (not packaged in Debian): copy grafana/provisioning/datasources/hwprof.yml
# and grafana/provisioning/dashboards/hwprof.yml into /etc/grafana/provisioning/
# (same sub-folders), copy grafana/dashboards/hwprof-performance.json to
# /etc/hwprof/grafana/dashboards/ (the provider's path), set the datasource url to
# this Prometheus, restart Grafana. The dashboard's queries are the ones
# userspace/tests/metrics.rs runs against a real Prometheus.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dir=results/prometheus
listen=127.0.0.1:9090
interval=15s
start=1
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir=$2; shift 2 ;;
    --listen) listen=$2; shift 2 ;;
    --interval) interval=$2; shift 2 ;;
    --target) targets+=("$2"); shift 2 ;;
    --no-start) start=0; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "setup_performance_dashboard.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ ${#targets[@]} -eq 0 ]; then
  targets=(hwprof-load=127.0.0.1:9464 hwprof-attach=127.0.0.1:9465 hwprof-suite=127.0.0.1:9466
           engram=127.0.0.1:7432/metrics/prometheus)
fi
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
{
  echo "# Written by scripts/setup_performance_dashboard.sh"
  echo "global:"
  echo "  scrape_interval: $interval"
  echo "  evaluation_interval: $interval"
  echo "rule_files:"
  for f in "$here"/prometheus/rules/*.yml; do echo "  - $f"; done
  echo "scrape_configs:"
  for t in "${targets[@]}"; do
    job=${t%%=*}; rest=${t#*=}
    hostport=${rest%%/*}
    path=/metrics; [ "$rest" != "$hostport" ] && path=/${rest#*/}
    case "$hostport" in
      127.*|localhost:*|\[::1\]:*) ;;
      *) echo "setup_performance_dashboard.sh: $hostport: scrape targets here are loopback only" >&2; exit 2 ;;
    esac
    echo "  - job_name: $job"
    echo "    metrics_path: $path"
    echo "    static_configs:"
    echo "      - targets: ['$hostport']"
  done
} > "$dir/prometheus.yml"
promtool check config "$dir/prometheus.yml" >&2
if [ "$start" = 0 ]; then
  echo "$dir/prometheus.yml"
  exit 0
fi
if [ -f "$dir/prometheus.pid" ] && kill -0 "$(cat "$dir/prometheus.pid")" 2>/dev/null; then
  kill "$(cat "$dir/prometheus.pid")"; sleep 1
fi
nohup prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
  --web.listen-address="$listen" > "$dir/prometheus.log" 2>&1 &
echo $! > "$dir/prometheus.pid"
for _ in $(seq 50); do
  curl -sf "http://$listen/-/ready" >/dev/null 2>&1 && break; sleep 0.2
done
echo "Prometheus on http://$listen/ (pid $(cat "$dir/prometheus.pid"), config $dir/prometheus.yml, log $dir/prometheus.log)"
