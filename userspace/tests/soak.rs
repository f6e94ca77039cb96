//! `hwprof soak` end to end against the `hwprof serve` it starts, on loopback,
//! every run bounded in time: a planted leak found with its rate inside the
//! slope's interval, the same run without the leak called clean, a soak killed
//! with SIGKILL resumed from its checkpoint, bad input.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::*;

/// A small read-only scenario (100 memories of 64-d) so preloading is instant.
fn scenario(dir: &Path) -> String {
    let p = dir.join("soak-test.toml");
    std::fs::write(
        &p,
        "name = \"soak-test\"\n[duration]\ntotal_seconds = 10\n[arrival]\npattern = \"constant\"\nrate = 200\n\
         [operations]\nstore_weight = 0.0\nrecall_weight = 1.0\nembedding_search_weight = 0.0\n\
         [data]\nnum_nodes = 100\nembedding_dim = 64\n",
    )
    .unwrap();
    p.display().to_string()
}

fn soak_json(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("soak.json")).unwrap()).unwrap()
}

fn trend<'a>(r: &'a Value, resource: &str) -> &'a Value {
    r["trends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["resource"] == resource)
        .unwrap_or_else(|| panic!("no {resource} trend in {r}"))
}

/// A soak of 24 s (one segment, so no gaps between segments), 1 s samples.
fn short_soak(dir: &Path, serve_args: &str) -> (Option<i32>, Value) {
    let sc = scenario(dir);
    let out = dir.join("soak");
    let o = hwprof()
        .args([
            "soak",
            "--scenario",
            &sc,
            "--duration",
            "24s",
            "--interval",
            "1s",
        ])
        .args([
            "--checkpoint",
            "24s",
            "--warmup",
            "4s",
            "--leak-limit",
            "10",
        ])
        .args(["--serve-args", serve_args, "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    (o.status.code(), soak_json(&out))
}

#[test]
fn a_planted_leak_is_found_with_its_rate_inside_the_slope_interval() {
    let tmp = tempfile::tempdir().unwrap();
    // 200 B per request at 200 req/s: 144 MB/h of RSS.
    let (code, r) = short_soak(tmp.path(), "--leak-bytes-per-op 200");
    let rss = trend(&r, "rss");
    assert_eq!(rss["verdict"], "over-limit", "{}", rss["line"]);
    assert_eq!(code, Some(1), "a leak over the limit fails the soak");
    // The rate planted, from the requests the server actually answered.
    let completed = r["segments"][0]["completed"].as_f64().unwrap();
    let planted = 200.0 * completed / r["load_s"].as_f64().unwrap() * 3600.0 / 1e6;
    let (lo, hi) = (
        rss["slope_lo"].as_f64().unwrap(),
        rss["slope_hi"].as_f64().unwrap(),
    );
    assert!(
        lo <= planted * 1.05 && planted * 0.95 <= hi,
        "planted {planted:.1} MB/h outside {}",
        rss["line"]
    );
    assert_eq!(r["status"], "complete");
    for f in [
        "soak.md",
        "soak.hlog",
        "soak-rss.svg",
        "soak-rss.png",
        "scenario.toml",
    ] {
        assert!(tmp.path().join("soak").join(f).is_file(), "{f} missing");
    }
    let hlog = std::fs::read_to_string(tmp.path().join("soak/soak.hlog")).unwrap();
    assert!(hlog.lines().filter(|l| l.contains("Tag=recall")).count() >= 20);
}

#[test]
fn the_same_soak_without_the_leak_is_clean() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, r) = short_soak(tmp.path(), "--threads 1");
    for res in ["rss", "open-fds", "threads"] {
        let t = trend(&r, res);
        assert_ne!(t["verdict"], "over-limit", "{}", t["line"]);
        assert!(t["samples"].as_u64().unwrap() >= 15, "{}", t["line"]);
    }
    assert_eq!(code, Some(0));
}

#[test]
fn a_killed_soak_resumes_from_its_last_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let sc = scenario(tmp.path());
    let out = tmp.path().join("soak");
    let mut child = hwprof()
        .args([
            "soak",
            "--scenario",
            &sc,
            "--duration",
            "12s",
            "--interval",
            "1s",
        ])
        .args([
            "--checkpoint",
            "4s",
            "--warmup",
            "0",
            "--out",
            out.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Bounded: the first checkpoint is due after 4 s of load.
    let t0 = Instant::now();
    let first = loop {
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "no checkpoint written"
        );
        if let Ok(text) = std::fs::read_to_string(out.join("soak.json")) {
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["segments"].as_array().is_some_and(|s| !s.is_empty()) {
                break v;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    // The server it started dies with it (PR_SET_PDEATHSIG).
    let server = first["segments"][0]["target_pid"].as_u64().unwrap();
    let t0 = Instant::now();
    while Path::new(&format!("/proc/{server}")).exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "server {server} outlived hwprof"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = run(&["soak", "--resume", out.to_str().unwrap()]);
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r = soak_json(&out);
    assert_eq!(r["status"], "complete");
    assert!(
        (r["load_s"].as_f64().unwrap() - 12.0).abs() < 1e-6,
        "{}",
        r["load_s"]
    );
    let segments = r["segments"].as_array().unwrap();
    assert!(segments.len() >= 3, "{segments:?}");
    // What the first run checkpointed is kept as it was.
    assert_eq!(segments[0], first["segments"][0]);
    assert!(
        r["warnings"].to_string().contains("resumed at"),
        "{}",
        r["warnings"]
    );
    // A new server was started: the restart is named, process trends start there.
    let restarts = r["target_restarts"].as_array().unwrap();
    assert_eq!(restarts.len(), 1, "{r}");
    assert!(trend(&r, "rss")["from_s"].as_f64().unwrap() >= restarts[0].as_f64().unwrap());
    // Done is done.
    assert_bad_input(&[(
        vec!["soak", "--resume", out.to_str().unwrap()],
        &["complete"],
    )]);
}

#[test]
fn soak_bad_input_is_one_line_and_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("x");
    let ds = d.to_str().unwrap();
    let missing = tmp.path().join("none");
    assert_bad_input(&[
        (vec!["soak", "--out", ds], &["--duration"]),
        (
            vec![
                "soak",
                "--duration",
                "1m",
                "--interval",
                "0.01",
                "--out",
                ds,
            ],
            &["--interval"],
        ),
        (
            vec![
                "soak",
                "--duration",
                "1m",
                "--checkpoint",
                "5s",
                "--interval",
                "10s",
                "--out",
                ds,
            ],
            &["--checkpoint"],
        ),
        (
            vec!["soak", "--duration", "1m", "--warmup", "2m", "--out", ds],
            &["--warmup"],
        ),
        (
            vec![
                "soak",
                "--duration",
                "1m",
                "--target",
                "ftp://x",
                "--out",
                ds,
            ],
            &["--target"],
        ),
        (
            vec![
                "soak",
                "--duration",
                "1m",
                "--target",
                "http://127.0.0.1:9",
                "--serve-args",
                "--threads 1",
                "--out",
                ds,
            ],
            &["--serve-args"],
        ),
        (
            vec!["soak", "--resume", missing.to_str().unwrap()],
            &["--resume"],
        ),
        (
            vec![
                "soak",
                "--duration",
                "1m",
                "--serve-args",
                "--no-such-flag",
                "--out",
                ds,
            ],
            &["hwprof serve did not start"],
        ),
    ]);
}
