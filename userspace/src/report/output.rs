//! Writing report files: atomically (temporary file + rename), and under sudo
//! owned by the invoking user (SUDO_UID/SUDO_GID) rather than root.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::usage;

/// The user that should own what hwprof writes: SUDO_UID/SUDO_GID when running
/// under sudo as root, else None (files keep the process's owner).
pub fn invoking_owner() -> Option<(u32, u32)> {
    #[cfg(unix)]
    {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return None;
        }
        let uid = std::env::var("SUDO_UID").ok()?.parse().ok()?;
        let gid = std::env::var("SUDO_GID").ok()?.parse().ok()?;
        Some((uid, gid))
    }
    #[cfg(not(unix))]
    None
}

/// Under sudo, give a file hwprof wrote to the invoking user (SUDO_UID/SUDO_GID);
/// otherwise nothing. For files written in place (plots) rather than by
/// [`write_atomic`], which does this itself.
pub fn chown(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    if let Some((uid, gid)) = invoking_owner() {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
    }
    let _ = path;
    Ok(())
}

/// Create `dir` (and parents) if needed, hand new directories to the invoking
/// user, and check it is writable. Failures are bad input (exit 2).
pub fn prepare_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if d.as_os_str().is_empty() || d.exists() {
            break;
        }
        missing.push(d.to_path_buf());
        cur = d.parent();
    }
    if dir.exists() && !dir.is_dir() {
        return Err(usage(format!(
            "--out {}: exists and is not a directory",
            dir.display()
        )));
    }
    fs::create_dir_all(dir).map_err(|e| {
        usage(format!(
            "--out {}: cannot create directory: {e}",
            dir.display()
        ))
    })?;
    for d in missing.iter().rev() {
        let _ = chown(d);
    }
    let probe = dir.join(format!(".hwprof-write-test-{}", std::process::id()));
    fs::write(&probe, b"")
        .map_err(|e| usage(format!("--out {}: not writable: {e}", dir.display())))?;
    let _ = fs::remove_file(&probe);
    Ok(dir.to_path_buf())
}

/// Write `contents` to `path` atomically and give it to the invoking user.
pub fn write_atomic(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        chown(&tmp)?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(anyhow::anyhow!("writing {}: {e}", path.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("report.json");
        write_atomic(&p, b"first").unwrap();
        write_atomic(&p, b"second").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"second");
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp."))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn unwritable_out_is_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        fs::write(&file, b"x").unwrap();
        let err = prepare_dir(&file).unwrap_err();
        assert!(crate::error::is_usage(&err));
        let err = prepare_dir(&file.join("sub")).unwrap_err();
        assert!(crate::error::is_usage(&err));
    }
}
