//! Copying one checkpoint from one tier to another: every pack its
//! manifest references that the target lacks, each durable, then the
//! manifest last, so that a manifest appears on the target only once
//! everything it needs is durable there.

use crate::catalog;
use crate::error::{Error, Result};
use crate::format::Manifest;
use crate::format::layout::{ManifestName, PACKS, pack_key};
use crate::storage::Storage;
use std::collections::BTreeSet;

/// What one copy did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Copied {
    /// Packs copied (those the target lacked).
    pub packs: usize,
    /// Bytes copied: packs plus manifest.
    pub bytes: u64,
}

/// Why a copy did not happen.
#[derive(Debug)]
pub(crate) enum CopyError {
    /// The source no longer holds the checkpoint whole (retention removed
    /// it, or it is damaged there): there is nothing to copy, now or
    /// later.
    SourceGone(Error),
    /// Anything else (the target failed, the source's storage failed):
    /// worth retrying.
    Failed(Error),
}

impl CopyError {
    fn from_source(error: Error) -> Self {
        if error.is_damage() {
            CopyError::SourceGone(error)
        } else {
            CopyError::Failed(error)
        }
    }
}

/// Copies the checkpoint `name` from `source` to `target` (see the module
/// doc). Unless `every_pack`, packs the target already lists are not
/// copied again: a pack's key names its content, and a store's put is
/// atomic, so a listed pack is whole (though it may have rotted since: a
/// restore that found the target's copy damaged copies every pack).
/// Returns the manifest with what was copied.
pub(crate) fn copy_checkpoint(
    source: &dyn Storage,
    target: &dyn Storage,
    name: &ManifestName,
    every_pack: bool,
) -> std::result::Result<(Manifest, Copied), CopyError> {
    let key = name.key();
    let bytes = source.get(&key).map_err(CopyError::from_source)?;
    let manifest = Manifest::decode(&key, &bytes).map_err(CopyError::SourceGone)?;
    let present: BTreeSet<String> = if every_pack {
        BTreeSet::new()
    } else {
        target
            .list(PACKS)
            .map_err(CopyError::Failed)?
            .into_iter()
            .collect()
    };
    let needed: BTreeSet<String> = manifest.packs().map(pack_key).collect();
    let mut copied = Copied::default();
    for pack in needed.difference(&present) {
        let data = source.get(pack).map_err(CopyError::from_source)?;
        target.put(pack, &data).map_err(CopyError::Failed)?;
        copied.packs += 1;
        copied.bytes += data.len() as u64;
    }
    target.put(&key, &bytes).map_err(CopyError::Failed)?;
    copied.bytes += bytes.len() as u64;
    Ok((manifest, copied))
}

/// The manifest names `storage` holds, oldest first (foreign keys left
/// out).
pub(crate) fn names(storage: &dyn Storage) -> Result<Vec<ManifestName>> {
    catalog::scan(storage).map(|(names, _)| names)
}
