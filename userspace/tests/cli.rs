//! The `hwprof` binary's contract: JSON documents, agreement with lstopo and
//! perf on this machine, reports on disk and their ownership, interruption,
//! human output. Experiments end to end are in experiments.rs, bad input in
//! robustness.rs.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;

use serde_json::Value;

mod common;
use common::*;

#[test]
fn info_json_has_the_contract_fields() {
    let v = json(&["info", "--json"]);
    for path in [
        "/topology/packages",
        "/topology/numa_nodes",
        "/topology/cores",
        "/topology/pus",
        "/topology/l3_domains",
        "/topology/numa_distances",
        "/cpu/vendor",
        "/cpu/model_name",
        "/cpu/microarchitecture",
        "/cpu/simd",
        "/virtualization",
        "/capabilities/pmu_hardware",
        "/capabilities/pmu_software",
        "/capabilities/ebpf/btf",
        "/capabilities/ebpf/tracepoints",
        "/capabilities/ebpf/kprobes",
        "/capabilities/ebpf/uprobes",
        "/capabilities/paranoid",
    ] {
        assert!(v.pointer(path).is_some(), "missing {path}");
    }
    for b in ["pmu_hardware", "pmu_software"] {
        assert!(v["capabilities"][b].is_boolean());
    }
    assert!(v["cpu"]["simd"].is_array());
    assert!(v["capabilities"]["paranoid"].is_i64() || cfg!(not(target_os = "linux")));
}

/// Host topology counts equal lstopo's on this very machine.
#[test]
fn info_agrees_with_lstopo_on_this_machine() {
    let v = json(&["info", "--json"]);
    let Some(_) = tool_output("lstopo-no-graphics", &["--version"]) else {
        eprintln!("lstopo-no-graphics not installed; run scripts/install.sh");
        return;
    };
    for (ty, key) in [
        ("pu", "pus"),
        ("core", "cores"),
        ("package", "packages"),
        ("numanode", "numa_nodes"),
        ("l3cache", "l3_domains"),
    ] {
        let n = tool_output("lstopo-no-graphics", &["--only", ty])
            .unwrap()
            .lines()
            .count();
        assert_eq!(v["topology"][key].as_u64(), Some(n as u64), "{ty}");
    }
}

/// pmu_hardware must say what perf says: `perf stat -e instructions` counts or
/// reports "<not supported>".
#[test]
fn pmu_capability_agrees_with_perf() {
    let v = json(&["info", "--json"]);
    let Some(out) = tool_output(
        "perf",
        &["stat", "-x,", "-e", "instructions,task-clock", "true"],
    ) else {
        eprintln!("perf not installed; run scripts/install.sh");
        return;
    };
    if !out.contains("instructions") {
        eprintln!("perf did not run here: {out}");
        return;
    }
    let perf_counts_instructions =
        !out.contains("<not supported>") && !out.contains("<not counted>");
    assert_eq!(
        v["capabilities"]["pmu_hardware"].as_bool(),
        Some(perf_counts_instructions),
        "perf said: {out}"
    );
    let perf_counts_task_clock = out
        .lines()
        .any(|l| l.contains("task-clock") && !l.starts_with('<'));
    assert_eq!(
        v["capabilities"]["pmu_software"].as_bool(),
        Some(perf_counts_task_clock),
        "perf said: {out}"
    );
}

#[cfg(all(feature = "hwloc", target_os = "linux"))]
#[test]
fn info_reads_a_lab_machine_export() {
    let file = topologies().join("24em64t-2n6c2t-pci.xml");
    let arg = format!("xml:{}", file.display());
    let v = json(&["info", "--topology", &arg, "--json"]);
    let t = &v["topology"];
    assert_eq!(
        (
            t["packages"].as_u64(),
            t["numa_nodes"].as_u64(),
            t["cores"].as_u64(),
            t["pus"].as_u64()
        ),
        (Some(2), Some(2), Some(12), Some(24))
    );
}

#[cfg(all(feature = "hwloc", target_os = "linux"))]
#[test]
fn plan_only_places_cross_package_threads_on_two_packages() {
    let file = topologies().join("24em64t-2n6c2t-pci.xml");
    let arg = format!("xml:{}", file.display());
    let v = json(&[
        "run",
        "false-sharing",
        "--pairs",
        "cross-package",
        "--topology",
        &arg,
        "--plan-only",
        "--json",
    ]);
    let cpus: Vec<u64> = v["placement"]["groups"][0]["cpus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .collect();
    let info = json(&["info", "--topology", &arg, "--json"]);
    let pkg = |cpu: u64| {
        info["topology"]["cpus"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["os_index"].as_u64() == Some(cpu))
            .unwrap()["package"]
            .as_u64()
    };
    assert_eq!(cpus.len(), 2);
    assert_ne!(pkg(cpus[0]), pkg(cpus[1]), "plan {cpus:?}");
}

/// Under sudo (root with SUDO_UID/SUDO_GID), written files belong to the invoking user.
#[cfg(unix)]
#[test]
fn files_written_under_sudo_belong_to_the_invoking_user() {
    let _machine = exclusive();
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: the sudo ownership path cannot be exercised");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The invoking user's own directory: under sudo hwprof writes only where its
    // user could.
    std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).unwrap();
    let out = dir.path().join("owned/by/nobody");
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
    // Every file written (report, summary, plots as SVG and PNG) and every
    // directory created.
    let written: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        written
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "png")),
        "{written:?}"
    );
    for p in written.into_iter().chain([
        out.clone(),
        dir.path().join("owned"),
        dir.path().join("owned/by"),
    ]) {
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!((m.uid(), m.gid()), (65534, 65534), "{}", p.display());
    }
}

/// SIGTERM mid-run: the report is still written, marked interrupted, exit 130.
#[cfg(unix)]
#[test]
fn sigterm_still_writes_the_report() {
    let _machine = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("partial");
    let mut child = hwprof()
        .args([
            "run",
            "false-sharing",
            "--duration",
            "0.5",
            "--repetitions",
            "20",
            "--warmup",
            "0",
            "--out",
        ])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the run has started (its announcement on stderr), then signal.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "hwprof exited before running"
        );
        if line.starts_with("hwprof: running") {
            break;
        }
    }
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let v: Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(v["interrupted"], true);
    assert!(out.join("summary.md").is_file());
}

#[test]
fn info_says_when_a_topology_records_no_cores() {
    let file = topologies().join("16em64t-4s2c2t-nocores.xml");
    let out = run(&["info", "--topology", &format!("xml:{}", file.display())]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let machine = text.lines().next().unwrap();
    assert!(
        machine.contains("cores not recorded") && !machine.contains(" 0 cores"),
        "{machine}"
    );
}

#[test]
fn list_names_the_registered_experiments() {
    let out = run(&["list"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let (experiments, probes) = text.split_once("\n\n").expect("experiments, then probes");
    assert!(experiments.lines().any(|l| l.starts_with("false-sharing ")));
    assert!(probes.lines().any(|l| l.starts_with("futex ")), "{probes}");
}

/// Without privileges, capabilities drop with a reason and a remedy each, and an
/// experiment still runs on what is left.
#[cfg(target_os = "linux")]
#[test]
fn unprivileged_user_loses_capabilities_with_remedies() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || tool_output("setpriv", &["--version"]).is_none() {
        eprintln!("needs root and setpriv to drop to an unprivileged user");
        return;
    }
    let _machine = exclusive();
    let as_nobody = |args: &[&str]| {
        std::process::Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
            ])
            .arg(env!("CARGO_BIN_EXE_hwprof"))
            .args(args)
            .output()
            .unwrap()
    };
    let out = as_nobody(&["info", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["capabilities"]["privileges"]["root"], false);
    assert_eq!(
        v["capabilities"]["ebpf"]["tracepoints"], false,
        "BPF needs privilege"
    );
    let lost = v["capabilities"]["lost"].as_array().unwrap();
    let tp = lost
        .iter()
        .find(|l| l["capability"] == "eBPF tracepoints")
        .expect("tracepoint loss recorded");
    assert!(tp["remedy"].as_str().unwrap().contains("sudo"), "{tp}");
    for l in lost {
        assert!(
            !l["reason"].as_str().unwrap().is_empty() && !l["remedy"].as_str().unwrap().is_empty()
        );
    }
    let out = as_nobody(&[
        "run",
        "false-sharing",
        "--duration",
        "0.02",
        "--repetitions",
        "3",
        "--warmup",
        "0",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `hwprof c2c --replay` on a recorded stream with planted false sharing.
#[test]
fn c2c_replay_reports_the_planted_line() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rec.jsonl");
    let mut f = std::fs::File::create(&path).unwrap();
    for i in 0..100 {
        for (tid, off) in [(11, 0u64), (12, 32)] {
            for op in ["load", "store"] {
                let hitm = op == "load" && i % 2 == 0;
                writeln!(
                    f,
                    r#"{{"pid":7,"tid":{tid},"ip":4096,"addr":{},"op":"{op}","hitm":{hitm}}}"#,
                    0x5000_0000u64 + off
                )
                .unwrap();
            }
        }
        // A private line per thread: must not be flagged.
        writeln!(
            f,
            r#"{{"pid":7,"tid":11,"ip":4100,"addr":{},"op":"store"}}"#,
            0x6000_0000u64
        )
        .unwrap();
    }
    drop(f);
    let out = dir.path().join("out");
    let v = json(&[
        "c2c",
        "--replay",
        path.to_str().unwrap(),
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(v["samples"], 500);
    let lines = v["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 1, "only the shared line is shown: {lines:?}");
    assert_eq!(lines[0]["address"], "0x50000000");
    assert_eq!(lines[0]["class"], "false-sharing");
    assert_eq!(
        lines[0]["threads"]["11"]["offsets_written"],
        serde_json::json!([0])
    );
    assert_eq!(
        lines[0]["threads"]["12"]["offsets_written"],
        serde_json::json!([32])
    );
    assert!(out.join("c2c.json").is_file() && out.join("c2c.md").is_file());
}

/// Without PEBS/IBS/SPE (this VM), c2c says why and exits 2.
#[test]
fn c2c_without_address_sampling_exits_2() {
    let info = json(&["info", "--json"]);
    if info["capabilities"]["pmu_hardware"] == true {
        eprintln!("this machine has a PMU: the refusal path does not apply");
        return;
    }
    let out = run(&["c2c", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("address sampling needs PEBS/IBS/SPE; not available"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1);
}

#[test]
fn events_list_prints_encodings_and_reasons() {
    let out = run(&["events", "list", "--microarch", "icelake-sp"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("MEM_LOAD_L3_HIT_RETIRED.XSNP_FWD") && text.contains("event=0xd2,umask=0x4"),
        "{text}"
    );
    assert!(text.contains("hitm_loads_per_kilo_load") && text.contains("available"));
    let v = json(&["events", "list", "--microarch", "zen3", "--json"]);
    assert_eq!(v["metrics"]["prefetch_accuracy"]["available"], false);
    assert_eq!(v["metrics"]["hitm_loads_per_kilo_load"]["available"], true);
    let host = json(&["events", "list", "--json"]);
    assert_eq!(
        host["hardware_events_available"],
        json(&["info", "--json"])["capabilities"]["pmu_hardware"]
    );
    if host["hardware_events_available"] == false {
        assert!(host["reason"].as_str().unwrap().len() > 10);
    }
    let bad = run(&["events", "list", "--microarch", "pentium-pro"]);
    assert_eq!(bad.status.code(), Some(2));
}

/// Human output is written for people: no Rust Debug text (`Some(25)`,
/// `{"k": "v"}`, `[(…)]`, `[[10, 21], …]`) in `hwprof info` for any machine.
#[cfg(all(feature = "hwloc", target_os = "linux"))]
#[test]
fn info_text_has_no_debug_formatting() {
    let mut sources = vec!["host".to_string()];
    for e in std::fs::read_dir(topologies()).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "xml") {
            sources.push(format!("xml:{}", p.display()));
        }
    }
    for src in sources {
        let out = run(&["info", "--topology", &src]);
        assert!(out.status.success(), "{src}");
        let text = String::from_utf8_lossy(&out.stdout);
        for bad in ["Some(", "None", "{\"", "[(", "[["] {
            assert!(!text.contains(bad), "{src}: {bad} in\n{text}");
        }
    }
}
