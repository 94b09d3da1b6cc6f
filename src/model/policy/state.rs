//! [`PolicyState`]: the policy's memory between evaluations — streaks,
//! dwell, trials and the plan in force — and what it tells a process that
//! restarts on it.

use super::config::{Policy, PolicyMode};
use super::phase::PhaseBudget;
use crate::model::plan::Plan;
use crate::scheme::Scheme;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Streak {
    pub(super) plan: Plan,
    pub(super) interval_secs: f64,
    pub(super) count: u32,
}

/// The plan and interval the policy last applied.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(super) struct InForce {
    pub(super) plan: Plan,
    pub(super) interval_secs: f64,
}

/// The policy's memory between evaluations (streaks, dwell, exploration,
/// and the plan it applied): stored with the model so a restart neither
/// forgets nor flaps, and resumes the plan that was in force.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PolicyState {
    pub(super) streak: Option<Streak>,
    pub(super) last_change: Option<u64>,
    pub(super) exploring_until: Option<u64>,
    pub(super) explored: Vec<(u8, u64)>,
    pub(super) draws: u64,
    pub(super) applied: u64,
    pub(super) in_force: Option<InForce>,
    /// The trial that runs while `exploring_until` is set.
    pub(super) trial: Option<Trial>,
    /// Scheme switches spent in the current phase of the workload.
    pub(super) phase: PhaseBudget,
}

/// A trial the policy started: the scheme and the compute interval it runs
/// at.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(super) struct Trial {
    pub(super) scheme: u8,
    pub(super) interval_secs: f64,
}

impl PolicyState {
    /// Changes applied so far.
    pub fn changes_applied(&self) -> u64 {
        self.applied
    }

    /// The plan and compute interval the policy last applied, if it
    /// applied any and they are still within `policy`'s constraints: what
    /// a checkpointer restarting under `policy` should resume with. `None`
    /// unless `policy` is automatic.
    pub fn in_force(&self, policy: &Policy) -> Option<(Plan, Duration)> {
        let f = self.in_force.filter(|_| policy.mode == PolicyMode::Auto)?;
        let c = &policy.constraints;
        let every = Duration::try_from_secs_f64(f.interval_secs).ok()?;
        let full_ok = f.plan.full_every().is_none_or(|k| {
            k <= c.max_full_every && c.allowed.contains(crate::scheme::Scheme::Full)
        });
        let drain_ok = f.plan.drain_every().is_none_or(|k| k <= c.max_drain_every);
        let allowed = c.allowed.contains(f.plan.base())
            && full_ok
            && drain_ok
            && (c.min_interval..=c.max_interval).contains(&every);
        allowed.then_some((f.plan, every))
    }

    /// Forgets a trial that was running when the process stopped and that
    /// cannot go on (see [`PolicyState::trial`]): a new process starts on
    /// the plan in force, so the trial's scheme was not measured as
    /// planned and may be tried again at once.
    pub fn abandon_trial(&mut self) {
        if self.trial.take().is_some() {
            // Back on the plan in force: a switch, as a trial's end is.
            self.phase.spend();
        }
        if self.exploring_until.take().is_some() {
            self.explored.pop();
        }
    }

    /// The trial that was running when this state was saved, if `policy`
    /// still allows its scheme and interval: its scheme and compute
    /// interval. A process that restarts after a crash goes on with it for
    /// the checkpoints it has left, since the evidence that started it did
    /// not change; waiting instead for the plan in force to checkpoint and
    /// decide again would cost a whole interval of the old plan.
    pub fn trial(&self, policy: &Policy) -> Option<(Scheme, Duration)> {
        self.exploring_until?;
        let t = self.trial.filter(|_| policy.mode == PolicyMode::Auto)?;
        let scheme = Scheme::from_code(t.scheme)?;
        let every = Duration::try_from_secs_f64(t.interval_secs).ok()?;
        let c = &policy.constraints;
        (c.allowed.contains(scheme) && (c.min_interval..=c.max_interval).contains(&every))
            .then_some((scheme, every))
    }

    /// True while a trial started by [`Decision::Explore`](crate::model::Decision::Explore) runs.
    pub fn exploring(&self, checkpoints: u64) -> bool {
        self.exploring_until
            .is_some_and(|until| checkpoints < until)
    }
}
