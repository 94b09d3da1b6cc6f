//! How a captured state becomes stored bytes: the checkpoint schemes.
//!
//! A [`writer::Writer`] turns the segments of one capture into packs and a
//! manifest, choosing per checkpoint between a full base and an increment
//! on the previous checkpoint. It writes the packs first and the manifest
//! last, so a checkpoint exists only once everything it references is
//! durable. Copy-on-write runs the same writer on a background thread (see
//! `checkpointer`, which also applies retention after each commit).

mod chunking;
mod packs;
mod writer;

pub(crate) use writer::{Job, Writer, Written};

use crate::format::pack::Compression;

/// A checkpoint scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Scheme {
    /// Every checkpoint writes the whole state, synchronously. Restore
    /// reads one checkpoint. The simplest and most robust scheme.
    #[default]
    Full,
    /// Each checkpoint writes only what changed since the previous one:
    /// dirty pages of [`PagedVec`](crate::PagedVec)s, and content-defined
    /// chunks of serde state the store does not hold yet. A full base is
    /// taken when the chain reaches the configured maximum.
    Incremental,
    /// Capture is a snapshot (page pointers for paged state, the encoded
    /// bytes for serde state); an increment is persisted on a background
    /// thread while the computation goes on.
    CopyOnWrite,
}

/// A short lower-case name: `full`, `incremental`, `copy-on-write`.
///
/// ```
/// assert_eq!(ckpt::Scheme::CopyOnWrite.to_string(), "copy-on-write");
/// ```
impl std::fmt::Display for Scheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Scheme::Full => "full",
            Scheme::Incremental => "incremental",
            Scheme::CopyOnWrite => "copy-on-write",
        })
    }
}

impl Scheme {
    /// The code stored in manifests.
    pub(crate) fn code(self) -> u8 {
        match self {
            Scheme::Full => 0,
            Scheme::Incremental => 1,
            Scheme::CopyOnWrite => 2,
        }
    }

    /// The scheme a manifest code names, if this build knows it.
    pub(crate) fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Scheme::Full),
            1 => Some(Scheme::Incremental),
            2 => Some(Scheme::CopyOnWrite),
            _ => None,
        }
    }
}

/// How chunks are encoded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriteOptions {
    pub compression: Compression,
    pub chunk_size: usize,
    pub threads: usize,
}

/// Everything a [`Writer`] needs to know, validated by the builder.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriterConfig {
    pub scheme: Scheme,
    pub write: WriteOptions,
    /// Average content-defined chunk size for serde state in the
    /// incremental schemes.
    pub cdc_average: usize,
    /// Longest chain of checkpoints a restore may need to read.
    pub max_chain: u32,
}

/// Identity of the checkpoint being written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CheckpointId {
    pub seq: u64,
    pub step: u64,
    pub id: u128,
    pub scheme: Scheme,
    pub created_unix_ms: u64,
}
