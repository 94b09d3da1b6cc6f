//! What an evaluation of the cost model returns: every candidate plan
//! priced ([`PlanEstimate`]), what is known of each scheme
//! ([`SchemeStatus`]), and the [`Evaluation`] that gathers them with the
//! recommendations.

use crate::model::plan::Plan;
use crate::model::recommend::{Basis, Recommendation};
use crate::scheme::Scheme;
use std::time::Duration;

/// What the model knows about one scheme, for policies deciding what to
/// explore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
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
#[non_exhaustive]
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
    /// Memory the plan holds beyond the state itself at its peak: for a
    /// copy-on-write base, the pages the computation dirties while a
    /// persist runs (each is kept twice until the persist ends); 0 for the
    /// synchronous schemes. Compared with
    /// [`Constraints::memory_budget`](crate::model::Constraints::memory_budget).
    pub extra_memory: f64,
    /// Whether the estimate rests on measurements of every scheme used.
    pub basis: Basis,
}

/// The model's view at one moment: every candidate priced, and what to
/// change.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
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
    /// Changes of the workload or of write costs detected so far by this
    /// process ([`CostModel::changes_detected`](crate::model::CostModel::changes_detected)): a policy
    /// treats the checkpoints between two detections as one phase.
    pub changes_detected: u64,
    /// Whether the newest checkpoint looked like the start of a changed
    /// workload (steps twice as fast or slow, or dirtying four times
    /// faster or slower, than before) that one more checkpoint must
    /// confirm: this evaluation still prices the old workload's means, and
    /// the adaptive policy acts on none of it (see
    /// [`CostModel::change_pending`](crate::model::CostModel::change_pending)).
    pub change_pending: bool,
    /// Whether a checkpoint has measured how fast the state changes (one
    /// captured after an earlier capture). Until then every plan is
    /// priced as if the whole state were dirty at any interval.
    pub dirtiness_measured: bool,
}

impl Evaluation {
    /// The cheapest candidate.
    pub fn best(&self) -> Option<&PlanEstimate> {
        self.candidates.first()
    }
}
