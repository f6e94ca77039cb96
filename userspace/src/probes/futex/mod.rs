//! `futex`: user-space lock contention (what `perf lock contention`, which sees
//! kernel locks only, cannot): wait time per (process, futex word) from
//! sys_enter_futex / sys_exit_futex for the waiting operations, wake counts and
//! waiters; top addresses resolved to a static's symbol or named by mapping.

use serde::Serialize;

use super::hist::Log2Hist;
use crate::symbols::Resolved;

pub const PROGRAMS: &[(&str, &str, &str)] = &[
    ("hwp_futex_enter", "syscalls", "sys_enter_futex"),
    ("hwp_futex_exit", "syscalls", "sys_exit_futex"),
];

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AddressReport {
    pub tgid: u32,
    pub uaddr: String,
    pub resolved: Option<Resolved>,
    pub waits: u64,
    pub wait_ns: u64,
    pub mean_wait_ns: u64,
    pub max_wait_ns: u64,
    pub wakes: u64,
    pub woken: u64,
    /// Distinct waiting threads seen (counted modulo 64: a lower bound above 64).
    pub waiting_threads: u32,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub total_waits: u64,
    pub total_wait_ns: u64,
    pub total_wakes: u64,
    /// Most waited-on futex words first.
    pub top: Vec<AddressReport>,
    pub wait_time: Log2Hist,
}
