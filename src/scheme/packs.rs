//! Storing the new chunks of one checkpoint as packs.
//!
//! A large change is cut into packs of at most about [`MAX_PACK_BYTES`];
//! the next pack is encoded while earlier ones are being stored on their
//! own threads. A pack is never assembled in memory: it is a list of parts
//! (headers, and payloads that borrow the state's bytes or hold their
//! compressed form) that [`Storage::put_parts`] writes one after another.
//! Building each pack in a buffer first cost a copy of every byte (and, in
//! fresh memory, a page fault per 4 KiB), which with compression off made a
//! 64 MiB checkpoint 1.36× slower than a hand-written serialize-and-write.
//!
//! A checkpoint exists once its manifest does, and the manifest is written
//! after every pack has been stored, so more packs per checkpoint change
//! nothing for crash safety: packs of a checkpoint that never committed are
//! unreferenced, and retention removes them like any other.

use super::WriteOptions;
use super::chunking::encode_many;
use crate::error::{Error, Result};
use crate::format::ChunkRef;
use crate::format::layout::pack_key;
use crate::format::pack::{Compression, PackBuilder};
use crate::storage::Storage;
use std::collections::VecDeque;
use std::thread::{Scope, ScopedJoinHandle};

/// Largest pack the writer aims for. Compressed changes are cut smaller
/// under four times this, down to [`MIN_PACK_BYTES`], so that a change of
/// a few tens of MiB is still spread over a few packs whose compression
/// and storing overlap; uncompressed changes always use this size (see
/// [`pack_size_for`]). Measured on this project's 2-core VM with the
/// earlier writer, which copied every chunk into a pack buffer (median
/// ratio of raw write+fsync time to full-checkpoint time): a 64 MiB state
/// as one pack 0.75, in 16 MiB packs 0.97; a 1 GiB state in 64 MiB packs
/// 1.1, in 16 MiB packs 0.79 (each pack costs an fsync, a rename, a
/// directory sync and later a delete). Without that copy there is nothing
/// to overlap when nothing is compressed, and fewer packs won.
const MAX_PACK_BYTES: usize = 64 << 20;

/// Smallest pack the writer cuts a change into; a smaller change is one
/// pack, as there is too little to encode for overlapping to pay.
const MIN_PACK_BYTES: usize = 16 << 20;

/// Packs being stored while the next one is encoded. Two keep the disk
/// busy while one of them waits in fsync and the other copies its bytes
/// into the page cache.
const PUTS_IN_FLIGHT: usize = 2;

/// The packs one checkpoint stored.
#[derive(Debug, Default)]
pub(crate) struct Stored {
    /// One reference per piece, in the order given.
    pub refs: Vec<ChunkRef>,
    /// Bytes of all the packs.
    pub bytes: u64,
    /// How many packs.
    pub packs: usize,
}

/// Encodes `pieces` into packs and stores them; returns when every pack is
/// durable.
pub(crate) fn store_packs(
    storage: &dyn Storage,
    pieces: &[&[u8]],
    options: WriteOptions,
) -> Result<Stored> {
    let total = pieces.iter().map(|p| p.len()).sum();
    store_in_packs_of(storage, pieces, options, pack_size_for(total, options))
}

/// The pack size for a change of `total` bytes. Compressed, a quarter of
/// it, within [`MIN_PACK_BYTES`] and [`MAX_PACK_BYTES`], so compressing one
/// pack overlaps storing the previous ones. Uncompressed there is next to
/// nothing to overlap (a checksum and a hash), and every pack costs an
/// fsync, a rename, a directory sync and later a delete: the largest packs.
fn pack_size_for(total: usize, options: WriteOptions) -> usize {
    match options.compression {
        Compression::Off => MAX_PACK_BYTES,
        Compression::Zstd(_) => (total / 4).clamp(MIN_PACK_BYTES, MAX_PACK_BYTES),
    }
}

fn store_in_packs_of(
    storage: &dyn Storage,
    pieces: &[&[u8]],
    options: WriteOptions,
    target: usize,
) -> Result<Stored> {
    let groups = cut_into_packs(pieces, target);
    let last = groups.len().saturating_sub(1);
    let mut stored = Stored {
        refs: Vec::with_capacity(pieces.len()),
        bytes: 0,
        packs: 0,
    };
    std::thread::scope(|scope| {
        let mut writing = VecDeque::with_capacity(PUTS_IN_FLIGHT);
        for (index, group) in groups.into_iter().enumerate() {
            let pack = build_pack(group, options);
            stored.bytes += pack.len();
            stored.packs += 1;
            stored.refs.extend_from_slice(&pack.refs);
            if index == last {
                put(storage, &pack.pack)?;
            } else {
                if writing.len() == PUTS_IN_FLIGHT
                    && let Some(oldest) = writing.pop_front()
                {
                    finish(oldest)?;
                }
                writing.push_back(spawn_put(scope, storage, pack.pack)?);
            }
        }
        // The manifest may be written only once every pack is durable.
        while let Some(oldest) = writing.pop_front() {
            finish(oldest)?;
        }
        Ok(stored)
    })
}

/// Consecutive runs of pieces in packs of about `target` bytes, split
/// evenly (a piece that crosses a cut stays whole, so a pack can exceed
/// `target` by up to one piece).
fn cut_into_packs<'p, 'a>(pieces: &'p [&'a [u8]], target: usize) -> Vec<&'p [&'a [u8]]> {
    let total: usize = pieces.iter().map(|p| p.len()).sum();
    let packs = total.div_ceil(target.max(1)).max(1);
    let mut groups = Vec::with_capacity(packs);
    let mut rest = pieces;
    let mut done = 0;
    for pack in 1..=packs {
        let cut = (total as u128 * pack as u128 / packs as u128) as usize;
        let mut end = 0;
        let mut next = rest.iter();
        while done < cut {
            let Some(piece) = next.next() else { break };
            done += piece.len();
            end += 1;
        }
        let end = if pack == packs { rest.len() } else { end };
        if end > 0 {
            let (group, tail) = rest.split_at(end);
            groups.push(group);
            rest = tail;
        }
    }
    groups
}

/// A pack of `pieces` and their references. Its parts borrow `pieces`
/// (or hold their compressed forms): nothing is copied before the write.
fn build_pack<'a>(pieces: &[&'a [u8]], options: WriteOptions) -> BuiltPack<'a> {
    let mut pack = PackBuilder::new(rand::random());
    let refs = encode_many(pieces, options)
        .into_iter()
        .map(|chunk| pack.push(chunk))
        .collect();
    BuiltPack { pack, refs }
}

/// A pack ready to store, with the references to its chunks.
struct BuiltPack<'a> {
    pack: PackBuilder<'a>,
    refs: Vec<ChunkRef>,
}

impl BuiltPack<'_> {
    fn len(&self) -> u64 {
        self.pack.len()
    }
}

fn put(storage: &dyn Storage, pack: &PackBuilder<'_>) -> Result<()> {
    storage.put_parts(&pack_key(pack.id()), &pack.parts())
}

/// Stores `pack` on a thread of `scope`.
fn spawn_put<'scope>(
    scope: &'scope Scope<'scope, '_>,
    storage: &'scope dyn Storage,
    pack: PackBuilder<'scope>,
) -> Result<ScopedJoinHandle<'scope, Result<()>>> {
    std::thread::Builder::new()
        .name("ckpt-pack-put".to_owned())
        .spawn_scoped(scope, move || put(storage, &pack))
        .map_err(|e| Error::storage("spawn", "ckpt-pack-put thread", e))
}

/// Waits for a pack being stored; a panic in the storage backend goes on
/// as a panic, exactly as if the pack had been stored on this thread.
fn finish(writing: ScopedJoinHandle<'_, Result<()>>) -> Result<()> {
    match writing.join() {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetch::{check_pack, read_chunk};
    use crate::storage::MemStorage;

    fn options(compression: Compression) -> WriteOptions {
        WriteOptions {
            compression,
            chunk_size: 1 << 20,
            threads: 2,
        }
    }

    #[test]
    fn packs_are_cut_near_the_target_size() {
        let a = [0u8; 40];
        let b = [0u8; 100];
        let pieces: Vec<&[u8]> = vec![&a, &a, &b, &a, &a, &a];
        let sizes: Vec<usize> = cut_into_packs(&pieces, 120)
            .iter()
            .map(|g| g.len())
            .collect();
        // 300 bytes in 3 packs: cut after 100 and 200 bytes, pieces whole.
        assert_eq!(sizes, vec![3, 1, 2]);
        assert!(cut_into_packs(&[], 120).is_empty());
        assert_eq!(cut_into_packs(&pieces, 1).len(), pieces.len());
        assert_eq!(cut_into_packs(&pieces, 1000).len(), 1);
        let pages = vec![&b[..]; 64];
        let even: Vec<usize> = cut_into_packs(&pages, 1600)
            .iter()
            .map(|g| g.len())
            .collect();
        assert_eq!(even, vec![16; 4]);
    }

    #[test]
    fn pack_sizes_follow_the_change() {
        let zstd = options(Compression::Zstd(1));
        assert_eq!(pack_size_for(0, zstd), MIN_PACK_BYTES);
        assert_eq!(pack_size_for(10 << 20, zstd), MIN_PACK_BYTES);
        assert_eq!(pack_size_for(64 << 20, zstd), 16 << 20);
        assert_eq!(pack_size_for(200 << 20, zstd), 50 << 20);
        assert_eq!(pack_size_for(1 << 30, zstd), MAX_PACK_BYTES);
        let off = options(Compression::Off);
        assert_eq!(pack_size_for(64 << 20, off), MAX_PACK_BYTES);
    }

    #[test]
    fn every_piece_reads_back_from_its_pack() {
        let storage = MemStorage::new();
        let data: Vec<Vec<u8>> = (0..300u32)
            .map(|i| (0..(i * 997) % 70_000).map(|j| (i ^ j) as u8).collect())
            .collect();
        let pieces: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
        for compression in [Compression::Off, Compression::Zstd(1)] {
            let stored =
                store_in_packs_of(&storage, &pieces, options(compression), 1 << 20).unwrap();
            assert_eq!(stored.refs.len(), pieces.len());
            let packs: std::collections::BTreeSet<u128> =
                stored.refs.iter().map(|r| r.pack).collect();
            assert!(packs.len() > 5, "10 MB in packs of 1 MiB");
            let mut total = 0;
            for pack in &packs {
                check_pack(&storage, *pack).unwrap();
                total += storage.get(&pack_key(*pack)).unwrap().len() as u64;
            }
            assert_eq!(total, stored.bytes);
            for (piece, chunk) in pieces.iter().zip(&stored.refs) {
                assert_eq!(read_chunk(&storage, chunk).unwrap(), *piece);
            }
        }
    }

    #[test]
    fn nothing_to_store_stores_nothing() {
        let storage = MemStorage::new();
        let stored = store_packs(&storage, &[], options(Compression::Off)).unwrap();
        assert!(stored.refs.is_empty());
        assert_eq!(stored.bytes, 0);
        assert!(storage.list("").unwrap().is_empty());
    }

    #[test]
    fn checkpoints_spanning_packs_restore_and_their_packs_are_collected() {
        use crate::{Checkpointer, PagedVec, Scheme};
        let len = (2 * MIN_PACK_BYTES + MIN_PACK_BYTES / 2) / 8;
        let values: Vec<f64> = (0..len).map(|i| i as f64 * 0.5).collect();
        let mut state = PagedVec::from_vec(values);
        let packs = |store: &MemStorage| store.list("packs/").unwrap().len();

        let store = MemStorage::new();
        let mut ck = Checkpointer::builder()
            .storage(store.clone())
            .scheme(Scheme::Incremental)
            .compression_level(1)
            .keep_last(1)
            .build()
            .unwrap();
        ck.checkpoint(1, &mut state).unwrap();
        assert_eq!(
            packs(&store),
            3,
            "a base of 40 MiB is stored as three packs"
        );
        state[7] = -1.0;
        let committed = ck.checkpoint(2, &mut state).unwrap().unwrap().clone();
        assert!(!committed.full);
        assert_eq!(packs(&store), 4, "the increment keeps every base pack");
        ck.finish().unwrap();
        let mut reopened = Checkpointer::builder().storage(store).build().unwrap();
        let restored = reopened.restore_latest::<PagedVec<f64>>().unwrap().unwrap();
        assert_eq!(restored.step, 2);
        assert!(restored.state == state);

        let store = MemStorage::new();
        let mut ck = Checkpointer::builder()
            .storage(store.clone())
            .compression_level(1)
            .keep_last(1)
            .build()
            .unwrap();
        ck.checkpoint(1, &mut state).unwrap();
        ck.checkpoint(2, &mut state).unwrap();
        assert_eq!(packs(&store), 3, "retention removed every pack of step 1");
    }
}
