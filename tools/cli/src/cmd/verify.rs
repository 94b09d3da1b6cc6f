//! `ckpt verify`: read and check every byte a checkpoint needs.

use super::{choose, print_json};
use crate::fail::Failure;
use crate::store::{self, Location};
use serde::Serialize;
use std::io::Write;

/// What `--json` writes on success.
#[derive(Serialize)]
struct Verified {
    verified: bool,
    key: String,
    seq: u64,
    step: u64,
    chain_len: u32,
    logical_bytes: u64,
}

/// Runs `ckpt verify`: exit 0 only if the chosen checkpoint verifies.
pub fn run(location: &Location, step: Option<u64>, json: bool) -> Result<(), Failure> {
    let storage = location.read()?;
    let chosen = choose(&store::reader(&storage, None)?.list()?, step)?;
    let reader = store::reader(&storage, None)?.on_progress(|p| {
        let percent = (p.bytes_done * 100)
            .checked_div(p.bytes_total)
            .unwrap_or(100);
        let mut err = std::io::stderr();
        let _ = write!(err, "\rverifying step {}: {percent:3}%", p.step);
        if p.bytes_done >= p.bytes_total {
            let _ = writeln!(err);
        }
    });
    let info = reader.verify(&chosen.key).map_err(|e| {
        let mut failure = Failure::from(e);
        failure.message = format!(
            "the checkpoint of step {} ({}) does not verify: {}",
            chosen.step, chosen.key, failure.message
        );
        failure
    })?;
    if json {
        return print_json(&Verified {
            verified: true,
            key: info.key,
            seq: info.seq,
            step: info.step,
            chain_len: info.chain_len,
            logical_bytes: info.logical_bytes,
        });
    }
    println!(
        "ok: the checkpoint of step {} (seq {}, {} checkpoint(s) read) verifies: {}",
        info.step,
        info.seq,
        info.chain_len,
        crate::human::bytes(info.logical_bytes)
    );
    Ok(())
}
