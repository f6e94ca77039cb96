//! `hwprof history` end to end: reports added through the CLI into SQLite and
//! into a real PostgreSQL this test starts (loopback, its own data directory),
//! read back the same; a planted 5% step found at its commit; noise-only
//! series of the same length left alone; a competitor comparison.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::{run, Postgres};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use serde_json::Value;

/// An Engram results file with the given p99 and throughput.
fn engram(dir: &Path, name: &str, scenario: &str, p99: f64, tput: f64) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!("{{\"scenario\": \"{scenario}\", \"p50_latency_ms\": {:.5}, \"p99_latency_ms\": {p99:.5}, \"overall_throughput\": {tput:.3}, \"overall_error_rate\": 0.0}}", p99 / 3.0),
    )
    .unwrap();
    p
}

fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(
        o.status.success(),
        "hwprof {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// 40 commits of one scenario, p99 with 1.5% noise, +5% from commit 20 on
/// when `step`; added one commit at a time through the CLI.
fn add_series(db: &str, dir: &Path, scenario: &str, step: bool, seed: u64) {
    let noise = Normal::new(0.0, 0.015).unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    for i in 0..40 {
        let level = if step && i >= 20 { 21.0 } else { 20.0 };
        let f = engram(
            dir,
            &format!("{scenario}-{i}.json"),
            scenario,
            level * (1.0 + noise.sample(&mut rng)),
            600.0,
        );
        ok(&[
            "history",
            "add",
            f.to_str().unwrap(),
            "--commit",
            &format!("c{i:02}"),
            "--branch",
            "main",
            "--machine",
            "lab-vm",
            "--history",
            db,
        ]);
    }
}

fn changes(db: &str, scenario: &str) -> Vec<Value> {
    let out = ok(&[
        "history",
        "changes",
        "--metric",
        "p99",
        "--scenario",
        scenario,
        "--json",
        "--history",
        db,
    ]);
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn sqlite_history_finds_the_planted_change_at_its_commit() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let db = d.join("results/history.db");
    let db = db.to_str().unwrap();
    add_series(db, d, "planted", true, 1);
    let cs = changes(db, "planted");
    assert_eq!(cs.len(), 1, "{cs:#?}");
    assert_eq!(cs[0]["commit"], "c20");
    assert_eq!(cs[0]["previous_commit"], "c19");
    let change = cs[0]["change"].as_f64().unwrap();
    assert!((0.03..0.07).contains(&change), "{change}");
    assert!(cs[0]["p"].as_f64().unwrap() < 0.01);
    // Noise-only series of the same length: nothing (the rate over many series
    // is in docs/benchmarks.md; here three series, each must stay clean).
    for seed in [2, 3, 4] {
        let name = format!("clean{seed}");
        add_series(db, d, &name, false, seed);
        assert!(changes(db, &name).is_empty(), "{name}: a change in noise");
    }
    // Re-adding a report adds nothing; show draws the series.
    let again = run(&[
        "history",
        "add",
        d.join("planted-3.json").to_str().unwrap(),
        "--commit",
        "c03",
        "--branch",
        "main",
        "--machine",
        "lab-vm",
        "--history",
        db,
    ]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("0 new row(s) of 4"));
    let out = d.join("show");
    let text = ok(&[
        "history",
        "show",
        "--metric",
        "p99",
        "--scenario",
        "planted",
        "--history",
        db,
        "--out",
        out.to_str().unwrap(),
    ]);
    let table_rows = text
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .count();
    assert_eq!(table_rows, 40, "{text}");
    for f in ["history.svg", "history.png", "history.json"] {
        assert!(out.join(f).is_file(), "{f}");
    }
}

/// The same rows through PostgreSQL and through SQLite read back equal.
#[test]
fn postgres_and_sqlite_hold_the_same_history() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let pg = Postgres::start(d);
    let reports: Vec<PathBuf> = (0..6)
        .map(|i| {
            engram(
                d,
                &format!("r{i}.json"),
                "round-trip",
                10.0 + i as f64,
                500.0 - i as f64,
            )
        })
        .collect();
    let sqlite = d.join("h.db");
    for db in [pg.url.as_str(), sqlite.to_str().unwrap()] {
        for (i, r) in reports.iter().enumerate() {
            ok(&[
                "history",
                "add",
                r.to_str().unwrap(),
                "--commit",
                &format!("k{i}"),
                "--machine",
                "lab-vm",
                "--branch",
                "main",
                "--history",
                db,
            ]);
        }
    }
    let show = |db: &str| -> Value {
        serde_json::from_str(&ok(&[
            "history",
            "show",
            "--metric",
            "p99",
            "--scenario",
            "round-trip",
            "--json",
            "--history",
            db,
        ]))
        .unwrap()
    };
    let (a, b) = (show(&pg.url), show(sqlite.to_str().unwrap()));
    assert_eq!(a, b);
    assert_eq!(a[0]["rows"].as_array().unwrap().len(), 6);
    assert_eq!(a[0]["rows"][5]["value"], 15.0);
    assert_eq!(a[0]["rows"][5]["commit"], "k5");
    // A bad URL is bad input; an unreachable server is a failure of the run.
    let o = run(&[
        "history",
        "show",
        "--history",
        "postgres://x@/?port=notaport",
    ]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn competitor_comparison_states_the_differences() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let db = d.join("h.db");
    let db = db.to_str().unwrap();
    for i in 0..5 {
        let f = engram(
            d,
            &format!("q{i}.json"),
            "ann",
            30.0 + i as f64 * 0.1,
            400.0,
        );
        ok(&[
            "history",
            "add",
            f.to_str().unwrap(),
            "--commit",
            "head",
            "--machine",
            "lab-vm",
            "--history",
            db,
        ]);
    }
    let v: Value = serde_json::from_str(&ok(&[
        "history",
        "compare",
        "--competitor",
        "qdrant",
        "--scenario",
        "ann",
        "--json",
        "--history",
        db,
    ]))
    .unwrap();
    let p99 = &v["comparisons"][0];
    assert_eq!(p99["metric"], "p99");
    assert_eq!(p99["flag"], "worse");
    assert!((p99["worse_ratio"].as_f64().unwrap() - 30.2 / 23.0).abs() < 1e-6);
    assert_eq!(v["comparisons"][1]["flag"], "worse", "{v:#}");
    assert_eq!(v["comparable"], false);
    let text = ok(&[
        "history",
        "compare",
        "--competitor",
        "qdrant",
        "--scenario",
        "ann",
        "--history",
        db,
    ]);
    assert!(text.contains("NOT the same benchmark"), "{text}");
    let o = run(&[
        "history",
        "compare",
        "--competitor",
        "oracle",
        "--scenario",
        "ann",
        "--history",
        db,
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("known: neo4j, qdrant"));
}

#[test]
fn bad_history_input_exits_2_with_one_line() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let db = d.join("h.db");
    let db = db.to_str().unwrap();
    let nothing = d.join("n.json");
    std::fs::write(&nothing, "{\"x\": 1}").unwrap();
    let engram_file = engram(d, "e.json", "s", 1.0, 1.0);
    std::fs::write(d.join("target.db"), b"").unwrap();
    std::os::unix::fs::symlink(d.join("target.db"), d.join("link.db")).unwrap();
    let link = d.join("link.db");
    let rows: Vec<(Vec<&str>, &[&str])> = vec![
        (
            vec![
                "history",
                "add",
                "/nonexistent.json",
                "--machine",
                "m",
                "--history",
                db,
            ],
            &["no such file"],
        ),
        (
            vec![
                "history",
                "add",
                nothing.to_str().unwrap(),
                "--machine",
                "m",
                "--history",
                db,
            ],
            &["no figures"],
        ),
        (
            vec![
                "history",
                "add",
                engram_file.to_str().unwrap(),
                "--history",
                db,
            ],
            &["--machine"],
        ),
        (
            vec![
                "history",
                "add",
                engram_file.to_str().unwrap(),
                "--machine",
                "m",
                "--history",
                link.to_str().unwrap(),
            ],
            &["symbolic link"],
        ),
        (
            vec![
                "history",
                "add",
                engram_file.to_str().unwrap(),
                "--machine",
                "m",
                "--history",
                "ftp://x",
            ],
            &["--history"],
        ),
        (
            vec!["history", "show", "--metric", "nope", "--history", db],
            &["no rows match"],
        ),
        (
            vec!["history", "changes", "--significance", "3", "--history", db],
            &["--significance"],
        ),
        (
            vec![
                "history",
                "compare",
                "--competitor",
                "qdrant",
                "--scenario",
                "none",
                "--history",
                db,
            ],
            &["no rows"],
        ),
    ];
    common::assert_bad_input(&rows);
}

/// `load --baseline-history`: the dashboard's baseline from the history — the
/// scenario's latest runs on this machine, read back from their reports.
#[test]
fn load_takes_its_baseline_from_the_history() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let db = d.join("h.db");
    let db = db.to_str().unwrap();
    let mut p99s = Vec::new();
    for i in 0..2 {
        let out = d.join(format!("run{i}"));
        ok(&[
            "load",
            "--target",
            "embedded",
            "--duration",
            "2",
            "--rate",
            "1000",
            "--preload",
            "200",
            "--out",
            out.to_str().unwrap(),
        ]);
        let r: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap())
                .unwrap();
        p99s.push(r["latency"]["p99_ms"].as_f64().unwrap());
        ok(&[
            "history",
            "add",
            out.to_str().unwrap(),
            "--commit",
            &format!("b{i}"),
            "--history",
            db,
        ]);
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = common::hwprof()
        .args([
            "load",
            "--target",
            "embedded",
            "--duration",
            "4",
            "--rate",
            "200",
            "--preload",
            "200",
        ])
        .args(["--baseline-history", db, "--metrics", &addr])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let body = common::scrape_until(&addr, "hwprof_baseline_runs");
    let _ = child.wait();
    let runs = body
        .lines()
        .find(|l| l.starts_with("hwprof_baseline_runs"))
        .unwrap();
    assert!(runs.ends_with(" 2") || runs.ends_with(" 2.0"), "{runs}");
    let max = body
        .lines()
        .find(|l| {
            l.starts_with("hwprof_baseline_latency_seconds{")
                && l.contains("operation=\"all\"")
                && l.contains("quantile=\"0.99\"")
                && l.contains("estimate=\"exact\"")
                && l.contains("bound=\"max\"")
        })
        .unwrap_or_else(|| panic!("{body}"));
    let v: f64 = max.rsplit(' ').next().unwrap().parse().unwrap();
    let want = p99s.iter().cloned().fold(0.0, f64::max) / 1e3;
    assert!((v - want).abs() < 1e-9, "{max} vs {want}");
    // A scenario with no history is bad input.
    let o = run(&[
        "load",
        "--target",
        "embedded",
        "--duration",
        "1",
        "--baseline-history",
        d.join("empty.db").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no runs of scenario"));
}
