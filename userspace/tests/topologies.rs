//! Discovery and placement on real machines' hwloc exports (tests/data/topologies, copied from the hwloc project's test data)
//! and on synthetic descriptions. Expected counts are read from the README that
//! ships with the exports (lstopo's counts), and cross-checked against lstopo
//! itself when it is installed.
#![cfg(all(feature = "hwloc", target_os = "linux"))]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use hwprof::placement::{self, pairs, PairClass, Policy, Request};
use hwprof::topology::{self, Topology, TopologySource};
use hwprof_workloads::ThreadShape;

fn topologies_dir() -> PathBuf {
    let dir = std::env::var_os("HWPROF_TOPOLOGIES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/topologies"));
    assert!(
        dir.join("README.md").is_file(),
        "topology exports not found at {} (set HWPROF_TOPOLOGIES)",
        dir.display()
    );
    dir
}

/// (file, pus, cores, packages, numa, l3) from the README table.
fn expected() -> Vec<(String, usize, usize, usize, usize, usize)> {
    let text = std::fs::read_to_string(topologies_dir().join("README.md")).unwrap();
    let rows: Vec<_> = text
        .lines()
        .filter(|l| l.starts_with('|') && l.contains(".xml"))
        .map(|l| {
            let c: Vec<&str> = l.split('|').map(str::trim).collect();
            let n = |i: usize| c[i].parse::<usize>().unwrap();
            (c[1].to_string(), n(2), n(3), n(4), n(5), n(6))
        })
        .collect();
    assert!(rows.len() >= 9, "README table has {} rows", rows.len());
    rows
}

fn load(file: &str) -> Topology {
    let src = TopologySource::Xml(topologies_dir().join(file));
    topology::load(&src)
        .unwrap_or_else(|e| panic!("{file}: {e}"))
        .model
}

#[test]
fn every_export_matches_lstopo_counts() {
    for (file, pus, cores, packages, numa, l3) in expected() {
        let t = load(&file);
        assert_eq!(
            (t.pus, t.cores, t.packages, t.numa_nodes, t.l3_domains),
            (pus, cores, packages, numa, l3),
            "{file}: (PUs, cores, packages, NUMA, L3)"
        );
        t.check_consistency().unwrap();
    }
}

fn lstopo_count(file: &Path, ty: &str) -> Option<usize> {
    let out = Command::new("lstopo-no-graphics")
        .arg("--input")
        .arg(file)
        .args(["--only", ty])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).lines().count())
}

/// The same comparison against a live lstopo, when the hwloc tools are installed
/// (scripts/install.sh installs them).
#[test]
fn every_export_matches_live_lstopo() {
    let dir = topologies_dir();
    if lstopo_count(&dir.join("fakecpukinds.xml"), "pu").is_none() {
        eprintln!("lstopo-no-graphics not installed: compared against the README table only");
        return;
    }
    for (file, ..) in expected() {
        let t = load(&file);
        let path = dir.join(&file);
        for (ty, ours) in [
            ("pu", t.pus),
            ("core", t.cores),
            ("package", t.packages),
            ("numanode", t.numa_nodes),
            ("l3cache", t.l3_domains),
        ] {
            assert_eq!(lstopo_count(&path, ty), Some(ours), "{file}: {ty}");
        }
    }
}

#[test]
fn details_of_known_machines() {
    let t = load("24em64t-2n6c2t-pci.xml");
    let d = t.numa_distances.as_ref().expect("distance matrix");
    assert_eq!(d.len(), 2);
    assert!(d[0][0] < d[0][1], "local < remote: {d:?}");
    assert_eq!(t.max_smt(), 2);
    assert!(t.cache_size_for(3, 0).unwrap() >= 1 << 20);
    assert!(t.cache_size_for(1, 0).unwrap() >= 16 << 10);

    let off = load("16em64t-4s2c2t-offlines.xml");
    assert_eq!(off.offline_cpus.len(), 16 - 7, "{:?}", off.offline_cpus);

    let kinds = load("fakecpukinds.xml");
    assert!(
        kinds.cpu_kinds.len() >= 2,
        "hybrid kinds: {:?}",
        kinds.cpu_kinds
    );
    assert!(kinds.cpus.iter().all(|p| p.kind.is_some()));

    let amd = load("16amd64-4distances.xml");
    assert_eq!(amd.numa_distances.as_ref().map(|m| m.len()), Some(8));
}

#[test]
fn synthetic_descriptions() {
    let src = TopologySource::parse("synthetic:pack:2 numa:1 l3:2 core:8 pu:2").unwrap();
    let t = topology::load(&src).unwrap().model;
    assert_eq!(
        (t.packages, t.numa_nodes, t.l3_domains, t.cores, t.pus),
        (2, 2, 4, 32, 64)
    );
    let bad = TopologySource::parse("synthetic:pack:two").unwrap();
    let err = topology::load(&bad)
        .err()
        .expect("malformed synthetic string must fail");
    assert!(hwprof::error::is_usage(&err));
}

fn classes(t: &Topology) -> BTreeSet<PairClass> {
    let req = Request::default();
    let plan = placement::plan(t, ThreadShape::Pair, &req).unwrap();
    for g in &plan.groups {
        let c = g.pair_class.unwrap();
        assert_eq!(pairs::classify(t, g.cpus[0], g.cpus[1]), Some(c));
    }
    plan.groups.iter().filter_map(|g| g.pair_class).collect()
}

#[test]
fn pair_classes_follow_the_hardware() {
    use PairClass::*;
    let set = |v: &[PairClass]| v.iter().copied().collect::<BTreeSet<_>>();
    assert_eq!(
        classes(&load("24em64t-2n6c2t-pci.xml")),
        set(&[SmtSiblings, SameL3, CrossPackage])
    );
    assert_eq!(
        classes(&load("64intel64-fakeKNL-SNC4-hybrid.xml")),
        set(&[SmtSiblings, SameL3, CrossL3])
    );
    // No L3 recorded: only the package boundary can be named.
    assert_eq!(
        classes(&load("16amd64-4distances.xml")),
        set(&[CrossPackage])
    );
    let synth =
        topology::load(&TopologySource::parse("synthetic:pack:2 l3:2 core:2 pu:2").unwrap())
            .unwrap()
            .model;
    assert_eq!(
        classes(&synth),
        set(&[SmtSiblings, SameL3, CrossL3, CrossPackage])
    );
}

#[test]
fn missing_pair_class_is_an_error_when_asked_for() {
    let t = load("24em64t-2n6c2t-pci.xml");
    let req = Request {
        pairs: Some(vec![PairClass::CrossL3]),
        ..Default::default()
    };
    let err = placement::plan(&t, ThreadShape::Pair, &req).unwrap_err();
    assert!(hwprof::error::is_usage(&err));
    assert!(err.to_string().contains("cross-l3"), "{err}");
}

#[test]
fn cross_package_pair_spans_packages() {
    let t = load("24em64t-2n6c2t-pci.xml");
    let req = Request {
        pairs: Some(vec![PairClass::CrossPackage]),
        ..Default::default()
    };
    let plan = placement::plan(&t, ThreadShape::Pair, &req).unwrap();
    let g = &plan.groups[0];
    let pkg = |c: usize| t.pu(c).unwrap().package;
    assert_ne!(pkg(g.cpus[0]), pkg(g.cpus[1]));
}

/// Policy invariants on every export: each order is a permutation of the usable
/// CPUs; compact fills a core's SMT siblings first; scatter visits every package
/// before reusing one and puts SMT siblings last.
#[test]
fn compact_and_scatter_orders() {
    for (file, ..) in expected() {
        let t = load(&file);
        let usable: BTreeSet<usize> = t.usable_cpus().into_iter().collect();
        for policy in [Policy::Compact, Policy::Scatter] {
            let order = policy.order(&t, None);
            assert_eq!(
                order.iter().copied().collect::<BTreeSet<_>>(),
                usable,
                "{file} {policy:?}"
            );
            assert_eq!(order.len(), usable.len());
        }
        // Compact: all online PUs of the first core come first (offline siblings
        // shrink that core, as on the -offlines export).
        let compact = Policy::Compact.order(&t, None);
        let core = t.pu(compact[0]).unwrap().core;
        let k = t.cpus.iter().filter(|p| p.core == core).count();
        assert!(
            compact[..k].iter().all(|&c| t.pu(c).unwrap().core == core),
            "{file}: compact starts with the siblings of one core"
        );
        let scatter = Policy::Scatter.order(&t, None);
        if t.packages > 1 {
            let first: BTreeSet<_> = scatter[..t.packages]
                .iter()
                .map(|&c| t.pu(c).unwrap().package)
                .collect();
            assert_eq!(
                first.len(),
                t.packages,
                "{file}: scatter spans packages first"
            );
        }
        // In scatter, no core is used twice before every core was used once.
        let cores: BTreeSet<_> = t.cpus.iter().map(|p| p.core).collect();
        let head: Vec<_> = scatter[..cores.len()]
            .iter()
            .map(|&c| t.pu(c).unwrap().core)
            .collect();
        assert_eq!(
            head.iter().collect::<BTreeSet<_>>().len(),
            cores.len(),
            "{file}"
        );
    }
}

#[test]
fn explicit_cpus_are_validated_against_the_topology() {
    let t = load("16em64t-4s2c2t-offlines.xml");
    let bad = |cpus: Vec<usize>| {
        let req = Request {
            cpus: Some(cpus),
            policy: None,
            ..Default::default()
        };
        placement::plan(&t, ThreadShape::Threads { default: 2 }, &req).unwrap_err()
    };
    let offline = t.offline_cpus[0];
    assert!(bad(vec![offline]).to_string().contains("offline"));
    assert!(bad(vec![99]).to_string().contains("does not exist"));
    let ok = placement::plan(
        &t,
        ThreadShape::Threads { default: 2 },
        &Request {
            cpus: Some(vec![t.usable_cpus()[0], t.usable_cpus()[1]]),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(ok.groups[0].cpus.len(), 2);
}

/// hwloc and sysfs must describe this host the same way.
#[cfg(target_os = "linux")]
#[test]
fn hwloc_and_sysfs_agree_on_the_host() {
    let h = topology::load(&TopologySource::Host).unwrap().model;
    let s = topology::linux_sysfs::host().unwrap();
    assert_eq!(
        (h.packages, h.numa_nodes, h.cores, h.pus, h.l3_domains),
        (s.packages, s.numa_nodes, s.cores, s.pus, s.l3_domains)
    );
    for cpu in h.usable_cpus() {
        for level in 1..=3 {
            assert_eq!(
                h.cache_size_for(level, cpu),
                s.cache_size_for(level, cpu),
                "L{level} of CPU {cpu}"
            );
        }
    }
}

/// Pair-by-pair experiments plan every unordered pair of the selected CPUs, each
/// labelled with its class, and refuse a single CPU.
#[test]
fn all_pairs_plans_every_pair() {
    let t = load("24em64t-2n6c2t-pci.xml");
    let plan = placement::plan(&t, ThreadShape::AllPairs, &Request::default()).unwrap();
    assert_eq!(plan.groups.len(), 24 * 23 / 2);
    for g in &plan.groups {
        assert_eq!(g.pair_class, pairs::classify(&t, g.cpus[0], g.cpus[1]));
    }
    let some = Request {
        cpus: Some(vec![0, 1, 12]),
        ..Default::default()
    };
    let plan = placement::plan(&t, ThreadShape::AllPairs, &some).unwrap();
    let classes: BTreeSet<_> = plan.groups.iter().filter_map(|g| g.pair_class).collect();
    assert_eq!(plan.groups.len(), 3);
    assert!(
        classes.contains(&PairClass::SmtSiblings) && classes.contains(&PairClass::CrossPackage),
        "{classes:?}"
    );
    let one = Request {
        cpus: Some(vec![3]),
        ..Default::default()
    };
    assert!(hwprof::error::is_usage(
        &placement::plan(&t, ThreadShape::AllPairs, &one).unwrap_err()
    ));
}

/// False-sharing's thread sweep per pair class, on every export: each group is
/// one hardware thread per core, inside its class's domain, balanced across the
/// two sides of a cross-L3 or cross-package class.
#[test]
fn class_sweeps_stay_in_their_domain_on_every_export() {
    for (file, ..) in expected() {
        let t = load(&file);
        let plan = placement::plan(&t, ThreadShape::PairSweep, &Request::default()).unwrap();
        for g in &plan.groups {
            let class = g.pair_class.unwrap();
            let pus: Vec<_> = g.cpus.iter().map(|&c| t.pu(c).unwrap()).collect();
            let cores: BTreeSet<usize> = pus.iter().map(|p| p.core).collect();
            assert_eq!(g.cpus.len() % 2, 0, "{file} {}", g.label);
            if class != PairClass::SmtSiblings {
                assert_eq!(
                    cores.len(),
                    g.cpus.len(),
                    "{file} {}: one thread per core",
                    g.label
                );
            }
            let count = |f: &dyn Fn(&hwprof::topology::Pu) -> Option<usize>| {
                let mut m = std::collections::BTreeMap::new();
                for p in &pus {
                    *m.entry(f(p)).or_insert(0usize) += 1;
                }
                m
            };
            match class {
                PairClass::SmtSiblings => assert_eq!(cores.len(), 1),
                PairClass::SameL3 => assert_eq!(count(&|p| p.l3).len(), 1, "{file} {}", g.label),
                PairClass::CrossL3 => {
                    let l3 = count(&|p| p.l3);
                    assert_eq!(l3.len(), 2, "{file} {}", g.label);
                    assert!(
                        l3.values().all(|&n| n == g.cpus.len() / 2),
                        "{file} {}: {l3:?}",
                        g.label
                    );
                    assert_eq!(count(&|p| p.package).len(), 1);
                }
                PairClass::CrossPackage => {
                    let pk = count(&|p| p.package);
                    assert_eq!(pk.len(), 2, "{file} {}", g.label);
                    assert!(
                        pk.values().all(|&n| n == g.cpus.len() / 2),
                        "{file} {}: {pk:?}",
                        g.label
                    );
                }
            }
        }
    }
    // 2 packages x 6 cores x 2 threads: pairs, then up to all 6 cores of one L3
    // and all 12 cores split over the two packages.
    let t = load("24em64t-2n6c2t-pci.xml");
    let plan = placement::plan(&t, ThreadShape::PairSweep, &Request::default()).unwrap();
    let labels: Vec<&str> = plan.groups.iter().map(|g| g.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "smt-siblings",
            "same-l3",
            "same-l3 x4",
            "same-l3 x6",
            "cross-package",
            "cross-package x4",
            "cross-package x8",
            "cross-package x12"
        ]
    );
    // --threads 2 keeps it to the pairs.
    let two = Request {
        threads: Some(2),
        ..Default::default()
    };
    let plan = placement::plan(&t, ThreadShape::PairSweep, &two).unwrap();
    assert!(plan.groups.iter().all(|g| g.cpus.len() == 2));
}

/// NUMA experiments: one group per node with CPUs (one thread per core of that
/// node), one more over all of them, and memory-only nodes named as such.
#[test]
fn per_node_groups_on_every_export() {
    for (file, _, _, _, numa, _) in expected() {
        let t = load(&file);
        let plan = placement::plan(&t, ThreadShape::PerNode, &Request::default()).unwrap();
        let per_node: Vec<_> = plan
            .groups
            .iter()
            .filter(|g| !g.label.starts_with("all nodes"))
            .collect();
        assert_eq!(
            per_node.len() + plan.unavailable.len(),
            numa.max(1),
            "{file}"
        );
        for (g, node) in per_node
            .iter()
            .zip(t.numa.iter().filter(|n| !n.cpus.is_empty()))
        {
            assert!(
                g.label.starts_with(&format!("node {} ", node.os_index)),
                "{file}: {}",
                g.label
            );
            let cores: BTreeSet<usize> = node.cpus.iter().map(|&c| t.pu(c).unwrap().core).collect();
            assert_eq!(
                g.cpus.len(),
                cores.len(),
                "{file} {}: one thread per core",
                g.label
            );
            assert!(
                g.cpus.iter().all(|c| node.cpus.contains(c)),
                "{file} {}",
                g.label
            );
        }
        let all = plan
            .groups
            .iter()
            .find(|g| g.label.starts_with("all nodes"));
        assert_eq!(all.is_some(), per_node.len() > 1, "{file}");
        if let Some(all) = all {
            let n: usize = per_node.iter().map(|g| g.cpus.len()).sum();
            assert_eq!(all.cpus.len(), n, "{file}");
        }
        for u in &plan.unavailable {
            assert!(u.reason.contains("memory-only"), "{file}: {u:?}");
        }
    }
}

/// A topology without Core objects: no core count is made up (lstopo says 0),
/// the profile says so, and placement still treats each PU as its own core.
#[test]
fn a_topology_without_cores_says_so() {
    let t = load("16em64t-4s2c2t-nocores.xml");
    assert_eq!((t.cores, t.cores_recorded, t.pus), (0, false, 16));
    let cores: BTreeSet<usize> = t.cpus.iter().map(|p| p.core).collect();
    assert_eq!(cores.len(), 16, "each PU its own core for placement");
    let with = load("16em64t-4s2c2t.xml");
    assert_eq!((with.cores, with.cores_recorded), (8, true));
}
