//! Events, the statistical cost model, recommendations and policy.
//!
//! This layer is pure logic: it consumes [`Event`]s and produces
//! [`Decision`]s. It knows nothing of bytes on disk or of storage; the
//! checkpointer feeds it and carries out what it decides.
//!
//! * [`CheckpointEvent`] and the other [`Event`]s, and a running
//!   [`EventSummary`] (counts, totals, stall percentiles).
//! * Inside (not public): online least squares of cost against size with
//!   Student-t confidence intervals (`fit`); failure rates per
//!   [`FailureClass`], a configured MTBF updated with observed restarts
//!   (Gamma–Poisson, `failure`); Young's and Daly's interval and overhead
//!   formulas (`cost`).
//! * [`CostModel`]: prices every candidate [`Plan`] at its best interval
//!   and lists [`Recommendation`]s.
//! * [`Policy`] and [`PolicyState`]: fixed, advise or auto, with
//!   hysteresis and exploration.
//! * [`Advisor`]: all of the above behind three calls, and its state as
//!   bytes to store beside the checkpoints.
//!
//! # Driving it from a checkpointer
//!
//! ```
//! use ckpt::model::{Advisor, CheckpointEvent, Decision, ModelConfig, Plan, Policy};
//! use ckpt::Scheme;
//! use std::time::Duration;
//!
//! let mut advisor = Advisor::new(ModelConfig::default(), Policy::adaptive())?;
//! let mut plan = Plan::only(Scheme::Full);
//! let mut interval = Duration::from_secs(10);
//!
//! // After every committed checkpoint: report it...
//! let mut event = CheckpointEvent::new(plan.base(), 100);
//! event.steps = 100;
//! event.compute = interval;
//! event.stall = Duration::from_millis(400);
//! event.persist = event.stall;
//! event.logical_bytes = 1 << 30;
//! event.dirty_bytes = 16 << 20;
//! event.bytes_written = 1 << 30;
//! advisor.observe(&event.into());
//!
//! // ...then ask what to do.
//! match advisor.advise(plan, interval) {
//!     Decision::Apply(rec) => {
//!         plan = rec.plan();
//!         interval = rec.interval().every;
//!     }
//!     Decision::Advise(rec) => println!("ckpt advises: {rec}"),
//!     Decision::Explore { scheme, checkpoints, .. } => {
//!         // take the next `checkpoints` checkpoints with `scheme`
//!         let _ = (scheme, checkpoints);
//!     }
//!     _ => {}
//! }
//!
//! // With each checkpoint (or every few), store the advisor's state;
//! // after a restart, resume from it.
//! let bytes = advisor.to_bytes()?;
//! let advisor = Advisor::from_bytes(&bytes, ModelConfig::default(), Policy::adaptive())?;
//! assert_eq!(advisor.model().summary().checkpoints, 1);
//! # Ok::<(), ckpt::Error>(())
//! ```

mod cost;
mod decision;
mod estimate;
mod event;
mod failure;
mod fit;
mod plan;
mod policy;
mod recommend;

pub use decision::Decision;
pub use estimate::{Constraints, CostModel, Evaluation, ModelConfig, PlanEstimate, SchemeStatus};
pub use event::{
    CheckpointEvent, DecisionEvent, Event, EventSummary, FailoverPauseEvent, RestartEvent,
    RestoreEvent, RestoreProgressEvent, StorageErrorEvent,
};
pub use failure::{FailureClass, RateEstimate};
pub use plan::{Plan, SchemeSet};
pub use policy::{Policy, PolicyMode, PolicyState};
pub use recommend::{Addition, Advice, Basis, IntervalAdvice, Recommendation};

use crate::error::{Error, Result};
use crate::scheme::Scheme;
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Version of the bytes [`Advisor::to_bytes`] writes (their first byte).
pub(crate) const MODEL_STATE_VERSION: u8 = 9;

/// Largest model state this build decodes; a longer claim is corruption.
const MAX_MODEL_STATE_BYTES: usize = 16 << 20;

/// bincode settings of model state (versions 2 and 3), pinned: state written today
/// must load after a dependency upgrade.
const MODEL_STATE_CODEC: bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_MODEL_STATE_BYTES>,
> = bincode::config::standard()
    .with_little_endian()
    .with_variable_int_encoding()
    .with_limit::<MAX_MODEL_STATE_BYTES>();

/// What "model state" errors call the object.
const STATE_NAME: &str = "cost model state";

#[derive(Serialize, Deserialize)]
struct Persisted {
    learned: estimate::Learned,
    policy: PolicyState,
    /// The configuration the writer's model ran with.
    config: ModelConfig,
    /// Where the running the state reports ends, seconds since the Unix
    /// epoch (0 if unknown or the clock was before it); see
    /// [`Advisor::reported_until`].
    reported_until: f64,
}

#[derive(Serialize)]
struct PersistedRef<'a> {
    learned: &'a estimate::Learned,
    policy: &'a PolicyState,
    config: &'a ModelConfig,
    reported_until: f64,
}

/// The cost model and a policy together: feed it events, ask it what to
/// do, store its state with the checkpoints.
#[derive(Debug, Clone)]
pub struct Advisor {
    model: CostModel,
    policy: Policy,
    state: PolicyState,
    /// Where the running that the learned state reports ends.
    reported_until: Option<SystemTime>,
}

impl Advisor {
    /// A fresh advisor; fails if either configuration is invalid.
    pub fn new(config: ModelConfig, policy: Policy) -> Result<Self> {
        config.validate()?;
        policy.validate()?;
        Ok(Advisor {
            model: CostModel::new(config),
            policy,
            state: PolicyState::default(),
            reported_until: None,
        })
    }

    /// Learns from one event.
    ///
    /// A checkpoint of the first tier reports the running up to its
    /// capture, a restart the running of the failed process, and a
    /// restore its own: each moves [`reported_until`](Self::reported_until)
    /// to now (less, for a checkpoint, the time it took to become durable
    /// after its capture).
    pub fn observe(&mut self, event: &Event) {
        self.model.observe(event);
        let reported = match event {
            Event::Checkpoint(e) if e.tier == 0 => e.persist.saturating_sub(e.stall),
            Event::Restart(_) | Event::Restore(_) => Duration::ZERO,
            _ => return,
        };
        self.reported_until = SystemTime::now().checked_sub(reported);
    }

    /// The model's view of `current` at `interval` (compute time between
    /// checkpoints) and of every allowed alternative; `None` before the
    /// first checkpoint event.
    pub fn evaluate(&self, current: Plan, interval: Duration) -> Option<Evaluation> {
        self.model
            .evaluate(current, interval, self.policy.constraints())
    }

    /// Evaluates and lets the policy decide. Call after a checkpoint
    /// (every one, or every few); cheap enough for either.
    pub fn advise(&mut self, current: Plan, interval: Duration) -> Decision {
        if self.policy.mode() == PolicyMode::Fixed {
            return Decision::Hold; // observe only: skip the evaluation
        }
        match self.evaluate(current, interval) {
            Some(evaluation) => self.state.decide(&self.policy, &evaluation),
            None => Decision::Hold,
        }
    }

    /// The cost model.
    pub fn model(&self) -> &CostModel {
        &self.model
    }

    /// See [`CostModel::set_persist_queue`].
    pub(crate) fn set_persist_queue(&mut self, captures: u32) {
        self.model.set_persist_queue(captures);
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The policy's memory (streaks, dwell, exploration).
    pub fn policy_state(&self) -> &PolicyState {
        &self.state
    }

    /// Tells the policy a new process starts on this state: a trial that
    /// was running goes on if the policy still allows it
    /// ([`Advisor::trial`]), and is abandoned otherwise
    /// ([`PolicyState::abandon_trial`]).
    pub fn restarted(&mut self) {
        if self.trial().is_none() {
            self.state.abandon_trial();
        }
    }

    /// The trial an automatic policy begins with when nothing is learnt
    /// yet, if any; see [`PolicyState::begin`].
    pub fn begin(&mut self, current: Plan) -> Option<Decision> {
        let checkpoints = self.model.summary().checkpoints;
        self.state.begin(&self.policy, checkpoints, current)
    }

    /// The trial an automatic policy was running when its state was saved
    /// (scheme and compute interval), which a restarting checkpointer goes
    /// on with. See [`PolicyState::trial`].
    pub fn trial(&self) -> Option<(Scheme, Duration)> {
        self.state.trial(&self.policy)
    }

    /// The plan and compute interval an automatic policy applied last and
    /// that the policy's constraints still allow: where a checkpointer
    /// that restarts on the stored state should resume. See
    /// [`PolicyState::in_force`].
    pub fn in_force(&self) -> Option<(Plan, Duration)> {
        self.state.in_force(&self.policy)
    }

    /// Running totals of the events seen.
    pub fn summary(&self) -> &EventSummary {
        self.model.summary()
    }

    /// Where the running that the learned state reports ends: the capture
    /// of the newest checkpoint observed, or the newest restart, as wall
    /// time; `None` before either (and for a clock before the Unix epoch).
    /// It is stored with the state ([`to_bytes`](Self::to_bytes)) and comes
    /// back with it. A process that failed ran on past it (its newest
    /// checkpoint's persist, the running after, until the failure), and
    /// nothing it learnt then survives; a restart uses the time since to
    /// bound that running
    /// ([`RestartEvent::unreported`](crate::model::RestartEvent::unreported)).
    pub fn reported_until(&self) -> Option<SystemTime> {
        self.reported_until
    }

    /// What was learned, the policy's memory,
    /// [`reported_until`](Self::reported_until) and the model's
    /// configuration, as bytes: a version byte (9 in this release), then
    /// bincode with a pinned configuration. A restarted checkpointer
    /// resumes with the configuration its builder gives
    /// ([`from_bytes`](Self::from_bytes)), so a changed MTBF applies to
    /// old evidence; the stored one is for readers of the store
    /// ([`from_bytes_as_written`](Self::from_bytes_as_written)). The
    /// policy is not stored.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let reported_until = self
            .reported_until
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0.0, |d| d.as_secs_f64());
        let persisted = PersistedRef {
            learned: self.model.learned(),
            policy: &self.state,
            config: self.model.config(),
            reported_until,
        };
        let body = bincode::serde::encode_to_vec(&persisted, MODEL_STATE_CODEC)
            .map_err(|e| Error::encode(STATE_NAME, e))?;
        let mut bytes = Vec::with_capacity(body.len() + 1);
        bytes.push(MODEL_STATE_VERSION);
        bytes.extend_from_slice(&body);
        Ok(bytes)
    }

    /// Resumes from [`to_bytes`](Self::to_bytes) output with the given
    /// configurations. Damaged bytes are [`Error::Corrupt`] and a newer
    /// version [`Error::UnsupportedVersion`]; either way a caller can start
    /// a fresh advisor instead, losing only what was learned.
    pub fn from_bytes(bytes: &[u8], config: ModelConfig, policy: Policy) -> Result<Self> {
        config.validate()?;
        policy.validate()?;
        Ok(Self::resume(decode(bytes)?, Some(config), policy))
    }

    /// Resumes from [`to_bytes`](Self::to_bytes) output with the model
    /// configuration stored in it (the writer's: its MTBF, priors and
    /// forgetting) and `policy`: the model as its writer saw it, for a
    /// reader that does not know how the writer was configured (`ckpt
    /// model`, `ckpt report`). Errors as [`from_bytes`](Self::from_bytes).
    pub fn from_bytes_as_written(bytes: &[u8], policy: Policy) -> Result<Self> {
        policy.validate()?;
        let persisted = decode(bytes)?;
        persisted
            .config
            .validate()
            .map_err(|e| Error::corrupt(STATE_NAME, format!("stored configuration: {e}")))?;
        Ok(Self::resume(persisted, None, policy))
    }

    /// The same advisor under another model configuration (what it
    /// learned kept, now priced with `config`): a reader that loaded the
    /// writer's model ([`from_bytes_as_written`](Self::from_bytes_as_written))
    /// and wants to see it with another MTBF. Fails, leaving nothing
    /// changed, if `config` is invalid.
    ///
    /// ```
    /// use ckpt::model::{Advisor, ModelConfig, Policy};
    /// use std::time::Duration;
    ///
    /// let advisor = Advisor::new(ModelConfig::default(), Policy::adaptive())?;
    /// let hourly = advisor.reconfigured(ModelConfig::with_mtbf(Duration::from_secs(3_600)))?;
    /// assert_eq!(hourly.model().config().mtbf, Duration::from_secs(3_600));
    /// # Ok::<(), ckpt::Error>(())
    /// ```
    pub fn reconfigured(self, config: ModelConfig) -> Result<Self> {
        config.validate()?;
        Ok(Advisor {
            model: self.model.reconfigured(config),
            ..self
        })
    }

    /// An advisor from decoded state, with `config` or else the stored one.
    fn resume(persisted: Persisted, config: Option<ModelConfig>, policy: Policy) -> Self {
        let reported_until = (persisted.reported_until.is_finite()
            && persisted.reported_until > 0.0)
            .then(|| Duration::try_from_secs_f64(persisted.reported_until).ok())
            .flatten()
            .and_then(|since_epoch| UNIX_EPOCH.checked_add(since_epoch));
        Advisor {
            model: CostModel::resume(config.unwrap_or(persisted.config), persisted.learned),
            policy,
            state: persisted.policy,
            reported_until,
        }
    }
}

/// Decodes [`Advisor::to_bytes`] output: damaged bytes are
/// [`Error::Corrupt`], another version [`Error::UnsupportedVersion`].
fn decode(bytes: &[u8]) -> Result<Persisted> {
    let (&version, body) = bytes
        .split_first()
        .ok_or_else(|| Error::corrupt(STATE_NAME, "empty"))?;
    if version != MODEL_STATE_VERSION {
        return Err(Error::UnsupportedVersion {
            key: STATE_NAME.to_owned(),
            found: u16::from(version),
            supported: u16::from(MODEL_STATE_VERSION),
        });
    }
    let (persisted, used): (Persisted, usize) =
        bincode::serde::decode_from_slice(body, MODEL_STATE_CODEC)
            .map_err(|e| Error::corrupt(STATE_NAME, e.to_string()))?;
    if used != body.len() {
        return Err(Error::corrupt(
            STATE_NAME,
            format!("{} trailing bytes", body.len() - used),
        ));
    }
    Ok(persisted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const GIB: f64 = (1u64 << 30) as f64;

    /// The true costs of a synthetic workload.
    struct Truth {
        /// Share of the state dirtied per second of compute (as a rate).
        dirty_rate: f64,
        full_secs: f64,
        incremental: fn(f64) -> f64,
        cow: Option<(f64, f64)>,
        noise: f64,
    }

    struct Outcome {
        plan: Plan,
        plan_changes: u32,
        applied: u32,
        explored: u32,
        advised: u32,
    }

    fn simulate(
        truth: &Truth,
        advisor: &mut Advisor,
        start: Plan,
        checkpoints: u64,
        seed: u64,
    ) -> Outcome {
        let mut rng = StdRng::seed_from_u64(seed);
        let (mut plan, mut interval) = (start, Duration::from_secs(10));
        let (mut n_in_plan, mut chain, mut trial) = (0u64, 0u32, None::<(Scheme, u32)>);
        let mut out = Outcome {
            plan,
            plan_changes: 0,
            applied: 0,
            explored: 0,
            advised: 0,
        };
        for step in 0..checkpoints {
            let scheme = match trial {
                Some((s, left)) => {
                    trial = (left > 1).then_some((s, left - 1));
                    s
                }
                None => {
                    n_in_plan += 1;
                    plan.scheme_of(n_in_plan - 1)
                }
            };
            let compute = interval.as_secs_f64();
            let mut noisy = |x: f64| x * (1.0 + truth.noise * rng.random_range(-1.0..1.0));
            let dirty = (GIB * -(-truth.dirty_rate * compute).exp_m1()).min(GIB);
            let (stall, persist) = match scheme {
                Scheme::Full => {
                    let s = noisy(truth.full_secs);
                    (s, s)
                }
                Scheme::Incremental => {
                    let s = noisy((truth.incremental)(dirty));
                    (s, s)
                }
                Scheme::CopyOnWrite => {
                    let (s, p) = truth.cow.unwrap_or((truth.full_secs, truth.full_secs));
                    (noisy(s), noisy(p))
                }
            };
            chain = if scheme == Scheme::Incremental {
                chain + 1
            } else {
                1
            };
            let mut e = CheckpointEvent::new(scheme, step);
            // Steps of 10 ms: a plan's interval changes how many steps an
            // interval holds, not how long a step takes.
            e.steps = ((compute / 0.01).round() as u64).max(1);
            e.compute = interval;
            e.stall = Duration::from_secs_f64(stall);
            e.persist = Duration::from_secs_f64(persist);
            e.logical_bytes = GIB as u64;
            e.dirty_bytes = dirty as u64;
            e.bytes_written = if scheme == Scheme::Full {
                GIB as u64
            } else {
                dirty as u64
            };
            e.chain_length = chain;
            advisor.observe(&e.into());
            match advisor.advise(plan, interval) {
                Decision::Apply(rec) => {
                    out.applied += 1;
                    trial = None;
                    if rec.plan() != plan {
                        out.plan_changes += 1;
                        n_in_plan = 0;
                    }
                    plan = rec.plan();
                    interval = rec.interval().every;
                }
                Decision::Explore {
                    scheme,
                    checkpoints,
                    ..
                } => {
                    out.explored += 1;
                    trial = Some((scheme, checkpoints));
                }
                Decision::Advise(_) => out.advised += 1,
                _ => {}
            }
        }
        out.plan = plan;
        out
    }

    fn advisor(policy: Policy) -> Advisor {
        Advisor::new(ModelConfig::with_mtbf(Duration::from_secs(3_600)), policy).expect("valid")
    }

    /// 1 GiB state, 1 % dirtied per 10 s, full writes at 1 GB/s.
    fn sparse_writes() -> Truth {
        Truth {
            dirty_rate: -(0.99_f64).ln() / 10.0,
            full_secs: 0.02 + GIB / 1e9,
            incremental: |dirty| 0.01 + dirty / 1e9,
            cow: None,
            noise: 0.05,
        }
    }

    #[test]
    fn auto_moves_to_the_clearly_cheaper_scheme_and_stays() {
        let mut a = advisor(
            Policy::adaptive()
                .allow(&[Scheme::Full, Scheme::Incremental])
                .seed(1),
        );
        let out = simulate(&sparse_writes(), &mut a, Plan::only(Scheme::Full), 400, 1);
        assert_eq!(
            out.plan.base(),
            Scheme::Incremental,
            "ended on {}",
            out.plan
        );
        assert!(out.plan.full_every().is_some());
        assert!(out.plan_changes <= 3, "{} plan changes", out.plan_changes);
        assert!(out.explored >= 1, "found incremental by exploring it");
    }

    #[test]
    fn auto_does_not_flap_between_near_equal_schemes() {
        let truth = Truth {
            dirty_rate: -(0.5_f64).ln() / 10.0,
            full_secs: 0.5,
            incremental: |_| 0.5,
            cow: None,
            noise: 0.2,
        };
        for seed in 0..5 {
            let policy = Policy::adaptive()
                .allow(&[Scheme::Full, Scheme::Incremental])
                .exploration(0.05)
                .seed(seed);
            let mut a = advisor(policy);
            let out = simulate(&truth, &mut a, Plan::only(Scheme::Full), 1_000, seed);
            assert!(
                out.plan_changes <= 1,
                "seed {seed}: {} plan changes",
                out.plan_changes
            );
            assert!(out.applied <= 4, "seed {seed}: {} changes", out.applied);
        }
    }

    #[test]
    fn advise_reports_and_changes_nothing() {
        let mut a = advisor(Policy::advise());
        let out = simulate(&sparse_writes(), &mut a, Plan::only(Scheme::Full), 50, 2);
        assert_eq!((out.applied, out.explored), (0, 0));
        // The interval advice (10 s is far too often) is given once; the
        // switch to incremental rests on priors only and stays unreported.
        assert_eq!(out.advised, 1);
        let eval = a
            .evaluate(Plan::only(Scheme::Full), Duration::from_secs(10))
            .expect("observed");
        assert!(!eval.recommendations.is_empty());
        let mut fixed = advisor(Policy::fixed());
        let out = simulate(
            &sparse_writes(),
            &mut fixed,
            Plan::only(Scheme::Full),
            50,
            2,
        );
        assert_eq!((out.applied, out.explored, out.advised), (0, 0, 0));
        assert_eq!(fixed.summary().checkpoints, 50);
    }

    #[test]
    fn state_round_trips_through_bytes() {
        let mut a = advisor(Policy::adaptive().seed(9));
        simulate(&sparse_writes(), &mut a, Plan::only(Scheme::Full), 60, 3);
        let bytes = a.to_bytes().expect("encodes");
        assert_eq!(bytes.first(), Some(&MODEL_STATE_VERSION));
        let b = Advisor::from_bytes(&bytes, a.model().config().clone(), a.policy().clone())
            .expect("decodes");
        assert_eq!(b.model(), a.model());
        assert_eq!(b.policy_state(), a.policy_state());
        // Where the reported running ends comes back (to the microsecond
        // or so): at the newest checkpoint observed.
        let until = a.reported_until().expect("checkpoints were observed");
        let back = b.reported_until().expect("stored with the state");
        let apart = until.duration_since(back).unwrap_or_else(|e| e.duration());
        assert!(apart < Duration::from_millis(1), "{apart:?}");
        assert!(
            Advisor::new(ModelConfig::default(), Policy::fixed())
                .unwrap()
                .reported_until()
                .is_none()
        );
        let (plan, every) = (Plan::only(Scheme::Full), Duration::from_secs(10));
        assert_eq!(a.evaluate(plan, every), b.evaluate(plan, every));
        // A new configuration applies to the old evidence.
        let c = Advisor::from_bytes(
            &bytes,
            ModelConfig::with_mtbf(Duration::from_secs(60)),
            Policy::fixed(),
        )
        .expect("decodes");
        assert!(c.model().mtbf_secs() < a.model().mtbf_secs());
        // A reader that does not know the writer's configuration gets it
        // from the bytes: the model as the writer saw it.
        let d = Advisor::from_bytes_as_written(&bytes, Policy::fixed()).expect("decodes");
        assert_eq!(d.model().config(), a.model().config());
        assert_eq!(d.model().config().mtbf, Duration::from_secs(3_600));
        assert_eq!(d.model(), a.model());
    }

    #[test]
    fn damaged_state_is_an_error_not_a_panic() {
        let a = advisor(Policy::adaptive());
        let bytes = a.to_bytes().expect("encodes");
        let load = |b: &[u8]| Advisor::from_bytes(b, ModelConfig::default(), Policy::adaptive());
        assert!(matches!(load(&[]), Err(Error::Corrupt { .. })));
        let mut newer = bytes.clone();
        if let Some(v) = newer.first_mut() {
            *v = MODEL_STATE_VERSION + 1;
        }
        assert!(matches!(
            load(&newer),
            Err(Error::UnsupportedVersion { found, .. }) if found == u16::from(MODEL_STATE_VERSION) + 1
        ));
        for len in 1..bytes.len() {
            assert!(
                load(bytes.get(..len).unwrap_or_default()).is_err(),
                "truncated to {len}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(load(&longer), Err(Error::Corrupt { .. })));
        let mut rng = StdRng::seed_from_u64(4);
        for _ in 0..500 {
            let mut noisy = bytes.clone();
            for b in noisy.iter_mut().skip(1) {
                if rng.random_bool(0.05) {
                    *b = rng.random();
                }
            }
            let _ = load(&noisy);
        }
        assert!(Advisor::new(ModelConfig::default(), Policy::adaptive().patience(0)).is_err());
    }
}
