//! Property test: for random sequences of mutations, checkpoints, restores
//! and scheme changes, restore yields exactly the state at the restored step.

use ckpt::{Capture, Checkpointer, MemStorage, PagedVec, Restore, Scheme, State};
use proptest::prelude::*;
use std::collections::BTreeMap;

/// A composite application state: serde metadata and two paged regions.
#[derive(Debug, Clone, PartialEq)]
struct Sim {
    log: Vec<u8>,
    field: PagedVec<f64>,
    counts: PagedVec<u32>,
}

impl State for Sim {
    fn capture(&mut self, capture: &mut Capture) -> ckpt::Result<()> {
        capture.serde("log", &self.log)?;
        capture.paged("field", &mut self.field)?;
        capture.paged("counts", &mut self.counts)
    }

    fn restore(restore: &mut Restore) -> ckpt::Result<Self> {
        Ok(Sim {
            log: restore.serde("log")?,
            field: restore.paged("field")?,
            counts: restore.paged("counts")?,
        })
    }
}

/// What a test run can do.
#[derive(Debug, Clone)]
enum Op {
    /// Write `value` into `field` at a spread of `n` indices from `at`.
    Scatter { at: usize, n: usize, value: f64 },
    /// Rewrite every element of `counts` through `iter_mut`.
    BumpAllCounts,
    /// Change a page of counts through `page_mut`.
    TouchCountsPage(usize),
    /// Grow or shrink `field`.
    ResizeField(usize),
    /// Insert bytes in the middle of the serde log (shifts what follows).
    InsertLog { at: usize, bytes: Vec<u8> },
    /// Checkpoint now.
    Checkpoint,
    /// Reopen the store with another scheme, restore and continue from it.
    Reopen(SchemeChoice),
}

#[derive(Debug, Clone, Copy)]
enum SchemeChoice {
    Full,
    Incremental,
    CopyOnWrite,
}

impl SchemeChoice {
    fn scheme(self) -> Scheme {
        match self {
            SchemeChoice::Full => Scheme::Full,
            SchemeChoice::Incremental => Scheme::Incremental,
            SchemeChoice::CopyOnWrite => Scheme::CopyOnWrite,
        }
    }
}

fn scheme_choice() -> impl Strategy<Value = SchemeChoice> {
    prop_oneof![
        Just(SchemeChoice::Full),
        Just(SchemeChoice::Incremental),
        Just(SchemeChoice::CopyOnWrite)
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3000usize, 1..40usize, -1e6..1e6f64)
            .prop_map(|(at, n, value)| Op::Scatter { at, n, value }),
        1 => Just(Op::BumpAllCounts),
        2 => (0..20usize).prop_map(Op::TouchCountsPage),
        1 => (0..3000usize).prop_map(Op::ResizeField),
        2 => (0..5000usize, prop::collection::vec(any::<u8>(), 1..50))
            .prop_map(|(at, bytes)| Op::InsertLog { at, bytes }),
        4 => Just(Op::Checkpoint),
        1 => scheme_choice().prop_map(Op::Reopen),
    ]
}

fn open(store: &MemStorage, scheme: SchemeChoice, max_chain: u32, keep: usize) -> Checkpointer {
    Checkpointer::builder()
        .storage(store.clone())
        .scheme(scheme.scheme())
        .max_chain(max_chain)
        .keep_last(keep)
        .chunk_size(4096)
        .build()
        .expect("valid options")
}

fn initial() -> Sim {
    Sim {
        log: (0..3000u32).map(|i| (i * 7 % 251) as u8).collect(),
        field: PagedVec::from_slice_with_page_len(&vec![0.5; 2000], 64),
        counts: PagedVec::from_slice_with_page_len(&(0..1000u32).collect::<Vec<_>>(), 50),
    }
}

fn apply(sim: &mut Sim, op: &Op) {
    match op {
        Op::Scatter { at, n, value } => {
            for k in 0..*n {
                let len = sim.field.len().max(1);
                if let Some(x) = sim.field.get_mut((at + k * 97) % len) {
                    *x = value + k as f64;
                }
            }
        }
        Op::BumpAllCounts => sim.counts.iter_mut().for_each(|c| *c = c.wrapping_add(1)),
        Op::TouchCountsPage(p) => {
            if let Some(page) = sim.counts.page_mut(*p) {
                page[0] ^= 0xdead;
            }
        }
        Op::ResizeField(len) => sim.field.resize(*len, -1.0),
        Op::InsertLog { at, bytes } => {
            let at = at % (sim.log.len() + 1);
            sim.log.splice(at..at, bytes.iter().copied());
        }
        Op::Checkpoint | Op::Reopen(_) => {}
    }
}

/// A state as plain vectors (floats as bits, so NaN compares too).
type Plain = (Vec<u8>, Vec<u64>, Vec<u32>);

fn plain(sim: &Sim) -> Plain {
    let bits = sim.field.iter().map(|x| x.to_bits()).collect();
    (sim.log.clone(), bits, sim.counts.to_vec())
}

fn run(ops: &[Op], first: SchemeChoice, max_chain: u32, keep: usize) {
    let store = MemStorage::new();
    let mut ck = open(&store, first, max_chain, keep);
    let mut sim = initial();
    let mut expected: BTreeMap<u64, Plain> = BTreeMap::new();
    let mut step = 0u64;
    for op in ops {
        apply(&mut sim, op);
        match op {
            Op::Checkpoint => {
                step += 1;
                ck.checkpoint(step, &mut sim).expect("checkpoint");
                expected.insert(step, plain(&sim));
            }
            Op::Reopen(scheme) => {
                ck.finish().expect("finish");
                ck = open(&store, *scheme, max_chain, keep);
                match ck.restore_latest::<Sim>().expect("restore") {
                    Some(restored) => {
                        assert!(restored.skipped.is_empty(), "{:?}", restored.skipped);
                        assert_eq!(restored.step, step, "restore must find the newest step");
                        assert_eq!(plain(&restored.state), expected[&step]);
                        sim = restored.state;
                    }
                    None => assert!(expected.is_empty()),
                }
            }
            _ => {}
        }
    }
    ck.finish().expect("finish");
    let mut ck = open(&store, SchemeChoice::Full, max_chain, keep);
    let restored = ck.restore_latest::<Sim>().expect("final restore");
    match expected.last_key_value() {
        Some((last, state)) => {
            let restored = restored.expect("a checkpoint exists");
            assert_eq!(restored.step, *last);
            assert_eq!(&plain(&restored.state), state);
        }
        None => assert!(restored.is_none()),
    }
    let listing = ck.list().expect("list");
    assert!(listing.unreadable.is_empty(), "{:?}", listing.unreadable);
    assert_eq!(listing.checkpoints.len(), expected.len().min(keep));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn restore_yields_the_state_at_the_restored_step(
        ops in prop::collection::vec(op(), 1..60),
        first in scheme_choice(),
        max_chain in 1u32..6,
        keep in 1usize..4,
    ) {
        run(&ops, first, max_chain, keep);
    }
}

#[test]
fn incremental_writes_only_dirty_pages() {
    let store = MemStorage::new();
    let mut ck = open(&store, SchemeChoice::Incremental, 100, 2);
    let mut grid: PagedVec<f64> = PagedVec::from_slice_with_page_len(&vec![1.0; 1 << 16], 1024);
    let full = ck
        .checkpoint(0, &mut grid)
        .unwrap()
        .expect("a synchronous scheme commits")
        .clone();
    assert!(full.full);
    assert_eq!(full.changed_bytes, 8 << 16);
    grid[5] = 2.0;
    grid[40_000] = 3.0;
    let delta = ck
        .checkpoint(1, &mut grid)
        .unwrap()
        .expect("a synchronous scheme commits")
        .clone();
    assert!(!delta.full);
    assert_eq!(delta.changed_bytes, 2 * 1024 * 8, "two dirty pages");
    // A page written but not changed is recognised by its hash.
    grid.page_mut(10).unwrap();
    let same = ck
        .checkpoint(2, &mut grid)
        .unwrap()
        .expect("a synchronous scheme commits")
        .clone();
    assert_eq!(same.changed_bytes, 0);
}

#[test]
fn copy_on_write_persists_the_captured_state_while_it_changes() {
    let store = MemStorage::new();
    let mut ck = open(&store, SchemeChoice::CopyOnWrite, 4, 3);
    let mut grid: PagedVec<u64> = PagedVec::from_slice_with_page_len(&vec![7; 1 << 18], 4096);
    assert!(ck.checkpoint(1, &mut grid).unwrap().is_none());
    grid.iter_mut().for_each(|x| *x = 9); // races with the background persist
    let committed = ck.flush().unwrap().unwrap().clone();
    assert_eq!(committed.info.step, 1);
    ck.finish().unwrap();
    let mut ck = open(&store, SchemeChoice::Full, 4, 3);
    let restored = ck.restore_latest::<PagedVec<u64>>().unwrap().unwrap();
    assert!(restored.state.iter().all(|x| *x == 7));
}
