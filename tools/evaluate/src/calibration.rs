//! Calibration: sizing each step's arithmetic, the reference step
//! times (useful work), and the probes that set each static scheme's
//! interval.

use crate::BoxError;
use crate::clock::CpuClock;
use crate::crash::CrashGate;
use crate::run::Mode;
use crate::state::{Job, burn};
use crate::workload::{Workload, Writes};
use ckpt::{Checkpointer, FsStorage, Scheme};
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A phase's step, calibrated: what it writes and how much arithmetic.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Kernel {
    pub(crate) writes: Writes,
    /// Arithmetic per thread.
    pub(crate) burn_iters: u64,
    /// Threads the arithmetic runs on.
    pub(crate) cores: usize,
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
                cores: 1,
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
                cores: p.cores,
            }
        })
        .collect()
}

/// Step time of each phase with no checkpointer, in short blocks of
/// steps (five per phase, of 0.1 s and at least 3 steps; for a quick
/// workload three of at least one step): the useful work.
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
            let (blocks, least) = if w.quick { (3, 1.0) } else { (5, 3.0) };
            let n = (0.1 / p.step_time.as_secs_f64()).ceil().max(least) as u32;
            job.advance(k);
            (0..blocks)
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
/// four more (two for a quick workload) at `interval` with no failures,
/// on the workload's (possibly slowed) store; their medians (a single
/// slow fsync moved the mean of two by 3×).
pub(crate) fn probe(
    w: &Workload,
    kernel: Kernel,
    scheme: Scheme,
    interval: Duration,
    root: &Path,
) -> Result<Probed, BoxError> {
    let measured: u64 = if w.quick { 2 } else { 4 };
    let dir = tempfile::tempdir_in(root)?;
    let mut job = Job::new(w.state_bytes);
    let storage = CrashGate::open(Arc::new(FsStorage::open(dir.path())?), w.slowdown);
    let mut ck = Checkpointer::builder()
        .storage(storage)
        .scheme(scheme)
        .compression_level(0)
        .keep_last(2)
        .every(interval)
        .build()?;
    let events = ck.subscribe();
    ck.checkpoint(0, &mut job)?;
    let mut step = 0;
    while ck.summary().checkpoints < measured + 1 {
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

/// How a workload's MTBF is set.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Mtbf {
    /// This many seconds.
    Seconds(f64),
    /// So that a full checkpoint (its probed time to durable, the
    /// duration-weighted mean over phases) is this share of Young's
    /// interval: `C / √(2·C·M) = share`, i.e. `M = C / (2·share²)`, at
    /// least `floor` seconds.
    YoungShare { share: f64, floor: f64 },
}

/// What [`static_intervals`] found.
pub(crate) struct Intervals {
    /// `[full, incremental, cow]`.
    pub(crate) every: [Duration; 3],
    /// The MTBF, seconds.
    pub(crate) mtbf: f64,
    /// A full checkpoint's time to durable (duration-weighted mean), s.
    pub(crate) full_cost: f64,
}

/// The static interval of every scheme, by one rule (see the module
/// docs), and the MTBF.
pub(crate) fn static_intervals(
    w: &Workload,
    kernels: &[Kernel],
    mtbf: Mtbf,
    root: &Path,
) -> Result<Intervals, BoxError> {
    let weights: Vec<f64> = w
        .phases
        .iter()
        .map(|p| p.steps as f64 * p.step_time.as_secs_f64())
        .collect();
    let total: f64 = weights.iter().sum();
    let shares: Vec<f64> = weights.iter().map(|x| x / total).collect();
    let mut fulls = Vec::new();
    for (p, k) in w.phases.iter().zip(kernels) {
        let quick = p.step_time.max(Duration::from_millis(100));
        fulls.push(probe(w, *k, Scheme::Full, quick, root)?);
    }
    let full_cost: f64 = fulls.iter().zip(&shares).map(|(f, s)| f.persist * s).sum();
    let mtbf = match mtbf {
        Mtbf::Seconds(m) => m,
        Mtbf::YoungShare { share, floor } => (full_cost / (2.0 * share * share)).max(floor),
    };
    let young = |c: f64| (2.0 * c * mtbf).sqrt();
    let mut mean = [Probed::default(); 3];
    for (((p, k), share), full) in w.phases.iter().zip(kernels).zip(&shares).zip(&fulls) {
        // A quick workload's probes stop at 1 s intervals: at a long MTBF
        // Young's interval is several seconds, and four probes of it
        // would take longer than the runs.
        let mut tau0 = Duration::from_secs_f64(young(full.persist));
        if w.quick {
            tau0 = tau0.min(Duration::from_secs(1).max(p.step_time));
        }
        for (i, scheme) in [Scheme::Full, Scheme::Incremental, Scheme::CopyOnWrite]
            .into_iter()
            .enumerate()
        {
            let probed = if scheme == Scheme::Full {
                *full
            } else {
                probe(w, *k, scheme, tau0, root)?
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
    Ok(Intervals {
        every: mean.map(|m| Duration::from_secs_f64(young(m.persist).max(1e-3))),
        mtbf,
        full_cost,
    })
}
