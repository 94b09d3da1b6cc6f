//! Multi-level checkpoints: a fast first tier every checkpoint commits on,
//! and lower tiers that some checkpoints are *drained* to in the
//! background.
//!
//! * `copy`: copying one checkpoint between tiers (packs the target
//!   lacks, then the manifest last).
//! * `drain`: the drain thread of one lower tier (queue, retention,
//!   retries with backoff, status and events).
//! * `restore`: restore across tiers (newest that verifies anywhere,
//!   fastest tier on a tie, fallback on damage, a lost first tier).
//!
//! The checkpointer decides which checkpoints drain (every k-th, see
//! [`Checkpointer::set_drain_every`](crate::Checkpointer::set_drain_every));
//! nothing here knows of the model or the policy.

mod copy;
mod drain;
mod restore;

pub(crate) use drain::Drainer;
pub(crate) use restore::{TierRecovered, find_step_across, promote, restore_across};

use crate::catalog::RetentionReport;
use crate::error::Error;
use std::time::Duration;

/// What happened to one drain to a lower tier, sent to
/// [`Checkpointer::subscribe_drains`](crate::Checkpointer::subscribe_drains).
///
/// Drains run on a thread of their own, so these arrive while the
/// computation goes on; a failing tier delays drains and says so here,
/// and never fails a checkpoint on the first tier.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum DrainEvent {
    /// The checkpoint is now on the tier, whole: every pack it needs is
    /// durable there and its manifest was written last.
    Drained {
        /// The tier's name.
        tier: String,
        /// The checkpoint's step.
        step: u64,
        /// Its manifest's key (the same on every tier).
        key: String,
        /// Packs copied (those the tier lacked).
        packs_copied: usize,
        /// Bytes copied: packs plus manifest.
        bytes_copied: u64,
        /// How long the copy and the tier's retention took.
        took: Duration,
        /// What the tier's retention removed afterwards.
        retention: RetentionReport,
    },
    /// The drain failed; it is retried after `retry_in` (sooner when
    /// [`flush`](crate::Checkpointer::flush) waits for it), unless a newer
    /// checkpoint is queued meanwhile, which then drains instead.
    Failed {
        /// The tier's name.
        tier: String,
        /// The checkpoint's step.
        step: u64,
        /// What failed.
        error: Error,
        /// Failures in a row on this tier.
        failures: u32,
        /// When the next attempt starts.
        retry_in: Duration,
    },
    /// The checkpoint will not be drained: a newer one was queued before
    /// its drain began, or the first tier no longer holds it whole.
    Superseded {
        /// The tier's name.
        tier: String,
        /// The checkpoint's step.
        step: u64,
        /// Why.
        reason: String,
    },
}

/// Where one lower tier's drains stand, from
/// [`Checkpointer::tiers`](crate::Checkpointer::tiers).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct TierStatus {
    /// The tier's name.
    pub name: String,
    /// The step of the newest checkpoint this run drained to it.
    pub drained: Option<u64>,
    /// The step of the checkpoint queued for it, not yet drained.
    pub pending: Option<u64>,
    /// Failed attempts in a row (0 once a drain succeeds).
    pub failures: u32,
    /// The error of the last failed attempt, until one succeeds.
    pub last_error: Option<Error>,
}

impl TierStatus {
    fn new(name: &str) -> Self {
        TierStatus {
            name: name.to_owned(),
            drained: None,
            pending: None,
            failures: 0,
            last_error: None,
        }
    }
}
