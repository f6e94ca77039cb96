//! x86 family/model → microarchitecture. Display family and model as Linux prints
//! them in /proc/cpuinfo (extended fields folded in). Sources: Intel SDM vol. 4
//! table 2-1 and the Linux kernel's arch/x86/include/asm/intel-family.h; AMD
//! family 17h/19h/1Ah model ranges from AMD's PPRs as mirrored by the kernel.

pub fn intel(family: u32, model: u32, stepping: u32) -> Option<&'static str> {
    if family != 6 {
        return None;
    }
    Some(match model {
        0x3F => "Haswell-EP",
        0x4F => "Broadwell-EP",
        0x55 if stepping >= 10 => "Cooper Lake",
        0x55 if stepping >= 5 => "Cascade Lake-SP",
        0x55 => "Skylake-SP",
        0x4E | 0x5E => "Skylake",
        0x8E | 0x9E => "Kaby Lake / Coffee Lake",
        0xA5 | 0xA6 => "Comet Lake",
        0x7D | 0x7E => "Ice Lake (client)",
        0x6A | 0x6C => "Ice Lake-SP",
        0x8C | 0x8D => "Tiger Lake",
        0xA7 => "Rocket Lake",
        0x97 | 0x9A => "Alder Lake",
        0xB7 | 0xBA | 0xBF => "Raptor Lake",
        0xAA | 0xAC => "Meteor Lake",
        0x8F => "Sapphire Rapids",
        0xCF => "Emerald Rapids",
        0xAD | 0xAE => "Granite Rapids",
        0xAF => "Sierra Forest",
        0x57 => "Knights Landing",
        0x85 => "Knights Mill",
        _ => return None,
    })
}

pub fn amd(family: u32, model: u32) -> Option<&'static str> {
    Some(match (family, model) {
        (0x17, 0x00..=0x0F) => "Zen",
        (0x17, 0x10..=0x2F) => "Zen+",
        (0x17, 0x30..=0xFF) => "Zen 2",
        (0x19, 0x00..=0x0F) => "Zen 3",
        (0x19, 0x10..=0x1F) => "Zen 4",
        (0x19, 0x20..=0x2F) => "Zen 3",
        (0x19, 0x40..=0x4F) => "Zen 3+",
        (0x19, 0x50..=0x5F) => "Zen 3",
        (0x19, 0x60..=0x7F) => "Zen 4",
        (0x19, 0xA0..=0xAF) => "Zen 4c",
        (0x1A, _) => "Zen 5",
        _ => return None,
    })
}

pub fn lookup(vendor: &str, family: u32, model: u32, stepping: u32) -> Option<&'static str> {
    match vendor {
        "GenuineIntel" => intel(family, model, stepping),
        "AuthenticAMD" | "HygonGenuine" => amd(family, model),
        _ => None,
    }
}

/// Fold CPUID leaf 1 EAX fields into display family and model (Intel SDM 3.2).
pub fn display_family_model(
    base_family: u32,
    ext_family: u32,
    base_model: u32,
    ext_model: u32,
) -> (u32, u32) {
    let family = if base_family == 0xF {
        base_family + ext_family
    } else {
        base_family
    };
    let model = if base_family == 0x6 || base_family == 0xF {
        (ext_model << 4) | base_model
    } else {
        base_model
    };
    (family, model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_parts() {
        // EPYC 7763 (Milan): family 25 model 1.
        assert_eq!(lookup("AuthenticAMD", 0x19, 0x01, 1), Some("Zen 3"));
        // EPYC 9654 (Genoa): family 25 model 17.
        assert_eq!(lookup("AuthenticAMD", 0x19, 0x11, 1), Some("Zen 4"));
        // EPYC 7742 (Rome): family 23 model 49.
        assert_eq!(lookup("AuthenticAMD", 0x17, 0x31, 0), Some("Zen 2"));
        assert_eq!(lookup("GenuineIntel", 6, 0x6A, 6), Some("Ice Lake-SP"));
        assert_eq!(lookup("GenuineIntel", 6, 0x8F, 8), Some("Sapphire Rapids"));
        assert_eq!(lookup("GenuineIntel", 6, 0x55, 4), Some("Skylake-SP"));
        assert_eq!(lookup("GenuineIntel", 6, 0x55, 7), Some("Cascade Lake-SP"));
        assert_eq!(lookup("GenuineIntel", 6, 0x97, 2), Some("Alder Lake"));
        assert_eq!(lookup("GenuineIntel", 6, 0x01, 0), None);
        assert_eq!(lookup("CentaurHauls", 6, 0x0F, 0), None);
    }

    #[test]
    fn folds_extended_fields() {
        // Zen 3: base family F + ext 0xA = 0x19; model = ext 0 << 4 | 1.
        assert_eq!(display_family_model(0xF, 0xA, 0x1, 0x0), (0x19, 0x01));
        // Ice Lake-SP: family 6, ext model 6, base model A.
        assert_eq!(display_family_model(0x6, 0x0, 0xA, 0x6), (0x6, 0x6A));
        // Family 5 ignores the extended model.
        assert_eq!(display_family_model(0x5, 0x0, 0x4, 0x3), (0x5, 0x4));
    }
}
