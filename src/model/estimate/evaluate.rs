//! [`CostModel::evaluate`]: prices the current plan and every allowed
//! candidate at its best interval, and turns the differences into
//! [`Recommendation`]s with their confidence and reasons in words.

use super::config::Constraints;
use super::cost_model::CostModel;
use super::evaluation::{Evaluation, PlanEstimate, SchemeStatus};
use super::pricing::Pricer;
use crate::model::cost::young_interval;
use crate::model::plan::Plan;
use crate::model::recommend::{
    Addition, Advice, Basis, Bytes, IntervalAdvice, Recommendation, Secs,
};
use statrs::distribution::{ContinuousCDF, Normal};
use std::time::Duration;

/// Highest confidence claimed for a comparison involving a prior-based
/// estimate: the priors are structural guesses whose error the fits cannot
/// measure, so until the scheme is measured it is a coin flip.
const PRIOR_CONFIDENCE: f64 = 0.5;

const FULL_EVERY_CANDIDATES: [u32; 11] = [2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64];

/// Drain ratios tried, with lower tiers, for the current plan and for the
/// best plan at the current ratio (within
/// [`Constraints::max_drain_every`]).
const DRAIN_EVERY_CANDIDATES: [u32; 10] = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32];

impl CostModel {
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
        // A plan over the memory budget is never a candidate (the current
        // one stays priced, so that a change away from it can be advised).
        let fits = |c: &PlanEstimate| {
            constraints
                .memory_budget
                .is_none_or(|budget| c.extra_memory <= budget as f64)
        };
        let mut candidates: Vec<PlanEstimate> = self
            .candidate_plans(&pricer, current, constraints)
            .into_iter()
            .filter_map(|plan| pricer.optimize(plan, lo, hi))
            .filter(fits)
            .collect();
        candidates.sort_by(|a, b| a.overhead.total_cmp(&b.overhead));
        if current.drain_every().is_some() {
            // The drain ratio, searched for the plan in force and for the
            // best plan at the ratio in force.
            let best = candidates.first().map(|c| c.plan);
            // The best plan may be the plan in force: each plan once.
            let plans = match best {
                Some(best) if best != current => vec![current, best],
                _ => vec![current],
            };
            let ratios: Vec<Plan> = plans
                .into_iter()
                .flat_map(|plan| {
                    DRAIN_EVERY_CANDIDATES
                        .iter()
                        .filter(|k| **k <= constraints.max_drain_every)
                        .map(move |k| plan.draining_every(*k))
                })
                .filter(|plan| candidates.iter().all(|c| c.plan != *plan))
                .collect();
            candidates.extend(
                ratios
                    .into_iter()
                    .filter_map(|plan| pricer.optimize(plan, lo, hi))
                    .filter(fits),
            );
            candidates.sort_by(|a, b| a.overhead.total_cmp(&b.overhead));
        }
        let mut recommendations = Vec::new();
        // A current plan over the budget is left for any plan that fits.
        let over_budget = !fits(&tuned);
        let better =
            |c: &&PlanEstimate| c.plan != current && (over_budget || c.overhead < tuned.overhead);
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
            changes_detected: self.changes_detected(),
            change_pending: self.change_pending(),
            dirtiness_measured: self.dirtiness_measured(),
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
        if let Some(k) = current.drain_every() {
            plans = plans.into_iter().map(|p| p.draining_every(k)).collect();
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
                to.base(),
                Secs(best.stall.as_secs_f64()),
                Secs(best.persist.as_secs_f64()),
                from.base(),
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
        if from.full_every() == to.full_every()
            && let Some(k) = to.drain_every()
        {
            let mut advice = self.advice(now, tuned, best, self.drain_reason(pricer, from, to));
            if advice.basis == Basis::Observed
                && let Some(se) = pricer.paired_std_error(tuned, best)
            {
                advice.confidence = normal_confidence(tuned.overhead - best.overhead, se);
            }
            return Recommendation::Add {
                addition: Addition::DrainEvery(k),
                advice,
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
                    to.base(),
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

    /// Why a drain ratio: the two failure classes' MTBFs, and what the
    /// ratio trades.
    fn drain_reason(&self, pricer: &Pricer<'_>, from: Plan, to: Plan) -> String {
        let (process, node) = pricer.failure_rates();
        let mtbf = |rate: f64| {
            Secs(if rate > 0.0 {
                1.0 / rate
            } else {
                f64::INFINITY
            })
        };
        let (was, now) = (
            from.drain_every().unwrap_or(1),
            to.drain_every().unwrap_or(1),
        );
        let trade = if now > was {
            "fewer drains cost less and a lost first tier loses more"
        } else {
            "a lost first tier loses less work and more drains cost more"
        };
        format!(
            "node failures (first tier lost, MTBF {}) against process failures (MTBF {}): \
             draining every {now} instead of every {was} checkpoints, {trade}",
            mtbf(node),
            mtbf(process),
        )
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

/// `Φ((O_before − O_after)/√(se_before² + se_after²))`: two plans priced
/// from separate fits, whose errors are independent.
fn confidence(before: &PlanEstimate, after: &PlanEstimate) -> f64 {
    normal_confidence(
        before.overhead - after.overhead,
        before.std_error.hypot(after.std_error),
    )
}

/// `Φ(gap/se)`: how sure a saving of `gap` with standard error `se` is.
fn normal_confidence(gap: f64, se: f64) -> f64 {
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
