//! Restore across tiers: the newest checkpoint that verifies on any tier,
//! the fastest tier first on a tie, falling back across tiers on damage;
//! and whether the first tier was lost.

use super::copy::{CopyError, copy_checkpoint, names};
use crate::catalog;
use crate::error::{Error, Result};
use crate::format::layout::ManifestName;
use crate::recover::{self, ProgressSink, Recovered, RestoredTier};
use crate::state::State;
use crate::storage::Storage;
use crate::trace;
use std::cmp::Reverse;
use std::collections::BTreeSet;

/// A state restored from some tier.
pub(crate) struct TierRecovered<S> {
    pub recovered: Recovered<S>,
    pub tier: RestoredTier,
    /// Manifests of the first tier that failed verification (for its
    /// retention, which must not count them as kept).
    pub damaged_first: BTreeSet<String>,
}

/// Restores the newest checkpoint that verifies on any of `tiers` (the
/// first is the one the checkpointer writes). A checkpoint found on a
/// lower tier is copied into the first tier before it is returned, so
/// that the next increment has its base there. `None` when no tier holds
/// a checkpoint; [`Error::NoUsableCheckpoint`] when some do and none
/// verifies.
///
/// The first tier failing to list is an error; a lower tier failing to
/// list is reported in [`RestoredTier::unreachable`] and passed over,
/// unless no tier holds a checkpoint: then its error is returned rather
/// than `None`, so that an unreachable remote is never mistaken for a
/// fresh start.
pub(crate) fn restore_across<S: State>(
    tiers: &[(String, &dyn Storage)],
    progress: ProgressSink<'_>,
) -> Result<Option<TierRecovered<S>>> {
    let Some(&(_, first)) = tiers.first() else {
        return Ok(None);
    };
    let mut candidates: Vec<(ManifestName, usize)> = Vec::new();
    let mut unreachable = Vec::new();
    let mut first_unreachable: Option<Error> = None;
    let mut first_empty = true;
    let mut lower_hold = false;
    for (index, (name, storage)) in tiers.iter().enumerate() {
        let found = match names(*storage) {
            Ok(found) => found,
            Err(e) if index > 0 => {
                trace::warn!(tier = %name, error = %e.report(), "a lower tier could not be listed");
                unreachable.push((name.clone(), e.report().to_string()));
                first_unreachable.get_or_insert(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        if index == 0 {
            first_empty = found.is_empty();
        } else {
            lower_hold |= !found.is_empty();
        }
        candidates.extend(found.into_iter().map(|n| (n, index)));
    }
    // Newest first; on a tie (one checkpoint on several tiers) the
    // fastest tier first, the others next as its fallback.
    candidates.sort_by_key(|&(name, index)| (Reverse(name), index));
    let mut skipped = Vec::new();
    let mut damaged_first = BTreeSet::new();
    for (name, index) in candidates {
        let Some((tier_name, storage)) = tiers.get(index) else {
            continue;
        };
        match recover::restore_named::<S>(*storage, &name, &mut *progress) {
            Ok(mut recovered) => {
                let promoted = index > 0;
                if promoted {
                    promote(*storage, first, &name)?;
                }
                recovered.skipped = skipped;
                trace::info!(tier = %tier_name, index, step = name.step, promoted, "restored from tier");
                let tier = RestoredTier {
                    name: tier_name.clone(),
                    index,
                    first_tier_lost: first_empty && lower_hold,
                    promoted,
                    unreachable,
                };
                return Ok(Some(TierRecovered {
                    recovered,
                    tier,
                    damaged_first,
                }));
            }
            // A lower tier that fails mid-read is passed over like damage:
            // another tier may hold the same or an older checkpoint.
            Err(e) if e.is_damage() || index > 0 => {
                if index == 0 {
                    damaged_first.insert(name.key());
                }
                trace::warn!(tier = %tier_name, step = name.step, seq = name.seq, error = %e.report(), "skipped a damaged checkpoint");
                let mut entry = catalog::skipped(&name, &e);
                entry.reason = format!("on tier {tier_name:?}: {}", entry.reason);
                skipped.push(entry);
            }
            Err(e) => return Err(e),
        }
    }
    match first_unreachable {
        // Nothing anywhere we can see, but a tier we cannot: a fresh start
        // would be a guess (and its numbering would restart below the
        // checkpoints that tier holds).
        Some(e) if skipped.is_empty() => Err(e),
        _ if skipped.is_empty() => Ok(None),
        _ => Err(Error::NoUsableCheckpoint { skipped }),
    }
}

/// The newest checkpoint taken at `step` on any of `tiers` (the fastest
/// tier on a tie), with the tier's index. Lower tiers that fail to list
/// are passed over.
pub(crate) fn find_step_across(
    tiers: &[(String, &dyn Storage)],
    step: u64,
) -> Result<Option<(ManifestName, usize)>> {
    let mut best: Option<(ManifestName, usize)> = None;
    for (index, (_, storage)) in tiers.iter().enumerate() {
        let found = match recover::find_step(*storage, step) {
            Ok(found) => found,
            Err(_) if index > 0 => continue,
            Err(e) => return Err(e),
        };
        if let Some(name) = found
            && best.is_none_or(|(b, _)| name > b)
        {
            best = Some((name, index));
        }
    }
    Ok(best)
}

/// Copies the checkpoint `name` from a lower tier into the first, every
/// pack of it (the first tier's copy of a pack may be the damaged one a
/// restore passed over).
pub(crate) fn promote(from: &dyn Storage, first: &dyn Storage, name: &ManifestName) -> Result<()> {
    copy_checkpoint(from, first, name, true)
        .map(|_| ())
        .map_err(|e| match e {
            CopyError::SourceGone(e) | CopyError::Failed(e) => e,
        })
}
