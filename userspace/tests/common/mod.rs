//! Helpers shared by the end-to-end test binaries: the built `hwprof`, its
//! output, the topology fixtures shipped in tests/data, reference tools.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Experiments pin workers to this machine's CPUs: two at once would steal each
/// other's cores and blur the effect being measured, so they take turns.
static MACHINE: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    MACHINE.lock().unwrap_or_else(|e| e.into_inner())
}

/// The binary under test; `HWPROF_BIN` runs the same tests against another
/// build (e.g. an older one, to see a test fail before its fix).
pub fn hwprof() -> Command {
    Command::new(
        std::env::var_os("HWPROF_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_hwprof").into()),
    )
}

pub fn run(args: &[&str]) -> Output {
    hwprof().args(args).output().expect("hwprof runs")
}

pub fn json(args: &[&str]) -> Value {
    let out = run(args);
    assert!(
        out.status.success(),
        "hwprof {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("exactly one JSON document on stdout")
}

pub fn topologies() -> PathBuf {
    std::env::var_os("HWPROF_TOPOLOGIES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/topologies"))
}

pub fn tool_output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

/// A `hwprof serve` on a free loopback port, stopped (SIGINT) on drop.
pub struct Server {
    pub child: Child,
    pub url: String,
}

impl Server {
    pub fn start(args: &[&str]) -> Server {
        let mut child = hwprof()
            .args(["serve", "--port", "0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("hwprof serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        Server { child, url }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
    }
}

/// Every row must be refused as bad input: exit 2, one line on stderr holding
/// each expected fragment, no panic. Collects every failure before asserting.
pub fn assert_bad_input(rows: &[(Vec<&str>, &[&str])]) {
    let mut failures = Vec::new();
    for (args, wants) in rows {
        let o = run(args);
        let stderr = String::from_utf8_lossy(&o.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        let ok = o.status.code() == Some(2)
            && lines.len() == 1
            && wants.iter().all(|w| lines[0].contains(w))
            && !stderr.contains("panicked");
        if !ok {
            failures.push(format!("{args:?}: exit {:?}: {stderr}", o.status.code()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// GET http://ADDR/metrics until the body contains `needle` (bounded: 30 s).
pub fn scrape_until(addr: &str, needle: &str) -> String {
    use std::io::{Read, Write};
    let t0 = Instant::now();
    loop {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "{addr} never served {needle}"
        );
        if let Ok(mut c) = std::net::TcpStream::connect(addr) {
            write!(
                c,
                "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            let mut out = String::new();
            let _ = c.read_to_string(&mut out);
            if out.contains(needle) {
                return out;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
