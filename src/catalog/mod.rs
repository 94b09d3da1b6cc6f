//! What a store holds: listing, loading and verifying checkpoints
//! (`read`), the group's commit records (`group_commits`), and retention
//! with garbage collection of unreferenced packs — a lone checkpointer's
//! and a group rank's, in one place (`retention`, `group_retention`).

mod group_commits;
mod group_retention;
mod read;
mod retention;

pub(crate) use group_commits::{CommitName, list_commits, read_commit, shard_of};
pub(crate) use group_retention::GroupRetention;
pub(crate) use read::{list, load_manifest, scan, skipped};
pub use retention::RetentionReport;
pub(crate) use retention::{KeepLast, Pins, Retention, apply_retention};

use crate::error::Skipped;
use crate::format::Manifest;
use crate::scheme::Scheme;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A checkpoint whose manifest reads and verifies.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckpointInfo {
    /// The manifest's key in the store.
    pub key: String,
    /// The application step it was taken at.
    pub step: u64,
    /// Commit order within the store: higher is newer.
    pub seq: u64,
    /// The scheme that wrote it, if this build knows it.
    pub scheme: Option<Scheme>,
    /// When it was committed.
    pub created: SystemTime,
    /// Size of the state it holds, decoded.
    pub logical_bytes: u64,
    /// Bytes its own packs occupy in the store.
    pub stored_bytes: u64,
    /// How many checkpoints a restore of it reads.
    pub chain_len: u32,
}

impl CheckpointInfo {
    pub(crate) fn of(manifest: &Manifest) -> Self {
        CheckpointInfo {
            key: manifest.name().key(),
            step: manifest.step,
            seq: manifest.seq,
            scheme: Scheme::from_code(manifest.scheme),
            created: UNIX_EPOCH + Duration::from_millis(manifest.created_unix_ms),
            logical_bytes: manifest.logical_bytes(),
            stored_bytes: manifest.stored_bytes,
            chain_len: manifest.chain_len,
        }
    }
}

/// Everything a store holds, as [`Checkpointer::list`](crate::Checkpointer::list)
/// reports it.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Listing {
    /// Checkpoints whose manifests verify, oldest first.
    pub checkpoints: Vec<CheckpointInfo>,
    /// Manifests that do not verify (their packs are not read here), and
    /// keys under `manifests/` this layout did not write. Those of a newer
    /// format version are in [`newer_format`](Self::newer_format) instead.
    pub unreadable: Vec<Skipped>,
    /// Manifests of a format version this build cannot read, oldest first:
    /// written by a newer ckpt (e.g. before a binary rollback). They are
    /// not damaged, and retention never deletes them, nor any pack while
    /// one of them is in the store (see [`RetentionReport`]); upgrading
    /// ckpt makes them restorable again.
    pub newer_format: Vec<Skipped>,
}
