//! [`Committed`]: the report of one committed checkpoint, made once every
//! fact it holds is known (the stall when the call that captured it
//! returns, the group's vote when the commit is collected).

use super::pipeline::Persisted;
use crate::catalog::{CheckpointInfo, RetentionReport};
use crate::group::GroupStatus;
use std::time::Duration;

/// What one committed checkpoint did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Committed {
    /// The checkpoint, as [`Checkpointer::list`](crate::Checkpointer::list)
    /// would show it.
    pub info: CheckpointInfo,
    /// True when this checkpoint is a full base (references no older pack).
    pub full: bool,
    /// Decoded size of the chunks this checkpoint had to store (the
    /// changed part of the state, or all of it for a full checkpoint).
    pub changed_bytes: u64,
    /// Decoded size of the chunks whose content the previous checkpoint
    /// did not hold: how much of the state changed since then, whatever
    /// this checkpoint had to store. Equal to `changed_bytes` for an
    /// increment; for a full checkpoint, the part an increment would have
    /// written (everything when there is no previous checkpoint).
    pub dirty_bytes: u64,
    /// Bytes written to storage: packs plus manifest.
    pub bytes_written: u64,
    /// Time the computation was blocked by this checkpoint. For
    /// copy-on-write, the whole call that captured it: the snapshot,
    /// waiting for room in the queue of snapshots, and the bookkeeping of
    /// earlier commits done on the way.
    pub stall: Duration,
    /// Time spent writing it to storage (in the background for
    /// copy-on-write).
    pub persist: Duration,
    /// What retention removed after this commit.
    pub retention: RetentionReport,
    /// For a rank of a [`Group`](crate::Group): its vote for this step,
    /// and whether the step is now globally committed (a rank votes once
    /// its checkpoint is durable: with copy-on-write, when the background
    /// write is collected, as [`last_committed`](crate::Checkpointer::last_committed)
    /// reports).
    pub group: Option<GroupStatus>,
    /// True when this checkpoint was queued for a drain to the lower
    /// tiers (every k-th commit: see
    /// [`Checkpointer::set_drain_every`](crate::Checkpointer::set_drain_every));
    /// [`DrainEvent`](crate::DrainEvent)s tell when it is there. Always
    /// false without lower tiers.
    pub drain_queued: bool,
}

impl Committed {
    /// The report of `persisted`. `blocked` is how long the capturing call
    /// blocked when the checkpoint was persisted in the background (for
    /// one persisted inline the stall is capture plus persist).
    pub(crate) fn new(
        persisted: Persisted,
        blocked: Option<Duration>,
        group: Option<GroupStatus>,
    ) -> Self {
        let Persisted {
            written,
            info,
            retention,
            ..
        } = persisted;
        let stall = match blocked {
            Some(blocked) => blocked,
            None if written.background => written.capture_time,
            None => written.capture_time + written.persist,
        };
        Committed {
            info,
            full: written.full,
            changed_bytes: written.changed_bytes,
            dirty_bytes: written.dirty_bytes,
            bytes_written: written.bytes_written,
            stall,
            persist: written.persist,
            retention,
            group,
            drain_queued: false,
        }
    }
}
