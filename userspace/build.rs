//! Embeds the PMU event maps (hwprofiles/events/*.toml) so the binary needs no data
//! directory at run time. Adding a microarchitecture = adding one TOML file.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hwprofiles/events");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut out = String::from(
        "/// (file name, contents) of every event map.\npub const MAPS: &[(&str, &str)] = &[\n",
    );
    let mut metrics = None;
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let path = f.canonicalize().unwrap();
        if name == "metrics.toml" {
            metrics = Some(path);
            continue;
        }
        writeln!(
            out,
            "    ({name:?}, include_str!({:?})),",
            path.display().to_string()
        )
        .unwrap();
    }
    out.push_str("];\n");
    let metrics = metrics.expect("hwprofiles/events/metrics.toml is missing");
    writeln!(
        out,
        "/// The abstract metric catalogue.\npub const METRICS: &str = include_str!({:?});",
        metrics.display().to_string()
    )
    .unwrap();
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("event_maps.rs");
    std::fs::write(dest, out).unwrap();
}
