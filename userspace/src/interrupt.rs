//! SIGINT/SIGTERM. During a measurement the first signal ends the current
//! window and the run writes what it has (marked interrupted, exit 130); a
//! second exits at once. While hwprof is still discovering the machine there is
//! nothing to write, so a signal then exits at once (130): a slow hwloc load or
//! capability probe never makes Ctrl-C wait.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Nesting depth of [`Discovering`] guards; > 0 means "exit on a signal".
static DISCOVERING: AtomicUsize = AtomicUsize::new(0);

/// Install the handlers; returns the flag the run polls.
pub fn install() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    #[cfg(unix)]
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let f = Arc::clone(&flag);
        // SAFETY: the handler only touches atomics and calls _exit, both
        // async-signal-safe.
        let _ = unsafe {
            signal_hook::low_level::register(sig, move || {
                if DISCOVERING.load(Ordering::SeqCst) > 0 || f.swap(true, Ordering::SeqCst) {
                    libc::_exit(130);
                }
            })
        };
    }
    flag
}

/// While alive, a SIGINT/SIGTERM ends the process at once with status 130.
pub struct Discovering(());

impl Discovering {
    pub fn begin() -> Self {
        DISCOVERING.fetch_add(1, Ordering::SeqCst);
        Self(())
    }
}

impl Drop for Discovering {
    fn drop(&mut self) {
        DISCOVERING.fetch_sub(1, Ordering::SeqCst);
    }
}
