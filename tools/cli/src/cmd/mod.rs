//! One module per command; helpers they share.

pub mod cp;
pub mod gc;
pub mod ls;
pub mod model;
pub mod report;
pub mod show;
pub mod verify;

use crate::fail::Failure;
use ckpt::{CheckpointInfo, Listing};
use serde::Serialize;

/// Prints `value` as pretty JSON on stdout.
pub fn print_json(value: &impl Serialize) -> Result<(), Failure> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// The scheme as `ls` shows it: `full`, `incremental (chain 3)`,
/// `copy-on-write (chain 2)`; `unknown` for a scheme newer than this build.
pub fn scheme_label(info: &CheckpointInfo) -> String {
    match info.scheme {
        Some(ckpt::Scheme::Full) | None if info.chain_len <= 1 => info
            .scheme
            .map_or_else(|| "unknown".to_owned(), |s| s.to_string()),
        Some(scheme) => format!("{scheme} (chain {})", info.chain_len),
        None => format!("unknown (chain {})", info.chain_len),
    }
}

/// The checkpoint a command acts on: the newest taken at `step`, or the
/// newest of all. Fails (exit 1) when there is none, or when the chosen
/// one's manifest is damaged.
pub fn choose(listing: &Listing, step: Option<u64>) -> Result<CheckpointInfo, Failure> {
    let good = listing
        .checkpoints
        .iter()
        .filter(|c| step.is_none_or(|s| c.step == s))
        .max_by_key(|c| c.seq);
    let bad = listing
        .unreadable
        .iter()
        .filter(|s| s.key.starts_with("manifests/") && step.is_none_or(|n| s.step == Some(n)))
        .max_by(|a, b| a.key.cmp(&b.key));
    match (good, bad) {
        (Some(good), Some(bad)) if bad.key < good.key => Ok(good.clone()),
        (Some(good), None) => Ok(good.clone()),
        (_, Some(bad)) => Err(Failure::damaged(format!(
            "the checkpoint {} does not verify: {}; `ckpt ls` lists the ones that do",
            bad.key, bad.reason
        ))),
        (None, None) => Err(Failure::damaged(match step {
            Some(step) => format!(
                "no checkpoint of step {step} in this store; `ckpt ls` lists the steps it holds"
            ),
            None => "the store holds no checkpoint (a group store keeps its ranks' checkpoints under shards/: `ckpt ls` shows them)".to_owned(),
        })),
    }
}
