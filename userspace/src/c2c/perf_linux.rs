//! Address sampling through perf: Intel PEBS load-latency + precise stores, AMD
//! IBS op (system-wide, filtered to the target); Arm SPE in `spe_linux`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use perf_event::{Builder, SampleFlag, SampleSkid};

use super::sample::{DataSource, MemSample};
use crate::capabilities::Capabilities;
use crate::measure::counters::PmuEvent;

const DEVICES: &str = "/sys/bus/event_source/devices";
/// The SPE PMU as Linux names it.
pub const SPE_PMU: &str = "arm_spe_0";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    IntelPebs,
    AmdIbs { pmu_type: u32 },
    ArmSpe { pmu_type: u32 },
}

impl Mechanism {
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::IntelPebs => "Intel PEBS (mem-loads ldlat=30, precise stores)",
            Mechanism::AmdIbs { .. } => "AMD IBS op",
            Mechanism::ArmSpe { .. } => "Arm SPE (AUX buffer, per thread)",
        }
    }
}

/// Which address-sampling facility this machine offers, or why none.
pub fn detect(caps: &Capabilities, virt: Option<&str>) -> Result<Mechanism, String> {
    let dev = |p: &str| std::path::Path::new(DEVICES).join(p);
    let none = |why: String| {
        format!(
            "address sampling needs PEBS/IBS/SPE; not available: {why}; run on bare metal or in a \
             VM with a virtual PMU (KVM: -cpu host,pmu=on), or analyse a recording made elsewhere \
             with --replay FILE"
        )
    };
    if !caps.pmu_hardware {
        return Err(none(match virt {
            Some(hv) => format!("{hv} guest without a PMU"),
            None => "no hardware PMU is usable here".into(),
        }));
    }
    if dev("cpu/format/ldlat").exists() {
        return Ok(Mechanism::IntelPebs);
    }
    if let Ok(t) = std::fs::read_to_string(dev("ibs_op/type")) {
        if let Ok(pmu_type) = t.trim().parse() {
            return Ok(Mechanism::AmdIbs { pmu_type });
        }
    }
    if std::fs::read_dir(DEVICES)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .any(|e| e.file_name().to_string_lossy().starts_with("arm_spe"))
        })
        .unwrap_or(false)
    {
        return Err(
            "Arm SPE is present, but this hwprof version does not decode SPE AUX records yet"
                .into(),
        );
    }
    Err(none(
        "this CPU's PMU has no load-latency (PEBS), IBS or SPE facility".into(),
    ))
}

fn sample_flags() -> SampleFlag {
    SampleFlag::IP
        | SampleFlag::TID
        | SampleFlag::TIME
        | SampleFlag::ADDR
        | SampleFlag::CPU
        | SampleFlag::DATA_SRC
        | SampleFlag::WEIGHT
}

/// Record samples of `pid` on `cpus` for `duration` (or until interrupted, or the
/// target exits). Returns the samples and the count of records the kernel lost.
pub fn record(
    mech: Mechanism,
    pid: u32,
    cpus: &[usize],
    duration: Duration,
    interrupted: &AtomicBool,
    on_tick: &mut dyn FnMut(),
) -> std::io::Result<(Vec<MemSample>, u64)> {
    if let Mechanism::ArmSpe { pmu_type } = mech {
        return super::spe_linux::record(SPE_PMU, pmu_type, pid, duration, interrupted, on_tick);
    }
    let mut samplers = Vec::new();
    for &cpu in cpus {
        let events: Vec<(PmuEvent, bool)> = match mech {
            // MEM_TRANS_RETIRED.LOAD_LATENCY (0x1cd) with ldlat=30 in config1, and
            // MEM_INST_RETIRED.ALL_STORES (0x82d0), both precise.
            Mechanism::IntelPebs => vec![
                (
                    PmuEvent {
                        type_: perf_event_open_sys::bindings::PERF_TYPE_RAW,
                        config: 0x1cd,
                        config1: 30,
                    },
                    true,
                ),
                (
                    PmuEvent {
                        type_: perf_event_open_sys::bindings::PERF_TYPE_RAW,
                        config: 0x82d0,
                        config1: 0,
                    },
                    true,
                ),
            ],
            Mechanism::AmdIbs { pmu_type } => vec![(
                PmuEvent {
                    type_: pmu_type,
                    config: 0,
                    config1: 0,
                },
                false,
            )],
            Mechanism::ArmSpe { .. } => unreachable!("SPE is recorded by spe_linux"),
        };
        for (ev, per_task) in events {
            let mut b = Builder::new(ev);
            b.sample(sample_flags())
                .sample_period(if per_task { 4000 } else { 0x10000 })
                .precise_ip(SampleSkid::RequestZero)
                .one_cpu(cpu)
                .exclude_kernel(true);
            if per_task {
                b.observe_pid(pid as i32).inherit(true);
            } else {
                // IBS is system-wide only; samples are filtered by pid below.
                b.any_pid();
            }
            let mut s = b.build()?.sampled(1 << 18)?;
            s.enable()?;
            samplers.push(s);
        }
    }
    let start = Instant::now();
    let mut out = Vec::new();
    let mut lost = 0u64;
    let alive = || std::path::Path::new(&format!("/proc/{pid}")).exists();
    loop {
        let done = start.elapsed() >= duration || interrupted.load(Ordering::Relaxed) || !alive();
        for s in &mut samplers {
            if done {
                let _ = s.disable();
            }
            while let Some(rec) = s.next_record() {
                let Ok(parsed) = rec.parse_record() else {
                    continue;
                };
                match parsed {
                    perf_event::data::Record::Sample(smp) => {
                        let (Some(addr), Some(tid), Some(ds)) =
                            (smp.addr(), smp.tid(), smp.data_src())
                        else {
                            continue;
                        };
                        if smp.pid() != Some(pid) {
                            continue;
                        }
                        let bits = ds.mem_op().bits()
                            | (ds.mem_lvl().bits() << 5)
                            | (ds.mem_snoop().bits() << 19)
                            | (u64::from(ds.mem_remote()) << 37);
                        let d = DataSource::decode(bits);
                        let Some(op) = d.op else { continue };
                        out.push(MemSample {
                            pid,
                            tid,
                            cpu: smp.cpu(),
                            ip: smp.ip().unwrap_or(0),
                            addr,
                            op,
                            size: 8,
                            hitm: d.hitm,
                            remote: d.remote,
                            level: d.level,
                            weight: smp.weight().unwrap_or(0),
                        });
                    }
                    perf_event::data::Record::Lost(l) => lost += l.lost,
                    perf_event::data::Record::LostSamples(l) => lost += l.lost,
                    _ => {}
                }
            }
        }
        if done {
            break;
        }
        on_tick();
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok((out, lost))
}
