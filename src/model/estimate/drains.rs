//! Pricing the drain ratio of a checkpointer with lower tiers: what a
//! drain costs, and what a failure that takes the first tier with it
//! (a *node* failure) costs at a drain every `k`-th checkpoint.
//!
//! # The maths
//!
//! A checkpoint's wall period is `T = τ + δ` (compute plus what the
//! checkpoint costs the computation). Every `k`-th commit drains: the
//! drain thread copies what the lower tier lacks — for a full plan the
//! whole state, otherwise the packs written since the last drain that the
//! newest checkpoint still references (copied whole: one live page is
//! enough, so a sparse workload copies all `k` intervals' packs, not
//! `d(kτ)`, and a dense one only the newest few), plus a full base when
//! the plan took one since the last drain (with chance `min(1, k/f)` for
//! a full base every `f`) — which takes `D` seconds by
//! the drain fit (time against bytes copied, from the drain events). A
//! drain that takes longer than `k` periods delays the next, so drains
//! happen every `k' = max(k, ⌈D/T⌉)` checkpoints, and each then copies
//! what changed over `k'` intervals (a few rounds of `D` and `k'` find
//! where that settles).
//!
//! * A **process** failure restarts from the first tier: Daly's overhead
//!   at the process-failure MTBF, with the drains' share of the
//!   computation, `β_d·D/k'`, added to `δ`: `β_d` is how much slower a
//!   step runs beside a drain than beside nothing (measured from the
//!   steps' times, the geometric mean of their ratios as for a persist's
//!   interference; [`ModelConfig::drain_interference`] before).
//! * A **node** failure (rate `λ_n`) loses everything since the newest
//!   checkpoint that was durable on the lower tier when it struck, and
//!   restarts from the lower tier in `R₂` (the lower-tier restore fit;
//!   before one is seen, a copy of the whole state at the drain speed).
//!   A drain cycle of `L = k'·T·(1 + O_process)` wall seconds is to node
//!   failures what an interval is to process failures: Daly's expression
//!   with the cycle as the interval and `R_n = D + R₂ + relaunch` as the
//!   restart (a node failure also loses the drain in flight) prices it,
//!   `F_n = (M_n/L)·e^{R_n/M_n}·(e^{L/M_n} − 1)`, averaged over five
//!   equal-probability quantiles of the node rate's posterior rather than
//!   taken at its mean: `F_n` is convex in the rate, and with the one or
//!   two node failures a run sees the rate is far from known. The
//!   posterior is the *recent* one ([`FailurePrior::recent`]: each node
//!   failure halves the weight of the evidence before it, the prior's
//!   included): a drain cycle that was safe at the old rate becomes
//!   ruinous when node failures grow frequent, and the whole history
//!   would still price the old rate after several failures at the new
//!   one.
//!
//! Overhead: `O = (1 + O_process)·F_n − 1`. To first order that is
//! `O_process + λ_n·(1 + O_process)·(L/2 + R_n)`, the two-level model of
//! Moody et al. (SC'10) in spirit; the exponential form matters once a
//! cycle nears the node MTBF, where a first-order price would still
//! allow drains too rare for the job to get past a node failure at all.
//! Fewer drains cost less and lose more on a node failure; the policy
//! searches `k` for the minimum.
//!
//! Before any node failure is seen and without a configured
//! [`ModelConfig::node_mtbf`], node failures are assumed ten times rarer
//! than process failures ([`NODE_TO_PROCESS_MTBF`]); a node failure whose
//! class the checkpointer saw at restart moves the estimate like any
//! other.

use super::config::ModelConfig;
use super::cost_model::CostModel;
use super::pricing::{Bound, capped, priced_interference, rate_to_mtbf};
use crate::model::cost::daly_overhead;
use crate::model::failure::{FailureClass, FailurePrior, RatePosterior};
use crate::model::fit::{Driver, Solved};
use crate::model::plan::Plan;
use crate::scheme::Scheme;
use crate::state::DEFAULT_PAGE_BYTES;
use std::cell::OnceCell;

/// Node failures assumed per process failure when nothing else is known:
/// one in ten (the SCR and FTI studies found most failures to be
/// recoverable from node-local storage).
pub(super) const NODE_TO_PROCESS_MTBF: f64 = 10.0;

/// What drains and lower-tier restores cost, and the two failure rates.
pub(super) struct DrainCosts {
    /// Drain time against (bytes copied, logical bytes).
    drain: Option<Solved>,
    drains_seen: u64,
    /// Restore time from a lower tier against (bytes read, chain length).
    restore: Option<Solved>,
    restores_seen: u64,
    min_observations: u64,
    uncertainty: f64,
    interference: f64,
    relaunch: f64,
    /// Posterior mean rates, per second: the process rate over the whole
    /// history, the node rate over the recent evidence
    /// ([`FailurePrior::recent`]).
    pub(super) process_rate: f64,
    pub(super) node_rate: f64,
    /// The recent node-failure posterior and its quantile rates (computed
    /// once, when a plan with a drain ratio is first priced).
    node_posterior: RatePosterior,
    node_rates: OnceCell<Vec<f64>>,
}

/// Equal-probability strata of a rate's posterior whose midpoints price a
/// node failure (see [`DrainCosts::node_overhead`]).
const NODE_RATE_QUANTILES: [f64; 5] = [0.1, 0.3, 0.5, 0.7, 0.9];

/// One plan's drain terms at one interval.
pub(super) struct DrainTerms {
    /// What drains cost the computation per checkpoint, seconds.
    pub(super) per_checkpoint: f64,
    /// Seconds between drains, `k'·T`, before process failures.
    pub(super) cycle: f64,
    /// What a node failure costs beyond the cycle's lost work: the drain
    /// in flight, the lower-tier restore and the relaunch, seconds.
    pub(super) node_restart: f64,
}

impl DrainCosts {
    pub(super) fn new(model: &CostModel) -> Self {
        let l = &model.learned;
        let config: &ModelConfig = &model.config;
        let level = config.level;
        let counts = |class: FailureClass| model.failure_counts(class);
        let process = config
            .prior(FailureClass::Process)
            .mean_rate(&counts(FailureClass::Process));
        let node_prior = FailurePrior {
            mtbf: config
                .node_mtbf
                .or_else(|| Some(config.mtbf.mul_f64(NODE_TO_PROCESS_MTBF))),
            weight: config.prior_weight,
        };
        let node_posterior = node_prior.recent(&counts(FailureClass::Node));
        DrainCosts {
            drain: l.drain.solve(level, Driver::First),
            drains_seen: l.drain.count(),
            restore: l.restore_lower.solve(level, Driver::First),
            restores_seen: l.restore_lower.count(),
            min_observations: config.min_observations.max(1),
            uncertainty: config.prior_uncertainty,
            interference: priced_interference(&l.drain_interference, config.drain_interference),
            relaunch: config.relaunch.as_secs_f64(),
            process_rate: process,
            node_rate: node_posterior.mean(),
            node_posterior,
            node_rates: OnceCell::new(),
        }
    }

    /// What node failures add to a drain cycle of `cycle` wall seconds
    /// with `restart` seconds lost beyond it per failure, as a share of
    /// the work: Daly's overhead with the cycle as the interval, averaged
    /// over the quantiles of the node-failure rate's posterior
    /// ([`NODE_RATE_QUANTILES`]), not taken at its mean. The overhead
    /// grows exponentially with the cycle over the node MTBF, so with
    /// the one or two node failures a run sees, the mean rate prices rare
    /// drains as if the rate were known, and a rate twice as high (as
    /// likely as not after two failures) would make the same drains
    /// ruinous; the average over the posterior prices that risk, and
    /// narrows to the mean's price as node failures accumulate.
    pub(super) fn node_overhead(&self, cycle: f64, restart: f64) -> f64 {
        let rates = self.node_rates.get_or_init(|| {
            let mut rates = self.node_posterior.quantiles(&NODE_RATE_QUANTILES);
            // Five midpoints understate a skewed posterior's mean (by 7 %
            // for one failure's worth): scaled to it, a cost linear in the
            // rate is priced exactly and only convexity adds.
            let mean = rates.iter().sum::<f64>() / rates.len().max(1) as f64;
            if mean > 0.0 && self.node_rate > 0.0 {
                let scale = self.node_rate / mean;
                rates.iter_mut().for_each(|rate| *rate *= scale);
            }
            rates
        });
        if rates.is_empty() {
            return daly_overhead(cycle, 0.0, restart, rate_to_mtbf(self.node_rate));
        }
        rates
            .iter()
            .map(|&rate| daly_overhead(cycle, 0.0, restart, rate_to_mtbf(rate)))
            .sum::<f64>()
            / rates.len() as f64
    }

    /// True once a drain was measured: before, a plan's drain terms rest
    /// on the first tier's write speed alone.
    pub(super) fn measured(&self) -> bool {
        self.drains_seen > 0
    }

    /// Time to copy `bytes` of a `logical`-byte state to the lower tier;
    /// `fallback` (a write of the bytes to the first tier) before any
    /// drain was seen.
    fn drain_time(&self, bytes: f64, logical: f64, fallback: f64, bound: Bound) -> f64 {
        match &self.drain {
            Some(fit) => self.fitted(fit, self.drains_seen, bytes, logical, bound),
            None => bound.pick(fallback, self.uncertainty * fallback),
        }
    }

    /// A fit's prediction at `bound`: its own interval once it rests on
    /// enough points, the configured relative uncertainty before.
    fn fitted(&self, fit: &Solved, seen: u64, x1: f64, x2: f64, bound: Bound) -> f64 {
        let e = fit.at_least_proportional(x1, fit.predict(x1, x2));
        let mean = e.mean.max(0.0);
        let half = if seen >= self.min_observations {
            capped(e, self.uncertainty)
        } else {
            self.uncertainty * mean
        };
        bound.pick(mean, half)
    }

    /// The drain terms of `plan` (which drains every `k`-th checkpoint)
    /// at compute interval `tau`, with a checkpoint costing `delta`;
    /// `stored` is the state's stored size and `dirty_at` what changes in
    /// a compute time; `write` prices a write of bytes to the first tier.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn terms(
        &self,
        plan: Plan,
        k: u32,
        tau: f64,
        delta: f64,
        stored: f64,
        ratio: f64,
        dirty_at: impl Fn(f64) -> f64,
        write: impl Fn(f64) -> f64,
        bound: Bound,
    ) -> DrainTerms {
        let k = f64::from(k.max(1));
        let period = tau + delta;
        let logical = stored * ratio;
        // What a drain every `every` checkpoints copies, and how long it
        // takes.
        let per_interval = dirty_at(tau).clamp(0.0, logical);
        let drain_every = |every: f64| {
            let copied = match plan.base() {
                Scheme::Full => stored,
                _ => chained_copy(
                    every,
                    plan.full_every().map(f64::from),
                    per_interval,
                    logical,
                    ratio,
                ),
            };
            self.drain_time(copied, logical, write(copied), bound)
        };
        let behind = |drain: f64| {
            if period > 0.0 {
                k.max((drain / period).ceil())
            } else {
                k
            }
        };
        // A drain that falls behind copies what changed over the
        // checkpoints it skipped, which takes longer again: a few rounds
        // find where that settles (it grows by less each round).
        let (mut drain, mut cadence) = (drain_every(k), k);
        for _ in 0..3 {
            let next = behind(drain);
            if next <= cadence {
                break;
            }
            cadence = next;
            drain = drain_every(cadence);
        }
        let cadence = cadence.max(behind(drain));
        let restore = match &self.restore {
            Some(fit) => self.fitted(fit, self.restores_seen, stored, 1.0, bound),
            None => self.drain_time(stored, logical, write(stored), bound),
        };
        DrainTerms {
            per_checkpoint: self.interference * drain / cadence,
            cycle: cadence * period,
            node_restart: drain + restore + self.relaunch,
        }
    }
}

/// Stored bytes a drain every `every` checkpoints of a chained plan
/// copies: the packs written since the last drain that the newest
/// checkpoint still references, plus the full base when the plan took one
/// in that window (chance `min(1, every/f)` for a base every `f`; the
/// packs before it are then not needed). Each checkpoint writes
/// `per_interval` logical bytes of dirty pages into its own pack, and a
/// pack is copied whole while any of its pages is live; for pages
/// rewritten at random, a page survives each later interval with chance
/// `s = 1 − per_interval/logical`, so the pack `j` checkpoints back (of
/// `n` pages) is needed with chance `1 − (1 − sʲ)ⁿ`. A sparse workload
/// thus copies every pack of the window (`every` intervals' worth, not
/// what changed over the window), a dense one only the newest few.
pub(super) fn chained_copy(
    every: f64,
    full_every: Option<f64>,
    per_interval: f64,
    logical: f64,
    ratio: f64,
) -> f64 {
    let survive = if logical > 0.0 {
        (1.0 - per_interval / logical).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let pages = (per_interval / DEFAULT_PAGE_BYTES as f64).max(1.0);
    let (base, increments) = match full_every {
        Some(f) if f >= 1.0 => {
            let base = (every / f).min(1.0);
            // With a base in the window, the increments after it: on
            // average half of the window's (or of a cycle's) others.
            let after_base = 0.5 * (every.min(f) - 1.0).max(0.0);
            (base, base * after_base + (1.0 - base) * every)
        }
        _ => (0.0, every),
    };
    let stored = logical / ratio;
    base * stored + live_packs(increments, survive, pages) * per_interval / ratio
}

/// The expected number of the `count` newest packs (one per checkpoint,
/// `pages` pages each, the newest first; a fractional `count` weighs the
/// last in part) that hold a page no later checkpoint rewrote, when a
/// page survives an interval with chance `survive` (see
/// [`chained_copy`]).
fn live_packs(count: f64, survive: f64, pages: f64) -> f64 {
    /// Expected live pages above which a pack counts as live for certain
    /// (it is dead with chance below e⁻⁴⁰).
    const CERTAIN: f64 = 40.0;
    /// Packs further back than this are not counted (far beyond any
    /// drain window).
    const DEPTH: f64 = 4096.0;
    let count = count.clamp(0.0, DEPTH);
    // The newest packs, live for certain, in closed form: pack `j` is
    // while `pages·survivalʲ ≥ CERTAIN`.
    let certain = if survive >= 1.0 {
        DEPTH
    } else if survive > 0.0 && pages > CERTAIN {
        1.0 + ((CERTAIN / pages).ln() / survive.ln()).floor()
    } else {
        1.0
    };
    let mut sum = count.min(certain);
    let mut j = certain;
    while j < count {
        let needed = 1.0 - (1.0 - survive.powf(j)).powf(pages);
        if needed < 1e-9 {
            break;
        }
        sum += (count - j).min(1.0) * needed;
        j += 1.0;
    }
    sum
}
