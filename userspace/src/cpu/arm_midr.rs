//! Arm identification from the MIDR_EL1 fields Linux prints in /proc/cpuinfo
//! ("CPU implementer", "CPU part", …). Part numbers from the Arm technical
//! reference manuals, as mirrored by the kernel's arch/arm64/include/asm/cputype.h.

use super::CpuIdentity;

pub fn implementer_name(implementer: u32) -> &'static str {
    match implementer {
        0x41 => "Arm",
        0x42 => "Broadcom",
        0x43 => "Cavium",
        0x46 => "Fujitsu",
        0x48 => "HiSilicon",
        0x4E => "NVIDIA",
        0x51 => "Qualcomm",
        0x61 => "Apple",
        0xC0 => "Ampere",
        _ => "unknown",
    }
}

pub fn microarchitecture(implementer: u32, part: u32) -> Option<&'static str> {
    Some(match (implementer, part) {
        (0x41, 0xD03) => "Cortex-A53",
        (0x41, 0xD05) => "Cortex-A55",
        (0x41, 0xD07) => "Cortex-A57",
        (0x41, 0xD08) => "Cortex-A72",
        (0x41, 0xD0B) => "Cortex-A76",
        (0x41, 0xD0C) => "Neoverse-N1",
        (0x41, 0xD0D) => "Cortex-A77",
        (0x41, 0xD40) => "Neoverse-V1",
        (0x41, 0xD41) => "Cortex-A78",
        (0x41, 0xD44) => "Cortex-X1",
        (0x41, 0xD49) => "Neoverse-N2",
        (0x41, 0xD4F) => "Neoverse-V2",
        (0x41, 0xD83) => "Neoverse-V3AE",
        (0x41, 0xD84) => "Neoverse-V3",
        (0x41, 0xD8E) => "Neoverse-N3",
        (0x46, 0x001) => "A64FX",
        (0x48, 0xD01) => "TaiShan v110",
        (0xC0, 0xAC3) => "Ampere-1",
        (0xC0, 0xAC4) => "Ampere-1a",
        (0x4E, 0x004) => "Carmel",
        _ => return None,
    })
}

/// Apple silicon generation from the sysctl brand string ("Apple M2 Pro").
pub fn apple_microarchitecture(brand: &str) -> Option<String> {
    let gen = brand.split_whitespace().find(|w| w.starts_with('M'))?;
    Some(format!("Apple {gen}"))
}

fn hex_field(text: &str, key: &str) -> Option<u32> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim() == key)
        .and_then(|(_, v)| {
            let v = v.trim();
            let v = v.strip_prefix("0x").unwrap_or(v);
            u32::from_str_radix(v, 16).ok()
        })
}

/// Identity from the text of /proc/cpuinfo on an arm64 Linux machine. SIMD
/// features come from its `Features` line (the caller may replace them with
/// runtime detection).
pub fn identify_from_cpuinfo(text: &str) -> CpuIdentity {
    let implementer = hex_field(text, "CPU implementer");
    let part = hex_field(text, "CPU part");
    let variant = hex_field(text, "CPU variant");
    let revision = hex_field(text, "CPU revision");
    let uarch = match (implementer, part) {
        (Some(i), Some(p)) => microarchitecture(i, p),
        _ => None,
    };
    let features: Vec<&str> = text
        .lines()
        .find(|l| l.starts_with("Features"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.split_whitespace().collect())
        .unwrap_or_default();
    let mut simd = Vec::new();
    for (flag, name) in [
        ("asimd", "NEON"),
        ("sve", "SVE"),
        ("sve2", "SVE2"),
        ("asimddp", "DOTPROD"),
    ] {
        if features.contains(&flag) {
            simd.push(name.to_string());
        }
    }
    let vendor = implementer.map_or("unknown", implementer_name).to_string();
    CpuIdentity {
        model_name: match (uarch, part) {
            (Some(u), _) => format!("{vendor} {u}"),
            (None, Some(p)) => format!("{vendor} part 0x{p:03x}"),
            (None, None) => "unknown".into(),
        },
        vendor,
        microarchitecture: uarch.map(str::to_string),
        family: implementer,
        model: part,
        stepping: match (variant, revision) {
            (Some(v), Some(r)) => Some((v << 4) | r),
            _ => None,
        },
        simd,
        // Every Armv8 server core listed above uses 64-byte lines.
        cache_line_bytes: uarch.map(|_| 64),
        source: "/proc/cpuinfo MIDR".into(),
        notes: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Recorded from an AWS c6g (Graviton 2) instance.
    const GRAVITON2: &str = "processor\t: 0\nBogoMIPS\t: 243.75\n\
        Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs\n\
        CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x3\nCPU part\t: 0xd0c\nCPU revision\t: 1\n";
    // Recorded from an AWS c7g (Graviton 3) instance.
    const GRAVITON3: &str = "processor\t: 0\n\
        Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs paca pacg dcpodp svei8mm svebf16 i8mm bf16 dgh rng\n\
        CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x1\nCPU part\t: 0xd40\nCPU revision\t: 1\n";

    #[test]
    fn graviton2_is_neoverse_n1() {
        let id = identify_from_cpuinfo(GRAVITON2);
        assert_eq!(id.vendor, "Arm");
        assert_eq!(id.microarchitecture.as_deref(), Some("Neoverse-N1"));
        assert_eq!(id.simd, vec!["NEON", "DOTPROD"]);
        assert_eq!(id.stepping, Some(0x31));
    }

    #[test]
    fn graviton3_is_neoverse_v1_with_sve() {
        let id = identify_from_cpuinfo(GRAVITON3);
        assert_eq!(id.microarchitecture.as_deref(), Some("Neoverse-V1"));
        assert!(id.simd.contains(&"SVE".to_string()));
    }

    #[test]
    fn unknown_parts_are_named_not_guessed() {
        let id = identify_from_cpuinfo("CPU implementer\t: 0x41\nCPU part\t: 0xfff\n");
        assert_eq!(id.microarchitecture, None);
        assert_eq!(id.model_name, "Arm part 0xfff");
        assert_eq!(identify_from_cpuinfo("").vendor, "unknown");
        assert_eq!(
            apple_microarchitecture("Apple M2 Pro").as_deref(),
            Some("Apple M2")
        );
    }
}
