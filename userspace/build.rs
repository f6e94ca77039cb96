//! Embeds the PMU event maps (hwprofiles/events/*.toml) so the binary needs no data
//! directory at run time. Adding a microarchitecture = adding one TOML file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    embed_event_maps();
    build_probes();
}

/// Compile probes/hwprof-probes-ebpf for bpfel-unknown-none with the nightly
/// toolchain and bpf-linker, and embed the object. Where that toolchain is missing
/// (macOS, CI without nightly, cross builds) the rest still builds and `--probes`
/// says how to get them.
fn build_probes() {
    println!("cargo:rustc-check-cfg=cfg(hwprof_probes)");
    println!("cargo:rerun-if-env-changed=HWPROF_SKIP_PROBES");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../probes");
    for sub in [
        "hwprof-probes-ebpf/src",
        "hwprof-probes-ebpf/Cargo.toml",
        "hwprof-probes-common/src",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(sub).display());
    }
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let host_arch = std::env::var("HOST").unwrap_or_default();
    let skip = |why: &str| {
        println!("cargo:rustc-env=HWPROF_PROBES_MISSING={why}");
    };
    if std::env::var_os("HWPROF_SKIP_PROBES").is_some() {
        return skip("built with HWPROF_SKIP_PROBES set");
    }
    if target_os != "linux" {
        return skip("eBPF probes exist only on Linux");
    }
    if !host_arch.starts_with(&target_arch) {
        // Tracepoint layouts are arch-independent, but uprobe/pt_regs access is not.
        return skip("cross-compiled build: probes are built only for the host architecture");
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let manifest = root.join("hwprof-probes-ebpf/Cargo.toml");
    // The full object, then one without the EVENTS ring buffer for kernels
    // before 5.8 (same target dir: core is built once). Each is copied out
    // because both builds write the same path.
    let built = [
        ("", "hwprof-probes.o"),
        ("no-events", "hwprof-probes-no-events.o"),
    ]
    .iter()
    .try_for_each(|(features, name)| {
        bpf_build(&manifest, &out, features)?;
        let obj = out.join("probes-target/bpfel-unknown-none/release/hwprof-probes");
        std::fs::copy(&obj, out.join(name))
            .map(drop)
            .map_err(|e| format!("copying {}: {e}", obj.display()))
    });
    match built {
        Ok(()) => {
            println!(
                "cargo:rustc-env=HWPROF_PROBES_OBJ={}",
                out.join("hwprof-probes.o").display()
            );
            println!(
                "cargo:rustc-env=HWPROF_PROBES_OBJ_NO_EVENTS={}",
                out.join("hwprof-probes-no-events.o").display()
            );
            println!("cargo:rustc-cfg=hwprof_probes");
        }
        Err(why) => {
            println!("cargo:warning=eBPF probes not built: {why}");
            skip(&why);
        }
    }
}

/// One nightly `cargo build` of the eBPF crate for bpfel-unknown-none.
fn bpf_build(manifest: &Path, out: &Path, features: &str) -> Result<(), String> {
    let mut cmd = Command::new("rustup");
    cmd.args([
        "run",
        "nightly",
        "cargo",
        "build",
        "--release",
        "--target",
        "bpfel-unknown-none",
        "-Z",
        "build-std=core",
        "--manifest-path",
    ])
    .arg(manifest)
    .arg("--target-dir")
    .arg(out.join("probes-target"));
    if !features.is_empty() {
        cmd.args(["--features", features]);
    }
    // The outer build's compiler settings must not leak into the BPF build.
    for v in [
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTDOC",
        "CARGO_MAKEFLAGS",
        "RUSTUP_TOOLCHAIN",
        "CARGO",
    ] {
        cmd.env_remove(v);
    }
    match cmd.output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            let line = err
                .lines()
                .find(|l| l.contains("error"))
                .unwrap_or("build failed")
                .replace('=', " ");
            Err(format!("the eBPF build failed ({line}); run scripts/install.sh to install the nightly toolchain, rust-src and bpf-linker"))
        }
        Err(e) => Err(format!(
            "rustup with a nightly toolchain is not installed ({e}); run scripts/install.sh"
        )),
    }
}

fn embed_event_maps() {
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
