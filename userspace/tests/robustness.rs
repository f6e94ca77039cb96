//! hwprof against an adversarial user: every bad input gets one line and exit 2
//! (one table), no input hangs it or exhausts memory, and no file it writes under
//! sudo can be subverted (symlinks, full disks).

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::*;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Run hwprof with a wall-clock limit and an address-space limit, so a hang or
/// an unbounded read fails the test instead of the machine.
fn bounded(args: &[&str], limit: Duration, max_bytes: u64) -> (Output, Duration) {
    let mut cmd = hwprof();
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let r = libc::rlimit {
                rlim_cur: max_bytes,
                rlim_max: max_bytes,
            };
            libc::setrlimit(libc::RLIMIT_AS, &r);
            Ok(())
        });
    }
    let started = Instant::now();
    let mut child = cmd.spawn().expect("hwprof starts");
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "hwprof {args:?} still running after {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = started.elapsed();
    (child.wait_with_output().unwrap(), took)
}

/// Every bad input: exit status 2, exactly one line on stderr that starts with
/// `hwprof: error:` and names what was wrong, nothing on stdout, within seconds
/// and 2 GiB of address space.
#[test]
fn bad_input_table() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = d.join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let garbage_xml = d.join("garbage.xml");
    std::fs::write(&garbage_xml, "<topology><object type=").unwrap();
    let empty_xml = d.join("empty.xml");
    std::fs::write(&empty_xml, "").unwrap();
    let s = |p: &Path| p.display().to_string();
    let xml_garbage = format!("xml:{}", s(&garbage_xml));
    let xml_empty = format!("xml:{}", s(&empty_xml));
    let xml_dir = format!("xml:{}", s(d));
    let out_under_file = s(&file.join("sub"));
    let file_s = s(&file);
    let offline = format!(
        "xml:{}",
        s(&topologies().join("16em64t-4s2c2t-offlines.xml"))
    );
    let me = std::process::id().to_string();
    #[rustfmt::skip]
    let table: Vec<(Vec<&str>, &[&str])> = vec![
        // no subcommand, no argument
        (vec![], &["needs a subcommand", "run"]),
        (vec!["events"], &["events needs a subcommand", "list"]),
        (vec!["frobnicate"], &["frobnicate"]),
        (vec!["attach"], &["--pid"]),
        // CPU lists, thread counts, numbers
        (vec!["run", "false-sharing", "--cpus", "0,4096"], &["4096"]),
        (vec!["run", "false-sharing", "--cpus", "0-x"], &["--cpus"]),
        (vec!["run", "false-sharing", "--cpus", "-1"], &["--cpus", "negative"]),
        (vec!["run", "false-sharing", "--cpus", "5", "--topology", &offline, "--plan-only"], &["5"]),
        (vec!["run", "false-sharing", "--threads", "0"], &["--threads"]),
        (vec!["run", "false-sharing", "--threads", "-1"], &["--threads", "negative"]),
        (vec!["run", "false-sharing", "--threads", "99999999999999999999999"], &["--threads", "too large"]),
        (vec!["run", "false-sharing", "--repetitions", "0"], &["--repetitions"]),
        (vec!["run", "false-sharing", "--repetitions", "-2"], &["--repetitions", "negative"]),
        (vec!["run", "false-sharing", "--repetitions", "99999999999999999999999"], &["--repetitions", "too large"]),
        (vec!["run", "false-sharing", "--warmup", "-1"], &["--warmup", "negative"]),
        // durations: one validator, bounded
        (vec!["run", "false-sharing", "--duration", "0"], &["--duration"]),
        (vec!["run", "false-sharing", "--duration", "-1"], &["--duration"]),
        (vec!["run", "false-sharing", "--duration", "1e30"], &["--duration", "30 days"]),
        (vec!["attach", "--pid", &me, "--duration", "1e30"], &["--duration", "30 days"]),
        (vec!["attach", "--pid", &me, "--duration", "NaN"], &["--duration"]),
        (vec!["c2c", "--duration", "0", "--replay", "/nonexistent.jsonl"], &["--duration"]),
        (vec!["attach", "--pid", "-5"], &["--pid", "negative"]),
        (vec!["attach", "--pid", "999999999"], &["--pid"]),
        (vec!["attach", "--pid", &me, "--frequency", "0"], &["--frequency"]),
        (vec!["c2c", "--top", "-1", "--replay", "x"], &["--top", "negative"]),
        // memory policy
        (vec!["run", "false-sharing", "--membind", "node:99"], &["--membind", "99"]),
        (vec!["run", "false-sharing", "--membind", "node:-1"], &["--membind", "NUMA node", "negative"]),
        (vec!["run", "false-sharing", "--membind", "far"], &["--membind"]),
        // topology sources
        (vec!["run", "false-sharing", "--topology", &xml_garbage, "--plan-only"], &["--topology", "garbage.xml"]),
        (vec!["info", "--topology", &xml_garbage], &["--topology", "garbage.xml"]),
        (vec!["info", "--topology", "xml:/dev/null"], &["--topology", "not a regular file"]),
        (vec!["info", "--topology", &xml_dir], &["--topology", "directory"]),
        (vec!["info", "--topology", &xml_empty], &["--topology", "empty"]),
        (vec!["info", "--topology", "xml:/nonexistent.xml"], &["--topology", "no such file"]),
        (vec!["info", "--topology", "synthetic:pack:two core:x"], &["--topology"]),
        (vec!["info", "--topology", "synthetic:pack:100000 core:100000 pu:100"], &["--topology", "8192"]),
        (vec!["info", "--topology", "nonsense"], &["--topology"]),
        // output directories name their own flag
        (vec!["run", "false-sharing", "--out", &out_under_file], &["--out"]),
        (vec!["info", "--save", &file_s], &["--save"]),
        // experiments, pairs, events, probes (checked before anything runs, --plan-only too)
        (vec!["run", "no-such-experiment"], &["no-such-experiment"]),
        (vec!["run", "false-sharing", "--pairs", "far-away"], &["--pairs"]),
        (vec!["run", "false-sharing", "--pairs", "cross-package"], &["cross-package"]),
        (vec!["run", "false-sharing", "--events", "cpu/frob=1/"], &["--events"]),
        (vec!["run", "false-sharing", "--events", "no-such-event"], &["--events"]),
        (vec!["run", "false-sharing", "--plan-only", "--events", "cpu//"], &["--events", "cpu//"]),
        (vec!["run", "false-sharing", "--plan-only", "--events", "nopmu/event=0x1/"], &["--events", "nopmu"]),
        (vec!["run", "false-sharing", "--plan-only", "--probes", "bogus"], &["--probes", "bogus"]),
        (vec!["attach", "--pid", &me, "--probes", "bogus"], &["--probes", "bogus"]),
        (vec!["attach", "--pid", &me, "--uprobe", "/nonexistent:f"], &["--uprobe"]),
        (vec!["attach", "--pid", &me, "--uprobe", "libc.so.6:no_such_symbol_hwprof"], &["--uprobe", "no_such_symbol_hwprof"]),
        (vec!["run", "c2c", "--cpus", "0"], &["--cpus", "two CPUs"]),
        (vec!["run", "c2c", "--layout"], &["--layout"]),
        // No caches in the description: the staircase cannot be sized.
        (vec!["run", "prefetch", "--plan-only", "--topology", "synthetic:pack:1 core:2 pu:1"], &["cache"]),
        // c2c inputs: bounded readers
        (vec!["c2c"], &["--pid", "--replay"]),
        (vec!["c2c", "--pid", "999999999"], &["--pid"]),
        (vec!["c2c", "--replay", "/nonexistent.jsonl"], &["--replay"]),
        (vec!["c2c", "--replay", "/dev/zero"], &["--replay", "longer than"]),
    ];
    let mut failures = Vec::new();
    for (args, wants) in &table {
        let (out, _) = bounded(args, Duration::from_secs(20), 2 << 30);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        // No Rust Debug text in a message (hwloc's errors carried `Some(Errno { … })`).
        let plain = !["Some(", "Errno {", "None)", "Os {"]
            .iter()
            .any(|d| stderr.contains(d));
        let ok = out.status.code() == Some(2)
            && lines.len() == 1
            && lines[0].starts_with("hwprof: error: ")
            && wants.iter().all(|w| lines[0].contains(w))
            && plain
            && out.stdout.is_empty();
        if !ok {
            failures.push(format!(
                "{args:?} (want exit 2, one line naming {wants:?}): exit {:?}, stderr {lines:?}, {} bytes on stdout",
                out.status.code(),
                out.stdout.len()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows wrong:\n{}",
        failures.len(),
        table.len(),
        failures.join("\n")
    );
}

/// `--pairs all` means every class this machine has, not every class there is.
#[test]
fn pairs_all_means_the_classes_this_machine_has() {
    // Two cores of one package: same-l3 only (no SMT, no second L3 or package).
    let v = json(&[
        "run",
        "false-sharing",
        "--plan-only",
        "--json",
        "--pairs",
        "all",
        "--topology",
        "synthetic:pack:1 l3:1 core:2 pu:1",
    ]);
    let groups = v["placement"]["groups"].as_array().unwrap();
    assert!(!groups.is_empty(), "{v}");
    assert!(
        groups
            .iter()
            .all(|g| g["pair_class"].as_str() == Some("same-l3")),
        "{v}"
    );
}

/// A synthetic description just under the size cap takes seconds to build; a
/// Ctrl-C meanwhile ends hwprof at once (exit 130) instead of being ignored
/// until discovery is done.
#[test]
fn ctrl_c_during_discovery_exits_at_once() {
    let mut child = hwprof()
        .args(["info", "--topology", "synthetic:pack:8 core:512 pu:2"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let sent = Instant::now();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(60),
            "still running a minute after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let took = sent.elapsed();
    assert_eq!(status.code(), Some(130), "{status:?}");
    assert!(
        took < Duration::from_millis(1000),
        "SIGINT took {took:?} to end discovery"
    );
}

/// Drop to uid/gid 65534 in the child, optionally with an RLIMIT_NPROC.
fn as_nobody(cmd: &mut Command, nproc: Option<u64>) {
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(65534) != 0
                || libc::setuid(65534) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(n) = nproc {
                let r = libc::rlimit {
                    rlim_cur: n,
                    rlim_max: n,
                };
                libc::setrlimit(libc::RLIMIT_NPROC, &r);
            }
            Ok(())
        });
    }
}

/// With no thread left to the user (`ulimit -u`), the run fails with one line
/// naming the cause, promptly: no internal error, no wait on a barrier for
/// threads that were never started.
#[test]
fn a_worker_that_cannot_be_spawned_is_an_error_not_a_hang() {
    if !is_root() {
        eprintln!("needs root to run as another user with RLIMIT_NPROC");
        return;
    }
    let _machine = exclusive();
    let mut cmd = hwprof();
    cmd.args([
        "run",
        "false-sharing",
        "--duration",
        "0.02",
        "--repetitions",
        "1",
        "--warmup",
        "0",
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    // One process for the user: the main thread is it, no thread can start.
    as_nobody(&mut cmd, Some(1));
    let started = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("hwprof hung after a thread spawn failure");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap_or("");
    assert!(
        last.starts_with("hwprof: error: ") && last.contains("cannot start worker thread"),
        "{stderr}"
    );
    assert!(!stderr.contains("internal error"), "{stderr}");
}

/// `sudo hwprof run … --out OUT` with a symlink planted at a plot's name: the
/// file it points to is untouched, the link is replaced by the invoking user's
/// own file.
#[test]
fn a_planted_symlink_is_replaced_not_followed() {
    if !is_root() {
        eprintln!("needs root: the sudo path is what the symlink attack targets");
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let _machine = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("root-owned-victim");
    std::fs::write(&victim, b"root's data").unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::os::unix::fs::chown(&out, Some(65534), Some(65534)).unwrap();
    let planted = [
        "false-sharing-by-class.png",
        "false-sharing-by-class.svg",
        "report.json",
        "summary.md",
    ];
    for name in planted {
        std::os::unix::fs::symlink(&victim, out.join(name)).unwrap();
    }
    let status = hwprof()
        .args([
            "run",
            "false-sharing",
            "--duration",
            "0.02",
            "--repetitions",
            "1",
            "--warmup",
            "0",
            "--out",
        ])
        .arg(&out)
        .env("SUDO_UID", "65534")
        .env("SUDO_GID", "65534")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let now = std::fs::read(&victim).unwrap();
    assert!(
        now == b"root's data",
        "the victim was overwritten ({} bytes now)",
        now.len()
    );
    let vm = std::fs::metadata(&victim).unwrap();
    assert_eq!((vm.uid(), vm.gid()), (0, 0), "the victim keeps its owner");
    for name in planted {
        let m = std::fs::symlink_metadata(out.join(name)).unwrap();
        assert!(m.file_type().is_file(), "{name} is a regular file now");
        assert_eq!((m.uid(), m.gid()), (65534, 65534), "{name}");
        assert!(m.len() > 0, "{name}");
    }
}

/// Under sudo, a directory the invoking user may not write is refused: sudo
/// hwprof does not put files where its user could not.
#[test]
fn sudo_does_not_write_where_the_user_may_not() {
    if !is_root() {
        eprintln!("needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap(); // root's, mode 0700
    let out = hwprof()
        .args(["info", "--save"])
        .arg(dir.path().join("profiles"))
        .env("SUDO_UID", "65534")
        .env("SUDO_GID", "65534")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--save") && stderr.contains("uid 65534"),
        "{stderr}"
    );
    assert!(!dir.path().join("profiles").exists());
}

/// A full filesystem: the run fails with one line naming the file and the cause,
/// and leaves no temporary or truncated file behind.
#[test]
fn a_full_disk_fails_the_run_and_leaves_no_partial_file() {
    if !is_root() {
        eprintln!("needs root to mount a small tmpfs");
        return;
    }
    let _machine = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("tiny");
    std::fs::create_dir(&mnt).unwrap();
    // 100 KiB: the report and the SVG fit, the PNG does not.
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=100k", "tmpfs"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("cannot mount tmpfs here: the full-disk path cannot be exercised");
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _guard = Unmount(&mnt);
    let out = hwprof()
        .args([
            "run",
            "false-sharing",
            "--duration",
            "0.02",
            "--repetitions",
            "1",
            "--warmup",
            "0",
            "--out",
        ])
        .arg(&mnt)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("hwprof: error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("writing ") && errors[0].contains("No space left on device"),
        "{stderr}"
    );
    for e in std::fs::read_dir(&mnt).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert!(!name.ends_with(".tmp"), "temporary file left: {name}");
        let bytes = std::fs::read(&p).unwrap();
        if name.ends_with(".png") {
            assert!(
                bytes.len() > 12 && &bytes[bytes.len() - 8..bytes.len() - 4] == b"IEND",
                "truncated PNG {name}"
            );
        }
        if name.ends_with(".svg") {
            assert!(
                String::from_utf8_lossy(&bytes)
                    .trim_end()
                    .ends_with("</svg>"),
                "truncated SVG {name}"
            );
        }
        if name.ends_with(".json") {
            serde_json::from_slice::<serde_json::Value>(&bytes)
                .unwrap_or_else(|e| panic!("truncated JSON {name}: {e}"));
        }
    }
}

/// uprobes on libc's aliased, versioned and weak dynamic symbols (nm -D lists
/// them as `free@@GLIBC_2.2.5`, `W write`…), named by the bare library name.
#[test]
fn uprobes_attach_to_versioned_and_weak_libc_symbols() {
    if !is_root() {
        eprintln!("needs root for BPF");
        return;
    }
    let _machine = exclusive();
    let caps = json(&["info", "--json"]);
    if caps["capabilities"]["ebpf"]["uprobes"] != true {
        eprintln!("uprobes unavailable here: {}", caps["capabilities"]["lost"]);
        return;
    }
    let mut target = Command::new("sleep").arg("30").spawn().unwrap();
    let pid = target.id().to_string();
    for sym in ["free", "write", "open", "calloc", "malloc"] {
        let spec = format!("libc.so.6:{sym}");
        let out = run(&[
            "attach",
            "--pid",
            &pid,
            "--probes",
            "sched",
            "--uprobe",
            &spec,
            "--duration",
            "0.2",
            "--json",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{spec}: {stderr}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let up = &v["probes"]["uprobes"][0];
        assert_eq!(up["symbol"], sym, "{v}");
        assert!(
            up["binary"].as_str().unwrap().ends_with("libc.so.6"),
            "{up}"
        );
    }
    let _ = target.kill();
    let _ = target.wait();
}

/// As an unprivileged user: the profile probe names BPF privilege as the
/// reason (not tracefs), and no remedy suggests a sysctl that would not help.
#[test]
fn unprivileged_remedies_name_what_actually_helps() {
    if !is_root() {
        eprintln!("needs root to drop to another user");
        return;
    }
    let _machine = exclusive();
    // The user's own process, which it may trace.
    let mut sleep = Command::new("sleep");
    sleep.arg("30");
    as_nobody(&mut sleep, None);
    let mut target = sleep.spawn().unwrap();
    let pid = target.id().to_string();
    let mut cmd = hwprof();
    cmd.args([
        "attach",
        "--pid",
        &pid,
        "--probes",
        "profile",
        "--duration",
        "0.2",
    ]);
    as_nobody(&mut cmd, None);
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("tracefs"), "{stderr}");
    assert!(stderr.contains("CAP_BPF"), "{stderr}");
    let _ = target.kill();
    let _ = target.wait();

    // perf_event_paranoid = -1 does not make uprobes work for an unprivileged
    // user, so no remedy may suggest lowering it.
    let path = "/proc/sys/kernel/perf_event_paranoid";
    let Ok(before) = std::fs::read_to_string(path) else {
        return;
    };
    struct Restore<'a>(&'a str, String);
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            let _ = std::fs::write(self.0, &self.1);
        }
    }
    if std::fs::write(path, "-1").is_err() {
        eprintln!("cannot set {path} here");
        return;
    }
    let _restore = Restore(path, before);
    let mut cmd = hwprof();
    cmd.args(["info", "--json"]);
    as_nobody(&mut cmd, None);
    let out = cmd.output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["capabilities"]["ebpf"]["uprobes"], false, "{v}");
    for l in v["capabilities"]["lost"].as_array().unwrap() {
        let remedy = l["remedy"].as_str().unwrap();
        if l["capability"].as_str().unwrap().starts_with("eBPF") {
            assert!(!remedy.contains("lower kernel.perf_event_paranoid"), "{l}");
            assert!(remedy.contains("sudo") || remedy.contains("kernel"), "{l}");
        }
    }
}

/// SIGINT during attach: the report says interrupted, like experiments' do.
#[test]
fn attach_report_after_sigint_is_marked_interrupted() {
    if !is_root() {
        eprintln!("needs root for BPF");
        return;
    }
    let _machine = exclusive();
    let mut target = Command::new("sleep").arg("30").spawn().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut child = hwprof()
        .args([
            "attach",
            "--pid",
            &target.id().to_string(),
            "--duration",
            "20",
            "--out",
        ])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until attached (the line on stderr), then interrupt.
    let mut reader = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        let n = std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
        assert!(n > 0, "attach ended before attaching");
        if line.contains("attached to pid") {
            break;
        }
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("attach.json")).unwrap()).unwrap();
    assert_eq!(v["interrupted"], true, "{}", v["ended_by"]);
    assert_eq!(v["ended_by"], "signal");
    let _ = target.kill();
    let _ = target.wait();
}
