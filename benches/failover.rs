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
//!
//! A second table is the real store: a shared-mode pair over two
//! standalone SeaweedFS S3 gateways onto one store (the machinery of
//! `tests/s3_failover.rs`), whose active gateway process is killed
//! (SIGKILL) or hung (SIGSTOP) again and again under 4 writer threads,
//! with the no-fault baseline measured through the same pair first. It
//! needs `scripts/s3-server` (`eval "$(CKPT_S3_GATEWAYS=2
//! scripts/s3-server start)"`) and is skipped, saying so, without it.

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
    real_store();
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
    let baseline = drive(&store, THREADS, OBJECT, || std::thread::sleep(PHASE));
    let events = store.subscribe();
    let failing = drive(&store, THREADS, OBJECT, || {
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

/// Runs the workload on `threads` threads while `during` runs on this one;
/// returns every operation's latency. Any error is a failure of the bench.
fn drive(
    store: &Arc<FailoverStorage>,
    threads: usize,
    object: usize,
    during: impl FnOnce(),
) -> Vec<Duration> {
    let stop = AtomicBool::new(false);
    let latencies = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for t in 0..threads {
            let (store, stop, latencies) = (store.clone(), &stop, &latencies);
            scope.spawn(move || {
                let data = vec![t as u8; object];
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

#[path = "../tests/common/gateway.rs"]
#[allow(dead_code)] // the bench uses part of the tests' gateway helper
mod gateway;

/// Writer threads against the real store.
const REAL_THREADS: usize = 4;
/// Bytes a real-store put moves.
const REAL_OBJECT: usize = 64 << 10;
/// The no-fault phase of each real-store setup.
const REAL_BASELINE: Duration = Duration::from_secs(3);
/// How long a new gateway may take to accept a put.
const GATEWAY_START: Duration = Duration::from_secs(30);

/// What is done to the active gateway's process.
#[derive(Clone, Copy)]
enum Blow {
    /// SIGKILL: connections are refused at once.
    Kill,
    /// SIGSTOP: connections are accepted and never answered.
    Hang,
}

/// The real-store table: `p50/p99/max` in ms of every operation with no
/// fault (baseline), of every operation while gateways fail, and of the
/// pause of each operation a failover held up.
fn real_store() {
    let missing: Vec<&str> = ["CKPT_S3_ENDPOINT", "CKPT_S3_FILER", "CKPT_S3_WEED"]
        .into_iter()
        .filter(|v| std::env::var_os(v).is_none())
        .collect();
    if !missing.is_empty() {
        println!(
            "\nreal store (S3 gateways): skipped, {missing:?} unset; \
             run `eval \"$(CKPT_S3_GATEWAYS=2 scripts/s3-server start)\"` first"
        );
        return;
    }
    println!(
        "\nreal store: shared pair over two `weed s3` gateways onto one SeaweedFS store; \
         {REAL_THREADS} threads, put {} KiB + get + delete; ms\n",
        REAL_OBJECT >> 10
    );
    println!(
        "{:<26} {:>6} {:>6} {:>6} | {:>6} {:>6} {:>6} | {:>5} {:>6} {:>7} {:>7} {:>7} | {:>6}",
        "setup",
        "base50",
        "base99",
        "basemx",
        "op50",
        "op99",
        "opmax",
        "fails",
        "paused",
        "pause50",
        "pause99",
        "pausemx",
        "relocx"
    );
    real_run(
        "kill x10, deadline 10s",
        Blow::Kill,
        10,
        Duration::from_secs(10),
    );
    real_run(
        "hang x5, deadline 1s",
        Blow::Hang,
        5,
        Duration::from_secs(1),
    );
    real_run(
        "hang x5, deadline 2s",
        Blow::Hang,
        5,
        Duration::from_secs(2),
    );
}

/// The server's builder under `prefix`.
fn s3_builder(prefix: &str) -> ckpt::storage::ObjectStorageBuilder {
    let builder = ckpt::storage::ObjectStorageBuilder::from_env()
        .allow_http(true)
        .prefix(prefix);
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        return builder.credentials("ckpt-test", "ckpt-test-secret");
    }
    builder
}

/// A gateway of the bench's own and the pair's path through it.
struct Path {
    gateway: gateway::Gateway,
    storage: Arc<ckpt::ObjectStorage>,
}

/// Starts a gateway and waits until a put through it succeeds.
fn start_path(prefix: &str) -> Path {
    let gateway = gateway::Gateway::start().expect("the server's variables are set");
    let storage = s3_builder(prefix)
        .endpoint(&gateway.endpoint)
        .retries(1, Duration::from_millis(500))
        .build()
        .expect("an S3 client");
    let started = Instant::now();
    while storage.put("probe", b"up").is_err() {
        assert!(
            started.elapsed() < GATEWAY_START,
            "gateway {} did not accept a put within {GATEWAY_START:?}",
            gateway.endpoint
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    storage.delete("probe").expect("delete the probe");
    Path {
        gateway,
        storage: Arc::new(storage),
    }
}

fn real_run(name: &str, blow: Blow, count: u64, deadline: Duration) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let prefix = format!("ckpt-bench/failover-{}-{nanos}", std::process::id());
    let mut paths = std::collections::BTreeMap::new();
    let mut started_paths = 0;
    let mut new_path = |paths: &mut std::collections::BTreeMap<String, Path>| {
        let path = start_path(&prefix);
        let name = format!("gw-{started_paths}");
        started_paths += 1;
        let storage = Arc::clone(&path.storage);
        paths.insert(name.clone(), path);
        (name, storage)
    };
    let (a, a_storage) = new_path(&mut paths);
    let (b, b_storage) = new_path(&mut paths);
    let store = Arc::new(
        FailoverStorage::builder(FailoverMode::Shared)
            .active(&a, a_storage)
            .standby(&b, b_storage)
            .deadline(Some(deadline))
            .admit_wait(Duration::from_secs(20))
            .build()
            .expect("build the pair"),
    );
    let baseline = drive(&store, REAL_THREADS, REAL_OBJECT, || {
        std::thread::sleep(REAL_BASELINE)
    });
    let events = store.subscribe();
    let failing = drive(&store, REAL_THREADS, REAL_OBJECT, || {
        for n in 1..=count {
            std::thread::sleep(Duration::from_millis(300));
            let victim = store.stats().active.expect("the pair is up");
            let path = paths.get_mut(&victim).expect("the active is ours");
            match blow {
                Blow::Kill => path.gateway.kill(),
                Blow::Hang => path.gateway.pause(),
            }
            let until = Instant::now() + deadline * 5 + Duration::from_secs(5);
            while store.stats().failovers < n {
                if Instant::now() > until {
                    if let Blow::Hang = blow {
                        path.gateway.resume();
                    }
                    panic!("no failover from {victim}: {:?}", store.stats());
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            match blow {
                Blow::Kill => {
                    paths.remove(&victim);
                    let (fresh, storage) = new_path(&mut paths);
                    store
                        .readmit(&fresh, storage)
                        .expect("readmit a fresh gateway");
                }
                Blow::Hang => {
                    std::thread::sleep(Duration::from_secs(1));
                    path.gateway.resume();
                    let storage = Arc::clone(&path.storage);
                    store
                        .readmit(&victim, storage)
                        .expect("readmit the resumed gateway");
                }
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    });
    let (mut pauses, mut relocations) = (Vec::new(), Vec::new());
    for event in events.try_iter() {
        match event {
            FailoverEvent::Paused { paused, .. } => pauses.push(paused),
            FailoverEvent::FailedOver { relocation, .. } => relocations.push(relocation),
            _ => {}
        }
    }
    println!(
        "{:<26} {:>6.1} {:>6.1} {:>6.1} | {:>6.1} {:>6.1} {:>6.1} | {:>5} {:>6} {:>7.1} {:>7.1} {:>7.1} | {:>6.1}",
        name,
        pct(&baseline, 0.50),
        pct(&baseline, 0.99),
        pct(&baseline, 1.0),
        pct(&failing, 0.50),
        pct(&failing, 0.99),
        pct(&failing, 1.0),
        relocations.len(),
        pauses.len(),
        pct(&pauses, 0.50),
        pct(&pauses, 0.99),
        pct(&pauses, 1.0),
        pct(&relocations, 1.0),
    );
    let direct = s3_builder(&prefix).build().expect("an S3 client");
    if let Ok(keys) = direct.list("") {
        let _ = direct.delete_many(&keys);
    }
}
