//! [`ModelConfig`]: how the cost model learns and what it assumes before
//! it has learnt; and [`Constraints`]: the bounds its search stays within.

use crate::error::{Error, Result};
use crate::model::failure::{FailureClass, FailurePrior};
use crate::model::plan::SchemeSet;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How the cost model learns and what it assumes before it has learnt.
///
/// It is stored with the learned state ([`Advisor::to_bytes`]), so that a
/// reader of the store can see the model as its writer did
/// ([`Advisor::from_bytes_as_written`]).
///
/// [`Advisor::to_bytes`]: crate::model::Advisor::to_bytes
/// [`Advisor::from_bytes_as_written`]: crate::model::Advisor::from_bytes_as_written
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ModelConfig {
    /// Configured mean time between process failures (crashes the node
    /// survives): the prior of the failure rate. Default 24 h.
    pub mtbf: Duration,
    /// Configured mean time between node losses (the node-local tier is
    /// lost too); `None` (default) for no prior belief. A checkpointer
    /// with lower tiers prices its drain ratio with node losses assumed
    /// ten times rarer than process failures until this is set or node
    /// losses are observed (at restart, from a lost first tier).
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
    /// down, until it is measured (default 0.5). The model measures it
    /// from the checkpoints' [`CheckpointEvent::compute_beside_persist`]:
    /// steps that ran beside a persist against those that did not (up to
    /// 3: steps three times slower beside one than beside none).
    ///
    /// The default is the middle of the range a prior cannot tell apart: a
    /// computation on one core beside idle cores barely notices a persist
    /// (≈ 0), one on every core loses the persist's whole time to it
    /// (≈ 1). The first trial of copy-on-write runs at the interval this
    /// prices until its second checkpoint measures it; 0.1 made those
    /// first intervals back to back on all-core workloads.
    ///
    /// [`CheckpointEvent::compute_beside_persist`]: crate::model::CheckpointEvent::compute_beside_persist
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
    /// How much a drain (a checkpoint copied to a lower tier in the
    /// background) slows the steps beside it, before that is measured
    /// (default 0.05: a drain mostly waits on the lower tier's storage,
    /// and reads the first tier's packs through the page cache). Once
    /// steps ran beside a drain and beside nothing, their measured
    /// slowdown ([`CheckpointEvent::compute_beside_drain`]) replaces it;
    /// steps beside a drain and a persist at once
    /// ([`CheckpointEvent::compute_beside_both`]) count too, less the
    /// persist's measured share.
    ///
    /// [`CheckpointEvent::compute_beside_drain`]: crate::model::CheckpointEvent::compute_beside_drain
    /// [`CheckpointEvent::compute_beside_both`]: crate::model::CheckpointEvent::compute_beside_both
    pub drain_interference: f64,
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
            background_interference: 0.5,
            prior_read_bandwidth: 500e6,
            prior_link_cost: Duration::from_millis(1),
            cow_stall_fraction: 0.02,
            prior_uncertainty: 0.5,
            drain_interference: 0.05,
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
            || !(0.0..=1.0).contains(&self.drain_interference)
        {
            return bad(
                "model.background_interference/cow_stall_fraction/drain_interference",
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

    pub(super) fn prior(&self, class: FailureClass) -> FailurePrior {
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

/// Bounds the model searches within; a [`Policy`](crate::model::Policy) provides
/// them.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Constraints {
    /// Schemes a plan may use as its base.
    pub allowed: SchemeSet,
    /// Shortest compute interval between checkpoints.
    pub min_interval: Duration,
    /// Longest compute interval between checkpoints.
    pub max_interval: Duration,
    /// Largest `k` for "a full base every `k`".
    pub max_full_every: u32,
    /// Largest `k` for "drain every `k`-th checkpoint" with lower tiers.
    pub max_drain_every: u32,
    /// Most memory, in bytes, a plan may hold beyond the state itself
    /// ([`PlanEstimate::extra_memory`](crate::model::PlanEstimate::extra_memory));
    /// `None` (the default): unlimited.
    pub memory_budget: Option<u64>,
}

impl Default for Constraints {
    fn default() -> Self {
        Constraints {
            allowed: SchemeSet::all(),
            min_interval: Duration::from_millis(1),
            max_interval: Duration::from_secs(24 * 3_600),
            max_full_every: 64,
            max_drain_every: 32,
            memory_budget: None,
        }
    }
}
