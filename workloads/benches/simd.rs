//! `cargo bench -p hwprof-workloads --bench simd`: ns per 768-d dot product and
//! cosine for every kernel this CPU runs (median of 21 batches of 20,000 calls).

use std::hint::black_box;
use std::time::Instant;

use hwprof_workloads::simd::Kernel;

fn main() {
    let n = 768;
    let a: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let b: Vec<f32> = (0..n)
        .map(|i| ((i * 104729) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let (chosen, why) = Kernel::dispatch();
    println!("dispatch: {} ({why})", chosen.name());
    for k in Kernel::available_kernels() {
        for (op, f) in [
            ("dot", Kernel::dot as fn(Kernel, &[f32], &[f32]) -> f32),
            ("cosine", Kernel::cosine),
        ] {
            let mut per_call: Vec<f64> = (0..21)
                .map(|_| {
                    let calls = 20_000;
                    let t = Instant::now();
                    for _ in 0..calls {
                        black_box(f(k, black_box(&a), black_box(&b)));
                    }
                    t.elapsed().as_nanos() as f64 / calls as f64
                })
                .collect();
            per_call.sort_by(|x, y| x.total_cmp(y));
            println!(
                "{:<9} {:<6} median {:>7.1} ns/call  (min {:.1}, max {:.1}) [timer]",
                k.name(),
                op,
                per_call[10],
                per_call[0],
                per_call[20]
            );
        }
    }
}
