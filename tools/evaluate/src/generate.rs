//! The randomized evaluation (issue 17, item 3): workloads drawn by a
//! seeded generator from a wide family, so that no policy setting can be
//! tuned to them.
//!
//! Every workload `i` of draw seed `S` comes from its own
//! `StdRng::seed_from_u64(S · 1 000 003 + i)`, so `--random 24` draws the
//! same first three workloads as `--random 3`. The family:
//!
//! * **state** log-uniform in 64 MiB–1 GiB, times `max_state / 1 GiB`
//!   (`--max-state`, default 1024 MiB: the family itself; smaller caps
//!   scale the whole range down, keeping its 16:1 spread);
//! * **storage** `1/slowdown` of the local disk's bandwidth, `slowdown`
//!   log-uniform in 1–10 (the crash gate stretches every store operation);
//! * **MTBF** such that a full checkpoint (its probed time to durable) is
//!   a share log-uniform in 2–20 % of Young's interval
//!   (`M = C / (2·share²)`), at least [`MTBF_FLOOR`] seconds × scale;
//! * **1–3 phases**, changing at uniformly random times (each phase at
//!   least 10 % of the run); each phase draws its own step:
//!   * **dirty share** log-uniform 0.1–100 % of the state's pages written
//!     per step (a few elements of each page),
//!   * **pattern** uniform (pages drawn uniformly), Zipf (pages drawn
//!     from a power law of exponent `s` uniform in 0.8–1.4; repeats make
//!     the distinct share smaller than the draws) or a sequential sweep
//!     (the next pages in order, wrapping),
//!   * **step time** log-uniform 2–500 ms (writes plus calibrated
//!     arithmetic; a step whose writes alone take longer is longer),
//!   * **CPU** the arithmetic on one core or on every core (even odds).
//!
//! The run's length (work time) is `3·M` clamped to `[6, 12]` s × scale:
//! a few failures where the MTBF is short, a bounded run where it is long
//! (there a run may see no failure at all, and the comparison is one of
//! checkpoint overhead).

use crate::MIB;
use crate::workload::{Pattern, PhaseSpec, Workload, Writes, steps_for};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

/// The MTBF's floor (seconds, × scale): below it a restart can take most
/// of a failure gap on this machine.
pub(crate) const MTBF_FLOOR: f64 = 1.0;

/// A drawn workload and what is set once its full checkpoint is probed.
#[derive(Debug, Clone)]
pub(crate) struct Drawn {
    pub(crate) workload: Workload,
    /// A full checkpoint's target share of Young's interval.
    pub(crate) young_share: f64,
    /// Each phase's share of the run's work time.
    pub(crate) shares: Vec<f64>,
}

impl Drawn {
    /// Sets the phases' step counts for a run of `seconds` of work.
    pub(crate) fn set_length(&mut self, seconds: f64) {
        for (p, share) in self.workload.phases.iter_mut().zip(&self.shares) {
            p.steps = steps_for(seconds * share, p.step_time);
        }
    }

    /// The run length for an MTBF of `mtbf` seconds.
    pub(crate) fn length_for(mtbf: f64, scale: f64) -> f64 {
        (3.0 * mtbf).clamp(6.0 * scale, 12.0 * scale)
    }
}

fn log_uniform(rng: &mut StdRng, lo: f64, hi: f64) -> f64 {
    (lo.ln() + rng.random::<f64>() * (hi.ln() - lo.ln())).exp()
}

/// Draws `n` workloads with draw seed `seed`; states scaled to at most
/// `max_state` bytes, runs to `scale`.
pub(crate) fn draw(n: usize, seed: u64, max_state: usize, scale: f64) -> Vec<Drawn> {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    (0..n)
        .map(|i| draw_one(i, seed, max_state, scale, cores))
        .collect()
}

fn draw_one(i: usize, seed: u64, max_state: usize, scale: f64, cores: usize) -> Drawn {
    let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(i as u64));
    let unscaled = log_uniform(&mut rng, 64.0, 1024.0);
    let mib = (unscaled * max_state as f64 / (1024 * MIB) as f64)
        .round()
        .max(1.0);
    let state_bytes = mib as usize * MIB;
    let slowdown = log_uniform(&mut rng, 1.0, 10.0);
    let young_share = log_uniform(&mut rng, 0.02, 0.2);
    let phases: usize = rng.random_range(1..=3);
    let shares = loop {
        let mut cuts: Vec<f64> = (1..phases).map(|_| rng.random::<f64>()).collect();
        cuts.sort_by(f64::total_cmp);
        cuts.insert(0, 0.0);
        cuts.push(1.0);
        let shares: Vec<f64> = cuts.windows(2).map(|w| w[1] - w[0]).collect();
        if shares.iter().all(|&s| s >= 0.1) {
            break shares;
        }
    };
    let mut specs = Vec::new();
    let mut described = Vec::new();
    let mut at = 0.0;
    for share in &shares {
        let dirty = log_uniform(&mut rng, 0.001, 1.0);
        let (pattern, pattern_name) = match rng.random_range(0..3) {
            0 => (Pattern::Uniform, "uniform".to_owned()),
            1 => {
                let s = rng.random_range(0.8..=1.4);
                (Pattern::Zipf { s }, format!("zipf s={s:.2}"))
            }
            _ => (Pattern::Sweep, "sweep".to_owned()),
        };
        let step_ms = log_uniform(&mut rng, 2.0, 500.0);
        let step_time = Duration::from_secs_f64(step_ms / 1e3);
        let all_cores = rng.random_bool(0.5);
        let threads = if all_cores { cores } else { 1 };
        described.push(format!(
            "{:.0}-{:.0} %: {pattern_name} {:.1} %/step, {step_ms:.0} ms, {}",
            at * 100.0,
            (at + share) * 100.0,
            dirty * 100.0,
            if all_cores { "all cores" } else { "1 core" }
        ));
        at += share;
        specs.push(PhaseSpec {
            name: pattern_name.split(' ').next().unwrap_or("phase").to_owned(),
            steps: 1,
            step_time,
            writes: Writes::Pages {
                share: dirty,
                pattern,
            },
            cores: threads,
        });
    }
    let key = format!("r{i:02}");
    let title = format!(
        "{key}: state {mib:.0} MiB, storage 1/{slowdown:.1} of disk, full ckpt {:.1} % of Young; {}",
        young_share * 100.0,
        described.join(" | ")
    );
    let mut drawn = Drawn {
        workload: Workload {
            key: key.clone(),
            title,
            state_bytes,
            phases: specs,
            slowdown,
            salt: 0x5EED_0000 + i as u64 * 7919 + seed.wrapping_mul(104_729),
            quick: true,
        },
        young_share,
        shares,
    };
    drawn.set_length(6.0 * scale);
    drawn
}
