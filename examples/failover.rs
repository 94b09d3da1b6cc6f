//! Transparent storage failover, live: four simulations checkpoint to a
//! mirrored pair of directories; halfway through, the active directory is
//! deleted from under them. Nobody sees an error; each caller sees a pause,
//! printed below. Then a fresh directory is taken in as the new standby.
//!
//! Run it with `cargo run --release --example failover`.

use ckpt::storage::{FailoverEvent, FailoverMode, FailoverStorage, PrefixStorage};
use ckpt::{Checkpointer, FsStorage};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

const SIMULATIONS: usize = 4;
const STEPS: u64 = 40;
const PULL_THE_DISK_AT: u64 = 15; // steps done by every simulation

/// A 1-D heat-diffusion rod: 512 KiB of state per simulation.
#[derive(Serialize, Deserialize, Clone, PartialEq)]
struct Rod {
    step: u64,
    temperature: Vec<f64>,
}

impl Rod {
    fn new(hot_spot: usize) -> Self {
        let mut temperature = vec![0.0; 65_536];
        temperature[hot_spot] = 1e6;
        Rod {
            step: 0,
            temperature,
        }
    }

    fn advance(&mut self) {
        let t = &self.temperature;
        let n = t.len();
        let next = (0..n)
            .map(|i| {
                let left = t[i.saturating_sub(1)];
                let right = t[(i + 1).min(n - 1)];
                t[i] + 0.25 * (left - 2.0 * t[i] + right)
            })
            .collect();
        self.temperature = next;
        self.step += 1;
    }
}

/// What one simulation saw.
struct Run {
    final_state: Rod,
    checkpoint_times: Vec<Duration>,
}

fn simulate(store: Arc<FailoverStorage>, id: usize, done: &AtomicU64, start: &Barrier) -> Run {
    let prefixed = PrefixStorage::new(store, &format!("sim-{id}")).expect("a valid prefix");
    let mut ck = Checkpointer::builder()
        .storage(prefixed)
        .keep_last(2)
        .threads(1)
        .build()
        .expect("open the checkpointer");
    let mut rod = Rod::new(10_000 * (id + 1));
    let mut checkpoint_times = Vec::new();
    start.wait();
    while rod.step < STEPS {
        rod.advance();
        let started = Instant::now();
        // Any error here would be a failover that leaked to the caller.
        ck.checkpoint(rod.step, &mut rod)
            .expect("no error reaches the caller");
        checkpoint_times.push(started.elapsed());
        done.fetch_add(1, Ordering::Relaxed);
    }
    ck.finish().expect("finish");
    Run {
        final_state: rod,
        checkpoint_times,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (dir_a, dir_b, dir_c) = (
        tempfile::tempdir()?,
        tempfile::tempdir()?,
        tempfile::tempdir()?,
    );
    let store = Arc::new(
        FailoverStorage::builder(FailoverMode::Mirrored)
            .active("disk-a", Arc::new(FsStorage::open(dir_a.path())?))
            .standby("disk-b", Arc::new(FsStorage::open(dir_b.path())?))
            .deadline(Some(Duration::from_secs(5)))
            .build()?,
    );
    let born = Instant::now();
    store.on_event(move |event| match event {
        FailoverEvent::FailedOver {
            from, to, cause, relocation, ..
        } => println!(
            "  [{:>7.1} ms] FAILOVER {from} -> {to} in {:.2} ms\n               cause: {cause}",
            ms(born.elapsed()),
            ms(*relocation)
        ),
        FailoverEvent::FailedBack { standby, resync } => println!(
            "  [{:>7.1} ms] FAILBACK {standby} is the standby again: {} objects ({} KiB) copied, callers paused {:.2} ms",
            ms(born.elapsed()),
            resync.copied,
            resync.bytes_copied / 1024,
            ms(resync.exclusive_pause)
        ),
        _ => {}
    });
    let events = store.subscribe();

    println!(
        "{SIMULATIONS} simulations checkpoint every step to a mirrored pair (disk-a active, disk-b standby)."
    );
    println!("After {PULL_THE_DISK_AT} steps each, disk-a's directory is deleted.\n");
    let done = AtomicU64::new(0);
    let start = Barrier::new(SIMULATIONS + 1);
    let runs: Vec<Run> = std::thread::scope(|scope| {
        let sims: Vec<_> = (0..SIMULATIONS)
            .map(|id| {
                let (store, done, start) = (store.clone(), &done, &start);
                scope.spawn(move || simulate(store, id, done, start))
            })
            .collect();
        start.wait();
        while done.load(Ordering::Relaxed) < PULL_THE_DISK_AT * SIMULATIONS as u64 {
            std::thread::sleep(Duration::from_millis(1));
        }
        println!("  [{:>7.1} ms] rm -rf disk-a", ms(born.elapsed()));
        while dir_a.path().exists() {
            let _ = std::fs::remove_dir_all(dir_a.path()); // writers may race us
        }
        sims.into_iter()
            .map(|s| s.join().expect("simulation thread"))
            .collect()
    });

    println!("\nWhat each caller saw (every checkpoint returned Ok):");
    let paused: Vec<FailoverEvent> = events.try_iter().collect();
    for (id, run) in runs.iter().enumerate() {
        let mut times = run.checkpoint_times.clone();
        times.sort();
        let median = times[times.len() / 2];
        let prefix = format!("sim-{id}/");
        let (ops, pause) = paused
            .iter()
            .filter_map(|e| match e {
                FailoverEvent::Paused { key, paused, .. } if key.starts_with(&prefix) => {
                    Some(*paused)
                }
                _ => None,
            })
            .fold((0, Duration::ZERO), |(n, total), p| (n + 1, total + p));
        println!(
            "  sim-{id}: {} checkpoints, median {:.2} ms, slowest {:.2} ms; {ops} storage operation(s) paused, {:.2} ms in total",
            times.len(),
            ms(median),
            ms(*times.last().unwrap_or(&Duration::ZERO)),
            ms(pause)
        );
    }

    println!("\nFailback: a fresh directory, disk-c, becomes the standby.");
    store.readmit("disk-c", Arc::new(FsStorage::open(dir_c.path())?))?;
    let stats = store.stats();
    println!(
        "  active {:?}, standby {:?}; {} failover(s), {} failback(s), longest pause {:.2} ms",
        stats.active.unwrap_or_default(),
        stats.standby.unwrap_or_default(),
        stats.failovers,
        stats.failbacks,
        ms(stats.max_pause)
    );

    drop(store); // releases the directory locks
    println!("\nRestoring every simulation from disk-b and from disk-c alone:");
    for dir in [dir_b.path(), dir_c.path()] {
        let disk = Arc::new(FsStorage::open(dir)?);
        for (id, run) in runs.iter().enumerate() {
            let mut ck = Checkpointer::builder()
                .storage(PrefixStorage::new(disk.clone(), &format!("sim-{id}"))?)
                .build()?;
            let restored = ck.restore_latest::<Rod>()?.ok_or("no checkpoint")?;
            if restored.state != run.final_state {
                return Err(format!("sim-{id} restored a different state").into());
            }
        }
    }
    println!("  all {SIMULATIONS} restore their last committed state, bit for bit, from both.");
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
