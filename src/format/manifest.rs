//! Manifests: the record that makes a checkpoint exist.
//!
//! ```text
//! manifest := "CKPTMANI" version:u16 reserved:u16 payload_len:u32
//!             payload:[u8; payload_len] crc32(everything before):u32
//! ```
//!
//! The payload is a bincode-encoded [`Manifest`] ([`super::MANIFEST_CODEC`]).

use super::layout::ManifestName;
use super::pack::{FRAME_HEADER_LEN, PACK_HEADER_LEN};
use super::record::{decode_record, encode_record};
use super::{MAX_CHUNK_BYTES, MAX_MANIFEST_BYTES};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

const MANIFEST_MAGIC: &[u8; 8] = b"CKPTMANI";

/// Where one chunk of a segment lives and what it must hash to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ChunkRef {
    /// The pack holding the chunk.
    pub pack: u128,
    /// Offset of the chunk's frame in the pack.
    pub offset: u64,
    /// Length of the frame (header + stored bytes).
    pub len: u32,
    /// Length of the chunk once decoded.
    pub raw_len: u32,
    /// xxh3-128 of the decoded bytes.
    pub hash: u128,
}

/// How a segment's bytes are to be interpreted.
///
/// Format 1 wrote `Serde` and `Pages`; format 2 writes the variants that
/// also record the type the segment was written as. New variants go at
/// the end: bincode stores the variant's index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum SegmentKind {
    /// A serde value encoded with [`super::STATE_CODEC`], cut into chunks.
    Serde,
    /// A paged vector: one chunk per page, in order.
    Pages {
        /// Bytes per element.
        elem_size: u32,
        /// Elements per page (the last page may hold fewer).
        page_len: u64,
        /// Number of elements.
        len: u64,
    },
    /// A serde value, and the name of the type it was written as.
    SerdeOf {
        /// `std::any::type_name` of the captured value.
        type_name: String,
    },
    /// A paged vector, and the name of its element type.
    PagesOf {
        /// Bytes per element.
        elem_size: u32,
        /// `std::any::type_name` of the element type.
        elem_type: String,
        /// Elements per page (the last page may hold fewer).
        page_len: u64,
        /// Number of elements.
        len: u64,
    },
}

/// The layout of a paged segment, whichever format wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PageLayout {
    /// Bytes per element.
    pub elem_size: u32,
    /// Elements per page.
    pub page_len: u64,
    /// Number of elements.
    pub len: u64,
}

impl SegmentKind {
    /// The page layout, for a paged segment.
    pub(crate) fn page_layout(&self) -> Option<PageLayout> {
        match *self {
            SegmentKind::Pages {
                elem_size,
                page_len,
                len,
            }
            | SegmentKind::PagesOf {
                elem_size,
                page_len,
                len,
                ..
            } => Some(PageLayout {
                elem_size,
                page_len,
                len,
            }),
            SegmentKind::Serde | SegmentKind::SerdeOf { .. } => None,
        }
    }

    /// Whether the segment holds a serde value.
    pub(crate) fn is_serde(&self) -> bool {
        matches!(self, SegmentKind::Serde | SegmentKind::SerdeOf { .. })
    }

    /// The type the segment was written as (the element type for a paged
    /// one), when its format recorded it.
    pub(crate) fn type_name(&self) -> Option<&str> {
        match self {
            SegmentKind::SerdeOf { type_name } => Some(type_name),
            SegmentKind::PagesOf { elem_type, .. } => Some(elem_type),
            SegmentKind::Serde | SegmentKind::Pages { .. } => None,
        }
    }
}

/// One named part of the checkpointed state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SegmentEntry {
    /// The name the state gave it when capturing.
    pub name: String,
    /// How to read it back.
    pub kind: SegmentKind,
    /// Total decoded length; equals the sum of the chunks' `raw_len`.
    pub logical_len: u64,
    /// The chunks, in order.
    pub chunks: Vec<ChunkRef>,
}

/// A checkpoint: its identity, how it was taken, and its segments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    /// Commit order within the store.
    pub seq: u64,
    /// The application's step.
    pub step: u64,
    /// Random id, unique per checkpoint.
    pub id: u128,
    /// Scheme code (see `scheme::Scheme::code`).
    pub scheme: u8,
    /// Wall-clock time of the commit, milliseconds since the Unix epoch.
    pub created_unix_ms: u64,
    /// How many checkpoints must be read to restore this one (1 for full).
    pub chain_len: u32,
    /// Bytes of the packs this checkpoint wrote (the manifest not counted).
    pub stored_bytes: u64,
    /// The state's segments.
    pub segments: Vec<SegmentEntry>,
}

impl Manifest {
    /// The key this manifest is stored under.
    pub(crate) fn name(&self) -> ManifestName {
        ManifestName {
            seq: self.seq,
            step: self.step,
            id: self.id,
        }
    }

    /// Every pack this manifest references.
    pub(crate) fn packs(&self) -> impl Iterator<Item = u128> + '_ {
        self.segments
            .iter()
            .flat_map(|s| s.chunks.iter().map(|c| c.pack))
    }

    /// Sum of the segments' decoded lengths.
    pub(crate) fn logical_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.logical_len).sum()
    }

    /// Encodes the manifest with its header and checksum; refuses one
    /// whose payload is longer than `max_payload` ([`MAX_MANIFEST_BYTES`]
    /// outside tests) or that a reader would refuse for its size.
    pub(crate) fn encode(&self, max_payload: usize) -> Result<Vec<u8>> {
        encode_record(MANIFEST_MAGIC, self, max_payload).map_err(|too_large| {
            let chunks: usize = self.segments.iter().map(|s| s.chunks.len()).sum();
            Error::InvalidConfig {
                option: "chunk_size",
                reason: format!(
                    "the checkpoint at step {} lists {chunks} chunks and its manifest would be {} bytes, more than a reader accepts ({} bytes); nothing was committed: store the state in fewer, larger chunks (a larger chunk_size, larger PagedVec pages with PagedVec::with_page_len)",
                    self.step, too_large.payload_len, too_large.max_payload
                ),
            }
        })
    }

    /// Decodes and verifies the manifest stored under `key`.
    pub(crate) fn decode(key: &str, bytes: &[u8]) -> Result<Self> {
        let manifest: Manifest =
            decode_record(MANIFEST_MAGIC, "manifest", key, bytes, MAX_MANIFEST_BYTES)?;
        manifest.check_consistency(key)?;
        Ok(manifest)
    }

    /// Checks what the checksum cannot: that the manifest agrees with its
    /// own key and that its lengths add up.
    fn check_consistency(&self, key: &str) -> Result<()> {
        if ManifestName::parse(key) != Some(self.name()) {
            return Err(Error::corrupt(key, "manifest is stored under another name"));
        }
        for segment in &self.segments {
            if let Some(chunk) = segment.chunks.iter().find(|c| !plausible(c)) {
                return Err(Error::corrupt(
                    key,
                    format!(
                        "segment {:?}: chunk reference at {} is impossible (frame {} bytes for {} raw)",
                        segment.name, chunk.offset, chunk.len, chunk.raw_len
                    ),
                ));
            }
            let sum = segment
                .chunks
                .iter()
                .try_fold(0u64, |acc, c| acc.checked_add(u64::from(c.raw_len)));
            if sum != Some(segment.logical_len) {
                return Err(Error::corrupt(
                    key,
                    format!("segment {:?}: chunk lengths do not add up", segment.name),
                ));
            }
        }
        Ok(())
    }
}

/// Whether a chunk reference could have been written: past the pack
/// header, a frame at least a header long, no larger than the largest
/// chunk the writer produces, and never larger than its raw bytes plus the
/// header (a compressed payload is kept only when it is smaller).
fn plausible(chunk: &ChunkRef) -> bool {
    let frame = u64::from(chunk.len);
    chunk.offset >= PACK_HEADER_LEN as u64
        && chunk.offset.checked_add(frame).is_some()
        && chunk.raw_len <= MAX_CHUNK_BYTES
        && frame >= FRAME_HEADER_LEN as u64
        && frame <= u64::from(chunk.raw_len) + FRAME_HEADER_LEN as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            seq: 3,
            step: 41,
            id: 0xfeed,
            scheme: 0,
            created_unix_ms: 1_700_000_000_000,
            chain_len: 1,
            stored_bytes: 123,
            segments: vec![SegmentEntry {
                name: "state".into(),
                kind: SegmentKind::Serde,
                logical_len: 10,
                chunks: vec![ChunkRef {
                    pack: 5,
                    offset: 16,
                    len: 26,
                    raw_len: 10,
                    hash: 77,
                }],
            }],
        }
    }

    #[test]
    fn manifests_round_trip() {
        let m = sample();
        assert_eq!(
            Manifest::decode(&m.name().key(), &m.encode(MAX_MANIFEST_BYTES).unwrap()).unwrap(),
            m
        );
    }

    #[test]
    fn every_flipped_bit_and_every_truncation_is_detected() {
        let m = sample();
        let key = m.name().key();
        let bytes = m.encode(MAX_MANIFEST_BYTES).unwrap();
        for bit in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(Manifest::decode(&key, &bad).is_err(), "bit {bit}");
        }
        for len in 0..bytes.len() {
            assert!(Manifest::decode(&key, &bytes[..len]).is_err(), "len {len}");
        }
    }

    #[test]
    fn a_manifest_under_another_name_is_rejected() {
        let m = sample();
        let mut other = m.name();
        other.seq += 1;
        assert!(Manifest::decode(&other.key(), &m.encode(MAX_MANIFEST_BYTES).unwrap()).is_err());
    }
}
