//! The cost model: learns from events, prices every candidate plan at its
//! best interval, and says what to change.
//!
//! # From fits to overhead
//!
//! For a plan at compute interval `τ` (seconds of useful work between
//! checkpoints):
//!
//! 1. **Dirty bytes** grow with `τ` as if pages were dirtied independently
//!    at a constant rate `r`: `d(τ) = S·(1 − e^{−rτ})` for a state of `S`
//!    bytes, with `r = −ln(1 − f̄)/τ̄` from the running means of the dirty
//!    fraction `fᵢ = dᵢ/S` and of the interval `τᵢ` of the observed
//!    checkpoints. (Averaging fractions, not per-checkpoint rates, keeps a
//!    checkpoint that found everything dirty from counting as an infinite
//!    rate.) `dᵢ` is what changed since the previous checkpoint, whatever
//!    the scheme stored, so every scheme's checkpoints teach it. These
//!    workload descriptors (sizes, dirty fraction, step time) follow the
//!    application's phases with a short memory
//!    ([`ModelConfig::workload_forgetting`]); the cost fits, which describe
//!    the machine, keep a long one. (A workload that rewrites one hot set
//!    makes this pessimistic about long intervals for incremental
//!    schemes.)
//! 2. **Per-checkpoint cost** from the scheme's fits at `(d(τ), S)`:
//!    stall `s` and time-to-durable `p ≥ s`. The fits regress each cost on
//!    the bytes the checkpoint stored (uncompressed) and the state size;
//!    for a write time (incremental, copy-on-write persist) the slope on
//!    the stored bytes is combined with the time per byte of the pooled
//!    fit over all writes ([`Solved::predict_with_slope_prior`]), so that a
//!    scheme measured at one interval is not extrapolated to another with
//!    a slope its narrow range of sizes could not pin down. The
//!    computation loses `δ = s + β·(p − s)` per checkpoint, where `β` is
//!    the share of a background persist's time the computation loses: how
//!    much slower steps run beside a persist than without one (CPU and
//!    memory bandwidth taken, copy-on-write page copies), measured from
//!    the events and configured until it is. The checkpoint becomes
//!    durable `ℓ = p − s`
//!    after the computation resumes. A plan with a full base every `k`
//!    averages over its cycle: `δ = ((k−1)·δ_base + δ_full)/k`, likewise
//!    `ℓ`; copy-on-write writes its full bases in the background too, so
//!    they are priced with its own fits at the whole state.
//! 3. **Restart cost** `R = restore(S, L̄) + relaunch + ℓ`, where `L̄` is the
//!    mean restore chain length a failure meets (`(k+1)/2` for a full base
//!    every `k`, 1 for a scheme that does not chain, the observed mean
//!    otherwise), and `ℓ` counts the work lost because the newest
//!    checkpoint was not durable yet (first order).
//! 4. If the previous background persist is still running when the next
//!    checkpoint is due (`ℓ > τ`), the computation waits: `δ += ℓ − τ`.
//! 5. **Overhead** is Daly's expected overhead per unit of useful work,
//!    `(M/τ)·e^{R/M}·(e^{(τ+δ)/M} − 1) − 1` ([`daly_overhead`]) with `M`
//!    the posterior MTBF of the failures the checkpoint store survives
//!    (process and node classes), minimised over `τ` within the bounds.
//!
//! **Uncertainty.** The overhead is also computed with every fitted cost
//! moved up, and then down, by a tenth of its confidence half-width `h`;
//! the difference of the two overheads over `2·h/10`, divided by
//! `z_{(1+γ)/2}`, is the overhead's standard error (the delta method: the
//! overhead's local slope times the costs' standard error). Pricing at the
//! interval's very ends instead would send Daly's exponential formula to
//! absurd values whenever a fit rests on a few checkpoints (its `t`
//! multiplier is then 4 to 13), and no comparison would ever be
//! confident.
//! The confidence that plan B beats plan A is
//! `Φ((O_A − O_B)/√(se_A² + se_B²))`, treating their errors as independent
//! (conservative when they share fits). The failure rate's uncertainty is
//! left out: it moves every plan the same way.
//!
//! **Schemes not yet measured** are priced from a pooled fit of persist
//! time against bytes written over all checkpoints: a full checkpoint
//! writes `S/c`, an incremental one `d/c` (`c` the compression ratio);
//! copy-on-write stalls a configured fraction of a full write and persists
//! `d/c` in the background. Such estimates carry a wide, configured
//! uncertainty and [`Basis::Prior`], and a comparison that involves one
//! claims a confidence of at most 0.5; the policy explores on them instead
//! of acting on them. The same relative uncertainty is combined (inverse
//! variance) with a measured scheme's fitted intervals, so that a third
//! checkpoint, whose fit has a Student-t multiplier above 10, does not
//! make a scheme look less known than two did. A scheme measured fewer than
//! [`ModelConfig::min_observations`] times is priced from its own
//! measurements (time per byte from the pooled fit), but with the same
//! configured uncertainty, since so few points cannot estimate their own
//! spread: it counts as measured ([`Basis::Observed`]), so that the scheme
//! a run started with can be left after one or two of its checkpoints if
//! another is clearly cheaper.

use super::cost::{daly_interval, daly_overhead, minimize_interval, young_interval};
use super::event::{CheckpointEvent, Event, EventSummary, RestoreEvent};
use super::failure::{FailureClass, FailureCounts, FailurePrior, RateEstimate};
use super::fit::{Driver, Estimate, LinearFit, Solved, z_multiplier};
use super::plan::{Plan, SchemeSet, scheme_code, scheme_name};
use super::recommend::{Addition, Advice, Basis, Bytes, IntervalAdvice, Recommendation, Secs};
use crate::error::{Error, Result};
use crate::scheme::Scheme;
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};
use std::time::Duration;

/// How the cost model learns and what it assumes before it has learnt.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ModelConfig {
    /// Configured mean time between process failures (crashes the node
    /// survives): the prior of the failure rate. Default 24 h.
    pub mtbf: Duration,
    /// Configured mean time between node losses (the node-local tier is
    /// lost too); `None` (default) for no prior belief.
    pub node_mtbf: Option<Duration>,
    /// Configured mean time between losses of the whole store; `None`
    /// (default) for no prior belief.
    pub store_mtbf: Option<Duration>,
    /// How many failures' worth of evidence a configured MTBF is worth
    /// (default 1): with weight 1, one observed failure in one configured
    /// MTBF of running keeps the estimate where it was.
    pub prior_weight: f64,
    /// Forgetting factor λ of the cost fits, in [0.5, 1]: the fits
    /// remember about `1/(1−λ)` checkpoints (default 0.97, about 33).
    pub forgetting: f64,
    /// Forgetting factor of what describes the workload rather than the
    /// machine — state size, dirty fraction, step time, compression ratio
    /// — in [0.5, 1] (default 0.8, about 5 checkpoints): an application
    /// that changes phase (sparse updates, then dense sweeps) changes
    /// these at once, and the model should follow within a few
    /// checkpoints, while what a byte costs to write stays put.
    pub workload_forgetting: f64,
    /// Confidence level of intervals (default 0.95).
    pub level: f64,
    /// Checkpoints of a scheme before its own fits' confidence intervals
    /// are used (default 3); before that, its measurements are priced with
    /// [`prior_uncertainty`](Self::prior_uncertainty).
    pub min_observations: u64,
    /// Time to notice a failure and relaunch, added to every restart
    /// (default 0).
    pub relaunch: Duration,
    /// Share of a background persist's time that slows the computation
    /// down, until it is measured (default 0.1). The model measures it
    /// from the checkpoints' [`CheckpointEvent::compute_beside_persist`]:
    /// steps that ran beside a persist against those that did not.
    pub background_interference: f64,
    /// Assumed restore read speed before any restore is observed, bytes per
    /// second (default 500 MB/s).
    pub prior_read_bandwidth: f64,
    /// Assumed extra restore time per checkpoint in a chain before chains of
    /// several lengths are observed (default 1 ms).
    pub prior_link_cost: Duration,
    /// Copy-on-write stall as a fraction of a full write, before
    /// copy-on-write is measured (default 0.02).
    pub cow_stall_fraction: f64,
    /// Relative half-width of the interval around a prior-based cost
    /// (default 0.5).
    pub prior_uncertainty: f64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            mtbf: Duration::from_secs(24 * 3_600),
            node_mtbf: None,
            store_mtbf: None,
            prior_weight: 1.0,
            forgetting: 0.97,
            workload_forgetting: 0.8,
            level: 0.95,
            min_observations: 3,
            relaunch: Duration::ZERO,
            background_interference: 0.1,
            prior_read_bandwidth: 500e6,
            prior_link_cost: Duration::from_millis(1),
            cow_stall_fraction: 0.02,
            prior_uncertainty: 0.5,
        }
    }
}

impl ModelConfig {
    /// The default configuration with a configured process MTBF.
    pub fn with_mtbf(mtbf: Duration) -> Self {
        ModelConfig {
            mtbf,
            ..ModelConfig::default()
        }
    }

    /// Checks every value; the error names the first bad one.
    pub fn validate(&self) -> Result<()> {
        let bad = |option: &'static str, reason: &str| {
            Err(Error::InvalidConfig {
                option,
                reason: reason.to_owned(),
            })
        };
        if self.mtbf.is_zero() {
            return bad("model.mtbf", "must be longer than zero");
        }
        if self.node_mtbf.is_some_and(|d| d.is_zero())
            || self.store_mtbf.is_some_and(|d| d.is_zero())
        {
            return bad(
                "model.node_mtbf/store_mtbf",
                "must be longer than zero, or None",
            );
        }
        if !(self.prior_weight > 0.0 && self.prior_weight.is_finite()) {
            return bad(
                "model.prior_weight",
                "must be a positive number of failures, e.g. 1",
            );
        }
        if !(0.5..=1.0).contains(&self.forgetting) {
            return bad(
                "model.forgetting",
                "must be in [0.5, 1]; 0.97 remembers ~33 checkpoints",
            );
        }
        if !(0.5..=1.0).contains(&self.workload_forgetting) {
            return bad(
                "model.workload_forgetting",
                "must be in [0.5, 1]; 0.8 remembers ~5 checkpoints",
            );
        }
        if !(self.level > 0.5 && self.level < 1.0) {
            return bad("model.level", "must be in (0.5, 1), e.g. 0.95");
        }
        if !(0.0..=1.0).contains(&self.background_interference)
            || !(0.0..=1.0).contains(&self.cow_stall_fraction)
        {
            return bad(
                "model.background_interference/cow_stall_fraction",
                "must be a share in [0, 1]",
            );
        }
        if !(self.prior_read_bandwidth > 0.0 && self.prior_read_bandwidth.is_finite()) {
            return bad(
                "model.prior_read_bandwidth",
                "must be a positive number of bytes per second",
            );
        }
        if !(self.prior_uncertainty >= 0.0 && self.prior_uncertainty.is_finite()) {
            return bad(
                "model.prior_uncertainty",
                "must be a non-negative share, e.g. 0.5",
            );
        }
        Ok(())
    }

    fn prior(&self, class: FailureClass) -> FailurePrior {
        let mtbf = match class {
            FailureClass::Process => Some(self.mtbf),
            FailureClass::Node => self.node_mtbf,
            FailureClass::Store => self.store_mtbf,
        };
        FailurePrior {
            mtbf,
            weight: self.prior_weight,
        }
    }
}

/// Bounds the model searches within; a [`Policy`](super::Policy) provides
/// them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Constraints {
    /// Schemes a plan may use as its base.
    pub allowed: SchemeSet,
    /// Shortest compute interval between checkpoints.
    pub min_interval: Duration,
    /// Longest compute interval between checkpoints.
    pub max_interval: Duration,
    /// Largest `k` for "a full base every `k`".
    pub max_full_every: u32,
}

impl Default for Constraints {
    fn default() -> Self {
        Constraints {
            allowed: SchemeSet::all(),
            min_interval: Duration::from_millis(1),
            max_interval: Duration::from_secs(24 * 3_600),
            max_full_every: 64,
        }
    }
}

/// An exponentially weighted running mean.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct RunningMean {
    value: f64,
    weight: f64,
}

impl RunningMean {
    fn observe(&mut self, x: f64, forgetting: f64) {
        if !x.is_finite() {
            return;
        }
        let old = self.weight * forgetting;
        self.weight = old + 1.0;
        self.value += (x - self.value) / self.weight;
    }

    fn get(&self) -> Option<f64> {
        (self.weight > 0.0).then_some(self.value)
    }
}

/// Learned costs of one scheme.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SchemeRecord {
    #[serde(with = "scheme_code")]
    scheme: Scheme,
    stall: LinearFit,
    persist: LinearFit,
    longest_chain: u32,
    /// `EventSummary::checkpoints` when this scheme was last seen.
    last_seen: u64,
}

/// Everything learned from events: the serialized part of the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Learned {
    schemes: Vec<SchemeRecord>,
    /// Persist time against (bytes written, logical bytes), all schemes.
    pooled: LinearFit,
    /// Restore time against (bytes read, chain length).
    restore: LinearFit,
    /// Copies to slower tiers (events with `tier > 0`): persist time
    /// against (bytes written, logical bytes). The multi-level seam.
    drain: LinearFit,
    logical: RunningMean,
    dirty: RunningMean,
    /// Dirty fraction and compute interval of the same checkpoints.
    dirty_fraction: RunningMean,
    dirty_interval: RunningMean,
    ratio: RunningMean,
    chain: RunningMean,
    step_secs: RunningMean,
    compute_secs: RunningMean,
    /// How much slower a step runs while a background persist is in
    /// flight than while none is (a relative slowdown, e.g. 0.1).
    interference: RunningMean,
    /// Mean time of a step beside no background persist.
    idle_step_secs: RunningMean,
    failures: Vec<(FailureClass, FailureCounts)>,
    summary: EventSummary,
}

impl Learned {
    /// The rate `r` of `d(τ) = S·(1 − e^{−rτ})`, per second of compute,
    /// from the mean dirty fraction and interval (see the module docs).
    fn dirty_rate(&self) -> Option<f64> {
        let fraction = self.dirty_fraction.get()?.clamp(0.0, 1.0 - 1e-9);
        let interval = self.dirty_interval.get().filter(|t| *t > 0.0)?;
        Some(-(-fraction).ln_1p() / interval)
    }
}

/// What the model knows about one scheme, for policies deciding what to
/// explore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemeStatus {
    /// The scheme.
    pub scheme: Scheme,
    /// Checkpoints of it observed.
    pub observations: u64,
    /// Checkpoints (of any scheme) since it was last observed; `None` if
    /// never.
    pub since_seen: Option<u64>,
    /// True once it was observed often enough to be priced from its own
    /// fits.
    pub measured: bool,
}

/// One plan priced at one interval.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanEstimate {
    /// The plan.
    pub plan: Plan,
    /// Compute interval between checkpoints.
    pub interval: Duration,
    /// Expected overhead per unit of useful work.
    pub overhead: f64,
    /// Standard error of `overhead` from the cost fits' intervals.
    pub std_error: f64,
    /// Mean time a checkpoint blocks the computation (averaged over the
    /// plan's cycle).
    pub stall: Duration,
    /// Mean time until a checkpoint is durable.
    pub persist: Duration,
    /// Expected restart time after a failure (restore, relaunch, and work
    /// lost while the newest checkpoint was not yet durable).
    pub restart: Duration,
    /// Dirty bytes expected per checkpoint at this interval.
    pub dirty_bytes: f64,
    /// Whether the estimate rests on measurements of every scheme used.
    pub basis: Basis,
}

/// The model's view at one moment: every candidate priced, and what to
/// change.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The current plan at the current interval.
    pub current: PlanEstimate,
    /// The current plan at its best interval.
    pub current_tuned: PlanEstimate,
    /// Every candidate plan at its best interval, cheapest first.
    pub candidates: Vec<PlanEstimate>,
    /// Changes worth considering, the most significant first: a change to
    /// the cheapest plan; when that plan rests on priors, also a change to
    /// the cheapest measured plan; then a change of interval. A policy
    /// decides.
    pub recommendations: Vec<Recommendation>,
    /// Posterior MTBF used for the overheads, seconds (infinite when no
    /// failure is expected).
    pub mtbf_secs: f64,
    /// Checkpoints observed so far.
    pub checkpoints: u64,
    /// What is known about each allowed scheme.
    pub schemes: Vec<SchemeStatus>,
}

impl Evaluation {
    /// The cheapest candidate.
    pub fn best(&self) -> Option<&PlanEstimate> {
        self.candidates.first()
    }
}

/// Share of a confidence half-width the costs are moved by to find how
/// the overhead responds to them (see "Uncertainty" in the module docs).
const SE_STEP: f64 = 0.1;

/// Where in their confidence intervals to take the costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bound {
    Mean,
    /// The mean plus [`SE_STEP`] half-widths.
    Upper,
    /// The mean minus [`SE_STEP`] half-widths.
    Lower,
}

impl Bound {
    fn pick(self, mean: f64, half_width: f64) -> f64 {
        let v = match self {
            Bound::Mean => mean,
            Bound::Upper => mean + SE_STEP * half_width,
            Bound::Lower => mean - SE_STEP * half_width,
        };
        if v.is_nan() {
            mean.max(0.0)
        } else {
            v.max(0.0)
        }
    }
}

/// How one scheme's checkpoint costs are predicted in one evaluation.
enum Pricing {
    /// Its own fits, with their confidence intervals.
    Fitted { stall: Solved, persist: Solved },
    /// Its own few measurements (fewer than the fits need to estimate
    /// their own uncertainty), with the configured prior uncertainty.
    Few { stall: Solved, persist: Solved },
    /// Other schemes' writes.
    Prior { pooled: Solved },
}

struct SchemeCosts {
    scheme: Scheme,
    pricing: Pricing,
    chains: bool,
}

/// Per-evaluation snapshot of everything needed to price plans.
struct Pricer<'a> {
    config: &'a ModelConfig,
    logical: f64,
    dirty: f64,
    dirty_rate: Option<f64>,
    ratio: f64,
    chain: f64,
    mtbf: f64,
    costs: Vec<SchemeCosts>,
    /// The restore fit, once it rests on enough restores.
    restore: Option<Solved>,
    restore_chain_mean: f64,
    /// Mean bytes, chain length and time of the restores seen, when there
    /// are too few for the fit.
    restores_seen: Option<(f64, f64, f64)>,
    /// Share of a background persist's time the computation loses: as
    /// measured, or as configured before it is.
    interference: f64,
    /// Time per dirty byte written, from the pooled fit over every
    /// scheme's writes (when its slope is bounded): the prior slope of the
    /// write-time fits.
    write_slope: Estimate,
}

/// Cost of one checkpoint: what the computation loses, and how long after
/// it resumes the checkpoint becomes durable.
#[derive(Debug, Clone, Copy)]
struct CheckpointCost {
    stall: f64,
    persist: f64,
}

/// Highest confidence claimed for a comparison involving a prior-based
/// estimate: the priors are structural guesses whose error the fits cannot
/// measure, so until the scheme is measured it is a coin flip.
const PRIOR_CONFIDENCE: f64 = 0.5;

const FULL_EVERY_CANDIDATES: [u32; 11] = [2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64];

impl Pricer<'_> {
    fn scheme(&self, scheme: Scheme) -> Option<&SchemeCosts> {
        self.costs.iter().find(|c| c.scheme == scheme)
    }

    fn dirty_at(&self, tau: f64) -> f64 {
        match self.dirty_rate {
            Some(r) if self.logical > 0.0 => -self.logical * (-r * tau).exp_m1(),
            _ => self.dirty,
        }
    }

    fn checkpoint(&self, costs: &SchemeCosts, dirty: f64, bound: Bound) -> CheckpointCost {
        let s = self.logical;
        // Write times scale with the dirty bytes; a copy-on-write stall (a
        // snapshot) does not.
        let own = |stall: &Solved, persist: &Solved| {
            let write = |fit: &Solved| fit.predict_with_slope_prior(dirty, s, self.write_slope);
            match costs.scheme {
                Scheme::Incremental => (write(stall), write(persist)),
                Scheme::CopyOnWrite => (stall.predict(dirty, s), write(persist)),
                Scheme::Full => (stall.predict(dirty, s), persist.predict(dirty, s)),
            }
        };
        let (stall, persist) = match &costs.pricing {
            Pricing::Fitted { stall, persist } => {
                let (st, pe) = own(stall, persist);
                let u = self.config.prior_uncertainty;
                (
                    bound.pick(st.mean, capped(st, u)),
                    bound.pick(pe.mean, capped(pe, u)),
                )
            }
            Pricing::Few { stall, persist } => {
                let (st, pe) = own(stall, persist);
                let (st, pe) = (st.mean.max(0.0), pe.mean.max(0.0));
                let u = self.config.prior_uncertainty;
                (bound.pick(st, u * st), bound.pick(pe, u * pe))
            }
            Pricing::Prior { pooled } => {
                let ratio = self.ratio;
                let write = |bytes: f64| pooled.predict(bytes / ratio, s).mean.max(0.0);
                let (stall, persist) = match costs.scheme {
                    Scheme::Full => (write(s), write(s)),
                    Scheme::Incremental => (write(dirty), write(dirty)),
                    Scheme::CopyOnWrite => {
                        (self.config.cow_stall_fraction * write(s), write(dirty))
                    }
                };
                let u = self.config.prior_uncertainty;
                (
                    bound.pick(stall, u * stall),
                    bound.pick(persist, u * persist),
                )
            }
        };
        CheckpointCost {
            stall,
            persist: persist.max(stall),
        }
    }

    fn restore_time(&self, chain: f64, bound: Bound) -> f64 {
        let bytes = self.logical / self.ratio;
        let link = self.config.prior_link_cost.as_secs_f64();
        match &self.restore {
            Some(fit) => {
                let (_, chain_identified) = fit.identified();
                if chain_identified {
                    let e = fit.predict(bytes, chain);
                    bound.pick(e.mean, e.half_width)
                } else {
                    let e = fit.predict(bytes, self.restore_chain_mean);
                    bound.pick(e.mean, e.half_width) + (chain - self.restore_chain_mean) * link
                }
            }
            None => {
                // Fewer restores than a fit needs: scale the ones seen (or
                // the configured read speed) by size, with the prior's
                // uncertainty.
                let mean = match self.restores_seen {
                    Some((seen_bytes, seen_chain, secs)) if seen_bytes > 0.0 => {
                        (secs * bytes / seen_bytes + (chain - seen_chain) * link).max(0.0)
                    }
                    _ => bytes / self.config.prior_read_bandwidth + chain * link,
                };
                let u = self.config.prior_uncertainty;
                bound.pick(mean, u * mean)
            }
        }
    }

    fn basis(&self, plan: Plan) -> Basis {
        let fitted = |s: Scheme| {
            self.scheme(s)
                .is_some_and(|c| matches!(c.pricing, Pricing::Fitted { .. } | Pricing::Few { .. }))
        };
        // Copy-on-write prices its full bases with its own fits.
        let full_ok = plan.full_every().is_none()
            || plan.base() == Scheme::CopyOnWrite
            || fitted(Scheme::Full);
        if fitted(plan.base()) && full_ok {
            Basis::Observed
        } else {
            Basis::Prior
        }
    }

    /// Overhead of `plan` at `tau` with costs at `bound`, and the parts it
    /// is made of.
    fn price(&self, plan: Plan, tau: f64, bound: Bound) -> Option<Priced> {
        let base = self.scheme(plan.base())?;
        let dirty = self.dirty_at(tau);
        let b = self.checkpoint(base, dirty, bound);
        let (cycle, chain) = match plan.full_every() {
            Some(k) => {
                let full = if plan.base() == Scheme::CopyOnWrite {
                    // Copy-on-write persists its full bases in the
                    // background too: its own costs at the whole state.
                    self.checkpoint(base, self.logical, bound)
                } else {
                    self.checkpoint(self.scheme(Scheme::Full)?, dirty, bound)
                };
                let k = f64::from(k);
                let avg = |x: f64, y: f64| ((k - 1.0) * x + y) / k;
                let cycle = CheckpointCost {
                    stall: avg(b.stall, full.stall),
                    persist: avg(b.persist, full.persist),
                };
                (cycle, if base.chains { 0.5 * (k + 1.0) } else { 1.0 })
            }
            None if base.chains => (b, self.chain.max(1.0)),
            None => (b, 1.0),
        };
        let lag = cycle.persist - cycle.stall;
        let beta = self.interference;
        let delta = cycle.stall + beta * lag + (lag - tau).max(0.0);
        let restart = self.restore_time(chain, bound) + self.config.relaunch.as_secs_f64() + lag;
        Some(Priced {
            overhead: daly_overhead(tau, delta, restart, self.mtbf),
            cost: cycle,
            restart,
            dirty,
        })
    }

    fn estimate(&self, plan: Plan, tau: f64) -> Option<PlanEstimate> {
        let mean = self.price(plan, tau, Bound::Mean)?;
        let hi = self.price(plan, tau, Bound::Upper)?.overhead;
        let lo = self.price(plan, tau, Bound::Lower)?.overhead;
        let z = z_multiplier(self.config.level);
        let std_error = if hi.is_finite() && lo.is_finite() {
            ((hi - lo) / (2.0 * SE_STEP * z)).max(0.0)
        } else {
            f64::INFINITY
        };
        Some(PlanEstimate {
            plan,
            interval: secs(tau),
            overhead: mean.overhead,
            std_error,
            stall: secs(mean.cost.stall),
            persist: secs(mean.cost.persist),
            restart: secs(mean.restart),
            dirty_bytes: mean.dirty,
            basis: self.basis(plan),
        })
    }

    fn optimize(&self, plan: Plan, lo: f64, hi: f64) -> Option<PlanEstimate> {
        self.price(plan, lo, Bound::Mean)?;
        let (tau, _) = minimize_interval(
            |t| {
                self.price(plan, t, Bound::Mean)
                    .map_or(f64::INFINITY, |p| p.overhead)
            },
            lo,
            hi,
        );
        self.estimate(plan, tau)
    }
}

struct Priced {
    overhead: f64,
    cost: CheckpointCost,
    restart: f64,
    dirty: f64,
}

/// The half-width of a fitted cost combined with the configured prior
/// uncertainty (`u` times the cost) by inverse variance: a fit on three or
/// four checkpoints has a Student-t multiplier of 4 to 13 and would claim
/// less than the two checkpoints priced with the prior alone did; with
/// more checkpoints the fit's own interval takes over.
fn capped(e: Estimate, u: f64) -> f64 {
    let prior = u * e.mean.abs();
    let usable = |x: f64| x > 0.0 && x.is_finite();
    match (usable(prior), usable(e.half_width)) {
        (true, true) => (prior.powi(-2) + e.half_width.powi(-2)).sqrt().recip(),
        // An unbounded (or undefined) fit interval: the prior's.
        (true, false) if e.half_width != 0.0 => prior,
        _ => e.half_width,
    }
}

/// Mean time of the steps in the interval `e` closes that ran beside no
/// background persist (`None` if there were none).
fn idle_step_secs(e: &CheckpointEvent) -> Option<f64> {
    let idle = e.steps.checked_sub(e.steps_beside_persist)?;
    let idle_time = e.compute.as_secs_f64() - e.compute_beside_persist.as_secs_f64();
    (idle > 0 && idle_time > 0.0).then(|| idle_time / idle as f64)
}

/// How much slower the steps that ran beside a background persist in the
/// interval `e` closes were than `per_idle`, the time of a step beside
/// none: those of the same interval ([`idle_step_secs`]) or, when every
/// step ran beside one (persists back to back, where interference matters
/// most), the recent mean of such steps. `None` without both. Clamped to
/// ±1 so one disturbed interval cannot swamp the mean; the mean is clamped
/// to [0, 1] where it is used.
fn slowdown(e: &CheckpointEvent, per_idle: Option<f64>) -> Option<f64> {
    let busy = e.steps_beside_persist.min(e.steps);
    let busy_time = e.compute_beside_persist.as_secs_f64();
    if busy == 0 || busy_time <= 0.0 {
        return None;
    }
    let per_idle = per_idle.filter(|t| *t > 0.0)?;
    let per_busy = busy_time / busy as f64;
    Some((per_busy / per_idle - 1.0).clamp(-1.0, 1.0))
}

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::MAX)
}

/// The statistical cost model: feed it [`Event`]s, ask it to
/// [`evaluate`](CostModel::evaluate) the current plan.
#[derive(Debug, Clone, PartialEq)]
pub struct CostModel {
    config: ModelConfig,
    learned: Learned,
}

impl CostModel {
    /// A model that has seen nothing yet.
    pub fn new(config: ModelConfig) -> Self {
        let learned = Learned {
            schemes: Vec::new(),
            pooled: LinearFit::new(config.forgetting),
            restore: LinearFit::new(config.forgetting),
            drain: LinearFit::new(config.forgetting),
            logical: RunningMean::default(),
            dirty: RunningMean::default(),
            dirty_fraction: RunningMean::default(),
            dirty_interval: RunningMean::default(),
            ratio: RunningMean::default(),
            chain: RunningMean::default(),
            step_secs: RunningMean::default(),
            compute_secs: RunningMean::default(),
            interference: RunningMean::default(),
            idle_step_secs: RunningMean::default(),
            failures: FailureClass::ALL
                .iter()
                .map(|c| (*c, FailureCounts::default()))
                .collect(),
            summary: EventSummary::default(),
        };
        CostModel { config, learned }
    }

    /// What the model has learned, for persistence.
    pub(crate) fn learned(&self) -> &Learned {
        &self.learned
    }

    /// A model with `config` resuming from what was learned before.
    pub(crate) fn resume(config: ModelConfig, learned: Learned) -> Self {
        CostModel { config, learned }
    }

    /// The configuration in force.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Running totals of the events seen.
    pub fn summary(&self) -> &EventSummary {
        &self.learned.summary
    }

    /// Learns from one event.
    pub fn observe(&mut self, event: &Event) {
        self.learned.summary.record(event);
        match event {
            Event::Checkpoint(e) => self.observe_checkpoint(e),
            Event::Restore(e) => self.observe_restore(e),
            Event::Restart(e) => {
                if let Some((_, counts)) = self
                    .learned
                    .failures
                    .iter_mut()
                    .find(|(c, _)| *c == e.class)
                {
                    counts.fail();
                }
            }
            // Storage errors and failovers cost pauses that every plan pays
            // alike; they are summarised, and will drive the storage-tier
            // recommendation when tiers exist.
            Event::StorageError(_) | Event::Failover(_) => {}
            // The model's own output, not evidence.
            Event::Decision(_) => {}
            // A restore is learnt from once, when it completes.
            Event::RestoreProgress(_) => {}
        }
    }

    fn observe_checkpoint(&mut self, e: &CheckpointEvent) {
        let lambda = self.config.forgetting;
        let l = &mut self.learned;
        if e.tier > 0 {
            // A copy to a slower tier: it says nothing about the fast
            // tier's costs, and its time is not new work.
            l.drain.observe(
                e.bytes_written as f64,
                e.logical_bytes as f64,
                e.persist.as_secs_f64(),
            );
            return;
        }
        let seen = l.summary.checkpoints;
        let (stall, persist) = (
            e.stall.as_secs_f64(),
            e.persist.as_secs_f64().max(e.stall.as_secs_f64()),
        );
        let (dirty, logical) = (e.dirty_bytes as f64, e.logical_bytes as f64);
        let compute = e.compute.as_secs_f64();
        let record = match l.schemes.iter().position(|r| r.scheme == e.scheme) {
            Some(i) => l.schemes.get_mut(i),
            None => {
                l.schemes.push(SchemeRecord {
                    scheme: e.scheme,
                    stall: LinearFit::new(lambda),
                    persist: LinearFit::new(lambda),
                    longest_chain: 0,
                    last_seen: seen,
                });
                l.schemes.last_mut()
            }
        };
        // Write costs scale with what the checkpoint stored (uncompressed),
        // not with what changed: a full base stores everything however
        // little changed. Increments store what changed.
        let stored = match e.bytes_written {
            0 => dirty,
            written if e.compression_ratio > 0.0 => written as f64 * e.compression_ratio,
            written => written as f64,
        };
        if let Some(r) = record {
            r.stall.observe(stored, logical, stall);
            r.persist.observe(stored, logical, persist);
            r.longest_chain = r.longest_chain.max(e.chain_length);
            r.last_seen = seen;
        }
        l.pooled.observe(e.bytes_written as f64, logical, persist);
        let quick = self.config.workload_forgetting;
        l.logical.observe(logical, quick);
        l.dirty.observe(dirty, quick);
        if e.compression_ratio > 0.0 {
            l.ratio.observe(e.compression_ratio, quick);
        }
        l.chain.observe(f64::from(e.chain_length.max(1)), lambda);
        if compute > 0.0 {
            l.compute_secs.observe(compute, quick);
            if e.steps > 0 {
                l.step_secs.observe(compute / e.steps as f64, quick);
            }
            if logical > 0.0 {
                l.dirty_fraction
                    .observe((dirty / logical).clamp(0.0, 1.0), quick);
                l.dirty_interval.observe(compute, quick);
            }
            let idle = idle_step_secs(e);
            if let Some(slowdown) = slowdown(e, idle.or(l.idle_step_secs.get())) {
                l.interference.observe(slowdown, quick);
            }
            if let Some(idle) = idle {
                l.idle_step_secs.observe(idle, quick);
            }
        }
        for (_, counts) in &mut l.failures {
            counts.expose(compute + stall);
        }
    }

    fn observe_restore(&mut self, e: &RestoreEvent) {
        let bytes = if e.bytes_read > 0 {
            e.bytes_read
        } else {
            e.logical_bytes
        };
        self.learned.restore.observe(
            bytes as f64,
            f64::from(e.chain_length.max(1)),
            e.duration.as_secs_f64(),
        );
    }

    /// The posterior failure rate of one class.
    pub fn failure_rate(&self, class: FailureClass) -> RateEstimate {
        let counts = self
            .learned
            .failures
            .iter()
            .find(|(c, _)| *c == class)
            .map(|(_, n)| *n)
            .unwrap_or_default();
        self.config
            .prior(class)
            .posterior(&counts, self.config.level)
    }

    /// MTBF, seconds, of the failures a restart from the checkpoint store
    /// recovers from (process and node classes); infinite if none is
    /// expected.
    pub fn mtbf_secs(&self) -> f64 {
        let rate = self.failure_rate(FailureClass::Process).per_second
            + self.failure_rate(FailureClass::Node).per_second;
        if rate > 0.0 {
            1.0 / rate
        } else {
            f64::INFINITY
        }
    }

    /// The fit of slower-tier copy time against (bytes written, logical
    /// bytes), from events with `tier > 0`: input for a
    /// [`TwoLevel`](super::cost::TwoLevel) model once tiers exist.
    pub fn drain_fit(&self) -> &LinearFit {
        &self.learned.drain
    }

    /// Checkpoints of `scheme` observed (not discounted by forgetting).
    pub fn observations(&self, scheme: Scheme) -> u64 {
        self.learned
            .schemes
            .iter()
            .find(|r| r.scheme == scheme)
            .map_or(0, |r| r.stall.count())
    }

    /// Mean compute time per step, once steps were reported.
    pub fn step_time(&self) -> Option<Duration> {
        self.learned.step_secs.get().map(secs)
    }

    /// Young's and Daly's intervals for a checkpoint cost `cost` at the
    /// current MTBF, seconds (both infinite when no failure is expected).
    pub fn classic_intervals(&self, cost: Duration) -> (f64, f64) {
        let (c, m) = (cost.as_secs_f64(), self.mtbf_secs());
        if m.is_finite() {
            (young_interval(c, m), daly_interval(c, m))
        } else {
            (f64::INFINITY, f64::INFINITY)
        }
    }

    fn pricer(&self) -> Option<Pricer<'_>> {
        let l = &self.learned;
        let level = self.config.level;
        let pooled = l.pooled.solve(level, Driver::First)?;
        let min_obs = self.config.min_observations.max(1);
        let costs = [Scheme::Full, Scheme::Incremental, Scheme::CopyOnWrite]
            .into_iter()
            .map(|scheme| {
                let record = l.schemes.iter().find(|r| r.scheme == scheme);
                let (stall_driver, persist_driver) = match scheme {
                    Scheme::Full => (Driver::Second, Driver::Second),
                    Scheme::Incremental => (Driver::First, Driver::First),
                    Scheme::CopyOnWrite => (Driver::Second, Driver::First),
                };
                let fitted = record.and_then(|r| {
                    let (stall, persist) = (
                        r.stall.solve(level, stall_driver)?,
                        r.persist.solve(level, persist_driver)?,
                    );
                    Some(if r.stall.count() >= min_obs {
                        Pricing::Fitted { stall, persist }
                    } else {
                        Pricing::Few { stall, persist }
                    })
                });
                let chains = match record {
                    Some(r) if r.stall.count() >= min_obs => r.longest_chain > 1,
                    Some(r) if r.longest_chain > 1 => true,
                    _ => scheme == Scheme::Incremental,
                };
                SchemeCosts {
                    scheme,
                    pricing: fitted.unwrap_or(Pricing::Prior {
                        pooled: pooled.clone(),
                    }),
                    chains,
                }
            })
            .collect();
        let enough_restores = l.restore.count() >= min_obs;
        let restore = l
            .restore
            .solve(level, Driver::First)
            .filter(|_| enough_restores);
        let restores_seen = (l.restore.count() > 0 && !enough_restores).then(|| l.restore.means());
        let ratio = l.ratio.get().filter(|r| *r > 1e-3).unwrap_or(1.0);
        let per_written = pooled.slopes().0;
        let write_slope = Estimate {
            mean: per_written.mean / ratio,
            half_width: per_written.half_width / ratio,
        };
        Some(Pricer {
            config: &self.config,
            logical: l.logical.get().unwrap_or(0.0),
            dirty: l.dirty.get().unwrap_or(0.0),
            dirty_rate: l.dirty_rate(),
            ratio,
            chain: l.chain.get().unwrap_or(1.0),
            mtbf: self.mtbf_secs(),
            costs,
            restore,
            restore_chain_mean: l.restore.means().1.max(1.0),
            restores_seen,
            write_slope,
            interference: l
                .interference
                .get()
                .map_or(self.config.background_interference, |r| r.clamp(0.0, 1.0)),
        })
    }

    /// Prices `current` at `interval` (compute time between checkpoints)
    /// and every candidate plan allowed by `constraints` at its best
    /// interval, and lists the changes worth making. `None` before the
    /// first checkpoint event.
    pub fn evaluate(
        &self,
        current: Plan,
        interval: Duration,
        constraints: &Constraints,
    ) -> Option<Evaluation> {
        let pricer = self.pricer()?;
        let step = self.learned.step_secs.get().unwrap_or(0.0);
        let lo = constraints.min_interval.as_secs_f64().max(step).max(1e-3);
        let hi = constraints.max_interval.as_secs_f64().max(lo);
        let now = pricer.estimate(current, interval.as_secs_f64().max(1e-6))?;
        let tuned = pricer.optimize(current, lo, hi)?;
        let mut candidates: Vec<PlanEstimate> = self
            .candidate_plans(&pricer, current, constraints)
            .into_iter()
            .filter_map(|plan| pricer.optimize(plan, lo, hi))
            .collect();
        candidates.sort_by(|a, b| a.overhead.total_cmp(&b.overhead));
        let mut recommendations = Vec::new();
        let better = |c: &&PlanEstimate| c.plan != current && c.overhead < tuned.overhead;
        if let Some(best) = candidates.first().filter(better) {
            recommendations.push(self.plan_change(&pricer, &now, &tuned, best));
        }
        // When the cheapest plan rests on priors, the cheapest measured one
        // is worth acting on meanwhile (a policy explores the first and
        // may apply the second).
        let measured = candidates
            .iter()
            .filter(better)
            .find(|c| c.basis == Basis::Observed);
        if let Some(measured) = measured
            && candidates.first().is_some_and(|b| b.basis == Basis::Prior)
        {
            recommendations.push(self.plan_change(&pricer, &now, &tuned, measured));
        }
        let ratio = tuned.interval.as_secs_f64() / interval.as_secs_f64().max(1e-9);
        if tuned.overhead < now.overhead && !(0.8..=1.25).contains(&ratio) {
            recommendations.push(self.interval_change(&pricer, &now, &tuned));
        }
        let seen = self.learned.summary.checkpoints;
        let schemes = constraints
            .allowed
            .iter()
            .map(|scheme| {
                let record = self.learned.schemes.iter().find(|r| r.scheme == scheme);
                let observations = record.map_or(0, |r| r.stall.count());
                SchemeStatus {
                    scheme,
                    observations,
                    since_seen: record.map(|r| seen.saturating_sub(r.last_seen)),
                    measured: observations >= self.config.min_observations.max(1),
                }
            })
            .collect();
        Some(Evaluation {
            current: now,
            current_tuned: tuned,
            candidates,
            recommendations,
            mtbf_secs: pricer.mtbf,
            checkpoints: seen,
            schemes,
        })
    }

    fn candidate_plans(
        &self,
        pricer: &Pricer<'_>,
        current: Plan,
        constraints: &Constraints,
    ) -> Vec<Plan> {
        let mut plans = vec![current];
        for scheme in constraints.allowed.iter() {
            let chains = pricer.scheme(scheme).is_some_and(|c| c.chains);
            if chains {
                plans.extend(
                    FULL_EVERY_CANDIDATES
                        .iter()
                        .filter(|k| **k <= constraints.max_full_every)
                        .map(|k| Plan::with_full_every(scheme, *k)),
                );
            } else {
                plans.push(Plan::only(scheme));
            }
        }
        plans.sort_by_key(|p| (p.base().code(), p.full_every()));
        plans.dedup();
        plans
    }

    fn interval_advice(&self, estimate: &PlanEstimate) -> IntervalAdvice {
        let steps = self.learned.step_secs.get().filter(|s| *s > 0.0).map(|s| {
            let n = (estimate.interval.as_secs_f64() / s).round();
            if n >= 1.0 {
                n.min(u64::MAX as f64) as u64
            } else {
                1
            }
        });
        IntervalAdvice {
            every: estimate.interval,
            steps,
        }
    }

    fn advice(
        &self,
        now: &PlanEstimate,
        before: &PlanEstimate,
        after: &PlanEstimate,
        reason: String,
    ) -> Advice {
        let basis = match (before.basis, after.basis) {
            (Basis::Observed, Basis::Observed) => Basis::Observed,
            _ => Basis::Prior,
        };
        let confidence = match basis {
            Basis::Observed => confidence(before, after),
            Basis::Prior => confidence(before, after).min(PRIOR_CONFIDENCE),
        };
        Advice {
            plan: after.plan,
            interval: self.interval_advice(after),
            overhead_now: now.overhead,
            overhead_after: after.overhead,
            saving: (before.overhead - after.overhead) / (1.0 + now.overhead),
            confidence,
            basis,
            reason,
        }
    }

    fn plan_change(
        &self,
        pricer: &Pricer<'_>,
        now: &PlanEstimate,
        tuned: &PlanEstimate,
        best: &PlanEstimate,
    ) -> Recommendation {
        let (from, to) = (now.plan, best.plan);
        if from.base() != to.base() {
            let reason = format!(
                "{} blocks {} and is durable after {} per checkpoint, {} blocks {} and is durable after {}{}",
                scheme_name(to.base()),
                Secs(best.stall.as_secs_f64()),
                Secs(best.persist.as_secs_f64()),
                scheme_name(from.base()),
                Secs(tuned.stall.as_secs_f64()),
                Secs(tuned.persist.as_secs_f64()),
                self.dirty_note(best),
            );
            return Recommendation::Switch {
                from: from.base(),
                to: to.base(),
                advice: self.advice(now, tuned, best, reason),
            };
        }
        match (from.full_every(), to.full_every()) {
            (was, Some(k)) => {
                let reason = format!(
                    "restores read {} checkpoints on average instead of {} (restart {} instead of {}), \
                     at {} per checkpoint instead of {}{}",
                    Avg(0.5 * (f64::from(k) + 1.0)),
                    Avg(was.map_or(pricer.chain, |w| 0.5 * (f64::from(w) + 1.0))),
                    Secs(best.restart.as_secs_f64()),
                    Secs(tuned.restart.as_secs_f64()),
                    Secs(best.stall.as_secs_f64()),
                    Secs(tuned.stall.as_secs_f64()),
                    match was {
                        Some(w) => format!("; replaces a full base every {w}"),
                        None => String::new(),
                    }
                );
                Recommendation::Add {
                    addition: Addition::FullEvery(k),
                    advice: self.advice(now, tuned, best, reason),
                }
            }
            (was, None) => {
                let reason = format!(
                    "{} does not chain restores, so full bases only add cost: {} per checkpoint instead of {}",
                    scheme_name(to.base()),
                    Secs(best.stall.as_secs_f64()),
                    Secs(tuned.stall.as_secs_f64()),
                );
                Recommendation::Drop {
                    dropped: Addition::FullEvery(was.unwrap_or(1)),
                    advice: self.advice(now, tuned, best, reason),
                }
            }
        }
    }

    fn interval_change(
        &self,
        pricer: &Pricer<'_>,
        now: &PlanEstimate,
        tuned: &PlanEstimate,
    ) -> Recommendation {
        let cost = tuned.stall.as_secs_f64();
        let reason = if pricer.mtbf.is_finite() {
            format!(
                "at an MTBF of {} and {} blocked per checkpoint, the best interval is {} \
                 (Young's first-order rule: {}); now {}",
                Secs(pricer.mtbf),
                Secs(cost),
                Secs(tuned.interval.as_secs_f64()),
                Secs(young_interval(cost, pricer.mtbf)),
                Secs(now.interval.as_secs_f64()),
            )
        } else {
            format!(
                "no failure is expected, so checkpoints are pure cost: the longest allowed interval is best; now {}",
                Secs(now.interval.as_secs_f64())
            )
        };
        Recommendation::SetInterval {
            advice: self.advice(now, now, tuned, reason),
        }
    }

    fn dirty_note(&self, estimate: &PlanEstimate) -> String {
        let logical = self.learned.logical.get().unwrap_or(0.0);
        if logical > 0.0 {
            format!(
                " ({} dirty of {} per interval)",
                Bytes(estimate.dirty_bytes),
                Bytes(logical)
            )
        } else {
            String::new()
        }
    }
}

/// `Φ((O_before − O_after)/√(se_before² + se_after²))`.
fn confidence(before: &PlanEstimate, after: &PlanEstimate) -> f64 {
    let gap = before.overhead - after.overhead;
    let se = before.std_error.hypot(after.std_error);
    if !se.is_finite() {
        return 0.5;
    }
    if se <= 0.0 {
        return if gap > 0.0 {
            1.0
        } else if gap < 0.0 {
            0.0
        } else {
            0.5
        };
    }
    Normal::new(0.0, 1.0).map_or(0.5, |n| n.cdf(gap / se))
}

/// Formats an average chain length.
struct Avg(f64);

impl std::fmt::Display for Avg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.1}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cost::daly_interval;
    use crate::model::event::{RestartEvent, RestoreEvent};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const GIB: f64 = (1u64 << 30) as f64;

    /// A synthetic checkpoint: `stall`/`persist` seconds, `dirty` of
    /// `logical` bytes after `compute` seconds of work.
    fn event(
        scheme: Scheme,
        compute: f64,
        stall: f64,
        persist: f64,
        logical: f64,
        dirty: f64,
        chain: u32,
    ) -> Event {
        let mut e = CheckpointEvent::new(scheme, 0);
        e.steps = 10;
        e.compute = secs(compute);
        e.stall = secs(stall);
        e.persist = secs(persist);
        e.logical_bytes = logical as u64;
        e.dirty_bytes = dirty as u64;
        e.bytes_written = match scheme {
            Scheme::Full => logical as u64,
            _ => dirty as u64,
        };
        e.chain_length = chain;
        e.into()
    }

    fn model(mtbf_hours: u64) -> CostModel {
        CostModel::new(ModelConfig::with_mtbf(Duration::from_secs(
            mtbf_hours * 3_600,
        )))
    }

    /// Full checkpoints of 1 GiB at 1 GB/s; 1 % of the state dirty after a
    /// 10 s interval.
    fn feed_full(m: &mut CostModel, rng: &mut StdRng, n: usize, compute: f64) {
        for _ in 0..n {
            let stall = (0.02 + GIB / 1e9) * (1.0 + 0.02 * rng.random_range(-1.0..1.0));
            m.observe(&event(
                Scheme::Full,
                compute,
                stall,
                stall,
                GIB,
                0.01 * GIB * compute / 10.0,
                1,
            ));
        }
    }

    fn feed_incremental(m: &mut CostModel, rng: &mut StdRng, n: usize, compute: f64) {
        for i in 0..n {
            let dirty = 0.01 * GIB * compute / 10.0 * rng.random_range(0.5..1.5);
            let stall = 0.01 + dirty / 1e9 * (1.0 + 0.02 * rng.random_range(-1.0..1.0));
            m.observe(&event(
                Scheme::Incremental,
                compute,
                stall,
                stall,
                GIB,
                dirty,
                2 + (i % 8) as u32,
            ));
        }
    }

    #[test]
    fn nothing_to_say_before_the_first_checkpoint() {
        let m = model(24);
        assert!(
            m.evaluate(
                Plan::only(Scheme::Full),
                Duration::from_secs(10),
                &Constraints::default()
            )
            .is_none()
        );
    }

    #[test]
    fn tunes_a_constant_cost_to_daly_interval() {
        let mut m = model(1);
        let mut rng = StdRng::seed_from_u64(1);
        feed_full(&mut m, &mut rng, 30, 10.0);
        let constraints = Constraints {
            allowed: SchemeSet::of(&[Scheme::Full]),
            ..Constraints::default()
        };
        let eval = m
            .evaluate(
                Plan::only(Scheme::Full),
                Duration::from_secs(10),
                &constraints,
            )
            .expect("observed");
        let delta = eval.current_tuned.stall.as_secs_f64();
        // The posterior MTBF: 1 h configured, ~6 min run without failure.
        assert!(eval.mtbf_secs > 3_600.0 && eval.mtbf_secs < 4_000.0);
        let want = daly_interval(delta, eval.mtbf_secs);
        let got = eval.current_tuned.interval.as_secs_f64();
        assert!(
            (got - want).abs() < 0.01 * want,
            "tuned {got} s, Daly {want} s"
        );
        let Some(Recommendation::SetInterval { advice }) = eval.recommendations.first() else {
            panic!(
                "expected an interval change, got {:?}",
                eval.recommendations
            );
        };
        // Checkpointing 1 s of state every 10 s costs ~10 %; at ~85 s it is
        // about 2.4 %.
        assert!(
            advice.overhead_now > 0.1 && advice.overhead_after < 0.03,
            "{advice:?}"
        );
        assert!(advice.saving > 0.05 && advice.confidence > 0.99);
        assert_eq!(advice.interval.steps, Some((got / 1.0).round() as u64));
        assert!(
            eval.recommendations
                .first()
                .expect("one")
                .to_string()
                .contains("Young")
        );
    }

    #[test]
    fn switches_when_one_scheme_is_clearly_cheaper() {
        let mut m = model(1);
        let mut rng = StdRng::seed_from_u64(2);
        feed_full(&mut m, &mut rng, 20, 60.0);
        feed_incremental(&mut m, &mut rng, 20, 60.0);
        // Copy-on-write, never measured, would be priced from priors.
        let measured = Constraints {
            allowed: SchemeSet::of(&[Scheme::Full, Scheme::Incremental]),
            ..Constraints::default()
        };
        let eval = m
            .evaluate(Plan::only(Scheme::Full), Duration::from_secs(60), &measured)
            .expect("observed");
        let best = eval.best().expect("candidates");
        assert_eq!(
            best.plan.base(),
            Scheme::Incremental,
            "{:#?}",
            eval.candidates
        );
        assert_eq!(best.basis, Basis::Observed);
        let Some(Recommendation::Switch { from, to, advice }) = eval.recommendations.first() else {
            panic!("expected a switch, got {:?}", eval.recommendations);
        };
        assert_eq!((*from, *to), (Scheme::Full, Scheme::Incremental));
        assert!(
            advice.plan.full_every().is_some(),
            "incremental keeps bounded chains"
        );
        assert!(
            advice.saving > 0.01 && advice.confidence > 0.99,
            "{advice:?}"
        );
        // Allowed schemes are respected.
        let only_full = Constraints {
            allowed: SchemeSet::of(&[Scheme::Full]),
            ..Constraints::default()
        };
        let eval = m
            .evaluate(
                Plan::only(Scheme::Full),
                Duration::from_secs(60),
                &only_full,
            )
            .expect("observed");
        assert!(
            eval.candidates
                .iter()
                .all(|c| c.plan.base() == Scheme::Full)
        );
    }

    #[test]
    fn prices_an_unmeasured_scheme_from_priors() {
        let mut m = model(1);
        let mut rng = StdRng::seed_from_u64(3);
        feed_full(&mut m, &mut rng, 10, 60.0);
        let eval = m
            .evaluate(
                Plan::only(Scheme::Full),
                Duration::from_secs(60),
                &Constraints::default(),
            )
            .expect("observed");
        let inc = eval
            .candidates
            .iter()
            .find(|c| c.plan.base() == Scheme::Incremental)
            .expect("incremental priced");
        assert_eq!(inc.basis, Basis::Prior);
        // 6 % dirty after 60 s: an incremental write of ~64 MB at 1 GB/s.
        assert!(inc.stall.as_secs_f64() < 0.2, "{inc:?}");
        let rec = eval.recommendations.first().expect("a change");
        assert_eq!(rec.advice().basis, Basis::Prior);
        assert!(
            rec.advice().confidence <= 0.5,
            "priors are not trusted: {rec}"
        );
        assert!(rec.to_string().contains("estimated before measuring"));
    }

    #[test]
    fn adds_a_full_base_when_chains_make_restores_slow() {
        let mut m = model(1);
        let mut rng = StdRng::seed_from_u64(4);
        feed_full(&mut m, &mut rng, 5, 60.0);
        // A long chain on the current plan, and restores that pay per link.
        for i in 0..40u32 {
            let dirty = 0.06 * GIB;
            let stall = 0.01 + dirty / 1e9;
            m.observe(&event(
                Scheme::Incremental,
                60.0,
                stall,
                stall,
                GIB,
                dirty,
                2 + i,
            ));
        }
        for chain in [1u32, 5, 10, 20, 40, 3, 7] {
            let mut r = RestoreEvent::new(0, secs(1.0 + 2.0 * f64::from(chain)), chain);
            r.bytes_read = GIB as u64;
            m.observe(&r.into());
        }
        let current = Plan::only(Scheme::Incremental);
        let constraints = Constraints {
            allowed: SchemeSet::of(&[Scheme::Incremental]),
            ..Constraints::default()
        };
        let eval = m
            .evaluate(current, Duration::from_secs(60), &constraints)
            .expect("observed");
        let Some(Recommendation::Add {
            addition: Addition::FullEvery(k),
            advice,
        }) = eval.recommendations.first()
        else {
            panic!("expected a full base, got {:?}", eval.recommendations);
        };
        assert!((2..=64).contains(k));
        assert!(advice.overhead_after < advice.overhead_now);
        assert!(eval.current_tuned.restart > eval.best().expect("best").restart);
    }

    #[test]
    fn drops_full_bases_a_scheme_does_not_need() {
        let mut m = model(1);
        let mut rng = StdRng::seed_from_u64(5);
        feed_full(&mut m, &mut rng, 10, 60.0);
        for _ in 0..10 {
            let stall = 0.002 * rng.random_range(0.9..1.1);
            m.observe(&event(
                Scheme::CopyOnWrite,
                60.0,
                stall,
                1.0,
                GIB,
                0.06 * GIB,
                1,
            ));
        }
        let current = Plan::with_full_every(Scheme::CopyOnWrite, 4);
        let constraints = Constraints {
            allowed: SchemeSet::of(&[Scheme::CopyOnWrite]),
            ..Constraints::default()
        };
        let eval = m
            .evaluate(current, Duration::from_secs(60), &constraints)
            .expect("observed");
        let Some(Recommendation::Drop { dropped, advice }) = eval.recommendations.first() else {
            panic!("expected a drop, got {:?}", eval.recommendations);
        };
        assert_eq!(*dropped, Addition::FullEvery(4));
        assert_eq!(advice.plan, Plan::only(Scheme::CopyOnWrite));
    }

    #[test]
    fn restarts_update_the_failure_rate() {
        let mut m = model(24);
        for _ in 0..360 {
            m.observe(&event(Scheme::Full, 99.0, 1.0, 1.0, GIB, GIB, 1));
        }
        for _ in 0..10 {
            m.observe(&RestartEvent::new(FailureClass::Process).into());
        }
        // (1 + 10) / (24 h + 10 h).
        let want = 34.0 * 3_600.0 / 11.0;
        assert!(
            (m.mtbf_secs() - want).abs() < 1e-6 * want,
            "{}",
            m.mtbf_secs()
        );
        let rate = m.failure_rate(FailureClass::Process);
        assert!(rate.lower < 1.0 / want && 1.0 / want < rate.upper);
        assert_eq!(m.failure_rate(FailureClass::Store).per_second, 0.0);
    }

    #[test]
    fn slow_tier_copies_do_not_touch_fast_tier_fits() {
        let mut m = model(1);
        let mut rng = StdRng::seed_from_u64(7);
        feed_full(&mut m, &mut rng, 5, 10.0);
        let before = m.evaluate(
            Plan::only(Scheme::Full),
            secs(10.0),
            &Constraints::default(),
        );
        let Event::Checkpoint(mut drain) = event(Scheme::Full, 0.0, 0.0, 30.0, GIB, GIB, 1) else {
            unreachable!()
        };
        drain.tier = 1;
        m.observe(&drain.into());
        assert_eq!(m.drain_fit().count(), 1);
        assert_eq!(m.summary().checkpoints, 6);
        let after = m.evaluate(
            Plan::only(Scheme::Full),
            secs(10.0),
            &Constraints::default(),
        );
        assert_eq!(before.map(|e| e.candidates), after.map(|e| e.candidates));
    }

    #[test]
    fn dirty_bytes_grow_with_the_interval() {
        let mut m = model(1);
        let mut rng = StdRng::seed_from_u64(6);
        feed_full(&mut m, &mut rng, 10, 10.0);
        let pricer = m.pricer().expect("observed");
        // 1 % after 10 s: about 2 % after 20 s, and never more than all.
        let d10 = pricer.dirty_at(10.0) / GIB;
        let d20 = pricer.dirty_at(20.0) / GIB;
        assert!(
            (d10 - 0.01).abs() < 1e-3 && (d20 - 0.0199).abs() < 1e-3,
            "{d10} {d20}"
        );
        assert!(pricer.dirty_at(1e9) <= GIB * (1.0 + 1e-12));
    }

    #[test]
    fn a_checkpoint_that_found_everything_dirty_does_not_pin_the_dirty_rate() {
        let mut m = model(1);
        // A dense phase: everything dirty at every checkpoint...
        for _ in 0..10 {
            m.observe(&event(Scheme::Full, 10.0, 1.0, 1.0, GIB, GIB, 1));
        }
        assert!(m.pricer().expect("observed").dirty_at(10.0) > 0.99 * GIB);
        // ...then a sparse one: 2 % per 10 s. Within a few checkpoints the
        // model follows; a mean of per-checkpoint rates would stay near
        // "everything" for a hundred (each dense checkpoint counted as a
        // rate of ln(10⁹)/10 s).
        for _ in 0..15 {
            m.observe(&event(Scheme::Full, 10.0, 1.0, 1.0, GIB, 0.02 * GIB, 1));
        }
        let d = m.pricer().expect("observed").dirty_at(10.0) / GIB;
        assert!(d < 0.1, "{d}");
    }

    #[test]
    fn a_scheme_measured_once_can_be_left_for_a_measured_cheaper_one() {
        let mut m = model(1);
        let mut rng = StdRng::seed_from_u64(8);
        // One full checkpoint (1 s of a 1 GiB write), then a trial of
        // incremental at a tenth of the cost.
        feed_full(&mut m, &mut rng, 1, 60.0);
        feed_incremental(&mut m, &mut rng, 4, 60.0);
        let constraints = Constraints {
            allowed: SchemeSet::of(&[Scheme::Full, Scheme::Incremental]),
            ..Constraints::default()
        };
        let eval = m
            .evaluate(Plan::only(Scheme::Full), secs(60.0), &constraints)
            .expect("observed");
        assert_eq!(eval.current.basis, Basis::Observed, "measured once");
        let Some(Recommendation::Switch { advice, .. }) = eval.recommendations.first() else {
            panic!("expected a switch, got {:?}", eval.recommendations);
        };
        assert_eq!(advice.basis, Basis::Observed);
        assert!(advice.confidence > 0.9, "{advice:?}");
        // The configured uncertainty stands in for the spread one
        // checkpoint cannot show.
        assert!(eval.current.std_error > 0.0 && eval.current.std_error.is_finite());
    }

    #[test]
    fn a_first_restore_does_not_make_every_estimate_uncertain() {
        let mut m = model(1);
        let mut rng = StdRng::seed_from_u64(9);
        feed_full(&mut m, &mut rng, 10, 60.0);
        feed_incremental(&mut m, &mut rng, 10, 60.0);
        let mut restore = RestoreEvent::new(0, secs(2.0), 1);
        restore.bytes_read = GIB as u64;
        m.observe(&restore.into());
        let eval = m
            .evaluate(
                Plan::only(Scheme::Full),
                secs(60.0),
                &Constraints::default(),
            )
            .expect("observed");
        assert!(
            eval.candidates.iter().all(|c| c.std_error.is_finite()),
            "{:#?}",
            eval.candidates
        );
        // The restore seen prices restarts: 2 s for the whole state.
        let full = eval.current_tuned.restart.as_secs_f64();
        assert!((full - 2.0).abs() < 0.1, "{full}");
    }

    #[test]
    fn steps_all_beside_persists_are_compared_with_recent_idle_steps() {
        let interval = |steps: u64, beside: u64, beside_ms: u64, all_ms: u64| {
            let mut e = CheckpointEvent::new(Scheme::CopyOnWrite, 1);
            e.steps = steps;
            e.steps_beside_persist = beside;
            e.compute = Duration::from_millis(all_ms);
            e.compute_beside_persist = Duration::from_millis(beside_ms);
            e
        };
        // Half the steps beside a persist, 25 % slower than the rest.
        let mixed = interval(8, 4, 250, 450);
        assert_eq!(idle_step_secs(&mixed), Some(0.05));
        let s = slowdown(&mixed, idle_step_secs(&mixed)).expect("both kinds");
        assert!((s - 0.25).abs() < 1e-9, "{s}");
        // Persists back to back: every step beside one, 60 % slower than
        // the idle steps seen before; unknown without them.
        let busy = interval(2, 2, 160, 160);
        assert_eq!(idle_step_secs(&busy), None);
        assert_eq!(slowdown(&busy, None), None);
        let s = slowdown(&busy, Some(0.05)).expect("against the recent idle steps");
        assert!((s - 0.6).abs() < 1e-9, "{s}");
        // No step beside a persist: nothing to learn.
        assert_eq!(slowdown(&interval(4, 0, 0, 200), Some(0.05)), None);
    }

    #[test]
    fn measured_interference_makes_background_persists_dearer() {
        let cow_events = |m: &mut CostModel, slowdown: f64| {
            for _ in 0..10 {
                let Event::Checkpoint(mut e) =
                    event(Scheme::CopyOnWrite, 6.0, 0.001, 1.0, GIB, GIB, 1)
                else {
                    unreachable!()
                };
                // 10 steps of 0.5 s, 2 of them beside the last persist.
                e.steps_beside_persist = 2;
                e.compute_beside_persist = secs(2.0 * 0.5 * (1.0 + slowdown));
                e.compute = secs(8.0 * 0.5) + e.compute_beside_persist;
                m.observe(&e.into());
            }
        };
        let overhead = |slowdown: f64| {
            let mut m = model(1);
            let mut rng = StdRng::seed_from_u64(10);
            feed_full(&mut m, &mut rng, 5, 6.0);
            cow_events(&mut m, slowdown);
            m.evaluate(
                Plan::only(Scheme::CopyOnWrite),
                secs(6.0),
                &Constraints::default(),
            )
            .expect("observed")
            .current
            .overhead
        };
        let (quiet, busy) = (overhead(0.0), overhead(0.5));
        // Half of a 1 s persist lost per 6 s: about 8 % more overhead.
        assert!(busy > quiet + 0.05, "{quiet} {busy}");
    }

    #[test]
    fn copy_on_write_full_bases_are_written_in_the_background_too() {
        let mut m = model(1);
        let mut rng = StdRng::seed_from_u64(12);
        feed_full(&mut m, &mut rng, 10, 60.0);
        for i in 0..12u32 {
            // Increments of 1 % and, every 4th, a full base: both stall
            // 2 ms, the base takes a full write to persist.
            let base = i % 4 == 0;
            let stored = if base { GIB } else { 0.01 * GIB };
            let persist = 0.01 + stored / 1e9;
            let Event::Checkpoint(mut e) = event(
                Scheme::CopyOnWrite,
                60.0,
                0.002,
                persist,
                GIB,
                0.01 * GIB,
                if base { 1 } else { 1 + i % 4 },
            ) else {
                unreachable!()
            };
            e.bytes_written = stored as u64;
            m.observe(&e.into());
        }
        let constraints = Constraints {
            allowed: SchemeSet::of(&[Scheme::CopyOnWrite]),
            ..Constraints::default()
        };
        let eval = m
            .evaluate(
                Plan::with_full_every(Scheme::CopyOnWrite, 4),
                secs(60.0),
                &constraints,
            )
            .expect("observed");
        // Not a full checkpoint's 1 s stall every 4th time: still ~2 ms.
        let stall = eval.current.stall.as_secs_f64();
        assert!(stall < 0.01, "{stall}");
        // But the base's persist counts: (3 × ~20 ms + ~1 s) / 4.
        let persist = eval.current.persist.as_secs_f64();
        assert!((0.2..0.4).contains(&persist), "{persist}");
    }

    #[test]
    fn a_measured_improvement_is_offered_while_a_cheaper_guess_is_unmeasured() {
        let mut m = model(1);
        let mut rng = StdRng::seed_from_u64(13);
        feed_full(&mut m, &mut rng, 10, 60.0);
        feed_incremental(&mut m, &mut rng, 10, 60.0);
        // Copy-on-write is unmeasured; its prior (a 2 % stall) looks best.
        let eval = m
            .evaluate(
                Plan::only(Scheme::Full),
                secs(60.0),
                &Constraints::default(),
            )
            .expect("observed");
        let kinds: Vec<(Scheme, Basis)> = eval
            .recommendations
            .iter()
            .filter_map(|r| match r {
                Recommendation::Switch { to, advice, .. } => Some((*to, advice.basis)),
                _ => None,
            })
            .collect();
        assert_eq!(
            kinds,
            [
                (Scheme::CopyOnWrite, Basis::Prior),
                (Scheme::Incremental, Basis::Observed)
            ],
            "{:#?}",
            eval.recommendations
        );
    }

    #[test]
    fn a_third_checkpoint_does_not_make_a_scheme_look_less_known() {
        let confidence = |incrementals: usize| {
            let mut m = model(1);
            let mut rng = StdRng::seed_from_u64(14);
            feed_full(&mut m, &mut rng, 1, 60.0);
            feed_incremental(&mut m, &mut rng, incrementals, 60.0);
            let constraints = Constraints {
                allowed: SchemeSet::of(&[Scheme::Full, Scheme::Incremental]),
                ..Constraints::default()
            };
            let eval = m
                .evaluate(Plan::only(Scheme::Full), secs(60.0), &constraints)
                .expect("observed");
            eval.recommendations
                .first()
                .map_or(0.0, |r| r.advice().confidence)
        };
        // Priced with the prior's uncertainty at 2, fitted from 3 on: the
        // fit's t multiplier (>10 at 3) must not undo what was learnt.
        for n in 2..6 {
            assert!(confidence(n) > 0.9, "{n} incrementals: {}", confidence(n));
        }
    }
}
