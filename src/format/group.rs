//! Objects of a checkpoint group: the group's configuration, launch
//! registrations, votes and global commits, and their keys.
//!
//! ```text
//! group/config                                the group's size
//! group/runs/<run>-<rank>                     rank `rank` started in launch `run`
//! group/votes/<step:020>-<run>-<rank>         rank's shard of `step` is durable
//! group/commits/<step:020>-<run>              `step` is globally committed
//! group/restores/<run>                        the commit launch `run` restores
//! record := magic:[u8; 8] version:u16 reserved:u16 payload_len:u32
//!           payload:[u8; payload_len] crc32(everything before):u32
//! ```
//!
//! Payloads are bincode ([`super::MANIFEST_CODEC`]). A commit's bytes are a
//! pure function of the votes it is made from, so every rank that builds
//! it builds the same object.

use super::record::{decode_record, encode_record};
use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The group's configuration object.
pub(crate) const CONFIG_KEY: &str = "group/config";
/// Prefix of launch registrations.
pub(crate) const RUNS: &str = "group/runs/";
/// Prefix of votes.
pub(crate) const VOTES: &str = "group/votes/";
/// Prefix of global commits.
pub(crate) const COMMITS: &str = "group/commits/";
/// Prefix of launches' restore choices.
pub(crate) const RESTORES: &str = "group/restores/";
/// Longest run id accepted.
pub(crate) const MAX_RUN_LEN: usize = 128;

const CONFIG_MAGIC: &[u8; 8] = b"CKPTGCFG";
const RUN_MAGIC: &[u8; 8] = b"CKPTGRUN";
const VOTE_MAGIC: &[u8; 8] = b"CKPTVOTE";
const COMMIT_MAGIC: &[u8; 8] = b"CKPTGCOM";
const RESTORE_MAGIC: &[u8; 8] = b"CKPTGRST";
/// Group records are small; a length field claiming more is corruption.
const MAX_RECORD_BYTES: usize = 64 << 20;

/// The key under which rank `rank`'s own checkpoints live.
pub(crate) fn shard_prefix(rank: u32) -> String {
    format!("shards/{rank}")
}

/// The key registering rank `rank` in launch `run`.
pub(crate) fn run_key(run: &str, rank: u32) -> String {
    format!("{RUNS}{run}-{rank}")
}

/// Prefix of the votes of one step in one launch.
pub(crate) fn votes_prefix(step: u64, run: &str) -> String {
    format!("{VOTES}{step:020}-{run}-")
}

/// The key of one vote.
pub(crate) fn vote_key(step: u64, run: &str, rank: u32) -> String {
    format!("{}{rank}", votes_prefix(step, run))
}

/// The key of a global commit.
pub(crate) fn commit_key(step: u64, run: &str) -> String {
    format!("{COMMITS}{step:020}-{run}")
}

/// The key of launch `run`'s restore choice.
pub(crate) fn restore_key(run: &str) -> String {
    format!("{RESTORES}{run}")
}

/// What a restore choice's key says: the run.
pub(crate) fn parse_restore_key(key: &str) -> Option<&str> {
    key.strip_prefix(RESTORES).filter(|run| valid_run(run))
}

/// What a vote's key says: step, run, rank.
pub(crate) fn parse_vote_key(key: &str) -> Option<(u64, String, u32)> {
    let rest = key.strip_prefix(VOTES)?;
    let (step, rest) = split_step(rest)?;
    let (run, rank) = rest.rsplit_once('-')?;
    let rank = rank.parse().ok().filter(|_| is_decimal(rank))?;
    valid_run(run).then(|| (step, run.to_owned(), rank))
}

/// What a commit's key says: step and run.
pub(crate) fn parse_commit_key(key: &str) -> Option<(u64, String)> {
    let rest = key.strip_prefix(COMMITS)?;
    let (step, run) = split_step(rest)?;
    valid_run(run).then(|| (step, run.to_owned()))
}

fn split_step(rest: &str) -> Option<(u64, &str)> {
    let (step, rest) = rest.split_once('-')?;
    if step.len() != 20 || !is_decimal(step) {
        return None;
    }
    Some((step.parse().ok()?, rest))
}

fn is_decimal(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// True for a run id that is safe as a key component on every backend:
/// 1 to [`MAX_RUN_LEN`] bytes of `[A-Za-z0-9._-]`, not starting with `.`.
pub(crate) fn valid_run(run: &str) -> bool {
    !run.is_empty()
        && run.len() <= MAX_RUN_LEN
        && !run.starts_with('.')
        && run
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A rank's own checkpoint that a vote or a commit names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ShardRef {
    /// The manifest's key inside the rank's namespace.
    pub manifest: String,
    /// xxh3-128 of the manifest's bytes.
    pub hash: u128,
}

/// The group's shape, fixed when the first rank opens the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct GroupConfig {
    /// Number of ranks.
    pub ranks: u32,
}

/// One rank's start in one launch; its bytes tell a retried registration
/// of this process from another process that reused the run id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RunRecord {
    /// Random, per process.
    pub nonce: u128,
}

/// "My shard of `step` is durable."
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Vote {
    pub step: u64,
    pub run: String,
    pub rank: u32,
    pub ranks: u32,
    pub shard: ShardRef,
}

/// "Every shard of `step` is durable": the global manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct GlobalCommit {
    pub step: u64,
    pub run: String,
    /// One shard per rank, in rank order.
    pub shards: Vec<ShardRef>,
}

impl GlobalCommit {
    /// The number of ranks it covers.
    pub(crate) fn ranks(&self) -> u32 {
        u32::try_from(self.shards.len()).unwrap_or(u32::MAX)
    }
}

/// The commit every rank of one launch restores, recorded by the first
/// rank to restore (with a conditional create) and adopted by the others,
/// so that a commit appearing later (a late vote of a crashed launch)
/// cannot split the group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RestoreChoice {
    /// The launch that restores.
    pub run: String,
    /// The chosen commit; `None`: the group starts fresh.
    pub commit: Option<ChosenCommit>,
}

/// A commit a [`RestoreChoice`] names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ChosenCommit {
    pub step: u64,
    /// The commit's key (`group/commits/...`).
    pub key: String,
}

/// A framed, checksummed record of one kind.
pub(crate) trait Record: Serialize + DeserializeOwned {
    const MAGIC: &'static [u8; 8];

    /// The record's bytes; refuses one that a reader would refuse for its
    /// size (a commit of millions of ranks).
    fn encode(&self) -> Result<Vec<u8>> {
        encode_record(Self::MAGIC, self, MAX_RECORD_BYTES).map_err(|too_large| {
            Error::InvalidConfig {
                option: "group",
                reason: format!(
                    "a group record would be {} bytes, more than a reader accepts ({} bytes); use fewer ranks per group",
                    too_large.payload_len, too_large.max_payload
                ),
            }
        })
    }

    fn decode(key: &str, bytes: &[u8]) -> Result<Self> {
        decode(Self::MAGIC, key, bytes)
    }
}

impl Record for GroupConfig {
    const MAGIC: &'static [u8; 8] = CONFIG_MAGIC;
}
impl Record for RunRecord {
    const MAGIC: &'static [u8; 8] = RUN_MAGIC;
}
impl Record for Vote {
    const MAGIC: &'static [u8; 8] = VOTE_MAGIC;
}
impl Record for GlobalCommit {
    const MAGIC: &'static [u8; 8] = COMMIT_MAGIC;
}
impl Record for RestoreChoice {
    const MAGIC: &'static [u8; 8] = RESTORE_MAGIC;
}

fn decode<T: DeserializeOwned>(magic: &[u8; 8], key: &str, bytes: &[u8]) -> Result<T> {
    decode_record(
        magic,
        "group record of this kind",
        key,
        bytes,
        MAX_RECORD_BYTES,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit() -> GlobalCommit {
        GlobalCommit {
            step: 12,
            run: "job-7.r1".into(),
            shards: (0u32..3)
                .map(|r| ShardRef {
                    manifest: format!("manifests/{r}"),
                    hash: u128::from(r) * 77,
                })
                .collect(),
        }
    }

    #[test]
    fn records_round_trip_and_every_damage_is_detected() {
        let c = commit();
        let key = commit_key(c.step, &c.run);
        let bytes = c.encode().unwrap();
        assert_eq!(GlobalCommit::decode(&key, &bytes).unwrap(), c);
        for bit in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(GlobalCommit::decode(&key, &bad).is_err(), "bit {bit}");
        }
        for len in 0..bytes.len() {
            assert!(GlobalCommit::decode(&key, &bytes[..len]).is_err());
        }
        // A vote is not a commit, even with a valid checksum.
        let vote = Vote {
            step: 1,
            run: "r".into(),
            rank: 0,
            ranks: 1,
            shard: c.shards[0].clone(),
        };
        assert!(GlobalCommit::decode(&key, &vote.encode().unwrap()).is_err());
        for commit in [
            None,
            Some(ChosenCommit {
                step: c.step,
                key: key.clone(),
            }),
        ] {
            let choice = RestoreChoice {
                run: "r2".into(),
                commit,
            };
            let bytes = choice.encode().unwrap();
            assert_eq!(RestoreChoice::decode("k", &bytes).unwrap(), choice);
            assert!(GlobalCommit::decode("k", &bytes).is_err());
        }
    }

    #[test]
    fn keys_round_trip_and_order_by_step() {
        let key = vote_key(42, "a-b", 3);
        assert_eq!(parse_vote_key(&key), Some((42, "a-b".into(), 3)));
        assert!(key.starts_with(&votes_prefix(42, "a-b")));
        let commit = commit_key(7, "slurm-99.0");
        assert_eq!(parse_commit_key(&commit), Some((7, "slurm-99.0".into())));
        assert!(commit_key(9, "z") < commit_key(10, "a"));
        assert_eq!(
            parse_restore_key(&restore_key("slurm-9.1")),
            Some("slurm-9.1")
        );
        assert_eq!(parse_restore_key("group/restores/.x"), None);
        for bad in [
            "group/votes/12-r-1",
            "group/votes/00000000000000000012-r-",
            "group/votes/00000000000000000012-r-+1",
            "group/commits/00000000000000000012-",
            "group/commits/0000000000000000001x-r",
        ] {
            assert_eq!(parse_vote_key(bad), None, "{bad}");
            assert_eq!(parse_commit_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn run_ids_are_checked() {
        for good in ["1", "slurm-4242.3", "A_b-c.d"] {
            assert!(valid_run(good), "{good}");
        }
        let long = "x".repeat(MAX_RUN_LEN + 1);
        for bad in ["", ".x", "a/b", "a b", "ü", long.as_str()] {
            assert!(!valid_run(bad), "{bad:?}");
        }
    }
}
