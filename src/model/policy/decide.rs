//! Deciding: the first trial an automatic policy begins with
//! ([`PolicyState::begin`]), and what to do about an evaluation
//! ([`PolicyState::decide`]) — advise once, or apply a change after
//! `patience` agreeing evaluations and `min_dwell` checkpoints.

use super::config::{Policy, PolicyMode};
use super::explore::best_interval;
use super::state::{InForce, PolicyState, Streak};
use crate::model::decision::Decision;
use crate::model::estimate::Evaluation;
use crate::model::plan::Plan;
use crate::model::recommend::Basis;
use crate::scheme::Scheme;
use std::cmp::Ordering;

impl PolicyState {
    /// The trial an automatic policy begins with when nothing is learnt
    /// yet (no checkpoint observed, nothing applied or tried), if
    /// [`Policy::first_trial`] is on, copy-on-write is allowed and
    /// `current` does not use it already: a trial of copy-on-write whose
    /// first checkpoint is due after the first step (the smallest allowed
    /// interval), whose second is due one step after the first is durable
    /// (the first capture of a fresh state finds every page new; the
    /// second measures how fast the computation changes it), and whose
    /// later ones follow the model's best interval for it.
    ///
    /// Until its first checkpoint the model can price nothing, and all work
    /// done is at risk. Copy-on-write blocks the computation least of the
    /// schemes (only its snapshot), and its first checkpoint writes the
    /// whole state, which also prices a full checkpoint (from the pooled
    /// write fit), so that first measurement is the cheapest one there is.
    /// If the configured plan was never measured when the trial decides,
    /// the trial's scheme can be applied on its predicted saving alone (see
    /// the module docs); the configured plan is then measured only if a
    /// random trial finds it could still win.
    pub fn begin(&mut self, policy: &Policy, checkpoints: u64, current: Plan) -> Option<Decision> {
        let cow = Scheme::CopyOnWrite;
        let fresh = checkpoints == 0
            && self.in_force.is_none()
            && self.exploring_until.is_none()
            && self.explored.is_empty();
        // Under a memory budget copy-on-write waits until the model knows
        // how much it would hold: before anything is measured, the whole
        // state.
        let wanted = policy.mode == PolicyMode::Auto
            && policy.first_trial
            && policy.constraints.allowed.contains(cow)
            && policy.constraints.memory_budget.is_none()
            && current.base() != cow;
        if !(fresh && wanted) {
            return None;
        }
        if !self.phase.allows(policy, 2) {
            return None;
        }
        let reason = "nothing is learnt yet: copy-on-write blocks the computation least, so its \
                      first checkpoint, right after the first step, measures the machine at the \
                      lowest cost"
            .to_owned();
        let interval = policy.constraints.min_interval;
        Some(self.start_trial(policy, 0, current.base(), cow, interval, reason))
    }

    /// Decides what to do about `evaluation` under `policy`.
    pub fn decide(&mut self, policy: &Policy, evaluation: &Evaluation) -> Decision {
        match policy.mode {
            PolicyMode::Fixed => Decision::Hold,
            PolicyMode::Advise => self.advise(policy, evaluation),
            PolicyMode::Auto => self.decide_auto(policy, evaluation),
        }
    }

    /// Reports the first recommendation that clears the thresholds, once:
    /// the same advice (same plan, interval within ±25 %) is not repeated
    /// until something else was advised or nothing was.
    fn advise(&mut self, policy: &Policy, eval: &Evaluation) -> Decision {
        let Some(rec) = eval.recommendations.iter().find(|r| policy.passes(r)) else {
            self.streak = None;
            return Decision::Hold;
        };
        let interval = rec.interval().every.as_secs_f64();
        let repeated = self
            .streak
            .as_ref()
            .is_some_and(|s| s.plan == rec.plan() && within(s.interval_secs, interval, 1.25));
        if repeated {
            return Decision::Hold;
        }
        self.streak = Some(Streak {
            plan: rec.plan(),
            interval_secs: interval,
            count: 1,
        });
        Decision::Advise(rec.clone())
    }

    /// During a trial the evaluation is of the plan in force (the one the
    /// trial returns to), so a trial that shows its scheme is better builds
    /// the streak that applies it, and ends in the switch instead of going
    /// back first; nothing new is explored until the trial ends.
    fn decide_auto(&mut self, policy: &Policy, eval: &Evaluation) -> Decision {
        let seen = eval.checkpoints;
        self.phase.update(policy, eval.changes_detected, seen);
        let exploring = self.exploring(seen);
        let in_force = eval.current.plan.base();
        // The scheme the last checkpoints used: a running (or just ended)
        // trial's.
        let in_use = self
            .trial
            .and_then(|t| Scheme::from_code(t.scheme))
            .unwrap_or(in_force);
        // A trial that ended goes back to the plan in force (a switch),
        // unless it ends in a switch to its own scheme below (a refund).
        let returning = !exploring && in_use != in_force;
        if !exploring {
            self.exploring_until = None;
            self.trial = None;
        }
        if returning {
            self.phase.spend();
        }
        // A trial runs its scheme where it would run: at the model's best
        // interval for it, re-estimated as the trial measures it. Until a
        // checkpoint has measured how fast the state changes, that
        // interval prices every checkpoint as the whole state; the trial
        // stays at the interval it began with (the first trial's: one
        // step), where a checkpoint costs least and measures the rate.
        // This comes before the hold for a pending change below: a trial
        // left at one step while the change is confirmed runs its
        // checkpoints back to back, and a stale estimate is still a far
        // better interval than one step.
        if let Some(trial) = self
            .trial
            .as_mut()
            .filter(|_| exploring && eval.dirtiness_measured)
        {
            let best = Scheme::from_code(trial.scheme).and_then(|s| best_interval(eval, s));
            if let Some(every) = best.filter(|d| !d.is_zero()) {
                trial.interval_secs = every.as_secs_f64();
            }
        }
        if eval.change_pending {
            // The newest checkpoint may be the first of a changed workload
            // that this evaluation still prices as the old one: neither
            // act on it nor count it towards a streak. (After a trial
            // that ended is cleared: a state saved with it would resume
            // the trial after a crash.)
            self.streak = None;
            return Decision::Hold;
        }
        let observed = |s: Scheme| {
            eval.schemes
                .iter()
                .any(|st| st.scheme == s && st.observations > 0)
        };
        // Copy-on-write writes its full bases itself; an incremental plan's
        // are full checkpoints.
        let plan_observed = |plan: Plan| {
            let bases_observed = plan.base() != Scheme::Incremental
                || plan.full_every().is_none()
                || observed(Scheme::Full);
            observed(plan.base()) && bases_observed
        };
        // A plan in force that was never measured (the configured one,
        // left at once for the first trial) has only priors against it;
        // leaving it for a measured plan then needs the saving, not a
        // confidence that priors cannot give.
        let in_force_unmeasured = !plan_observed(eval.current.plan);
        let qualifying = eval.recommendations.iter().find(|r| {
            let a = r.advice();
            let evidenced = if in_force_unmeasured {
                a.saving >= policy.min_saving && plan_observed(r.plan())
            } else {
                policy.passes(r) && a.basis == Basis::Observed
            };
            evidenced && policy.constraints.allowed.contains(r.plan().base())
        });
        let Some(rec) = qualifying else {
            self.streak = None;
            return if exploring {
                Decision::Hold
            } else {
                self.explore(policy, eval)
            };
        };
        let interval = rec.interval().every.as_secs_f64();
        let now = (eval.current.plan, eval.current.interval.as_secs_f64());
        let count = match &self.streak {
            Some(s) if same_change(now, s, rec.plan(), interval) => s.count.saturating_add(1),
            _ => 1,
        };
        // A retune of the plan in force rests on that plan's own
        // measurements and costs nothing to apply, so it waits for its
        // streak but not for the dwell time: a plan applied on estimates
        // made before it was measured (after the first trial, an interval
        // three times too short) would otherwise run `min_dwell`
        // checkpoints at an interval its own measurements have disproved.
        // (Not during a trial: the plan in force is not what runs then.)
        let retune = !exploring && is_retune(eval.current.plan, rec.plan());
        // A streak guards against noise; a retune whose one evaluation
        // carries the evidence of the whole streak (see
        // [`Policy::patience`]) does not need the rest of it. With
        // persists back to back the plan checkpoints every few seconds, and
        // three evaluations at "64 % of run time, 100 % confidence" let a
        // 108 MiB state on slow storage persist behind itself for 3.4 s.
        let sure = retune && policy.sure(rec.advice());
        let dwelt = retune
            || self
                .last_change
                .is_none_or(|at| seen.saturating_sub(at) >= policy.min_dwell);
        // Leaving a trial costs a switch however it ends; otherwise a
        // change of scheme needs the phase's budget.
        let switch = rec.plan().base() != in_use;
        let affordable = exploring || returning || self.phase.allows(policy, u32::from(switch));
        if (count >= policy.patience || sure) && dwelt && affordable {
            match (returning, switch) {
                (true, false) => self.phase.refund(),
                (false, true) => self.phase.spend(),
                _ => {}
            }
            self.streak = None;
            self.exploring_until = None;
            self.trial = None;
            if !retune {
                self.last_change = Some(seen);
            }
            self.applied = self.applied.saturating_add(1);
            self.in_force = Some(InForce {
                plan: rec.plan(),
                interval_secs: interval,
            });
            return Decision::Apply(rec.clone());
        }
        let keep_interval = match &self.streak {
            Some(s) if count > 1 => s.interval_secs,
            _ => interval,
        };
        self.streak = Some(Streak {
            plan: rec.plan(),
            interval_secs: keep_interval,
            count,
        });
        // A trial whose scheme is winning runs on until the switch is
        // decided, instead of going back to the old plan for the last
        // evaluations the streak needs.
        let to = rec.plan().base();
        let trial = self.explored.last().map(|(code, _)| *code);
        if exploring && trial == Some(to.code()) {
            // Until the streak is long enough and the last change has
            // dwelt: going back first and switching later would spend two
            // more switches.
            let agreed = seen.saturating_add(u64::from(policy.patience.saturating_sub(count)));
            let dwelt_at = self
                .last_change
                .map_or(0, |at| at.saturating_add(policy.min_dwell));
            let needed = agreed.max(dwelt_at);
            self.exploring_until = self.exploring_until.map(|until| until.max(needed));
        }
        // A switch to another scheme that is building its streak is
        // confirmed on that scheme: a trial of it, during which the streak
        // goes on (and which ends in the switch if it holds). The old plan
        // may checkpoint far less often than the new one would, and
        // waiting for its checkpoints to agree costs more than trying.
        if !exploring
            && dwelt
            && to != in_force
            && !self.cooling(policy, seen, to)
            && self.phase.allows(policy, 2)
        {
            let reason = format!(
                "confirming a measured saving ({} of {} evaluations agree) on {} itself",
                count, policy.patience, to
            );
            return self.start_trial(policy, seen, in_force, to, rec.interval().every, reason);
        }
        Decision::Hold
    }
}

/// Whether `to` at `interval` is the change `streak` has been counting,
/// seen from the plan in force, `current` at its interval.
///
/// A change of scheme, or adding or dropping a full base, is the same
/// change whatever cadence and interval come with it: the estimates of the
/// new plan's best interval and full-base cadence move as it is measured,
/// near-equal cadences trade places as the best from one evaluation to the
/// next, and the change's merit does not hinge on either. A new drain ratio
/// is the same change as long as it moves the ratio the same way (up or
/// down). A retune of the plan in force (its full-base cadence or its
/// interval) is the same while it moves each of them the same way
/// (longer, shorter, or — the interval within ±25 % — neither): the
/// estimates of the best interval move as the plan is measured at the
/// one in force, and every one of them that says "longer" at a confident
/// saving says the interval in force is wrong the same way.
fn same_change(current: (Plan, f64), streak: &Streak, to: Plan, interval: f64) -> bool {
    let (now, now_interval) = current;
    let kind = |p: Plan| (p.base(), p.full_every().is_some());
    if kind(to) != kind(now) {
        kind(streak.plan) == kind(to)
    } else if to.drain_every() != now.drain_every() {
        // A new drain ratio: the same change while it moves the same way
        // (near-equal ratios trade places as the costs are measured).
        let direction = |p: Plan| p.drain_every().cmp(&now.drain_every());
        kind(streak.plan) == kind(to)
            && streak.plan.full_every() == to.full_every()
            && direction(streak.plan) == direction(to)
    } else {
        let way = |p: Plan, secs: f64| {
            let length = if within(secs, now_interval, 1.25) {
                Ordering::Equal
            } else {
                secs.total_cmp(&now_interval)
            };
            (p.full_every().cmp(&now.full_every()), length)
        };
        is_retune(now, streak.plan) && way(streak.plan, streak.interval_secs) == way(to, interval)
    }
}

/// True when `to` keeps the scheme, the presence of a full base and the
/// drain ratio of `current`: a change of its full-base cadence or interval
/// only.
fn is_retune(current: Plan, to: Plan) -> bool {
    to.base() == current.base()
        && to.full_every().is_some() == current.full_every().is_some()
        && to.drain_every() == current.drain_every()
}

fn within(a: f64, b: f64, factor: f64) -> bool {
    a > 0.0 && b > 0.0 && a / b <= factor && b / a <= factor
}
