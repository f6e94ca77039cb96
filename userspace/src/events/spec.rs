//! Counter events as hwprof opens them, and `--events` parsing: perf-style generic
//! names, names from the host's event map, raw `rNNNN`, and `pmu/term=value,…/`
//! encoded through the PMU's sysfs format files (or the documented x86/Arm layouts
//! where sysfs has none, e.g. planning on another machine).

use std::path::Path;

use super::catalog::{Encoded, Encoding, EventMap};
/// The counter types live with the measurement that opens them.
pub use crate::measure::event::{CounterEvent, EventKind};
use crate::measure::Source;

pub const HARDWARE: &[&str] = &[
    "cycles",
    "instructions",
    "cache-references",
    "cache-misses",
    "branch-instructions",
    "branches",
    "branch-misses",
    "ref-cycles",
];
pub const CACHE: &[&str] = &[
    "L1-dcache-loads",
    "L1-dcache-load-misses",
    "LLC-loads",
    "LLC-load-misses",
    "dTLB-load-misses",
];
pub const SOFTWARE: &[&str] = &[
    "task-clock",
    "context-switches",
    "cs",
    "cpu-migrations",
    "migrations",
    "page-faults",
    "faults",
    "minor-faults",
    "major-faults",
];

impl CounterEvent {
    pub fn from_encoded(label: &str, e: &Encoded) -> CounterEvent {
        CounterEvent {
            label: label.to_string(),
            source: Source::Pmu,
            kind: match e {
                Encoded::Generic(g) => EventKind::Hardware(g.clone()),
                Encoded::Raw { pmu, config } => EventKind::Pmu {
                    pmu: pmu.clone(),
                    config: *config,
                    config1: 0,
                },
            },
        }
    }
}

/// Split an `--events` list on commas outside `pmu/…/` terms.
pub fn split_list(list: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut slashes = 0;
    for c in list.chars() {
        match c {
            '/' => {
                slashes += 1;
                cur.push(c);
            }
            ',' if slashes % 2 == 0 => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter().map(|s| s.trim().to_string()).collect()
}

/// Parse one `--events` item. `map` is the host's event map, if any; `encoding`
/// the host's raw layout; `sysfs` the event_source root (None: built-in layouts).
pub fn parse(
    text: &str,
    map: Option<&EventMap>,
    encoding: Encoding,
    sysfs: Option<&Path>,
) -> Result<CounterEvent, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty event name in --events".into());
    }
    let ev = |source, kind| CounterEvent {
        label: t.to_string(),
        source,
        kind,
    };
    if HARDWARE.contains(&t) {
        let g = if t == "branches" {
            "branch-instructions"
        } else {
            t
        };
        return Ok(ev(Source::Pmu, EventKind::Hardware(g.into())));
    }
    if CACHE.contains(&t) {
        return Ok(ev(Source::Pmu, EventKind::Cache(t.into())));
    }
    if SOFTWARE.contains(&t) {
        let s = match t {
            "cs" => "context-switches",
            "migrations" => "cpu-migrations",
            "faults" => "page-faults",
            x => x,
        };
        return Ok(ev(Source::Software, EventKind::Software(s.into())));
    }
    if let Some(hex) = t.strip_prefix('r') {
        if !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            let config = u64::from_str_radix(hex, 16)
                .map_err(|_| format!("raw event {t:?} does not fit 64 bits"))?;
            return Ok(ev(
                Source::Pmu,
                EventKind::Pmu {
                    pmu: "cpu".into(),
                    config,
                    config1: 0,
                },
            ));
        }
    }
    if let Some((pmu, rest)) = t.split_once('/') {
        let terms = rest
            .strip_suffix('/')
            .ok_or_else(|| format!("event {t:?}: expected pmu/term=value,.../"))?;
        let (config, config1) = encode_terms(pmu, terms, encoding, sysfs)?;
        return Ok(ev(
            Source::Pmu,
            EventKind::Pmu {
                pmu: pmu.into(),
                config,
                config1,
            },
        ));
    }
    if let Some(m) = map {
        let key = m
            .events
            .iter()
            .find(|(k, d)| {
                k.eq_ignore_ascii_case(t)
                    || d.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(t))
            })
            .map(|(k, _)| k.clone());
        if let Some(k) = key {
            if m.events[&k].formula.is_some() {
                return Err(format!(
                    "{t:?} is derived from other events on {}; ask for a metric instead",
                    m.display
                ));
            }
            let e = m.encode(&k)?;
            let mut c = CounterEvent::from_encoded(&k, &e);
            c.label = t.to_string();
            return Ok(c);
        }
    }
    Err(format!(
        "unknown event {t:?}: use a perf name (cycles, cache-misses, task-clock, …), \
         rNNNN, pmu/event=0x..,umask=0x../{}",
        map.map_or(String::new(), |m| format!(
            ", or an event of the {} map (hwprof events list)",
            m.name
        ))
    ))
}

/// A field's placement: which config word and which bit ranges, LSB first.
fn parse_format(spec: &str) -> Result<(usize, Vec<(u32, u32)>), String> {
    let (field, bits) = spec
        .trim()
        .split_once(':')
        .ok_or_else(|| format!("bad format {spec:?}"))?;
    let word = match field {
        "config" => 0,
        "config1" => 1,
        "config2" => 2,
        _ => return Err(format!("bad format field {field:?}")),
    };
    let mut ranges = Vec::new();
    for r in bits.split(',') {
        let (lo, hi) = match r.split_once('-') {
            Some((a, b)) => (a.parse::<u32>(), b.parse::<u32>()),
            None => (r.parse::<u32>(), r.parse::<u32>()),
        };
        let (lo, hi) = (
            lo.map_err(|_| format!("bad format {spec:?}"))?,
            hi.map_err(|_| format!("bad format {spec:?}"))?,
        );
        if lo > hi || hi > 63 {
            return Err(format!("bad format {spec:?}"));
        }
        ranges.push((lo, hi));
    }
    Ok((word, ranges))
}

/// Scatter `value` into the bit ranges; error if it does not fit.
fn place(value: u64, ranges: &[(u32, u32)], term: &str) -> Result<u64, String> {
    let mut out = 0u64;
    let mut v = value;
    for &(lo, hi) in ranges {
        let width = hi - lo + 1;
        let mask = if width == 64 {
            u64::MAX
        } else {
            (1u64 << width) - 1
        };
        out |= (v & mask) << lo;
        v = if width == 64 { 0 } else { v >> width };
    }
    if v != 0 {
        return Err(format!(
            "{term}={value:#x} does not fit its {} bit(s)",
            ranges.iter().map(|(l, h)| h - l + 1).sum::<u32>()
        ));
    }
    Ok(out)
}

/// Core PMU names accepted even where sysfs does not list them (a VM without a
/// PMU, a profile of another machine): their layouts are built in.
const KNOWN_CORE_PMUS: [&str; 5] = ["cpu", "cpu_core", "cpu_atom", "armv8_pmuv3", "ibs_op"];

fn builtin_format(encoding: Encoding, term: &str) -> Option<&'static str> {
    match (encoding, term) {
        (Encoding::Arm, "event") => Some("config:0-15"),
        (Encoding::Arm, _) => None,
        (Encoding::Intel, "event") => Some("config:0-7"),
        (Encoding::Amd, "event") => Some("config:0-7,32-35"),
        (_, "umask") => Some("config:8-15"),
        (_, "edge") => Some("config:18"),
        (Encoding::Intel, "any") => Some("config:21"),
        (_, "inv") => Some("config:23"),
        (_, "cmask") => Some("config:24-31"),
        (Encoding::Intel, "ldlat") => Some("config1:0-15"),
        _ => None,
    }
}

pub fn encode_terms(
    pmu: &str,
    terms: &str,
    encoding: Encoding,
    sysfs: Option<&Path>,
) -> Result<(u64, u64), String> {
    if terms.split(',').all(|t| t.trim().is_empty()) {
        return Err(format!(
            "{pmu}/{terms}/: no terms; expected e.g. {pmu}/event=0x3c,umask=0x00/"
        ));
    }
    let in_sysfs = sysfs.is_some_and(|root| root.join(pmu).is_dir());
    let known = KNOWN_CORE_PMUS
        .iter()
        .any(|k| pmu == *k || (*k == "armv8_pmuv3" && pmu.starts_with(k)));
    if !in_sysfs && !known {
        return Err(format!(
            "{pmu}/{terms}/: no PMU named {pmu:?} on this machine (see /sys/bus/event_source/devices; core PMUs: {})",
            KNOWN_CORE_PMUS.join(", ")
        ));
    }
    let mut words = [0u64; 3];
    for term in terms.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, value) = match term.split_once('=') {
            Some((n, v)) => {
                let v = v.trim();
                let parsed = match v.strip_prefix("0x") {
                    Some(h) => u64::from_str_radix(h, 16),
                    None => v.parse::<u64>(),
                };
                (
                    n.trim(),
                    parsed.map_err(|_| format!("{pmu}/{terms}/: {v:?} is not a number"))?,
                )
            }
            None => (term, 1),
        };
        if let Some(w) = ["config", "config1", "config2"]
            .iter()
            .position(|c| *c == name)
        {
            words[w] = value;
            continue;
        }
        let from_sysfs = sysfs
            .map(|root| root.join(pmu).join("format").join(name))
            .and_then(|p| std::fs::read_to_string(p).ok());
        let fmt = match from_sysfs {
            Some(f) => f,
            None => builtin_format(encoding, name)
                .ok_or_else(|| format!("{pmu}/{terms}/: unknown term {name:?} for this PMU"))?
                .to_string(),
        };
        let (w, ranges) = parse_format(&fmt)?;
        words[w] |= place(value, &ranges, name)?;
    }
    Ok((words[0], words[1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perf_names_and_raw() {
        let p = |s| parse(s, None, Encoding::Intel, None).unwrap();
        assert_eq!(p("cycles").kind, EventKind::Hardware("cycles".into()));
        assert_eq!(p("cs").kind, EventKind::Software("context-switches".into()));
        assert_eq!(p("cs").source, Source::Software);
        assert_eq!(
            p("LLC-load-misses").kind,
            EventKind::Cache("LLC-load-misses".into())
        );
        assert_eq!(
            p("r4d2").kind,
            EventKind::Pmu {
                pmu: "cpu".into(),
                config: 0x4d2,
                config1: 0
            }
        );
        assert!(parse("rxyz", None, Encoding::Intel, None).is_err());
        assert!(parse("bogus-event", None, Encoding::Intel, None).is_err());
    }

    #[test]
    fn pmu_terms_use_the_documented_layouts() {
        // MEM_LOAD_L3_HIT_RETIRED.XSNP_HITM on Intel: event 0xd2 umask 0x04 → 0x4d2.
        let e = parse("cpu/event=0xd2,umask=0x04/", None, Encoding::Intel, None).unwrap();
        assert_eq!(
            e.kind,
            EventKind::Pmu {
                pmu: "cpu".into(),
                config: 0x4d2,
                config1: 0
            }
        );
        // mem-loads with a latency threshold: ldlat goes to config1.
        let e = parse(
            "cpu/event=0xcd,umask=0x1,ldlat=30/",
            None,
            Encoding::Intel,
            None,
        )
        .unwrap();
        assert_eq!(
            e.kind,
            EventKind::Pmu {
                pmu: "cpu".into(),
                config: 0x1cd,
                config1: 30
            }
        );
        // AMD 12-bit event codes: event[11:8] lands in config[35:32].
        let e = parse("cpu/event=0x1c0,umask=0x1/", None, Encoding::Amd, None).unwrap();
        assert_eq!(
            e.kind,
            EventKind::Pmu {
                pmu: "cpu".into(),
                config: 0x1_0000_01c0,
                config1: 0
            }
        );
        let e = parse(
            "cpu/event=0x2e,umask=0x41,cmask=1,inv/",
            None,
            Encoding::Intel,
            None,
        )
        .unwrap();
        assert_eq!(
            e.kind,
            EventKind::Pmu {
                pmu: "cpu".into(),
                config: 0x0180_412e,
                config1: 0
            }
        );
        assert!(
            parse("cpu/event=0x1d2/", None, Encoding::Intel, None).is_err(),
            "Intel event codes are 8 bits"
        );
        assert!(parse("cpu/frob=1/", None, Encoding::Intel, None).is_err());
        // No terms, and a PMU neither built in nor in sysfs.
        let dir = tempfile::tempdir().unwrap();
        for bad in ["cpu//", "cpu/ , /", "nopmu/event=0x1/"] {
            let e = parse(bad, None, Encoding::Intel, Some(dir.path())).unwrap_err();
            assert!(e.contains(bad.split('/').next().unwrap()), "{bad}: {e}");
        }
        assert!(parse(
            "armv8_pmuv3_0/event=0x11/",
            None,
            Encoding::Arm,
            Some(dir.path())
        )
        .is_ok());
        assert!(parse("cpu/event=0xd2", None, Encoding::Intel, None).is_err());
    }

    #[test]
    fn sysfs_format_files_win_over_builtins() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("mypmu/format");
        std::fs::create_dir_all(&f).unwrap();
        std::fs::write(f.join("event"), "config:8-15\n").unwrap();
        let e = parse("mypmu/event=0x12/", None, Encoding::Intel, Some(dir.path())).unwrap();
        assert_eq!(
            e.kind,
            EventKind::Pmu {
                pmu: "mypmu".into(),
                config: 0x1200,
                config1: 0
            }
        );
    }

    #[test]
    fn lists_split_outside_pmu_terms() {
        assert_eq!(
            split_list("cycles,cpu/event=0xd2,umask=0x4/,r1d1"),
            vec!["cycles", "cpu/event=0xd2,umask=0x4/", "r1d1"]
        );
        assert_eq!(split_list("a"), vec!["a"]);
    }

    #[test]
    fn format_parsing() {
        assert_eq!(
            parse_format("config:0-7,32-35").unwrap(),
            (0, vec![(0, 7), (32, 35)])
        );
        assert_eq!(parse_format("config1:0-15").unwrap(), (1, vec![(0, 15)]));
        assert!(parse_format("config:7-0").is_err());
        assert_eq!(
            place(0x1c0, &[(0, 7), (32, 35)], "event").unwrap(),
            0x1_0000_00c0
        );
        assert!(place(0x1000, &[(0, 7), (32, 35)], "event").is_err());
    }
}
