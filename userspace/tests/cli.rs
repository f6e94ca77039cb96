//! The `hwprof` binary end to end: JSON contracts, agreement with lstopo and perf
//! on this machine, reports on disk, bad input, interruption.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

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

/// The foundation's proof: false sharing is detected on the host, every metric
/// states its source, and the report embeds the machine profile.
#[test]
fn false_sharing_quick_detects_the_effect() {
    let _machine = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fs");
    let v = json(&[
        "run",
        "false-sharing",
        "--quick",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(v["experiment"]["name"], "false-sharing");
    assert!(v["machine"]["topology"]["pus"].as_u64().unwrap() >= 2);
    let groups = v["groups"].as_array().unwrap();
    assert!(!groups.is_empty());
    for g in groups {
        for variant in g["variants"].as_array().unwrap() {
            for (name, m) in variant["metrics"].as_object().unwrap() {
                let src = m["source"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{name} has no source"));
                assert!(
                    ["pmu", "software", "timer", "probe"].contains(&src),
                    "{name}: {src}"
                );
                if m["available"] == true {
                    assert!(
                        m["median"].is_number() && m["ci95"]["lo"].is_number(),
                        "{name}: {m}"
                    );
                } else {
                    assert!(
                        m["reason"].is_string(),
                        "{name} unavailable without a reason"
                    );
                }
            }
        }
        let c = &g["comparison"];
        // On any machine with two cores, packed counters must be clearly slower.
        assert_eq!(
            c["verdict"]["outcome"], "slower",
            "{}: {}",
            g["label"], c["verdict"]["text"]
        );
        assert!(
            c["ci95"]["lo"].as_f64().unwrap() > 1.2,
            "{}: {c}",
            g["label"]
        );
        assert_eq!(c["source"], "timer");
    }
    // Files: report.json equal to stdout's document, summary.md, no temporaries.
    let on_disk: Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(on_disk["groups"], v["groups"]);
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(
        md.contains("## Verdicts") && md.contains("slower than padded"),
        "{md}"
    );
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "false-sharing-by-class.png",
            "false-sharing-by-class.svg",
            "report.json",
            "summary.md"
        ]
    );
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
fn list_names_the_registered_experiments() {
    let out = run(&["list"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("false-sharing"));
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
        Command::new("setpriv")
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

/// `run simd`: every available kernel timed per call; the report names the
/// dispatched kernel and why; the scalar reference is slower.
#[test]
fn simd_reports_latency_and_the_dispatched_kernel() {
    let _machine = exclusive();
    let v = json(&[
        "run",
        "simd",
        "--duration",
        "0.05",
        "--repetitions",
        "3",
        "--warmup",
        "0",
        "--json",
    ]);
    let notes = v["experiment"]["notes"].to_string();
    assert!(notes.contains("dispatched kernel:"), "{notes}");
    let g = &v["groups"][0];
    let names: Vec<&str> = g["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"scalar-cosine") && names.contains(&"scalar-dot"),
        "{names:?}"
    );
    for var in g["variants"].as_array().unwrap() {
        let m = &var["metrics"]["latency_p99_ns"];
        assert_eq!(m["source"], "timer");
        assert!(m["median"].as_f64().unwrap() > 0.0, "{}: {m}", var["name"]);
        assert!(
            var["metrics"]["latency_p50_ns"]["median"].as_f64().unwrap()
                <= m["median"].as_f64().unwrap()
        );
    }
    // Which kernel wins is a property of optimised builds (docs/benchmarks.md);
    // tests run unoptimised, so only the comparison's shape is checked here.
    let c = &g["comparison"];
    assert_eq!(c["treatment"], "scalar-cosine");
    let best = c["baseline"].as_str().unwrap();
    assert!(best.ends_with("-cosine"), "{c}");
    assert!(
        notes.contains(&format!(
            "dispatched kernel: {}",
            best.trim_end_matches("-cosine")
        )),
        "{notes}"
    );
}

/// `run contention`: every hot-spot scenario compared with uniform against its
/// target, with latency percentiles and fairness per variant.
#[test]
fn contention_compares_hot_spots_with_uniform_against_targets() {
    let _machine = exclusive();
    let v = json(&[
        "run",
        "contention",
        "--threads",
        "2",
        "--duration",
        "0.02",
        "--repetitions",
        "3",
        "--warmup",
        "0",
        "--json",
    ]);
    let g = &v["groups"][0];
    let cmps = g["comparisons"].as_array().unwrap();
    assert_eq!(cmps.len(), 14);
    for c in cmps {
        let target = c["target"].as_f64().unwrap();
        assert!(target == 0.9 || target == 0.7, "{c}");
        let outcome = c["verdict"]["outcome"].as_str().unwrap();
        assert!(
            ["meets-target", "misses-target", "inconclusive"].contains(&outcome),
            "{outcome}"
        );
        assert!(c["retained"].as_f64().unwrap() > 0.0);
    }
    for var in g["variants"].as_array().unwrap() {
        let m = &var["metrics"];
        assert!(
            m["latency_p999_ns"]["median"].as_f64().unwrap()
                >= m["latency_p50_ns"]["median"].as_f64().unwrap()
        );
        let f = m["fairness_min_max"]["median"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&f), "{f}");
    }
}

/// `run scaling`: a thread sweep with speedup, efficiency and a USL fit, and the
/// scaling and latency plots in --out.
#[test]
fn scaling_sweeps_threads_fits_usl_and_plots() {
    let _machine = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("scaling");
    let v = json(&[
        "run",
        "scaling",
        "--duration",
        "0.05",
        "--repetitions",
        "3",
        "--warmup",
        "0",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    let cpus = v["machine"]["topology"]["pus"].as_u64().unwrap();
    let groups = v["groups"].as_array().unwrap();
    assert!(groups.iter().any(|g| g["label"] == "compact x1"));
    if cpus >= 2 {
        let series = v["scaling"].as_array().unwrap();
        assert_eq!(
            series.len(),
            3,
            "one series per workload (compact; scatter adds nothing on this machine)"
        );
        for s in series {
            let pts = s["points"].as_array().unwrap();
            assert_eq!(pts[0]["threads"], 1);
            assert!((pts[0]["speedup"].as_f64().unwrap() - 1.0).abs() < 1e-9);
            let usl = &s["usl"];
            assert!(
                usl["sigma"].is_number() && usl["kappa"].is_number() && usl["r2"].is_number(),
                "{usl}"
            );
            assert!(!s["predicted"].as_array().unwrap().is_empty());
        }
        let svg = std::fs::read_to_string(out.join("scaling.svg")).unwrap();
        assert!(svg.contains("<svg") && svg.contains("USL fit"));
    }
    let plots: Vec<&str> = v["plots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    for p in &plots {
        assert!(std::fs::metadata(out.join(p)).unwrap().len() > 1000, "{p}");
    }
    assert!(plots.iter().any(|p| p.starts_with("latency-")), "{plots:?}");
}

/// `run tenants`: B's p99 with a noisy neighbour against the interference target,
/// and the latency plot.
#[test]
fn tenants_reports_interference_against_the_target() {
    let _machine = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tenants");
    let v = json(&[
        "run",
        "tenants",
        "--duration",
        "0.1",
        "--repetitions",
        "3",
        "--warmup",
        "0",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    let c = &v["groups"][0]["comparison"];
    assert_eq!(c["treatment"], "b-with-noisy-a");
    assert_eq!(c["baseline"], "b-alone");
    assert!(
        c["definition"].as_str().unwrap().contains("p99 latency"),
        "{c}"
    );
    assert!(c["target"].as_f64().unwrap() > 0.98);
    assert!(
        c["verdict"]["text"]
            .as_str()
            .unwrap()
            .contains("interference target"),
        "{c}"
    );
    for var in v["groups"][0]["variants"].as_array().unwrap() {
        let p99 = var["metrics"]["latency_p99_ns"]["median"].as_f64().unwrap();
        assert!(
            p99 > 1000.0,
            "{}: a recall takes microseconds, got {p99} ns",
            var["name"]
        );
    }
    assert!(out.join("latency-compact-x2.svg").is_file());
}

/// `hwprof suite`: every registered experiment, one combined JSON/Markdown/HTML.
#[test]
fn suite_runs_every_registered_experiment() {
    let _machine = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("suite");
    // Tiny windows: this checks the plumbing, not the figures.
    let status = hwprof()
        .args(["suite", "--quick", "--json", "--out", out.to_str().unwrap()])
        .env("HWPROF_SUITE_TEST_DURATION", "0.02")
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let v: Value = serde_json::from_slice(&status.stdout).unwrap();
    let names: Vec<&str> = v["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["experiment"].as_str().unwrap())
        .collect();
    let listed = String::from_utf8_lossy(&run(&["list"]).stdout).into_owned();
    for line in listed.lines() {
        let name = line.split_whitespace().next().unwrap();
        assert!(
            names.contains(&name),
            "{name} missing from the suite: {names:?}"
        );
    }
    for e in v["experiments"].as_array().unwrap() {
        assert_eq!(e["status"], "ok", "{e}");
        assert!(!e["verdicts"].as_array().unwrap().is_empty(), "{e}");
        assert!(out.join(e["report"].as_str().unwrap()).is_file());
    }
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    for n in &names {
        assert!(
            html.contains(&format!("id=\"{n}\"")),
            "{n} not in index.html"
        );
    }
    assert!(
        html.contains("<img src=\"scaling/scaling.svg\""),
        "plots are linked"
    );
}

/// `run c2c`: one-way latency for every pair, per class, the heatmap.
#[test]
fn c2c_measures_every_pair() {
    let _machine = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("c2c");
    let v = json(&[
        "run",
        "c2c",
        "--quick",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    let n = v["machine"]["topology"]["pus"].as_u64().unwrap() as usize;
    let m = &v["pair_matrix"];
    let pairs = m["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), n * (n - 1) / 2);
    for p in pairs {
        let ns = p["one_way_ns"].as_f64().unwrap();
        assert!(ns > 1.0 && ns < 100_000.0, "{p}");
        assert!(p["ci95"]["lo"].as_f64().unwrap() <= ns);
    }
    assert!(m["verdict"]
        .as_str()
        .unwrap()
        .starts_with("one-way latency by class"));
    assert!(std::fs::read_to_string(out.join("c2c-heatmap.svg"))
        .unwrap()
        .contains("CPU 1"));
}

fn assert_plot_pair(dir: &Path, stem: &str) {
    let svg = std::fs::read_to_string(dir.join(format!("{stem}.svg")))
        .unwrap_or_else(|e| panic!("{stem}.svg: {e}"));
    assert!(svg.contains("<svg") && svg.len() > 1000, "{stem}.svg");
    let png = std::fs::read(dir.join(format!("{stem}.png"))).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 2000,
        "{stem}.png"
    );
}

/// `run prefetch`: the staircase over every layout and size, the distance
/// sweeps, their verdicts and plots. Short windows: the shape, not the figures
/// (those are in the closing note and docs/benchmarks.md).
#[test]
fn prefetch_staircase_and_distance_sweeps() {
    let _machine = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("prefetch");
    let v = json(&[
        "run",
        "prefetch",
        "--quick",
        "--duration",
        "0.01",
        "--repetitions",
        "3",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    let f = &v["findings"];
    let stair = &f["charts"][0];
    assert_eq!(stair["id"], "staircase");
    let curves = stair["curves"].as_array().unwrap();
    let names: Vec<&str> = curves.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["seq", "stride", "random"]);
    let random: Vec<(f64, f64)> = curves[2]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["x"].as_f64().unwrap(), p["y"]["median"].as_f64().unwrap()))
        .collect();
    assert!(random.len() >= 10, "{random:?}");
    assert!(random.windows(2).all(|w| w[1].0 > w[0].0), "sizes ascend");
    // From inside L1d to far beyond the LLC a dependent load gets much slower
    // on any real memory hierarchy.
    let (first, last) = (random[0].1, random[random.len() - 1].1);
    assert!(last > 5.0 * first, "random chase {first} ns -> {last} ns");
    let markers = stair["markers"].as_array().unwrap();
    assert!(
        markers[0][0].as_str().unwrap().starts_with("L1d"),
        "{markers:?}"
    );
    let dist = &f["charts"][1];
    assert_eq!(dist["id"], "prefetch-distance");
    for c in dist["curves"].as_array().unwrap() {
        assert_eq!(c["points"].as_array().unwrap().len(), 7, "{c}");
    }
    let verdict: Vec<&str> = f["verdict"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(
        verdict.iter().any(|l| l.starts_with("declared caches:")),
        "{verdict:?}"
    );
    assert!(
        verdict.iter().any(|l| l.contains("random list")),
        "{verdict:?}"
    );
    assert!(
        verdict.iter().any(|l| l.contains("neighbour scan")),
        "{verdict:?}"
    );
    assert_eq!(v["groups"][0]["comparisons"].as_array().unwrap().len(), 12);
    assert_plot_pair(&out, "staircase");
    assert_plot_pair(&out, "prefetch-distance");
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(md.contains("## Findings") && md.contains("![staircase.svg](staircase.svg)"));
}

/// `run numa` here: the local column of every matrix, and the plain statement
/// that there is no remote node when there is none.
#[test]
fn numa_measures_the_local_column_and_says_what_is_missing() {
    let _machine = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("numa");
    let v = json(&[
        "run",
        "numa",
        "--quick",
        "--duration",
        "0.05",
        "--repetitions",
        "3",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    let nodes = v["machine"]["topology"]["numa_nodes"].as_u64().unwrap() as usize;
    let f = &v["findings"];
    let ids: Vec<&str> = f["matrices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["numa-latency", "numa-read", "numa-write", "numa-copy"]
    );
    for m in f["matrices"].as_array().unwrap() {
        assert_eq!(m["cols"].as_array().unwrap().len(), nodes, "{m}");
        let id = m["id"].as_str().unwrap();
        assert_plot_pair(&out, id);
        for cell in m["cells"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_array().unwrap())
        {
            let x = cell["median"].as_f64().unwrap();
            // ns per access, or GB/s: both positive and physically plausible.
            assert!(x > 0.1 && x < 10_000.0, "{id}: {x}");
        }
    }
    let warnings: Vec<&str> = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    if nodes == 1 {
        assert!(
            warnings.iter().any(|w| w.contains("one NUMA node")),
            "{warnings:?}"
        );
        let verdict = f["verdict"].to_string();
        assert!(verdict.contains("local read bandwidth"), "{verdict}");
    }
}

/// `--plan-only` on every multi-node export plans the whole node x node matrix:
/// a group per CPU node and, for every kernel, a variant bound to every node.
#[test]
fn numa_plans_the_full_matrix_on_lab_exports() {
    let mut planned = 0;
    for entry in std::fs::read_dir(topologies()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "xml") {
            continue;
        }
        let topo = format!("xml:{}", path.display());
        let info = json(&["info", "--json", "--topology", &topo]);
        let nodes: Vec<u64> = info["topology"]["numa"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["os_index"].as_u64().unwrap())
            .collect();
        if nodes.len() < 2 {
            continue;
        }
        let plan = json(&["run", "numa", "--plan-only", "--json", "--topology", &topo]);
        let variants = plan["variants"].as_array().unwrap();
        for kernel in ["latency", "read", "write", "copy"] {
            for n in &nodes {
                let name = format!("{kernel}-node{n}");
                let v = variants
                    .iter()
                    .find(|v| v["name"] == name.as_str())
                    .unwrap_or_else(|| panic!("{}: no {name}", path.display()));
                assert_eq!(v["memory"]["policy"], "bind", "{v}");
                assert_eq!(v["memory"]["nodes"][0].as_u64(), Some(*n), "{v}");
            }
        }
        assert!(variants.iter().any(|v| v["name"] == "scan-interleave"));
        let groups = plan["placement"]["groups"].as_array().unwrap();
        let with_cpus = info["topology"]["numa"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| !n["cpus"].as_array().unwrap().is_empty())
            .count();
        assert_eq!(
            groups.len(),
            with_cpus + 1,
            "{}: {groups:?}",
            path.display()
        );
        planned += 1;
    }
    assert!(planned >= 3, "only {planned} multi-node exports");
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
