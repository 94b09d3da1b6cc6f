//! Calibration: sizing each step's arithmetic, the reference step
//! times (useful work), and the probes that set each static scheme's
//! interval.

use crate::BoxError;
use crate::clock::CpuClock;
use crate::run::Mode;
use crate::state::{Job, burn};
use crate::workload::{Workload, Writes};
use ckpt::{Checkpointer, FsStorage, Scheme};
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

/// A phase's step, calibrated: what it writes and how much arithmetic.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Kernel {
    pub(crate) writes: Writes,
    pub(crate) burn_iters: u64,
}

/// Burn iterations per second on this machine now.
pub(crate) fn burn_rate(clock: &CpuClock) -> f64 {
    let n = 2_000_000;
    let mut rates: Vec<f64> = (0..7)
        .map(|_| {
            let t = clock.now();
            black_box(burn(n, 0.3));
            n as f64 / (clock.now() - t).as_secs_f64()
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

/// Sizes each phase's arithmetic so a step takes its target time.
pub(crate) fn calibrate(w: &Workload, rate: f64, clock: &CpuClock) -> Vec<Kernel> {
    let mut job = Job::new(w.state_bytes);
    w.phases
        .iter()
        .map(|p| {
            let bare = Kernel {
                writes: p.writes,
                burn_iters: 0,
            };
            let n = (0.3 / p.step_time.as_secs_f64()).ceil().max(5.0) as u32;
            job.advance(&bare);
            let t = clock.now();
            for _ in 0..n {
                job.advance(&bare);
            }
            let writes = (clock.now() - t).as_secs_f64() / f64::from(n);
            let left = (p.step_time.as_secs_f64() - writes).max(0.0);
            Kernel {
                writes: p.writes,
                burn_iters: (left * rate) as u64,
            }
        })
        .collect()
}

/// Step time of each phase with no checkpointer, in short blocks of
/// steps (five per phase): the useful work.
pub(crate) fn reference_blocks(
    w: &Workload,
    kernels: &[Kernel],
    clock: &CpuClock,
) -> Vec<Vec<f64>> {
    let mut job = Job::new(w.state_bytes);
    w.phases
        .iter()
        .zip(kernels)
        .map(|(p, k)| {
            let n = (0.1 / p.step_time.as_secs_f64()).ceil().max(3.0) as u32;
            job.advance(k);
            (0..5)
                .map(|_| {
                    let t = clock.now();
                    for _ in 0..n {
                        job.advance(k);
                    }
                    (clock.now() - t).as_secs_f64() / f64::from(n)
                })
                .collect()
        })
        .collect()
}

/// The median of each phase's reference blocks, so that neither a burst
/// of disk write-back nor a neighbour hogging the core's other hardware
/// thread for a while moves the reference.
pub(crate) fn reference_step_times(blocks: &[Vec<f64>]) -> Vec<f64> {
    blocks.iter().map(|phase| median(phase)).collect()
}

/// The median of `values` (NaN when there are none).
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 0 => (sorted[mid - 1] + sorted[mid]) / 2.0,
        _ => sorted[mid],
    }
}

/// What a probe measured about one scheme on one phase: mean time a
/// checkpoint blocked the computation, and mean time until it was durable.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Probed {
    pub(crate) stall: f64,
    pub(crate) persist: f64,
}

/// Probes `scheme` on one phase: a base checkpoint at once, then
/// `MEASURED` more at `interval` with no failures; their medians (a
/// single slow fsync moved the mean of two by 3×).
pub(crate) fn probe(
    state_bytes: usize,
    kernel: Kernel,
    scheme: Scheme,
    interval: Duration,
    root: &Path,
) -> Result<Probed, BoxError> {
    const MEASURED: u64 = 4;
    let dir = tempfile::tempdir_in(root)?;
    let mut job = Job::new(state_bytes);
    let mut ck = Checkpointer::builder()
        .storage(FsStorage::open(dir.path())?)
        .scheme(scheme)
        .compression_level(0)
        .keep_last(2)
        .every(interval)
        .build()?;
    let events = ck.subscribe();
    ck.checkpoint(0, &mut job)?;
    let mut step = 0;
    while ck.summary().checkpoints < MEASURED + 1 {
        step += 1;
        ck.scope(step, &mut job, |j| j.advance(&kernel))?;
    }
    ck.flush()?;
    let measured: Vec<(f64, f64)> = events
        .try_iter()
        .filter_map(|event| match event {
            ckpt::model::Event::Checkpoint(e) => {
                Some((e.stall.as_secs_f64(), e.persist.as_secs_f64()))
            }
            _ => None,
        })
        .skip(1)
        .collect();
    ck.finish()?;
    let (stalls, persists): (Vec<f64>, Vec<f64>) = measured.into_iter().unzip();
    Ok(Probed {
        stall: median(&stalls),
        persist: median(&persists),
    })
}

/// The static interval of every scheme, by one rule (see the module
/// docs): `[full, incremental, cow]`.
pub(crate) fn static_intervals(
    w: &Workload,
    kernels: &[Kernel],
    mtbf: f64,
    root: &Path,
) -> Result<[Duration; 3], BoxError> {
    let young = |c: f64| (2.0 * c * mtbf).sqrt();
    let weights: Vec<f64> = w
        .phases
        .iter()
        .map(|p| p.steps as f64 * p.step_time.as_secs_f64())
        .collect();
    let total: f64 = weights.iter().sum();
    let mut mean = [Probed::default(); 3];
    for ((p, k), weight) in w.phases.iter().zip(kernels).zip(&weights) {
        let quick = p.step_time.max(Duration::from_millis(100));
        let full = probe(w.state_bytes, *k, Scheme::Full, quick, root)?;
        let tau0 = Duration::from_secs_f64(young(full.persist));
        let share = weight / total;
        for (i, scheme) in [Scheme::Full, Scheme::Incremental, Scheme::CopyOnWrite]
            .into_iter()
            .enumerate()
        {
            let probed = if scheme == Scheme::Full {
                full
            } else {
                probe(w.state_bytes, *k, scheme, tau0, root)?
            };
            println!(
                "    probe {:<7} {:<12} blocks {:>6.1} ms, durable after {:>6.1} ms",
                p.name,
                Mode::Static(scheme).name(),
                probed.stall * 1e3,
                probed.persist * 1e3,
            );
            if let Some(m) = mean.get_mut(i) {
                m.stall += share * probed.stall;
                m.persist += share * probed.persist;
            }
        }
    }
    Ok(mean.map(|m| Duration::from_secs_f64(young(m.persist).max(1e-3))))
}
