//! `ckpt cp`: copy a checkpoint and the packs it needs to another store.

use super::{choose, print_json};
use crate::fail::Failure;
use crate::human;
use crate::store::{self, Location};
use serde::Serialize;

/// What `--json` writes.
#[derive(Serialize)]
struct Document {
    source_key: String,
    key: String,
    step: u64,
    seq: u64,
    logical_bytes: u64,
    verified: bool,
}

/// Runs `ckpt cp`: packs first, the manifest last, then verifies the copy.
pub fn run(src: &Location, dst: &Location, step: Option<u64>, json: bool) -> Result<(), Failure> {
    let storage = src.read()?;
    let reader = store::reader(&storage, None)?;
    let chosen = choose(&reader.list()?, step)?;
    // Check the source first: a damaged checkpoint is not worth copying.
    reader.verify(&chosen.key).map_err(|e| {
        let mut failure = Failure::from(e);
        failure.message = format!(
            "not copied: the checkpoint of step {} in {src} does not verify: {}",
            chosen.step, failure.message
        );
        failure
    })?;
    let copied = dst.write(true)?.copy_from(&reader, &chosen.key)?;
    if json {
        return print_json(&Document {
            source_key: chosen.key,
            key: copied.key,
            step: copied.step,
            seq: copied.seq,
            logical_bytes: copied.logical_bytes,
            verified: true,
        });
    }
    println!(
        "copied step {} ({}) from {src} to {dst} as seq {}; the copy verifies",
        copied.step,
        human::bytes(copied.logical_bytes),
        copied.seq
    );
    Ok(())
}
