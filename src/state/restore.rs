//! Rebuilding a state from a checkpoint: the [`Restore`] handed to
//! [`State::restore`](super::State::restore), which reads each segment it
//! is asked for straight into the memory the restored state keeps.

use super::Element;
use super::PagedVec;
use crate::error::{Error, Result};
use crate::fetch::{Wanted, fetch};
use crate::format::{ChunkRef, Manifest, STATE_CODEC, SegmentEntry};
use crate::storage::{Storage, short_type_name};
use bytemuck::Pod;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, BTreeSet};

/// Restores whose checkpoint holds fewer stored bytes report no progress:
/// they are over before a progress bar could be drawn.
pub(crate) const PROGRESS_MIN_BYTES: u64 = 64 << 20;

/// Raw bytes verified at once when checking segments nobody restored.
const VERIFY_BATCH_BYTES: u64 = 64 << 20;

/// Progress reports per restore, at most (one per percent).
const PROGRESS_STEPS: u64 = 100;

/// A serde segment restored as a type whose name differs from the one it
/// was written as (module paths aside).
///
/// Not an error: type names move in refactors, and a renamed type with
/// the same fields decodes correctly. It is reported in
/// [`Restored::type_changes`](crate::Restored::type_changes) so that a
/// silent reinterpretation (the bytes of one type decoded as another that
/// happens to fit) becomes visible.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TypeChange {
    /// The segment.
    pub segment: String,
    /// The type it was written as (`std::any::type_name`).
    pub written_as: String,
    /// The type it was restored as.
    pub restored_as: String,
}

/// Reports how many of a restore's stored bytes have been read.
pub(crate) struct Progress<'a> {
    done: u64,
    total: u64,
    next_report: u64,
    report: &'a mut dyn FnMut(u64, u64),
}

impl<'a> Progress<'a> {
    /// Progress over `total` stored bytes, reported to `report` as
    /// `(done, total)` once per percent when `total` is at least
    /// [`PROGRESS_MIN_BYTES`].
    pub(crate) fn new(total: u64, report: &'a mut dyn FnMut(u64, u64)) -> Self {
        let next_report = if total >= PROGRESS_MIN_BYTES {
            total.div_ceil(PROGRESS_STEPS)
        } else {
            u64::MAX
        };
        Progress {
            done: 0,
            total,
            next_report,
            report,
        }
    }

    fn add(&mut self, bytes: u64) {
        self.done = self.done.saturating_add(bytes).min(self.total);
        if self.done >= self.next_report {
            (self.report)(self.done, self.total);
            let step = self.total.div_ceil(PROGRESS_STEPS).max(1);
            self.next_report = ((self.done / step + 1) * step).min(self.total);
        }
    }

    fn finish(&mut self) {
        if self.next_report != u64::MAX && self.done < self.total {
            self.done = self.total;
            (self.report)(self.total, self.total);
        }
    }
}

/// The segments of one verified manifest; handed to
/// [`State::restore`](super::State::restore), which asks for each part of
/// the state by name.
///
/// A segment's bytes are read and verified when it is asked for, straight
/// into the memory the restored value keeps (a paged vector's pages) or
/// into one buffer the decoder reads (a serde value).
pub struct Restore<'a> {
    step: u64,
    checkpoint: u128,
    key: String,
    storage: &'a dyn Storage,
    /// The manifest's segments, by name (borrowed: nothing is copied).
    segments: BTreeMap<&'a str, &'a SegmentEntry>,
    read: BTreeSet<String>,
    progress: Progress<'a>,
    type_changes: Vec<TypeChange>,
}

impl std::fmt::Debug for Restore<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Restore")
            .field("step", &self.step)
            .field("manifest", &self.key)
            .field("segments", &self.segments.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl<'a> Restore<'a> {
    /// A restore of `manifest` (already verified) from `storage`.
    pub(crate) fn new(
        storage: &'a dyn Storage,
        manifest: &'a Manifest,
        report: &'a mut dyn FnMut(u64, u64),
    ) -> Self {
        let frames: BTreeSet<(u128, u64, u32)> = manifest
            .segments
            .iter()
            .flat_map(|s| s.chunks.iter().map(|c| (c.pack, c.offset, c.len)))
            .collect();
        let total = frames.iter().map(|(_, _, len)| u64::from(*len)).sum();
        Restore {
            step: manifest.step,
            checkpoint: manifest.id,
            key: manifest.name().key(),
            storage,
            segments: manifest
                .segments
                .iter()
                .map(|s| (s.name.as_str(), s))
                .collect(),
            read: BTreeSet::new(),
            progress: Progress::new(total, report),
            type_changes: Vec::new(),
        }
    }

    /// Stored bytes a whole restore reads (each frame once), the unread
    /// segments' verification included.
    pub(crate) fn stored_bytes(&self) -> u64 {
        self.progress.total
    }

    /// The step the checkpoint was taken at.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The names of the checkpoint's segments.
    pub fn segment_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.segments.keys().copied()
    }

    /// Rebuilds the paged segment `name`, clean: until it is written, the
    /// next incremental checkpoint stores none of its pages again.
    ///
    /// The pages are read straight into the vector's memory. The element
    /// type must be the one the segment was written with: its size, and
    /// (for checkpoints of format 2 on) its name, module paths aside, so
    /// that `f64` pages are never silently read as `u64`. A type that was
    /// only renamed is restored with [`paged_reinterpret`](Self::paged_reinterpret).
    pub fn paged<T: Element>(&mut self, name: &str) -> Result<PagedVec<T>> {
        let entry = self.paged_entry::<T>(name)?;
        let requested = std::any::type_name::<T>();
        if let Some(written) = renamed(entry, requested) {
            return Err(self.mismatch(
                name,
                format!(
                    "its elements were written as {written}, not {requested}; restore it as {written}, or with Restore::paged_reinterpret if the type was only renamed"
                ),
            ));
        }
        self.read_pages(name, entry)
    }

    /// Rebuilds the paged segment `name` as elements of type `T`, checking
    /// only that their size matches: for an element type renamed since
    /// the checkpoint was written. The bytes are taken as they are.
    pub fn paged_reinterpret<T: Element>(&mut self, name: &str) -> Result<PagedVec<T>> {
        let entry = self.paged_entry::<T>(name)?;
        self.read_pages(name, entry)
    }

    /// Decodes the serde segment `name`.
    ///
    /// The decoder is bounded by the segment's stored length, so bytes of
    /// another type give [`Error::StateMismatch`], never a huge
    /// allocation. A segment written as a type of another name that still
    /// decodes is restored and reported in
    /// [`Restored::type_changes`](crate::Restored::type_changes).
    pub fn serde<T: DeserializeOwned>(&mut self, name: &str) -> Result<T> {
        let Some(entry) = self
            .segments
            .get(name)
            .filter(|s| s.kind.is_serde())
            .copied()
        else {
            return Err(self.mismatch(name, "the checkpoint has no serde segment of this name"));
        };
        let bytes = self.read_serde_bytes(entry)?;
        self.read.insert(name.to_owned());
        let (value, used) = decode_bounded::<T>(&bytes).map_err(|e| Error::StateMismatch {
            step: self.step,
            segment: name.to_owned(),
            reason: "its bytes do not decode as the requested type".to_owned(),
            source: Some(std::sync::Arc::new(e)),
        })?;
        if used != bytes.len() {
            return Err(self.mismatch(
                name,
                format!("{} bytes left over after decoding", bytes.len() - used),
            ));
        }
        let requested = std::any::type_name::<T>();
        if let Some(written) = renamed(entry, requested) {
            self.type_changes.push(TypeChange {
                segment: name.to_owned(),
                written_as: written.to_owned(),
                restored_as: requested.to_owned(),
            });
        }
        Ok(value)
    }

    /// Verifies the segments the state did not ask for (a checkpoint that
    /// becomes the base of the next increment must verify whole), and
    /// returns the type changes seen.
    pub(crate) fn finish(mut self) -> Result<Vec<TypeChange>> {
        let unread: Vec<&SegmentEntry> = self
            .segments
            .values()
            .filter(|s| !self.read.contains(&s.name))
            .copied()
            .collect();
        for entry in unread {
            let mut start = 0;
            let mut batch_bytes = 0u64;
            for (i, chunk) in entry.chunks.iter().enumerate() {
                batch_bytes += u64::from(chunk.raw_len);
                if batch_bytes >= VERIFY_BATCH_BYTES || i + 1 == entry.chunks.len() {
                    self.verify_chunks(entry.chunks.get(start..=i).unwrap_or_default())?;
                    start = i + 1;
                    batch_bytes = 0;
                }
            }
        }
        self.progress.finish();
        Ok(self.type_changes)
    }

    /// Reads and verifies `chunks`, keeping nothing.
    fn verify_chunks(&mut self, chunks: &[ChunkRef]) -> Result<()> {
        let mut scratch: Vec<Vec<u8>> = chunks
            .iter()
            .map(|c| vec![0u8; c.raw_len as usize])
            .collect();
        let wanted = chunks
            .iter()
            .zip(scratch.iter_mut())
            .map(|(chunk, dest)| Wanted {
                chunk: *chunk,
                dest,
            })
            .collect();
        let progress = &mut self.progress;
        fetch(self.storage, wanted, &mut |bytes| progress.add(bytes))
    }

    fn mismatch(&self, segment: &str, reason: impl Into<String>) -> Error {
        Error::StateMismatch {
            step: self.step,
            segment: segment.to_owned(),
            reason: reason.into(),
            source: None,
        }
    }

    fn corrupt(&self, segment: &str, reason: &str) -> Error {
        Error::corrupt(&self.key, format!("segment {segment:?}: {reason}"))
    }

    /// The entry of the paged segment `name`, if its elements are `T`'s size.
    fn paged_entry<T>(&self, name: &str) -> Result<&'a SegmentEntry> {
        let Some(&entry) = self.segments.get(name) else {
            return Err(self.mismatch(name, "the checkpoint has no paged segment of this name"));
        };
        let Some(layout) = entry.kind.page_layout() else {
            return Err(self.mismatch(name, "the checkpoint has no paged segment of this name"));
        };
        let size = std::mem::size_of::<T>();
        if layout.elem_size as usize != size {
            return Err(self.mismatch(
                name,
                format!(
                    "stored elements are {} bytes, the requested type's are {size}",
                    layout.elem_size
                ),
            ));
        }
        Ok(entry)
    }

    /// Reads the pages of `entry` into a new vector of `T`.
    fn read_pages<T: Element>(&mut self, name: &str, entry: &SegmentEntry) -> Result<PagedVec<T>> {
        let layout = entry
            .kind
            .page_layout()
            .ok_or_else(|| self.corrupt(name, "not a paged segment"))?;
        let key = self.key.clone();
        let bad_layout = || {
            Error::corrupt(
                &key,
                format!("segment {name:?}: pages do not match the stored layout"),
            )
        };
        let page_len = usize::try_from(layout.page_len).map_err(|_| bad_layout())?;
        let len = usize::try_from(layout.len).map_err(|_| bad_layout())?;
        let fits = PagedVec::<T>::with_page_len(page_len).page_len() == page_len;
        if !fits || len.div_ceil(page_len.max(1)) != entry.chunks.len() {
            return Err(bad_layout());
        }
        let size = std::mem::size_of::<T>();
        let mut pages: Vec<Vec<T>> = Vec::with_capacity(entry.chunks.len());
        let mut remaining = len;
        for chunk in &entry.chunks {
            let elems = page_len.min(remaining);
            remaining -= elems;
            if chunk.raw_len as usize != elems * size {
                return Err(bad_layout());
            }
            pages.push(zeroed_page(elems));
        }
        let wanted = entry
            .chunks
            .iter()
            .zip(pages.iter_mut())
            .map(|(chunk, page)| Wanted {
                chunk: *chunk,
                dest: page_bytes(page),
            })
            .collect();
        let progress = &mut self.progress;
        fetch(self.storage, wanted, &mut |bytes| progress.add(bytes))?;
        self.read.insert(name.to_owned());
        PagedVec::from_page_vecs(pages, page_len, len, self.checkpoint).ok_or_else(bad_layout)
    }

    /// Reads the encoded bytes of a serde segment into one buffer.
    fn read_serde_bytes(&mut self, entry: &SegmentEntry) -> Result<Vec<u8>> {
        let len = usize::try_from(entry.logical_len)
            .map_err(|_| self.corrupt(&entry.name, "segment too large for this machine"))?;
        let mut bytes = vec![0u8; len];
        let wanted = chunk_destinations(&entry.chunks, &mut bytes)
            .ok_or_else(|| self.corrupt(&entry.name, "chunk lengths do not add up"))?;
        let progress = &mut self.progress;
        fetch(self.storage, wanted, &mut |read| progress.add(read))?;
        Ok(bytes)
    }
}

/// The type `entry` was written as, when its format recorded one whose
/// name (module paths aside) is not `requested`'s.
fn renamed<'e>(entry: &'e SegmentEntry, requested: &str) -> Option<&'e str> {
    entry
        .kind
        .type_name()
        .filter(|written| short_type_name(written) != short_type_name(requested))
}

/// Cuts `buffer` into one destination per chunk, in order; `None` when
/// the chunks' lengths do not add up to the buffer's.
fn chunk_destinations<'b>(chunks: &[ChunkRef], buffer: &'b mut [u8]) -> Option<Vec<Wanted<'b>>> {
    let mut rest = buffer;
    let mut wanted = Vec::with_capacity(chunks.len());
    for chunk in chunks {
        let (dest, tail) = rest.split_at_mut_checked(chunk.raw_len as usize)?;
        wanted.push(Wanted {
            chunk: *chunk,
            dest,
        });
        rest = tail;
    }
    rest.is_empty().then_some(wanted)
}

/// A page of `elems` zeroed elements, allocated zeroed (so fresh memory is
/// not written twice: the read fills it).
fn zeroed_page<T: Pod>(elems: usize) -> Vec<T> {
    if std::mem::size_of::<T>() == 0 {
        return vec![T::zeroed(); elems];
    }
    bytemuck::allocation::zeroed_vec(elems)
}

/// A page's memory as bytes (none for a zero-sized element type).
fn page_bytes<T: Pod>(page: &mut [T]) -> &mut [u8] {
    bytemuck::try_cast_slice_mut(page).unwrap_or_default()
}

/// Decodes a serde value from `bytes` with a decoder limit derived from
/// their length: bincode allocates a string's or byte buffer's claimed
/// length before reading it, and the limit refuses a claim no value
/// encoded in this many bytes could make.
///
/// bincode counts a decoded integer at its size in memory (a `u128`
/// stored as one varint byte claims 16), so the budget is 16 bytes per
/// stored byte, rounded up to a power of two: a wrong type can make the
/// decoder reserve at most 32× the segment (never written to, so never
/// resident), where without a limit a stray length asks for terabytes
/// and aborts the process.
fn decode_bounded<T: DeserializeOwned>(
    bytes: &[u8],
) -> std::result::Result<(T, usize), bincode::error::DecodeError> {
    macro_rules! tiers {
        ($($bits:literal)*) => {{
            let budget = bytes.len().max(1).saturating_mul(CLAIM_PER_BYTE);
            let needed = budget.checked_next_power_of_two().map_or(usize::BITS, usize::trailing_zeros);
            $(
                if needed <= $bits {
                    return bincode::serde::decode_from_slice(
                        bytes,
                        STATE_CODEC.with_limit::<{ 1usize << $bits }>(),
                    );
                }
            )*
            bincode::serde::decode_from_slice(bytes, STATE_CODEC.with_limit::<{ usize::MAX }>())
        }};
    }
    tiers!(16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44)
}

/// What bincode may claim per stored byte: a one-byte varint decoded as a
/// `u128`/`i128` claims 16.
const CLAIM_PER_BYTE: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_type_names_drop_module_paths() {
        assert_eq!(short_type_name("f64"), "f64");
        assert_eq!(short_type_name("alloc::vec::Vec<f64>"), "Vec<f64>");
        assert_eq!(
            short_type_name(
                "std::collections::HashMap<alloc::string::String, my_app::model::Cell>"
            ),
            "HashMap<String, Cell>"
        );
        assert_eq!(short_type_name("[my::Pair; 4]"), "[Pair; 4]");
        assert_eq!(short_type_name("(u8, a::b::C)"), "(u8, C)");
    }

    #[test]
    fn a_claimed_length_beyond_the_segment_is_refused_before_allocating() {
        // A u64 (varint 0xFF marker + 8 bytes) whose value, read as a
        // string length, would ask for a terabyte.
        let bytes = bincode::serde::encode_to_vec(1u64 << 40, STATE_CODEC).unwrap();
        let decoded = decode_bounded::<String>(&bytes);
        assert!(decoded.is_err());
        let ok = bincode::serde::encode_to_vec("hello".to_owned(), STATE_CODEC).unwrap();
        assert_eq!(decode_bounded::<String>(&ok).unwrap().0, "hello");
        let big = vec![7u8; 100_000];
        let encoded = bincode::serde::encode_to_vec(&big, STATE_CODEC).unwrap();
        assert_eq!(decode_bounded::<Vec<u8>>(&encoded).unwrap().0, big);
        // Small integers take one byte each but are counted at their size
        // in memory: the worst case must still decode.
        let wide = vec![1u128; 100_000];
        let encoded = bincode::serde::encode_to_vec(&wide, STATE_CODEC).unwrap();
        assert_eq!(decode_bounded::<Vec<u128>>(&encoded).unwrap().0, wide);
    }

    #[test]
    fn progress_is_reported_per_percent_and_completes() {
        let mut seen = Vec::new();
        {
            let mut report = |done, total| seen.push((done, total));
            let mut progress = Progress::new(PROGRESS_MIN_BYTES * 2, &mut report);
            for _ in 0..1000 {
                progress.add(PROGRESS_MIN_BYTES / 1000);
            }
            progress.finish();
        }
        assert!(seen.len() >= 50 && seen.len() <= 101, "{}", seen.len());
        assert!(seen.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(
            seen.last(),
            Some(&(PROGRESS_MIN_BYTES * 2, PROGRESS_MIN_BYTES * 2))
        );
        let mut small = Vec::new();
        {
            let mut report = |done, total| small.push((done, total));
            let mut progress = Progress::new(1 << 20, &mut report);
            progress.add(1 << 20);
            progress.finish();
        }
        assert!(small.is_empty(), "small restores report nothing");
        // A total that is no multiple of a percent still ends on itself.
        let total = PROGRESS_MIN_BYTES + 40;
        let mut ends = Vec::new();
        {
            let mut report = |done, total| ends.push((done, total));
            let mut progress = Progress::new(total, &mut report);
            progress.add(total - 7);
            progress.add(7);
            progress.finish();
        }
        assert_eq!(ends.last(), Some(&(total, total)));
        assert_eq!(ends.iter().filter(|e| e.0 == total).count(), 1);
    }
}
