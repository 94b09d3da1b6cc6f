//! What [`Reader::details`](super::Reader::details) and
//! [`Reader::group_commits`](super::Reader::group_commits) report: a
//! checkpoint's segments and the packs they need, and a group's commits.

use crate::catalog::CheckpointInfo;
use crate::format::layout::pack_key;
use crate::format::{Manifest, SegmentEntry};
use std::collections::BTreeMap;

/// One checkpoint taken apart: its segments, and every pack a restore of
/// it reads. Read from its manifest alone (packs are not read; use
/// [`Reader::verify`](super::Reader::verify) for that).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckpointDetails {
    /// What [`Reader::list`](super::Reader::list) says of it.
    pub info: CheckpointInfo,
    /// The state's segments, in the order they were captured.
    pub segments: Vec<SegmentDetails>,
    /// Every pack a restore reads, by key (a checkpoint of an incremental
    /// chain also needs packs its ancestors wrote).
    pub packs: Vec<PackUse>,
}

/// One named segment of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentDetails {
    /// The name the state gave it.
    pub name: String,
    /// How its bytes are laid out.
    pub layout: SegmentLayout,
    /// The type it was written as (the element type of a paged one), when
    /// its format recorded it.
    pub type_name: Option<String>,
    /// Its size decoded.
    pub logical_bytes: u64,
    /// The bytes its chunks occupy in their packs (framing included),
    /// whichever checkpoint wrote them.
    pub stored_bytes: u64,
    /// How many chunks hold it (one per page for a paged segment).
    pub chunks: usize,
    /// The packs its chunks are in, by key.
    pub packs: Vec<String>,
}

/// How a segment's bytes are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SegmentLayout {
    /// A serde value, cut into content-defined chunks.
    Serde,
    /// A [`PagedVec`](crate::PagedVec): fixed-size pages, one chunk each.
    Paged {
        /// Bytes per element.
        elem_size: u32,
        /// Elements per page (the last may hold fewer).
        page_len: u64,
        /// Number of elements.
        len: u64,
    },
}

/// A pack a checkpoint needs, and how much of it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PackUse {
    /// The pack's key in the store.
    pub key: String,
    /// Chunks of the checkpoint stored in it.
    pub chunks: usize,
    /// Bytes of those chunks (framing included).
    pub bytes: u64,
}

/// A group's global commit: a step every rank's shard of which is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupCommit {
    /// The commit record's key in the store.
    pub key: String,
    /// The step it commits.
    pub step: u64,
    /// The launch that computed it.
    pub run_id: String,
    /// Each rank's shard (a manifest key inside `shards/<rank>/`), by rank.
    pub shards: Vec<String>,
}

impl CheckpointDetails {
    pub(super) fn of(manifest: &Manifest) -> Self {
        let mut packs: BTreeMap<u128, PackUse> = BTreeMap::new();
        for chunk in manifest.segments.iter().flat_map(|s| &s.chunks) {
            let pack = packs.entry(chunk.pack).or_insert_with(|| PackUse {
                key: pack_key(chunk.pack),
                chunks: 0,
                bytes: 0,
            });
            pack.chunks += 1;
            pack.bytes += u64::from(chunk.len);
        }
        CheckpointDetails {
            info: CheckpointInfo::of(manifest),
            segments: manifest.segments.iter().map(SegmentDetails::of).collect(),
            packs: packs.into_values().collect(),
        }
    }
}

impl SegmentDetails {
    fn of(segment: &SegmentEntry) -> Self {
        let layout = match segment.kind.page_layout() {
            Some(p) => SegmentLayout::Paged {
                elem_size: p.elem_size,
                page_len: p.page_len,
                len: p.len,
            },
            None => SegmentLayout::Serde,
        };
        let mut packs: Vec<u128> = segment.chunks.iter().map(|c| c.pack).collect();
        packs.sort_unstable();
        packs.dedup();
        SegmentDetails {
            name: segment.name.clone(),
            layout,
            type_name: segment.kind.type_name().map(str::to_owned),
            logical_bytes: segment.logical_len,
            stored_bytes: segment.chunks.iter().map(|c| u64::from(c.len)).sum(),
            chunks: segment.chunks.len(),
            packs: packs.into_iter().map(pack_key).collect(),
        }
    }
}
