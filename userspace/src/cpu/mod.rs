//! CPU identity: vendor, model, microarchitecture, SIMD features, cache line.
//!
//! x86_64 reads CPUID (raw-cpuid); aarch64 reads the MIDR fields Linux exposes in
//! /proc/cpuinfo; macOS asks sysctl. The microarchitecture tables are pure
//! functions so they are tested on any host.

pub mod arm_midr;
#[cfg(target_arch = "x86_64")]
mod x86_64;
pub mod x86_models;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CpuIdentity {
    pub vendor: String,
    pub model_name: String,
    /// Microarchitecture name (`Zen 3`, `Ice Lake-SP`, `Neoverse-N1`), or null when
    /// the family/model is not in hwprof's table.
    pub microarchitecture: Option<String>,
    pub family: Option<u32>,
    pub model: Option<u32>,
    pub stepping: Option<u32>,
    /// SIMD extensions usable by this process (CPU and OS support both checked).
    pub simd: Vec<String>,
    pub cache_line_bytes: Option<u32>,
    /// Where the identity came from (`cpuid`, `/proc/cpuinfo MIDR`, `sysctl`).
    pub source: String,
    /// Caveats a reader needs (e.g. a hypervisor presenting its own CPU model).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Identify the CPU this process runs on.
pub fn identify() -> CpuIdentity {
    #[cfg(target_arch = "x86_64")]
    {
        x86_64::identify()
    }
    #[cfg(all(target_arch = "aarch64", target_os = "linux"))]
    {
        let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let mut id = arm_midr::identify_from_cpuinfo(&text);
        id.simd = aarch64_simd();
        id
    }
    #[cfg(all(target_arch = "aarch64", target_os = "macos"))]
    {
        macos_identity()
    }
    #[cfg(not(any(
        target_arch = "x86_64",
        all(target_arch = "aarch64", any(target_os = "linux", target_os = "macos"))
    )))]
    {
        CpuIdentity {
            vendor: "unknown".into(),
            model_name: "unknown".into(),
            microarchitecture: None,
            family: None,
            model: None,
            stepping: None,
            simd: vec![],
            cache_line_bytes: None,
            source: "none".into(),
            notes: vec![],
        }
    }
}

#[cfg(target_arch = "aarch64")]
fn aarch64_simd() -> Vec<String> {
    let mut v = Vec::new();
    if std::arch::is_aarch64_feature_detected!("neon") {
        v.push("NEON".to_string());
    }
    if std::arch::is_aarch64_feature_detected!("sve") {
        v.push("SVE".to_string());
    }
    if std::arch::is_aarch64_feature_detected!("sve2") {
        v.push("SVE2".to_string());
    }
    if std::arch::is_aarch64_feature_detected!("dotprod") {
        v.push("DOTPROD".to_string());
    }
    v
}

#[cfg(all(target_arch = "aarch64", target_os = "macos"))]
fn macos_identity() -> CpuIdentity {
    let brand = crate::sysctl::string("machdep.cpu.brand_string").unwrap_or_else(|| "Apple".into());
    CpuIdentity {
        vendor: "Apple".into(),
        microarchitecture: arm_midr::apple_microarchitecture(&brand),
        model_name: brand,
        family: None,
        model: None,
        stepping: None,
        simd: aarch64_simd(),
        cache_line_bytes: crate::sysctl::u64("hw.cachelinesize").map(|v| v as u32),
        source: "sysctl".into(),
        notes: vec![],
    }
}
