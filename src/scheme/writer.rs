//! Persisting one captured checkpoint: choose full or incremental, plan which
//! chunks to write and which to reuse, write the packs, then the manifest.

use super::chunking::{cut_content_defined, cut_fixed};
use super::packs::store_packs;
use super::{CheckpointId, Scheme, WriterConfig};
use crate::error::{Error, Result};
use crate::format::pack::chunk_hash;
use crate::format::{ChunkRef, MAX_MANIFEST_BYTES, Manifest, SegmentEntry, SegmentKind};
use crate::state::{CapturedSegment, PageSnapshot, SegmentData};
use crate::storage::Storage;
use crate::trace;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One captured checkpoint waiting to be persisted.
#[derive(Debug)]
pub(crate) struct Job {
    pub ident: CheckpointId,
    pub segments: Vec<CapturedSegment>,
    /// Time the caller spent capturing.
    pub capture_time: Duration,
    /// True when persisting runs beside the computation (copy-on-write),
    /// so persist time is not part of the stall.
    pub background: bool,
    /// The checkpoint's span: the parent of its `persist` span, on
    /// whichever thread that runs.
    #[cfg_attr(
        not(feature = "tracing"),
        expect(dead_code, reason = "a zero-sized placeholder without tracing")
    )]
    pub span: trace::Span,
}

impl Job {
    /// Pages of the paged segments, and how many of them are dirty.
    pub(crate) fn pages(&self) -> (usize, usize) {
        let snapshots = self.segments.iter().filter_map(|s| match &s.data {
            SegmentData::Pages(snapshot) => Some(snapshot),
            SegmentData::Serde(_) => None,
        });
        snapshots.fold((0, 0), |(pages, dirty), s| {
            (
                pages + s.dirty.len(),
                dirty + s.dirty.iter().filter(|d| **d).count(),
            )
        })
    }
}

/// What persisting one checkpoint wrote: the facts the checkpointer's
/// commit report is made of.
#[derive(Debug)]
pub(crate) struct Written {
    /// The committed manifest (also the base of the next increment).
    pub manifest: Arc<Manifest>,
    /// True when this checkpoint is a full base.
    pub full: bool,
    /// Decoded size of the chunks this checkpoint stored.
    pub changed_bytes: u64,
    /// Decoded size of the chunks the previous checkpoint did not hold.
    pub dirty_bytes: u64,
    /// Packs plus manifest, in bytes.
    pub bytes_written: u64,
    /// Time the caller spent capturing.
    pub capture_time: Duration,
    /// Time spent writing packs and manifest.
    pub persist: Duration,
    /// True when it was persisted beside the computation.
    pub background: bool,
}

/// Where a planned chunk's reference comes from.
#[derive(Debug, Clone, Copy)]
enum Slot {
    /// An existing chunk, already durable.
    Reuse(ChunkRef),
    /// Entry `n` of the chunks to encode and write now.
    Fresh(usize),
}

/// Segments with a slot per chunk, and the new chunks to write.
#[derive(Debug, Default)]
struct Plan<'a> {
    segments: Vec<(String, SegmentKind, u64, Vec<Slot>)>,
    fresh: Vec<&'a [u8]>,
    fresh_by_hash: HashMap<u128, usize>,
}

impl<'a> Plan<'a> {
    /// Plans `piece`: reused when `known` holds its hash (or an identical
    /// piece is already planned), otherwise written. With `known` = `None`
    /// every piece is written.
    fn place(&mut self, piece: &'a [u8], known: Option<&HashMap<u128, ChunkRef>>) -> Slot {
        let Some(known) = known else {
            self.fresh.push(piece);
            return Slot::Fresh(self.fresh.len() - 1);
        };
        let hash = chunk_hash(piece);
        if let Some(existing) = known.get(&hash) {
            return Slot::Reuse(*existing);
        }
        let next = self.fresh.len();
        let index = *self.fresh_by_hash.entry(hash).or_insert(next);
        if index == next {
            self.fresh.push(piece);
        }
        Slot::Fresh(index)
    }
}

/// Persists jobs in order, remembering the last manifest to diff against.
#[derive(Debug)]
pub(crate) struct Writer {
    storage: Arc<dyn Storage>,
    config: WriterConfig,
    previous: Option<Arc<Manifest>>,
    /// Longest manifest payload written: what a reader accepts.
    max_manifest: usize,
}

impl Writer {
    pub(crate) fn new(storage: Arc<dyn Storage>, config: WriterConfig) -> Self {
        Writer {
            storage,
            config,
            previous: None,
            max_manifest: MAX_MANIFEST_BYTES,
        }
    }

    /// Changes the scheme and chain bound from the next checkpoint on.
    pub(crate) fn set_plan(&mut self, scheme: Scheme, max_chain: u32) {
        self.config.scheme = scheme;
        self.config.max_chain = max_chain.max(1);
    }

    /// Makes `manifest` (durable and verified by a restore) the base of
    /// the next incremental checkpoint.
    pub(crate) fn resume_from(&mut self, manifest: Manifest) {
        self.previous = Some(Arc::new(manifest));
    }

    /// Writes one checkpoint: packs first, manifest last.
    /// A manifest larger than a reader accepts is refused
    /// ([`Error::InvalidConfig`]) and nothing is committed; the packs
    /// already written are collected as unreferenced by a later retention.
    pub(crate) fn persist(&mut self, job: Job) -> Result<Written> {
        let span = trace::debug_span!(parent: &job.span, "persist", step = job.ident.step, scheme = %job.ident.scheme, packs = trace::Empty, bytes = trace::Empty, took = trace::Empty).entered();
        let started = Instant::now();
        let base = self
            .previous
            .as_deref()
            .filter(|p| self.config.scheme != Scheme::Full && p.chain_len < self.config.max_chain);
        let known = base.map(known_chunks);
        let plan = plan(&job.segments, base, known.as_ref(), &self.config)?;
        let changed_bytes = plan.fresh.iter().map(|p| p.len() as u64).sum();
        let stored = store_packs(self.storage.as_ref(), &plan.fresh, self.config.write)?;
        let dirty_bytes = match (&known, &self.previous) {
            (Some(known), _) => new_bytes(&stored.refs, known),
            (None, Some(previous)) => new_bytes(&stored.refs, &known_chunks(previous)),
            (None, None) => changed_bytes,
        };
        let segments = resolve(plan.segments, &stored.refs)?;
        let mut bytes_written = stored.bytes;
        let ident = job.ident;
        let manifest = Manifest {
            seq: ident.seq,
            step: ident.step,
            id: ident.id,
            scheme: ident.scheme.code(),
            created_unix_ms: ident.created_unix_ms,
            chain_len: base.map_or(1, |b| b.chain_len + 1),
            stored_bytes: bytes_written,
            segments,
        };
        let encoded_manifest = manifest.encode(self.max_manifest)?;
        self.storage
            .put(&manifest.name().key(), &encoded_manifest)?;
        bytes_written += encoded_manifest.len() as u64;
        let manifest = Arc::new(manifest);
        let written = Written {
            manifest: manifest.clone(),
            full: base.is_none(),
            changed_bytes,
            dirty_bytes,
            bytes_written,
            capture_time: job.capture_time,
            persist: started.elapsed(),
            background: job.background,
        };
        trace::record!(span, packs = stored.packs, bytes = bytes_written, took = ?written.persist);
        self.previous = Some(manifest);
        Ok(written)
    }
}

/// Decoded size of the `fresh` chunks whose content `known` lacks.
fn new_bytes(fresh: &[ChunkRef], known: &HashMap<u128, ChunkRef>) -> u64 {
    fresh
        .iter()
        .filter(|c| !known.contains_key(&c.hash))
        .map(|c| u64::from(c.raw_len))
        .sum()
}

/// Every chunk a manifest references, by content hash.
fn known_chunks(manifest: &Manifest) -> HashMap<u128, ChunkRef> {
    manifest
        .segments
        .iter()
        .flat_map(|s| s.chunks.iter().map(|c| (c.hash, *c)))
        .collect()
}

fn plan<'a>(
    segments: &'a [CapturedSegment],
    base: Option<&Manifest>,
    known: Option<&HashMap<u128, ChunkRef>>,
    config: &WriterConfig,
) -> Result<Plan<'a>> {
    let mut plan = Plan::default();
    for segment in segments {
        let (kind, logical_len, slots) = match &segment.data {
            SegmentData::Serde(bytes) => {
                let pieces = match config.scheme {
                    Scheme::Full => cut_fixed(bytes, config.write.chunk_size),
                    _ => cut_content_defined(bytes, config.cdc_average),
                };
                let slots = pieces.into_iter().map(|p| plan.place(p, known)).collect();
                let kind = SegmentKind::SerdeOf {
                    type_name: segment.type_name.to_owned(),
                };
                (kind, bytes.len() as u64, slots)
            }
            SegmentData::Pages(snapshot) => {
                let previous =
                    base.and_then(|b| b.segments.iter().find(|s| s.name == segment.name));
                let slots = plan_pages(&mut plan, &segment.name, snapshot, previous, known)?;
                let kind = SegmentKind::PagesOf {
                    elem_size: u32::try_from(snapshot.elem_size).unwrap_or(u32::MAX),
                    elem_type: snapshot.elem_type.to_owned(),
                    page_len: snapshot.page_len as u64,
                    len: snapshot.len as u64,
                };
                let bytes = snapshot.len as u64 * snapshot.elem_size as u64;
                (kind, bytes, slots)
            }
        };
        plan.segments
            .push((segment.name.clone(), kind, logical_len, slots));
    }
    Ok(plan)
}

/// Clean pages reuse the previous checkpoint's chunk for the same page;
/// dirty pages are hashed and written only if their content is new.
fn plan_pages<'a>(
    plan: &mut Plan<'a>,
    name: &str,
    snapshot: &'a PageSnapshot,
    previous: Option<&SegmentEntry>,
    known: Option<&HashMap<u128, ChunkRef>>,
) -> Result<Vec<Slot>> {
    let same_layout = previous.filter(|p| {
        p.kind.page_layout().is_some_and(|layout| {
            layout.elem_size as usize == snapshot.elem_size
                && layout.page_len == snapshot.page_len as u64
        })
    });
    let mut slots = Vec::with_capacity(snapshot.dirty.len());
    for (page, dirty) in snapshot.dirty.iter().enumerate() {
        let bytes = snapshot.pages.page_bytes(page).ok_or_else(|| {
            Error::serialize(name, format!("page {page} is missing from the snapshot"))
        })?;
        let unchanged = same_layout
            .filter(|_| !dirty)
            .and_then(|p| p.chunks.get(page))
            .filter(|c| c.raw_len as usize == bytes.len());
        slots.push(match unchanged {
            Some(chunk) => Slot::Reuse(*chunk),
            None => plan.place(bytes, known),
        });
    }
    Ok(slots)
}

fn resolve(
    planned: Vec<(String, SegmentKind, u64, Vec<Slot>)>,
    fresh: &[ChunkRef],
) -> Result<Vec<SegmentEntry>> {
    planned
        .into_iter()
        .map(|(name, kind, logical_len, slots)| {
            let chunks = slots
                .into_iter()
                .map(|slot| match slot {
                    Slot::Reuse(chunk) => Some(chunk),
                    Slot::Fresh(n) => fresh.get(n).copied(),
                })
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    Error::serialize(&name, "internal: a planned chunk was not encoded")
                })?;
            Ok(SegmentEntry {
                name,
                kind,
                logical_len,
                chunks,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::layout::{MANIFESTS, PACKS};
    use crate::format::pack::Compression;
    use crate::scheme::WriteOptions;
    use crate::storage::MemStorage;

    fn writer(storage: &MemStorage, chunk_size: usize, max_manifest: usize) -> Writer {
        let config = WriterConfig {
            scheme: Scheme::Full,
            write: WriteOptions {
                compression: Compression::Off,
                chunk_size,
                threads: 1,
            },
            cdc_average: chunk_size,
            max_chain: 10,
        };
        let mut writer = Writer::new(Arc::new(storage.clone()), config);
        writer.max_manifest = max_manifest;
        writer
    }

    fn job(seq: u64) -> Job {
        Job {
            ident: CheckpointId {
                seq,
                step: seq * 10,
                id: u128::from(seq),
                scheme: Scheme::Full,
                created_unix_ms: 0,
            },
            segments: vec![CapturedSegment {
                type_name: "test",
                name: "state".into(),
                data: SegmentData::Serde((0..64 << 10).map(|i| (i % 251) as u8).collect()),
            }],
            capture_time: Duration::ZERO,
            background: false,
            span: trace::Span::none(),
        }
    }

    /// 16 chunks make a manifest of about 700 bytes: refused under a
    /// 500-byte limit, with nothing committed; one chunk fits.
    #[test]
    fn a_manifest_larger_than_a_reader_accepts_is_not_committed() {
        let storage = MemStorage::new();
        let refused = writer(&storage, 4096, 500).persist(job(1));
        match refused {
            Err(Error::InvalidConfig { option, reason }) => {
                assert_eq!(option, "chunk_size");
                assert!(reason.contains("16 chunks"), "{reason}");
                assert!(reason.contains("nothing was committed"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert!(storage.list(MANIFESTS).unwrap().is_empty());
        // The refused checkpoint's pack is left for the retention that
        // follows the next commit (it references none of it).
        let committed = writer(&storage, 64 << 10, 500).persist(job(2)).unwrap();
        assert_eq!(committed.manifest.step, 20);
        assert_eq!(storage.list(MANIFESTS).unwrap().len(), 1);
        assert_eq!(storage.list(PACKS).unwrap().len(), 2);
        assert_eq!(committed.manifest.packs().count(), 1);
    }
}
