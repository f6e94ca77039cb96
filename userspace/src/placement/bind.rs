//! Binding the calling thread (and its memory) to where the plan put it.
//!
//! Through hwloc when the topology came from the host; through
//! `sched_setaffinity` on Linux builds without hwloc; not at all on macOS, whose
//! scheduler offers no hard affinity (the report then says threads ran unpinned).

#[cfg(all(feature = "hwloc", target_os = "linux"))]
use std::sync::Arc;

use serde::Serialize;

/// Where an allocation's pages go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "policy", content = "nodes")]
pub enum MemoryPolicy {
    /// The kernel's default: pages land on the node of the thread that touches them first.
    FirstTouch,
    /// Pages only on these NUMA nodes (os indexes).
    Bind(Vec<usize>),
    /// Pages spread round-robin over these nodes.
    Interleave(Vec<usize>),
}

impl std::fmt::Display for MemoryPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::FirstTouch => f.write_str("first-touch (kernel default)"),
            Self::Bind(n) => write!(f, "bound to NUMA node(s) {}", super::cpulist::format(n)),
            Self::Interleave(n) => write!(
                f,
                "interleaved over NUMA node(s) {}",
                super::cpulist::format(n)
            ),
        }
    }
}

impl MemoryPolicy {
    /// Parse `first-touch`, `node:N[,M]` or `interleave[:N,M]` against the known nodes.
    pub fn parse(text: &str, nodes: &[usize]) -> Result<Self, String> {
        let list = |s: &str| -> Result<Vec<usize>, String> {
            let v = super::cpulist::parse_list(s, "NUMA node")
                .map_err(|e| format!("--membind {text:?}: {e}"))?;
            if let Some(bad) = v.iter().find(|n| !nodes.contains(n)) {
                return Err(format!(
                    "--membind {text:?}: NUMA node {bad} does not exist on this machine (nodes: {})",
                    super::cpulist::format(nodes)
                ));
            }
            Ok(v)
        };
        match text {
            "first-touch" => Ok(Self::FirstTouch),
            "interleave" => Ok(Self::Interleave(nodes.to_vec())),
            _ => {
                if let Some(s) = text.strip_prefix("node:") {
                    Ok(Self::Bind(list(s)?))
                } else if let Some(s) = text.strip_prefix("interleave:") {
                    Ok(Self::Interleave(list(s)?))
                } else {
                    Err(format!(
                        "--membind {text:?}: expected first-touch, node:N or interleave[:N,M]"
                    ))
                }
            }
        }
    }
}

/// How threads get pinned on this host.
#[derive(Clone)]
pub struct Binder {
    #[cfg(all(feature = "hwloc", target_os = "linux"))]
    hwloc: Option<Arc<hwlocality::Topology>>,
}

impl Binder {
    #[cfg(all(feature = "hwloc", target_os = "linux"))]
    pub fn with_hwloc(topology: Arc<hwlocality::Topology>) -> Self {
        Binder {
            hwloc: Some(topology),
        }
    }

    /// The binder for a loaded topology: None unless it is this host's.
    pub fn for_loaded(l: &crate::topology::Loaded) -> Option<Binder> {
        use crate::topology::HostHandle;
        match &l.host {
            HostHandle::NotHost => None,
            HostHandle::Os => Some(Binder::os()),
            #[cfg(all(feature = "hwloc", target_os = "linux"))]
            HostHandle::Hwloc(t) => Some(Binder::with_hwloc(Arc::clone(t))),
        }
    }

    /// A binder using the OS call directly (no hwloc).
    #[allow(dead_code)]
    pub fn os() -> Self {
        Binder {
            #[cfg(all(feature = "hwloc", target_os = "linux"))]
            hwloc: None,
        }
    }

    /// What performs the binding, for the report.
    pub fn mechanism(&self) -> &'static str {
        #[cfg(all(feature = "hwloc", target_os = "linux"))]
        if self.hwloc.is_some() {
            return "hwloc (hwloc_set_cpubind, THREAD)";
        }
        if cfg!(target_os = "linux") {
            "sched_setaffinity"
        } else {
            "none: this OS has no hard thread affinity; threads ran unpinned"
        }
    }

    /// Whether threads really get pinned.
    pub fn pins(&self) -> bool {
        cfg!(target_os = "linux")
    }

    /// Pin the calling thread to one CPU.
    pub fn bind_current_thread(&self, cpu: usize) -> Result<(), String> {
        #[cfg(all(feature = "hwloc", target_os = "linux"))]
        if let Some(topo) = &self.hwloc {
            use hwlocality::cpu::binding::CpuBindingFlags;
            use hwlocality::cpu::cpuset::CpuSet;
            let mut set = CpuSet::new();
            set.set(cpu);
            return topo
                .bind_cpu(&set, CpuBindingFlags::THREAD | CpuBindingFlags::STRICT)
                .map_err(|e| format!("hwloc could not bind to CPU {cpu}: {e}"));
        }
        os_bind(cpu)
    }

    /// Apply a memory policy to the calling thread's future allocations.
    pub fn bind_memory(&self, policy: &MemoryPolicy) -> Result<(), String> {
        let (nodes, interleave) = match policy {
            MemoryPolicy::FirstTouch => return Ok(()),
            MemoryPolicy::Bind(n) => (n, false),
            MemoryPolicy::Interleave(n) => (n, true),
        };
        #[cfg(all(feature = "hwloc", target_os = "linux"))]
        if let Some(topo) = &self.hwloc {
            use hwlocality::memory::binding::{MemoryBindingFlags, MemoryBindingPolicy};
            use hwlocality::memory::nodeset::NodeSet;
            let mut set = NodeSet::new();
            for n in nodes {
                set.set(*n);
            }
            let p = if interleave {
                MemoryBindingPolicy::Interleave
            } else {
                MemoryBindingPolicy::Bind
            };
            return topo
                .bind_memory(&set, p, MemoryBindingFlags::THREAD)
                .map_err(|e| format!("hwloc could not bind memory to nodes {nodes:?}: {e}"));
        }
        let _ = (nodes, interleave);
        Err("memory binding needs hwprof built with hwloc (feature `hwloc`)".into())
    }

    /// Undo [`Binder::bind_memory`] for the calling thread.
    pub fn reset_memory(&self) {
        #[cfg(all(feature = "hwloc", target_os = "linux"))]
        if let Some(topo) = &self.hwloc {
            use hwlocality::memory::binding::MemoryBindingFlags;
            let _ = topo.unbind_memory(MemoryBindingFlags::THREAD);
        }
    }
}

#[cfg(target_os = "linux")]
fn os_bind(cpu: usize) -> Result<(), String> {
    // SAFETY: cpu_set_t is plain data; CPU_SET bounds-checks against its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if cpu >= 8 * std::mem::size_of::<libc::cpu_set_t>() {
            return Err(format!(
                "CPU {cpu} is beyond what sched_setaffinity can address"
            ));
        }
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(format!(
                "sched_setaffinity to CPU {cpu}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn os_bind(_cpu: usize) -> Result<(), String> {
    Ok(())
}

/// The CPU the calling thread runs on right now, where the OS can say.
pub fn current_cpu() -> Option<usize> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: sched_getcpu has no preconditions (vDSO getcpu on x86_64/aarch64).
        let c = unsafe { libc::sched_getcpu() };
        (c >= 0).then_some(c as usize)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_memory_policies() {
        let nodes = [0, 1];
        assert_eq!(
            MemoryPolicy::parse("first-touch", &nodes),
            Ok(MemoryPolicy::FirstTouch)
        );
        assert_eq!(
            MemoryPolicy::parse("node:1", &nodes),
            Ok(MemoryPolicy::Bind(vec![1]))
        );
        assert_eq!(
            MemoryPolicy::parse("interleave", &nodes),
            Ok(MemoryPolicy::Interleave(vec![0, 1]))
        );
        assert!(MemoryPolicy::parse("node:2", &nodes).is_err());
        assert!(MemoryPolicy::parse("nodes", &nodes).is_err());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn binding_moves_the_thread() {
        let cpu = std::thread::spawn(|| {
            Binder::os().bind_current_thread(0).unwrap();
            current_cpu()
        })
        .join()
        .unwrap();
        assert_eq!(cpu, Some(0));
    }
}
