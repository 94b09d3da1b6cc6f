//! What a store holds: listing, loading and verifying checkpoints, and
//! retention with garbage collection of unreferenced packs.

use crate::error::{Error, Result};
use crate::format::layout::{MANIFESTS, ManifestName, PACKS, pack_key};
use crate::format::Manifest;
use crate::scheme::Scheme;
use crate::storage::Storage;
use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A checkpoint whose manifest reads and verifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// The manifest's key in the store.
    pub key: String,
    /// The application step it was taken at.
    pub step: u64,
    /// Commit order within the store: higher is newer.
    pub seq: u64,
    /// The scheme that wrote it, if this build knows it.
    pub scheme: Option<Scheme>,
    /// When it was committed.
    pub created: SystemTime,
    /// Size of the state it holds, decoded.
    pub logical_bytes: u64,
    /// Bytes its own packs occupy in the store.
    pub stored_bytes: u64,
    /// How many checkpoints a restore of it reads.
    pub chain_len: u32,
}

impl CheckpointInfo {
    pub(crate) fn of(manifest: &Manifest) -> Self {
        CheckpointInfo {
            key: manifest.name().key(),
            step: manifest.step,
            seq: manifest.seq,
            scheme: Scheme::from_code(manifest.scheme),
            created: UNIX_EPOCH + Duration::from_millis(manifest.created_unix_ms),
            logical_bytes: manifest.logical_bytes(),
            stored_bytes: manifest.stored_bytes,
            chain_len: manifest.chain_len,
        }
    }
}

/// A checkpoint that restore or listing passed over, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The manifest's key.
    pub key: String,
    /// Its step, when the key says so.
    pub step: Option<u64>,
    /// What failed (corruption, a missing pack, an unknown version...).
    pub reason: String,
}

/// Everything a store holds, as [`Checkpointer::list`](crate::Checkpointer::list)
/// reports it.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// Checkpoints whose manifests verify, oldest first.
    pub checkpoints: Vec<CheckpointInfo>,
    /// Manifests that do not verify (their packs are not read here).
    pub unreadable: Vec<Skipped>,
}

/// Manifest names in the store, oldest first; keys this layout did not
/// write are returned separately.
pub(crate) fn scan(storage: &dyn Storage) -> Result<(Vec<ManifestName>, Vec<Skipped>)> {
    let mut names = Vec::new();
    let mut strangers = Vec::new();
    for key in storage.list(MANIFESTS)? {
        match ManifestName::parse(&key) {
            Some(name) => names.push(name),
            None => strangers.push(Skipped {
                key,
                step: None,
                reason: "not a manifest name this version writes".to_owned(),
            }),
        }
    }
    names.sort();
    Ok((names, strangers))
}

/// Reads and verifies the manifest `name`.
pub(crate) fn load_manifest(storage: &dyn Storage, name: &ManifestName) -> Result<Manifest> {
    let key = name.key();
    Manifest::decode(&key, &storage.get(&key)?)
}

/// Lists the store: verified manifests and the ones that are not.
pub(crate) fn list(storage: &dyn Storage) -> Result<Listing> {
    let (names, strangers) = scan(storage)?;
    let mut listing = Listing {
        checkpoints: Vec::new(),
        unreadable: strangers,
    };
    for name in names {
        match load_manifest(storage, &name) {
            Ok(manifest) => listing.checkpoints.push(CheckpointInfo::of(&manifest)),
            Err(e) if e.is_damage() => listing.unreadable.push(skipped(&name, &e)),
            Err(e) => return Err(e),
        }
    }
    Ok(listing)
}

pub(crate) fn skipped(name: &ManifestName, error: &Error) -> Skipped {
    Skipped {
        key: name.key(),
        step: Some(name.step),
        reason: error.to_string(),
    }
}

/// What one retention pass removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Manifests deleted (older than the kept ones).
    pub manifests_deleted: usize,
    /// Packs deleted because no kept manifest references them.
    pub packs_deleted: usize,
}

/// What a writer does after each commit to keep the store tidy.
///
/// A lone checkpointer keeps its newest checkpoints ([`KeepLast`]); a rank
/// of a group keeps what the group's commits need
/// (`group::GroupRetention`).
pub(crate) trait Retention: Send + Sync + std::fmt::Debug {
    /// Runs one pass on `storage` right after `newest` was committed
    /// (nothing else writes the store meanwhile); `damaged` are manifests
    /// known not to verify.
    fn apply(
        &self,
        storage: &dyn Storage,
        newest: &Manifest,
        damaged: &BTreeSet<String>,
    ) -> Result<RetentionReport>;
}

/// Retention of a lone checkpointer: see [`apply_retention`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeepLast(pub usize);

impl Retention for KeepLast {
    fn apply(
        &self,
        storage: &dyn Storage,
        _newest: &Manifest,
        damaged: &BTreeSet<String>,
    ) -> Result<RetentionReport> {
        apply_retention(storage, self.0, damaged)
    }
}

/// Keeps the newest `keep_last` manifests that verify, deletes every older
/// manifest, then every pack no kept manifest references.
///
/// A manifest counts as verified when it decodes and is not in `damaged`
/// (checkpoints a restore found unusable, e.g. for a corrupt pack; reading
/// every pack on each pass would cost as much as a restore). Manifests
/// newer than the oldest kept one that fail to verify are left in place
/// (they may be evidence worth reading); once enough newer good
/// checkpoints exist they age out like any other. A storage error (as
/// opposed to damage) stops the pass before anything is deleted.
pub(crate) fn apply_retention(
    storage: &dyn Storage,
    keep_last: usize,
    damaged: &BTreeSet<String>,
) -> Result<RetentionReport> {
    let (names, _) = scan(storage)?;
    let mut kept: Vec<Manifest> = Vec::new();
    let mut expired = Vec::new();
    for name in names.iter().rev() {
        if kept.len() >= keep_last {
            expired.push(name.key());
            continue;
        }
        if damaged.contains(&name.key()) {
            continue;
        }
        match load_manifest(storage, name) {
            Ok(manifest) => kept.push(manifest),
            Err(e) if e.is_damage() => {}
            Err(e) => return Err(e),
        }
    }
    let live: BTreeSet<String> = kept
        .iter()
        .flat_map(Manifest::packs)
        .map(pack_key)
        .collect();
    remove_expired(storage, &expired, &live)
}

/// Deletes the `expired` manifests, then every pack not in `live` (the
/// packs of the manifests kept), and reports what went.
pub(crate) fn remove_expired(
    storage: &dyn Storage,
    expired: &[String],
    live: &BTreeSet<String>,
) -> Result<RetentionReport> {
    let dead_packs: Vec<String> = storage
        .list(PACKS)?
        .into_iter()
        .filter(|k| !live.contains(k))
        .collect();
    // Manifests go first and durably, so a crash never leaves a listed
    // checkpoint whose packs are gone.
    storage.delete_many(expired)?;
    storage.delete_many(&dead_packs)?;
    Ok(RetentionReport {
        manifests_deleted: expired.len(),
        packs_deleted: dead_packs.len(),
    })
}
