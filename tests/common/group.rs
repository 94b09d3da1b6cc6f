//! What the group tests check out per rank.

use ckpt::Scheme;
use serde::{Deserialize, Serialize};

/// One rank's shard: a pure function of (rank, step, launch), so a restore
/// can be checked byte for byte, and shards of different launches differ
/// (a recomputation need not be deterministic). Each test makes its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shard {
    pub rank: u32,
    pub step: u64,
    pub launch: u32,
    pub values: Vec<u64>,
}

/// Ranks use different schemes: a group need not agree on one.
pub fn scheme_of(rank: u32) -> Scheme {
    [
        Scheme::Full,
        Scheme::Incremental,
        Scheme::CopyOnWrite,
        Scheme::Incremental,
    ][rank as usize % 4]
}
