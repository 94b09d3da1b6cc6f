//! The pause callers see while `FailoverStorage` fails over, against the
//! latency of the same operations with no failover, measured in one run.
//!
//! `cargo bench --bench failover` prints one table row per setup:
//!
//! * baseline: op latency (p50/p99) with no failure, through the same pair;
//! * failing: op latency while the active is failed every ~50 ms (then
//!   repaired and readmitted, so it can fail again);
//! * pause: the delay of each operation that a failover or failback held
//!   up (`FailoverEvent::Paused`); reloc: the relocation itself (gate
//!   closed for the health check and promotion); fback: the gate closed
//!   for the final pass of a failback's re-sync.
//!
//! Backends are in-memory stores behind `FaultyStorage` with 200 µs of
//! added latency per call, standing in for a fast network store. Each
//! thread works like a checkpointer: put a new key, read it back, delete
//! the one written 16 puts ago, compute for 2 ms.
//!
//! In mirrored mode the pause is dominated by the failback, not the
//! failover: re-syncing the readmitted backend ends with a pass that
//! closes the gate to copy what was written meanwhile, so its length
//! grows with the write rate.

use ckpt::storage::{FailoverEvent, FailoverMode, FailoverStorage, Fault, FaultyStorage};
use ckpt::{MemStorage, Storage};
use std::io::ErrorKind;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const THREADS: usize = 8;
const OBJECT: usize = 64 << 10;
const LATENCY: Duration = Duration::from_micros(200);
const PHASE: Duration = Duration::from_millis(1500);
const FAIL_EVERY: Duration = Duration::from_millis(50);
/// Work between two writes of one thread.
const COMPUTE: Duration = Duration::from_millis(2);

struct Setup {
    name: &'static str,
    mode: FailoverMode,
    deadline: Option<Duration>,
    fault: Fault,
}

fn main() {
    let setups = [
        Setup {
            name: "mirrored, inline calls, error",
            mode: FailoverMode::Mirrored,
            deadline: None,
            fault: Fault::Error(ErrorKind::ConnectionReset),
        },
        Setup {
            name: "mirrored, deadline 1s, error",
            mode: FailoverMode::Mirrored,
            deadline: Some(Duration::from_secs(1)),
            fault: Fault::Error(ErrorKind::ConnectionReset),
        },
        Setup {
            name: "shared, deadline 1s, error",
            mode: FailoverMode::Shared,
            deadline: Some(Duration::from_secs(1)),
            fault: Fault::Error(ErrorKind::ConnectionReset),
        },
        Setup {
            name: "mirrored, deadline 100ms, hang",
            mode: FailoverMode::Mirrored,
            deadline: Some(Duration::from_millis(100)),
            fault: Fault::Hang,
        },
    ];
    println!(
        "{THREADS} threads, put {} KiB + get + delete, {} µs per backend call; percentiles in ms\n",
        OBJECT >> 10,
        LATENCY.as_micros()
    );
    println!(
        "{:<31} {:>8} {:>8} | {:>8} {:>8} | {:>9} {:>8} {:>8} {:>8} | {:>8} {:>8} | {:>8} {:>8}",
        "setup",
        "base p50",
        "base p99",
        "fail p50",
        "fail p99",
        "failovers",
        "paused",
        "pause50",
        "pause99",
        "reloc50",
        "reloc99",
        "fback50",
        "fback99"
    );
    for setup in &setups {
        run(setup);
    }
}

fn run(setup: &Setup) {
    let shared = MemStorage::new();
    let backend = || {
        let inner = match setup.mode {
            FailoverMode::Shared => shared.clone(),
            FailoverMode::Mirrored => MemStorage::new(),
        };
        let store = Arc::new(FaultyStorage::new(inner));
        store.control().set_latency(LATENCY);
        store
    };
    let backends = [("a", backend()), ("b", backend())];
    let store = Arc::new(
        FailoverStorage::builder(setup.mode)
            .active("a", backends[0].1.clone())
            .standby("b", backends[1].1.clone())
            .deadline(setup.deadline)
            .build()
            .expect("build the pair"),
    );
    let baseline = drive(&store, || std::thread::sleep(PHASE));
    let events = store.subscribe();
    let failing = drive(&store, || {
        let until = Instant::now() + PHASE;
        while Instant::now() < until {
            std::thread::sleep(FAIL_EVERY);
            let active = store.stats().active.expect("an active backend");
            let (name, victim) = backends
                .iter()
                .find(|(n, _)| *n == active)
                .expect("a known backend");
            victim.control().fail_now(setup.fault);
            while store.stats().active.as_deref() == Some(name) {
                std::thread::sleep(Duration::from_micros(100));
            }
            victim.control().repair();
            store.readmit(*name, victim.clone()).expect("readmit");
        }
    });
    let (mut pauses, mut relocations, mut gate_closed) = (Vec::new(), Vec::new(), Vec::new());
    for event in events.try_iter() {
        match event {
            FailoverEvent::Paused { paused, .. } => pauses.push(paused),
            FailoverEvent::FailedOver { relocation, .. } => relocations.push(relocation),
            FailoverEvent::FailedBack { resync, .. } => gate_closed.push(resync.exclusive_pause),
            _ => {}
        }
    }
    println!(
        "{:<31} {:>8.3} {:>8.3} | {:>8.3} {:>8.3} | {:>9} {:>8} {:>8.3} {:>8.3} | {:>8.3} {:>8.3} | {:>8.3} {:>8.3}",
        setup.name,
        pct(&baseline, 0.50),
        pct(&baseline, 0.99),
        pct(&failing, 0.50),
        pct(&failing, 0.99),
        relocations.len(),
        pauses.len(),
        pct(&pauses, 0.50),
        pct(&pauses, 0.99),
        pct(&relocations, 0.50),
        pct(&relocations, 0.99),
        pct(&gate_closed, 0.50),
        pct(&gate_closed, 0.99)
    );
}

/// Runs the workload on `THREADS` threads while `during` runs on this one;
/// returns every operation's latency. Any error is a failure of the bench.
fn drive(store: &Arc<FailoverStorage>, during: impl FnOnce()) -> Vec<Duration> {
    let stop = AtomicBool::new(false);
    let latencies = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let (store, stop, latencies) = (store.clone(), &stop, &latencies);
            scope.spawn(move || {
                let data = vec![t as u8; OBJECT];
                let mut mine = Vec::new();
                // Like a checkpointer: write-once keys, read back, the one
                // from 16 writes ago deleted (16 live objects per thread).
                let mut i = 0u64;
                let key = |i: u64| format!("t{t}/{i:016}");
                while !stop.load(Ordering::Relaxed) {
                    let timed = |op: &dyn Fn() -> ckpt::Result<()>, mine: &mut Vec<Duration>| {
                        let started = Instant::now();
                        op().expect("no error reaches the caller");
                        mine.push(started.elapsed());
                    };
                    timed(&|| store.put(&key(i), &data), &mut mine);
                    timed(&|| store.get(&key(i)).map(drop), &mut mine);
                    if let Some(old) = i.checked_sub(16) {
                        timed(&|| store.delete(&key(old)), &mut mine);
                    }
                    i += 1;
                    std::thread::sleep(COMPUTE);
                }
                latencies.lock().expect("no panic holds it").extend(mine);
            });
        }
        during();
        stop.store(true, Ordering::Relaxed);
    });
    latencies.into_inner().expect("no panic holds it")
}

/// The `q` quantile in milliseconds (NaN for no samples).
fn pct(samples: &[Duration], q: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index].as_secs_f64() * 1e3
}
