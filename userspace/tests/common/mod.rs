//! Helpers shared by the end-to-end test binaries: the built `hwprof`, its
//! output, the topology fixtures shipped in tests/data, reference tools.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Experiments pin workers to this machine's CPUs: two at once would steal each
/// other's cores and blur the effect being measured, so they take turns.
static MACHINE: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    MACHINE.lock().unwrap_or_else(|e| e.into_inner())
}

/// The binary under test; `HWPROF_BIN` runs the same tests against another
/// build (e.g. an older one, to see a test fail before its fix).
pub fn hwprof() -> Command {
    Command::new(
        std::env::var_os("HWPROF_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_hwprof").into()),
    )
}

pub fn run(args: &[&str]) -> Output {
    hwprof().args(args).output().expect("hwprof runs")
}

pub fn json(args: &[&str]) -> Value {
    let out = run(args);
    assert!(
        out.status.success(),
        "hwprof {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("exactly one JSON document on stdout")
}

pub fn topologies() -> PathBuf {
    std::env::var_os("HWPROF_TOPOLOGIES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/topologies"))
}

pub fn tool_output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

/// A `hwprof serve` on a free loopback port, stopped (SIGINT) on drop.
pub struct Server {
    pub child: Child,
    pub url: String,
}

impl Server {
    pub fn start(args: &[&str]) -> Server {
        let mut child = hwprof()
            .args(["serve", "--port", "0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("hwprof serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        Server { child, url }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
    }
}

/// Every row must be refused as bad input: exit 2, one line on stderr holding
/// each expected fragment, no panic. Collects every failure before asserting.
pub fn assert_bad_input(rows: &[(Vec<&str>, &[&str])]) {
    let mut failures = Vec::new();
    for (args, wants) in rows {
        let o = run(args);
        let stderr = String::from_utf8_lossy(&o.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        let ok = o.status.code() == Some(2)
            && lines.len() == 1
            && wants.iter().all(|w| lines[0].contains(w))
            && !stderr.contains("panicked");
        if !ok {
            failures.push(format!("{args:?}: exit {:?}: {stderr}", o.status.code()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// GET http://ADDR/metrics until the body contains `needle` (bounded: 30 s).
pub fn scrape_until(addr: &str, needle: &str) -> String {
    use std::io::{Read, Write};
    let t0 = Instant::now();
    loop {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "{addr} never served {needle}"
        );
        if let Ok(mut c) = std::net::TcpStream::connect(addr) {
            write!(
                c,
                "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            let mut out = String::new();
            let _ = c.read_to_string(&mut out);
            if out.contains(needle) {
                return out;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A PostgreSQL server of our own: initdb into the test's directory, listening
/// on a free loopback port, stopped (SIGINT, fast shutdown) on drop. As root
/// it runs as the `postgres` user (PostgreSQL refuses root).
pub struct Postgres {
    pub child: Child,
    pub url: String,
    pub port: u16,
    /// Where its Unix socket lives (pgbench connects there or over TCP).
    pub socket_dir: PathBuf,
}

pub fn pg_bin(name: &str) -> PathBuf {
    let on_path = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty());
    if let Some(p) = on_path {
        return PathBuf::from(p);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|r| {
            r.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin").join(name))
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!("PostgreSQL's {name} is not installed: scripts/install.sh --test installs Debian's postgresql")
    })
}

impl Postgres {
    pub fn start(dir: &Path) -> Postgres {
        let root = unsafe { libc::geteuid() } == 0;
        let data = dir.join("pgdata");
        let sock = dir.join("pgsock");
        std::fs::create_dir_all(&sock).unwrap();
        // As root: the processes themselves run as postgres (no wrapper
        // between the test and the server, so its signals reach the server).
        let ids = root.then(|| {
            let name = std::ffi::CString::new("postgres").unwrap();
            // SAFETY: getpwnam with a valid C string; the entry is read at once.
            let pw = unsafe { libc::getpwnam(name.as_ptr()) };
            assert!(
                !pw.is_null(),
                "no postgres user: scripts/install.sh --test installs Debian's postgresql"
            );
            unsafe { ((*pw).pw_uid, (*pw).pw_gid) }
        });
        let as_user = |bin: PathBuf| -> Command {
            use std::os::unix::process::CommandExt;
            let mut c = Command::new(bin);
            if let Some((uid, gid)) = ids {
                c.uid(uid).gid(gid);
            }
            c
        };
        if root {
            // The postgres user needs to reach and own its directories.
            let _ = Command::new("chmod").args(["755"]).arg(dir).status();
            std::fs::create_dir_all(&data).unwrap();
            let s = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&sock)
                .arg(&data)
                .status()
                .unwrap();
            assert!(s.success());
        }
        let o = as_user(pg_bin("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "hwprof", "--no-sync"])
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = as_user(pg_bin("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-k"])
            .arg(&sock)
            .args(["-c", "fsync=off"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut pg = Postgres {
            child,
            url: format!("postgres://hwprof@127.0.0.1:{port}/postgres"),
            port,
            socket_dir: sock.clone(),
        };
        // Ready when it accepts TCP and answers: bounded wait.
        let t0 = Instant::now();
        loop {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "PostgreSQL did not start"
            );
            if let Ok(Some(s)) = pg.child.try_wait() {
                panic!("PostgreSQL exited: {s}");
            }
            // Accepting and answering queries: `history show` on the empty
            // database refuses with exit 2 ("no rows") only once it answers.
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && run(&["history", "show", "--history", &pg.url])
                    .status
                    .code()
                    == Some(2)
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        pg
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGINT: fast shutdown.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
