//! Property-based fuzzing of every parser that reads a file or a user's string:
//! topology sources (synthetic descriptions, hwloc XML through the wrapper),
//! CPU/node/thread lists, memory policies, pair classes, probes, `--events`,
//! numbers and durations, c2c recordings. Each must return Ok or Err, never
//! panic, and bound what it allocates. docs/fuzzing.md says how to run longer
//! campaigns (PROPTEST_CASES) and where the seed corpus lives.

use proptest::prelude::*;

use hwprof::cli::{parse_seconds, whole_number};
use hwprof::events::catalog::Encoding;
use hwprof::events::spec;
use hwprof::placement::bind::MemoryPolicy;
use hwprof::placement::{cpulist, PairClass};
use hwprof::probes::ProbeKind;
use hwprof::topology::TopologySource;

/// Cases per property: `default` in the test suite, PROPTEST_CASES for a campaign.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Text that looks like the inputs: digits, separators, letters, the odd
/// control byte and non-ASCII character.
fn inputish() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(vec![
                "0", "1", "7", "64", "4096", "99999999999999999999", "-", ",", ":", "/", "=", "x",
                " ", "(", ")", "0x", "node", "pack", "core", "pu", "l3", "numa", "all", "interleave",
                "first-touch", "cpu", "event", "umask", "ms", "s", "h", "e30", ".", "\0", "é",
            ])
            .prop_map(str::to_string),
            1 => any::<String>(),
        ],
        0..24,
    )
    .prop_map(|v| v.concat())
}

/// Synthetic descriptions: mostly well-formed levels with small and huge counts.
fn synthetic() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (
            prop::sample::select(vec![
                "pack", "numa", "l3", "l2", "l1", "core", "pu", "group", "bogus",
            ]),
            prop_oneof![1u64..4, Just(0u64), Just(100_000u64), any::<u64>()],
            prop::option::of(Just("(memory=1GB)")),
        ),
        0..6,
    )
    .prop_map(|levels| {
        levels
            .into_iter()
            .map(|(t, n, a)| format!("{t}:{n}{}", a.unwrap_or("")))
            .collect::<Vec<_>>()
            .join(" ")
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    #[test]
    fn lists_never_panic_and_stay_bounded(text in inputish()) {
        if let Ok(v) = cpulist::parse_list(&text, "CPU") {
            prop_assert!(v.len() <= cpulist::MAX_LIST_NUMBER + 1);
            prop_assert!(v.windows(2).all(|w| w[0] < w[1]));
            // What we format, we parse back to the same list.
            prop_assert_eq!(cpulist::parse(&cpulist::format(&v)).unwrap(), v);
        }
        let _ = MemoryPolicy::parse(&text, &[0, 1]);
        let _ = PairClass::parse_list(&text);
        let _ = ProbeKind::parse_list(&text);
        let _ = whole_number(&text, "a count", 0, u32::MAX as u64);
        if let Ok(s) = parse_seconds(&text) {
            prop_assert!(s > 0.0 && s <= hwprof::cli::MAX_DURATION_S);
            let _ = std::time::Duration::from_secs_f64(s);
        }
    }

    #[test]
    fn event_specs_never_panic(text in inputish()) {
        let dir = tempfile::tempdir().unwrap();
        for item in spec::split_list(&text) {
            for enc in [Encoding::Intel, Encoding::Amd, Encoding::Arm] {
                let _ = spec::parse(&item, None, enc, Some(dir.path()));
            }
        }
    }

    #[test]
    fn topology_sources_never_panic(text in inputish(), desc in synthetic()) {
        let _ = TopologySource::parse(&text);
        let _ = TopologySource::parse(&format!("synthetic:{text}"));
        let _ = TopologySource::parse(&format!("xml:{text}"));
        // Whatever passes the size check is small enough to build in well under
        // a second; hwloc itself then accepts or rejects it.
        if let Ok(src) = TopologySource::parse(&format!("synthetic:{desc}")) {
            if let Ok(t) = hwprof::topology::load(&src) {
                prop_assert!(t.model.pus as u128 <= hwprof::topology::MAX_SYNTHETIC_PUS);
            }
        }
    }

    #[test]
    fn recordings_never_panic(lines in prop::collection::vec(
        prop_oneof![
            Just(r#"{"maps": "00400000-00401000 r-xp 00000000 08:01 1 /bin/x"}"#.to_string()),
            Just(r#"{"pid":1,"tid":2,"ip":4096,"addr":8192,"op":"load","hitm":true}"#.to_string()),
            Just(r#"{"pid":1,"tid":3,"ip":4096,"addr":8200,"op":"store","size":255}"#.to_string()),
            Just(r#"{"pid":1,"tid":3,"ip":18446744073709551615,"addr":18446744073709551615,"op":"store"}"#.to_string()),
            inputish(),
        ],
        0..12,
    )) {
        let text = lines.join("\n");
        if let Ok((header, samples)) =
            hwprof::c2c::parse_recording(std::io::Cursor::new(text.as_bytes()), "fuzz")
        {
            let sym = header.map(|h| {
                hwprof::symbols::Symbolizer::from_maps(hwprof::symbols::parse_maps(&h.maps), "/".into())
            });
            let _ = hwprof::c2c::analyse(&samples, 0, 64, sym, "fuzz".into(), "fuzz".into(), 10);
        }
    }
}

#[cfg(all(feature = "hwloc", target_os = "linux"))]
proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(64)))]

    /// hwloc's XML reader through hwprof's wrapper: mutated lab exports and
    /// random bytes are loaded or refused, never crash.
    #[test]
    fn xml_exports_never_crash(
        cut in 0usize..4000,
        flips in prop::collection::vec((0usize..20_000, any::<u8>()), 0..8),
        junk in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let base = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/data/topologies/2intel64-1n2c-numaroot.v1tov2.xml"),
        )
        .unwrap();
        let mut bytes = base.clone();
        for (at, b) in flips {
            if !bytes.is_empty() {
                let i = at % bytes.len();
                bytes[i] = b;
            }
        }
        bytes.truncate(bytes.len().saturating_sub(cut));
        bytes.extend(junk);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fuzz.xml");
        std::fs::write(&p, &bytes).unwrap();
        let _ = hwprof::topology::load(&TopologySource::Xml(p));
    }
}
