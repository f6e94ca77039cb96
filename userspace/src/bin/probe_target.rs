//! A small target for `hwprof attach` tests and the overhead benchmark.
//!
//!   hwprof-probe-target mutex THREADS SECONDS   threads contend on one static Mutex;
//!                                        prints `ops_per_sec N` at the end
//!   hwprof-probe-target spin SECONDS            burns CPU in `probe_target_hot_function`
//!   hwprof-probe-target sleep SECONDS           sleeps (an idle target)
//!
//! It prints `ready PID` once its threads run, so a test can attach then.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The contended lock: its futex word lives inside this static.
pub static CONTENDED_LOCK: Mutex<u64> = Mutex::new(0);

#[no_mangle]
#[inline(never)]
pub extern "C" fn probe_target_hot_function(n: u64) -> u64 {
    let mut x = n;
    for i in 0..1_000_000u64 {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
    }
    x
}

#[no_mangle]
#[inline(never)]
pub extern "C" fn probe_target_critical_section() -> u64 {
    let mut g = CONTENDED_LOCK.lock().unwrap();
    *g += 1;
    // Hold the lock a little so others must wait in the kernel.
    for _ in 0..200 {
        std::hint::spin_loop();
    }
    *g
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("mutex");
    let num = |i: usize, d: f64| args.get(i).and_then(|s| s.parse::<f64>().ok()).unwrap_or(d);
    match mode {
        "mutex" => {
            let threads = num(2, 4.0) as usize;
            let secs = num(3, 5.0);
            let stop = AtomicBool::new(false);
            let ops = AtomicU64::new(0);
            let start = Instant::now();
            std::thread::scope(|s| {
                for i in 0..threads {
                    // Named like a server's workers, for attach's name groups.
                    std::thread::Builder::new()
                        .name(format!("mutex-worker-{i}"))
                        .spawn_scoped(s, || {
                            let mut n = 0u64;
                            while !stop.load(Ordering::Relaxed) {
                                probe_target_critical_section();
                                n += 1;
                            }
                            ops.fetch_add(n, Ordering::Relaxed);
                        })
                        .expect("spawning a worker");
                }
                println!("ready {}", std::process::id());
                while start.elapsed() < Duration::from_secs_f64(secs) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                stop.store(true, Ordering::Relaxed);
            });
            println!(
                "ops_per_sec {:.0}",
                ops.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
            );
        }
        "spin" => {
            let secs = num(2, 5.0);
            let start = Instant::now();
            println!("ready {}", std::process::id());
            let mut x = 0;
            while start.elapsed() < Duration::from_secs_f64(secs) {
                x = probe_target_hot_function(x);
            }
            println!("done {x}");
        }
        _ => {
            println!("ready {}", std::process::id());
            std::thread::sleep(Duration::from_secs_f64(num(2, 5.0)));
        }
    }
}
