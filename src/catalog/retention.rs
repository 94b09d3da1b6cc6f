//! Retention of a lone checkpointer: keep the newest verified manifests,
//! delete older ones and every pack no kept manifest references, never
//! what a newer format may need; and the [`Retention`] seam a group rank's
//! retention plugs into.

use super::read::{ManifestRead, read_manifest, scan};
use crate::error::{Error, Result};
use crate::format::Manifest;
use crate::format::layout::{PACKS, pack_key};
use crate::format::pack::{PACK_HEADER_LEN, verify_pack_header};
use crate::storage::Storage;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

/// What one retention pass removed, and what it left because this build
/// cannot read its format.
///
/// # What retention never deletes
///
/// A store may hold objects written by a newer ckpt (a binary was rolled
/// back, or two versions share a store). This build cannot tell what they
/// are for, so retention:
///
/// * never deletes a manifest of a format version it cannot read, however
///   old ([`Listing::newer_format`](super::Listing::newer_format) lists them);
/// * never deletes a pack whose header has such a version;
/// * deletes no pack at all while a manifest of a newer format is in the
///   store: it cannot read which packs that manifest references, and a
///   newer checkpoint may reference packs this build wrote.
///
/// Collection resumes on its own once those manifests are gone (deleted
/// by hand, or by a retention pass of a build that reads them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetentionReport {
    /// Manifests deleted (older than the kept ones).
    pub manifests_deleted: usize,
    /// Packs deleted because no kept manifest references them.
    pub packs_deleted: usize,
    /// Manifests and packs left in place because their format version is
    /// newer than this build reads.
    pub kept_newer_format: usize,
    /// Packs no kept manifest references, left in place because a manifest
    /// of a newer format is in the store and may reference them.
    pub packs_spared: usize,
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

/// Retention of a lone checkpointer: see [`apply_retention`]. Manifests
/// in `pins` (those a drain to a lower tier still copies) are kept with
/// their packs whatever their age.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeepLast {
    pub keep_last: usize,
    pub pins: Pins,
}

impl Retention for KeepLast {
    fn apply(
        &self,
        storage: &dyn Storage,
        _newest: &Manifest,
        damaged: &BTreeSet<String>,
    ) -> Result<RetentionReport> {
        apply_retention(storage, self.keep_last, damaged, &self.pins.keys())
    }
}

/// Manifest keys that retention must keep (with their packs) while some
/// reader outside the writer still needs them, counted so that several
/// readers may pin one key. Clones share the set.
#[derive(Debug, Clone, Default)]
pub(crate) struct Pins(Arc<Mutex<BTreeMap<String, usize>>>);

impl Pins {
    /// Keeps `key` until as many [`unpin`](Self::unpin)s.
    pub(crate) fn pin(&self, key: &str) {
        *self.lock().entry(key.to_owned()).or_default() += 1;
    }

    /// Releases one [`pin`](Self::pin) of `key`.
    pub(crate) fn unpin(&self, key: &str) {
        let mut pins = self.lock();
        if let Some(count) = pins.get_mut(key) {
            *count -= 1;
            if *count == 0 {
                pins.remove(key);
            }
        }
    }

    /// The keys pinned now.
    pub(crate) fn keys(&self) -> BTreeSet<String> {
        self.lock().keys().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, usize>> {
        // The map stays consistent whatever panicked while holding it.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Keeps the newest `keep_last` manifests that verify, deletes every older
/// manifest, then every pack no kept manifest references, except what a
/// newer format may need (see [`RetentionReport`]).
///
/// A manifest counts as verified when it decodes and is not in `damaged`
/// (checkpoints a restore found unusable, e.g. for a corrupt pack; reading
/// every pack on each pass would cost as much as a restore). Manifests
/// newer than the oldest kept one that fail to verify are left in place as
/// evidence worth reading, and so are the packs of those that still decode
/// (the damaged pack among them is the evidence). Once enough newer good
/// checkpoints exist they age out like any other, with their packs: a
/// damaged checkpoint older than the kept ones will never be restored, and
/// keeping it would hold its space forever. A storage error (as opposed to
/// damage) stops the pass before anything is deleted.
///
/// Every manifest this pass does not keep is read once before it goes (to
/// find those of a newer format), and every pack it would delete has its
/// 16-byte header read; both are small reads of objects about to go.
///
/// Manifests in `pinned` that verify are kept with their packs whatever
/// their age; one older than the kept ones does not count towards
/// `keep_last`.
pub(crate) fn apply_retention(
    storage: &dyn Storage,
    keep_last: usize,
    damaged: &BTreeSet<String>,
    pinned: &BTreeSet<String>,
) -> Result<RetentionReport> {
    let (names, _) = scan(storage)?;
    let mut sweep = Sweep::default();
    let mut kept = 0;
    for name in names.iter().rev() {
        let key = name.key();
        let expired = kept >= keep_last;
        match read_manifest(storage, name)? {
            ManifestRead::NewerFormat(_) => sweep.newer_format.push(key),
            ManifestRead::Verified(manifest) if expired && pinned.contains(&key) => {
                sweep.keep_packs_of(&manifest);
            }
            _ if expired => sweep.expired.push(key),
            ManifestRead::Verified(manifest) => {
                if !damaged.contains(&key) {
                    kept += 1;
                }
                sweep.keep_packs_of(&manifest);
            }
            ManifestRead::Damaged(_) => {}
        }
    }
    remove_expired(storage, &sweep)
}

/// What a retention pass decided: the manifests to delete, the packs to
/// keep, and the manifests it found of a newer format (kept, with every
/// pack).
#[derive(Debug, Default)]
pub(crate) struct Sweep {
    /// Manifests to delete (none of a newer format).
    pub expired: Vec<String>,
    /// Packs the kept manifests reference.
    pub live: BTreeSet<String>,
    /// Manifests of a format this build cannot read.
    pub newer_format: Vec<String>,
}

impl Sweep {
    /// Keeps the packs `manifest` references.
    pub(crate) fn keep_packs_of(&mut self, manifest: &Manifest) {
        self.live.extend(manifest.packs().map(pack_key));
    }
}

/// Deletes the expired manifests, then every pack not live, except packs of
/// a newer format, and no pack at all if a manifest of a newer format is
/// in the store; reports what went and what stayed.
pub(crate) fn remove_expired(storage: &dyn Storage, sweep: &Sweep) -> Result<RetentionReport> {
    let unreferenced: Vec<String> = storage
        .list(PACKS)?
        .into_iter()
        .filter(|k| !sweep.live.contains(k))
        .collect();
    let mut report = RetentionReport {
        manifests_deleted: sweep.expired.len(),
        kept_newer_format: sweep.newer_format.len(),
        ..RetentionReport::default()
    };
    let mut dead_packs = Vec::new();
    if sweep.newer_format.is_empty() {
        for key in unreferenced {
            if pack_is_newer_format(storage, &key)? {
                report.kept_newer_format += 1;
            } else {
                dead_packs.push(key);
            }
        }
    } else {
        report.packs_spared = unreferenced.len();
    }
    report.packs_deleted = dead_packs.len();
    // Manifests go first and durably, so a crash never leaves a listed
    // checkpoint whose packs are gone.
    storage.delete_many(&sweep.expired)?;
    storage.delete_many(&dead_packs)?;
    Ok(report)
}

/// Whether the pack `key` has a format version this build cannot read.
/// Damage (a torn or foreign object) is not: such a pack is collected.
fn pack_is_newer_format(storage: &dyn Storage, key: &str) -> Result<bool> {
    let header = storage.get_range(key, 0..PACK_HEADER_LEN as u64);
    match header.and_then(|header| verify_pack_header(key, &header)) {
        Ok(()) => Ok(false),
        Err(Error::UnsupportedVersion { .. }) => Ok(true),
        Err(e) if e.is_damage() => Ok(false),
        Err(e) => Err(e),
    }
}
