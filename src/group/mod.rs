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
//!
//! This file holds the public types ([`Group`], [`GroupStatus`],
//! [`GlobalCommitInfo`]) and what a restore hands the checkpointer;
//! `coordinator` one rank's side of the protocol, `records` the group's
//! objects on the store, `retention` what a rank keeps and collects.

mod coordinator;
mod records;

pub(crate) use coordinator::Coordinator;

#[cfg(doc)]
use crate::catalog::RetentionReport;
use crate::catalog::{CommitName, shard_of};
use crate::error::Skipped;
use crate::error::{Error, Result};
use crate::format::Manifest;
use crate::format::group::{GlobalCommit, MAX_RUN_LEN, valid_run};
#[cfg(doc)]
use crate::storage::Storage;

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
            e if e.is_damage() => e.report().to_string(),
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
