//! `ckpt gc`: retention by hand, under the store's writer lock.

use super::print_json;
use crate::fail::Failure;
use crate::store::{self, Location};
use serde::Serialize;

/// What `--json` writes.
#[derive(Serialize)]
struct Document {
    dry_run: bool,
    keep: usize,
    manifests_deleted: usize,
    packs_deleted: usize,
    kept_newer_format: usize,
    packs_spared: usize,
    deleted: Vec<String>,
}

/// Runs `ckpt gc`.
pub fn run(location: &Location, keep: usize, dry_run: bool, json: bool) -> Result<(), Failure> {
    if keep == 0 {
        return Err(Failure::usage(
            "--keep must be at least 1 (gc never deletes every checkpoint)".to_owned(),
        ));
    }
    let storage = location.read()?;
    if !store::ranks(&storage)?.is_empty() {
        return Err(Failure::usage(format!(
            "{location} is a group store (shards/<rank>/): each rank's checkpointer keeps it, with the group's commits in mind; set keep_last on the ranks instead"
        )));
    }
    let collected = if dry_run {
        store::reader(&storage, None)?.preview_retention(keep)?
    } else {
        drop(storage);
        location.write(false)?.keep_last(keep)?
    };
    let r = &collected.report;
    if json {
        return print_json(&Document {
            dry_run,
            keep,
            manifests_deleted: r.manifests_deleted,
            packs_deleted: r.packs_deleted,
            kept_newer_format: r.kept_newer_format,
            packs_spared: r.packs_spared,
            deleted: collected.deleted.clone(),
        });
    }
    let verb = if dry_run { "would delete" } else { "deleted" };
    for key in &collected.deleted {
        println!("{verb} {key}");
    }
    println!(
        "{verb} {} checkpoint(s) and {} pack(s), keeping the newest {keep}",
        r.manifests_deleted, r.packs_deleted
    );
    if r.kept_newer_format + r.packs_spared > 0 {
        println!(
            "left {} object(s) of a newer format and {} pack(s) a newer-format checkpoint may need; a newer ckpt collects them",
            r.kept_newer_format, r.packs_spared
        );
    }
    Ok(())
}
