//! `hwprof serve` as a child process of another command (soak, scale): its
//! own process, so its RSS and CPU are the server's alone.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::error::usage;

/// `hwprof serve` as a child of hwprof's: its own process group (a terminal's
/// Ctrl-C reaches hwprof, which stops it after writing), killed with hwprof
/// if hwprof dies (PR_SET_PDEATHSIG), listening on a loopback port of its choosing.
pub struct ServeChild {
    child: Child,
    /// http://127.0.0.1:PORT.
    pub url: String,
    pub pid: u32,
    /// Its startup line (what it holds, how long the preload took).
    pub banner: String,
}

impl ServeChild {
    /// Start it with `args` after `serve --addr 127.0.0.1:0`; returns once it listens.
    pub fn start(args: &[String]) -> anyhow::Result<ServeChild> {
        use std::os::unix::process::CommandExt;
        let exe = std::env::current_exe()
            .map_err(|e| anyhow::anyhow!("cannot find hwprof's own executable: {e}"))?;
        let mut cmd = Command::new(exe);
        cmd.arg("serve")
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // Linux only: elsewhere the child outlives a killed hwprof (Drop and
        // stop() still end it on every other path).
        #[cfg(target_os = "linux")]
        // SAFETY: prctl is async-signal-safe; it only sets this child's death signal.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start hwprof serve: {e}"))?;
        let pid = child.id();
        let stdout = child.stdout.take().expect("stdout was piped");
        let stderr = child.stderr.take().expect("stderr was piped");
        let mut line = String::new();
        let mut reader = std::io::BufReader::new(stdout);
        let read = reader.read_line(&mut line);
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .map(str::to_string);
        match (read, url) {
            (Ok(n), Some(url)) if n > 0 => {
                // Keep draining its stdout so it never blocks on a full pipe;
                // its stderr (notes, its shutdown line) reaches ours.
                std::thread::spawn(move || {
                    let mut sink = String::new();
                    while reader.read_line(&mut sink).is_ok_and(|n| n > 0) {
                        sink.clear();
                    }
                });
                std::thread::spawn(move || {
                    for l in std::io::BufReader::new(stderr)
                        .lines()
                        .map_while(Result::ok)
                    {
                        eprintln!("{l}");
                    }
                });
                Ok(ServeChild {
                    child,
                    url,
                    pid,
                    banner: line.trim().to_string(),
                })
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                let said = std::io::BufReader::new(stderr)
                    .lines()
                    .map_while(Result::ok)
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or_else(|| "it said nothing".into());
                Err(usage(format!(
                    "--serve-args {:?}: hwprof serve did not start: {}",
                    args.join(" "),
                    said.trim()
                )))
            }
        }
    }

    /// SIGTERM, then wait (SIGKILL after 10 s).
    pub fn stop(mut self) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe {
            libc::kill(self.pid as i32, libc::SIGTERM);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServeChild {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
