//! Coordinated checkpoints across processes: N ranks each checkpoint their
//! own shard, and a step counts only once every shard of it is durable.
//!
//! # Protocol
//!
//! Every rank keeps ordinary checkpoints in its own namespace
//! `shards/<rank>/` of one shared store. After rank `r`'s checkpoint of
//! step `s` is durable (its manifest written), `r` puts a **vote**
//! `group/votes/<s>-<run>-<r>` naming that manifest (key and xxh3-128 of
//! its bytes), then lists the votes of `(s, run)`. If all N ranks voted, it
//! creates the **global commit** `group/commits/<s>-<run>` with
//! [`Storage::put_if_absent`]. The commit's bytes are a pure function of
//! the N votes, so whichever rank wins the create, the object is the same;
//! a create that answers "exists" is harmless.
//!
//! Why this is correct, in short:
//!
//! * *Only complete steps commit.* A vote is written after its shard is
//!   durable, and a commit is built only from N votes of one step and one
//!   run, so a commit names N durable shards of the same step computed in
//!   the same launch. The store's conditional create makes the commit
//!   atomic: it exists whole or not at all, and no two versions of it can
//!   exist.
//! * *Every rank restores the same step.* The first rank of a launch to
//!   restore picks the newest commit whose record verifies and records
//!   the choice, `group/restores/<run>`, with [`Storage::put_if_absent`]
//!   (a "nothing committed" choice too); every other rank of the launch
//!   (and a loser of the create) reads that record and restores exactly
//!   the commit it names. Listings alone would not do: a vote of the
//!   crashed launch that lands late can complete a vote set between two
//!   ranks' restores, and the later rank would roll it forward and resume
//!   one step ahead. A rank that finds the choice made does not roll
//!   forward; a rank that lost the create deletes any commit it created
//!   meanwhile (it came after the choice). A rank whose own shard of the
//!   chosen commit does not verify fails with [`Error::ShardDamaged`]
//!   instead of quietly falling back alone, which would split the group.
//! * *A commit lost to a crash is recovered.* If the rank that completed
//!   the votes died before creating the commit, every shard is still
//!   durable: restore first creates the commit of every complete vote set
//!   (the same bytes any rank would have written), then chooses. It
//!   checks first that every shard the votes name is still there: a set
//!   completed by a late vote may name a shard its rank already collected.
//! * *Launches never mix.* After a crash the group recomputes from an
//!   older step, and a computation need not be deterministic; votes carry
//!   the launch's run id, so a vote set can only complete with votes of one
//!   launch. A run id is registered per rank with a conditional create, so
//!   a reused id is refused ([`Error::RunReused`]).
//! * *Garbage collection never removes what a retained commit needs.* Each
//!   rank deletes only objects in its own namespace, and keeps the shards
//!   named by the newest `keep_last` commits it can see (a newer commit
//!   appearing later only makes older ones expendable) plus the shards this
//!   launch wrote above the newest commit. Within a launch commits appear
//!   in step order (a rank votes for `s + 1` only after its vote for `s`,
//!   and the rank that completes a vote set creates the commit before
//!   voting again), so an older shard of this launch below the newest
//!   commit can never be committed later. Shards of older launches that no
//!   retained commit names never will be either: restore created the
//!   commits of every complete vote set before this rank collects. Nothing
//!   of a format version this build cannot read is deleted (commit
//!   records, shards, packs), nor any pack of a rank while a shard of a
//!   newer format is in its namespace: a rolled-back binary leaves what a
//!   newer ckpt wrote alone (see [`RetentionReport`]).
//!
//! Design notes (what changed from the first sketch, and why):
//!
//! * The commit key carries the run id (`<step>-<run>`), not the step
//!   alone: a commit of a crashed launch that is damaged (so skipped) would
//!   otherwise occupy the key the relaunch needs for the same step. Steps
//!   order commits across launches, because each launch resumes from the
//!   newest commit and checkpoints only later steps.
//! * A rank whose shard of the chosen commit is damaged errors instead of
//!   trying an older commit: falling back alone would split the group.
//!   Deleting the commit and its votes (what the error says) moves every
//!   rank back together.
//! * "Usable" means "the commit record verifies", for restore and
//!   retention alike, so both agree on every rank without reading the
//!   other ranks' shards (a restore costs O(1) reads of group objects per
//!   rank, not O(N)).
//! * Only rank 0 deletes group objects (old commits and votes); each rank
//!   deletes only its own shards, so the only rank that can remove a shard
//!   is the one that knows whether it still needs it.
//! * Retention also runs right after a restore, so what crashed launches
//!   left behind is collected even before the first new checkpoint.
//!   Rank 0 keeps the commit its launch restores until the launch commits
//!   a step of its own (by then every rank has restored), even when a late
//!   commit would otherwise retire it, and deletes other launches' restore
//!   choices (one small record per launch; only the current one is read).
//! * A run registration carries a random nonce. A `build()` whose
//!   registration create failed (a timeout, say) remembers its nonce in
//!   the process, so a retry that finds that record is this process's own
//!   registration, not a reused run id.
//!
//! Assumptions, as MPI and torchrun jobs behave: the whole group starts and
//! restarts together (no rank of an old launch still runs when a new launch
//! restores), every rank calls [`restore_latest`](crate::Checkpointer::restore_latest)
//! before checkpointing, and all ranks checkpoint the same steps, in
//! increasing order.

use crate::catalog::{self, CheckpointInfo, ManifestRead, Retention, RetentionReport, Skipped};
use crate::error::{Error, Result};
use crate::format::Manifest;
use crate::format::group::{
    COMMITS, CONFIG_KEY, ChosenCommit, GlobalCommit, GroupConfig, MAX_RUN_LEN, RESTORES, Record,
    RestoreChoice, RunRecord, ShardRef, VOTES, Vote, commit_key, parse_commit_key,
    parse_restore_key, parse_vote_key, restore_key, run_key, shard_prefix, valid_run, vote_key,
    votes_prefix,
};
use crate::format::layout::ManifestName;
use crate::storage::Storage;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// This process's place in a checkpoint group: how many ranks, which one
/// this is, and which launch. Pass it to
/// [`CheckpointerBuilder::group`](crate::CheckpointerBuilder::group).
///
/// Each rank checkpoints its own shard (any scheme) under `shards/<rank>/`
/// of the shared store. Once its checkpoint of a step is durable, the rank
/// writes a vote naming it; the rank that sees all the votes of the step
/// creates the step's global commit with [`Storage::put_if_absent`], the
/// store's atomic create — so a step is committed exactly when every shard
/// of it is durable, and never half. [`Checkpointer::restore_latest`](crate::Checkpointer::restore_latest)
/// gives every rank its shard of the newest global commit that verifies
/// (first committing a step whose votes are complete but whose commit a
/// crash prevented); shards no commit names are never restored and are
/// garbage-collected. The first rank to restore records the launch's
/// choice and the others adopt it, so every rank restores the same step
/// even if a late vote of the crashed launch completes a newer one
/// meanwhile. It assumes what MPI and torchrun jobs do: the whole
/// group starts and restarts together, every rank restores before its
/// first checkpoint, and all ranks checkpoint the same steps.
///
/// The run id names one launch of the whole group: the same on every rank
/// of a launch, different on every launch (including restarts after a
/// crash). Scheduler variables make good ones: `$SLURM_JOB_ID` joined with
/// `$SLURM_RESTART_COUNT`, torchrun's `$TORCHELASTIC_RUN_ID` joined with
/// `$TORCHELASTIC_RESTART_COUNT`, or an id the launcher generates. It must
/// be 1 to 128 characters of `[A-Za-z0-9._-]`, not starting with `.`.
///
/// ```
/// use ckpt::{Checkpointer, Group, MemStorage};
///
/// let store = MemStorage::new(); // shared by every rank
/// let ranks = 2;
/// let handles: Vec<_> = (0..ranks)
///     .map(|rank| {
///         let store = store.clone();
///         std::thread::spawn(move || -> ckpt::Result<u64> {
///             let mut ck = Checkpointer::builder()
///                 .storage(store)
///                 .group(Group::new(ranks, rank, "launch-1"))
///                 .build()?;
///             // Every rank gets its shard of the newest globally committed step.
///             let (mut shard, first) = match ck.restore_latest::<Vec<u64>>()? {
///                 Some(r) => (r.state, r.step + 1),
///                 None => (vec![u64::from(rank); 4], 0),
///             };
///             for step in first..10 {
///                 shard.iter_mut().for_each(|x| *x += step);
///                 ck.checkpoint(step, &mut shard)?;
///             }
///             ck.finish()?;
///             Ok(first)
///         })
///     })
///     .collect();
/// for handle in handles {
///     handle.join().expect("rank thread")?;
/// }
///
/// // The next launch (a new run id) resumes every rank from step 9.
/// let mut ck = Checkpointer::builder()
///     .storage(store)
///     .group(Group::new(ranks, 1, "launch-2"))
///     .build()?;
/// let restored = ck.restore_latest::<Vec<u64>>()?.expect("step 9 committed");
/// assert_eq!(restored.step, 9);
/// assert_eq!(restored.state, vec![1 + (0..10).sum::<u64>(); 4]);
/// # Ok::<(), ckpt::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    ranks: u32,
    rank: u32,
    run_id: String,
}

impl Group {
    /// Rank `rank` of a group of `ranks` processes, in launch `run_id`.
    /// Checked by [`CheckpointerBuilder::build`](crate::CheckpointerBuilder::build).
    pub fn new(ranks: u32, rank: u32, run_id: impl Into<String>) -> Self {
        Group {
            ranks,
            rank,
            run_id: run_id.into(),
        }
    }

    /// Number of ranks in the group.
    pub fn ranks(&self) -> u32 {
        self.ranks
    }

    /// This process's rank, from 0.
    pub fn rank(&self) -> u32 {
        self.rank
    }

    /// The launch this process belongs to.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let invalid = |reason: String| {
            Err(Error::InvalidConfig {
                option: "group",
                reason,
            })
        };
        if self.ranks == 0 {
            return invalid("a group needs at least 1 rank".to_owned());
        }
        if self.rank >= self.ranks {
            return invalid(format!(
                "rank {} is out of range for {} ranks (ranks count from 0)",
                self.rank, self.ranks
            ));
        }
        if !valid_run(&self.run_id) {
            return invalid(format!(
                "run id {:?} must be 1 to {MAX_RUN_LEN} characters of [A-Za-z0-9._-], not starting with '.'",
                self.run_id
            ));
        }
        Ok(())
    }
}

/// What a rank's vote achieved, reported in
/// [`Committed::group`](crate::Committed::group).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupStatus {
    /// The step voted for.
    pub step: u64,
    /// Ranks in the group.
    pub ranks: u32,
    /// Votes for this step (in this launch) seen after this rank voted.
    pub votes: u32,
    /// True when this rank saw the step globally committed: it created
    /// the global commit, or found it created by another rank. False means
    /// "not yet as far as this rank saw": the last rank to vote commits it.
    pub globally_committed: bool,
    /// True when this call created the global commit.
    pub created: bool,
}

/// A global commit: a step every rank's shard of which is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GlobalCommitInfo {
    /// The commit's key in the shared store.
    pub key: String,
    /// The step it commits.
    pub step: u64,
    /// The launch that computed it.
    pub run_id: String,
    /// This rank's shard: the manifest key inside `shards/<rank>/`.
    pub shard: String,
}

impl GlobalCommitInfo {
    fn of(name: &CommitName, commit: &GlobalCommit, rank: u32) -> Self {
        GlobalCommitInfo {
            key: name.key.clone(),
            step: commit.step,
            run_id: commit.run.clone(),
            shard: shard_of(commit, rank).map_or_else(String::new, |s| s.manifest.clone()),
        }
    }
}

/// A global commit's key, parsed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct CommitName {
    step: u64,
    run: String,
    key: String,
}

/// A retained commit.
type Kept = (CommitName, GlobalCommit);

/// What a group restore found.
#[derive(Debug)]
pub(crate) struct GroupRestore {
    pub commit: GlobalCommitInfo,
    pub manifest: Manifest,
    pub skipped: Vec<Skipped>,
    /// [`Error::ShardDamaged`] as it will read if the shard's packs turn
    /// out damaged while the state is read; its reason is filled in then.
    pub damaged: ShardDamage,
}

/// What [`Error::ShardDamaged`] says of a shard, less the reason.
#[derive(Debug)]
pub(crate) struct ShardDamage {
    rank: u32,
    step: u64,
    commit: String,
    votes: String,
}

impl ShardDamage {
    /// The error for `cause`, a damage error met reading the shard; other
    /// errors pass through.
    pub(crate) fn error(&self, cause: Error) -> Error {
        let reason = match cause {
            Error::Corrupt { key, reason } => format!("{key:?}: {reason}"),
            e if e.is_damage() => e.to_string(),
            e => return e,
        };
        Error::ShardDamaged {
            rank: self.rank,
            step: self.step,
            commit: self.commit.clone(),
            votes: self.votes.clone(),
            reason,
        }
    }
}

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
        let retention = Arc::new(GroupRetention {
            root: self.root.clone(),
            group: self.group.clone(),
            keep_last,
            first_seq,
            cache: Mutex::default(),
            restoring: Mutex::default(),
        });
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
                    "the commit of step {} that launch {:?} restores (recorded in {}) no longer verifies ({e}); restart the group with a new run id",
                    chosen.step,
                    self.group.run_id,
                    restore_key(&self.group.run_id)
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
            *retention
                .restoring
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = commit.map(|c| c.key.clone());
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

/// Group retention for one rank: see the module docs.
#[derive(Debug)]
pub(crate) struct GroupRetention {
    root: Arc<dyn Storage>,
    group: Group,
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
                let commit = match read_commit(self.root.as_ref(), &name.key, self.group.ranks) {
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
            .filter(|_| !names.iter().any(|n| n.run == self.group.run_id));
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
            if newest_step.is_some_and(|newest| step <= newest) || run != self.group.run_id {
                root.delete(&key)?;
            }
        }
        for key in root.list(RESTORES)? {
            if parse_restore_key(&key).is_some_and(|run| run != self.group.run_id) {
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
        match read_commit(self.root.as_ref(), key, self.group.ranks) {
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
            .filter_map(|(_, commit)| shard_of(commit, self.group.rank))
            .map(|s| s.manifest.clone())
            .collect();
        keep.extend(protect);
        let (locals, _) = catalog::scan(shard)?;
        let pending = |name: &ManifestName| {
            name.seq >= self.first_seq && newest_committed.is_none_or(|step| name.step > step)
        };
        let mut sweep = catalog::Sweep::default();
        for name in &locals {
            let key = name.key();
            let retained = keep.contains(&key) || pending(name);
            match catalog::read_manifest(shard, name)? {
                ManifestRead::NewerFormat(_) => sweep.newer_format.push(key),
                _ if !retained => sweep.expired.push(key),
                ManifestRead::Verified(manifest) => sweep.keep_packs_of(&manifest),
                ManifestRead::Damaged(_) => {}
            }
        }
        let report = catalog::remove_expired(shard, &sweep)?;
        if self.group.rank == 0 {
            self.collect_group_objects(&kept, &names)?;
        }
        Ok(report)
    }
}

fn skipped_commit(name: &CommitName, e: &Error) -> Skipped {
    Skipped {
        key: name.key.clone(),
        step: Some(name.step),
        reason: e.to_string(),
    }
}

/// The identity of a manifest's bytes, as votes and commits record it.
fn manifest_hash(bytes: &[u8]) -> u128 {
    xxhash_rust::xxh3::xxh3_128(bytes)
}

fn shard_of(commit: &GlobalCommit, rank: u32) -> Option<&ShardRef> {
    commit.shards.get(usize::try_from(rank).ok()?)
}

/// Global commits in the store, oldest first.
fn list_commits(root: &dyn Storage) -> Result<Vec<CommitName>> {
    let mut names: Vec<CommitName> = root
        .list(COMMITS)?
        .into_iter()
        .filter_map(|key| {
            let (step, run) = parse_commit_key(&key)?;
            Some(CommitName { step, run, key })
        })
        .collect();
    names.sort();
    Ok(names)
}

/// Reads and verifies a commit record, including that it agrees with its
/// key and covers `ranks` ranks.
fn read_commit(root: &dyn Storage, key: &str, ranks: u32) -> Result<GlobalCommit> {
    let commit = GlobalCommit::decode(key, &root.get(key)?)?;
    if parse_commit_key(key) != Some((commit.step, commit.run.clone())) {
        return Err(Error::corrupt(
            key,
            "the commit is stored under another name",
        ));
    }
    if commit.ranks() != ranks {
        return Err(Error::corrupt(
            key,
            format!(
                "the commit covers {} ranks, the group has {ranks}",
                commit.ranks()
            ),
        ));
    }
    Ok(commit)
}

/// Builds the commit of `(step, run)` from its `ranks` votes.
fn build_commit(root: &dyn Storage, step: u64, run: &str, ranks: u32) -> Result<GlobalCommit> {
    let mut shards = Vec::with_capacity(ranks as usize);
    for rank in 0..ranks {
        let key = vote_key(step, run, rank);
        let vote = Vote::decode(&key, &root.get(&key)?)?;
        if vote.step != step || vote.run != run || vote.rank != rank || vote.ranks != ranks {
            return Err(Error::corrupt(&key, "the vote disagrees with its key"));
        }
        shards.push(vote.shard);
    }
    Ok(GlobalCommit {
        step,
        run: run.to_owned(),
        shards,
    })
}

/// Checks that every shard `commit` names is still there, unchanged.
fn shards_intact(root: &dyn Storage, commit: &GlobalCommit) -> Result<()> {
    for (rank, shard) in (0u32..).zip(&commit.shards) {
        let key = format!("{}/{}", shard_prefix(rank), shard.manifest);
        if manifest_hash(&root.get(&key)?) != shard.hash {
            return Err(Error::corrupt(&key, "not the manifest its vote names"));
        }
    }
    Ok(())
}

/// Records the group's size on first use, or checks it.
fn check_config(root: &dyn Storage, ranks: u32) -> Result<()> {
    let config = GroupConfig { ranks };
    if root.put_if_absent(CONFIG_KEY, &config.encode()?)? {
        return Ok(());
    }
    let found = GroupConfig::decode(CONFIG_KEY, &root.get(CONFIG_KEY)?)?;
    if found.ranks != ranks {
        return Err(Error::GroupSizeMismatch {
            expected: ranks,
            found: found.ranks,
        });
    }
    Ok(())
}

/// Registrations this process attempted whose create failed with an
/// error (a timeout, say): the create may have happened anyway. Finding
/// one of these nonces in the record is this process's own earlier
/// attempt, not a reused run id.
static UNCERTAIN_REGISTRATIONS: Mutex<BTreeSet<(String, u32, u128)>> = Mutex::new(BTreeSet::new());

/// Registers `group.rank` in launch `group.run_id`. A registration that
/// is already there with another nonce is another checkpointer's (nonces
/// are random per call), so the run id was reused; with ours, a retried
/// create found its own earlier attempt, and with the nonce of an earlier
/// call of this process that failed at the create, `build()` was retried.
fn register_run(root: &dyn Storage, group: &Group) -> Result<()> {
    let key = run_key(&group.run_id, group.rank);
    let nonce: u128 = rand::random();
    let record = RunRecord { nonce }.encode()?;
    let created = root.put_if_absent(&key, &record).inspect_err(|_| {
        uncertain_registrations().insert((group.run_id.clone(), group.rank, nonce));
    })?;
    if created {
        return Ok(());
    }
    let found = root.get(&key)?;
    if found == record {
        return Ok(());
    }
    let found = RunRecord::decode(&key, &found)?;
    if uncertain_registrations().remove(&(group.run_id.clone(), group.rank, found.nonce)) {
        return Ok(());
    }
    Err(Error::RunReused {
        run: group.run_id.clone(),
        rank: group.rank,
    })
}

fn uncertain_registrations() -> std::sync::MutexGuard<'static, BTreeSet<(String, u32, u128)>> {
    UNCERTAIN_REGISTRATIONS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
