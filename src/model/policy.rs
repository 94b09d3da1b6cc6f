//! Policies: what to do with the model's recommendations.
//!
//! * [`Mode::Fixed`]: the model only observes.
//! * [`Mode::Advise`]: recommendations that clear the thresholds are
//!   reported (each once, until the advice changes); nothing changes.
//! * [`Mode::Auto`]: recommendations are applied, with hysteresis so the
//!   configuration never flaps:
//!   1. a recommendation counts only if its predicted saving is at least
//!      `min_saving` of run time, its confidence at least
//!      `min_confidence`, and it rests on measurements ([`Basis::Observed`]);
//!   2. the *same* change (a switch to the same scheme, adding or dropping
//!      a full base, whatever cadence and interval the estimates settle on
//!      meanwhile; otherwise the same plan with an interval within ±25 %)
//!      must count in `patience` consecutive evaluations — one miss starts
//!      over; what is applied is the latest of them;
//!   3. at least `min_dwell` checkpoints must pass between two applied
//!      changes.
//!
//!   A plan in force that was never measured is the exception to rule 1:
//!   leaving it for a plan whose schemes were measured needs only the
//!   saving (its confidence rests on priors for the old plan and cannot
//!   reach `min_confidence`). This happens after the first trial below.
//!
//!   **The first trial.** With nothing learnt, an automatic policy begins
//!   with a trial of copy-on-write ([`PolicyState::begin`]; turn it off
//!   with [`Policy::first_trial`]): its first checkpoint is taken after the
//!   first step, so the model has evidence at once, and it blocks the
//!   computation least of the schemes while writing the whole state, which
//!   prices a full checkpoint too. The configured plan resumes when the
//!   trial ends, unless the trial ends in a switch.
//!
//!   Exploration keeps the estimates of unused schemes fresh: when an
//!   estimate resting on priors ([`Basis::Prior`]) predicts a saving of at
//!   least `min_saving`, the scheme it lacks is tried (directed), and
//!   otherwise the allowed scheme the current plan does not use, that
//!   could still win (its cheapest plan's overhead less two standard
//!   errors is below the current plan's) and that was seen longest ago is
//!   tried at random (from a seeded RNG so runs are reproducible). A trial lasts `explore_checkpoints` checkpoints, at
//!   the interval `τ_t` the model finds best for the scheme; a random one
//!   starts with probability `exploration / explore_checkpoints · min(1,
//!   τ / τ_t)` per evaluation (`τ` the current interval), so that about
//!   `exploration` of the run's time, and at most that share of its
//!   checkpoints, goes to random trials when the policy is evaluated after
//!   every checkpoint. (Counting checkpoints alone would let a scheme that
//!   checkpoints five times less often spend five times the share of the
//!   run on trials.) A scheme is not tried again within `min_dwell`
//!   checkpoints. A trial's interval follows the model's best interval for
//!   its scheme as the trial measures it. During a trial the policy keeps
//!   judging the plan in force: if the trial shows its scheme is better,
//!   the switch builds its streak during the trial (which runs on until
//!   the streak decides) and is applied from it, instead of going back to
//!   the old plan first.
//!   Likewise, a measured switch to another scheme that starts a streak
//!   is confirmed on that scheme, in a trial, rather than on the old
//!   plan's checkpoints, which may be far apart.

use super::decision::Decision;
use super::estimate::{Constraints, Evaluation};
use super::plan::{Plan, SchemeSet};
use super::recommend::{Basis, Recommendation};
use crate::error::{Error, Result};
use crate::scheme::Scheme;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How much the policy may act on recommendations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
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
    mode: Mode,
    constraints: Constraints,
    min_saving: f64,
    min_confidence: f64,
    patience: u32,
    min_dwell: u64,
    exploration: f64,
    explore_checkpoints: u32,
    first_trial: bool,
    seed: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy::fixed()
    }
}

impl Policy {
    fn with_mode(mode: Mode) -> Self {
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
            seed: 0,
        }
    }

    /// Observe only.
    pub fn fixed() -> Self {
        Self::with_mode(Mode::Fixed)
    }

    /// Report recommendations, change nothing.
    pub fn advise() -> Self {
        Self::with_mode(Mode::Advise)
    }

    /// Apply recommendations with hysteresis and a little exploration
    /// (defaults: saving ≥ 1 % of run time at ≥ 90 % confidence, 3
    /// evaluations in a row, 10 checkpoints between changes, 2 %
    /// exploration, 5 checkpoints per trial: enough to measure a scheme
    /// and, if it wins, to agree on it 3 times before the trial ends).
    pub fn adaptive() -> Self {
        Self::with_mode(Mode::Auto)
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
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
    /// (default 3).
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
    /// [`PolicyState::begin`]). Off, the run starts on the configured
    /// scheme and interval and learns from their first checkpoint.
    pub fn first_trial(mut self, on: bool) -> Self {
        self.first_trial = on;
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

    fn passes(&self, rec: &Recommendation) -> bool {
        let a = rec.advice();
        a.saving >= self.min_saving && a.confidence >= self.min_confidence
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Streak {
    plan: Plan,
    interval_secs: f64,
    count: u32,
}

/// The plan and interval the policy last applied.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct InForce {
    plan: Plan,
    interval_secs: f64,
}

/// The policy's memory between evaluations (streaks, dwell, exploration,
/// and the plan it applied): stored with the model so a restart neither
/// forgets nor flaps, and resumes the plan that was in force.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PolicyState {
    streak: Option<Streak>,
    last_change: Option<u64>,
    exploring_until: Option<u64>,
    explored: Vec<(u8, u64)>,
    draws: u64,
    applied: u64,
    in_force: Option<InForce>,
    /// The trial that runs while `exploring_until` is set.
    trial: Option<Trial>,
}

/// A trial the policy started: the scheme and the compute interval it runs
/// at.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Trial {
    scheme: u8,
    interval_secs: f64,
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
        let f = self.in_force.filter(|_| policy.mode == Mode::Auto)?;
        let c = &policy.constraints;
        let every = Duration::try_from_secs_f64(f.interval_secs).ok()?;
        let full_ok = f.plan.full_every().is_none_or(|k| {
            k <= c.max_full_every && c.allowed.contains(crate::scheme::Scheme::Full)
        });
        let allowed = c.allowed.contains(f.plan.base())
            && full_ok
            && (c.min_interval..=c.max_interval).contains(&every);
        allowed.then_some((f.plan, every))
    }

    /// Forgets a trial that was running when the process stopped and that
    /// cannot go on (see [`PolicyState::trial`]): a new process starts on
    /// the plan in force, so the trial's scheme was not measured as
    /// planned and may be tried again at once.
    pub fn abandon_trial(&mut self) {
        self.trial = None;
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
        let t = self.trial.filter(|_| policy.mode == Mode::Auto)?;
        let scheme = Scheme::from_code(t.scheme)?;
        let every = Duration::try_from_secs_f64(t.interval_secs).ok()?;
        let c = &policy.constraints;
        (c.allowed.contains(scheme) && (c.min_interval..=c.max_interval).contains(&every))
            .then_some((scheme, every))
    }

    /// True while a trial started by [`Decision::Explore`] runs.
    pub fn exploring(&self, checkpoints: u64) -> bool {
        self.exploring_until
            .is_some_and(|until| checkpoints < until)
    }

    /// The trial an automatic policy begins with when nothing is learnt
    /// yet (no checkpoint observed, nothing applied or tried), if
    /// [`Policy::first_trial`] is on, copy-on-write is allowed and
    /// `current` does not use it already: a trial of copy-on-write whose
    /// first checkpoint is due after the first step (the smallest allowed
    /// interval), and whose later ones follow the model's best interval
    /// for it.
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
        let wanted = policy.mode == Mode::Auto
            && policy.first_trial
            && policy.constraints.allowed.contains(cow)
            && current.base() != cow;
        if !(fresh && wanted) {
            return None;
        }
        let reason = "nothing is learnt yet: copy-on-write blocks the computation least, so its \
                      first checkpoint, right after the first step, measures the machine at the \
                      lowest cost"
            .to_owned();
        Some(self.start_trial(policy, 0, cow, policy.constraints.min_interval, reason))
    }

    /// Decides what to do about `evaluation` under `policy`.
    pub fn decide(&mut self, policy: &Policy, evaluation: &Evaluation) -> Decision {
        match policy.mode {
            Mode::Fixed => Decision::Hold,
            Mode::Advise => self.advise(policy, evaluation),
            Mode::Auto => self.decide_auto(policy, evaluation),
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
        let exploring = self.exploring(seen);
        if !exploring {
            self.exploring_until = None;
            self.trial = None;
        }
        // A trial runs its scheme where it would run: at the model's best
        // interval for it, re-estimated as the trial measures it.
        if let Some(trial) = self.trial.as_mut().filter(|_| exploring) {
            let best = Scheme::from_code(trial.scheme).and_then(|s| best_interval(eval, s));
            if let Some(every) = best.filter(|d| !d.is_zero()) {
                trial.interval_secs = every.as_secs_f64();
            }
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
        let count = match &self.streak {
            Some(s) if same_change(eval.current.plan, s, rec.plan(), interval) => {
                s.count.saturating_add(1)
            }
            _ => 1,
        };
        let dwelt = self
            .last_change
            .is_none_or(|at| seen.saturating_sub(at) >= policy.min_dwell);
        if count >= policy.patience && dwelt {
            self.streak = None;
            self.exploring_until = None;
            self.trial = None;
            self.last_change = Some(seen);
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
            let needed = seen.saturating_add(u64::from(policy.patience.saturating_sub(count)));
            self.exploring_until = self.exploring_until.map(|until| until.max(needed));
        }
        // A switch to another scheme that is building its streak is
        // confirmed on that scheme: a trial of it, during which the streak
        // goes on (and which ends in the switch if it holds). The old plan
        // may checkpoint far less often than the new one would, and
        // waiting for its checkpoints to agree costs more than trying.
        if !exploring && dwelt && to != eval.current.plan.base() && !self.cooling(policy, seen, to)
        {
            let reason = format!(
                "confirming a measured saving ({} of {} evaluations agree) on {} itself",
                count,
                policy.patience,
                super::plan::scheme_name(to)
            );
            return self.start_trial(policy, seen, to, rec.interval().every, reason);
        }
        Decision::Hold
    }

    fn explore(&mut self, policy: &Policy, eval: &Evaluation) -> Decision {
        let seen = eval.checkpoints;
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
        let chosen = directed.or_else(|| {
            let scheme = eval
                .schemes
                .iter()
                .filter(|st| {
                    !in_use(st.scheme)
                        && !cooling(&self.explored, st.scheme)
                        && plausible(st.scheme)
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
        self.start_trial(policy, seen, scheme, interval, reason)
    }

    fn start_trial(
        &mut self,
        policy: &Policy,
        seen: u64,
        scheme: Scheme,
        interval: Duration,
        reason: String,
    ) -> Decision {
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
    fn cooling(&self, policy: &Policy, seen: u64, scheme: Scheme) -> bool {
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
fn best_interval(eval: &Evaluation, scheme: Scheme) -> Option<Duration> {
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

/// Whether `to` at `interval` is the change `streak` has been counting,
/// seen from the plan `current`.
///
/// A change of scheme, or adding or dropping a full base, is the same
/// change whatever cadence and interval come with it: the estimates of the
/// new plan's best interval and full-base cadence move as it is measured,
/// near-equal cadences trade places as the best from one evaluation to the
/// next, and the change's merit does not hinge on either. Any other change
/// (a new cadence or interval for the same kind of plan) is the same only
/// with the same plan and an interval within ±25 %.
fn same_change(current: Plan, streak: &Streak, to: Plan, interval: f64) -> bool {
    let kind = |p: Plan| (p.base(), p.full_every().is_some());
    if kind(to) != kind(current) {
        kind(streak.plan) == kind(to)
    } else {
        streak.plan == to && within(streak.interval_secs, interval, 1.25)
    }
}

fn within(a: f64, b: f64, factor: f64) -> bool {
    a > 0.0 && b > 0.0 && a / b <= factor && b / a <= factor
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::estimate::{PlanEstimate, SchemeStatus};
    use crate::model::recommend::{Advice, IntervalAdvice};

    fn estimate(plan: Plan, overhead: f64) -> PlanEstimate {
        PlanEstimate {
            plan,
            interval: Duration::from_secs(10),
            overhead,
            std_error: 0.001,
            stall: Duration::from_millis(100),
            persist: Duration::from_millis(100),
            restart: Duration::from_secs(1),
            dirty_bytes: 0.0,
            basis: Basis::Observed,
        }
    }

    fn switch(to: Scheme, saving: f64, basis: Basis) -> Recommendation {
        Recommendation::Switch {
            from: Scheme::Full,
            to,
            advice: Advice {
                plan: Plan::only(to),
                interval: IntervalAdvice {
                    every: Duration::from_secs(10),
                    steps: None,
                },
                overhead_now: 0.05,
                overhead_after: 0.05 - saving,
                saving,
                confidence: 0.99,
                basis,
                reason: "test".into(),
            },
        }
    }

    fn evaluation(checkpoints: u64, recommendations: Vec<Recommendation>) -> Evaluation {
        let current = estimate(Plan::only(Scheme::Full), 0.05);
        let status = |scheme, since: Option<u64>| SchemeStatus {
            scheme,
            observations: if since.is_some() { 10 } else { 0 },
            since_seen: since,
            measured: since.is_some(),
        };
        Evaluation {
            current: current.clone(),
            current_tuned: current.clone(),
            candidates: vec![current],
            recommendations,
            mtbf_secs: 3_600.0,
            checkpoints,
            schemes: vec![
                status(Scheme::Full, Some(0)),
                status(Scheme::Incremental, Some(40)),
                status(Scheme::CopyOnWrite, None),
            ],
        }
    }

    fn quiet() -> Policy {
        Policy::adaptive().exploration(0.0)
    }

    #[test]
    fn applies_a_steady_recommendation_after_patience_then_dwells() {
        let policy = quiet().patience(3).min_dwell(10);
        let mut state = PolicyState::default();
        let rec = || vec![switch(Scheme::Incremental, 0.05, Basis::Observed)];
        let decisions: Vec<_> = (0..3)
            .map(|n| state.decide(&policy, &evaluation(n, rec())))
            .collect();
        // The first agreeing evaluation starts a trial of incremental to
        // confirm it; the streak goes on during the trial.
        assert!(
            matches!(
                &decisions[0],
                Decision::Explore { scheme: Scheme::Incremental, reason, .. } if reason.contains("confirming")
            ),
            "{:?}",
            decisions[0]
        );
        assert_eq!(decisions[1], Decision::Hold);
        assert!(matches!(decisions[2], Decision::Apply(_)));
        // The same advice again right away waits for the dwell time.
        for n in 3..12 {
            assert_eq!(
                state.decide(&policy, &evaluation(n, rec())),
                Decision::Hold,
                "n={n}"
            );
        }
        assert!(matches!(
            state.decide(&policy, &evaluation(12, rec())),
            Decision::Apply(_)
        ));
        assert_eq!(state.changes_applied(), 2);
    }

    /// A stored policy state may be damaged: full counters saturate.
    #[test]
    fn full_counters_saturate() {
        let policy = quiet().patience(3).min_dwell(0);
        let mut state = PolicyState::default();
        let rec = || vec![switch(Scheme::Incremental, 0.05, Basis::Observed)];
        state.decide(&policy, &evaluation(0, rec()));
        let streak = state.streak.as_mut().expect("a streak began");
        streak.count = u32::MAX;
        state.applied = u64::MAX;
        assert!(matches!(
            state.decide(&policy, &evaluation(1, rec())),
            Decision::Apply(_)
        ));
        assert_eq!(state.changes_applied(), u64::MAX);
    }

    #[test]
    fn does_not_flap_when_the_best_alternates() {
        let policy = quiet().patience(2).min_dwell(0);
        let mut state = PolicyState::default();
        for n in 0..1_000 {
            let to = if n % 2 == 0 {
                Scheme::Incremental
            } else {
                Scheme::CopyOnWrite
            };
            let d = state.decide(
                &policy,
                &evaluation(n, vec![switch(to, 0.05, Basis::Observed)]),
            );
            assert!(!matches!(d, Decision::Apply(_)), "n={n}: {d:?}");
        }
    }

    #[test]
    fn does_not_flap_when_the_saving_hovers_at_the_threshold() {
        let policy = quiet().min_saving(0.01).patience(3).min_dwell(20);
        let mut state = PolicyState::default();
        // Alternating just above and just below the threshold: never three
        // in a row.
        for n in 0..1_000 {
            let saving = if n % 2 == 0 { 0.0101 } else { 0.0099 };
            let d = state.decide(
                &policy,
                &evaluation(
                    n,
                    vec![switch(Scheme::Incremental, saving, Basis::Observed)],
                ),
            );
            assert!(!matches!(d, Decision::Apply(_)), "n={n}: {d:?}");
        }
        // Noisy around the threshold, with the target flipping too: applied
        // changes stay rare and never closer than the dwell time.
        let mut rng = StdRng::seed_from_u64(3);
        let mut applied = Vec::new();
        for n in 1_000..3_000 {
            let saving = 0.01 + rng.random_range(-0.002..0.002);
            let to = if rng.random_bool(0.5) {
                Scheme::Incremental
            } else {
                Scheme::CopyOnWrite
            };
            if let Decision::Apply(_) = state.decide(
                &policy,
                &evaluation(n, vec![switch(to, saving, Basis::Observed)]),
            ) {
                applied.push(n);
            }
        }
        assert!(applied.windows(2).all(|w| w[1] - w[0] >= 20), "{applied:?}");
        assert!(applied.len() <= 2_000 / 20);
    }

    #[test]
    fn low_confidence_or_prior_estimates_are_not_applied() {
        let policy = quiet().patience(1);
        let mut state = PolicyState::default();
        let mut weak = switch(Scheme::Incremental, 0.05, Basis::Observed);
        if let Recommendation::Switch { advice, .. } = &mut weak {
            advice.confidence = 0.6;
        }
        assert_eq!(
            state.decide(&policy, &evaluation(0, vec![weak])),
            Decision::Hold
        );
        // A prior-based saving is explored instead (directed exploration),
        // even with random exploration off.
        let d = state.decide(
            &policy,
            &evaluation(1, vec![switch(Scheme::CopyOnWrite, 0.05, Basis::Prior)]),
        );
        assert!(
            matches!(
                d,
                Decision::Explore {
                    scheme: Scheme::CopyOnWrite,
                    checkpoints: 5,
                    ..
                }
            ),
            "{d:?}"
        );
        // While the trial runs, nothing new is explored...
        for n in 2..4 {
            let d = state.decide(
                &policy,
                &evaluation(n, vec![switch(Scheme::Incremental, 0.05, Basis::Prior)]),
            );
            assert_eq!(d, Decision::Hold);
        }
        assert!(state.exploring(4));
        // ...and the trial ends when its time is up.
        assert!(!state.exploring(6));
    }

    #[test]
    fn a_switch_counts_as_the_same_change_while_its_interval_estimate_moves() {
        let policy = quiet().patience(3);
        let mut state = PolicyState::default();
        let with_interval = |secs: u64| {
            let mut rec = switch(Scheme::CopyOnWrite, 0.05, Basis::Observed);
            if let Recommendation::Switch { advice, .. } = &mut rec {
                advice.interval.every = Duration::from_secs(secs);
            }
            vec![rec]
        };
        // 4 s, 6 s, 9 s: each 50 % off the last, the switch all the same
        // (the first starts a confirming trial).
        assert!(matches!(
            state.decide(&policy, &evaluation(0, with_interval(4))),
            Decision::Explore { .. }
        ));
        assert_eq!(
            state.decide(&policy, &evaluation(1, with_interval(6))),
            Decision::Hold
        );
        let Decision::Apply(rec) = state.decide(&policy, &evaluation(2, with_interval(9))) else {
            panic!("the switch was not applied");
        };
        assert_eq!(
            rec.interval().every,
            Duration::from_secs(9),
            "the latest interval"
        );
        // A change of interval alone that moves as much never settles.
        let mut state = PolicyState::default();
        let set_interval = |n: u64, secs: u64| {
            let mut eval = evaluation(n, vec![]);
            let mut rec = switch(Scheme::Full, 0.05, Basis::Observed);
            if let Recommendation::Switch { advice, .. } = &mut rec {
                advice.interval.every = Duration::from_secs(secs);
            }
            eval.recommendations = vec![Recommendation::SetInterval {
                advice: rec.advice().clone(),
            }];
            eval
        };
        for (n, secs) in [(10, 4), (11, 6), (12, 9), (13, 14)] {
            assert_eq!(
                state.decide(&policy, &set_interval(n, secs)),
                Decision::Hold
            );
        }
    }

    #[test]
    fn near_equal_cadences_of_one_switch_do_not_reset_the_streak() {
        let policy = quiet().patience(3);
        let mut state = PolicyState::default();
        let to = |k: u32| {
            let mut rec = switch(Scheme::Incremental, 0.05, Basis::Observed);
            if let Recommendation::Switch { advice, .. } = &mut rec {
                advice.plan = Plan::with_full_every(Scheme::Incremental, k);
            }
            vec![rec]
        };
        assert!(matches!(
            state.decide(&policy, &evaluation(0, to(32))),
            Decision::Explore { .. }
        ));
        assert_eq!(
            state.decide(&policy, &evaluation(1, to(48))),
            Decision::Hold
        );
        let Decision::Apply(rec) = state.decide(&policy, &evaluation(2, to(24))) else {
            panic!("not applied");
        };
        assert_eq!(rec.plan(), Plan::with_full_every(Scheme::Incremental, 24));
        // Switching to another scheme in between starts over.
        let mut state = PolicyState::default();
        let mut cow = to(32);
        if let Some(Recommendation::Switch { to, advice, .. }) = cow.first_mut() {
            *to = Scheme::CopyOnWrite;
            advice.plan = Plan::only(Scheme::CopyOnWrite);
        }
        assert!(matches!(
            state.decide(&policy, &evaluation(0, to(32))),
            Decision::Explore { .. }
        ));
        assert_eq!(state.decide(&policy, &evaluation(1, cow)), Decision::Hold);
        assert_eq!(
            state.decide(&policy, &evaluation(2, to(32))),
            Decision::Hold
        );
    }

    #[test]
    fn a_trial_cut_short_by_a_restart_can_be_tried_again_at_once() {
        let policy = quiet();
        let mut state = PolicyState::default();
        let prior = || vec![switch(Scheme::CopyOnWrite, 0.05, Basis::Prior)];
        assert!(matches!(
            state.decide(&policy, &evaluation(0, prior())),
            Decision::Explore { .. }
        ));
        // Without a restart, the scheme cools down after its trial.
        let mut cooled = state.clone();
        assert_eq!(
            cooled.decide(&policy, &evaluation(6, prior())),
            Decision::Hold
        );
        // A new process never ran the trial: it may start it again.
        state.abandon_trial();
        assert!(!state.exploring(1));
        assert!(matches!(
            state.decide(&policy, &evaluation(1, prior())),
            Decision::Explore {
                scheme: Scheme::CopyOnWrite,
                ..
            }
        ));
    }

    #[test]
    fn a_trial_runs_at_the_schemes_best_interval_and_can_end_in_the_switch() {
        let policy = quiet().patience(3);
        let mut state = PolicyState::default();
        let mut eval = evaluation(0, vec![switch(Scheme::CopyOnWrite, 0.05, Basis::Prior)]);
        let mut cow = estimate(Plan::only(Scheme::CopyOnWrite), 0.02);
        cow.interval = Duration::from_secs(3);
        eval.candidates.insert(0, cow);
        let d = state.decide(&policy, &eval);
        let Decision::Explore {
            scheme, interval, ..
        } = d
        else {
            panic!("expected a trial, got {d:?}");
        };
        assert_eq!(
            (scheme, interval),
            (Scheme::CopyOnWrite, Duration::from_secs(3))
        );
        // Measured late in the trial and better: the trial runs on past
        // its planned end (5) until `patience` evaluations agree.
        let measured = || vec![switch(Scheme::CopyOnWrite, 0.05, Basis::Observed)];
        assert!(!state.exploring(5), "planned to end after 5");
        for n in [4, 5] {
            assert_eq!(
                state.decide(&policy, &evaluation(n, measured())),
                Decision::Hold
            );
            // The checkpointer asks after commit n whether the trial goes on.
            assert!(state.exploring(n), "extended past its planned end");
        }
        assert!(matches!(
            state.decide(&policy, &evaluation(6, measured())),
            Decision::Apply(_)
        ));
        assert!(!state.exploring(6), "the switch ended the trial");
        let (plan, _) = state.in_force(&policy).expect("applied");
        assert_eq!(plan, Plan::only(Scheme::CopyOnWrite));
    }

    #[test]
    fn a_fresh_policy_begins_with_copy_on_write_and_may_leave_an_unmeasured_plan_on_its_saving() {
        let policy = quiet().patience(3);
        let full = Plan::only(Scheme::Full);
        let begins = |policy: &Policy, checkpoints, current| {
            PolicyState::default().begin(policy, checkpoints, current)
        };
        // Only a fresh automatic policy that may use copy-on-write, and
        // is not on it already, begins with a trial of it.
        assert_eq!(begins(&Policy::advise(), 0, full), None);
        assert_eq!(begins(&policy.clone().first_trial(false), 0, full), None);
        let no_cow = policy.clone().allow(&[Scheme::Full, Scheme::Incremental]);
        assert_eq!(begins(&no_cow, 0, full), None);
        assert_eq!(begins(&policy, 3, full), None);
        assert_eq!(begins(&policy, 0, Plan::only(Scheme::CopyOnWrite)), None);
        let mut state = PolicyState::default();
        let d = state.begin(&policy, 0, full).expect("a first trial");
        assert!(
            matches!(d, Decision::Explore { scheme: Scheme::CopyOnWrite, interval, .. } if interval == policy.constraints.min_interval),
            "{d:?}"
        );
        assert!(state.exploring(0));
        assert_eq!(state.begin(&policy, 0, full), None, "one first trial");
        // After the trial's checkpoints: copy-on-write measured, full
        // never; the switch can only rest on priors (confidence ≤ 0.5).
        let eval = |n: u64| {
            let mut rec = switch(Scheme::CopyOnWrite, 0.05, Basis::Prior);
            if let Recommendation::Switch { advice, .. } = &mut rec {
                advice.confidence = 0.5;
            }
            let mut e = evaluation(n, vec![rec]);
            let mut cow = estimate(Plan::only(Scheme::CopyOnWrite), 0.02);
            cow.interval = Duration::from_secs(2);
            e.candidates.insert(0, cow);
            for status in &mut e.schemes {
                let observations = if status.scheme == Scheme::CopyOnWrite {
                    n
                } else {
                    0
                };
                status.observations = observations;
                status.measured = observations >= 3;
                status.since_seen = (observations > 0).then_some(0);
            }
            e
        };
        assert_eq!(state.decide(&policy, &eval(1)), Decision::Hold);
        // The trial follows the model's interval for its scheme.
        assert_eq!(
            state.trial(&policy),
            Some((Scheme::CopyOnWrite, Duration::from_secs(2)))
        );
        assert_eq!(state.decide(&policy, &eval(2)), Decision::Hold);
        assert!(matches!(
            state.decide(&policy, &eval(3)),
            Decision::Apply(_)
        ));
        // Once the plan in force (full) is measured, the same saving
        // resting on priors moves nothing, though its target was measured
        // too.
        let mut measured = eval(3);
        measured.checkpoints = 20;
        for status in &mut measured.schemes {
            status.observations = 10;
            status.measured = true;
            status.since_seen = Some(0);
        }
        let mut state = PolicyState::default();
        for n in 0..5 {
            measured.checkpoints = 20 + n;
            assert!(!matches!(
                state.decide(&policy, &measured),
                Decision::Apply(_)
            ));
        }
    }

    #[test]
    fn fixed_holds_and_advise_reports() {
        let rec = vec![switch(Scheme::Incremental, 0.05, Basis::Observed)];
        let mut state = PolicyState::default();
        assert_eq!(
            state.decide(&Policy::fixed(), &evaluation(0, rec.clone())),
            Decision::Hold
        );
        assert!(matches!(
            state.decide(&Policy::advise(), &evaluation(0, rec)),
            Decision::Advise(Recommendation::Switch {
                to: Scheme::Incremental,
                ..
            })
        ));
        assert_eq!(state.changes_applied(), 0);
    }

    #[test]
    fn random_exploration_is_seeded_and_picks_the_stalest_scheme() {
        let run = |seed| {
            let policy = Policy::adaptive()
                .exploration(0.3)
                .explore_checkpoints(3)
                .min_dwell(5)
                .seed(seed);
            let mut state = PolicyState::default();
            (0..200)
                .map(|n| state.decide(&policy, &evaluation(n, vec![])))
                .collect::<Vec<_>>()
        };
        let (a, b, c) = (run(1), run(1), run(2));
        assert_eq!(a, b);
        assert_ne!(a, c);
        let explored: Vec<Scheme> = a
            .iter()
            .filter_map(|d| match d {
                Decision::Explore { scheme, .. } => Some(*scheme),
                _ => None,
            })
            .collect();
        assert!(explored.len() > 10, "{}", explored.len());
        // Never seen beats seen 40 checkpoints ago; the current scheme is
        // never "explored".
        assert_eq!(explored.first(), Some(&Scheme::CopyOnWrite));
        assert!(!explored.contains(&Scheme::Full));
        assert!(explored.contains(&Scheme::Incremental));
        let always = Policy::adaptive().exploration(1.0).explore_checkpoints(1);
        let mut state = PolicyState::default();
        assert!(matches!(
            state.decide(&always, &evaluation(0, vec![])),
            Decision::Explore { .. }
        ));
    }

    #[test]
    fn random_trials_keep_their_share_of_time_and_skip_hopeless_schemes() {
        // Explored schemes: incremental (seen 40 ago), then copy-on-write
        // is never seen; only incremental may be tried, at `trial` apart.
        let trials_at = |trial: Duration, overhead: f64| {
            let policy = Policy::adaptive()
                .exploration(0.2)
                .explore_checkpoints(1)
                .min_dwell(1)
                .allow(&[Scheme::Full, Scheme::Incremental]);
            let mut state = PolicyState::default();
            (0..4_000)
                .filter(|n| {
                    let mut eval = evaluation(*n, vec![]);
                    let mut inc = estimate(Plan::only(Scheme::Incremental), overhead);
                    inc.std_error = 0.01;
                    inc.interval = trial;
                    eval.candidates.push(inc);
                    eval.schemes.retain(|st| st.scheme != Scheme::CopyOnWrite);
                    matches!(state.decide(&policy, &eval), Decision::Explore { .. })
                })
                .count() as f64
        };
        let trials = |trial| trials_at(trial, 0.06);
        // The current plan checkpoints every 10 s, at an overhead of 0.05.
        let same = trials(Duration::from_secs(10));
        let five_times_longer = trials(Duration::from_secs(50));
        let shorter = trials(Duration::from_secs(2));
        // 0.2 per evaluation (a one-checkpoint trial ends before the next).
        assert!((650.0..950.0).contains(&same), "{same}");
        assert!(
            (3.5..7.0).contains(&(same / five_times_longer)),
            "{same} vs {five_times_longer}"
        );
        // A trial that checkpoints more often is not made more frequent.
        assert!(
            (0.8..1.25).contains(&(same / shorter)),
            "{same} vs {shorter}"
        );
    }

    #[test]
    fn validation_names_the_bad_option() {
        assert!(Policy::adaptive().validate().is_ok());
        let err = Policy::adaptive()
            .allow(&[])
            .validate()
            .expect_err("empty set");
        assert!(err.to_string().contains("policy.allow"));
        assert!(Policy::adaptive().exploration(1.5).validate().is_err());
        assert!(Policy::adaptive().patience(0).validate().is_err());
        assert!(
            Policy::adaptive()
                .interval_bounds(Duration::from_secs(2), Duration::from_secs(1))
                .validate()
                .is_err()
        );
    }
}
