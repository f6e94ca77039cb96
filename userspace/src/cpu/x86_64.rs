//! x86_64 identity from CPUID.

use raw_cpuid::CpuId;

use super::{x86_models, CpuIdentity};

pub fn identify() -> CpuIdentity {
    let cpuid = CpuId::new();
    let vendor = cpuid
        .get_vendor_info()
        .map(|v| v.as_str().to_string())
        .unwrap_or_else(|| "unknown".into());
    let brand = cpuid
        .get_processor_brand_string()
        .map(|b| b.as_str().trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let fi = cpuid.get_feature_info();
    let (family, model, stepping) = match &fi {
        Some(f) => {
            let (fam, model) = x86_models::display_family_model(
                f.base_family_id() as u32,
                f.extended_family_id() as u32,
                f.base_model_id() as u32,
                f.extended_model_id() as u32,
            );
            (Some(fam), Some(model), Some(f.stepping_id() as u32))
        }
        None => (None, None, None),
    };
    let microarchitecture = match (family, model, stepping) {
        (Some(f), Some(m), Some(s)) => x86_models::lookup(&vendor, f, m, s).map(str::to_string),
        _ => None,
    };
    // CLFLUSH line size is reported in 8-byte units.
    let cache_line_bytes = fi
        .as_ref()
        .map(|f| f.cflush_cache_line_size() as u32 * 8)
        .filter(|&b| b > 0);
    CpuIdentity {
        vendor,
        model_name: brand,
        microarchitecture,
        family,
        model,
        stepping,
        simd: simd(),
        cache_line_bytes,
        source: "cpuid".into(),
        notes: vec![],
    }
}

/// SIMD extensions this process may use: std's detection checks both CPUID and
/// that the OS saves the wider registers (XCR0), which CPUID alone does not.
fn simd() -> Vec<String> {
    let mut v = Vec::new();
    macro_rules! check {
        ($($feat:tt => $name:expr),*) => {
            $( if std::arch::is_x86_feature_detected!($feat) { v.push($name.to_string()); } )*
        };
    }
    check!(
        "sse4.2" => "SSE4.2",
        "avx" => "AVX",
        "avx2" => "AVX2",
        "fma" => "FMA",
        "avx512f" => "AVX-512F",
        "avx512bw" => "AVX-512BW",
        "avx512vl" => "AVX-512VL",
        "avx512vnni" => "AVX-512VNNI"
    );
    v
}
