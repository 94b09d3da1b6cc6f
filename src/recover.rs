//! Choosing a checkpoint and reading a state out of it: the restore logic
//! that [`Checkpointer`](crate::Checkpointer) and [`Reader`](crate::Reader)
//! share.
//!
//! Nothing here writes to the store.

use crate::catalog::{self, CheckpointInfo};
use crate::error::Skipped;
use crate::error::{Error, Result};
use crate::format::Manifest;
use crate::format::layout::ManifestName;
use crate::group::GlobalCommitInfo;
use crate::state::{Restore, State, TypeChange};
use crate::storage::Storage;
use crate::trace;

/// A restored state and where it came from.
#[derive(Debug)]
#[non_exhaustive]
pub struct Restored<S> {
    /// The state as it was checkpointed.
    pub state: S,
    /// The step it was checkpointed at (as passed to
    /// [`Checkpointer::checkpoint`](crate::Checkpointer::checkpoint) or [`Checkpointer::scope`](crate::Checkpointer::scope)).
    pub step: u64,
    /// The checkpoint it came from.
    pub info: CheckpointInfo,
    /// Newer checkpoints that were passed over because they did not
    /// verify, newest first (for a rank of a group: global commits).
    pub skipped: Vec<Skipped>,
    /// For a rank of a [`Group`](crate::Group): the global commit this shard belongs to.
    pub global: Option<GlobalCommitInfo>,
    /// Serde segments restored as a type of another name than they were
    /// written as (empty when every name matched, and for checkpoints
    /// of format 1, which did not record names): a rename is harmless,
    /// but bytes of one type decoded as another are worth a look.
    pub type_changes: Vec<TypeChange>,
    /// For a checkpointer with [tiers](crate::CheckpointerBuilder::tier):
    /// which tier the checkpoint came from, and whether the first tier was
    /// found lost. `None` without tiers.
    pub tier: Option<RestoredTier>,
}

/// Where a restore across tiers found its checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RestoredTier {
    /// The tier's name, as given to the builder.
    pub name: String,
    /// Its place in the builder's order: 0 is the first (fastest) tier.
    pub index: usize,
    /// True when the first tier held no checkpoint at all while a lower
    /// tier did: the first tier was lost (the node was replaced, its
    /// directory wiped), as opposed to a process crash it survived.
    pub first_tier_lost: bool,
    /// True when the checkpoint came from a lower tier and was copied
    /// into the first tier before the computation resumed (so that the
    /// next increment has its base there).
    pub promoted: bool,
    /// Lower tiers that could not be listed (named, with the error): a
    /// newer checkpoint may be on one of them.
    pub unreachable: Vec<(String, String)>,
}

/// A state read out of one checkpoint.
pub(crate) struct Recovered<S> {
    pub state: S,
    pub manifest: Manifest,
    pub type_changes: Vec<TypeChange>,
    /// Newer checkpoints passed over, newest first.
    pub skipped: Vec<Skipped>,
}

impl<S> Recovered<S> {
    pub(crate) fn info(&self) -> CheckpointInfo {
        CheckpointInfo::of(&self.manifest)
    }
}

/// Reports `(step, bytes done, bytes total)` of a long restore.
pub(crate) type ProgressSink<'a> = &'a mut dyn FnMut(u64, u64, u64);

/// Reads `S` out of `manifest`: the segments the state asks for, then
/// (verifying only) the ones it does not.
pub(crate) fn read_state<S: State>(
    storage: &dyn Storage,
    manifest: &Manifest,
    progress: ProgressSink<'_>,
) -> Result<(S, Vec<TypeChange>)> {
    let step = manifest.step;
    let span = trace::info_span!(
        "restore",
        step,
        seq = manifest.seq,
        chain_len = manifest.chain_len,
        bytes_read = trace::Empty,
        took = trace::Empty
    )
    .entered();
    let timer = trace::Timer::start();
    let mut report = |done, total| progress(step, done, total);
    let mut restore = Restore::new(storage, manifest, &mut report);
    let bytes = restore.stored_bytes();
    let state = S::restore(&mut restore)?;
    let type_changes = restore.finish()?;
    trace::record!(span, bytes_read = bytes, took = ?timer.elapsed());
    Ok((state, type_changes))
}

/// Restores the newest checkpoint among `names` (oldest first) that
/// verifies and decodes; `None` when there is none at all, and
/// [`Error::NoUsableCheckpoint`] when there are some but none verifies.
/// Damaged checkpoints are passed over and reported.
pub(crate) fn restore_newest<S: State>(
    storage: &dyn Storage,
    names: &[ManifestName],
    progress: ProgressSink<'_>,
) -> Result<Option<Recovered<S>>> {
    let mut skipped = Vec::new();
    for name in names.iter().rev() {
        match restore_named::<S>(storage, name, &mut *progress) {
            Ok(mut recovered) => {
                recovered.skipped = skipped;
                return Ok(Some(recovered));
            }
            Err(e) if e.is_damage() => {
                trace::warn!(step = name.step, seq = name.seq, error = %e.report(), "skipped a damaged checkpoint");
                skipped.push(catalog::skipped(name, &e));
            }
            Err(e) => return Err(e),
        }
    }
    if skipped.is_empty() {
        Ok(None)
    } else {
        Err(Error::NoUsableCheckpoint { skipped })
    }
}

/// Restores the checkpoint `name`; damage is an error, not a fallback.
pub(crate) fn restore_named<S: State>(
    storage: &dyn Storage,
    name: &ManifestName,
    progress: ProgressSink<'_>,
) -> Result<Recovered<S>> {
    let manifest = catalog::load_manifest(storage, name)?;
    let (state, type_changes) = read_state::<S>(storage, &manifest, progress)?;
    Ok(Recovered {
        state,
        manifest,
        type_changes,
        skipped: Vec::new(),
    })
}

/// The name of the newest checkpoint in the store taken at `step`.
pub(crate) fn find_step(storage: &dyn Storage, step: u64) -> Result<Option<ManifestName>> {
    let (names, _foreign) = catalog::scan(storage)?;
    Ok(names.into_iter().rev().find(|name| name.step == step))
}

/// The checkpoint whose manifest is stored under `key` (its name is in
/// the key; whether it exists is found when it is read).
pub(crate) fn parse_key(key: &str) -> Result<ManifestName> {
    ManifestName::parse(key).ok_or_else(|| Error::NotFound {
        key: key.to_owned(),
    })
}

/// Reads and verifies every byte the checkpoint `name` needs, keeping
/// nothing.
pub(crate) fn verify(
    storage: &dyn Storage,
    name: &ManifestName,
    progress: ProgressSink<'_>,
) -> Result<CheckpointInfo> {
    let manifest = catalog::load_manifest(storage, name)?;
    let step = manifest.step;
    let mut report = |done, total| progress(step, done, total);
    Restore::new(storage, &manifest, &mut report).finish()?;
    Ok(CheckpointInfo::of(&manifest))
}
