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
use std::borrow::Cow;

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

/// One chunk, framed and ready to append to a pack: a frame header and a
/// payload that borrows the raw bytes when they are stored as they are, so
/// a checkpoint never copies what it writes.
#[derive(Debug)]
pub(crate) struct EncodedChunk<'a> {
    header: [u8; FRAME_HEADER_LEN],
    payload: Cow<'a, [u8]>,
    raw_len: u32,
    hash: u128,
}

impl EncodedChunk<'_> {
    /// Header plus payload length.
    fn frame_len(&self) -> usize {
        FRAME_HEADER_LEN + self.payload.len()
    }
}

/// The identity of raw chunk bytes.
pub(crate) fn chunk_hash(raw: &[u8]) -> u128 {
    xxhash_rust::xxh3::xxh3_128(raw)
}

/// Frames `raw`, compressing it when that makes it smaller; stored as it
/// is, the payload borrows `raw`.
///
/// `raw` must be shorter than 4 GiB; chunk sizes are validated far below
/// that when a checkpointer is built.
pub(crate) fn encode_chunk(raw: &[u8], compression: Compression) -> EncodedChunk<'_> {
    let raw_len = u32::try_from(raw.len())
        .expect("a chunk is at most chunk_size (256 MiB) or one page (64 MiB, or one element)");
    let compressed = match compression {
        Compression::Zstd(level) => zstd::bulk::compress(raw, level)
            .ok()
            .filter(|c| c.len() < raw.len()),
        Compression::Off => None,
    };
    let (codec, payload) = match compressed {
        Some(c) => (CODEC_ZSTD, Cow::Owned(c)),
        None => (CODEC_RAW, Cow::Borrowed(raw)),
    };
    let stored_len = u32::try_from(payload.len()).expect("stored bytes never exceed raw bytes");
    EncodedChunk {
        header: frame_header(codec, stored_len, raw_len, &payload),
        payload,
        raw_len,
        hash: chunk_hash(raw),
    }
}

/// The header of the frame that stores `stored` (`stored_len` bytes).
fn frame_header(codec: u8, stored_len: u32, raw_len: u32, stored: &[u8]) -> [u8; FRAME_HEADER_LEN] {
    let covered = frame_header_fields(codec, stored_len, raw_len);
    let [codec, _, _, _, s0, s1, s2, s3, r0, r1, r2, r3] = covered;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&covered);
    crc.update(stored);
    let [c0, c1, c2, c3] = crc.finalize().to_le_bytes();
    [
        codec, 0, 0, 0, s0, s1, s2, s3, r0, r1, r2, r3, c0, c1, c2, c3,
    ]
}

/// Lays out one pack — its header, then the frames of the chunks pushed —
/// as the consecutive parts [`Storage::put_parts`] writes. Nothing is
/// copied: parts borrow the chunks' payloads, which borrow the state.
#[derive(Debug)]
pub(crate) struct PackBuilder<'a> {
    id: u128,
    header: [u8; PACK_HEADER_LEN],
    frames: Vec<EncodedChunk<'a>>,
    len: u64,
}

impl<'a> PackBuilder<'a> {
    /// An empty pack with the given id.
    pub(crate) fn new(id: u128) -> Self {
        let [m0, m1, m2, m3, m4, m5, m6, m7] = *PACK_MAGIC;
        let [v0, v1] = FORMAT_VERSION.to_le_bytes();
        let covered = [m0, m1, m2, m3, m4, m5, m6, m7, v0, v1, 0, 0];
        let [c0, c1, c2, c3] = crc32fast::hash(&covered).to_le_bytes();
        let header = [m0, m1, m2, m3, m4, m5, m6, m7, v0, v1, 0, 0, c0, c1, c2, c3];
        PackBuilder {
            id,
            header,
            frames: Vec::new(),
            len: PACK_HEADER_LEN as u64,
        }
    }

    /// Appends a chunk and returns the reference a manifest stores.
    pub(crate) fn push(&mut self, chunk: EncodedChunk<'a>) -> ChunkRef {
        let offset = self.len;
        let len = chunk.frame_len();
        self.len += len as u64;
        let chunk_ref = ChunkRef {
            pack: self.id,
            offset,
            len: u32::try_from(len).expect("a frame is a chunk of 256 MiB at most and its header"),
            raw_len: chunk.raw_len,
            hash: chunk.hash,
        };
        self.frames.push(chunk);
        chunk_ref
    }

    /// The pack's id.
    pub(crate) fn id(&self) -> u128 {
        self.id
    }

    /// The pack's length in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The pack as the consecutive parts to store.
    pub(crate) fn parts(&self) -> Vec<&[u8]> {
        let mut parts = Vec::with_capacity(2 * self.frames.len() + 1);
        parts.push(self.header.as_slice());
        for frame in &self.frames {
            parts.push(frame.header.as_slice());
            parts.push(&frame.payload);
        }
        parts
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

/// Verifies a frame against its reference and returns the raw bytes.
#[cfg(test)]
pub(crate) fn decode_frame(key: &str, frame: &[u8], chunk: &ChunkRef) -> Result<Vec<u8>> {
    if frame.len() != chunk.len as usize {
        return Err(frame_error(
            key,
            chunk,
            "frame is shorter than its reference says",
        ));
    }
    let (header, stored) = frame.split_at(FRAME_HEADER_LEN.min(frame.len()));
    let mut raw = vec![0; chunk.raw_len as usize];
    decode_frame_into(key, chunk, header, stored, &mut raw)?;
    Ok(raw)
}

/// Whether the frame `chunk` refers to stores its bytes as they are, so a
/// reader can place its payload straight into the destination: a
/// compressed payload is always shorter than the raw bytes.
pub(crate) fn stored_raw(chunk: &ChunkRef) -> bool {
    chunk.len as usize == FRAME_HEADER_LEN + chunk.raw_len as usize
}

/// Bytes of the payload of the frame `chunk` refers to (0 for a reference
/// too short to hold a header, which verification then rejects).
pub(crate) fn stored_len(chunk: &ChunkRef) -> usize {
    (chunk.len as usize).saturating_sub(FRAME_HEADER_LEN)
}

/// Verifies the frame made of `header` and `stored` against its reference
/// and leaves its raw bytes in `raw` (exactly `chunk.raw_len` bytes).
///
/// When the frame is stored raw, `stored` may be `raw` itself: pass
/// `None` for `stored` and the payload is checked in `raw` where it was
/// read, so a reader that read it there copies nothing. Such a frame is
/// checked by its content hash alone (xxh3-128 of the raw bytes, which the
/// manifest binds, so it catches every change the frame's CRC32 would and
/// a frame of other content in its place, which the CRC would not) and by
/// its header's fields, which must be the ones its reference implies;
/// only the CRC field itself, which guards nothing the hash does not, is
/// not read. That halves the cost of verifying the restore's bulk.
pub(crate) fn verify_frame_in_place(
    key: &str,
    chunk: &ChunkRef,
    header: &[u8],
    stored: Option<&[u8]>,
    raw: &mut [u8],
) -> Result<()> {
    match stored {
        Some(stored) => decode_frame_into(key, chunk, header, stored, raw),
        None => {
            let expected = frame_header_fields(CODEC_RAW, chunk.raw_len, chunk.raw_len);
            if header.get(..12) != Some(expected.as_slice()) || raw.len() != chunk.raw_len as usize
            {
                return Err(frame_error(
                    key,
                    chunk,
                    "frame header does not match its reference (not stored raw, or lengths differ)",
                ));
            }
            check_hash(key, chunk, raw)
        }
    }
}

/// The 12 header bytes a frame's CRC covers.
fn frame_header_fields(codec: u8, stored_len: u32, raw_len: u32) -> [u8; 12] {
    let [s0, s1, s2, s3] = stored_len.to_le_bytes();
    let [r0, r1, r2, r3] = raw_len.to_le_bytes();
    [codec, 0, 0, 0, s0, s1, s2, s3, r0, r1, r2, r3]
}

/// Verifies a frame and writes its raw bytes into `raw`, which must be
/// exactly `chunk.raw_len` bytes: a frame claiming more is rejected by
/// the decompressor, never allocated for.
fn decode_frame_into(
    key: &str,
    chunk: &ChunkRef,
    header: &[u8],
    stored: &[u8],
    raw: &mut [u8],
) -> Result<()> {
    if raw.len() != chunk.raw_len as usize {
        return Err(frame_error(
            key,
            chunk,
            "raw length does not match the reference",
        ));
    }
    match check_frame(key, chunk, header, stored)? {
        CODEC_RAW => raw.copy_from_slice(stored),
        _ => {
            let written = zstd::bulk::decompress_to_buffer(stored, raw)
                .map_err(|e| frame_error(key, chunk, &format!("does not decompress: {e}")))?;
            if written != raw.len() {
                return Err(frame_error(
                    key,
                    chunk,
                    "decompressed length does not match",
                ));
            }
        }
    }
    check_hash(key, chunk, raw)
}

/// Checks a frame's header against its reference and its checksum over
/// `stored`; returns the codec.
fn check_frame(key: &str, chunk: &ChunkRef, header: &[u8], stored: &[u8]) -> Result<u8> {
    let corrupt = |reason: &str| frame_error(key, chunk, reason);
    let (Some(&codec), Some(stored_len), Some(raw_len), Some(crc), Some(covered)) = (
        header.first(),
        le_u32(header, 4),
        le_u32(header, 8),
        le_u32(header, 12),
        header.get(..12),
    ) else {
        return Err(corrupt("frame header is truncated"));
    };
    if header.len() + stored.len() != chunk.len as usize {
        return Err(corrupt("frame is shorter than its reference says"));
    }
    if stored_len as usize != stored.len() {
        return Err(corrupt("stored length does not match the frame"));
    }
    if raw_len != chunk.raw_len {
        return Err(corrupt("raw length does not match the reference"));
    }
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(covered);
    hasher.update(stored);
    if hasher.finalize() != crc {
        return Err(corrupt("checksum mismatch"));
    }
    match codec {
        CODEC_RAW if stored_len == raw_len => Ok(CODEC_RAW),
        CODEC_RAW => Err(corrupt("uncompressed frame with mismatched lengths")),
        CODEC_ZSTD => Ok(CODEC_ZSTD),
        other => Err(corrupt(&format!("unknown codec {other}"))),
    }
}

fn check_hash(key: &str, chunk: &ChunkRef, raw: &[u8]) -> Result<()> {
    if chunk_hash(raw) != chunk.hash {
        return Err(frame_error(key, chunk, "content hash mismatch"));
    }
    Ok(())
}

fn frame_error(key: &str, chunk: &ChunkRef, reason: &str) -> Error {
    Error::corrupt(key, format!("chunk at {}: {reason}", chunk.offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack_with(raw: &[u8], compression: Compression) -> (Vec<u8>, ChunkRef) {
        let mut pack = PackBuilder::new(9);
        let chunk = pack.push(encode_chunk(raw, compression));
        let bytes = pack.parts().concat();
        assert_eq!(bytes.len() as u64, pack.len());
        (bytes, chunk)
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
    fn a_pack_of_many_chunks_lays_them_out_back_to_back() {
        let raw: Vec<u8> = (0..70_000u32).map(|i| (i * 7) as u8).collect();
        let mut pack = PackBuilder::new(5);
        let pieces = [&raw[..], &raw[..10], &[][..], &raw[5..60_000]];
        let refs: Vec<ChunkRef> = pieces
            .iter()
            .map(|p| pack.push(encode_chunk(p, Compression::Off)))
            .collect();
        let bytes = pack.parts().concat();
        assert_eq!(bytes.len() as u64, pack.len());
        verify_pack_header("p", &bytes).unwrap();
        let mut offset = PACK_HEADER_LEN as u64;
        for (piece, chunk) in pieces.iter().zip(&refs) {
            assert_eq!(chunk.offset, offset);
            offset += u64::from(chunk.len);
            assert_eq!(
                decode_frame("p", frame_of(&bytes, chunk), chunk).unwrap(),
                *piece
            );
        }
        assert_eq!(offset, pack.len());
    }

    #[test]
    fn incompressible_chunks_are_stored_raw() {
        let raw: Vec<u8> = (0..4096).map(|_| rand::random::<u8>()).collect();
        let chunk = encode_chunk(&raw, Compression::Zstd(3));
        assert_eq!(chunk.frame_len(), raw.len() + FRAME_HEADER_LEN);
        assert!(
            matches!(chunk.payload, Cow::Borrowed(_)),
            "stored without a copy"
        );
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
    fn in_place_verification_detects_every_flip_but_in_the_crc_field() {
        let raw: Vec<u8> = (0..1000u32).map(|i| (i * 13) as u8).collect();
        let (pack, chunk) = pack_with(&raw, Compression::Off);
        assert!(stored_raw(&chunk));
        let frame = frame_of(&pack, &chunk).to_vec();
        let (header, payload) = frame.split_at(FRAME_HEADER_LEN);
        let mut good = payload.to_vec();
        verify_frame_in_place("p", &chunk, header, None, &mut good).unwrap();
        for bit in 0..frame.len() * 8 {
            let mut bad = frame.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let (header, payload) = bad.split_at_mut(FRAME_HEADER_LEN);
            let result = verify_frame_in_place("p", &chunk, header, None, payload);
            // The CRC field guards nothing the content hash does not.
            let in_crc_field = (12..16).contains(&(bit / 8));
            assert_eq!(result.is_ok(), in_crc_field, "bit {bit}");
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
