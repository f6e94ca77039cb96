//! Every event map is validated: well-formed encodings, each abstract metric
//! resolves on every microarchitecture or is explicitly marked unavailable there,
//! and spot-checked encodings equal the vendors' published values.

use std::collections::BTreeMap;

use hwprof::capabilities::Capabilities;
use hwprof::cpu::CpuIdentity;
use hwprof::events::catalog::{Catalog, Encoded};
use hwprof::events::{self, evaluate};

const REQUIRED_MAPS: [&str; 9] = [
    "skylake-sp",
    "icelake-sp",
    "sapphire-rapids",
    "alder-lake",
    "zen2",
    "zen3",
    "zen4",
    "neoverse-n1",
    "neoverse-v1",
];

#[test]
fn all_required_maps_are_built_in_and_valid() {
    let c = Catalog::builtin();
    for name in REQUIRED_MAPS {
        let m = c.find(name).unwrap_or_else(|| panic!("no map {name}"));
        m.validate().unwrap();
        assert!(!m.source.is_empty(), "{name}: source must be noted");
    }
    assert_eq!(c.find("Ice Lake-SP").unwrap().name, "icelake-sp");
    assert_eq!(c.find("Zen 3").unwrap().name, "zen3");
    assert_eq!(c.find("Cascade Lake-SP").unwrap().name, "skylake-sp");
}

#[test]
fn every_metric_resolves_or_is_explicitly_unavailable() {
    let c = Catalog::builtin();
    for m in &c.maps {
        for metric in c.metrics.keys() {
            match m.resolve(&c, metric) {
                Ok(r) => {
                    assert!(!m.unavailable_metrics.contains_key(metric));
                    assert!(!r.events.is_empty(), "{}: {metric} counts nothing", m.name);
                }
                Err(e) => assert!(
                    m.unavailable_metrics.contains_key(metric),
                    "{}: {metric} fails without being marked unavailable: {e}",
                    m.name
                ),
            }
        }
    }
}

#[test]
fn maps_cover_the_events_the_experiments_need() {
    let c = Catalog::builtin();
    for m in &c.maps {
        for e in [
            "cycles",
            "instructions",
            "loads_retired",
            "stores_retired",
            "l1d_miss",
            "l2_miss",
            "llc_miss",
            "dtlb_miss",
        ] {
            assert!(m.events.contains_key(e), "{}: missing {e}", m.name);
        }
    }
    for name in ["skylake-sp", "icelake-sp", "sapphire-rapids"] {
        let m = c.find(name).unwrap();
        for e in [
            "hitm_loads",
            "remote_hitm_loads",
            "local_dram_loads",
            "remote_dram_loads",
            "hw_prefetch_fills",
            "useless_hw_prefetch",
            "sw_prefetch",
            "late_sw_prefetch",
        ] {
            assert!(m.events.contains_key(e), "{name}: missing {e}");
        }
    }
    for name in ["zen2", "zen3", "zen4"] {
        let m = c.find(name).unwrap();
        for e in [
            "fills_other_cache",
            "fills_remote_cache",
            "local_dram_loads",
            "remote_dram_loads",
            "sw_prefetch",
        ] {
            assert!(m.events.contains_key(e), "{name}: missing {e}");
        }
    }
    for name in ["zen3", "zen4"] {
        assert!(c
            .find(name)
            .unwrap()
            .events
            .contains_key("hw_prefetch_fills"));
    }
}

fn raw(c: &Catalog, map: &str, event: &str) -> u64 {
    match c.find(map).unwrap().encode(event).unwrap() {
        Encoded::Raw { config, .. } => config,
        other => panic!("{map}/{event} is {other:?}"),
    }
}

/// Spot checks against the vendors' lists (Intel perfmon JSON, AMD PPR, Arm TRM).
#[test]
fn encodings_match_the_published_values() {
    let c = Catalog::builtin();
    assert_eq!(raw(&c, "skylake-sp", "hitm_loads"), 0x04d2); // MEM_LOAD_L3_HIT_RETIRED.XSNP_HITM
    assert_eq!(raw(&c, "skylake-sp", "remote_hitm_loads"), 0x04d3);
    assert_eq!(raw(&c, "skylake-sp", "loads_retired"), 0x81d0);
    assert_eq!(raw(&c, "icelake-sp", "hitm_loads"), 0x04d2); // renamed XSNP_FWD
    assert_eq!(raw(&c, "icelake-sp", "useless_hw_prefetch"), 0x04f2);
    assert_eq!(raw(&c, "sapphire-rapids", "dtlb_miss"), 0x0e12); // moved from 0x08
    assert_eq!(raw(&c, "sapphire-rapids", "sw_prefetch"), 0x0f40); // moved from 0x32
    assert_eq!(raw(&c, "sapphire-rapids", "useless_hw_prefetch"), 0x0426);
    assert_eq!(raw(&c, "zen3", "fills_other_cache"), 0x0443); // ls_dmnd_fills_from_sys.near_cache
    assert_eq!(raw(&c, "zen3", "remote_dram_loads"), 0x4043);
    assert_eq!(raw(&c, "zen4", "l1d_miss"), 0xdf43);
    assert_eq!(raw(&c, "neoverse-n1", "l1d_miss"), 0x03); // L1D_CACHE_REFILL
    assert_eq!(raw(&c, "neoverse-v1", "llc_miss"), 0x37); // LL_CACHE_MISS_RD
    match c.find("alder-lake").unwrap().encode("hitm_loads").unwrap() {
        Encoded::Raw { pmu, .. } => assert_eq!(pmu, "cpu_core", "hybrid P-core PMU"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn malformed_maps_are_rejected() {
    let metrics = "[metrics.ipc]\nformula = \"instructions / cycles\"\n";
    let head = "name = \"t\"\ndisplay = \"T\"\nvendor = \"GenuineIntel\"\nmicroarchitectures = [\"T\"]\npmu = \"cpu\"\nencoding = \"intel\"\ngeneral_counters = 4\ngroup_limit = 4\nfixed = []\nsource = \"test\"\n";
    let bad = [
        "[events]\ncycles = { generic = \"cyclez\" }\n",
        "[events]\nx = { name = \"X\", event = 0x1d2 }\n",
        "[events]\nx = { name = \"X\", event = 0xd2, umask = 0x100 }\n",
        "[events]\nx = { event = 0xd2 }\n",
        "[events]\nx = { formula = \"y\" }\ny = { formula = \"x\" }\n",
        "[events]\nx = { formula = \"nope\" }\n",
        "[events]\nx = { name = \"X\", event = 1, generic = \"cycles\" }\n",
        "[events]\n[unavailable_metrics]\nno_such_metric = \"why\"\n",
        "[events]\nx = { name = \"X\", event = 1, colour = \"red\" }\n",
    ];
    for b in bad {
        let text = format!("{head}{b}");
        assert!(
            Catalog::parse(&[("t.toml", &text)], metrics).is_err(),
            "accepted:\n{b}"
        );
    }
    let good = format!("{head}[events]\ncycles = {{ generic = \"cycles\" }}\ninstructions = {{ generic = \"instructions\" }}\n");
    let c = Catalog::parse(&[("t.toml", &good)], metrics).unwrap();
    assert!(c.find("t").unwrap().resolve(&c, "ipc").is_ok());
}

fn cpu(uarch: &str, vendor: &str) -> CpuIdentity {
    CpuIdentity {
        vendor: vendor.into(),
        model_name: "test".into(),
        microarchitecture: Some(uarch.into()),
        family: None,
        model: None,
        stepping: None,
        simd: vec![],
        cache_line_bytes: Some(64),
        source: "test".into(),
        notes: vec![],
    }
}

#[test]
fn selection_falls_back_with_reasons() {
    let c = Catalog::builtin();
    let mut caps = Capabilities::default();
    caps.pmu_hardware = false;
    let s = events::select(
        &c,
        &cpu("Zen 3", "AuthenticAMD"),
        &caps,
        &["hitm_loads_per_kilo_load"],
        vec![],
    );
    let err = s.metrics[0].resolved.as_ref().unwrap_err();
    assert!(err.contains("hardware counters unavailable"), "{err}");
    assert!(s.events.is_empty());

    caps.pmu_hardware = true;
    let s = events::select(
        &c,
        &cpu("Zen 3", "AuthenticAMD"),
        &caps,
        &["hitm_loads_per_kilo_load", "prefetch_accuracy"],
        vec![],
    );
    let r = s.metrics[0].resolved.as_ref().unwrap();
    assert!(r.events.contains_key("fills_other_cache"));
    assert!(s.metrics[1]
        .resolved
        .as_ref()
        .unwrap_err()
        .contains("unused"));
    assert_eq!(s.map.as_deref(), Some("zen3"));
    assert_eq!(s.group_limit, 6);

    let s = events::select(
        &c,
        &cpu("Rocket Lake", "GenuineIntel"),
        &caps,
        &["ipc"],
        vec![],
    );
    assert!(s.metrics[0]
        .resolved
        .as_ref()
        .unwrap_err()
        .contains("no event map for Rocket Lake"));
}

#[test]
fn derived_events_evaluate_before_the_formula() {
    let c = Catalog::builtin();
    let r = c
        .find("icelake-sp")
        .unwrap()
        .resolve(&c, "prefetch_coverage")
        .unwrap();
    // Lines in 1000, demand misses 400 → prefetch fills 600; useless 100; L2 demand
    // load misses 250: coverage = (600-100) / (600-100+250).
    let counts: BTreeMap<String, f64> = [
        ("l2_lines_in", 1000.0),
        ("l2_demand_miss", 400.0),
        ("useless_hw_prefetch", 100.0),
        ("l2_miss", 250.0),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let v = evaluate(&r, &counts).unwrap();
    assert!((v - 500.0 / 750.0).abs() < 1e-12, "{v}");
    let mut missing = counts.clone();
    missing.remove("l2_miss");
    assert!(evaluate(&r, &missing).is_err());
}
