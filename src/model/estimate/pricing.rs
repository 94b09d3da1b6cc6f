//! Pricing: a per-evaluation snapshot of what was learned ([`Pricer`])
//! that prices one plan at one compute interval — per-checkpoint costs,
//! restart cost, Daly's overhead — and its standard error (see the
//! [parent module](super) for the maths).

use super::config::ModelConfig;
use super::cost_model::{CostModel, secs};
use super::drains::DrainCosts;
use super::evaluation::PlanEstimate;
use super::learned::RunningMean;
use crate::model::cost::{daly_overhead, minimize_interval};
use crate::model::fit::{Driver, Estimate, Solved, z_multiplier};
use crate::model::plan::Plan;
use crate::model::recommend::Basis;
use crate::scheme::Scheme;

/// Share of a confidence half-width the costs are moved by to find how
/// the overhead responds to them (see "Uncertainty" in the module docs).
const SE_STEP: f64 = 0.1;

/// How far below the fewest bytes a scheme was measured storing a plan's
/// interval may take it in one decision. A fit that rests on checkpoints
/// of one size (a trial's five) cannot tell a write's fixed cost (a
/// manifest, the fsyncs) from its per-byte cost; extrapolated to an
/// interval that dirties a hundredth of that, it predicts a persist of
/// almost nothing, and the plan checkpoints every step with persists back
/// to back. Within a factor of four the error stays small, and the next
/// decision, from checkpoints at the shorter interval, can go further.
const TRUST_FACTOR: f64 = 4.0;

/// Where in their confidence intervals to take the costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Bound {
    Mean,
    /// The mean plus [`SE_STEP`] half-widths.
    Upper,
    /// The mean minus [`SE_STEP`] half-widths.
    Lower,
}

impl Bound {
    pub(super) fn pick(self, mean: f64, half_width: f64) -> f64 {
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

pub(super) struct SchemeCosts {
    scheme: Scheme,
    pricing: Pricing,
    pub(super) chains: bool,
    /// The fewest bytes its checkpoints stored (infinite if never
    /// measured).
    least_stored: f64,
}

/// Per-evaluation snapshot of everything needed to price plans.
pub(super) struct Pricer<'a> {
    config: &'a ModelConfig,
    logical: f64,
    dirty: f64,
    dirty_rate: Option<f64>,
    ratio: f64,
    pub(super) chain: f64,
    pub(super) mtbf: f64,
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
    /// Drains and lower-tier restores, for plans with a drain ratio.
    drains: DrainCosts,
    /// See [`CostModel::persist_queue`].
    persist_queue: f64,
}

/// Cost of one checkpoint: what the computation loses, and how long after
/// it resumes the checkpoint becomes durable.
#[derive(Debug, Clone, Copy)]
struct CheckpointCost {
    stall: f64,
    persist: f64,
}

impl Pricer<'_> {
    pub(super) fn scheme(&self, scheme: Scheme) -> Option<&SchemeCosts> {
        self.costs.iter().find(|c| c.scheme == scheme)
    }

    /// Posterior mean rates of process and node failures, per second,
    /// as plans with a drain ratio are priced.
    pub(super) fn failure_rates(&self) -> (f64, f64) {
        (self.drains.process_rate, self.drains.node_rate)
    }

    pub(super) fn dirty_at(&self, tau: f64) -> f64 {
        match self.dirty_rate {
            Some(r) if self.logical > 0.0 => -self.logical * (-r * tau).exp_m1(),
            _ => self.dirty,
        }
    }

    fn checkpoint(&self, costs: &SchemeCosts, dirty: f64, bound: Bound) -> CheckpointCost {
        let s = self.logical;
        // Write times scale with the dirty bytes; a copy-on-write stall (a
        // snapshot) and a full checkpoint (the whole state) scale with them
        // no more than their fits show, and never fall as they grow.
        let own = |stall: &Solved, persist: &Solved| {
            let write = |fit: &Solved| {
                let e = fit.predict_with_slope_prior(dirty, s, self.write_slope);
                fit.at_least_proportional(dirty, e)
            };
            match costs.scheme {
                Scheme::Incremental => (write(stall), write(persist)),
                Scheme::CopyOnWrite => (stall.predict_nondecreasing(dirty, s), write(persist)),
                Scheme::Full => (
                    stall.predict_nondecreasing(dirty, s),
                    persist.predict_nondecreasing(dirty, s),
                ),
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

    /// How long a capture waits for room in the persist queue after a
    /// background full base of cost `full`, at `tau`: the captures that
    /// follow it queue, and once [`persist_queue`](CostModel::persist_queue)
    /// intervals have passed the next one waits until the base is durable.
    /// At short intervals this is most of what a base costs: a 64 MiB base
    /// that took 400 ms to persist held up a plan checkpointing every
    /// 67 ms for 248 ms, 8 ms per checkpoint of a 32-checkpoint cycle,
    /// where the cycle's average persist (18 ms) said none.
    fn base_queue_wait(&self, full: CheckpointCost, tau: f64) -> f64 {
        (full.persist - full.stall - self.persist_queue * tau).max(0.0)
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
        let drains_ok = plan.drain_every().is_none() || self.drains.measured();
        if fitted(plan.base()) && full_ok && drains_ok {
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
        let (cycle, chain, queued) = match plan.full_every() {
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
                let queued = if plan.base() == Scheme::CopyOnWrite {
                    self.base_queue_wait(full, tau) / k
                } else {
                    0.0
                };
                let chain = if base.chains { 0.5 * (k + 1.0) } else { 1.0 };
                (cycle, chain, queued)
            }
            None if base.chains => (b, self.chain.max(1.0), 0.0),
            None => (b, 1.0, 0.0),
        };
        let lag = cycle.persist - cycle.stall;
        let beta = self.interference;
        // Captures wait for the persist queue when persists outrun the
        // interval on average, or while a full base persists: the longer
        // of the two waits, since both are the same queue.
        let delta = cycle.stall + beta * lag + (lag - tau).max(0.0).max(queued);
        let restart = self.restore_time(chain, bound) + self.config.relaunch.as_secs_f64() + lag;
        let overhead = match plan.drain_every() {
            Some(k) => {
                let stored = self.logical / self.ratio;
                let per_byte = self.ratio * self.write_slope.mean.max(0.0);
                let terms = self.drains.terms(
                    plan,
                    k,
                    tau,
                    delta,
                    stored,
                    self.ratio,
                    |t| self.dirty_at(t),
                    |bytes| bytes * per_byte,
                    bound,
                );
                let process_mtbf = rate_to_mtbf(self.drains.process_rate);
                let process =
                    daly_overhead(tau, delta + terms.per_checkpoint, restart, process_mtbf);
                let cycle = terms.cycle * (1.0 + process);
                let node = self.drains.node_overhead(cycle, terms.node_restart);
                (1.0 + process) * (1.0 + node) - 1.0
            }
            None => daly_overhead(tau, delta, restart, self.mtbf),
        };
        Some(Priced {
            overhead,
            cost: cycle,
            restart,
            dirty,
        })
    }

    pub(super) fn estimate(&self, plan: Plan, tau: f64) -> Option<PlanEstimate> {
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
            extra_memory: self.extra_memory(plan, mean.cost.persist),
            basis: self.basis(plan),
        })
    }

    /// The standard error of `before.overhead − after.overhead` when the
    /// two differ only in the drain ratio and the interval: the same fits
    /// price both, so their costs move together, and the difference is
    /// far surer than either overhead (each overhead's error is how it
    /// moves when every cost moves by a share of its confidence interval;
    /// the difference's is how the difference moves under that same
    /// move). `None` for other pairs, or where the move cannot price them.
    ///
    /// Treating the two as independent, as for plans of different
    /// schemes, made every drain-ratio change a coin flip: after node
    /// failures grew five times as frequent, k = 1 priced 23 points of
    /// overhead below the k = 12 in force with standard errors of ±1.4
    /// and ±2.1 (the drain fit's), 55 % confidence, and the ratio stayed
    /// for the rest of the run.
    pub(super) fn paired_std_error(
        &self,
        before: &PlanEstimate,
        after: &PlanEstimate,
    ) -> Option<f64> {
        let (from, to) = (before.plan, after.plan);
        if from.base() != to.base() || from.full_every() != to.full_every() {
            return None;
        }
        let gap = |bound: Bound| {
            let was = self.price(from, before.interval.as_secs_f64(), bound)?;
            let will = self.price(to, after.interval.as_secs_f64(), bound)?;
            Some(was.overhead - will.overhead)
        };
        let (hi, lo) = (gap(Bound::Upper)?, gap(Bound::Lower)?);
        let z = z_multiplier(self.config.level);
        let se = (hi - lo).abs() / (2.0 * SE_STEP * z);
        se.is_finite().then_some(se)
    }

    /// Bytes a plan keeps twice at its peak: with a copy-on-write base,
    /// what the computation dirties during a persist of `persist` seconds
    /// (at the learned rate; the whole state while the rate is unknown).
    fn extra_memory(&self, plan: Plan, persist: f64) -> f64 {
        if plan.base() != Scheme::CopyOnWrite {
            return 0.0;
        }
        match self.dirty_rate {
            Some(rate) => self.logical * -(-rate * persist.max(0.0)).exp_m1(),
            None => self.logical,
        }
    }

    /// The shortest interval `plan` may be priced at: the one at which
    /// its base scheme would store [`TRUST_FACTOR`] times fewer bytes
    /// than it was ever measured storing. None for a full base (it stores
    /// the whole state at any interval) or before the scheme or the
    /// dirtying rate was measured.
    fn trusted_from(&self, plan: Plan) -> f64 {
        if plan.base() == Scheme::Full {
            return 0.0;
        }
        let least = self
            .scheme(plan.base())
            .map_or(f64::INFINITY, |c| c.least_stored);
        match self.dirty_rate {
            Some(rate) if rate > 0.0 && least.is_finite() && self.logical > 0.0 => {
                let fraction = (least / TRUST_FACTOR / self.logical).clamp(0.0, 1.0 - 1e-9);
                -(-fraction).ln_1p() / rate
            }
            _ => 0.0,
        }
    }

    pub(super) fn optimize(&self, plan: Plan, lo: f64, hi: f64) -> Option<PlanEstimate> {
        let lo = lo.max(self.trusted_from(plan)).min(hi);
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

/// `1/rate`, infinite for a zero rate.
pub(super) fn rate_to_mtbf(rate: f64) -> f64 {
    if rate > 0.0 {
        1.0 / rate
    } else {
        f64::INFINITY
    }
}

/// The half-width of a fitted cost combined with the configured prior
/// uncertainty (`u` times the cost) by inverse variance: a fit on three or
/// four checkpoints has a Student-t multiplier of 4 to 13 and would claim
/// less than the two checkpoints priced with the prior alone did; with
/// more checkpoints the fit's own interval takes over.
pub(super) fn capped(e: Estimate, u: f64) -> f64 {
    let prior = u * e.mean.abs();
    let usable = |x: f64| x > 0.0 && x.is_finite();
    match (usable(prior), usable(e.half_width)) {
        (true, true) => (prior.powi(-2) + e.half_width.powi(-2)).sqrt().recip(),
        // An unbounded (or undefined) fit interval: the prior's.
        (true, false) if e.half_width != 0.0 => prior,
        _ => e.half_width,
    }
}

impl CostModel {
    pub(super) fn pricer(&self) -> Option<Pricer<'_>> {
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
                    least_stored: record.map_or(f64::INFINITY, |r| r.least_stored),
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
        let logical = l.logical.get().unwrap_or(0.0);
        Some(Pricer {
            config: &self.config,
            logical,
            // Unmeasured (only a first capture seen): the whole state.
            dirty: l.dirty.get().unwrap_or(logical),
            dirty_rate: l.dirty_rate(),
            ratio,
            chain: l.chain.get().unwrap_or(1.0),
            mtbf: self.mtbf_secs(),
            costs,
            restore,
            restore_chain_mean: l.restore.means().1.max(1.0),
            restores_seen,
            write_slope,
            drains: DrainCosts::new(self),
            persist_queue: f64::from(self.persist_queue),
            interference: priced_interference(&l.interference, self.config.background_interference),
        })
    }
}

/// The slowdown a running mean of log step-time ratios prices
/// (`exp(mean) − 1`, at most [`MAX_INTERFERENCE`](super::cost_model::MAX_INTERFERENCE)),
/// `prior` before it saw any.
pub(super) fn priced_interference(log_ratios: &RunningMean, prior: f64) -> f64 {
    log_ratios.get().map_or(prior, |log_ratio| {
        log_ratio
            .exp_m1()
            .clamp(0.0, super::cost_model::MAX_INTERFERENCE)
    })
}
