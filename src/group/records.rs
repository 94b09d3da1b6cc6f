//! The group's records on the store: listing, reading and building global
//! commits, checking that a commit's shards are all there, and the group's
//! size and run registrations.

use super::Group;
use crate::catalog::CommitName;
use crate::error::Skipped;
use crate::error::{Error, Result};
use crate::format::group::{
    CONFIG_KEY, GlobalCommit, GroupConfig, Record, RunRecord, Vote, run_key, shard_prefix, vote_key,
};
use crate::storage::Storage;
use std::collections::BTreeSet;
use std::sync::Mutex;

pub(super) fn skipped_commit(name: &CommitName, e: &Error) -> Skipped {
    Skipped {
        key: name.key.clone(),
        step: Some(name.step),
        reason: e.report().to_string(),
    }
}

/// The identity of a manifest's bytes, as votes and commits record it.
pub(super) fn manifest_hash(bytes: &[u8]) -> u128 {
    xxhash_rust::xxh3::xxh3_128(bytes)
}

/// Builds the commit of `(step, run)` from its `ranks` votes.
pub(super) fn build_commit(
    root: &dyn Storage,
    step: u64,
    run: &str,
    ranks: u32,
) -> Result<GlobalCommit> {
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
pub(super) fn shards_intact(root: &dyn Storage, commit: &GlobalCommit) -> Result<()> {
    for (rank, shard) in (0u32..).zip(&commit.shards) {
        let key = format!("{}/{}", shard_prefix(rank), shard.manifest);
        if manifest_hash(&root.get(&key)?) != shard.hash {
            return Err(Error::corrupt(&key, "not the manifest its vote names"));
        }
    }
    Ok(())
}

/// Records the group's size on first use, or checks it.
pub(super) fn check_config(root: &dyn Storage, ranks: u32) -> Result<()> {
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
pub(super) fn register_run(root: &dyn Storage, group: &Group) -> Result<()> {
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

pub(super) fn uncertain_registrations()
-> std::sync::MutexGuard<'static, BTreeSet<(String, u32, u128)>> {
    UNCERTAIN_REGISTRATIONS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
