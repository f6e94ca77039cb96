//! Golden files for what people read: `hwprof info` for saved machine profiles,
//! and an experiment's terminal table and Markdown for a run whose trials are
//! planted (the real plan → analyse → render stages on a saved profile, with
//! fixed measurements in place of the execute stage: the mock seam).
//!
//! After a deliberate change to human output, rewrite them with
//! `HWPROF_BLESS=1 cargo test --test snapshots` and review the diff in git.

use std::path::{Path, PathBuf};

use hwprof::experiment::execute::{Executed, GroupTrials};
use hwprof::experiment::{analysis, plan, RunOptions};
use hwprof::machine::MachineProfile;
use hwprof::report::schema::{TrialResult, WorkerResult};
use hwprof::topology::TopologySource;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// Saved profiles: the lab VM's own (`hwprof info --save`) and three whose
/// topology is a fixture export (tests/data/profiles/README.md).
fn profiles() -> Vec<(String, MachineProfile)> {
    let mut v: Vec<(String, MachineProfile)> = std::fs::read_dir(data().join("profiles"))
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "json").then(|| {
                let name = p.file_stem().unwrap().to_string_lossy().into_owned();
                let text = std::fs::read_to_string(&p).unwrap();
                let profile = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{}: not a machine profile: {e}", p.display()));
                (name, profile)
            })
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(v.len() >= 4, "saved profiles missing: {}", v.len());
    v
}

/// Compare with (or, under HWPROF_BLESS, write) tests/data/golden/NAME.
fn golden(name: &str, actual: &str) {
    for debug in ["Some(", "None", "{\"", "[(", "[["] {
        assert!(
            !actual.contains(debug),
            "{name}: Rust Debug text {debug:?} in human output:\n{actual}"
        );
    }
    let path = data().join("golden").join(name);
    if std::env::var_os("HWPROF_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "{} missing: run HWPROF_BLESS=1 cargo test --test snapshots",
            path.display()
        )
    });
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(expected.lines().count().min(actual.lines().count()));
        panic!(
            "{name} differs from its golden file at line {}:\n  golden: {:?}\n  now:    {:?}\n\
             (if the change is deliberate: HWPROF_BLESS=1 cargo test --test snapshots)",
            first + 1,
            expected.lines().nth(first).unwrap_or("<end>"),
            actual.lines().nth(first).unwrap_or("<end>")
        );
    }
}

#[test]
fn info_text_of_saved_profiles() {
    for (name, p) in profiles() {
        golden(
            &format!("info-{name}.txt"),
            &hwprof::report::table::render_info(&p),
        );
    }
}

fn options(experiment: &str) -> RunOptions {
    RunOptions {
        experiment: experiment.into(),
        placement: Default::default(),
        duration: None,
        repetitions: Some(5),
        warmup: Some(0),
        quick: false,
        membind: None,
        events: None,
        probes: None,
        quiet: true,
        json: false,
        out: None,
        plan_only: false,
        topology: TopologySource::Host,
        command: vec!["hwprof".into(), "run".into(), experiment.into()],
        progress: None,
    }
}

/// Planted measurements: every variant of every group, five repetitions, the
/// treatment `slowdown` times slower than the rest, a small fixed spread.
fn planted(p: &plan::RunPlan, treatment: &str, slowdown: f64) -> Executed {
    let groups = p
        .placement
        .groups
        .iter()
        .map(|g| GroupTrials {
            group: g.clone(),
            headline_rounds: None,
            trials: (0..p.settings.repetitions)
                .flat_map(|rep| {
                    p.variants.iter().map(move |v| {
                        let base = 100e6 * (1.0 + 0.01 * rep as f64);
                        let rate = if v.name == treatment {
                            base / slowdown
                        } else {
                            base
                        };
                        let ops = (rate * 0.5) as u64;
                        TrialResult {
                            variant: v.name.to_string(),
                            repetition: rep,
                            warmup: false,
                            ops,
                            ops_per_sec: rate,
                            workers: g
                                .cpus
                                .iter()
                                .enumerate()
                                .map(|(w, &cpu)| WorkerResult {
                                    worker: w,
                                    planned_cpu: cpu,
                                    ops: ops / g.cpus.len() as u64,
                                    elapsed_ns: 0.5e9,
                                    cpu_samples: 1000,
                                    off_cpu_samples: 0,
                                    migrations_seen: 0,
                                    counters: vec![],
                                    cpu_time_ns: 500_000_000,
                                    latency: None,
                                })
                                .collect(),
                            cut_short: false,
                            latency: None,
                            interference: None,
                        }
                    })
                })
                .collect(),
        })
        .collect();
    Executed {
        groups,
        probes: None,
        warnings: vec![],
        started_at: "2026-12-02T08:00:00Z".into(),
        finished_at: "2026-12-02T08:01:00Z".into(),
        interrupted: false,
    }
}

#[test]
fn a_runs_table_and_markdown_on_a_two_socket_profile() {
    let (_, profile) = profiles()
        .into_iter()
        .find(|(n, _)| n == "32em64t-2n8c2t-pci-normalio")
        .expect("the two-socket profile");
    let o = options("false-sharing");
    let p = plan::plan(&profile, &o).unwrap();
    assert!(p.placement.groups.len() >= 3, "pair classes of two sockets");
    let r = analysis::analyse(
        &p,
        &profile,
        "hwloc".into(),
        planted(&p, "packed", 4.0),
        o.command.clone(),
    );
    // The planted 4x is what every group reports.
    for g in &r.groups {
        let c = &g.comparisons[0];
        assert!((c.ratio - 4.0).abs() < 0.01, "{}: {}", g.label, c.ratio);
        assert!(c.verdict.conclusive, "{}", c.verdict.text);
    }
    golden(
        "run-false-sharing-table.txt",
        &hwprof::report::table::render(&r),
    );
    golden(
        "run-false-sharing-summary.md",
        &hwprof::report::markdown::render(&r),
    );
}
