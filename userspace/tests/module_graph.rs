//! The module dependency rules, checked on the source: which top-level module
//! of the `hwprof` library names which (`crate::X`, `super::…` resolved, `use X`
//! from lib.rs siblings). The layers import downward only:
//! report/ nothing from experiment/, topology/ nothing from placement/,
//! probes/ nothing from report/, and no import cycle at all.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// top-level module → modules it names.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let modules: BTreeSet<String> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';').to_string())
        .collect();
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let owner = first.trim_end_matches(".rs").to_string();
        if !modules.contains(&owner) {
            continue; // lib.rs, main.rs, bin/
        }
        let text = std::fs::read_to_string(&f).unwrap();
        // Tests may reach anywhere.
        let code = text.split("#[cfg(test)]").next().unwrap();
        // `use crate::{a, b}` would hide edges from the scan below.
        assert!(
            !code.contains("crate::{"),
            "{}: write one `crate::module` path per import",
            f.display()
        );
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + 7..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if modules.contains(&name) && name != owner {
                g.entry(owner.clone()).or_default().insert(name);
            }
        }
    }
    g
}

fn reaches(g: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from.to_string()];
    while let Some(n) = stack.pop() {
        for m in g.get(&n).into_iter().flatten() {
            if m == to {
                return true;
            }
            if seen.insert(m.clone()) {
                stack.push(m.clone());
            }
        }
    }
    false
}

#[test]
fn layers_import_downward_only() {
    let g = graph();
    let edges = |m: &str| g.get(m).cloned().unwrap_or_default();
    assert!(
        !edges("report").contains("experiment"),
        "report -> experiment: {:?}",
        edges("report")
    );
    assert!(
        !edges("topology").contains("placement"),
        "topology -> placement: {:?}",
        edges("topology")
    );
    assert!(
        !edges("probes").contains("report"),
        "probes -> report: {:?}",
        edges("probes")
    );
    // The foundation never reaches the layers built on it.
    for low in [
        "output", "input", "error", "stats", "topology", "cpu", "virt", "metrics",
    ] {
        for high in [
            "experiment",
            "load",
            "suite",
            "attach",
            "serve",
            "gate",
            "history",
        ] {
            assert!(!reaches(&g, low, high), "{low} reaches {high}: {g:?}");
        }
    }
    // The gate runs other processes and reads their reports; it never reaches
    // into the load engine or the server it judges (so it judges Engram alike).
    for high in ["load", "serve", "experiment"] {
        assert!(!reaches(&g, "gate", high), "gate reaches {high}: {g:?}");
    }
    // The documents and their exporters sit below every command that fills
    // them in (experiments, suite, attach, c2c, load, serve, gate, history).
    for command in [
        "experiment",
        "suite",
        "attach",
        "c2c",
        "load",
        "serve",
        "gate",
        "history",
        "cli",
    ] {
        assert!(
            !reaches(&g, "report", command),
            "report reaches the command {command}: {g:?}"
        );
    }
    // No import cycle anywhere between top-level modules.
    let cyclic: Vec<&String> = g.keys().filter(|m| reaches(&g, m, m)).collect();
    assert!(
        cyclic.is_empty(),
        "modules on an import cycle: {cyclic:?}\n{g:?}"
    );
}
