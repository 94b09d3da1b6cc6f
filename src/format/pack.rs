//! Packs: one object per checkpoint write, holding CRC-framed, optionally
//! zstd-compressed chunks.
//!
//! ```text
//! pack   := "CKPTPACK" version:u16 reserved:u16 crc32(first 12 bytes):u32 frame*
//! frame  := codec:u8 reserved:[u8;3] stored_len:u32 raw_len:u32
//!           crc32(first 12 header bytes ++ stored):u32 stored:[u8; stored_len]
//! ```
//!
//! A chunk is found through its [`ChunkRef`] (pack, offset, frame length),
//! and after decompression its xxh3-128 must equal the ref's hash.

use super::{ChunkRef, FORMAT_VERSION, le_u16, le_u32};
use crate::error::{Error, Result};
use crate::storage::Storage;

const PACK_MAGIC: &[u8; 8] = b"CKPTPACK";
/// Bytes before the first frame.
pub(crate) const PACK_HEADER_LEN: usize = 16;
/// Bytes before a frame's stored payload.
pub(crate) const FRAME_HEADER_LEN: usize = 16;

const CODEC_RAW: u8 = 0;
const CODEC_ZSTD: u8 = 1;

/// How chunk payloads are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    /// Stored as is.
    Off,
    /// zstd at this level (never 0).
    Zstd(i32),
}

/// One chunk, framed and ready to append to a pack.
#[derive(Debug)]
pub(crate) struct EncodedChunk {
    frame: Vec<u8>,
    raw_len: u32,
    hash: u128,
}

/// The identity of raw chunk bytes.
pub(crate) fn chunk_hash(raw: &[u8]) -> u128 {
    xxhash_rust::xxh3::xxh3_128(raw)
}

/// Frames `raw`, compressing it when that makes it smaller.
///
/// `raw` must be shorter than 4 GiB; chunk sizes are validated far below
/// that when a checkpointer is built.
pub(crate) fn encode_chunk(raw: &[u8], compression: Compression) -> EncodedChunk {
    let raw_len = u32::try_from(raw.len()).expect("chunk sizes are validated below 4 GiB");
    let compressed = match compression {
        Compression::Zstd(level) => zstd::bulk::compress(raw, level)
            .ok()
            .filter(|c| c.len() < raw.len()),
        Compression::Off => None,
    };
    let (codec, stored) = match &compressed {
        Some(c) => (CODEC_ZSTD, c.as_slice()),
        None => (CODEC_RAW, raw),
    };
    let stored_len = u32::try_from(stored.len()).expect("stored bytes never exceed raw bytes");
    let mut frame = Vec::with_capacity(FRAME_HEADER_LEN + stored.len());
    append_frame(&mut frame, codec, stored_len, raw_len, stored);
    EncodedChunk {
        frame,
        raw_len,
        hash: chunk_hash(raw),
    }
}

/// Appends the frame of `stored`, which is `stored_len` bytes long, to
/// `out`.
fn append_frame(out: &mut Vec<u8>, codec: u8, stored_len: u32, raw_len: u32, stored: &[u8]) {
    let [s0, s1, s2, s3] = stored_len.to_le_bytes();
    let [r0, r1, r2, r3] = raw_len.to_le_bytes();
    let header = [codec, 0, 0, 0, s0, s1, s2, s3, r0, r1, r2, r3];
    let mut crc = crc32fast::Hasher::new();
    crc.update(&header);
    crc.update(stored);
    out.extend_from_slice(&header);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(stored);
}

/// Builds one pack in memory.
#[derive(Debug)]
pub(crate) struct PackBuilder {
    id: u128,
    bytes: Vec<u8>,
}

impl PackBuilder {
    /// An empty pack with the given id, built in `buffer` (whatever it
    /// held is discarded), so that a writer can reuse one allocation for
    /// many packs instead of faulting in fresh memory for each.
    pub(crate) fn in_buffer(id: u128, mut bytes: Vec<u8>) -> Self {
        bytes.clear();
        bytes.extend_from_slice(PACK_MAGIC);
        bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&[0, 0]);
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        PackBuilder { id, bytes }
    }

    /// Appends a chunk and returns the reference a manifest stores.
    pub(crate) fn push(&mut self, chunk: &EncodedChunk) -> ChunkRef {
        let offset = self.bytes.len() as u64;
        self.bytes.extend_from_slice(&chunk.frame);
        ChunkRef {
            pack: self.id,
            offset,
            len: u32::try_from(chunk.frame.len()).expect("frame of a chunk below 4 GiB"),
            raw_len: chunk.raw_len,
            hash: chunk.hash,
        }
    }

    /// Appends `raw` stored as is (what [`encode_chunk`] does without
    /// compression), framed in place: the bytes are copied once, into the
    /// pack, with no intermediate frame.
    ///
    /// `raw` must be shorter than 4 GiB, as for [`encode_chunk`].
    pub(crate) fn push_raw(&mut self, raw: &[u8]) -> ChunkRef {
        let raw_len = u32::try_from(raw.len()).expect("chunk sizes are validated below 4 GiB");
        let offset = self.bytes.len() as u64;
        append_frame(&mut self.bytes, CODEC_RAW, raw_len, raw_len, raw);
        ChunkRef {
            pack: self.id,
            offset,
            len: u32::try_from(FRAME_HEADER_LEN + raw.len()).expect("frame of a chunk below 4 GiB"),
            raw_len,
            hash: chunk_hash(raw),
        }
    }

    /// Makes room for `additional` more bytes at once, so that filling a
    /// large pack does not grow (and copy) its buffer step by step.
    pub(crate) fn reserve(&mut self, additional: usize) {
        self.bytes.reserve(additional);
    }

    /// The buffer, to build the next pack in.
    pub(crate) fn into_buffer(self) -> Vec<u8> {
        self.bytes
    }

    /// The pack's id.
    pub(crate) fn id(&self) -> u128 {
        self.id
    }

    /// The encoded pack.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Checks a pack's header (magic, version, checksum).
pub(crate) fn verify_pack_header(key: &str, header: &[u8]) -> Result<()> {
    let (Some(magic), Some(version), Some(crc_field), Some(covered)) = (
        header.get(0..8),
        le_u16(header, 8),
        header.get(12..16),
        header.get(0..12),
    ) else {
        return Err(Error::corrupt(key, "pack header is truncated"));
    };
    if magic != PACK_MAGIC {
        return Err(Error::corrupt(key, "not a pack (bad magic)"));
    }
    if crc32fast::hash(covered).to_le_bytes() != crc_field {
        return Err(Error::corrupt(key, "pack header checksum mismatch"));
    }
    if version == 0 || version > FORMAT_VERSION {
        return Err(Error::UnsupportedVersion {
            key: key.to_owned(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    Ok(())
}

/// Reads and verifies a pack's header from storage.
pub(crate) fn check_pack(storage: &dyn Storage, pack: u128) -> Result<()> {
    let key = super::layout::pack_key(pack);
    let header = storage.get_range(&key, 0..PACK_HEADER_LEN as u64)?;
    verify_pack_header(&key, &header)
}

/// Reads one chunk from storage and returns its verified raw bytes.
pub(crate) fn read_chunk(storage: &dyn Storage, chunk: &ChunkRef) -> Result<Vec<u8>> {
    let key = super::layout::pack_key(chunk.pack);
    let end = chunk.offset.checked_add(u64::from(chunk.len));
    let Some(end) = end.filter(|_| chunk.offset >= PACK_HEADER_LEN as u64) else {
        return Err(Error::corrupt(
            &key,
            "chunk reference has an invalid offset",
        ));
    };
    let frame = storage.get_range(&key, chunk.offset..end)?;
    decode_frame(&key, &frame, chunk)
}

/// Verifies a frame against its reference and returns the raw bytes.
pub(crate) fn decode_frame(key: &str, frame: &[u8], chunk: &ChunkRef) -> Result<Vec<u8>> {
    let corrupt =
        |reason: &str| Error::corrupt(key, format!("chunk at {}: {reason}", chunk.offset));
    let (Some(&codec), Some(stored_len), Some(raw_len), Some(crc)) = (
        frame.first(),
        le_u32(frame, 4),
        le_u32(frame, 8),
        le_u32(frame, 12),
    ) else {
        return Err(corrupt("frame header is truncated"));
    };
    if frame.len() != chunk.len as usize {
        return Err(corrupt("frame is shorter than its reference says"));
    }
    if stored_len as usize != frame.len() - FRAME_HEADER_LEN {
        return Err(corrupt("stored length does not match the frame"));
    }
    if raw_len != chunk.raw_len {
        return Err(corrupt("raw length does not match the reference"));
    }
    let (header, stored) = frame.split_at(FRAME_HEADER_LEN);
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(header.get(..12).unwrap_or_default());
    hasher.update(stored);
    if hasher.finalize() != crc {
        return Err(corrupt("checksum mismatch"));
    }
    let raw = match codec {
        CODEC_RAW if stored_len == raw_len => stored.to_vec(),
        CODEC_RAW => return Err(corrupt("uncompressed frame with mismatched lengths")),
        CODEC_ZSTD => zstd::bulk::decompress(stored, raw_len as usize)
            .map_err(|e| corrupt(&format!("does not decompress: {e}")))?,
        other => return Err(corrupt(&format!("unknown codec {other}"))),
    };
    if raw.len() != raw_len as usize {
        return Err(corrupt("decompressed length does not match"));
    }
    if chunk_hash(&raw) != chunk.hash {
        return Err(corrupt("content hash mismatch"));
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack_with(raw: &[u8], compression: Compression) -> (Vec<u8>, ChunkRef) {
        let mut pack = PackBuilder::in_buffer(9, Vec::new());
        let chunk = pack.push(&encode_chunk(raw, compression));
        (pack.bytes().to_vec(), chunk)
    }

    fn frame_of<'a>(pack: &'a [u8], chunk: &ChunkRef) -> &'a [u8] {
        &pack[chunk.offset as usize..chunk.offset as usize + chunk.len as usize]
    }

    #[test]
    fn frames_round_trip_with_and_without_compression() {
        let raw: Vec<u8> = (0..10_000u32).flat_map(|i| (i % 7).to_le_bytes()).collect();
        for compression in [
            Compression::Off,
            Compression::Zstd(1),
            Compression::Zstd(-3),
        ] {
            let (pack, chunk) = pack_with(&raw, compression);
            verify_pack_header("p", &pack).unwrap();
            assert_eq!(
                decode_frame("p", frame_of(&pack, &chunk), &chunk).unwrap(),
                raw
            );
        }
    }

    #[test]
    fn raw_chunks_framed_in_place_match_encoded_ones() {
        let raw: Vec<u8> = (0..70_000u32).map(|i| (i * 7) as u8).collect();
        let mut encoded = PackBuilder::in_buffer(5, Vec::new());
        let mut in_place = PackBuilder::in_buffer(5, b"leftover bytes".to_vec());
        for piece in [&raw[..], &raw[..10], &[][..]] {
            let a = encoded.push(&encode_chunk(piece, Compression::Off));
            let b = in_place.push_raw(piece);
            assert_eq!(a, b);
        }
        assert_eq!(encoded.bytes(), in_place.bytes());
    }

    #[test]
    fn incompressible_chunks_are_stored_raw() {
        let raw: Vec<u8> = (0..4096).map(|_| rand::random::<u8>()).collect();
        let chunk = encode_chunk(&raw, Compression::Zstd(3));
        assert_eq!(chunk.frame.len(), raw.len() + FRAME_HEADER_LEN);
    }

    #[test]
    fn every_flipped_bit_of_a_frame_is_detected() {
        let raw = b"the quick brown fox jumps over the lazy dog".repeat(4);
        let (pack, chunk) = pack_with(&raw, Compression::Zstd(1));
        let frame = frame_of(&pack, &chunk).to_vec();
        for bit in 0..frame.len() * 8 {
            let mut bad = frame.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let result = decode_frame("p", &bad, &chunk);
            assert!(result.is_err(), "flip of bit {bit} went unnoticed");
        }
    }

    #[test]
    fn truncated_frames_and_headers_are_rejected() {
        let (pack, chunk) = pack_with(b"hello world", Compression::Off);
        let frame = frame_of(&pack, &chunk);
        for len in 0..frame.len() {
            assert!(decode_frame("p", &frame[..len], &chunk).is_err());
        }
        for len in 0..PACK_HEADER_LEN {
            assert!(verify_pack_header("p", &pack[..len]).is_err());
        }
    }
}
