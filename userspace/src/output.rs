//! The one path by which hwprof writes files: reports, summaries, plots (SVG and
//! PNG), flame graphs, folded stacks, suite pages, machine profiles, histogram logs.
//!
//! Each file is written as a new temporary file in the target directory (opened
//! `O_CREAT|O_EXCL|O_NOFOLLOW` through a descriptor of that directory, so no
//! planted symlink is followed), fsynced, handed to the invoking user through its
//! own descriptor (never by path), then renamed over the target (a symlink planted
//! at the target is replaced, not followed). Under sudo a directory is written only
//! if the invoking user could write into it themselves, so `sudo hwprof` cannot be
//! used to put files where its user may not. Every error is returned (no partial
//! file is left behind): a full disk fails the run with one line.

use std::ffi::CString;
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

/// Create `dir` (and parents) if needed, hand new directories to the invoking
/// user, and check it is writable (by the invoking user, under sudo). Failures
/// are bad input (exit 2) naming `flag`, the option that named the directory.
pub fn prepare_dir(flag: &str, dir: &Path) -> anyhow::Result<PathBuf> {
    let shown = dir.display();
    if let Ok(m) = fs::metadata(dir) {
        if !m.is_dir() {
            return Err(usage(format!(
                "{flag} {shown}: exists and is not a directory"
            )));
        }
    }
    // Create missing components one at a time, so each new one can be checked and
    // handed to the invoking user (create_dir never follows a symlink it creates).
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if d.as_os_str().is_empty() || fs::symlink_metadata(d).is_ok() {
            break;
        }
        missing.push(d.to_path_buf());
        cur = d.parent();
    }
    if let Some(first_existing) = missing.last().and_then(|d| d.parent()) {
        let base = if first_existing.as_os_str().is_empty() {
            Path::new(".")
        } else {
            first_existing
        };
        if let Ok(m) = fs::metadata(base) {
            if !m.is_dir() {
                return Err(usage(format!(
                    "{flag} {shown}: {} is not a directory",
                    base.display()
                )));
            }
        }
        may_write(base).map_err(|e| usage(format!("{flag} {shown}: {e}")))?;
    }
    for d in missing.iter().rev() {
        match fs::create_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(usage(format!(
                    "{flag} {shown}: cannot create directory: {}",
                    io_reason(&e)
                )))
            }
        }
        #[cfg(unix)]
        if let Some((uid, gid)) = invoking_owner() {
            let _ = std::os::unix::fs::lchown(d, Some(uid), Some(gid));
        }
    }
    if !dir.is_dir() {
        return Err(usage(format!(
            "{flag} {shown}: exists and is not a directory"
        )));
    }
    may_write(dir).map_err(|e| usage(format!("{flag} {shown}: {e}")))?;
    // A real write, through the same path every file takes.
    let probe = dir.join(format!(".hwprof-write-test-{}", std::process::id()));
    write_atomic(&probe, b"")
        .map_err(|e| usage(format!("{flag} {shown}: not writable: {}", e.root_cause())))?;
    let _ = fs::remove_file(&probe);
    Ok(dir.to_path_buf())
}

fn io_reason(e: &std::io::Error) -> String {
    // "Permission denied (os error 13)" → "Permission denied".
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Under sudo: may the invoking user write into `dir` themselves? Checked on the
/// directory's owner and mode (root's own access check would always say yes).
fn may_write(dir: &Path) -> Result<(), String> {
    #[cfg(unix)]
    if let Some((uid, gid)) = invoking_owner() {
        use std::os::unix::fs::MetadataExt;
        let m = fs::metadata(dir).map_err(|e| io_reason(&e))?;
        if !invoker_may_write(m.uid(), m.gid(), m.mode(), uid, gid) {
            return Err(format!(
                "the invoking user (uid {uid}) may not write into {} (owner uid {}, mode {:o}); \
                 under sudo hwprof writes only where its user could",
                dir.display(),
                m.uid(),
                m.mode() & 0o7777
            ));
        }
    }
    let _ = dir;
    Ok(())
}

/// Whether a user (uid, gid) may create files in a directory with this owner and
/// mode, by the permission bits (supplementary groups are not consulted).
fn invoker_may_write(dir_uid: u32, dir_gid: u32, mode: u32, uid: u32, gid: u32) -> bool {
    if uid == 0 {
        return true;
    }
    if dir_uid == uid {
        return mode & 0o300 == 0o300;
    }
    if dir_gid == gid {
        return mode & 0o030 == 0o030;
    }
    mode & 0o003 == 0o003
}

/// A file could not be written (full disk, permissions, …). Unlike a plot that
/// cannot be drawn from degenerate data, this always fails the run.
#[derive(Debug)]
pub struct WriteError {
    pub path: PathBuf,
    pub reason: String,
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "writing {}: {}", self.path.display(), self.reason)
    }
}

impl std::error::Error for WriteError {}

/// True when `e` is (or wraps) a [`WriteError`].
pub fn is_write_error(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<WriteError>().is_some())
}

/// A log a child process streams into (a gate's server and load output): it
/// cannot be written whole and renamed, so it is opened without following a
/// symlink (O_NOFOLLOW: a link planted at the path is refused), truncated,
/// and given to the invoking user like every other output.
pub fn open_log(path: &Path) -> anyhow::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            anyhow::Error::new(WriteError {
                path: path.to_path_buf(),
                reason: io_reason(&e),
            })
        })?;
    if let Some((uid, gid)) = invoking_owner() {
        std::os::unix::fs::fchown(&f, Some(uid), Some(gid)).map_err(|e| {
            anyhow::Error::new(WriteError {
                path: path.to_path_buf(),
                reason: io_reason(&e),
            })
        })?;
    }
    Ok(f)
}

/// Write `contents` to `path` atomically and give it to the invoking user.
pub fn write_atomic(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    write_atomic_inner(path, contents).map_err(|reason| {
        anyhow::Error::new(WriteError {
            path: path.to_path_buf(),
            reason,
        })
    })
}

#[cfg(unix)]
fn write_atomic_inner(path: &Path, contents: &[u8]) -> Result<(), String> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;

    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| "no file name".to_string())?;
    let cstr = |b: &[u8]| CString::new(b).map_err(|_| "a NUL byte in the path".to_string());
    let dir_c = cstr(dir.as_os_str().as_bytes())?;
    let name_c = cstr(name.as_bytes())?;
    // SAFETY: a valid NUL-terminated path; the descriptor is owned below.
    let dfd = unsafe {
        libc::open(
            dir_c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if dfd < 0 {
        return Err(io_reason(&std::io::Error::last_os_error()));
    }
    // SAFETY: dfd was just opened and is owned only here.
    let dfd = unsafe { OwnedFd::from_raw_fd(dfd) };
    let owner = invoking_owner();
    if let Some((uid, gid)) = owner {
        let st = fstat(dfd.as_raw_fd())?;
        if !invoker_may_write(st.st_uid, st.st_gid, u32::from(st.st_mode), uid, gid) {
            return Err(format!(
                "the invoking user (uid {uid}) may not write into {}; under sudo hwprof writes only where its user could",
                dir.display()
            ));
        }
        // In a sticky directory (/tmp) a user may not replace another's file.
        if u32::from(st.st_mode) & u32::from(libc::S_ISVTX) != 0 {
            let mut tst = std::mem::MaybeUninit::<libc::stat>::uninit();
            // SAFETY: valid dirfd and name; tst is written on success only.
            let r = unsafe {
                libc::fstatat(
                    dfd.as_raw_fd(),
                    name_c.as_ptr(),
                    tst.as_mut_ptr(),
                    libc::AT_SYMLINK_NOFOLLOW,
                )
            };
            // SAFETY: fstatat succeeded, so tst is initialised.
            if r == 0 && unsafe { tst.assume_init() }.st_uid != uid {
                return Err(
                    "exists, belongs to another user, and the directory is sticky".to_string(),
                );
            }
        }
    }
    let tmp_name = format!(
        ".{}.{}.{:016x}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        rand::random::<u64>()
    );
    let tmp_c = cstr(tmp_name.as_bytes())?;
    // SAFETY: valid dirfd and NUL-terminated name.
    let fd = unsafe {
        libc::openat(
            dfd.as_raw_fd(),
            tmp_c.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o644 as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(io_reason(&std::io::Error::last_os_error()));
    }
    // SAFETY: fd was just created and is owned only by this File.
    let mut file = unsafe { fs::File::from_raw_fd(fd) };
    let unlink_tmp = || {
        // SAFETY: valid dirfd and name.
        unsafe { libc::unlinkat(dfd.as_raw_fd(), tmp_c.as_ptr(), 0) };
    };
    let result = (|| -> std::io::Result<()> {
        file.write_all(contents)?;
        file.sync_all()?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
        }
        // SAFETY: valid dirfd and names.
        let r = unsafe {
            libc::renameat(
                dfd.as_raw_fd(),
                tmp_c.as_ptr(),
                dfd.as_raw_fd(),
                name_c.as_ptr(),
            )
        };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    })();
    drop(file);
    if let Err(e) = result {
        unlink_tmp();
        return Err(io_reason(&e));
    }
    // The rename is durable once the directory is synced; a failure here loses
    // nothing already written, so it is not an error.
    // SAFETY: valid descriptor.
    unsafe { libc::fsync(dfd.as_raw_fd()) };
    Ok(())
}

#[cfg(unix)]
fn fstat(fd: libc::c_int) -> Result<libc::stat, String> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fd is a valid descriptor; st is written on success.
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
        return Err(io_reason(&std::io::Error::last_os_error()));
    }
    // SAFETY: fstat succeeded.
    Ok(unsafe { st.assume_init() })
}

#[cfg(not(unix))]
fn write_atomic_inner(path: &Path, contents: &[u8]) -> Result<(), String> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().ok_or("no file name")?.to_string_lossy();
    let tmp = dir.join(format!(
        ".{name}.{}.{:016x}.tmp",
        std::process::id(),
        rand::random::<u64>()
    ));
    let r = (|| -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    r.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_reason(&e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leftovers(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    }

    #[test]
    fn atomic_write_replaces_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("report.json");
        write_atomic(&p, b"first").unwrap();
        write_atomic(&p, b"second").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"second");
        assert!(leftovers(dir.path()).is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_at_the_target_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"precious").unwrap();
        let out = dir.path().join("out");
        fs::create_dir(&out).unwrap();
        let planted = out.join("plot.png");
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        write_atomic(&planted, b"new plot").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        let m = fs::symlink_metadata(&planted).unwrap();
        assert!(m.file_type().is_file(), "the link was replaced by a file");
        assert_eq!(fs::read(&planted).unwrap(), b"new plot");
    }

    #[test]
    fn a_directory_at_the_target_is_an_error_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("report.json");
        fs::create_dir(&p).unwrap();
        let err = write_atomic(&p, b"x").unwrap_err().to_string();
        assert!(err.starts_with("writing "), "{err}");
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn permission_bits_decide_what_the_invoker_may_write() {
        // owner with rwx, group with rwx, others with rwx, and none of them.
        assert!(invoker_may_write(1000, 1000, 0o755, 1000, 1000));
        assert!(!invoker_may_write(0, 0, 0o755, 1000, 1000));
        assert!(invoker_may_write(0, 1000, 0o775, 1000, 1000));
        assert!(invoker_may_write(0, 0, 0o1777, 1000, 1000));
        assert!(!invoker_may_write(1000, 1000, 0o555, 1000, 1000));
    }

    #[test]
    fn unwritable_out_is_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        fs::write(&file, b"x").unwrap();
        let err = prepare_dir("--out", &file).unwrap_err();
        assert!(crate::error::is_usage(&err));
        let err = prepare_dir("--save", &file.join("sub")).unwrap_err();
        assert!(crate::error::is_usage(&err));
        assert!(err.to_string().starts_with("--save "), "{err}");
    }
}
