//! The group's global commit records as the store holds them: listing
//! and reading them, and a rank's shard of one.

use crate::error::{Error, Result};
use crate::format::group::{COMMITS, GlobalCommit, Record, ShardRef, parse_commit_key};
use crate::storage::Storage;

/// A global commit's key, parsed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct CommitName {
    pub step: u64,
    pub run: String,
    pub key: String,
}

/// A retained commit.
pub(crate) type Kept = (CommitName, GlobalCommit);

pub(crate) fn shard_of(commit: &GlobalCommit, rank: u32) -> Option<&ShardRef> {
    commit.shards.get(usize::try_from(rank).ok()?)
}

/// Global commits in the store, oldest first.
pub(crate) fn list_commits(root: &dyn Storage) -> Result<Vec<CommitName>> {
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
pub(crate) fn read_commit(root: &dyn Storage, key: &str, ranks: u32) -> Result<GlobalCommit> {
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
