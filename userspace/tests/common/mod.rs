//! Helpers shared by the end-to-end test binaries: the built `hwprof`, its
//! output, the topology fixtures shipped in tests/data, reference tools.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
