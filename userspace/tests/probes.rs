//! eBPF probes against a live target, checked against independent tools:
//! bpftrace for futex waits, `perf stat` for context switches, bpftool for
//! leftovers. These need root and the probes built in (scripts/install.sh does
//! both on CI); without root they say so and return.
#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

/// Probes attach to the whole machine's scheduler: tests take turns.
static MACHINE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn hwprof() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hwprof"))
}

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn target_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hwprof-probe-target"))
}

struct Target {
    child: Child,
    pid: u32,
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_target(args: &[&str]) -> Target {
    let mut child = Command::new(target_bin())
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let pid = line.trim().strip_prefix("ready ").unwrap().parse().unwrap();
    Target { child, pid }
}

/// Skip (with the reason) unless root and probes are built; fail if root and the
/// probes are missing, since CI installs the toolchain.
fn ready() -> bool {
    if !root() {
        eprintln!("not root: eBPF probes cannot be loaded; skipped");
        return false;
    }
    true
}

fn attach(pid: u32, extra: &[&str]) -> Value {
    let out = hwprof()
        .args(["attach", "--pid", &pid.to_string(), "--json"])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "attach failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

const FUTEX_WAIT_OPS: &str = "((args->op & 127) == 0 || (args->op & 127) == 9 || (args->op & 127) == 6 || (args->op & 127) == 13 || (args->op & 127) == 11)";

/// Count futex waits of `pid` with bpftrace for about `secs`; returns (count,
/// seconds). The window is measured inside bpftrace (BEGIN to the interval
/// probe) rather than assumed to be `secs`: two CI runs here saw bpftrace's
/// rate at exactly twice hwprof's for the stress-ng waiter, and the measured
/// window is what the rate should be divided by in any case.
fn bpftrace_futex_waits(pid: u32, secs: u32) -> Result<(f64, f64), String> {
    let prog = format!(
        "BEGIN {{ @start = nsecs; }} tracepoint:syscalls:sys_enter_futex /pid == {pid} && {FUTEX_WAIT_OPS}/ {{ @waits = count(); }} interval:s:{secs} {{ printf(\"window_ns: %llu\\n\", nsecs - @start); exit(); }}"
    );
    bpftrace_count(&prog, "@waits")
}

/// Run a bpftrace program that ends by printing `window_ns: N` (its own
/// window, BEGIN to exit) and then the count map `counter`: (count, seconds).
/// bpftrace prints no line for a count map that was never incremented, so a
/// window without the counter is a count of 0 (and the caller's comparison
/// then says so with both figures). Anything else is an error that carries
/// bpftrace's exit status and output, so a failure in CI says what happened.
fn bpftrace_count(prog: &str, counter: &str) -> Result<(f64, f64), String> {
    let out = Command::new("bpftrace")
        .arg("-e")
        .arg(prog)
        .output()
        .map_err(|e| format!("bpftrace did not start: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let value = |prefix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix)?.trim().parse::<f64>().ok())
    };
    let window = value("window_ns: ").ok_or_else(|| {
        format!(
            "bpftrace ({}) printed no window; stdout: {}; stderr: {}",
            out.status,
            text.chars().take(600).collect::<String>(),
            String::from_utf8_lossy(&out.stderr)
                .chars()
                .take(600)
                .collect::<String>()
        )
    })?;
    Ok((value(&format!("{counter}: ")).unwrap_or(0.0), window / 1e9))
}

/// Tolerance: the two tools watch windows of the same length that start a few
/// hundred ms apart (bpftrace compiles its script first), and count at different
/// points (hwprof at futex exit, bpftrace at entry). A contended mutex's wait rate
/// moves by about 10% from one second to the next here, so rates must agree
/// within 25%.
const RATE_TOLERANCE: f64 = 0.25;

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * a.max(b)
}

#[test]
fn futex_waits_agree_with_bpftrace_and_resolve_to_the_static() {
    if !ready() {
        return;
    }
    let _m = MACHINE.lock().unwrap_or_else(|e| e.into_inner());
    let t = start_target(&["mutex", "4", "12"]);
    let pid = t.pid;
    let bt = std::thread::spawn(move || bpftrace_futex_waits(pid, 4));
    // The BTF raw tracepoints at the same time, in a second session.
    let btf = std::thread::spawn(move || {
        hwprof()
            .args([
                "attach",
                "--pid",
                &pid.to_string(),
                "--json",
                "--probes",
                "futex",
                "--duration",
                "4",
            ])
            .env("HWPROF_PROBES_BTF", "1")
            .output()
            .unwrap()
    });
    let v = attach(pid, &["--probes", "futex,sched", "--duration", "4"]);
    let (bt_waits, bt_secs) = bt.join().unwrap().unwrap_or_else(|e| panic!("{e}"));
    let f = &v["probes"]["futex"];
    let top = &f["top"][0];
    // The workers by name, as one group; the code that waits on the lock.
    let groups = &v["probes"]["sched"]["groups"];
    let workers = groups
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "mutex-worker-{0..3}")
        .unwrap_or_else(|| panic!("no worker group: {groups}"));
    assert_eq!(workers["threads"], 4, "{workers}");
    assert!(workers["futex_waits"].as_u64().unwrap() > 100, "{workers}");
    let stacks = top["stacks"].as_array().unwrap();
    eprintln!("waiting code of the top futex: {}", top["stacks"]);
    // The innermost frame is the futex call site (libc's syscall for std's
    // Mutex), symbolised; outer frames need frame pointers.
    let inner = stacks
        .first()
        .and_then(|s| s["frames"][0].as_str())
        .unwrap_or_else(|| panic!("the waits on the lock were not stack-walked: {top}"));
    assert!(!inner.starts_with("0x"), "unsymbolised: {top}");
    assert!(
        top["resolved"]["symbol"]
            .as_str()
            .unwrap_or("")
            .contains("CONTENDED_LOCK"),
        "top futex {top}"
    );
    let ours = f["total_waits"].as_f64().unwrap() / v["duration_s"].as_f64().unwrap();
    let theirs = bt_waits / bt_secs;
    eprintln!(
        "futex waits: hwprof {ours:.0}/s, bpftrace {theirs:.0}/s, top {}",
        top["resolved"]["symbol"]
    );
    assert!(ours > 100.0, "a contended mutex waits often: {ours}/s");
    assert!(
        close(ours, theirs, RATE_TOLERANCE),
        "hwprof {ours:.0}/s vs bpftrace {theirs:.0}/s"
    );
    // The futex probe runs from the classic syscall tracepoints; asked for
    // the BTF raw tracepoints (where the kernel has BTF), it says so and counts
    // the same lock over the same window.
    let attached = v["probes"]["attached"].to_string();
    assert!(
        attached.contains("futex: tracepoints syscalls:sys_enter_futex, syscalls:sys_exit_futex"),
        "{attached}"
    );
    let out = btf.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    if std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
        let b: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            b["probes"]["attached"]
                .to_string()
                .contains("futex: tp_btf sys_enter, sys_exit"),
            "{} {}",
            b["probes"]["attached"],
            b["probes"]["warnings"]
        );
        let via_btf = b["probes"]["futex"]["total_waits"].as_f64().unwrap()
            / b["duration_s"].as_f64().unwrap();
        eprintln!(
            "futex waits, same window: classic tracepoints {ours:.0}/s, tp_btf {via_btf:.0}/s"
        );
        assert!(
            close(ours, via_btf, RATE_TOLERANCE),
            "classic tracepoints {ours:.0}/s vs tp_btf {via_btf:.0}/s"
        );
    }
}

/// Count futex waits of `pid` that slept, with bpftrace: a wait call (syscall
/// tracepoints) in which the thread was switched out asleep (sched_switch),
/// once per call. Returns (count, seconds) as [`bpftrace_futex_waits`].
fn bpftrace_futex_waits_that_slept(pid: u32, secs: u32) -> Result<(f64, f64), String> {
    let prog = format!(
        "BEGIN {{ @start = nsecs; }} \
         tracepoint:syscalls:sys_enter_futex /pid == {pid} && {FUTEX_WAIT_OPS}/ {{ @in[tid] = 1; }} \
         tracepoint:syscalls:sys_exit_futex /@in[tid]/ {{ delete(@in[tid]); }} \
         tracepoint:sched:sched_switch /@in[args->prev_pid] == 1 && (args->prev_state & 255) != 0/ {{ @slept = count(); @in[args->prev_pid] = 2; }} \
         interval:s:{secs} {{ printf(\"window_ns: %llu\\n\", nsecs - @start); clear(@in); exit(); }}"
    );
    bpftrace_count(&prog, "@slept")
}

/// `futex-blocked` takes the futex report from the scheduler alone: its waits
/// that slept agree with bpftrace's count of the same (syscall and switch
/// tracepoints together), over the same window, and name the same lock and
/// code; `--probe-cost` times its programs.
#[test]
fn futex_waits_from_the_scheduler_agree_with_bpftrace() {
    if !ready() {
        return;
    }
    let _m = MACHINE.lock().unwrap_or_else(|e| e.into_inner());
    let t = start_target(&["mutex", "4", "12"]);
    let pid = t.pid;
    let bt = std::thread::spawn(move || bpftrace_futex_waits_that_slept(pid, 4));
    let v = attach(
        pid,
        &[
            "--probes",
            "futex-blocked",
            "--probe-cost",
            "--duration",
            "4",
        ],
    );
    let (bt_slept, bt_secs) = bt.join().unwrap().unwrap_or_else(|e| panic!("{e}"));
    let f = &v["probes"]["futex"];
    assert_eq!(f["seen_from"], "scheduler", "{f}");
    let top = &f["top"][0];
    assert!(
        top["resolved"]["symbol"]
            .as_str()
            .unwrap_or("")
            .contains("CONTENDED_LOCK"),
        "top futex {top}"
    );
    let inner = top["stacks"][0]["frames"][0].as_str().unwrap_or("0x");
    assert!(
        !inner.starts_with("0x"),
        "no symbolised waiting code: {top}"
    );
    let ours = f["total_waits"].as_f64().unwrap() / v["duration_s"].as_f64().unwrap();
    let theirs = bt_slept / bt_secs;
    eprintln!("futex waits that slept: hwprof (scheduler) {ours:.0}/s, bpftrace {theirs:.0}/s");
    assert!(
        ours > 100.0,
        "a contended mutex's waiters sleep often: {ours}/s"
    );
    assert!(
        close(ours, theirs, RATE_TOLERANCE),
        "hwprof (scheduler) {ours:.0}/s vs bpftrace {theirs:.0}/s"
    );
    // Wakes seen from the waker's side: about one per wait that slept.
    let wakes = f["total_wakes"].as_f64().unwrap();
    assert!(
        wakes > 0.5 * f["total_waits"].as_f64().unwrap(),
        "wakeups by futex wakes: {f}"
    );
    // No syscall tracepoint was attached.
    let attached = v["probes"]["attached"].to_string();
    assert!(
        attached.contains("sched:sched_switch") && !attached.contains("syscalls:"),
        "{attached}"
    );
    let cost = &v["probes"]["cost"];
    let switch = cost["programs"]
        .as_array()
        .unwrap_or_else(|| panic!("no probe cost: {}", v["probes"]["warnings"]))
        .iter()
        .find(|p| p["program"] == "hwp_futex_blocked_switch")
        .unwrap_or_else(|| panic!("{cost}"));
    assert!(switch["runs"].as_u64().unwrap() > 100, "{switch}");
    let ns = switch["ns_per_run"].as_f64().unwrap();
    assert!(ns > 0.0 && ns < 1e6, "{switch}");
    let share = cost["cpu_share"].as_f64().unwrap();
    assert!(share > 0.0 && share < 1.0, "{cost}");
    eprintln!("probe cost: {cost}");
}

#[test]
fn stress_ng_futex_contention_is_named_and_agrees() {
    if !ready() {
        return;
    }
    if Command::new("stress-ng").arg("--version").output().is_err() {
        panic!("stress-ng missing: scripts/install.sh --test installs it");
    }
    let _m = MACHINE.lock().unwrap_or_else(|e| e.into_inner());
    let mut sng = Command::new("stress-ng")
        .args(["--futex", "2", "--timeout", "12"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // stress-ng forks a worker per stressor, and each futex worker forks a waiter:
    // stress-ng -> stress-ng-futex (waker) -> stress-ng-futex (waiter). The waits
    // happen in the waiter, the deepest descendant.
    let deadline = Instant::now() + Duration::from_secs(5);
    let children = |p: u32| -> Option<u32> {
        std::fs::read_to_string(format!("/proc/{p}/task/{p}/children"))
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let worker = loop {
        if let Some(waiter) = children(sng.id()).and_then(children) {
            break waiter;
        }
        assert!(
            Instant::now() < deadline,
            "no stress-ng futex waiter appeared"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(300));
    let bt = std::thread::spawn(move || bpftrace_futex_waits(worker, 4));
    let v = attach(worker, &["--probes", "futex", "--duration", "4"]);
    let (bt_waits, bt_secs) = bt.join().unwrap().unwrap_or_else(|e| panic!("{e}"));
    let _ = sng.kill();
    let _ = sng.wait();
    let f = &v["probes"]["futex"];
    assert!(f["top"][0]["uaddr"].as_str().is_some(), "{f}");
    assert!(
        f["top"][0]["resolved"]["mapping"].as_str().is_some(),
        "named by mapping: {f}"
    );
    let ours = f["total_waits"].as_f64().unwrap() / v["duration_s"].as_f64().unwrap();
    let theirs = bt_waits / bt_secs;
    eprintln!(
        "stress-ng futex waits: hwprof {ours:.0}/s, bpftrace {theirs:.0}/s over {bt_secs:.2} s, top {} in {}",
        f["top"][0]["uaddr"], f["top"][0]["resolved"]["mapping"]
    );
    assert!(ours > 100.0, "the stress-ng waiter waits often: {ours}/s");
    assert!(
        close(ours, theirs, RATE_TOLERANCE),
        "hwprof {ours:.0}/s vs bpftrace {theirs:.0}/s"
    );
}

/// Context switches and page faults of the target vs `perf stat -p` over the
/// same seconds, compared as rates (see RATE_TOLERANCE).
#[test]
fn counters_agree_with_perf_stat() {
    if !ready() {
        return;
    }
    let _m = MACHINE.lock().unwrap_or_else(|e| e.into_inner());
    let t = start_target(&["mutex", "4", "12"]);
    // The same window for both: perf prints its counts every 100 ms
    // (`-I 100`) from before hwprof starts to after it ends, and only the
    // intervals inside hwprof's window (from its "attached" line to its exit)
    // are summed. A contended mutex's switch rate moves by 50% from one second to
    // the next here, so windows merely of the same length disagreed.
    std::thread::sleep(std::time::Duration::from_secs(1));
    let pid = t.pid.to_string();
    let perf_start = std::time::Instant::now();
    let perf = Command::new("perf")
        .args([
            "stat",
            "-I",
            "100",
            "-x,",
            "-e",
            "context-switches,page-faults",
            "-p",
            &pid,
            "sleep",
            "8",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("perf installed");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let mut child = hwprof()
        .args([
            "attach",
            "--pid",
            &pid,
            "--json",
            "--probes",
            "sched",
            "--duration",
            "4",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while std::io::BufRead::read_line(&mut err, &mut line).unwrap() > 0
        && !line.contains("attached to pid")
    {
        line.clear();
    }
    let from = perf_start.elapsed().as_secs_f64();
    let done = child.wait_with_output().unwrap();
    let to = perf_start.elapsed().as_secs_f64();
    assert!(done.status.success());
    let v: Value = serde_json::from_slice(&done.stdout).unwrap();
    let out = perf.wait_with_output().unwrap();
    // Lines: "time,count,unit,event,…"; time = end of the interval since perf started.
    let interval_sum = |ev: &str| -> (f64, f64) {
        let text = String::from_utf8_lossy(&out.stderr);
        let mut sum = 0.0;
        let mut covered = 0.0;
        for l in text.lines().filter(|l| l.contains(ev)) {
            let f: Vec<&str> = l.split(',').collect();
            let (Some(t), Some(n)) = (
                f.first().and_then(|x| x.trim().parse::<f64>().ok()),
                f.get(1).and_then(|x| x.trim().parse::<f64>().ok()),
            ) else {
                continue;
            };
            if t - 0.1 >= from && t <= to {
                sum += n;
                covered += 0.1;
            }
        }
        (sum, covered)
    };
    let secs = v["duration_s"].as_f64().unwrap();
    let cs_ours = v["counters"]["context-switches"]["value"].as_f64().unwrap() / secs;
    let (cs_sum, cs_covered) = interval_sum("context-switches");
    assert!(
        cs_covered > 3.0,
        "perf intervals inside hwprof's window: {cs_covered} s"
    );
    let cs_perf = cs_sum / cs_covered;
    assert_eq!(v["counters"]["context-switches"]["source"], "software");
    eprintln!("context switches: hwprof {cs_ours:.0}/s, perf stat {cs_perf:.0}/s");
    assert!(
        close(cs_ours, cs_perf, RATE_TOLERANCE),
        "hwprof {cs_ours:.0}/s vs perf {cs_perf:.0}/s"
    );
    // The mutex loop does not fault: both near zero.
    let pf_ours = v["counters"]["page-faults"]["value"].as_f64().unwrap();
    let (pf_perf, _) = interval_sum("page-faults");
    assert!(
        (pf_ours - pf_perf).abs() <= 50.0,
        "page faults {pf_ours} vs {pf_perf}"
    );
}

#[test]
fn profile_finds_the_hot_function() {
    if !ready() {
        return;
    }
    let _m = MACHINE.lock().unwrap_or_else(|e| e.into_inner());
    let t = start_target(&["spin", "10"]);
    let dir = tempfile::tempdir().unwrap();
    let v = attach(
        t.pid,
        &[
            "--probes",
            "profile",
            "--duration",
            "2",
            "--out",
            dir.path().to_str().unwrap(),
        ],
    );
    let p = &v["probes"]["profile"];
    assert!(p["samples"].as_u64().unwrap() > 50, "{p}");
    let folded = std::fs::read_to_string(dir.path().join("profile.folded")).unwrap();
    assert!(folded.contains("probe_target_hot_function"), "{folded}");
    assert!(std::fs::read_to_string(dir.path().join("profile.svg"))
        .unwrap()
        .contains("<svg"));
}

#[test]
fn uprobe_counts_calls_of_a_named_function() {
    if !ready() {
        return;
    }
    let _m = MACHINE.lock().unwrap_or_else(|e| e.into_inner());
    let t = start_target(&["mutex", "2", "10"]);
    let spec = format!("{}:probe_target_critical_section", target_bin().display());
    let v = attach(
        t.pid,
        &["--probes", "sched", "--uprobe", &spec, "--duration", "2"],
    );
    let u = &v["probes"]["uprobes"][0];
    assert!(u["calls"].as_u64().unwrap() > 1000, "{u}");
    assert!(u["mean_ns"].as_u64().unwrap() > 0);
}

#[test]
fn experiment_probes_see_only_the_experiment_threads() {
    if !ready() {
        return;
    }
    let _m = MACHINE.lock().unwrap_or_else(|e| e.into_inner());
    let out = hwprof()
        .args([
            "run",
            "false-sharing",
            "--duration",
            "0.05",
            "--repetitions",
            "3",
            "--warmup",
            "0",
            "--probes",
            "sched",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &v["probes"]["sched"];
    let groups = v["groups"].as_array().unwrap().len() as u64;
    // 2 workers x 2 variants x 3 repetitions per group, nothing else.
    assert_eq!(
        s["threads"].as_array().unwrap().len() as u64,
        12 * groups,
        "{s}"
    );
    assert_eq!(
        s["total_migrations"], 0,
        "pinned workers do not migrate: {s}"
    );
    assert!(s["total_on_cpu_ns"].as_u64().unwrap() > 0);
}

fn bpftool_lines(what: &str) -> Vec<String> {
    let out = Command::new("bpftool")
        .args([what, "show"])
        .output()
        .expect("bpftool installed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn assert_no_leftovers(how: &str, links_before: usize) {
    let progs = bpftool_lines("prog");
    assert!(
        !progs.iter().any(|l| l.contains("hwp_")),
        "{how}: programs left: {progs:?}"
    );
    let links = bpftool_lines("link")
        .iter()
        .filter(|l| l.contains("prog "))
        .count();
    assert!(
        links <= links_before,
        "{how}: {links} links now, {links_before} before"
    );
}

/// After a normal end, SIGINT, SIGTERM and the target dying, nothing of hwprof's
/// stays in the kernel.
#[test]
fn no_programs_or_links_are_left_behind() {
    if !ready() {
        return;
    }
    let _m = MACHINE.lock().unwrap_or_else(|e| e.into_inner());
    let links_before = bpftool_lines("link")
        .iter()
        .filter(|l| l.contains("prog "))
        .count();
    let t = start_target(&["mutex", "2", "30"]);
    let all = ["--probes", "sched,futex,locks,memory,profile"];

    let _ = attach(t.pid, &[all[0], all[1], "--duration", "1"]);
    assert_no_leftovers("normal exit", links_before);

    for (sig, name) in [(libc::SIGINT, "SIGINT"), (libc::SIGTERM, "SIGTERM")] {
        let mut c = hwprof()
            .args([
                "attach",
                "--pid",
                &t.pid.to_string(),
                "--duration",
                "60",
                all[0],
                all[1],
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(c.stderr.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.contains("attached"), "{line}");
        assert!(
            hwprof_programs_loaded(),
            "{name}: probes should be loaded while attached"
        );
        // SAFETY: signalling our own child.
        unsafe { libc::kill(c.id() as i32, sig) };
        let st = c.wait().unwrap();
        assert_eq!(st.code(), Some(130), "{name}");
        assert_no_leftovers(name, links_before);
    }

    let short = start_target(&["mutex", "2", "2"]);
    let v = attach(short.pid, &[all[0], all[1], "--duration", "30"]);
    assert_eq!(v["ended_by"], "target-exit");
    assert_no_leftovers("target exit", links_before);
}

fn hwprof_programs_loaded() -> bool {
    bpftool_lines("prog").iter().any(|l| l.contains("hwp_"))
}

#[test]
fn bad_attach_input_exits_2() {
    let cases: Vec<Vec<String>> = vec![
        vec!["attach".into(), "--pid".into(), "999999999".into()],
        vec![
            "attach".into(),
            "--pid".into(),
            "1".into(),
            "--probes".into(),
            "kprobes".into(),
        ],
        vec![
            "attach".into(),
            "--pid".into(),
            "1".into(),
            "--uprobe".into(),
            "/bin/true:no_such_symbol_here".into(),
        ],
        vec![
            "attach".into(),
            "--pid".into(),
            "1".into(),
            "--uprobe".into(),
            "/no/such/binary:main".into(),
        ],
        vec![
            "attach".into(),
            "--pid".into(),
            "1".into(),
            "--duration".into(),
            "0".into(),
        ],
        // Nothing named to trace; a name, cgroup or pid in a list that is not there.
        vec!["attach".into()],
        vec!["attach".into(), "--comm".into(), "no-such-proc-xyz".into()],
        vec!["attach".into(), "--cgroup".into(), "no/such/cgroup".into()],
        vec!["attach".into(), "--pid".into(), "1,999999999".into()],
    ];
    for args in cases {
        let out = hwprof().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
}

/// A process's line on stderr, read until `needle` appears (bounded: the
/// process ends or prints it).
fn wait_for_line(r: &mut impl BufRead, needle: &str) -> String {
    let mut seen = String::new();
    loop {
        let mut l = String::new();
        if r.read_line(&mut l).unwrap_or(0) == 0 {
            panic!("ended before printing {needle:?}: {seen}");
        }
        seen.push_str(&l);
        if l.contains(needle) {
            return seen;
        }
    }
}

fn sigint(child: &Child) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
}

/// PostgreSQL works in one process per connection. Attached to the postmaster
/// with --children, hwprof sees every backend, existing and new, and counts
/// their futex waits as bpftrace does over the same window: both tools are
/// attached before pgbench starts and stopped after it ends, so the windows
/// hold the same waits. Without --children the report says what it missed.
#[test]
fn attach_sees_a_multi_process_server_whole() {
    if !ready() {
        return;
    }
    let _m = MACHINE.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let pg = common::Postgres::start(tmp.path());
    // pgbench against this server, over TCP on loopback.
    let pgbench_cmd = || {
        let mut c = Command::new(common::pg_bin("pgbench"));
        c.args([
            "-h",
            "127.0.0.1",
            "-p",
            &pg.port.to_string(),
            "-U",
            "hwprof",
        ]);
        c
    };
    let pgbench = |args: &[&str]| {
        let o = pgbench_cmd().args(args).arg("postgres").output().unwrap();
        assert!(
            o.status.success(),
            "pgbench {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    pgbench(&["-i", "-s", "1", "-q"]);
    let postmaster = pg.child.id();
    // The postmaster's children that are client backends (their title names
    // the user and database).
    let backends = || {
        std::fs::read_to_string(format!("/proc/{postmaster}/task/{postmaster}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter(|p| {
                std::fs::read(format!("/proc/{p}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).starts_with("postgres: hwprof"))
            })
            .count()
    };

    // Without --children: the postmaster alone, and a warning naming the rest.
    let mut held = pgbench_cmd()
        .args(["-c", "4", "-T", "6", "-n", "postgres"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Until its 4 backends exist (bounded).
    let t0 = Instant::now();
    while backends() < 4 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "pgbench did not connect"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let alone = attach(postmaster, &["--probes", "sched", "--duration", "2"]);
    let warnings = alone["warnings"].to_string();
    assert!(
        warnings.contains("child processes that were not traced")
            && warnings.contains("postgres ×"),
        "{warnings}"
    );
    assert_eq!(alone["target"]["processes"], "1");
    let _ = held.wait();

    // bpftrace first, then hwprof; each says when it is attached.
    let prog = format!(
        "BEGIN {{ printf(\"ready\\n\"); }} tracepoint:syscalls:sys_enter_futex /comm == \"postgres\" && {FUTEX_WAIT_OPS}/ {{ @waits = count(); }}"
    );
    let mut bt = Command::new("bpftrace")
        .args(["-B", "none", "-e", &prog])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("bpftrace runs (scripts/install.sh --test installs it)");
    let mut bt_out = BufReader::new(bt.stdout.take().unwrap());
    wait_for_line(&mut bt_out, "ready");
    let mut hw = hwprof()
        .args(["attach", "--pid", &postmaster.to_string(), "--children"])
        .args(["--probes", "futex,sched", "--duration", "120", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut hw_err = BufReader::new(hw.stderr.take().unwrap());
    let banner = wait_for_line(&mut hw_err, "hwprof: attached to");
    // About 3 s of transactions: the 0.5 s rescans see each backend alive
    // and name it (a thread never seen alive is reported as "?").
    pgbench(&["-c", "8", "-j", "2", "-t", "400", "-n"]);
    sigint(&hw);
    let mut hw_json = String::new();
    std::io::Read::read_to_string(hw.stdout.as_mut().unwrap(), &mut hw_json).unwrap();
    let _ = hw.wait();
    sigint(&bt);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut bt_out, &mut rest).unwrap();
    let _ = bt.wait();
    let theirs: f64 = rest
        .lines()
        .find_map(|l| l.strip_prefix("@waits: ")?.trim().parse().ok())
        .unwrap_or(0.0);
    let v: Value = serde_json::from_str(&hw_json).unwrap_or_else(|e| panic!("{e}: {hw_json}"));
    let ours = v["probes"]["futex"]["total_waits"].as_f64().unwrap();
    let groups = &v["probes"]["sched"]["groups"];
    eprintln!(
        "{}postgres futex waits over pgbench -c 8 -t 400: hwprof {ours}, bpftrace {theirs}; {} processes; groups {}",
        banner,
        v["target"]["processes"],
        groups
    );
    assert!(theirs >= 50.0, "pgbench makes the backends wait: {theirs}");
    assert!(
        (ours - theirs).abs() <= 0.02 * theirs,
        "hwprof {ours} vs bpftrace {theirs} futex waits"
    );
    // The 8 backends born while attached, named, and the server's own
    // processes that ran (an idle one never switched: no entry).
    let pg_group = groups
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "postgres")
        .unwrap_or_else(|| panic!("no postgres group: {groups}"));
    assert!(pg_group["processes"].as_u64().unwrap() >= 9, "{pg_group}");
    assert!(
        v["target"]["processes"]
            .as_str()
            .unwrap()
            .parse::<u32>()
            .unwrap()
            >= 9
    );
}

/// `--cgroup`: the processes of a cgroup v2 are traced, whatever their
/// parentage. The test makes its own cgroup under the cgroup2 mount (skipped,
/// with the reason, where there is none or it is not writable).
#[test]
fn attach_traces_a_cgroups_processes() {
    if !ready() {
        return;
    }
    let Some(mount) = std::fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .lines()
        .find(|l| l.split_whitespace().nth(2) == Some("cgroup2"))
        .and_then(|l| l.split_whitespace().nth(1).map(PathBuf::from))
    else {
        eprintln!("no cgroup2 mount: skipped");
        return;
    };
    let _m = MACHINE.lock().unwrap_or_else(|e| e.into_inner());
    let cg = mount.join(format!("hwprof-test-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir(&cg) {
        eprintln!(
            "cannot create a cgroup under {}: {e}; skipped",
            mount.display()
        );
        return;
    }
    let t = start_target(&["mutex", "2", "5"]);
    let moved = std::fs::write(cg.join("cgroup.procs"), t.pid.to_string());
    let v = moved.as_ref().ok().map(|_| {
        let out = hwprof()
            .args(["attach", "--cgroup"])
            .arg(&cg)
            .args(["--probes", "futex", "--duration", "2", "--json"])
            .output()
            .unwrap();
        (out.status.code(), out.stdout, out.stderr)
    });
    // Back to the root cgroup so the test's cgroup can go, whatever happened.
    let _ = std::fs::write(mount.join("cgroup.procs"), t.pid.to_string());
    drop(t);
    let _ = std::fs::remove_dir(&cg);
    moved.expect("moving the target into the cgroup");
    let (code, stdout, stderr) = v.unwrap();
    assert_eq!(code, Some(0), "{}", String::from_utf8_lossy(&stderr));
    let v: Value = serde_json::from_slice(&stdout).unwrap();
    assert_eq!(v["target"]["processes"], "1", "{}", v["target"]);
    assert!(v["target"]["traced"]
        .as_str()
        .unwrap()
        .starts_with("cgroup "));
    assert!(
        v["probes"]["futex"]["total_waits"].as_u64().unwrap() > 100,
        "{}",
        v["probes"]["futex"]
    );
}
