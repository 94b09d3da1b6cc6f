//! [`Learned`]: everything the cost model learned from events, kept as
//! running fits and means — the serialized part of the model.

use crate::model::event::EventSummary;
use crate::model::failure::{FailureClass, FailureCounts};
use crate::model::fit::LinearFit;
use crate::model::plan::scheme_code;
use crate::scheme::Scheme;
use serde::{Deserialize, Serialize};

/// An exponentially weighted running mean.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct RunningMean {
    value: f64,
    weight: f64,
}

impl RunningMean {
    pub(super) fn observe(&mut self, x: f64, forgetting: f64) {
        if !x.is_finite() {
            return;
        }
        let old = self.weight * forgetting;
        self.weight = old + 1.0;
        self.value += (x - self.value) / self.weight;
    }

    pub(super) fn get(&self) -> Option<f64> {
        (self.weight > 0.0).then_some(self.value)
    }
}

/// Learned costs of one scheme.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct SchemeRecord {
    #[serde(with = "scheme_code")]
    pub(super) scheme: Scheme,
    pub(super) stall: LinearFit,
    pub(super) persist: LinearFit,
    pub(super) longest_chain: u32,
    /// `EventSummary::checkpoints` when this scheme was last seen.
    pub(super) last_seen: u64,
    /// The fewest bytes a checkpoint of this scheme stored (uncompressed;
    /// infinite before the first): how far below what was measured its
    /// fits would be extrapolated.
    pub(super) least_stored: f64,
}

/// Everything learned from events: the serialized part of the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Learned {
    pub(super) schemes: Vec<SchemeRecord>,
    /// Persist time against (bytes written, logical bytes), all schemes.
    pub(super) pooled: LinearFit,
    /// Restore time against (bytes read, chain length).
    pub(super) restore: LinearFit,
    /// Drains to lower tiers (checkpoint events with `tier > 0`): copy
    /// time against (bytes copied, logical bytes).
    pub(super) drain: LinearFit,
    /// Restores from a lower tier (restore events with `tier > 0`):
    /// restore time against (bytes read, chain length).
    pub(super) restore_lower: LinearFit,
    pub(super) logical: RunningMean,
    pub(super) dirty: RunningMean,
    /// Dirty fraction and compute interval of the same checkpoints.
    pub(super) dirty_fraction: RunningMean,
    pub(super) dirty_interval: RunningMean,
    pub(super) ratio: RunningMean,
    pub(super) chain: RunningMean,
    pub(super) step_secs: RunningMean,
    pub(super) compute_secs: RunningMean,
    /// How much slower a step runs while a background persist is in
    /// flight than while none is: the mean log of the ratio of their step
    /// times (priced as `exp(mean) − 1`, e.g. 0.1 for 10 % slower).
    pub(super) interference: RunningMean,
    /// The same for a step beside a drain to a lower tier against one
    /// beside neither (steps beside a drain and a persist at once count
    /// less the persist's share, and teach the persist's share less the
    /// drain's).
    pub(super) drain_interference: RunningMean,
    /// Mean time of a step beside no background persist and no drain.
    pub(super) idle_step_secs: RunningMean,
    /// Mean time of the idle steps before a fresh checkpointer's first
    /// capture: the process's warm-up (cold caches, first-touched pages),
    /// often far slower than the steps after. Kept apart from
    /// `idle_step_secs`: it is a baseline only while there is no other,
    /// and then a slowdown measured against it is a floor, never a
    /// reading of none.
    #[serde(default)]
    pub(super) warmup_step_secs: RunningMean,
    pub(super) failures: Vec<(FailureClass, FailureCounts)>,
    pub(super) summary: EventSummary,
}

impl Learned {
    /// The rate `r` of `d(τ) = S·(1 − e^{−rτ})`, per second of compute,
    /// from the mean dirty fraction and interval (see the module docs).
    pub(super) fn dirty_rate(&self) -> Option<f64> {
        let fraction = self.dirty_fraction.get()?.clamp(0.0, 1.0 - 1e-9);
        let interval = self.dirty_interval.get().filter(|t| *t > 0.0)?;
        Some(-(-fraction).ln_1p() / interval)
    }
}
