//! Format stability: stores written by each released format version, kept
//! under `tests/fixtures/`, still list and restore byte for byte.
//!
//! `tests/fixtures/v1` was written by format version 1 (commit 5b00ea6)
//! with `CKPT_WRITE_FIXTURE=tests/fixtures/v1 cargo test --test
//! format_compat write_fixture -- --ignored`; a new format version adds a
//! directory of its own the same way and keeps the old ones.

mod common;

use ckpt::{Capture, Checkpointer, FsStorage, PagedVec, Restore, Scheme, State};
use common::{copy_dir, mix};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Meta {
    step: u64,
    name: String,
    losses: Vec<f64>,
}

/// A state with one serde segment and one paged segment.
#[derive(Debug, Clone, PartialEq)]
struct Sim {
    meta: Meta,
    grid: Vec<u64>,
}

struct SimState {
    meta: Meta,
    grid: PagedVec<u64>,
}

impl State for SimState {
    fn capture(&mut self, capture: &mut Capture) -> ckpt::Result<()> {
        capture.serde("meta", &self.meta)?;
        capture.paged("grid", &mut self.grid)
    }
    fn restore(restore: &mut Restore) -> ckpt::Result<Self> {
        Ok(SimState {
            meta: restore.serde("meta")?,
            grid: restore.paged("grid")?,
        })
    }
}

/// The state at `step`, recomputable byte for byte.
fn sim(step: u64) -> Sim {
    Sim {
        meta: Meta {
            step,
            name: format!("run-{step}"),
            losses: (0..=step).map(|s| 1.0 / (s + 1) as f64).collect(),
        },
        grid: (0..20_000u64)
            .map(|i| if i % 7 == step % 7 { mix(i ^ step) } else { i })
            .collect(),
    }
}

fn fixture(version: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(version)
}

/// Copies a fixture into a fresh directory, so tests never write to it.
fn copy_of(from: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(from, dir.path());
    dir
}

#[test]
#[ignore = "writes a fixture; run by hand when the format version changes"]
fn write_fixture() {
    let Ok(target) = std::env::var("CKPT_WRITE_FIXTURE") else {
        return;
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(target);
    std::fs::create_dir_all(&dir).unwrap();
    let mut ck = Checkpointer::builder()
        .storage(FsStorage::open(&dir).unwrap())
        .scheme(Scheme::Incremental)
        .max_chain(4)
        .keep_last(8)
        .chunk_size(4096)
        .compression_level(1)
        .build()
        .unwrap();
    let mut state = SimState {
        meta: sim(0).meta,
        grid: PagedVec::from_slice_with_page_len(&sim(0).grid, 1024),
    };
    for step in 0..6 {
        let next = sim(step);
        state.meta = next.meta;
        for (i, value) in next.grid.iter().enumerate() {
            if state.grid[i] != *value {
                state.grid[i] = *value;
            }
        }
        ck.checkpoint(step, &mut state).unwrap();
    }
    ck.finish().unwrap();
    let _ = std::fs::remove_file(dir.join(".lock"));
}

#[test]
fn format_v1_stores_list_and_restore() {
    let dir = copy_of(&fixture("v1"));
    let mut ck = Checkpointer::builder()
        .storage(FsStorage::open(dir.path()).unwrap())
        .build()
        .unwrap();
    let listing = ck.list().unwrap();
    assert_eq!(listing.checkpoints.len(), 6, "{listing:?}");
    assert!(listing.unreadable.is_empty(), "{listing:?}");
    let restored = ck.restore_latest::<SimState>().unwrap().unwrap();
    assert_eq!(restored.step, 5);
    assert!(restored.info.chain_len > 1, "the newest is an increment");
    let expected = sim(5);
    assert_eq!(restored.state.meta, expected.meta);
    assert_eq!(restored.state.grid.to_vec(), expected.grid);
}
