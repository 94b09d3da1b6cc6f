//! Retention of a rank of a group: which shards and group objects one
//! rank keeps and which it collects (the rules are in the `group` module
//! docs).

use super::group_commits::{CommitName, Kept, list_commits, read_commit, shard_of};
use super::read::{ManifestRead, read_manifest, scan};
use super::retention::{Retention, RetentionReport, Sweep, remove_expired};
use crate::error::{Error, Result};
use crate::format::Manifest;
use crate::format::group::{GlobalCommit, RESTORES, VOTES, parse_restore_key, parse_vote_key};
use crate::format::layout::ManifestName;
use crate::storage::Storage;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// Group retention for one rank: see the module docs.
#[derive(Debug)]
pub(crate) struct GroupRetention {
    root: Arc<dyn Storage>,
    ranks: u32,
    rank: u32,
    run_id: String,
    keep_last: usize,
    first_seq: u64,
    /// Commit records are immutable: each is read once (`None`: damaged).
    cache: Mutex<BTreeMap<String, Option<GlobalCommit>>>,
    /// The commit this launch restores, once this rank restored: kept
    /// until the launch commits a step of its own (every rank has restored
    /// by then), even if a late commit of a crashed launch is newer.
    restoring: Mutex<Option<String>>,
}

impl GroupRetention {
    /// Retention for rank `rank` of `ranks` in launch `run_id`, over the
    /// shared store `root`; `first_seq` is the first manifest sequence
    /// number this launch writes.
    pub(crate) fn new(
        root: Arc<dyn Storage>,
        (ranks, rank, run_id): (u32, u32, String),
        keep_last: usize,
        first_seq: u64,
    ) -> Self {
        GroupRetention {
            root,
            ranks,
            rank,
            run_id,
            keep_last,
            first_seq,
            cache: Mutex::default(),
            restoring: Mutex::default(),
        }
    }

    /// Records the commit this launch restores (`None`: it starts fresh).
    pub(crate) fn restoring(&self, commit: Option<String>) {
        *self
            .restoring
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = commit;
    }
}

impl GroupRetention {
    /// The newest `keep_last` commits whose records verify, newest first,
    /// and every commit name, oldest first.
    fn kept_commits(&self) -> Result<(Vec<Kept>, Vec<CommitName>)> {
        let names = list_commits(self.root.as_ref())?;
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.retain(|key, _| names.iter().any(|n| &n.key == key));
        let mut kept = Vec::new();
        for name in names.iter().rev() {
            if kept.len() >= self.keep_last {
                break;
            }
            if !cache.contains_key(&name.key) {
                let commit = match read_commit(self.root.as_ref(), &name.key, self.ranks) {
                    Ok(commit) => Some(commit),
                    Err(e) if e.is_damage() => None,
                    Err(e) => return Err(e),
                };
                cache.insert(name.key.clone(), commit);
            }
            if let Some(Some(commit)) = cache.get(&name.key) {
                kept.push((name.clone(), commit.clone()));
            }
        }
        Ok((kept, names))
    }

    /// Rank 0 removes commits older than the retained ones (except those of
    /// a format version this build cannot read: a newer ckpt wrote them,
    /// and the one this launch restores until it has committed a step),
    /// votes that can no longer matter: those of steps at or below the
    /// newest commit, and those of other launches (restore committed every
    /// complete set before this launch checkpointed, so theirs are
    /// incomplete forever), and the restore choices of other launches (a
    /// launch's choice matters only while its ranks restore).
    fn collect_group_objects(&self, kept: &[Kept], names: &[CommitName]) -> Result<()> {
        let root = self.root.as_ref();
        let restoring = self
            .restoring
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .filter(|_| !names.iter().any(|n| n.run == self.run_id));
        if kept.len() >= self.keep_last
            && let Some((oldest_kept, _)) = kept.last()
        {
            for name in names.iter().filter(|n| *n < oldest_kept) {
                if restoring.as_ref() != Some(&name.key)
                    && !self.commit_is_newer_format(&name.key)?
                {
                    root.delete(&name.key)?;
                }
            }
        }
        let newest_step = kept.first().map(|(name, _)| name.step);
        for key in root.list(VOTES)? {
            let Some((step, run, _)) = parse_vote_key(&key) else {
                continue;
            };
            if newest_step.is_some_and(|newest| step <= newest) || run != self.run_id {
                root.delete(&key)?;
            }
        }
        for key in root.list(RESTORES)? {
            if parse_restore_key(&key).is_some_and(|run| run != self.run_id) {
                root.delete(&key)?;
            }
        }
        Ok(())
    }
}

impl GroupRetention {
    /// Whether the commit record `key` has a format version this build
    /// cannot read. A commit this rank once read is known not to be; any
    /// other is read, once before it goes (newer ones on each pass: they
    /// are few and small).
    fn commit_is_newer_format(&self, key: &str) -> Result<bool> {
        let verified = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .is_some_and(Option::is_some);
        if verified {
            return Ok(false);
        }
        match read_commit(self.root.as_ref(), key, self.ranks) {
            Err(Error::UnsupportedVersion { .. }) => Ok(true),
            Err(e) if !e.is_damage() => Err(e),
            _ => Ok(false),
        }
    }
}

impl Retention for GroupRetention {
    fn apply(
        &self,
        shard: &dyn Storage,
        newest: &Manifest,
        _damaged: &BTreeSet<String>,
    ) -> Result<RetentionReport> {
        self.collect(shard, Some(newest.name().key()))
    }
}

impl GroupRetention {
    /// One pass: keeps this rank's shards of the retained commits, the
    /// shards this launch wrote above the newest commit, `protect`, and
    /// every shard of a newer format; deletes its other manifests and every
    /// pack none of the kept ones references, with the same exceptions for
    /// newer formats as a lone checkpointer (see [`RetentionReport`]).
    /// Rank 0 then collects the group's objects.
    pub(crate) fn collect(
        &self,
        shard: &dyn Storage,
        protect: Option<String>,
    ) -> Result<RetentionReport> {
        let (kept, names) = self.kept_commits()?;
        let newest_committed = kept.first().map(|(name, _)| name.step);
        let mut keep: BTreeSet<String> = kept
            .iter()
            .filter_map(|(_, commit)| shard_of(commit, self.rank))
            .map(|s| s.manifest.clone())
            .collect();
        keep.extend(protect);
        let (locals, _) = scan(shard)?;
        let pending = |name: &ManifestName| {
            name.seq >= self.first_seq && newest_committed.is_none_or(|step| name.step > step)
        };
        let mut sweep = Sweep::default();
        for name in &locals {
            let key = name.key();
            let retained = keep.contains(&key) || pending(name);
            match read_manifest(shard, name)? {
                ManifestRead::NewerFormat(_) => sweep.newer_format.push(key),
                _ if !retained => sweep.expired.push(key),
                ManifestRead::Verified(manifest) => sweep.keep_packs_of(&manifest),
                ManifestRead::Damaged(_) => {}
            }
        }
        let report = remove_expired(shard, &sweep)?;
        if self.rank == 0 {
            self.collect_group_objects(&kept, &names)?;
        }
        Ok(report)
    }
}
