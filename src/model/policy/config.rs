//! [`PolicyMode`] and [`Policy`]: how much the policy may act on the model's
//! recommendations, within which bounds and thresholds, and how it
//! explores.

use crate::error::{Error, Result};
use crate::model::estimate::Constraints;
use crate::model::plan::SchemeSet;
use crate::model::recommend::{Advice, Recommendation};
use crate::scheme::Scheme;
use std::time::Duration;

/// How much the policy may act on recommendations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyMode {
    /// Observe only: the model learns, nothing is reported or changed.
    Fixed,
    /// Report recommendations that clear the thresholds; change nothing.
    Advise,
    /// Apply recommendations with hysteresis, and explore.
    Auto,
}

/// What to do with the model's recommendations, and within which bounds.
///
/// ```
/// use ckpt::model::Policy;
/// use ckpt::Scheme;
/// use std::time::Duration;
///
/// let policy = Policy::adaptive()
///     .allow(&[Scheme::Full, Scheme::Incremental])
///     .interval_bounds(Duration::from_secs(1), Duration::from_secs(600))
///     .seed(7);
/// policy.validate()?;
/// # Ok::<(), ckpt::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub(super) mode: PolicyMode,
    pub(super) constraints: Constraints,
    pub(super) min_saving: f64,
    pub(super) min_confidence: f64,
    pub(super) patience: u32,
    pub(super) min_dwell: u64,
    pub(super) exploration: f64,
    pub(super) explore_checkpoints: u32,
    pub(super) first_trial: bool,
    pub(super) max_switches_per_phase: u32,
    pub(super) seed: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy::fixed()
    }
}

impl Policy {
    fn with_mode(mode: PolicyMode) -> Self {
        Policy {
            mode,
            constraints: Constraints::default(),
            min_saving: 0.01,
            min_confidence: 0.9,
            patience: 3,
            min_dwell: 10,
            exploration: 0.02,
            explore_checkpoints: 5,
            first_trial: true,
            max_switches_per_phase: 2,
            seed: 0,
        }
    }

    /// Observe only.
    pub fn fixed() -> Self {
        Self::with_mode(PolicyMode::Fixed)
    }

    /// Report recommendations, change nothing.
    pub fn advise() -> Self {
        Self::with_mode(PolicyMode::Advise)
    }

    /// Apply recommendations with hysteresis and a little exploration
    /// (defaults: saving ≥ 1 % of run time at ≥ 90 % confidence, 3
    /// evaluations in a row, 10 checkpoints between changes, 2 %
    /// exploration, 5 checkpoints per trial: enough to measure a scheme
    /// and, if it wins, to agree on it 3 times before the trial ends; at
    /// most 2 scheme changes per detected phase of the workload).
    pub fn adaptive() -> Self {
        Self::with_mode(PolicyMode::Auto)
    }

    /// The mode.
    pub fn mode(&self) -> PolicyMode {
        self.mode
    }

    /// The bounds the model searches within.
    pub fn constraints(&self) -> &Constraints {
        &self.constraints
    }

    /// Only these schemes may be chosen (default: all).
    pub fn allow(mut self, schemes: &[Scheme]) -> Self {
        self.constraints.allowed = SchemeSet::of(schemes);
        self
    }

    /// Most memory, in bytes, a plan may hold beyond the state itself
    /// (default: unlimited). Copy-on-write keeps each page the computation
    /// dirties during a persist twice until the persist ends; the policy
    /// never switches to (or tries) a plan whose expected peak exceeds the
    /// budget, and leaves one that does. With a budget, the first trial of
    /// copy-on-write waits until the model has measured how fast the state
    /// changes.
    pub fn memory_budget(mut self, bytes: u64) -> Self {
        self.constraints.memory_budget = Some(bytes);
        self
    }

    /// Bounds of the compute interval between checkpoints (default 1 ms to
    /// 24 h).
    pub fn interval_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.constraints.min_interval = min;
        self.constraints.max_interval = max;
        self
    }

    /// Largest `k` for "a full base every `k`" (default 64).
    pub fn max_full_every(mut self, k: u32) -> Self {
        self.constraints.max_full_every = k;
        self
    }

    /// Largest `k` for "drain every `k`-th checkpoint" to the lower tiers
    /// (default 32): how much work a lost first tier may cost at most, in
    /// checkpoints.
    pub fn max_drain_every(mut self, k: u32) -> Self {
        self.constraints.max_drain_every = k;
        self
    }

    /// Smallest predicted saving, as a share of run time, worth a change
    /// (default 0.01).
    pub fn min_saving(mut self, share: f64) -> Self {
        self.min_saving = share;
        self
    }

    /// Smallest confidence that a change is an improvement (default 0.9).
    pub fn min_confidence(mut self, probability: f64) -> Self {
        self.min_confidence = probability;
        self
    }

    /// Consecutive evaluations that must agree before a change is applied
    /// (default 3). A change of the interval alone (the plan in force,
    /// retuned) needs only one evaluation when that one carries the
    /// evidence of the whole streak: a saving of at least `patience` times
    /// [`min_saving`](Self::min_saving) at a confidence of at least
    /// `1 − (1 − min_confidence)^patience` (3 % and 99.9 % by default).
    pub fn patience(mut self, evaluations: u32) -> Self {
        self.patience = evaluations;
        self
    }

    /// Checkpoints between two applied changes, and between two trials of
    /// one scheme (default 10).
    pub fn min_dwell(mut self, checkpoints: u64) -> Self {
        self.min_dwell = checkpoints;
        self
    }

    /// Share of the run's time spent trying schemes the current plan does
    /// not use, when evaluated after every checkpoint (default 0.02; 0
    /// turns random exploration off, not the directed trials of schemes
    /// priced from priors). A random trial of `explore_checkpoints`
    /// checkpoints at interval `τ_t` starts with probability `exploration /
    /// explore_checkpoints · min(1, τ / τ_t)` per evaluation, `τ` the
    /// current interval, and only for a scheme that could still win.
    pub fn exploration(mut self, share: f64) -> Self {
        self.exploration = share;
        self
    }

    /// Checkpoints a trial of a scheme lasts (default 5).
    pub fn explore_checkpoints(mut self, checkpoints: u32) -> Self {
        self.explore_checkpoints = checkpoints;
        self
    }

    /// Whether an automatic policy with nothing learnt begins with a trial
    /// of copy-on-write from the first step (default `true`; see
    /// [`PolicyState::begin`](super::PolicyState::begin)). Off, the run starts on the configured
    /// scheme and interval and learns from their first checkpoint.
    pub fn first_trial(mut self, on: bool) -> Self {
        self.first_trial = on;
        self
    }

    /// Most changes of the scheme in use between two changes of the
    /// workload the model detects (default 2; trials count: one that goes
    /// back spends two, so fewer than 2 allows no trial). Bounds how much
    /// a steady workload pays for learning: once spent, the scheme stays
    /// until the step time, dirtiness or write cost changes.
    pub fn max_switches_per_phase(mut self, switches: u32) -> Self {
        self.max_switches_per_phase = switches;
        self
    }

    /// Seed of the exploration RNG (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Checks every value; the error names the first bad one.
    pub fn validate(&self) -> Result<()> {
        let bad = |option: &'static str, reason: &str| {
            Err(Error::InvalidConfig {
                option,
                reason: reason.to_owned(),
            })
        };
        let c = &self.constraints;
        if c.allowed.is_empty() {
            return bad("policy.allow", "allow at least one scheme");
        }
        if c.min_interval.is_zero() || c.min_interval > c.max_interval {
            return bad("policy.interval_bounds", "need 0 < min <= max");
        }
        if c.max_full_every < 2 {
            return bad("policy.max_full_every", "must be at least 2");
        }
        if c.max_drain_every < 1 {
            return bad("policy.max_drain_every", "must be at least 1");
        }
        if !(0.0..1.0).contains(&self.min_saving) {
            return bad("policy.min_saving", "must be a share in [0, 1), e.g. 0.01");
        }
        if !(0.5..1.0).contains(&self.min_confidence) {
            return bad("policy.min_confidence", "must be in [0.5, 1), e.g. 0.9");
        }
        if self.patience == 0 {
            return bad("policy.patience", "must be at least 1");
        }
        if !(0.0..=1.0).contains(&self.exploration) {
            return bad("policy.exploration", "must be a share in [0, 1], e.g. 0.02");
        }
        if self.explore_checkpoints == 0 {
            return bad("policy.explore_checkpoints", "must be at least 1");
        }
        Ok(())
    }

    /// Whether one evaluation's `advice` carries the evidence of a whole
    /// streak of [`patience`](Self::patience) passing ones.
    pub(super) fn sure(&self, advice: &Advice) -> bool {
        let streak = i32::try_from(self.patience).unwrap_or(i32::MAX);
        let doubt = (1.0 - self.min_confidence).powi(streak);
        advice.saving >= self.min_saving * f64::from(self.patience)
            && advice.confidence >= 1.0 - doubt
    }

    pub(super) fn passes(&self, rec: &Recommendation) -> bool {
        let a = rec.advice();
        a.saving >= self.min_saving && a.confidence >= self.min_confidence
    }
}
