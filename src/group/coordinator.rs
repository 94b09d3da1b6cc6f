//! The coordinator: one rank's side of the protocol — voting, committing,
//! choosing and restoring a launch's commit.

use super::records::{
    build_commit, check_config, manifest_hash, register_run, shards_intact, skipped_commit,
};
use super::{GlobalCommitInfo, Group, GroupRestore, GroupStatus, ShardDamage};
use crate::catalog::{
    CheckpointInfo, CommitName, GroupRetention, list_commits, read_commit, shard_of,
};
use crate::error::Skipped;
use crate::error::{Error, Result};
use crate::format::Manifest;
use crate::format::group::{
    COMMITS, ChosenCommit, GlobalCommit, Record, RestoreChoice, ShardRef, VOTES, Vote, commit_key,
    parse_commit_key, parse_vote_key, restore_key, vote_key, votes_prefix,
};
use crate::storage::Storage;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The group side of one rank's checkpointer.
#[derive(Debug)]
pub(crate) struct Coordinator {
    root: Arc<dyn Storage>,
    group: Group,
    restored: bool,
    /// True once this process checkpointed.
    checkpointed: bool,
    /// The last step checkpointed or restored in this process.
    last_step: Option<u64>,
    /// Shared with the writer; also run after a restore.
    retention: Option<Arc<GroupRetention>>,
}

impl Coordinator {
    /// Opens the group on `root`: checks (or records) its size. Call
    /// [`register`](Self::register) once nothing else can fail.
    pub(crate) fn open(root: Arc<dyn Storage>, group: Group) -> Result<Self> {
        group.validate()?;
        check_config(root.as_ref(), group.ranks)?;
        Ok(Coordinator {
            root,
            group,
            restored: false,
            checkpointed: false,
            last_step: None,
            retention: None,
        })
    }

    /// Registers this rank in this launch (a run id is used once per
    /// rank); the last step of opening a checkpointer, so that a failure
    /// before it does not use up the id.
    pub(crate) fn register(&self) -> Result<()> {
        register_run(self.root.as_ref(), &self.group)
    }

    /// The group this rank belongs to.
    pub(crate) fn group(&self) -> &Group {
        &self.group
    }

    /// The retention this rank's writer applies after each checkpoint.
    /// `first_seq` is the first manifest sequence number this process
    /// writes: manifests from there on belong to this launch.
    pub(crate) fn retention(&mut self, keep_last: usize, first_seq: u64) -> Arc<GroupRetention> {
        let member = (self.group.ranks, self.group.rank, self.group.run_id.clone());
        let retention = Arc::new(GroupRetention::new(
            self.root.clone(),
            member,
            keep_last,
            first_seq,
        ));
        self.retention = Some(retention.clone());
        retention
    }

    /// After a restore: removes what earlier launches left that no
    /// retained commit needs (shards that never committed, votes of old
    /// launches), so a relaunch starts from a tidy store.
    fn collect_after_restore(&self, shard: &dyn Storage, restored: Option<String>) -> Result<()> {
        match &self.retention {
            Some(retention) => retention.collect(shard, restored).map(|_| ()),
            None => Ok(()),
        }
    }

    /// Checks that a checkpoint of `step` may be taken now.
    pub(crate) fn check_checkpoint(&self, step: u64) -> Result<()> {
        if !self.restored {
            return Err(Error::GroupOrder {
                reason: format!(
                    "rank {} checkpoints before restoring; call restore_latest first (it returns None on a fresh store), so that every rank resumes from the same step",
                    self.group.rank
                ),
            });
        }
        if let Some(last) = self.last_step.filter(|&last| step <= last) {
            return Err(Error::GroupOrder {
                reason: format!(
                    "step {step} is not after step {last}, which rank {} already checkpointed or restored; steps must increase (resume at restored step + 1)",
                    self.group.rank
                ),
            });
        }
        Ok(())
    }

    /// Records that `step` was captured and goes to storage.
    pub(crate) fn checkpointing(&mut self, step: u64) {
        self.last_step = Some(step);
        self.checkpointed = true;
    }

    /// Votes for the durable shard `info` (in `shard`, this rank's
    /// namespace) and commits its step globally if every rank has voted.
    pub(crate) fn vote(&self, shard: &dyn Storage, info: &CheckpointInfo) -> Result<GroupStatus> {
        let bytes = shard.get(&info.key)?;
        let Group { ranks, rank, .. } = self.group;
        let run = &self.group.run_id;
        let vote = Vote {
            step: info.step,
            run: run.clone(),
            rank,
            ranks,
            shard: ShardRef {
                manifest: info.key.clone(),
                hash: manifest_hash(&bytes),
            },
        };
        self.root
            .put(&vote_key(info.step, run, rank), &vote.encode()?)?;
        self.try_commit(info.step)
    }

    fn try_commit(&self, step: u64) -> Result<GroupStatus> {
        let run = &self.group.run_id;
        let voters: BTreeSet<u32> = self
            .root
            .list(&votes_prefix(step, run))?
            .iter()
            .filter_map(|key| parse_vote_key(key))
            .filter(|(s, r, rank)| *s == step && r == run && *rank < self.group.ranks)
            .map(|(_, _, rank)| rank)
            .collect();
        let mut status = GroupStatus {
            step,
            ranks: self.group.ranks,
            votes: u32::try_from(voters.len()).unwrap_or(u32::MAX),
            globally_committed: false,
            created: false,
        };
        if status.votes < self.group.ranks {
            return Ok(status);
        }
        let key = commit_key(step, run);
        match build_commit(self.root.as_ref(), step, run, self.group.ranks) {
            Ok(commit) => {
                let bytes = commit.encode()?;
                status.created = self.root.put_if_absent(&key, &bytes)?;
                status.globally_committed = status.created || self.root.get(&key)? == bytes;
            }
            // A vote vanished: another rank committed the step and rank 0's
            // collection removed the votes. A damaged vote: the step
            // cannot commit (restore falls back to the previous one).
            Err(e) if e.is_damage() => {
                status.globally_committed =
                    read_commit(self.root.as_ref(), &key, self.group.ranks).is_ok();
            }
            Err(e) => return Err(e),
        }
        Ok(status)
    }

    /// Restores this rank's shard of the commit the launch chose (see
    /// [`launch_choice`](Self::launch_choice)): the newest global commit
    /// that verified when the launch's first rank restored; `None` when the
    /// group had committed nothing then.
    pub(crate) fn restore(&mut self, shard: &dyn Storage) -> Result<Option<GroupRestore>> {
        if self.checkpointed {
            return Err(Error::GroupOrder {
                reason: format!(
                    "rank {} restores after checkpointing; in a group, restore only at the start of a launch (the other ranks would not go back with it): restart the whole group with a new run id",
                    self.group.rank
                ),
            });
        }
        let choice = self.launch_choice()?;
        let skipped = self.damaged_above(choice.commit.as_ref())?;
        let Some(chosen) = choice.commit else {
            self.tell_retention(None);
            self.collect_after_restore(shard, None)?;
            self.restored = true;
            self.last_step = None;
            return Ok(None);
        };
        let commit = self.read_chosen(&chosen)?;
        let name = CommitName {
            step: chosen.step,
            run: commit.run.clone(),
            key: chosen.key,
        };
        let info = GlobalCommitInfo::of(&name, &commit, self.group.rank);
        let damaged = ShardDamage {
            rank: self.group.rank,
            step: commit.step,
            commit: info.key.clone(),
            votes: votes_prefix(commit.step, &commit.run),
        };
        let manifest = self
            .load_shard(shard, &commit, &info)
            .map_err(|e| damaged.error(e))?;
        self.tell_retention(Some(&name));
        self.collect_after_restore(shard, Some(manifest.name().key()))?;
        self.restored = true;
        self.last_step = Some(commit.step);
        Ok(Some(GroupRestore {
            commit: info,
            manifest,
            skipped,
            damaged,
        }))
    }

    /// The commit this launch restores, the same on every rank: the one
    /// the launch's first rank to restore recorded, or, on that first rank,
    /// the newest commit that verifies once complete vote sets are rolled
    /// forward (recorded with a conditional create; a rank that loses the
    /// race adopts the winner's). A rank that finds the choice made does
    /// not roll forward: a vote set completed since (a late vote of a
    /// crashed launch) cannot change the choice, so it is left alone.
    fn launch_choice(&self) -> Result<RestoreChoice> {
        let root = self.root.as_ref();
        let key = restore_key(&self.group.run_id);
        if let Some(choice) = self.read_choice(&key)? {
            return Ok(choice);
        }
        let created = self.roll_forward()?;
        let mut skipped = Vec::new();
        let mut newest = None;
        for name in list_commits(root)?.into_iter().rev() {
            match read_commit(root, &name.key, self.group.ranks) {
                Ok(_) => {
                    newest = Some(ChosenCommit {
                        step: name.step,
                        key: name.key,
                    });
                    break;
                }
                Err(e) if e.is_damage() => skipped.push(skipped_commit(&name, &e)),
                Err(e) => return Err(e),
            }
        }
        // Nothing usable is an error on this rank, not a choice: the others
        // meet the same damage (a commit that appears later only makes a
        // rank that restores it go on alone while this one has failed).
        if newest.is_none() && !skipped.is_empty() {
            return Err(Error::NoUsableCheckpoint { skipped });
        }
        let choice = RestoreChoice {
            run: self.group.run_id.clone(),
            commit: newest,
        };
        if root.put_if_absent(&key, &choice.encode()?)? {
            return Ok(choice);
        }
        let choice = self
            .read_choice(&key)?
            .ok_or_else(|| Error::corrupt(&key, "the launch's restore choice vanished"))?;
        // Another rank chose first: a commit this rank created meanwhile
        // (a vote set a late vote completed) came after the choice, and the
        // ranks that adopted the choice may already have collected its
        // shards; unless it is the chosen one, it goes.
        for late in created {
            if choice.commit.as_ref().is_none_or(|c| c.key != late) {
                root.delete(&late)?;
            }
        }
        Ok(choice)
    }

    /// This launch's recorded restore choice, if any.
    fn read_choice(&self, key: &str) -> Result<Option<RestoreChoice>> {
        let bytes = match self.root.get(key) {
            Ok(bytes) => bytes,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let choice = RestoreChoice::decode(key, &bytes)?;
        let names_its_key = choice
            .commit
            .as_ref()
            .is_none_or(|c| parse_commit_key(&c.key).is_some_and(|(step, _)| step == c.step));
        if choice.run != self.group.run_id || !names_its_key {
            return Err(Error::corrupt(
                key,
                "the restore choice disagrees with its key or names no commit",
            ));
        }
        Ok(Some(choice))
    }

    /// Reads the commit the launch chose. It verified when it was chosen;
    /// if it no longer does, no rank may fall back alone.
    fn read_chosen(&self, chosen: &ChosenCommit) -> Result<GlobalCommit> {
        read_commit(self.root.as_ref(), &chosen.key, self.group.ranks).map_err(|e| {
            if !e.is_damage() {
                return e;
            }
            Error::corrupt(
                &chosen.key,
                format!(
                    "the commit of step {} that launch {:?} restores (recorded in {}) no longer verifies ({}); restart the group with a new run id",
                    chosen.step,
                    self.group.run_id,
                    restore_key(&self.group.run_id),
                    e.report()
                ),
            )
        })
    }

    /// Commits newer than `chosen` (all, for `None`) whose records do not
    /// verify: what the restore reports as skipped.
    fn damaged_above(&self, chosen: Option<&ChosenCommit>) -> Result<Vec<Skipped>> {
        let mut skipped = Vec::new();
        for name in list_commits(self.root.as_ref())?.iter().rev() {
            if chosen.is_some_and(|c| c.key == name.key) {
                break;
            }
            match read_commit(self.root.as_ref(), &name.key, self.group.ranks) {
                Ok(_) => {}
                Err(e) if e.is_damage() => skipped.push(skipped_commit(name, &e)),
                Err(e) => return Err(e),
            }
        }
        Ok(skipped)
    }

    /// Tells retention which commit the launch restores (`None`: it
    /// starts fresh).
    fn tell_retention(&self, commit: Option<&CommitName>) {
        if let Some(retention) = &self.retention {
            retention.restoring(commit.map(|c| c.key.clone()));
        }
    }

    /// Loads the manifest of this rank's shard of `commit` (its packs are
    /// read as the state is restored); the caller turns damage into
    /// [`Error::ShardDamaged`] ([`ShardDamage::error`]), never a silent
    /// fallback.
    fn load_shard(
        &self,
        shard: &dyn Storage,
        commit: &GlobalCommit,
        info: &GlobalCommitInfo,
    ) -> Result<Manifest> {
        shard_of(commit, self.group.rank)
            .ok_or_else(|| Error::corrupt(&info.key, "the commit names no shard for this rank"))
            .and_then(|shard_ref| {
                let bytes = shard.get(&shard_ref.manifest)?;
                if manifest_hash(&bytes) != shard_ref.hash {
                    return Err(Error::corrupt(
                        &shard_ref.manifest,
                        "the manifest is not the one the commit names (hash mismatch)",
                    ));
                }
                let manifest = Manifest::decode(&shard_ref.manifest, &bytes)?;
                if manifest.step != commit.step {
                    return Err(Error::corrupt(
                        &shard_ref.manifest,
                        "the manifest's step is not the commit's",
                    ));
                }
                Ok(manifest)
            })
    }

    /// Creates the commit of every complete vote set that lacks one: its
    /// last voter died between voting and committing, but every shard of
    /// the step is durable, so the step is globally durable. A set whose
    /// last vote landed late (in flight when its launch died) may name a
    /// shard its rank has since collected: such a set is left alone, so a
    /// commit never names a missing shard.
    /// Returns the commits it created.
    fn roll_forward(&self) -> Result<Vec<String>> {
        let root = self.root.as_ref();
        let existing: BTreeSet<String> = root.list(COMMITS)?.into_iter().collect();
        let mut created = Vec::new();
        let mut sets: BTreeMap<(u64, String), BTreeSet<u32>> = BTreeMap::new();
        for key in root.list(VOTES)? {
            if let Some((step, run, rank)) = parse_vote_key(&key)
                && rank < self.group.ranks
            {
                sets.entry((step, run)).or_default().insert(rank);
            }
        }
        for ((step, run), voters) in sets {
            let complete = voters.len() == self.group.ranks as usize;
            if !complete || existing.contains(&commit_key(step, &run)) {
                continue;
            }
            let built = build_commit(root, step, &run, self.group.ranks)
                .and_then(|commit| shards_intact(root, &commit).map(|()| commit));
            match built {
                Ok(commit) => {
                    let key = commit_key(step, &run);
                    if root.put_if_absent(&key, &commit.encode()?)? {
                        created.push(key);
                    }
                }
                Err(e) if e.is_damage() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(created)
    }

    /// The newest global commit whose record verifies.
    pub(crate) fn newest(&self) -> Result<Option<GlobalCommitInfo>> {
        for name in list_commits(self.root.as_ref())?.iter().rev() {
            match read_commit(self.root.as_ref(), &name.key, self.group.ranks) {
                Ok(commit) => {
                    return Ok(Some(GlobalCommitInfo::of(name, &commit, self.group.rank)));
                }
                Err(e) if e.is_damage() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }
}
