//! Which processes `hwprof attach` traces: the `--pid` list, with `--children`
//! their descendants (those alive at attach time and those born later), the
//! members of a cgroup (`--cgroup`), and processes by name (`--comm`). The set
//! is resolved again every half second while attached, so a server that forks
//! a worker per connection (PostgreSQL) is followed; the kernel side also
//! tracks every thread or process a traced thread creates, between rescans.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What the user asked to trace.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TargetSpec {
    pub pids: Vec<u32>,
    pub children: bool,
    /// A cgroup v2 directory: absolute, or relative to /sys/fs/cgroup.
    pub cgroup: Option<PathBuf>,
    /// Processes whose comm is exactly this (as `pgrep -x`).
    pub comm: Option<String>,
}

/// One process as /proc/PID/stat shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcInfo {
    pub pid: u32,
    pub ppid: u32,
    pub comm: String,
    /// Zombie: exited, not yet reaped (nothing to trace).
    pub zombie: bool,
}

/// Parse /proc/PID/stat: "PID (COMM) STATE PPID …"; the comm may hold spaces
/// and parentheses, so it ends at the last ')'.
pub fn parse_stat(s: &str) -> Option<ProcInfo> {
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let pid = s[..open].trim().parse().ok()?;
    let comm = s.get(open + 1..close)?.to_string();
    let mut rest = s[close + 1..].split_whitespace();
    let state = rest.next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some(ProcInfo {
        pid,
        ppid,
        comm,
        zombie: state == "Z" || state == "X",
    })
}

/// Every process on the machine (those that vanish while read are skipped).
pub fn scan() -> Vec<ProcInfo> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let name = e.ok()?.file_name();
        let pid: u32 = name.to_str()?.parse().ok()?;
        parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    })
    .collect()
}

/// `roots` and every process descended from one of them.
pub fn descendants(roots: &BTreeSet<u32>, procs: &[ProcInfo]) -> BTreeSet<u32> {
    let mut kids: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for p in procs {
        kids.entry(p.ppid).or_default().push(p.pid);
    }
    let mut out = BTreeSet::new();
    let mut todo: Vec<u32> = roots.iter().copied().collect();
    while let Some(p) = todo.pop() {
        if out.insert(p) {
            todo.extend(kids.get(&p).into_iter().flatten().copied());
        }
    }
    out
}

/// The directory of a cgroup given on the command line.
pub fn cgroup_dir(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        Path::new("/sys/fs/cgroup").join(p)
    }
}

/// The processes of a cgroup v2 and of its descendant cgroups.
pub fn cgroup_members(dir: &Path) -> std::io::Result<BTreeSet<u32>> {
    let mut out = BTreeSet::new();
    for l in std::fs::read_to_string(dir.join("cgroup.procs"))?.lines() {
        if let Ok(p) = l.trim().parse() {
            out.insert(p);
        }
    }
    for e in std::fs::read_dir(dir)?.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            // A child cgroup that vanished meanwhile holds nothing.
            out.extend(cgroup_members(&e.path()).unwrap_or_default());
        }
    }
    Ok(out)
}

impl TargetSpec {
    /// Nothing to trace was named.
    pub fn is_empty(&self) -> bool {
        self.pids.is_empty() && self.cgroup.is_none() && self.comm.is_none()
    }

    /// The processes to trace now, from a process table (and the cgroup's
    /// members, read by the caller). Zombies are left out.
    pub fn resolve(&self, procs: &[ProcInfo], cgroup: &BTreeSet<u32>) -> BTreeSet<u32> {
        let mut roots: BTreeSet<u32> = self.pids.iter().copied().collect();
        roots.extend(cgroup.iter().copied());
        if let Some(c) = &self.comm {
            roots.extend(procs.iter().filter(|p| &p.comm == c).map(|p| p.pid));
        }
        let set = if self.children {
            descendants(&roots, procs)
        } else {
            roots
        };
        let live: BTreeSet<u32> = procs.iter().filter(|p| !p.zombie).map(|p| p.pid).collect();
        set.intersection(&live).copied().collect()
    }

    /// Read the machine and resolve the set.
    pub fn resolve_now(&self) -> Result<BTreeSet<u32>, String> {
        let cg = match &self.cgroup {
            Some(c) => {
                let d = cgroup_dir(c);
                cgroup_members(&d).map_err(|e| format!("--cgroup {}: {e}", d.display()))?
            }
            None => BTreeSet::new(),
        };
        Ok(self.resolve(&scan(), &cg))
    }

    /// The traced set in words, for the report.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.pids.is_empty() {
            let l: Vec<String> = self.pids.iter().map(u32::to_string).collect();
            parts.push(format!("pid {}", l.join(",")));
        }
        if let Some(c) = &self.cgroup {
            parts.push(format!("cgroup {}", cgroup_dir(c).display()));
        }
        if let Some(c) = &self.comm {
            parts.push(format!("comm {c:?}"));
        }
        let mut s = parts.join(" + ");
        if self.children {
            s.push_str(", with descendants");
        }
        s
    }
}

/// Children of the traced set that are not traced, with their names: a
/// server that works in child processes (PostgreSQL, nginx, Apache prefork).
pub fn untraced_children<'a>(traced: &BTreeSet<u32>, procs: &'a [ProcInfo]) -> Vec<&'a ProcInfo> {
    procs
        .iter()
        .filter(|p| !p.zombie && traced.contains(&p.ppid) && !traced.contains(&p.pid))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pid: u32, ppid: u32, comm: &str) -> ProcInfo {
        ProcInfo {
            pid,
            ppid,
            comm: comm.into(),
            zombie: false,
        }
    }

    #[test]
    fn stat_lines_with_odd_names_parse() {
        let s = "4242 (postgres: bench (x)) S 4100 4242 4242 0 -1 4194560 150";
        let i = parse_stat(s).unwrap();
        assert_eq!((i.pid, i.ppid), (4242, 4100));
        assert_eq!(i.comm, "postgres: bench (x)");
        assert!(!i.zombie);
        assert!(parse_stat("12 (x) Z 1").unwrap().zombie);
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn children_comm_and_cgroup_each_widen_the_set() {
        // postmaster 100 → backends 101, 102 → a helper 103 under 102; an
        // unrelated postgres 200 (another cluster) and a shell 300.
        let procs = vec![
            p(1, 0, "init"),
            p(100, 1, "postgres"),
            p(101, 100, "postgres"),
            p(102, 100, "postgres"),
            p(103, 102, "helper"),
            p(200, 1, "postgres"),
            p(300, 1, "bash"),
            ProcInfo {
                zombie: true,
                ..p(104, 100, "postgres")
            },
        ];
        let none = BTreeSet::new();
        let just = TargetSpec {
            pids: vec![100],
            ..Default::default()
        };
        assert_eq!(just.resolve(&procs, &none), BTreeSet::from([100]));
        let untraced: Vec<u32> = untraced_children(&BTreeSet::from([100]), &procs)
            .iter()
            .map(|p| p.pid)
            .collect();
        assert_eq!(untraced, vec![101, 102], "zombies are not work");
        let kids = TargetSpec {
            children: true,
            ..just.clone()
        };
        assert_eq!(
            kids.resolve(&procs, &none),
            BTreeSet::from([100, 101, 102, 103])
        );
        let by_name = TargetSpec {
            comm: Some("postgres".into()),
            ..Default::default()
        };
        assert_eq!(
            by_name.resolve(&procs, &none),
            BTreeSet::from([100, 101, 102, 200])
        );
        let cg = TargetSpec {
            cgroup: Some("system.slice/pg.service".into()),
            ..Default::default()
        };
        assert_eq!(
            cg.resolve(&procs, &BTreeSet::from([300, 999])),
            BTreeSet::from([300]),
            "a member that exited is dropped"
        );
        assert_eq!(
            cg.describe(),
            "cgroup /sys/fs/cgroup/system.slice/pg.service"
        );
        assert_eq!(kids.describe(), "pid 100, with descendants");
    }
}
