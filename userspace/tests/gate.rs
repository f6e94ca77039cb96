//! `hwprof gate` end to end: reports judged from directories and from
//! interleaved commands (deterministic figures: the decision rule, the order,
//! the outputs), and real `hwprof serve` servers with and without a planted
//! slowdown (the instrument on the real thing).

mod common;

use std::path::Path;

use common::{exclusive, hwprof, run};
use serde_json::Value;

fn engram(dir: &Path, name: &str, p99: f64, throughput: f64) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join(name),
        format!(
            "{{\"p50_latency_ms\": {:.4}, \"p99_latency_ms\": {p99:.4}, \"overall_throughput\": {throughput:.2}, \"overall_error_rate\": 0.0}}",
            p99 / 3.0
        ),
    )
    .unwrap();
}

/// Six runs a side with ±1% spread around `p99` ms and `tput` req/s.
fn side(dir: &Path, p99: f64, tput: f64) {
    for (i, wiggle) in [1.0, 1.01, 0.99, 1.005, 0.995, 1.002].iter().enumerate() {
        engram(dir, &format!("run{i}.json"), p99 * wiggle, tput / wiggle);
    }
}

fn gate_json(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("gate.json")).unwrap()).unwrap()
}

#[test]
fn reports_judged_from_directories() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    side(&d.join("a"), 20.0, 600.0);
    side(&d.join("same"), 20.0, 600.0);
    side(&d.join("slow"), 24.0, 500.0);
    side(&d.join("fast"), 16.0, 700.0);
    let gate = |cur: &str, out: &str| {
        let o = run(&[
            "gate",
            "--baseline",
            d.join("a").to_str().unwrap(),
            "--current",
            d.join(cur).to_str().unwrap(),
            "--out",
            d.join(out).to_str().unwrap(),
        ]);
        (o.status.code(), gate_json(&d.join(out)))
    };
    let (code, g) = gate("slow", "o-slow");
    assert_eq!(code, Some(1), "{g:#}");
    assert_eq!(g["outcome"], "regression");
    assert_eq!(g["metrics"].as_array().unwrap().len(), 3);
    let tput = &g["metrics"][2];
    assert_eq!(tput["metric"], "throughput");
    assert_eq!(tput["better"], "higher");
    assert!((tput["ratio"].as_f64().unwrap() - 500.0 / 600.0).abs() < 0.01);
    assert_eq!(tput["outcome"], "regression");
    // The one-run rule sees the same 20% change.
    assert_eq!(g["one_run_rule"]["outcome"], "regression");

    let (code, g) = gate("same", "o-same");
    assert_eq!(code, Some(0), "{g:#}");
    assert_eq!(g["outcome"], "pass");
    let (code, g) = gate("fast", "o-fast");
    assert_eq!(
        (code, g["outcome"].as_str()),
        (Some(0), Some("improvement"))
    );

    // The four outputs, each well formed.
    let out = d.join("o-slow");
    let md = std::fs::read_to_string(out.join("gate.md")).unwrap();
    assert!(
        md.contains("| metric |") && md.contains("| throughput |"),
        "{md}"
    );
    assert!(md.contains("one-run ±5% rule"), "{md}");
    let junit = std::fs::read_to_string(out.join("gate.junit.xml")).unwrap();
    assert_eq!(junit.matches("<testcase ").count(), 3, "{junit}");
    assert_eq!(junit.matches("<failure ").count(), 3, "{junit}");
    assert!(junit.contains("failures=\"3\""));
    let bmf: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("gate.bmf.json")).unwrap()).unwrap();
    let p99 = &bmf["B"]["p99"];
    assert!(p99["lower_value"].as_f64() <= p99["value"].as_f64());
    assert!(p99["value"].as_f64() <= p99["upper_value"].as_f64());
    assert!(bmf["B"]["throughput_ratio"]["value"].as_f64().unwrap() < 0.9);
}

/// Commands run interleaved ABBA, each a fresh process told its side and
/// index; warm-up runs are discarded; the gate stops at the first look once
/// the answer is clear.
#[test]
fn commands_run_abba_and_stop_when_decided() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    // p99 = 20 ms (A) or 30 ms (B), wiggled by the run index; warm-up runs
    // (index 0) report an outlier that must not count.
    let cmd = |base: u32| {
        format!(
            "i=$HWPROF_GATE_RUN; v=$(( i == 0 ? 500 : {base} + i % 3 )); \
             printf '{{\"p99_latency_ms\": %s, \"overall_throughput\": 100}}' $v > {{out}}/r.json; \
             echo \"$HWPROF_GATE_SIDE $i\" >> {}/order.txt",
            d.display()
        )
    };
    let out = d.join("out");
    let o = hwprof()
        .args(["gate", "--ab", &cmd(20), &cmd(30)])
        .args([
            "--metric",
            "p99",
            "--min-repetitions",
            "6",
            "--repetitions",
            "10",
        ])
        .args(["--quiet", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    let g = gate_json(&out);
    assert_eq!(o.status.code(), Some(1), "{g:#}");
    assert_eq!(g["stopped_by"], "decided");
    assert_eq!(g["looks_done"], 1);
    let order = std::fs::read_to_string(d.join("order.txt")).unwrap();
    let sides: String = order.lines().map(|l| &l[..1]).collect();
    // One warm-up each, then ABBA blocks.
    assert_eq!(sides, "ABABBAABBAABBA", "{order}");
    let m = &g["metrics"][0];
    assert_eq!((m["n_a"].as_u64(), m["n_b"].as_u64()), (Some(6), Some(6)));
    assert!(
        m["median_a"].as_f64().unwrap() < 25.0,
        "warm-up counted: {m}"
    );
}

/// The instrument on real servers: a planted slowdown is a regression with
/// its CI; the same server against itself is not.
#[test]
fn planted_slowdown_on_real_servers() {
    let _x = exclusive();
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let scenario = d.join("s.toml");
    std::fs::write(
        &scenario,
        "name = \"gate-test\"\nseed = 1\n[duration]\ntotal_seconds = 0.6\n[arrival]\npattern = \"poisson\"\nrate = 300\n\
         [operations]\nstore_weight = 0.0\nrecall_weight = 0.5\nembedding_search_weight = 0.5\n\
         [data]\nnum_nodes = 2000\nembedding_dim = 768\n",
    )
    .unwrap();
    let exe = env!("CARGO_BIN_EXE_hwprof");
    let serve = format!("{exe} serve --preload 2000 --threads 1");
    let gate = |b: &str, out: &str| {
        let out = d.join(out);
        let o = hwprof()
            .args(["gate", "--server-a", &serve, "--server-b", b])
            .args(["--scenario", scenario.to_str().unwrap(), "--warmup", "0.3s"])
            .args(["--metric", "p50", "--metric", "p90"])
            .args(["--min-repetitions", "6", "--repetitions", "10", "--quiet"])
            .args(["--out", out.to_str().unwrap()])
            .output()
            .unwrap();
        (o, gate_json(&out))
    };
    let (o, g) = gate(&format!("{serve} --slowdown 500"), "slow");
    assert_eq!(o.status.code(), Some(1), "{g:#}");
    let p50 = &g["metrics"][0];
    assert_eq!(p50["outcome"], "regression", "{p50:#}");
    assert!(p50["worse_by_ci"]["lo"].as_f64().unwrap() > 0.0, "{p50:#}");
    assert!(p50["ratio"].as_f64().unwrap() > 1.5, "{p50:#}");
    let per_side = p50["n_a"].as_u64().unwrap() as usize;
    assert!(
        per_side == 6 || per_side == 10,
        "looks at 6 and 10: {per_side}"
    );
    assert_eq!(g["runs"].as_array().unwrap().len(), 2 * per_side);
    // Each repetition had its own server and its own load process.
    let runs = out_dirs(&d.join("slow/runs"));
    assert_eq!(runs.len(), 2 * per_side);
    for r in &runs {
        assert!(r.join("server.log").is_file() && r.join("report.json").is_file());
    }
    let (o, g) = gate(&serve, "same");
    assert_ne!(o.status.code(), Some(1), "{g:#}");
    assert_ne!(g["outcome"], "regression");
}

fn out_dirs(p: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(p)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect()
}

#[test]
fn bad_gate_input_exits_2_with_one_line() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    side(&d.join("a"), 20.0, 600.0);
    let a = d.join("a");
    let a = a.to_str().unwrap();
    let empty = d.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = d.join("o");
    let out = out.to_str().unwrap();
    let rows: Vec<(Vec<&str>, &[&str])> = vec![
        (vec!["gate"], &["required"]),
        (vec!["gate", "--server-a", "x"], &["--server-b"]),
        (vec!["gate", "--baseline", a], &["--current"]),
        (
            vec![
                "gate",
                "--baseline",
                a,
                "--current",
                "/nonexistent",
                "--out",
                out,
            ],
            &["--current", "not a directory"],
        ),
        (
            vec![
                "gate",
                "--baseline",
                a,
                "--current",
                empty.to_str().unwrap(),
                "--out",
                out,
            ],
            &["--current", "no reports"],
        ),
        (
            vec![
                "gate",
                "--baseline",
                a,
                "--current",
                a,
                "--metric",
                "nope.x",
                "--out",
                out,
            ],
            &["--metric nope.x", "no such figure"],
        ),
        (
            vec![
                "gate",
                "--baseline",
                a,
                "--current",
                a,
                "--metric",
                "p99:up",
                "--out",
                out,
            ],
            &["--metric", "neither higher nor lower"],
        ),
        (
            vec!["gate", "--baseline", a, "--current", a, "--threshold", "-5"],
            &["--threshold"],
        ),
        (
            vec!["gate", "--baseline", a, "--current", a, "--alpha", "2"],
            &["--alpha"],
        ),
        (
            vec![
                "gate",
                "--baseline",
                a,
                "--current",
                a,
                "--repetitions",
                "1",
            ],
            &["--repetitions"],
        ),
        (
            vec!["gate", "--ab", "true", "true", "--out", out],
            &["wrote no JSON report"],
        ),
    ];
    common::assert_bad_input(&rows);
}

/// `--metrics`: the judgements as verdict gauges, held until scraped once.
#[test]
fn verdicts_are_served_as_gauges() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    side(&d.join("a"), 20.0, 600.0);
    side(&d.join("slow"), 24.0, 500.0);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = hwprof()
        .args(["gate", "--baseline", d.join("a").to_str().unwrap()])
        .args(["--current", d.join("slow").to_str().unwrap()])
        .args([
            "--metrics",
            &addr,
            "--quiet",
            "--out",
            d.join("o").to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let body = common::scrape_until(&addr, "experiment=\"gate\"");
    let line = body
        .lines()
        .find(|l| l.starts_with("hwprof_verdict_ratio{") && l.contains("B vs A [throughput]"))
        .unwrap_or_else(|| panic!("{body}"));
    let v: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((v - 500.0 / 600.0).abs() < 0.01, "{line}");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "a regression, after the scrape");
}
