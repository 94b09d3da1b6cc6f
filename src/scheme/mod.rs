//! How a captured state becomes stored bytes: the checkpoint schemes.
//!
//! A scheme turns the segments of one capture into packs and a manifest.
//! It writes every pack first and the manifest last, so a checkpoint exists
//! only once everything it references is durable.

mod full;

pub(crate) use full::{CheckpointId, write_full};

use crate::format::pack::Compression;

/// A checkpoint scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Scheme {
    /// Every checkpoint writes the whole state. Restore reads one
    /// checkpoint. The simplest and most robust scheme.
    #[default]
    Full,
    /// Each checkpoint writes only what changed since the previous one;
    /// restore reads the chain back to the last full base.
    Incremental,
    /// Capture is a cheap snapshot; persisting runs on a background thread
    /// while the computation goes on.
    CopyOnWrite,
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

/// How chunks are cut and encoded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriteOptions {
    pub compression: Compression,
    pub chunk_size: usize,
    pub threads: usize,
}
