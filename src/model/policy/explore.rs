//! Exploring: trials of schemes the current plan does not use — directed
//! when a prior-based estimate predicts a saving, random (seeded) to keep
//! estimates fresh — at the model's best interval for the scheme.

use super::config::Policy;
use super::state::{PolicyState, Trial};
use crate::model::decision::Decision;
use crate::model::estimate::Evaluation;
use crate::model::plan::Plan;
use crate::model::recommend::Basis;
use crate::scheme::Scheme;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

impl PolicyState {
    pub(super) fn explore(&mut self, policy: &Policy, eval: &Evaluation) -> Decision {
        let seen = eval.checkpoints;
        let settling = self.phase.settling(policy, seen);
        let cooling = |explored: &[(u8, u64)], s: Scheme| {
            explored.iter().any(|(code, at)| {
                *code == s.code() && seen.saturating_sub(*at) < policy.min_dwell.max(1)
            })
        };
        // The current plan measures its own schemes as it runs.
        let current = eval.current.plan;
        let in_use = |s: Scheme| {
            s == current.base() || (s == Scheme::Full && current.full_every().is_some())
        };
        let unmeasured = |s: Scheme| {
            eval.schemes
                .iter()
                .find(|st| st.scheme == s)
                .is_none_or(|st| !st.measured)
        };
        let directed = eval.recommendations.iter().find_map(|r| {
            let a = r.advice();
            if a.basis != Basis::Prior || a.saving < policy.min_saving {
                return None;
            }
            let plan = a.plan;
            let full = plan.full_every().map(|_| Scheme::Full);
            [Some(plan.base()), full]
                .into_iter()
                .flatten()
                .find(|s| !in_use(*s) && unmeasured(*s) && !cooling(&self.explored, *s))
                .map(|s| (s, format!("the estimate for {plan} rests on priors and predicts a saving; measuring it")))
        });
        // Try the scheme where it would run: at the interval the model
        // finds best for it (candidates are sorted, cheapest first).
        let trial_interval =
            |scheme: Scheme| best_interval(eval, scheme).unwrap_or(eval.current.interval);
        // One draw per evaluation, whether or not it is used, so that the
        // stream of draws does not depend on what was decided.
        let draw = self.draw(policy);
        // A trial that goes back spends two of the phase's switches.
        if !self.phase.allows(policy, 2) {
            return Decision::Hold;
        }
        // A random trial is worth its cost only for a scheme that could
        // still win: one whose cheapest plan, two standard errors below its
        // estimate, would beat the current plan (or that has no estimate).
        let plausible = |s: Scheme| {
            eval.candidates
                .iter()
                .filter(|c| c.plan.base() == s)
                .min_by(|a, b| a.overhead.total_cmp(&b.overhead))
                .is_none_or(|c| {
                    c.overhead - 2.0 * c.std_error < eval.current_tuned.overhead
                        || c.overhead.is_nan()
                })
        };
        // Under a memory budget, only schemes with a plan that fits it
        // (the evaluation drops the others from its candidates).
        let fits = |s: Scheme| {
            policy.constraints.memory_budget.is_none()
                || eval.candidates.iter().any(|c| c.plan.base() == s)
        };
        let chosen = directed.or_else(|| {
            if settling {
                return None;
            }
            let scheme = eval
                .schemes
                .iter()
                .filter(|st| {
                    !in_use(st.scheme)
                        && !cooling(&self.explored, st.scheme)
                        && plausible(st.scheme)
                        && fits(st.scheme)
                })
                .max_by_key(|st| st.since_seen.unwrap_or(u64::MAX))?
                .scheme;
            let per_evaluation = policy.exploration / f64::from(policy.explore_checkpoints.max(1));
            let time_share = time_ratio(eval.current.interval, trial_interval(scheme));
            (draw < per_evaluation * time_share).then(|| {
                (
                    scheme,
                    "random exploration keeps its estimate fresh".to_owned(),
                )
            })
        });
        let Some((scheme, reason)) = chosen else {
            return Decision::Hold;
        };
        let interval = trial_interval(scheme);
        self.start_trial(policy, seen, current.base(), scheme, interval, reason)
    }

    /// Starts a trial of `scheme` from a plan whose base is `from`.
    pub(super) fn start_trial(
        &mut self,
        policy: &Policy,
        seen: u64,
        from: Scheme,
        scheme: Scheme,
        interval: Duration,
        reason: String,
    ) -> Decision {
        if scheme != from {
            self.phase.spend();
        }
        self.explored.retain(|(code, _)| *code != scheme.code());
        self.explored.push((scheme.code(), seen));
        let checkpoints = policy.explore_checkpoints;
        self.exploring_until = Some(seen.saturating_add(u64::from(checkpoints)));
        self.trial = Some(Trial {
            scheme: scheme.code(),
            interval_secs: interval.as_secs_f64(),
        });
        Decision::Explore {
            scheme,
            checkpoints,
            interval,
            reason,
        }
    }

    /// True when `scheme` was tried within the last `min_dwell`
    /// checkpoints.
    pub(super) fn cooling(&self, policy: &Policy, seen: u64, scheme: Scheme) -> bool {
        self.explored.iter().any(|(code, at)| {
            *code == scheme.code() && seen.saturating_sub(*at) < policy.min_dwell.max(1)
        })
    }

    /// One uniform draw in [0, 1), reproducible from the seed and the
    /// number of draws so far (so the state stays a plain counter).
    fn draw(&mut self, policy: &Policy) -> f64 {
        self.draws = self.draws.wrapping_add(1);
        let stream = policy.seed ^ self.draws.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        StdRng::seed_from_u64(stream).random()
    }
}

/// The model's best compute interval for `scheme` alone (or, failing
/// that, for its cheapest plan), measured or priced from priors.
pub(super) fn best_interval(eval: &Evaluation, scheme: Scheme) -> Option<Duration> {
    eval.candidates
        .iter()
        .find(|c| c.plan == Plan::only(scheme))
        .or_else(|| eval.candidates.iter().find(|c| c.plan.base() == scheme))
        .map(|c| c.interval)
}

/// `min(1, current / trial)`: how much less often than the current plan a
/// trial checkpoints, which makes each of its checkpoints last that much
/// longer (1 when either interval is unknown).
fn time_ratio(current: Duration, trial: Duration) -> f64 {
    let ratio = current.as_secs_f64() / trial.as_secs_f64();
    if ratio.is_finite() && ratio > 0.0 {
        ratio.min(1.0)
    } else {
        1.0
    }
}
