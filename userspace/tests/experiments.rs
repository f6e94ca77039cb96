//! Each experiment end to end through the binary: the effect it plants is
//! found, its report, plots and verdicts have their shape (the CLI contract
//! itself is in cli.rs).

use std::path::Path;

use serde_json::Value;

mod common;
use common::*;

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
        // No --repetitions: the headline may run extra rounds until decided.
        // Every measured repetition of its two variants is in the verdict's n.
        let h = &g["headline_rounds"];
        let rounds = h["rounds"].as_u64().unwrap() as usize;
        assert!(h["stopped"].is_string(), "{h}");
        if h["conclusive_before"] == true {
            assert_eq!(rounds, 0, "{h}");
        }
        let measured = |name: &str| {
            g["trials"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|t| t["variant"] == name && t["warmup"] == false)
                .count()
        };
        let reps = v["settings"]["repetitions"].as_u64().unwrap() as usize;
        assert_eq!(measured("packed"), reps + rounds, "{h}");
        assert!(
            c["verdict"]["text"]
                .as_str()
                .unwrap()
                .contains(&format!("{} repetitions each", reps + rounds)),
            "{c}"
        );
    }
    assert!(
        v["settings"]["adaptive"]["per_group_s"].as_f64().unwrap() >= 2.0 / groups.len() as f64
    );
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
    // One discovery for the whole suite: each capability note is printed once.
    let stderr = String::from_utf8_lossy(&status.stderr);
    let notes: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("hwprof: note:"))
        .collect();
    let mut unique = notes.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(notes.len(), unique.len(), "a note printed twice:\n{stderr}");
    let md = std::fs::read_to_string(out.join("suite.md")).unwrap();
    for debug in ["Some(", "{\"", "[("] {
        assert!(
            !md.contains(debug),
            "Debug text {debug:?} in suite.md:\n{md}"
        );
    }
    let v: Value = serde_json::from_slice(&status.stdout).unwrap();
    let names: Vec<&str> = v["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["experiment"].as_str().unwrap())
        .collect();
    let listed = String::from_utf8_lossy(&run(&["list"]).stdout).into_owned();
    // Experiments first, then a blank line and the probes.
    for line in listed.lines().take_while(|l| !l.is_empty()) {
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
    // The answer first: each experiment's headline line comes before its
    // per-cell verdicts, which sit behind <details>.
    for e in v["experiments"].as_array().unwrap() {
        let name = e["experiment"].as_str().unwrap();
        let headline = e["headline"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no headline"));
        let section = &html[html.find(&format!("id=\"{name}\"")).unwrap()..];
        let section = &section[..section[1..]
            .find("<h2 id=")
            .map_or(section.len(), |i| i + 1)];
        let answer = section.find("class=\"answer\"").expect("answer line");
        let details = section.find("<details>").expect("verdicts behind details");
        assert!(answer < details, "{name}: answer after details");
        assert!(!headline.is_empty());
    }
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
    // A fixed --repetitions means exactly that many: no adaptive rounds.
    assert!(v["settings"]["adaptive"].is_null());
    assert!(v["groups"][0]["headline_rounds"].is_null());
    let f = &v["findings"];
    let stair = &f["charts"][0];
    assert_eq!(stair["id"], "staircase");
    let curves = stair["curves"].as_array().unwrap();
    let names: Vec<&str> = curves.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["seq", "stride", "random", "random-2M"]);
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
        verdict
            .iter()
            .any(|l| l.starts_with("declared caches (knees on ")),
        "{verdict:?}"
    );
    // Where THP can be asked for (here: `madvise`), the 2 MiB series really is
    // on huge pages (smaps) and the largest size's latency is quoted on both.
    let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .is_ok_and(|s| !s.contains("[never]"));
    if thp {
        let line = verdict
            .iter()
            .find(|l| l.starts_with("latency at ") && l.contains("on 2 MiB pages ("))
            .unwrap_or_else(|| panic!("no huge-page latency line: {verdict:?}"));
        let share: f64 = line
            .split("on 2 MiB pages (")
            .nth(1)
            .and_then(|r| r.split('%').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no share in {line}"));
        assert!(share >= 50.0, "{line}");
    }
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

/// A CPU hog on one of the experiment's CPUs: the report measures what else ran
/// there and warns; the same run without it does not.
#[cfg(target_os = "linux")]
#[test]
fn a_cpu_hog_on_the_experiments_cpus_is_named() {
    let _machine = exclusive();
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2
        || tool_output("taskset", &["--version"]).is_none()
    {
        eprintln!("needs two CPUs and taskset");
        return;
    }
    let measure = || {
        let v = json(&["run", "false-sharing", "--quick", "--cpus", "0,1", "--json"]);
        let share = v["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                let i = &g["interference"];
                (i["other_ns"].as_f64().unwrap() + i["steal_ns"].as_f64().unwrap())
                    / i["available_ns"].as_f64().unwrap()
            })
            .fold(0.0, f64::max);
        let warned = v["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("not quiet"));
        (share, warned)
    };
    let (quiet_share, quiet_warned) = measure();
    struct Hog(std::process::Child);
    impl Drop for Hog {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _hog = Hog(std::process::Command::new("taskset")
        .args(["-c", "1", "sh", "-c", "while :; do :; done"])
        .spawn()
        .unwrap());
    let (hog_share, hog_warned) = measure();
    assert!(
        hog_warned && hog_share > 0.15,
        "hog share {hog_share:.3}, warned {hog_warned}"
    );
    assert!(
        !quiet_warned && quiet_share < hog_share,
        "quiet share {quiet_share:.3} (hog {hog_share:.3}), warned {quiet_warned}"
    );
}
