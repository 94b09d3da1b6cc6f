//! Reading a checkpoint's chunks into place: the restore's I/O engine.
//!
//! The caller hands over every chunk it wants together with the memory its
//! raw bytes must end up in (a page of the restored vector, a slice of a
//! serde segment's buffer). Chunks are sorted by pack and offset and
//! neighbouring frames are joined into *runs*: one ranged read of up to
//! [`MAX_RUN_BYTES`] each, scattered with [`Storage::read_into`] so that a
//! frame stored raw lands straight in its destination (its header in a
//! 16-byte buffer beside it) and only compressed payloads and small gaps
//! between wanted frames pass through a temporary buffer. Runs are read,
//! verified (CRC32 of the frame, xxh3-128 of the raw bytes) and
//! decompressed on several threads at once.
//!
//! A chunk several destinations share (identical pages stored once) is
//! read once and copied to the others.

use crate::error::{Error, Result};
use crate::format::ChunkRef;
use crate::format::layout::pack_key;
use crate::format::pack::{
    FRAME_HEADER_LEN, PACK_HEADER_LEN, stored_len, stored_raw, verify_frame_in_place,
    verify_pack_header,
};
use crate::storage::Storage;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, mpsc};

/// Largest ranged read: large enough that a read costs its bytes, not its
/// round trip (an object store's request costs milliseconds: 8 MiB reads
/// restored at half the bandwidth of whole-pack GETs, 32 MiB ones at
/// three quarters, measured against SeaweedFS); small enough that a
/// backend without scattered reads, which buffers the range, holds
/// little per thread.
const MAX_RUN_BYTES: u64 = 32 << 20;

/// Fewest reader threads (see [`reader_threads`]).
const MIN_THREADS: usize = 8;

/// Most reader threads: enough to keep a fast device or an object store's
/// connections busy; beyond this the memory bus is the limit.
const MAX_THREADS: usize = 16;

/// One wanted chunk and where its raw bytes go.
pub(crate) struct Wanted<'a> {
    /// The chunk.
    pub chunk: ChunkRef,
    /// Exactly `chunk.raw_len` bytes to fill.
    pub dest: &'a mut [u8],
}

/// One frame of a run: its chunk and every destination that wants it.
struct Frame<'a> {
    chunk: ChunkRef,
    dests: Vec<&'a mut [u8]>,
}

/// Frames of one pack read with one ranged read.
struct Run<'a> {
    pack: u128,
    start: u64,
    /// The run begins at the pack's first frame, so it reads the pack's
    /// header too (one request fewer than checking it apart).
    with_header: bool,
    frames: Vec<Frame<'a>>,
}

impl Run<'_> {
    /// The first byte the run reads: the pack's start when it reads the
    /// pack header too, else its first frame.
    fn first_byte(&self) -> u64 {
        if self.with_header { 0 } else { self.start }
    }

    fn end(&self) -> u64 {
        self.frames
            .last()
            .map_or(self.start, |f| f.chunk.offset + u64::from(f.chunk.len))
    }
}

/// Reads every wanted chunk into its destination, verified, reporting the
/// stored bytes read so far to `progress` as runs complete (on the calling
/// thread). On error, nothing is known about the destinations' contents.
pub(crate) fn fetch(
    storage: &dyn Storage,
    wanted: Vec<Wanted<'_>>,
    progress: &mut dyn FnMut(u64),
) -> Result<()> {
    for w in &wanted {
        if w.dest.len() != w.chunk.raw_len as usize {
            return Err(Error::corrupt(
                pack_key(w.chunk.pack),
                format!(
                    "chunk at {} holds {} bytes where the layout wants {}",
                    w.chunk.offset,
                    w.chunk.raw_len,
                    w.dest.len()
                ),
            ));
        }
    }
    let runs = plan_runs(wanted, storage.read_gap_bytes());
    let headed: BTreeSet<u128> = runs
        .iter()
        .filter(|r| r.with_header)
        .map(|r| r.pack)
        .collect();
    let packs: BTreeSet<u128> = runs.iter().map(|r| r.pack).collect();
    for pack in packs.difference(&headed) {
        check_pack(storage, *pack)?;
    }
    let threads = reader_threads().min(runs.len());
    if threads <= 1 {
        for run in runs {
            progress(read_run(storage, run)?);
        }
        return Ok(());
    }
    read_in_parallel(storage, runs, threads, progress)
}

/// How many threads read at once: every core, and at least eight,
/// because a read that waits on a device or a network leaves its core
/// idle (a cold 16-long incremental chain, read in thousands of small
/// ranges, restored 1.8× slower than a full checkpoint with 2 or 4
/// threads and 1.5× with 8, on 2 cores).
fn reader_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(MIN_THREADS, usize::from)
        .clamp(MIN_THREADS, MAX_THREADS)
}

/// Sorts the wanted chunks by pack and offset, merges the ones that share
/// a frame, and joins neighbouring frames into runs, reading through at
/// most `max_gap` unwanted bytes between two of them.
fn plan_runs(mut wanted: Vec<Wanted<'_>>, max_gap: u64) -> Vec<Run<'_>> {
    wanted.sort_by_key(|w| (w.chunk.pack, w.chunk.offset, w.chunk.len));
    let mut frames: Vec<Frame<'_>> = Vec::with_capacity(wanted.len());
    for w in wanted {
        match frames.last_mut() {
            Some(last) if last.chunk == w.chunk => last.dests.push(w.dest),
            _ => frames.push(Frame {
                chunk: w.chunk,
                dests: vec![w.dest],
            }),
        }
    }
    let mut runs: Vec<Run<'_>> = Vec::new();
    for frame in frames {
        let chunk = frame.chunk;
        let joins = runs.last().is_some_and(|run| {
            let end = run.end();
            run.pack == chunk.pack
                && chunk.offset >= end
                && chunk.offset - end <= max_gap
                && chunk.offset + u64::from(chunk.len) - run.start <= MAX_RUN_BYTES
        });
        match runs.last_mut() {
            Some(run) if joins => run.frames.push(frame),
            _ => runs.push(Run {
                pack: chunk.pack,
                start: chunk.offset,
                with_header: chunk.offset == PACK_HEADER_LEN as u64,
                frames: vec![frame],
            }),
        }
    }
    runs
}

/// Reads `runs` on `threads` threads; the calling thread reports progress.
fn read_in_parallel(
    storage: &dyn Storage,
    runs: Vec<Run<'_>>,
    threads: usize,
    progress: &mut dyn FnMut(u64),
) -> Result<()> {
    let queue = Mutex::new(runs.into_iter());
    let failed = AtomicBool::new(false);
    let (done, reports) = mpsc::channel::<Result<u64>>();
    std::thread::scope(|scope| {
        for i in 0..threads {
            let sender = done.clone();
            let (queue, failed) = (&queue, &failed);
            let spawned = std::thread::Builder::new()
                .name(format!("ckpt-restore-{i}"))
                .spawn_scoped(scope, move || {
                    while !failed.load(Ordering::Relaxed) {
                        let next = queue
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .next();
                        let Some(run) = next else { break };
                        let result = read_run(storage, run);
                        if result.is_err() {
                            failed.store(true, Ordering::Relaxed);
                        }
                        if sender.send(result).is_err() {
                            break;
                        }
                    }
                });
            if let Err(e) = spawned {
                failed.store(true, Ordering::Relaxed);
                let _ = done.send(Err(Error::storage("restore", "reader thread", e)));
            }
        }
        drop(done);
        let mut first_error = None;
        for report in reports {
            match report {
                Ok(bytes) => progress(bytes),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    })
}

/// Reads one run and verifies (and where needed decompresses) each of its
/// frames into place; returns the bytes read.
fn read_run(storage: &dyn Storage, mut run: Run<'_>) -> Result<u64> {
    let key = pack_key(run.pack);
    let first_byte = run.first_byte();
    let mut pack_header = [0u8; PACK_HEADER_LEN];
    let mut headers = vec![[0u8; FRAME_HEADER_LEN]; run.frames.len()];
    let mut staged: Vec<Vec<u8>> = Vec::with_capacity(run.frames.len());
    let mut gaps: Vec<Vec<u8>> = Vec::with_capacity(run.frames.len());
    let mut at = run.start;
    for frame in &run.frames {
        let chunk = frame.chunk;
        gaps.push(vec![0; usize::try_from(chunk.offset - at).unwrap_or(0)]);
        let staging = if stored_raw(&chunk) {
            0
        } else {
            stored_len(&chunk)
        };
        staged.push(vec![0; staging]);
        at = chunk.offset + u64::from(chunk.len);
    }
    {
        let mut bufs: Vec<&mut [u8]> = Vec::with_capacity(3 * run.frames.len() + 1);
        if run.with_header {
            bufs.push(pack_header.as_mut_slice());
        }
        let parts = run
            .frames
            .iter_mut()
            .zip(headers.iter_mut())
            .zip(staged.iter_mut())
            .zip(gaps.iter_mut());
        for (((frame, header), staging), gap) in parts {
            if !gap.is_empty() {
                bufs.push(gap.as_mut_slice());
            }
            bufs.push(header.as_mut_slice());
            let raw = stored_raw(&frame.chunk);
            match frame.dests.first_mut() {
                Some(dest) if raw => bufs.push(&mut dest[..]),
                _ => bufs.push(staging.as_mut_slice()),
            }
        }
        storage.read_into(&key, first_byte, &mut bufs)?;
    }
    drop(gaps);
    if run.with_header {
        verify_pack_header(&key, &pack_header)?;
    }
    for ((frame, header), staging) in run.frames.iter_mut().zip(&headers).zip(&staged) {
        place_frame(&key, frame, header, staging)?;
    }
    Ok(run.end() - first_byte)
}

/// Verifies one frame read into place and copies it to the destinations
/// that share it.
fn place_frame(key: &str, frame: &mut Frame<'_>, header: &[u8], staging: &[u8]) -> Result<()> {
    let chunk = frame.chunk;
    let Some((first, others)) = frame.dests.split_first_mut() else {
        return Ok(());
    };
    let stored = (!stored_raw(&chunk)).then_some(staging);
    verify_frame_in_place(key, &chunk, header, stored, first)?;
    for other in others {
        other.copy_from_slice(first);
    }
    Ok(())
}

/// Reads and verifies a pack's header from storage.
pub(crate) fn check_pack(storage: &dyn Storage, pack: u128) -> Result<()> {
    let key = pack_key(pack);
    let header = storage.get_range(&key, 0..PACK_HEADER_LEN as u64)?;
    verify_pack_header(&key, &header)
}

/// Reads one chunk from storage and returns its verified raw bytes (the
/// restore path reads many at once: see `crate::fetch`).
#[cfg(test)]
pub(crate) fn read_chunk(storage: &dyn Storage, chunk: &ChunkRef) -> Result<Vec<u8>> {
    let key = pack_key(chunk.pack);
    let end = chunk.offset.checked_add(u64::from(chunk.len));
    let Some(end) = end.filter(|_| chunk.offset >= PACK_HEADER_LEN as u64) else {
        return Err(Error::corrupt(
            &key,
            "chunk reference has an invalid offset",
        ));
    };
    let frame = storage.get_range(&key, chunk.offset..end)?;
    crate::format::pack::decode_frame(&key, &frame, chunk)
}
