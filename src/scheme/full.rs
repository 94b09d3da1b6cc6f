//! The full scheme: every segment is cut into chunks and written in one pack.

use super::WriteOptions;
use crate::error::Result;
use crate::format::layout::pack_key;
use crate::format::pack::{EncodedChunk, PackBuilder, encode_chunk};
use crate::format::{Manifest, SegmentEntry, SegmentKind};
use crate::state::{CapturedSegment, SegmentData};
use crate::storage::Storage;

/// Identity and timing of the checkpoint being written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CheckpointId {
    pub seq: u64,
    pub step: u64,
    pub id: u128,
    pub scheme: u8,
    pub created_unix_ms: u64,
}

/// Writes `segments` as a full checkpoint: one pack, then the manifest.
pub(crate) fn write_full(
    storage: &dyn Storage,
    segments: &[CapturedSegment],
    ident: CheckpointId,
    options: WriteOptions,
) -> Result<Manifest> {
    let mut pack = PackBuilder::new(rand::random());
    let mut entries = Vec::with_capacity(segments.len());
    for segment in segments {
        let SegmentData::Serde(bytes) = &segment.data;
        let encoded = encode_all(bytes, options);
        entries.push(SegmentEntry {
            name: segment.name.clone(),
            kind: SegmentKind::Serde,
            logical_len: bytes.len() as u64,
            chunks: encoded.iter().map(|c| pack.push(c)).collect(),
        });
    }
    let mut stored_bytes = 0;
    if !pack.is_empty() {
        storage.put(&pack_key(pack.id()), pack.bytes())?;
        stored_bytes += pack.bytes().len() as u64;
    }
    let manifest = Manifest {
        seq: ident.seq,
        step: ident.step,
        id: ident.id,
        scheme: ident.scheme,
        created_unix_ms: ident.created_unix_ms,
        chain_len: 1,
        stored_bytes,
        segments: entries,
    };
    storage.put(&manifest.name().key(), &manifest.encode())?;
    Ok(manifest)
}

/// Cuts `bytes` into chunks and encodes them on up to `options.threads`
/// threads, keeping their order.
pub(crate) fn encode_all(bytes: &[u8], options: WriteOptions) -> Vec<EncodedChunk> {
    let pieces: Vec<&[u8]> = bytes.chunks(options.chunk_size).collect();
    let threads = options.threads.clamp(1, pieces.len().max(1));
    if threads == 1 {
        return pieces
            .iter()
            .map(|p| encode_chunk(p, options.compression))
            .collect();
    }
    let per_thread = pieces.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = pieces
            .chunks(per_thread)
            .map(|group| {
                scope.spawn(move || {
                    group
                        .iter()
                        .map(|p| encode_chunk(p, options.compression))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("chunk encoding does not panic"))
            .collect()
    })
}
