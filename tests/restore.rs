//! The restore path: paged states of many packs read with ranged,
//! scattered reads on several threads, verified, and placed in the
//! restored vector's memory; damage anywhere in those reads (a flipped
//! byte, a truncated or missing pack) falls back to an older checkpoint,
//! never to wrong bytes; types are checked; long restores report progress;
//! and a [`Reader`] restores without writing.
//!
//! Set `CKPT_RESTORE_SEED` to replay another seed.

mod common;

use ckpt::model::{Event, RestoreProgressEvent};
use ckpt::{Capture, Checkpointer, Error, FsStorage, PagedVec, Reader, Restore, Scheme, State};
use common::{copy_dir, mix};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Elements of the big state: 3 Mi `u64`, 24 MiB in 384 pages of 64 KiB,
/// so a checkpoint spans several packs and a restore several runs.
const ELEMS: usize = 3 << 20;

/// A paged state with zero pages (stored once and shared by reference),
/// compressible pages and incompressible ones, so a restore meets raw
/// frames read in place, compressed frames decoded, and duplicates.
fn grid(step: u64) -> Vec<u64> {
    (0..ELEMS as u64)
        .map(|i| match (i / 8192) % 4 {
            0 => 0,
            1 => i / 64 + step,
            _ => mix(i ^ (step << 40)),
        })
        .collect()
}

struct Sim {
    step: u64,
    grid: PagedVec<u64>,
}

impl State for Sim {
    fn capture(&mut self, capture: &mut Capture) -> ckpt::Result<()> {
        capture.serde("step", &self.step)?;
        capture.paged("grid", &mut self.grid)
    }
    fn restore(restore: &mut Restore) -> ckpt::Result<Self> {
        Ok(Sim {
            step: restore.serde("step")?,
            grid: restore.paged("grid")?,
        })
    }
}

/// Writes checkpoints of steps 0..3 (each changing a few pages) and
/// returns the grids they hold, and the packs the last one wrote.
fn write_store(dir: &Path, scheme: Scheme, level: i32) -> (Vec<Vec<u64>>, Vec<PathBuf>) {
    let mut ck = Checkpointer::builder()
        .storage(FsStorage::open(dir).unwrap())
        .scheme(scheme)
        .compression_level(level)
        .keep_last(10)
        .build()
        .unwrap();
    let mut sim = Sim {
        step: 0,
        grid: PagedVec::from_vec(grid(0)),
    };
    let mut states = Vec::new();
    let mut before_last = Vec::new();
    for step in 0..3 {
        if step == 2 {
            ck.flush().unwrap();
            before_last = files_under(dir, "packs");
        }
        if step > 0 {
            sim.step = step;
            let next = grid(step);
            // Every fifth page changes (in the compressible quarter and the
            // random halves alike).
            for page in (0..ELEMS / 8192).step_by(5) {
                let range = page * 8192..(page + 1) * 8192;
                sim.grid.write_at(range.start, next.get(range).unwrap());
            }
        }
        ck.checkpoint(step, &mut sim).unwrap();
        states.push(sim.grid.to_vec());
    }
    ck.finish().unwrap();
    let newest = files_under(dir, "packs")
        .into_iter()
        .filter(|p| !before_last.contains(p))
        .collect();
    (states, newest)
}

fn files_under(dir: &Path, sub: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(sub))
        .map(|entries| entries.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn big_paged_states_restore_exactly_through_every_scheme_and_codec() {
    for (scheme, level) in [
        (Scheme::Full, 0),
        (Scheme::Full, 1),
        (Scheme::Incremental, 1),
        (Scheme::CopyOnWrite, 0),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (states, _) = write_store(dir.path(), scheme, level);
        assert!(files_under(dir.path(), "packs").len() >= 2, "several packs");
        let reader = Reader::open_dir(dir.path()).unwrap();
        let newest = reader.restore_latest::<Sim>().unwrap().unwrap();
        assert_eq!(newest.step, 2);
        assert!(
            newest.state.grid.to_vec() == states[2],
            "{scheme:?} level {level}"
        );
        assert_eq!(newest.state.grid.dirty_page_count(), 0);
        for (step, expected) in states.iter().enumerate() {
            let older = reader.restore_at::<Sim>(step as u64).unwrap().unwrap();
            assert!(older.state.grid.to_vec() == *expected, "step {step}");
            reader.verify_step(step as u64).unwrap();
        }
        assert!(reader.restore_at::<Sim>(99).unwrap().is_none());
    }
}

#[test]
fn damage_in_any_frame_falls_back_and_never_gives_wrong_bytes() {
    let mut rng = StdRng::seed_from_u64(common::seed("CKPT_RESTORE_SEED", 0x5EED_2E57));
    let pristine = tempfile::tempdir().unwrap();
    let (states, newest) = write_store(pristine.path(), Scheme::Incremental, 1);
    assert!(!newest.is_empty());
    for trial in 0..12 {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(pristine.path(), dir.path());
        let packed = &newest[rng.random_range(0..newest.len())];
        let victim = &dir.path().join("packs").join(packed.file_name().unwrap());
        let len = std::fs::metadata(victim).unwrap().len();
        let what = match trial % 3 {
            0 => {
                let mut bytes = std::fs::read(victim).unwrap();
                let at = rng.random_range(16..len as usize);
                bytes[at] ^= 1 << rng.random_range(0..8);
                std::fs::write(victim, bytes).unwrap();
                format!("flip at {at}")
            }
            1 => {
                let cut = rng.random_range(0..len);
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(victim)
                    .unwrap();
                file.set_len(cut).unwrap();
                format!("truncate to {cut}")
            }
            _ => {
                std::fs::remove_file(victim).unwrap();
                "delete".to_owned()
            }
        };
        let mut ck = Checkpointer::builder()
            .storage(FsStorage::open(dir.path()).unwrap())
            .build()
            .unwrap();
        let restored = ck.restore_latest::<Sim>().unwrap().unwrap();
        let grid = restored.state.grid.to_vec();
        assert!(
            grid == states[restored.step as usize],
            "trial {trial} ({what}): wrong bytes"
        );
        let reader = Reader::new(FsStorage::open_read_only(dir.path()).unwrap());
        let verified = reader.verify_step(2);
        if restored.step == 2 {
            // Only a flip in a raw frame's CRC field is harmless: the
            // content hash vouches for the bytes.
            assert!(trial % 3 == 0, "trial {trial} ({what}): damage restored");
            assert!(restored.skipped.is_empty() && verified.is_ok());
        } else {
            assert_eq!(restored.skipped.len(), 1, "trial {trial} ({what})");
            let err = verified.unwrap_err();
            assert!(err.is_damage(), "trial {trial} ({what}): {err}");
        }
    }
}

#[test]
fn elements_of_another_type_are_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let mut ck = Checkpointer::builder()
        .storage(FsStorage::open(dir.path()).unwrap())
        .build()
        .unwrap();
    let mut floats: PagedVec<f64> = PagedVec::from_vec(vec![1.5; 10_000]);
    ck.checkpoint(0, &mut floats).unwrap();
    ck.finish().unwrap();
    let reader = Reader::open_dir(dir.path()).unwrap();
    match reader.restore_latest::<PagedVec<u64>>() {
        Err(Error::StateMismatch { reason, .. }) => {
            assert!(reason.contains("f64") && reason.contains("u64"), "{reason}");
        }
        other => panic!("f64 pages restored as u64: {other:?}"),
    }
    match reader.restore_latest::<PagedVec<u32>>() {
        Err(Error::StateMismatch { .. }) => {}
        other => panic!("8-byte elements restored as 4-byte ones: {other:?}"),
    }
    /// The same pages, asked for as a renamed element type.
    struct Renamed(PagedVec<u64>);
    impl State for Renamed {
        fn capture(&mut self, capture: &mut Capture) -> ckpt::Result<()> {
            capture.paged(ckpt::DEFAULT_SEGMENT, &mut self.0)
        }
        fn restore(restore: &mut Restore) -> ckpt::Result<Self> {
            restore
                .paged_reinterpret(ckpt::DEFAULT_SEGMENT)
                .map(Renamed)
        }
    }
    let bits = reader.restore_latest::<Renamed>().unwrap().unwrap();
    assert_eq!(bits.state.0[7], 1.5f64.to_bits());
}

#[test]
fn a_serde_type_of_another_name_is_restored_and_reported() {
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Before {
        id: u64,
        data: Vec<u8>,
    }
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct After {
        id: u64,
        data: Vec<u8>,
    }
    #[derive(Serialize, Deserialize, Debug)]
    struct Other {
        name: String,
        data: Vec<u8>,
    }
    let dir = tempfile::tempdir().unwrap();
    let mut ck = Checkpointer::builder()
        .storage(FsStorage::open(dir.path()).unwrap())
        .build()
        .unwrap();
    let mut before = Before {
        id: 0x00FF_FFFF_FFFF,
        data: vec![3; 100],
    };
    ck.checkpoint(0, &mut before).unwrap();
    ck.finish().unwrap();
    let reader = Reader::open_dir(dir.path()).unwrap();
    let same = reader.restore_latest::<Before>().unwrap().unwrap();
    assert!(same.type_changes.is_empty());
    let renamed = reader.restore_latest::<After>().unwrap().unwrap();
    assert_eq!(renamed.state.data, before.data);
    assert_eq!(renamed.type_changes.len(), 1);
    assert!(renamed.type_changes[0].written_as.ends_with("Before"));
    assert!(renamed.type_changes[0].restored_as.ends_with("After"));
    // The id's bytes read as a string length would ask for a terabyte.
    match reader.restore_latest::<Other>() {
        Err(Error::StateMismatch { .. }) => {}
        other => panic!("another shape decoded: {other:?}"),
    }
}

#[test]
fn a_long_restore_reports_progress_to_subscribers() {
    let dir = tempfile::tempdir().unwrap();
    let mut big: PagedVec<u64> = PagedVec::from_vec((0..10u64 << 20).map(mix).collect());
    let mut ck = Checkpointer::builder()
        .storage(FsStorage::open(dir.path()).unwrap())
        .compression_level(0)
        .build()
        .unwrap();
    ck.checkpoint(0, &mut big).unwrap();
    ck.finish().unwrap();
    let mut ck = Checkpointer::builder()
        .storage(FsStorage::open(dir.path()).unwrap())
        .build()
        .unwrap();
    let events = ck.subscribe();
    let restored = ck.restore_latest::<PagedVec<u64>>().unwrap().unwrap();
    assert!(restored.state == big);
    let progress: Vec<RestoreProgressEvent> = events
        .try_iter()
        .filter_map(|e| match e {
            Event::RestoreProgress(p) => Some(p),
            _ => None,
        })
        .collect();
    // One report per percent, but no finer than one read (up to 32 MiB).
    assert!(progress.len() >= 3, "{} progress events", progress.len());
    assert!(
        progress
            .windows(2)
            .all(|w| w[0].bytes_done < w[1].bytes_done)
    );
    let last = progress.last().unwrap();
    assert_eq!(last.bytes_done, last.bytes_total);
    assert!(last.bytes_total >= 80 << 20);
    // The reader's callback sees the same.
    let (sender, received) = std::sync::mpsc::channel();
    let reader = Reader::open_dir(dir.path())
        .unwrap()
        .on_progress(move |p| sender.send(*p).unwrap());
    reader.verify_step(0).unwrap();
    assert_eq!(received.try_iter().last(), Some(*last));
}

#[test]
fn a_reader_restores_beside_a_running_writer_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut ck = Checkpointer::builder()
        .storage(FsStorage::open(dir.path()).unwrap())
        .build()
        .unwrap();
    let mut state = vec![7u32; 50_000];
    ck.checkpoint(4, &mut state).unwrap();
    ck.flush().unwrap(); // the writer is quiet (its model state saved too)
    let before = snapshot_tree(dir.path());
    let reader = Reader::open_dir(dir.path()).unwrap();
    let restored = reader.restore_latest::<Vec<u32>>().unwrap().unwrap();
    assert_eq!((restored.step, restored.state), (4, state.clone()));
    let key = reader.list().unwrap().checkpoints[0].key.clone();
    reader.verify(&key).unwrap();
    assert_eq!(reader.restore_key::<Vec<u32>>(&key).unwrap().step, 4);
    assert_eq!(snapshot_tree(dir.path()), before, "the reader wrote");
    // The writer goes on undisturbed.
    ck.checkpoint(5, &mut state).unwrap();
    ck.finish().unwrap();
    assert_eq!(reader.list().unwrap().checkpoints.len(), 2);
}

#[test]
fn a_checkpointer_restores_a_chosen_step_and_continues_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        Checkpointer::builder()
            .storage(FsStorage::open(dir.path()).unwrap())
            .scheme(Scheme::Incremental)
            .keep_last(10)
            .build()
            .unwrap()
    };
    let mut ck = open();
    let mut grid: PagedVec<u32> = PagedVec::from_vec(vec![0; 100_000]);
    for step in 0..4u32 {
        grid[step as usize * 20_000] = step + 1;
        ck.checkpoint(u64::from(step), &mut grid).unwrap();
    }
    ck.finish().unwrap();
    let mut ck = open();
    let mut back = ck.restore_at::<PagedVec<u32>>(1).unwrap().unwrap().state;
    assert_eq!((back[0], back[20_000], back[40_000]), (1, 2, 0));
    back[99_999] = 9;
    ck.checkpoint(10, &mut back).unwrap();
    ck.finish().unwrap();
    let newest = Reader::open_dir(dir.path())
        .unwrap()
        .restore_latest::<PagedVec<u32>>()
        .unwrap()
        .unwrap();
    assert_eq!(newest.step, 10);
    assert!(newest.state == back);
}

/// Every file under `dir` with its bytes, and the directory entries.
fn snapshot_tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.push((path.clone(), Vec::new()));
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                out.push((path, bytes));
            }
        }
    }
    out.sort();
    out
}
