//! Reading what a store holds: manifest names, manifests sorted into
//! verified, damaged and newer-format, and the listing built from them.

use super::{CheckpointInfo, Listing};
use crate::error::{Error, Result, Skipped};
use crate::format::Manifest;
use crate::format::layout::{MANIFESTS, ManifestName};
use crate::storage::Storage;

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

/// A manifest as retention and listing see it.
pub(crate) enum ManifestRead {
    /// It decodes and verifies.
    Verified(Manifest),
    /// Its format version is one this build cannot read: written by a newer
    /// ckpt, so it must be left alone, and so may every pack.
    NewerFormat(Error),
    /// It is damaged: corrupt, truncated or gone.
    Damaged(Error),
}

/// Reads the manifest `name` and sorts it into [`ManifestRead`]; only a
/// storage error (not damage) is an error.
///
/// A format version this build does not know is recognised only in a
/// record whose framing (magic, checksum) verifies: the framing is the
/// part of the format that every version keeps.
pub(crate) fn read_manifest(storage: &dyn Storage, name: &ManifestName) -> Result<ManifestRead> {
    match load_manifest(storage, name) {
        Ok(manifest) => Ok(ManifestRead::Verified(manifest)),
        Err(e @ Error::UnsupportedVersion { .. }) => Ok(ManifestRead::NewerFormat(e)),
        Err(e) if e.is_damage() => Ok(ManifestRead::Damaged(e)),
        Err(e) => Err(e),
    }
}

/// Lists the store: verified manifests, damaged ones and those of a newer
/// format.
pub(crate) fn list(storage: &dyn Storage) -> Result<Listing> {
    let (names, strangers) = scan(storage)?;
    let mut listing = Listing {
        unreadable: strangers,
        ..Listing::default()
    };
    for name in names {
        match read_manifest(storage, &name)? {
            ManifestRead::Verified(manifest) => {
                listing.checkpoints.push(CheckpointInfo::of(&manifest));
            }
            ManifestRead::NewerFormat(e) => listing.newer_format.push(skipped(&name, &e)),
            ManifestRead::Damaged(e) => listing.unreadable.push(skipped(&name, &e)),
        }
    }
    Ok(listing)
}

pub(crate) fn skipped(name: &ManifestName, error: &Error) -> Skipped {
    Skipped {
        key: name.key(),
        step: Some(name.step),
        reason: error.report().to_string(),
    }
}
