//! The numa experiment's tests.

use super::*;
use crate::experiment::NoTimer;

fn facts(nodes: &[usize]) -> MachineFacts {
    MachineFacts {
        l1d_bytes: Some(32 << 10),
        l2_bytes: Some(1 << 20),
        llc_bytes: Some(32 << 20),
        numa_nodes: nodes.to_vec(),
        source: "test".into(),
    }
}

#[test]
fn variants_bind_every_kernel_to_every_node() {
    let v = Numa.variants(&facts(&[0, 1])).unwrap();
    assert_eq!(v.len(), 4 * 2 + 3);
    let l1 = v.iter().find(|v| v.name == "latency-node1").unwrap();
    assert_eq!(l1.memory, VariantMemory::Node(1));
    assert_eq!(l1.workers, Some(1));
    assert_eq!(l1.working_set, Some(256 << 20));
    let c0 = v.iter().find(|v| v.name == "copy-node0").unwrap();
    assert_eq!(
        (c0.memory.clone(), c0.workers),
        (VariantMemory::Node(0), None)
    );
    let il = v.iter().find(|v| v.name == "scan-interleave").unwrap();
    assert_eq!(il.memory, VariantMemory::Interleave);
    // One node: the local column only, no placement variants.
    assert_eq!(Numa.variants(&facts(&[0])).unwrap().len(), 4);
    assert!(Numa.variants(&facts(&[])).is_err());
}

#[test]
fn latency_variant_runs_one_chase() {
    let mut v = Numa.variants(&facts(&[0])).unwrap().remove(0);
    assert_eq!(v.name, "latency-node0");
    v.working_set = Some(1 << 20);
    let t = Numa.prepare(&v, 1);
    assert_eq!(t.run_batch(0, &mut NoTimer), CHASE_STEPS_PER_BATCH as u64);
    Numa.release();
}

fn outcome(name: &str, ops: f64, ns: f64) -> crate::findings::VariantOutcome {
    let e = |x: f64| Estimate {
        median: x,
        lo: x * 0.97,
        hi: x * 1.03,
    };
    crate::findings::VariantOutcome {
        name: name.into(),
        ops_per_sec: e(ops),
        ns_per_op: e(ns),
    }
}

#[test]
fn matrices_and_penalties_from_two_nodes_and_the_single_node_warning() {
    let m = facts(&[0, 1]);
    let group = |node: usize| GroupOutcome {
        label: format!("node {node} x8"),
        cpus: (0..8).collect(),
        pair_class: None,
        cpu_node: Some(node),
        variants: vec![
            outcome("latency-node0", 1e7, if node == 0 { 90.0 } else { 150.0 }),
            outcome("latency-node1", 1e7, if node == 1 { 90.0 } else { 150.0 }),
            outcome("read-node0", if node == 0 { 40e9 } else { 20e9 }, 0.0),
            outcome("read-node1", if node == 1 { 40e9 } else { 20e9 }, 0.0),
        ],
        ratios: vec![],
    };
    let all = GroupOutcome {
        label: "all nodes x16".into(),
        cpus: (0..16).collect(),
        cpu_node: None,
        variants: vec![
            outcome("scan-parallel-init", 80e9, 0.0),
            outcome("scan-serial-init", 40e9, 0.0),
            outcome("scan-interleave", 60e9, 0.0),
        ],
        ..group(0)
    };
    let f = Numa.interpret(&m, &[group(0), group(1), all]);
    let text = f.verdict.join("\n");
    assert!(
        text.contains("local 90 ns, node 1 150 ns: remote costs 1.67x"),
        "{text}"
    );
    assert!(
        text.contains(
            "read bandwidth from CPU node 1: local 40.0 GB/s, node 0 20.0 GB/s: remote keeps 50%"
        ),
        "{text}"
    );
    assert!(
        text.contains("serial init 40.0 GB/s (50%)")
            && text.contains("initialise data on the threads"),
        "{text}"
    );
    let lat = &f.matrices[0];
    assert_eq!((lat.rows.len(), lat.cols.len()), (2, 2));
    assert_eq!(lat.cells[0][1].unwrap().median, 150.0);
    assert_eq!(f.matrices[1].cells[1][1].unwrap().median, 40.0, "GB/s");
    // Write/copy were not measured: cells are None, not zero.
    assert!(f.matrices[2].cells.iter().flatten().all(|c| c.is_none()));
    assert!(f.warnings.is_empty());

    let one = Numa.interpret(
        &facts(&[0]),
        &[GroupOutcome {
            cpu_node: Some(0),
            ..group(0)
        }],
    );
    assert!(
        one.warnings[0].contains("one NUMA node"),
        "{:?}",
        one.warnings
    );
    assert!(
        one.verdict
            .iter()
            .any(|v| v.contains("local read bandwidth (CPU node 0, 8 thread(s)): 40.0 GB/s")),
        "{:?}",
        one.verdict
    );
}
