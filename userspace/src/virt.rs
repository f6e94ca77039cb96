//! Hypervisor detection: a number measured in a guest is a number about the
//! guest, and the report must say so.

/// The hypervisor's name, or None on bare metal (or where nothing tells).
pub fn detect() -> Option<String> {
    #[cfg(target_arch = "x86_64")]
    if let Some(name) = from_cpuid() {
        return Some(name);
    }
    #[cfg(target_os = "linux")]
    if let Some(name) = from_linux_files() {
        return Some(name);
    }
    #[cfg(target_os = "macos")]
    if crate::sysctl::u64("kern.hv_vmm_present") == Some(1) {
        return Some("Apple Hypervisor.framework".into());
    }
    None
}

#[cfg(target_arch = "x86_64")]
fn from_cpuid() -> Option<String> {
    use raw_cpuid::{CpuId, Hypervisor};
    let cpuid = CpuId::new();
    // The hypervisor-present bit (leaf 1 ECX[31]) gates the vendor leaf.
    if !cpuid.get_feature_info()?.has_hypervisor() {
        return None;
    }
    let name = match cpuid.get_hypervisor_info()?.identify() {
        Hypervisor::KVM => "KVM".to_string(),
        Hypervisor::Xen => "Xen".into(),
        Hypervisor::VMware => "VMware".into(),
        Hypervisor::HyperV => "Hyper-V".into(),
        Hypervisor::QEMU => "QEMU (TCG)".into(),
        Hypervisor::Bhyve => "bhyve".into(),
        Hypervisor::QNX => "QNX".into(),
        Hypervisor::ACRN => "ACRN".into(),
        Hypervisor::Unknown(b, c, d) => {
            let bytes: Vec<u8> = [b, c, d].iter().flat_map(|r| r.to_le_bytes()).collect();
            let s = String::from_utf8_lossy(&bytes)
                .trim_matches('\0')
                .trim()
                .to_string();
            if s.is_empty() {
                "unknown hypervisor".into()
            } else {
                s
            }
        }
    };
    Some(name)
}

#[cfg(target_os = "linux")]
fn from_linux_files() -> Option<String> {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
    };
    if let Some(t) = read("/sys/hypervisor/type").filter(|s| !s.is_empty()) {
        return Some(if t == "xen" { "Xen".into() } else { t });
    }
    let vendor = read("/sys/class/dmi/id/sys_vendor").unwrap_or_default();
    let product = read("/sys/class/dmi/id/product_name").unwrap_or_default();
    dmi_hypervisor(&vendor, &product)
}

/// Map DMI vendor/product strings to a hypervisor (arm64 guests have no CPUID leaf).
pub fn dmi_hypervisor(vendor: &str, product: &str) -> Option<String> {
    let both = format!("{vendor} {product}");
    let known = [
        ("QEMU", "KVM"),
        ("KVM", "KVM"),
        ("Amazon EC2", "KVM (Nitro)"),
        ("Google Compute Engine", "KVM"),
        ("VMware", "VMware"),
        ("Microsoft Corporation Virtual Machine", "Hyper-V"),
        ("Xen", "Xen"),
        ("innotek", "VirtualBox"),
        ("Parallels", "Parallels"),
    ];
    // Bare-metal EC2 instances have product names ending in ".metal".
    if product.ends_with(".metal") {
        return None;
    }
    known
        .iter()
        .find(|(needle, _)| both.contains(needle))
        .map(|(_, name)| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dmi_strings() {
        assert_eq!(
            dmi_hypervisor("QEMU", "Standard PC (Q35 + ICH9, 2009)").as_deref(),
            Some("KVM")
        );
        assert_eq!(
            dmi_hypervisor("Amazon EC2", "c7g.large").as_deref(),
            Some("KVM (Nitro)")
        );
        assert_eq!(dmi_hypervisor("Amazon EC2", "c7g.metal"), None);
        assert_eq!(dmi_hypervisor("Dell Inc.", "PowerEdge R750"), None);
    }
}
