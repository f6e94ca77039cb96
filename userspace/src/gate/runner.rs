//! One repetition of a gate: run a command that writes a report, or start a
//! server, load it with `hwprof load` in a fresh process, and stop it. Every
//! repetition is its own process (no pseudo-replication); its files stay in
//! its own directory under the gate's --out.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};

use crate::error::usage;
use crate::measure::cpu_time::{self, Interference};

/// How long a started server may take to accept connections (preloading a
/// large store takes a while; a wrong command fails long before).
pub const SERVER_START_TIMEOUT: Duration = Duration::from_secs(120);

/// What produces a report for one repetition.
#[derive(Debug, Clone)]
pub enum Producer {
    /// A shell command; `{out}` is replaced by the repetition's directory
    /// (also in $HWPROF_GATE_OUT). The report is `{out}/report.json`, another
    /// JSON file there, or the command's standard output.
    Command(String),
    /// A server command (`{port}` or `{addr}` replaced; else `--port N` is
    /// appended), loaded by `hwprof load --scenario` after `warmup` seconds of
    /// discarded load.
    Server {
        command: String,
        scenario: PathBuf,
        warmup: f64,
        load_args: Vec<String>,
    },
}

/// The outcome of one repetition.
#[derive(Debug)]
pub struct Produced {
    pub report: PathBuf,
    pub json: serde_json::Value,
    pub warnings: Vec<String>,
    /// What else used the machine's CPUs while the repetition was measured
    /// (None: not measurable here). The gate discards a run that was not quiet.
    pub interference: Option<Interference>,
}

/// Windows shorter than this are not judged busy or quiet (see `Window::close`).
const MIN_ACCOUNTED_WINDOW: Duration = Duration::from_millis(250);

/// Whole-machine CPU accounting around a measured window: the machine's busy
/// and steal time, less what this process, its waited-for children and
/// (optionally) a running server's process group used.
struct Window {
    cpus: Vec<usize>,
    start: Instant,
    machine: cpu_time::CpuTimes,
    ours_ns: u64,
    group: Option<u32>,
}

impl Window {
    fn open(group: Option<u32>) -> Option<Window> {
        let cpus = cpu_time::all_cpus();
        let machine = cpu_time::sample(&cpus)?;
        Some(Window {
            ours_ns: Window::ours(group),
            cpus,
            start: Instant::now(),
            machine,
            group,
        })
    }

    fn ours(group: Option<u32>) -> u64 {
        cpu_time::rusage_ns(false)
            + cpu_time::rusage_ns(true)
            + group.map_or(0, cpu_time::process_group_ns)
    }

    fn close(self) -> Option<Interference> {
        // /proc/stat counts in 10 ms ticks: a shorter window cannot say how
        // busy the machine was (one stray tick of a 2-CPU, 50 ms window is 10%).
        if self.start.elapsed() < MIN_ACCOUNTED_WINDOW {
            return None;
        }
        let after = cpu_time::sample(&self.cpus)?;
        let ours = Window::ours(self.group).saturating_sub(self.ours_ns);
        Some(cpu_time::interference(
            self.machine,
            after,
            self.cpus.len(),
            self.start.elapsed().as_nanos() as u64,
            ours,
        ))
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A command run through `sh -c` in its own process group, so stopping it
/// stops whatever it started (a wrapper script, `taskset`, the server).
struct Group {
    child: Child,
    what: String,
}

impl Group {
    fn spawn(
        command: &str,
        log: &Path,
        env: &[(&str, String)],
        what: &str,
    ) -> anyhow::Result<Group> {
        use std::os::unix::process::CommandExt;
        let file = crate::output::open_log(log)?;
        let err = file.try_clone()?;
        let mut c = Command::new("/bin/sh");
        c.arg("-c")
            .arg(command)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .process_group(0);
        for (k, v) in env {
            c.env(k, v);
        }
        let child = c
            .spawn()
            .with_context(|| format!("starting {what}: {command}"))?;
        Ok(Group {
            child,
            what: what.into(),
        })
    }

    /// SIGTERM to the group, then SIGKILL after `grace`.
    fn stop(&mut self, grace: Duration) {
        let pgid = self.child.id() as i32;
        // SAFETY: signalling a process group we created.
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                // The leader is gone; make sure nothing of the group lingers.
                // SAFETY: as above.
                unsafe { libc::kill(-pgid, libc::SIGKILL) };
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: as above.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop(Duration::from_secs(5));
        }
    }
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(3).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

/// The report a repetition wrote: report.json, another JSON file in `dir`, or
/// its standard output (saved as stdout.txt).
fn find_report(dir: &Path, stdout: Option<&Path>) -> Option<(PathBuf, serde_json::Value)> {
    let parse = |p: &Path| -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(p).ok()?;
        serde_json::from_str::<serde_json::Value>(text.trim())
            .ok()
            .filter(|v| v.is_object())
    };
    let preferred = dir.join("report.json");
    if let Some(v) = parse(&preferred) {
        return Some((preferred, v));
    }
    let mut others: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    others.sort();
    for p in others {
        if let Some(v) = parse(&p) {
            return Some((p, v));
        }
    }
    let s = stdout?;
    parse(s).map(|v| (s.to_path_buf(), v))
}

/// A free loopback port for a server (bound, read, released).
fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn wait_ready(port: u16, server: &mut Group, log: &Path) -> anyhow::Result<()> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + SERVER_START_TIMEOUT;
    loop {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            return Err(anyhow!(
                "{} exited ({status}) before accepting connections on port {port}: {}",
                server.what,
                tail(log)
            ));
        }
        if Instant::now() > deadline {
            return Err(anyhow!(
                "{} did not accept connections on 127.0.0.1:{port} within {} s: {}",
                server.what,
                SERVER_START_TIMEOUT.as_secs(),
                tail(log)
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What makes one repetition's report: a [`Producer`] here; tests plug in
/// synthetic ones to measure the gate's statistics over thousands of gates.
pub trait Produce: std::fmt::Debug {
    /// Run one repetition into `dir`.
    fn produce(&self, dir: &Path, side: &str, index: usize) -> anyhow::Result<Produced>;
    /// `commands`, `servers`, … for the report.
    fn mode(&self) -> &'static str;
}

impl Produce for Producer {
    fn mode(&self) -> &'static str {
        match self {
            Producer::Command(_) => "commands",
            Producer::Server { .. } => "servers",
        }
    }

    fn produce(&self, dir: &Path, side: &str, index: usize) -> anyhow::Result<Produced> {
        crate::output::prepare_dir("--out", dir)?;
        let env = [
            ("HWPROF_GATE_OUT", dir.display().to_string()),
            ("HWPROF_GATE_SIDE", side.to_string()),
            ("HWPROF_GATE_RUN", index.to_string()),
        ];
        match self {
            Producer::Command(cmd) => {
                let cmd = cmd.replace("{out}", &shell_quote(&dir.display().to_string()));
                let out = dir.join("stdout.txt");
                let file = crate::output::open_log(&out)?;
                let err_log = dir.join("stderr.txt");
                let err = crate::output::open_log(&err_log)?;
                let mut c = Command::new("/bin/sh");
                c.arg("-c")
                    .arg(&cmd)
                    .stdin(Stdio::null())
                    .stdout(file)
                    .stderr(err);
                for (k, v) in &env {
                    c.env(k, v);
                }
                let window = Window::open(None);
                let status = c
                    .status()
                    .with_context(|| format!("running {side} #{index}: {cmd}"))?;
                let interference = window.and_then(Window::close);
                let found = find_report(dir, Some(&out));
                match (status.success(), found) {
                    (_, Some((report, json))) => Ok(Produced {
                        report,
                        json,
                        interference,
                        warnings: if status.success() {
                            vec![]
                        } else {
                            vec![format!(
                                "{side} #{index}: the command exited with {status} but wrote a report; it is used"
                            )]
                        },
                    }),
                    (true, None) => Err(usage(format!(
                        "{side} #{index}: `{cmd}` wrote no JSON report (into {{out}}, i.e. {}, or on stdout)",
                        dir.display()
                    ))),
                    (false, None) => Err(anyhow!(
                        "{side} #{index}: `{cmd}` failed ({status}) without a report: {}",
                        tail(&err_log)
                    )),
                }
            }
            Producer::Server {
                command,
                scenario,
                warmup,
                load_args,
            } => {
                let port = free_port()?;
                let mut cmd = command
                    .replace("{port}", &port.to_string())
                    .replace("{addr}", &format!("127.0.0.1:{port}"));
                if cmd == *command {
                    cmd = format!("{cmd} --port {port}");
                }
                let log = dir.join("server.log");
                let mut server = Group::spawn(&cmd, &log, &env, &format!("server {side}"))?;
                wait_ready(port, &mut server, &log)?;
                let exe = std::env::current_exe().context("finding hwprof's own binary")?;
                let target = format!("http://127.0.0.1:{port}");
                let load = |duration: Option<f64>, out: Option<&Path>, log: &Path| {
                    let mut c = Command::new(&exe);
                    c.arg("load")
                        .arg("--target")
                        .arg(&target)
                        .arg("--scenario")
                        .arg(scenario)
                        .args(load_args);
                    if let Some(d) = duration {
                        c.arg("--duration").arg(format!("{d}"));
                    }
                    if let Some(o) = out {
                        c.arg("--out").arg(o);
                    }
                    let f = crate::output::open_log(log)?;
                    c.stdin(Stdio::null()).stdout(f.try_clone()?).stderr(f);
                    c.status().context("running hwprof load")
                };
                if *warmup > 0.0 {
                    let status = load(Some(*warmup), None, &dir.join("warmup.log"))?;
                    if status.code() == Some(2) {
                        return Err(usage(format!(
                            "the warm-up load was refused: {}",
                            tail(&dir.join("warmup.log"))
                        )));
                    }
                }
                let load_log = dir.join("load.log");
                let window = Window::open(Some(server.child.id()));
                let status = load(None, Some(dir), &load_log)?;
                let interference = window.and_then(Window::close);
                server.stop(Duration::from_secs(10));
                if status.code() == Some(2) {
                    return Err(usage(format!("hwprof load refused: {}", tail(&load_log))));
                }
                let (report, json) = find_report(dir, None).ok_or_else(|| {
                    anyhow!(
                        "{side} #{index}: hwprof load wrote no report ({status}): {}",
                        tail(&load_log)
                    )
                })?;
                let mut warnings = vec![];
                if !status.success() {
                    warnings.push(format!(
                        "{side} #{index}: hwprof load exited with {status} (validation failed); its report is used"
                    ));
                }
                Ok(Produced {
                    report,
                    json,
                    warnings,
                    interference,
                })
            }
        }
    }
}

/// Every report in a directory of runs already made: `report.json` in it or in
/// its subdirectories, or JSON files at its top level, in name order.
pub fn reports_in(flag: &str, dir: &Path) -> anyhow::Result<Vec<(PathBuf, serde_json::Value)>> {
    if !dir.is_dir() {
        return Err(usage(format!("{flag} {}: not a directory", dir.display())));
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| usage(format!("{flag} {}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    let mut out = Vec::new();
    for p in entries {
        let file = if p.is_dir() {
            p.join("report.json")
        } else if p.extension().is_some_and(|x| x == "json") {
            p
        } else {
            continue;
        };
        if !file.is_file() {
            continue;
        }
        out.push(crate::input::read_report_json(flag, &file)?);
    }
    if out.is_empty() {
        return Err(usage(format!(
            "{flag} {}: no reports (report.json in it or its subdirectories, or *.json)",
            dir.display()
        )));
    }
    Ok(out)
}
