//! Bytes on disk: pack and manifest encodings, framing, checksums and
//! compression.
//!
//! Every object starts with an 8-byte magic and a format version, and every
//! record is CRC32-checked; a decoder checks a length or offset before it
//! uses it. The bincode configurations are pinned here, because they are
//! part of the on-disk format: a checkpoint written today must restore after
//! a dependency upgrade.

pub(crate) mod group;
pub(crate) mod journal;
pub(crate) mod layout;
pub(crate) mod manifest;
pub(crate) mod pack;
pub(crate) mod record;

pub(crate) use manifest::{ChunkRef, Manifest, SegmentEntry, SegmentKind};

/// The format version this build writes and the newest it reads.
///
/// Version 2 records the type each segment was written as; version 1
/// stores are read as they are.
pub const FORMAT_VERSION: u16 = 2;

/// Largest raw chunk the writer produces (the largest `chunk_size`; pages
/// are at most 64 MiB). A reference claiming more is corrupt, so no
/// decode allocates more than this for one chunk.
pub(crate) const MAX_CHUNK_BYTES: u32 = 256 << 20;

/// bincode settings for application state (format version 1).
pub(crate) const STATE_CODEC: bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
> = bincode::config::standard()
    .with_little_endian()
    .with_variable_int_encoding();

/// Largest manifest this build will decode; a length field claiming more is
/// treated as corruption rather than trusted with an allocation.
pub(crate) const MAX_MANIFEST_BYTES: usize = 256 << 20;

/// bincode settings for manifests (format version 1), with a hard limit so
/// a corrupt length can never make the decoder allocate without bound.
pub(crate) const MANIFEST_CODEC: bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_MANIFEST_BYTES>,
> = bincode::config::standard()
    .with_little_endian()
    .with_variable_int_encoding()
    .with_limit::<MAX_MANIFEST_BYTES>();

/// Reads a little-endian `u16` at `at`, if the bytes are there.
pub(crate) fn le_u16(bytes: &[u8], at: usize) -> Option<u16> {
    let field: [u8; 2] = bytes.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(u16::from_le_bytes(field))
}

/// Reads a little-endian `u32` at `at`, if the bytes are there.
pub(crate) fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let field: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(field))
}
