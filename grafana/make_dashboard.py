#!/usr/bin/env python3
"""Writes dashboards/hwprof-performance.json (Grafana, provisionable): the
symptom rows (latency against the baseline, throughput, errors) beside the
cause rows (hwprof's probes on the target, resources, the generator's own
honesty), then competitive positioning and experiment verdicts.

Every query is PromQL over hwprof's exporter and the recording rules in
prometheus/rules/; userspace/tests/metrics.rs runs each one against a real
Prometheus. Rerun after editing: python3 grafana/make_dashboard.py"""
import json
import os

DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'job=~"$job", instance=~"$instance"'
panels = []
y = 0
pid = 0


def row(title):
    global y, pid
    pid += 1
    panels.append({"type": "row", "title": title, "id": pid, "collapsed": False,
                   "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
    y += 1


def ts(title, targets, unit, x, w=12, h=8, description="", overrides=None):
    global pid
    pid += 1
    p = {
        "type": "timeseries", "title": title, "id": pid, "datasource": DS,
        "description": description,
        "gridPos": {"h": h, "w": w, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit, "custom": {"lineWidth": 1}},
                        "overrides": overrides or []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom",
                               "calcs": ["lastNotNull", "max"]},
                    "tooltip": {"mode": "multi"}},
        "targets": [{"datasource": DS, "expr": e, "legendFormat": l, "refId": chr(65 + i)}
                    for i, (e, l) in enumerate(targets)],
    }
    panels.append(p)
    return p


def table(title, targets, x, w=24, h=8, description=""):
    global pid
    pid += 1
    panels.append({
        "type": "table", "title": title, "id": pid, "datasource": DS,
        "description": description,
        "gridPos": {"h": h, "w": w, "x": x, "y": y},
        "targets": [{"datasource": DS, "expr": e, "legendFormat": l, "refId": chr(65 + i),
                     "format": "table", "instant": True}
                    for i, (e, l) in enumerate(targets)],
        "transformations": [{"id": "merge", "options": {}}],
    })


def dashed(name):
    return {"matcher": {"id": "byName", "options": name},
            "properties": [{"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
                           {"id": "color", "value": {"mode": "fixed", "fixedColor": "gray"}}]}


row("Latency (from each request's intended start: coordinated-omission free)")
ts("Latency P50/P95/P99 vs baseline", [
    (f'hwprof:load_latency_seconds:p50_1m{{{SEL}}}', "p50 {{instance}}"),
    (f'hwprof:load_latency_seconds:p95_1m{{{SEL}}}', "p95 {{instance}}"),
    (f'hwprof:load_latency_seconds:p99_1m{{{SEL}}}', "p99 {{instance}}"),
    (f'hwprof:baseline_latency_seconds:p99{{{SEL}}}', "baseline p99 (highest run)"),
    (f'1.05 * hwprof:baseline_latency_seconds:p99{{{SEL}}}', "baseline p99 +5% (alert)"),
], "s", 0, description="hwprof:load_latency_seconds (recording rules over hwprof_load_latency_seconds, source: timer). "
   "The baseline is a previous run (hwprof load --baseline REPORT), estimated through the same buckets; "
   "HwprofP99AboveBaseline fires when the 5-minute p99 stays above the +5% line.",
   overrides=[dashed("baseline p99 (highest run)"), dashed("baseline p99 +5% (alert)")])
ts("P99 z-score vs last week", [
    (f'hwprof:load_latency_seconds:p99_1m:zscore_1w{{{SEL}}}', "z {{instance}}"),
], "none", 12, description="(p99 - (weekly mean + this hour's seasonal offset)) / weekly sigma; HwprofLatencyAnomaly above 3.")
y += 8
ts("Latency P99 by operation", [
    (f'histogram_quantile(0.99, sum by (operation, le) (rate(hwprof_load_latency_seconds_bucket{{{SEL}}}[1m])))', "{{operation}}"),
], "s", 0)
ts("Service time vs schedule lag (p99)", [
    (f'histogram_quantile(0.99, sum by (le) (rate(hwprof_load_service_seconds_bucket{{{SEL}}}[1m])))', "service p99"),
    (f'histogram_quantile(0.99, sum by (le) (rate(hwprof_load_schedule_lag_seconds_bucket{{{SEL}}}[1m])))', "schedule lag p99"),
], "s", 12, description="Latency = schedule lag + service time. Service growing: the target; lag growing: queueing before the send.")
y += 8

row("Why: hwprof's probes on the target (the cause beside the symptom)")
ts("Futex wait by symbol", [
    (f'hwprof:probe_futex_wait_seconds:rate1m{{{SEL}}}', "{{symbol}}"),
], "percentunit", 0, w=8, description="Seconds waited in futex per second, by the hottest futex words' symbols (top 5 + other). Source: probe.")
ts("Run-queue latency p99", [
    (f'hwprof:probe_runqueue_latency_seconds:p99_1m{{{SEL}}}', "run-queue p99"),
], "s", 8, w=8, description="Wakeup to on-CPU of the target's threads: CPU saturation or noisy neighbours. Source: probe.")
ts("Off-CPU time", [
    (f'hwprof:probe_off_cpu_seconds:rate1m{{{SEL}}}', "off-CPU s/s"),
    (f'sum by (job, instance) (rate(hwprof_probe_on_cpu_seconds_total{{{SEL}}}[1m]))', "on-CPU s/s"),
], "none", 16, w=8, description="Thread-seconds per second off and on CPU. Off-CPU not in futex: I/O or network waits.")
y += 8
ts("Migrations by distance", [
    (f'hwprof:probe_migrations:rate1m{{{SEL}}}', "{{distance}}"),
], "ops", 0, w=8)
ts("Page faults", [
    (f'hwprof:probe_page_faults:rate1m{{{SEL}}}', "faults/s"),
], "ops", 8, w=8)
ts("Probe events lost", [
    (f'sum by (map) (rate(hwprof_probe_lost_events_total{{{SEL}}}[1m]))', "{{map}}"),
    (f'hwprof_probe_threads_traced{{{SEL}}}', "threads traced"),
], "none", 16, w=8, description="Lost events mean the why-row undercounts: never silently.")
y += 8

row("Throughput and errors")
ts("Throughput by operation", [
    (f'hwprof:load_requests:rate1m{{{SEL}}}', "{{operation}}"),
], "reqps", 0, w=8)
ts("Throughput: offered vs achieved", [
    (f'hwprof:load_offered:rate1m{{{SEL}}}', "offered"),
    (f'hwprof:load_achieved:rate1m{{{SEL}}}', "achieved"),
], "reqps", 8, w=8, description="Achieved below 95% of offered for 2 minutes: HwprofThroughputDegraded.")
ts("Success rate and errors by kind", [
    (f'1 - hwprof:load_errors:ratio_rate1m{{{SEL}}}', "success rate"),
    (f'sum by (kind) (rate(hwprof_load_errors_total{{{SEL}}}[1m]))', "{{kind}}/s"),
], "percentunit", 16, w=8)
y += 8

row("Generator: is it honest?")
ts("Dispatch lag p99 and dropped", [
    (f'hwprof:load_dispatch_lag_seconds:p99_1m{{{SEL}}}', "dispatch lag p99"),
    (f'hwprof:load_dropped:rate1m{{{SEL}}}', "dropped/s"),
], "s", 0, description="Above 1 ms lag or any drops: the generator, not the target, limited the run (HwprofGeneratorSaturated).")
ts("In flight", [
    (f'hwprof_load_in_flight_requests{{{SEL}}}', "in flight"),
], "none", 12)
y += 8

row("Resources of the target")
ts("Resident memory", [(f'hwprof_target_resident_memory_bytes{{{SEL}}}', "RSS {{job}}")], "bytes", 0, w=6)
ts("CPU", [(f'sum by (job, mode) (rate(hwprof_target_cpu_seconds_total{{{SEL}}}[1m]))', "{{mode}} {{job}}")], "none", 6, w=6,
   description="CPU-seconds per second (1 = one CPU busy).")
ts("Threads", [(f'hwprof_target_threads{{{SEL}}}', "{{job}}")], "none", 12, w=6)
ts("Open fds", [(f'hwprof_target_open_fds{{{SEL}}}', "{{job}}")], "none", 18, w=6)
y += 8
ts("Server: requests by route and status", [
    (f'sum by (route, status) (rate(hwprof_serve_requests_total{{{SEL}}}[1m]))', "{{route}} {{status}}"),
], "reqps", 0)
ts("Server: faults in force", [
    (f'hwprof_serve_fault_slowdown_percent{{{SEL}}}', "slowdown %"),
    (f'hwprof_serve_fault_error_rate{{{SEL}}} * 100', "error rate %"),
], "none", 12, description="hwprof serve's planted faults (--slowdown, --error-rate after --faults-after): the cause, when testing the tools.")
y += 8

row("Competitive positioning (published figures: see each benchmark label)")
ts("Measured p99 vs published p99", [
    (f'max(hwprof:load_latency_seconds:p99_1m{{{SEL}}})', "hwprof-measured p99"),
    ('hwprof_reference_latency_seconds{quantile="0.99"}', "{{system}} ({{benchmark}})"),
], "s", 0, description="A ratio means little unless the scenario matches the benchmark (dataset, hardware, recall).",
   overrides=[])
ts("Measured throughput vs published", [
    (f'sum(hwprof:load_achieved:rate1m{{{SEL}}})', "hwprof-measured"),
    ('hwprof_reference_throughput_requests_per_second', "{{system}} ({{benchmark}})"),
], "reqps", 12)
y += 8

row("Experiment verdicts (hwprof run / suite --metrics)")
# Runs end and their series go stale: the last value within a week.
table("Experiment verdicts", [
    ('last_over_time(hwprof_verdict_ratio[7d])', "ratio"),
    ('last_over_time(hwprof_verdict_ratio_ci_low[7d])', "CI low"),
    ('last_over_time(hwprof_verdict_ratio_ci_high[7d])', "CI high"),
    ('last_over_time(hwprof_verdict_conclusive[7d])', "conclusive"),
    ('last_over_time(hwprof_verdict_target_met[7d])', "target met"),
], 0, description="Each comparison's last verdict (hwprof run/suite --metrics). Ratio > 1: the treatment is slower. "
   "HwprofTargetMissed fires when the last verdict within the hour misses its target (target met = 0; NaN: the CI straddles it).")
y += 8


def var(name, query, include_all=True):
    return {"name": name, "type": "query", "datasource": DS, "query": {"query": query, "refId": name},
            "definition": query, "refresh": 2, "includeAll": include_all, "multi": True,
            "allValue": ".*", "current": {"text": "All", "value": "$__all"}}


dash = {
    "uid": "hwprof-performance",
    "title": "hwprof: performance (symptom and cause)",
    "tags": ["hwprof", "engram"],
    "schemaVersion": 39,
    "version": 1,
    "editable": True,
    "time": {"from": "now-30m", "to": "now"},
    "refresh": "10s",
    "templating": {"list": [
        {"name": "datasource", "type": "datasource", "query": "prometheus",
         "current": {"text": "hwprof-prometheus", "value": "hwprof-prometheus"}},
        var("job", "label_values(hwprof_load_info, job)"),
        var("instance", 'label_values(hwprof_load_info{job=~"$job"}, instance)'),
    ]},
    "annotations": {"list": []},
    "panels": panels,
}
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "dashboards", "hwprof-performance.json"), "w") as f:
    json.dump(dash, f, indent=2)
    f.write("\n")
