//! `ckpt ls`: one line per checkpoint, and a group's global commits.

use super::{print_json, scheme_label};
use crate::fail::Failure;
use crate::human::{self, Table};
use crate::store::{self, Location};
use ckpt::{CheckpointInfo, GroupCommit, Listing};
use serde::Serialize;
use std::time::{SystemTime, UNIX_EPOCH};

/// A checkpoint, as `--json` writes it.
#[derive(Serialize)]
struct Row {
    seq: u64,
    step: u64,
    scheme: Option<String>,
    chain_len: u32,
    logical_bytes: u64,
    stored_bytes: u64,
    compression_ratio: Option<f64>,
    created_unix_ms: u64,
    age_secs: u64,
    key: String,
}

/// A manifest `ls` could not read.
#[derive(Serialize)]
struct Bad {
    key: String,
    step: Option<u64>,
    reason: String,
}

/// One store's (or one rank's) listing.
#[derive(Serialize)]
struct Store {
    checkpoints: Vec<Row>,
    unreadable: Vec<Bad>,
    newer_format: Vec<Bad>,
}

/// A rank's listing in a group store.
#[derive(Serialize)]
struct Rank {
    rank: u32,
    #[serde(flatten)]
    store: Store,
}

/// A global commit, as `--json` writes it.
#[derive(Serialize)]
struct Commit {
    step: u64,
    run_id: String,
    ranks: usize,
    key: String,
    shards: Vec<String>,
}

/// The whole document.
#[derive(Serialize)]
struct Document {
    #[serde(flatten)]
    store: Store,
    group_commits: Vec<Commit>,
    ranks: Vec<Rank>,
}

/// Runs `ckpt ls`.
pub fn run(location: &Location, json: bool) -> Result<(), Failure> {
    let storage = location.read()?;
    let reader = store::reader(&storage, None)?;
    let listing = reader.list()?;
    let commits = reader.group_commits()?;
    let mut ranks = Vec::new();
    for rank in store::ranks(&storage)? {
        let listing = store::reader(&storage, Some(&format!("shards/{rank}/")))?.list()?;
        ranks.push((rank, listing));
    }
    let now = SystemTime::now();
    if json {
        return print_json(&Document {
            store: document(&listing, now),
            group_commits: commits.iter().map(commit).collect(),
            ranks: ranks
                .iter()
                .map(|(rank, l)| Rank {
                    rank: *rank,
                    store: document(l, now),
                })
                .collect(),
        });
    }
    let grouped = !commits.is_empty() || !ranks.is_empty();
    if !grouped || !listing.checkpoints.is_empty() {
        print!("{}", table(&listing, now));
    }
    if grouped {
        print!("{}", commit_table(&commits));
        for (rank, listing) in &ranks {
            println!("\nrank {rank} (shards/{rank}/):");
            print!("{}", table(listing, now));
        }
    }
    Ok(())
}

fn row(info: &CheckpointInfo, now: SystemTime) -> Row {
    let created = info.created.duration_since(UNIX_EPOCH).unwrap_or_default();
    Row {
        seq: info.seq,
        step: info.step,
        scheme: info.scheme.map(|s| s.to_string()),
        chain_len: info.chain_len,
        logical_bytes: info.logical_bytes,
        stored_bytes: info.stored_bytes,
        compression_ratio: human::compression(info.logical_bytes, info.stored_bytes),
        created_unix_ms: u64::try_from(created.as_millis()).unwrap_or(u64::MAX),
        age_secs: now
            .duration_since(info.created)
            .unwrap_or_default()
            .as_secs(),
        key: info.key.clone(),
    }
}

fn document(listing: &Listing, now: SystemTime) -> Store {
    let bad = |s: &ckpt::Skipped| Bad {
        key: s.key.clone(),
        step: s.step,
        reason: s.reason.clone(),
    };
    Store {
        checkpoints: listing.checkpoints.iter().map(|c| row(c, now)).collect(),
        unreadable: listing.unreadable.iter().map(bad).collect(),
        newer_format: listing.newer_format.iter().map(bad).collect(),
    }
}

fn commit(c: &GroupCommit) -> Commit {
    Commit {
        step: c.step,
        run_id: c.run_id.clone(),
        ranks: c.shards.len(),
        key: c.key.clone(),
        shards: c.shards.clone(),
    }
}

fn table(listing: &Listing, now: SystemTime) -> String {
    let mut t = Table::new(&["seq", "step", "scheme", "logical", "stored", "ratio", "age"]);
    for c in &listing.checkpoints {
        t.row(vec![
            c.seq.to_string(),
            c.step.to_string(),
            scheme_label(c),
            human::bytes(c.logical_bytes),
            human::bytes(c.stored_bytes),
            human::ratio(c.logical_bytes, c.stored_bytes),
            human::age(c.created, now),
        ]);
    }
    let mut text = if listing.checkpoints.is_empty() {
        "no checkpoints\n".to_owned()
    } else {
        t.render()
    };
    for s in &listing.unreadable {
        text.push_str(&format!("unreadable: {} ({})\n", s.key, s.reason));
    }
    for s in &listing.newer_format {
        text.push_str(&format!(
            "newer format: {} (upgrade ckpt to read it)\n",
            s.key
        ));
    }
    text
}

fn commit_table(commits: &[GroupCommit]) -> String {
    if commits.is_empty() {
        return "group: no global commits\n".to_owned();
    }
    let mut t = Table::new(&["step", "run", "ranks", "commit"]);
    for c in commits {
        t.row(vec![
            c.step.to_string(),
            c.run_id.clone(),
            c.shards.len().to_string(),
            c.key.clone(),
        ]);
    }
    format!("group commits:\n{}", t.render())
}
