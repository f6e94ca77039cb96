//! Error kinds that decide the exit status.
//!
//! Bad input (a malformed `--cpus`, an unknown pair class, an unwritable `--out`, …)
//! is a [`UsageError`]: one line on stderr, exit status 2. Anything else is a
//! failure of the run itself (exit status 1).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Build an `anyhow::Error` that the binary reports with exit status 2.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}

/// True when `err` (or anything it wraps) is bad input.
pub fn is_usage(err: &anyhow::Error) -> bool {
    err.chain()
        .any(|e| e.downcast_ref::<UsageError>().is_some())
}
