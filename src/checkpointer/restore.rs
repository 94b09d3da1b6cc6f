//! Restore through a checkpointer: the newest checkpoint, a chosen step,
//! or a rank's shard of the group's chosen step; a restored checkpoint
//! becomes the base of the next increment.

use super::Checkpointer;
use super::adaptive::Adaptive;
use crate::catalog;
use crate::error::{Error, Result};
use crate::group::{GlobalCommitInfo, GroupRestore};
use crate::model::RestoreProgressEvent;
use crate::recover::{self, Recovered, Restored};
use crate::state::State;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

impl Checkpointer {
    /// Restores the newest checkpoint that verifies, or `None` if the store
    /// holds no checkpoint at all.
    ///
    /// Newer checkpoints that fail verification are passed over and listed
    /// in [`Restored::skipped`]. If checkpoints exist but none verifies,
    /// this is [`Error::NoUsableCheckpoint`] rather than `None`, so a
    /// damaged store is never mistaken for a fresh start.
    ///
    /// For a rank of a [`Group`](crate::Group), this is the rank's shard of the newest
    /// globally committed step when the launch's first rank restored (it
    /// records that choice; every rank of the launch restores the same
    /// step); shards of steps the group never committed are never
    /// restored. Call it before
    /// the first checkpoint, on every rank, even on a fresh store.
    pub fn restore_latest<S: State>(&mut self) -> Result<Option<Restored<S>>> {
        self.flush()?;
        if self.group.is_some() {
            return self.restore_group();
        }
        if self.tiers.is_some() {
            return self.restore_tiers();
        }
        let started = Instant::now();
        // Foreign names under manifests/ are not checkpoints: list() shows
        // them, restore does not count them as skipped.
        let (names, _foreign) = catalog::scan(self.storage.as_ref())?;
        let storage = Arc::clone(&self.storage);
        let found = {
            let mut progress = progress_events(&mut self.adaptive);
            recover::restore_newest::<S>(storage.as_ref(), &names, &mut progress)?
        };
        found
            .map(|recovered| self.resumed(recovered, started, None, None, 0))
            .transpose()
    }

    /// Restores the checkpoint taken at `step` (the newest one, if the
    /// step was checkpointed more than once), or `None` when the store
    /// holds none of that step. Unlike [`restore_latest`](Self::restore_latest)
    /// there is no fallback: a checkpoint that does not verify is an error.
    ///
    /// The next checkpoint continues from it (an incremental one stores
    /// what changed since it); newer checkpoints stay in the store until
    /// retention removes them. Not for a rank of a group (every rank must
    /// restore the same global commit: use `restore_latest`).
    pub fn restore_at<S: State>(&mut self, step: u64) -> Result<Option<Restored<S>>> {
        self.flush()?;
        if self.group.is_some() {
            return Err(Error::InvalidConfig {
                option: "group",
                reason: "a rank of a group restores the newest global commit with restore_latest, so that every rank restores the same step".to_owned(),
            });
        }
        if self.tiers.is_some() {
            return self.restore_tiers_at(step);
        }
        let started = Instant::now();
        let Some(name) = recover::find_step(self.storage.as_ref(), step)? else {
            return Ok(None);
        };
        let storage = Arc::clone(&self.storage);
        let recovered = {
            let mut progress = progress_events(&mut self.adaptive);
            recover::restore_named::<S>(storage.as_ref(), &name, &mut progress)?
        };
        self.resumed(recovered, started, None, None, 0).map(Some)
    }

    fn restore_group<S: State>(&mut self) -> Result<Option<Restored<S>>> {
        let started = Instant::now();
        let Some(coordinator) = &mut self.group else {
            return Ok(None);
        };
        let Some(found) = coordinator.restore(self.storage.as_ref())? else {
            return Ok(None);
        };
        let GroupRestore {
            commit,
            manifest,
            skipped,
            damaged,
        } = found;
        let storage = Arc::clone(&self.storage);
        let (state, type_changes) = {
            let mut progress = progress_events(&mut self.adaptive);
            recover::read_state::<S>(storage.as_ref(), &manifest, &mut progress)
                .map_err(|e| damaged.error(e))?
        };
        let recovered = Recovered {
            state,
            manifest,
            type_changes,
            skipped,
        };
        self.resumed(recovered, started, Some(commit), None, 0)
            .map(Some)
    }

    /// Makes `recovered` the base of what comes next and reports it.
    /// `damaged`, when given, are the manifests retention must not count
    /// as kept (by default: every skipped one); `tier` is the index of the
    /// tier it was read from (0 for the first).
    pub(super) fn resumed<S>(
        &mut self,
        recovered: Recovered<S>,
        started: Instant,
        global: Option<GlobalCommitInfo>,
        damaged: Option<BTreeSet<String>>,
        tier: usize,
    ) -> Result<Restored<S>> {
        let info = recovered.info();
        let Recovered {
            state,
            manifest,
            type_changes,
            skipped,
        } = recovered;
        // In a group, newer shards that were never committed are not
        // damage: retention has nothing to learn from them.
        let damaged = match (&global, damaged) {
            (Some(_), _) => BTreeSet::new(),
            (None, Some(damaged)) => damaged,
            (None, None) => skipped.iter().map(|s| s.key.clone()).collect(),
        };
        self.resume_from(manifest, damaged)?;
        self.adaptive.restored(
            info.step,
            started.elapsed(),
            info.chain_len,
            info.logical_bytes,
            u8::try_from(tier).unwrap_or(u8::MAX),
        );
        Ok(Restored {
            state,
            step: info.step,
            info,
            skipped,
            global,
            type_changes,
            tier: None,
        })
    }
}

/// A progress sink that emits [`RestoreProgressEvent`]s.
pub(super) fn progress_events(adaptive: &mut Adaptive) -> impl FnMut(u64, u64, u64) + '_ {
    move |step, done, total| adaptive.emit(RestoreProgressEvent::new(step, done, total).into())
}
