//! `hwprof serve` and `hwprof load` end to end, on loopback only, every run
//! bounded in requests and time: the report and its files, a planted stall
//! measured against its analytic latency, shards merged exactly, bad input,
//! interruption.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::*;

fn scenario(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn quantile_ms(v: &Value, k: &str) -> f64 {
    v[k].as_f64()
        .unwrap_or_else(|| panic!("{k} missing in {v}"))
}

#[test]
fn serve_answers_engram_requests_and_errors_in_json() {
    let s = Server::start(&["--preload", "200", "--dim", "16"]);
    let addr = s.url.trim_start_matches("http://").to_string();
    let req = |raw: String| -> String {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(&addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(raw.as_bytes()).unwrap();
        let mut out = String::new();
        let _ = c.read_to_string(&mut out);
        out
    };
    let health = req("GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".into());
    assert!(
        health.starts_with("HTTP/1.1 200") && health.contains("\"memories\":200"),
        "{health}"
    );
    let body = format!(
        r#"{{"content":"c","embedding":{},"confidence":0.9,"memory_space_id":"default"}}"#,
        serde_json::to_string(&vec![0.25f32; 16]).unwrap()
    );
    let stored = req(format!(
        "POST /api/v1/memories/remember HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    assert!(
        stored.starts_with("HTTP/1.1 201") && stored.contains("memory_id"),
        "{stored}"
    );
    let short = r#"{"content":"c","embedding":[1,2,3]}"#;
    let bad = req(format!(
        "POST /api/v1/memories/remember HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{short}",
        short.len()
    ));
    assert!(
        bad.starts_with("HTTP/1.1 400") && bad.contains("16-d"),
        "{bad}"
    );
    let recall = req(format!(
        "GET /api/v1/memories/recall?embedding={}&max_results=3 HTTP/1.1\r\nHost: x\r\nX-Memory-Space: default\r\nConnection: close\r\n\r\n",
        serde_json::to_string(&vec![0.25f32; 16]).unwrap().replace(',', "%2C").replace('[', "%5B").replace(']', "%5D")
    ));
    assert!(
        recall.starts_with("HTTP/1.1 200") && recall.contains("memories"),
        "{recall}"
    );
    let missing =
        req("GET /api/v1/nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".into());
    assert!(
        missing.starts_with("HTTP/1.1 404") && missing.contains("\"error\""),
        "{missing}"
    );
}

/// A run against `hwprof serve`: the report's contract, Engram's JSON, the
/// .hlog (its interval histograms add up to the report's counts), the plots.
#[test]
fn load_over_http_writes_report_hlog_engram_json_and_plots() {
    let _m = exclusive();
    let s = Server::start(&["--preload", "300"]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let sc = scenario(
        dir.path(),
        "engram.toml",
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../workloads/scenarios/engram-baseline.toml"),
        )
        .unwrap(),
    );
    let o = hwprof()
        .args([
            "load",
            "--target",
            &s.url,
            "--scenario",
            &sc,
            "--duration",
            "3",
            "--json",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    assert_eq!(v["kind"], "load");
    assert_eq!(v["scenario"]["name"], "engram-baseline");
    let completed = v["achieved"]["requests"].as_u64().unwrap();
    let offered = v["offered"]["requests"].as_u64().unwrap();
    assert!(
        offered > 200 && completed + v["dropped"].as_u64().unwrap() == offered,
        "{}",
        v["offered"]
    );
    for op in ["store", "recall", "search", "completion"] {
        let o = &v["operations"][op];
        assert!(o["completed"].as_u64().unwrap() > 0, "{op}: {o}");
        for k in ["latency", "service", "schedule_lag"] {
            assert!(o[k]["p50_ms"].as_f64().unwrap() >= 0.0, "{op} {k}");
        }
        // Latency is measured from the intended start: never below service time.
        assert!(
            quantile_ms(&o["latency"], "max_ms") >= quantile_ms(&o["service"], "max_ms") - 0.01
        );
    }
    let engram: Value =
        serde_json::from_slice(&std::fs::read(out.join("engram-results.json")).unwrap()).unwrap();
    for k in [
        "p50_latency_ms",
        "p95_latency_ms",
        "p99_latency_ms",
        "overall_throughput",
        "total_errors",
        "overall_error_rate",
    ] {
        assert!(!engram[k].is_null(), "{k} in {engram}");
    }
    assert_eq!(engram["total_operations"].as_u64().unwrap(), completed);
    // The .hlog, read back with the hdrhistogram crate's log reader.
    let log = std::fs::read(out.join("load.hlog")).unwrap();
    let mut n = 0u64;
    let mut deser = hdrhistogram::serialization::Deserializer::new();
    for item in hdrhistogram::serialization::interval_log::IntervalLogIterator::new(&log) {
        if let Ok(hdrhistogram::serialization::interval_log::LogEntry::Interval(h)) = item {
            let bytes = base64::Engine::decode(
                &base64::engine::general_purpose::STANDARD,
                h.encoded_histogram(),
            )
            .unwrap();
            let hist: hdrhistogram::Histogram<u64> =
                deser.deserialize(&mut std::io::Cursor::new(bytes)).unwrap();
            n += hist.len();
            assert!(h.tag().is_some());
        }
    }
    assert_eq!(
        n, completed,
        "every completed request is in the interval log"
    );
    for f in [
        "load-latency-over-time",
        "load-rate",
        "load-latency-distribution",
    ] {
        for ext in ["svg", "png"] {
            let p = out.join(format!("{f}.{ext}"));
            assert!(
                std::fs::metadata(&p)
                    .map(|m| m.len() > 1000)
                    .unwrap_or(false),
                "{}",
                p.display()
            );
        }
    }
}

/// The planted stall: `serve --stall 1s:100ms` under constant arrivals. A
/// request arriving during a stall waits until it ends, so the fraction of
/// requests slower than x is (0.1 − x)/1 for x < 0.1 s: p99 is 90 ms plus the
/// service time. hwprof's p99 must be within 10% (p99.9 needs 10,000 samples:
/// the benchmark in docs/benchmarks.md checks it at 1,000 req/s).
#[test]
fn a_planted_stall_is_measured_as_it_is() {
    let _m = exclusive();
    let s = Server::start(&["--preload", "100", "--dim", "16", "--stall", "1s:100ms"]);
    let dir = tempfile::tempdir().unwrap();
    let sc = scenario(
        dir.path(),
        "stall.toml",
        "name = \"stall\"\n[duration]\ntotal_seconds = 14\n[arrival]\npattern = \"constant\"\nrate = 150\n\
         [operations]\nstore_weight = 0\nrecall_weight = 0\nembedding_search_weight = 1\n\
         [data]\nnum_nodes = 100\nembedding_dim = 16\n",
    );
    let v = json(&[
        "load",
        "--target",
        &s.url,
        "--scenario",
        &sc,
        "--connections",
        "64",
        // A VM's idle vCPU can take milliseconds to wake: keep the generator
        // busy for the last 2 ms before each request, so its own lag mostly
        // stays below the 1 ms limit (a host stall can still break it; see
        // below) and the stall is what is measured.
        "--spin",
        "2ms",
        "--json",
    ]);
    let lat = &v["operations"]["search"]["latency"];
    let service_p50 = quantile_ms(&v["operations"]["search"]["service"], "p50_ms");
    let p99 = quantile_ms(lat, "p99_ms");
    let want99 = 90.0 + service_p50;
    assert!(
        (p99 / want99 - 1.0).abs() < 0.10,
        "p99 {p99} ms vs analytic {want99} ms"
    );
    // Fewer than 10 samples beyond p99.9: withheld, not guessed.
    assert!(
        lat["p999_ms"].is_null() && lat["withheld"][0] == "p99.9",
        "{lat}"
    );
    // The generator's own lag. This VM's host deschedules a vCPU for
    // milliseconds now and then (runs here saw dispatch lag p99 1.65 ms and,
    // in CI, 5.98 ms with --spin 2ms), so the run may end generator-limited.
    // Either way the report must say so from its own lag figures. The lag's
    // size is not asserted: latency runs from the intended send time, so any
    // lag large enough to matter moves the p99 checked above.
    let lag = &v["dispatch_lag"];
    let lag99 = lag["p99_ms"]
        .as_f64()
        .or(lag["max_ms"].as_f64())
        .expect("dispatch lag measured");
    let limited = v["generator_limited"].as_bool().unwrap();
    assert_eq!(
        limited,
        lag99 > hwprof::load::GENERATOR_LAG_LIMIT_MS,
        "flag vs lag: {lag}"
    );
    if limited {
        assert!(
            v["verdict"]
                .to_string()
                .contains("the generator, not the target, was the limit"),
            "{}",
            v["verdict"]
        );
    }
}

/// Two shards of one schedule, merged, hold exactly the requests of the
/// unsharded run, operation by operation.
#[test]
fn merged_shards_equal_the_unsharded_run() {
    let _m = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let run = |shard: Option<&str>, out: &str| -> Value {
        let mut a = vec![
            "load",
            "--target",
            "noop",
            "--rate",
            "20000",
            "--pattern",
            "poisson",
            "--duration",
            "1",
            "--seed",
            "9",
            "--json",
            "--out",
        ];
        let o = dir.path().join(out).display().to_string();
        a.push(Box::leak(o.into_boxed_str()));
        if let Some(s) = shard {
            a.extend(["--shard", s]);
        }
        json(&a)
    };
    let whole = run(None, "whole");
    run(Some("0/2"), "a");
    run(Some("1/2"), "b");
    let merged = json(&[
        "load",
        "merge",
        &dir.path().join("a").display().to_string(),
        &dir.path().join("b/report.json").display().to_string(),
        "--json",
    ]);
    for op in ["store", "recall", "search"] {
        assert_eq!(
            merged["operations"][op]["completed"], whole["operations"][op]["completed"],
            "{op}"
        );
        assert_eq!(
            merged["operations"][op]["latency"]["count"],
            whole["operations"][op]["latency"]["count"],
            "{op}"
        );
    }
    assert_eq!(merged["offered"]["requests"], whole["offered"]["requests"]);
}

#[test]
fn bad_load_input_exits_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let malformed = scenario(d, "m.toml", "[duration\ntotal_seconds = 1\n");
    let unknown = scenario(
        d,
        "u.toml",
        "[duration]\ntotal_seconds = 1\n[arrival]\npattern = \"constant\"\nrate = 10\nburst = 3\n",
    );
    let zero_rate = scenario(
        d,
        "r.toml",
        "[duration]\ntotal_seconds = 1\n[arrival]\npattern = \"constant\"\nrate = 0\n",
    );
    let neg_duration = scenario(
        d,
        "d.toml",
        "[duration]\ntotal_seconds = -1\n[arrival]\npattern = \"constant\"\nrate = 10\n",
    );
    // A port with nothing listening, and a TCP server that is not Engram.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refused = format!("http://{}", free.local_addr().unwrap());
    drop(free);
    let not_engram = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let not_engram_url = format!("http://{}", not_engram.local_addr().unwrap());
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        // Bounded: answers at most 8 connections, then exits.
        for c in not_engram.incoming().take(8).flatten() {
            let mut c = c;
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let _ = c.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    let small_dim = Server::start(&["--dim", "64"]);
    let not_a_report = scenario(d, "x.json", "{\"x\": 1}");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();
    let rows: Vec<(Vec<&str>, &[&str])> = vec![
        (vec!["load", "--metrics", "nonsense"], &["--metrics"]),
        (
            vec!["load", "--metrics", "127.0.0.1:99999"],
            &["--metrics", "port"],
        ),
        (
            vec![
                "load",
                "--duration",
                "1",
                "--preload",
                "10",
                "--metrics",
                &busy_addr,
            ],
            &["--metrics", "cannot listen"],
        ),
        (
            vec!["load", "--baseline", "/nonexistent/report.json"],
            &["--baseline", "no such file"],
        ),
        (
            vec!["load", "--baseline", &not_a_report],
            &["--baseline", "neither"],
        ),
        (vec!["serve", "--faults-after", "-1"], &["--faults-after"]),
        (vec!["serve", "--metrics", ":70000"], &["--metrics"]),
        (
            vec!["attach", "--pid", "1", "--metrics", "x"],
            &["--metrics"],
        ),
        (vec!["suite", "--metrics", "x"], &["--metrics"]),
        (
            vec!["load", "--scenario", &malformed],
            &["--scenario", "m.toml:1"],
        ),
        (vec!["load", "--scenario", &unknown], &["u.toml:6", "burst"]),
        (
            vec!["load", "--scenario", &zero_rate],
            &["r.toml:5", "arrival.rate"],
        ),
        (
            vec!["load", "--scenario", &neg_duration],
            &["d.toml:2", "duration.total_seconds"],
        ),
        (vec!["load", "--rate", "0"], &["--rate"]),
        (vec!["load", "--rate", "-5"], &["--rate"]),
        (vec!["load", "--duration", "0"], &["--duration"]),
        (vec!["load", "--target", "ftp://x"], &["--target"]),
        (
            vec!["load", "--target", &refused, "--duration", "1"],
            &["--target", "refused"],
        ),
        (
            vec!["load", "--target", &not_engram_url, "--duration", "1"],
            &["--target", "404", "Engram"],
        ),
        (
            vec!["load", "--target", &small_dim.url, "--duration", "1"],
            &["--target", "768-d", "64"],
        ),
        (vec!["load", "--shard", "2/2"], &["--shard"]),
        (
            vec!["load", "--scenario", "/nonexistent.toml"],
            &["--scenario", "no such file"],
        ),
        (
            vec![
                "load",
                "merge",
                "/nonexistent/report.json",
                "/nonexistent/b.json",
            ],
            &["merge"],
        ),
        (vec!["serve", "--stall", "100ms:2s"], &["--stall"]),
        (vec!["serve", "--error-rate", "2"], &["--error-rate"]),
        (vec!["serve", "--port", "70000"], &["--port"]),
    ];
    let mut failures = Vec::new();
    let _busy = &busy;
    for (args, wants) in &rows {
        let o = run(args);
        let stderr = String::from_utf8_lossy(&o.stderr);
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.starts_with("hwprof: note:"))
            .collect();
        let ok = o.status.code() == Some(2)
            && lines.len() == 1
            && lines[0].starts_with("hwprof: error: ")
            && wants.iter().all(|w| lines[0].contains(w));
        if !ok {
            failures.push(format!(
                "{args:?} want {wants:?}: exit {:?} {lines:?}",
                o.status.code()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// SIGINT mid-run: report and .hlog written, marked interrupted, exit 130.
#[test]
fn sigint_mid_run_leaves_a_valid_report_and_hlog() {
    let _m = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("partial");
    let mut child = hwprof()
        .args([
            "load",
            "--target",
            "embedded",
            "--rate",
            "2000",
            "--duration",
            "60",
            "--preload",
            "100",
            "--out",
        ])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    // Wait for the start line, then a little load.
    while err.read_line(&mut line).unwrap() > 0 && !line.contains("hwprof: load ") {
        line.clear();
    }
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let v: Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(v["interrupted"], true);
    assert!(v["achieved"]["requests"].as_u64().unwrap() > 100);
    let log = std::fs::read(out.join("load.hlog")).unwrap();
    let intervals = hdrhistogram::serialization::interval_log::IntervalLogIterator::new(&log)
        .filter(|e| {
            matches!(
                e,
                Ok(hdrhistogram::serialization::interval_log::LogEntry::Interval(_))
            )
        })
        .count();
    assert!(intervals > 0);
}

/// Determinism: the same seed gives the same schedule and operation sequence
/// (the per-operation counts of two runs agree exactly).
#[test]
fn the_same_seed_gives_the_same_operations() {
    let _m = exclusive();
    let a = json(&[
        "load",
        "--target",
        "noop",
        "--rate",
        "5000",
        "--pattern",
        "poisson",
        "--duration",
        "1",
        "--seed",
        "3",
        "--json",
    ]);
    let b = json(&[
        "load",
        "--target",
        "noop",
        "--rate",
        "5000",
        "--pattern",
        "poisson",
        "--duration",
        "1",
        "--seed",
        "3",
        "--json",
    ]);
    let c = json(&[
        "load",
        "--target",
        "noop",
        "--rate",
        "5000",
        "--pattern",
        "poisson",
        "--duration",
        "1",
        "--seed",
        "4",
        "--json",
    ]);
    for op in ["store", "recall", "search"] {
        assert_eq!(
            a["operations"][op]["completed"],
            b["operations"][op]["completed"]
        );
    }
    assert_ne!(a["offered"]["requests"], c["offered"]["requests"]);
}

/// `--probes` on a loopback server found by its port: the server's threads are
/// traced for the run (root only: BPF).
#[test]
fn probes_attach_to_the_server_for_the_run() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("needs root for BPF");
        return;
    }
    let _m = exclusive();
    let s = Server::start(&["--preload", "100", "--dim", "16"]);
    let dir = tempfile::tempdir().unwrap();
    let sc = scenario(
        dir.path(),
        "p.toml",
        "[duration]\ntotal_seconds = 2\n[arrival]\npattern = \"constant\"\nrate = 100\n[data]\nnum_nodes = 100\nembedding_dim = 16\n",
    );
    let v = json(&[
        "load",
        "--target",
        &s.url,
        "--scenario",
        &sc,
        "--probes",
        "sched,futex",
        "--json",
    ]);
    let pid = v["target"]["pid"]
        .as_u64()
        .expect("the server's pid, found from its port");
    assert_eq!(pid, u64::from(s.child.id()));
    if v["probes"].is_null() {
        assert!(
            v["warnings"].to_string().contains("--probes unavailable"),
            "{}",
            v["warnings"]
        );
        return;
    }
    assert!(
        v["probes"]["threads_tracked"].as_u64().unwrap() >= 2,
        "{}",
        v["probes"]
    );
    assert!(
        v["probes"]["probes"].to_string().contains("sched"),
        "{}",
        v["probes"]
    );
}

/// Errors during the run are counted by kind and the run goes on; the target
/// dying ends the run with what was gathered.
#[test]
fn errors_are_counted_and_a_dying_target_ends_the_run() {
    let _m = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let sc = scenario(
        dir.path(),
        "e.toml",
        "[duration]\ntotal_seconds = 3\n[arrival]\npattern = \"constant\"\nrate = 200\n[operations]\nstore_weight = 0\nrecall_weight = 0\nembedding_search_weight = 1\n[data]\nnum_nodes = 50\nembedding_dim = 16\n",
    );
    let s = Server::start(&["--preload", "50", "--dim", "16", "--error-rate", "0.2"]);
    let v = json(&["load", "--target", &s.url, "--scenario", &sc, "--json"]);
    let n = v["achieved"]["requests"].as_f64().unwrap();
    let e = v["errors_by_kind"]["http-5xx"].as_f64().unwrap_or(0.0);
    // 600 requests at p = 0.2: 4 standard errors either side.
    let sd = (n * 0.2 * 0.8).sqrt();
    assert!((e - 0.2 * n).abs() < 4.0 * sd, "{e} of {n}");
    assert_eq!(v["ended_by"], "duration");
    drop(s);

    let mut s = Server::start(&["--preload", "50", "--dim", "16"]);
    let long = scenario(
        dir.path(),
        "long.toml",
        "[duration]\ntotal_seconds = 60\n[arrival]\npattern = \"constant\"\nrate = 200\n[data]\nnum_nodes = 50\nembedding_dim = 16\n",
    );
    let child = hwprof()
        .args(["load", "--target", &s.url, "--scenario", &long, "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let _ = s.child.kill();
    let _ = s.child.wait();
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the run went on after the target died"
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ended_by"], "target-down", "{}", v["warnings"]);
    assert!(v["achieved"]["requests"].as_u64().unwrap() > 100);
    assert!(
        v["errors_by_kind"]["connection-refused"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{}",
        v["errors_by_kind"]
    );
}
