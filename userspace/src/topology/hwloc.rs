//! Topology backend over the system libhwloc (2.x) through hwlocality.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use hwlocality::bitmap::BitmapRef;
use hwlocality::cpu::cpuset::CpuSet;
use hwlocality::object::attributes::ObjectAttributes;
use hwlocality::object::types::{CacheType, ObjectType};
use hwlocality::object::TopologyObject;
use hwlocality::topology::export::xml::XMLExportFlags;
use hwlocality::Topology as HwlocTopology;

use super::{Cache, CpuKind, Loaded, NumaNode, Pu, Topology, TopologySource};
use crate::error::usage;

pub fn load(source: &TopologySource) -> anyhow::Result<Loaded> {
    let builder = HwlocTopology::builder();
    let builder = match source {
        TopologySource::Host => builder,
        TopologySource::Xml(path) => {
            let flag = "--topology xml:";
            let text = crate::input::read_text(flag, path, crate::input::MAX_FILE_BYTES)?;
            builder.from_xml(&text).map_err(|e| {
                usage(format!(
                    "--topology xml:{}: not a readable hwloc XML export ({})",
                    path.display(),
                    hwloc_reason(&e.to_string())
                ))
            })?
        }
        TopologySource::Synthetic(desc) => builder.from_synthetic(desc).map_err(|e| {
            usage(format!(
                "--topology synthetic:{desc:?}: not a valid hwloc synthetic description ({}); \
                 example: \"pack:2 numa:1 l3:2 core:8 pu:2\"",
                hwloc_reason(&e.to_string())
            ))
        })?,
    };
    let topo = builder.build().map_err(|e| match source {
        TopologySource::Host => anyhow::anyhow!("hwloc could not discover this machine: {e}"),
        _ => usage(format!(
            "--topology {}: hwloc rejected it ({})",
            source.describe(),
            hwloc_reason(&e.to_string())
        )),
    })?;
    let model = model_of(&topo, source)?;
    let xml = topo
        .export_xml(XMLExportFlags::empty())
        .ok()
        .map(|x| x.as_str().to_string());
    let host = if source.is_host() {
        super::HostHandle::Hwloc(Arc::new(topo))
    } else {
        super::HostHandle::NotHost
    };
    Ok(Loaded { model, xml, host })
}

/// hwlocality's error text in plain words: its Display may carry Rust Debug
/// formatting (`Some(Errno { code: 22, … })`), which is no message for a user.
fn hwloc_reason(text: &str) -> String {
    if let Some(i) = text.find("code: ") {
        let code: String = text[i + 6..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        if let Ok(c) = code.parse::<i32>() {
            let why = crate::input::io_reason(&std::io::Error::from_raw_os_error(c));
            let head = text[..text.find("Some(").or(text.find("Errno")).unwrap_or(i)]
                .trim_end_matches([' ', ':', '(', ','])
                .trim();
            return if head.is_empty() {
                why
            } else {
                format!("{head}: {why}")
            };
        }
    }
    if text.contains("None") && text.contains('(') {
        return text
            .split(['(', '{'])
            .next()
            .unwrap_or(text)
            .trim()
            .trim_end_matches(':')
            .to_string();
    }
    text.to_string()
}

fn cpus_of(set: Option<BitmapRef<'_, CpuSet>>) -> Vec<usize> {
    set.map(|s| s.iter_set().map(usize::from).collect())
        .unwrap_or_default()
}

fn ancestor_index(pu: &TopologyObject, ty: ObjectType) -> Option<usize> {
    pu.ancestors()
        .find(|a| a.object_type() == ty)
        .map(|a| a.logical_index())
}

fn model_of(topo: &HwlocTopology, source: &TopologySource) -> anyhow::Result<Topology> {
    let numa: Vec<NumaNode> = topo
        .objects_with_type(ObjectType::NUMANode)
        .map(|n| NumaNode {
            os_index: n.os_index().unwrap_or(n.logical_index()),
            memory_bytes: match n.attributes() {
                Some(ObjectAttributes::NUMANode(a)) => a.local_memory().map(|m| m.get()),
                _ => None,
            },
            cpus: cpus_of(n.cpuset()),
        })
        .collect();

    let mut kinds = Vec::new();
    if let Ok(iter) = topo.cpu_kinds() {
        for k in iter {
            kinds.push(CpuKind {
                cpus: k.cpuset.iter_set().map(usize::from).collect(),
                efficiency: k.efficiency.map(|e| e as u32),
                info: k
                    .infos
                    .iter()
                    .map(|i| {
                        (
                            i.name().to_string_lossy().into_owned(),
                            i.value().to_string_lossy().into_owned(),
                        )
                    })
                    .collect::<BTreeMap<_, _>>(),
            });
        }
    }

    // CPU -> node and CPU -> kind, so building the model stays O(n log n) on
    // machines (or synthetic descriptions) with thousands of PUs.
    let node_of: BTreeMap<usize, usize> = numa
        .iter()
        .rev()
        .flat_map(|n| n.cpus.iter().map(move |&c| (c, n.os_index)))
        .collect();
    let kind_of: BTreeMap<usize, usize> = kinds
        .iter()
        .enumerate()
        .rev()
        .flat_map(|(i, k)| k.cpus.iter().map(move |&c| (c, i)))
        .collect();
    let mut cpus = Vec::new();
    for pu in topo.objects_with_type(ObjectType::PU) {
        let os_index = pu
            .os_index()
            .context("hwloc reported a PU without an OS index")?;
        let core = ancestor_index(pu, ObjectType::Core)
            // Some exports (and some VMs) have PUs straight under a package: each
            // PU is then its own core, which is what lstopo shows too.
            .map(|c| c)
            .unwrap_or(usize::MAX - os_index);
        cpus.push(Pu {
            os_index,
            core,
            package: ancestor_index(pu, ObjectType::Package),
            numa: node_of.get(&os_index).copied(),
            l3: ancestor_index(pu, ObjectType::L3Cache),
            l2: ancestor_index(pu, ObjectType::L2Cache),
            kind: kind_of.get(&os_index).copied(),
        });
    }
    cpus.sort_by_key(|p| p.os_index);

    let mut caches = Vec::new();
    for (level, ty) in [
        (1u8, ObjectType::L1Cache),
        (2, ObjectType::L2Cache),
        (3, ObjectType::L3Cache),
        (4, ObjectType::L4Cache),
    ] {
        for c in topo.objects_with_type(ty) {
            let (size, line, kind) = match c.attributes() {
                Some(ObjectAttributes::Cache(a)) => (
                    a.size().map(|s| s.get()),
                    a.line_size().map(|l| l.get()),
                    match a.cache_type() {
                        CacheType::Data => "data",
                        CacheType::Instruction => "instruction",
                        _ => "unified",
                    },
                ),
                _ => (None, None, "unified"),
            };
            caches.push(Cache {
                level,
                kind: kind.into(),
                size_bytes: size,
                line_bytes: line,
                cpus: cpus_of(c.cpuset()),
            });
        }
    }

    use std::collections::BTreeSet;
    let online: BTreeSet<usize> = topo.cpuset().iter_set().map(usize::from).collect();
    let complete: Vec<usize> = topo.complete_cpuset().iter_set().map(usize::from).collect();
    let allowed: BTreeSet<usize> = topo.allowed_cpuset().iter_set().map(usize::from).collect();
    let offline_cpus = complete
        .iter()
        .copied()
        .filter(|c| !online.contains(c))
        .collect();
    let disallowed_cpus = online
        .iter()
        .copied()
        .filter(|c| !allowed.contains(c))
        .collect();

    let numa_distances = numa_distance_matrix(topo, &numa);

    let model = Topology {
        packages: topo.objects_with_type(ObjectType::Package).len(),
        numa_nodes: numa.len(),
        // Counted as recorded: PUs without a Core parent are cores of their own
        // for placement (see above), not in the count.
        cores: topo.objects_with_type(ObjectType::Core).len(),
        cores_recorded: topo.objects_with_type(ObjectType::Core).len() > 0 || cpus.is_empty(),
        pus: cpus.len(),
        l3_domains: topo.objects_with_type(ObjectType::L3Cache).len(),
        numa_distances,
        source: source.describe(),
        backend: format!("hwloc (API {})", hwloc_version()),
        cpus,
        caches,
        numa,
        offline_cpus,
        disallowed_cpus,
        cpu_kinds: kinds,
    };
    model
        .check_consistency()
        .map_err(|e| anyhow::anyhow!("inconsistent topology from hwloc: {e}"))?;
    Ok(model)
}

/// The first NUMA-node distance matrix hwloc has, reordered to `numa`'s order.
fn numa_distance_matrix(topo: &HwlocTopology, numa: &[NumaNode]) -> Option<Vec<Vec<u64>>> {
    let all = topo.distances_with_type(None, ObjectType::NUMANode).ok()?;
    let d = all.first()?;
    let order: Vec<Option<usize>> = d.objects().map(|o| o.and_then(|o| o.os_index())).collect();
    let n = order.len();
    if n != numa.len() {
        return None;
    }
    let values = d.distances();
    let pos = |os: usize| order.iter().position(|o| *o == Some(os));
    let mut m = vec![vec![0u64; n]; n];
    for (i, from) in numa.iter().enumerate() {
        for (j, to) in numa.iter().enumerate() {
            m[i][j] = values[pos(from.os_index)? * n + pos(to.os_index)?];
        }
    }
    Some(m)
}

fn hwloc_version() -> String {
    let v = hwlocality::hwloc_api_version();
    format!("{}.{}.{}", v >> 16, (v >> 8) & 0xff, v & 0xff)
}
