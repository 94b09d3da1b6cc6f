//! Decoder fuzz: no stored byte can crash a reader.
//!
//! Small real stores are built once (serde and paged segments, full and
//! incremental schemes, compression on and off, a persisted cost model
//! state, a checkpoint group of two ranks). Each case copies one of them,
//! damages one object — flips bits, truncates it, extends it, replaces it
//! with random bytes, or splices in bytes of another object of the same
//! kind — and runs every reader on the copy: `build()` (which loads the
//! model state), `list()`, `restore_latest` (a group rank's restore for the
//! group store), and then a few checkpoints, which run the cost model on
//! whatever state it loaded. A reader must not panic or abort; it gives
//! back one of the states that were checkpointed (an older one when the
//! newest was damaged) or an error that says "damaged".
//!
//! The default is a short run. The long run (at least a million inputs):
//!
//! ```sh
//! CKPT_FUZZ_CASES=1000000 cargo test --release --test decode_fuzz
//! ```
//!
//! `CKPT_FUZZ_CASES` is the number of cases of each test in this file
//! (default 3 000, a few seconds). Release builds wrap on integer
//! overflow, which hides arithmetic on damaged counters; to catch it too,
//! add `--config 'profile.release.package.ckpt.overflow-checks=true'`
//! (rebuilds only this crate). Each run draws a new seed; a failure is
//! saved to `tests/decode_fuzz.proptest-regressions` and replayed first.

mod common;

use ckpt::model::{
    Advisor, CheckpointEvent, Event, FailureClass, ModelConfig, Plan, Policy, RestartEvent,
    RestoreEvent,
};
use ckpt::{
    Capture, Checkpointer, Error, Group, MemStorage, PagedVec, Restore, Scheme, State, Storage,
};
use common::mix;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config;
use std::sync::OnceLock;
use std::time::Duration;

const CASES_ENV: &str = "CKPT_FUZZ_CASES";
const DEFAULT_CASES: u32 = 3_000;
/// Elements per page of the paged segment (4 KiB pages).
const PAGE_LEN: usize = 512;
const PAGES: usize = 4;
/// Steps checkpointed in every plain store.
const STEPS: [u64; 4] = [10, 20, 30, 40];

fn cases() -> u32 {
    std::env::var(CASES_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

fn config() -> Config {
    Config {
        cases: cases(),
        // A case is already a random walk over a large space; the
        // regression file records what a failure needs to replay.
        max_shrink_iters: 2_000,
        ..Config::default()
    }
}

/// A composite state whose content is a pure function of its step: a
/// serde log and a paged grid, of which one page changes per step.
#[derive(Debug, Clone, PartialEq)]
struct Sim {
    step: u64,
    log: Vec<u8>,
    grid: PagedVec<u64>,
}

impl State for Sim {
    fn capture(&mut self, capture: &mut Capture) -> ckpt::Result<()> {
        capture.serde("meta", &(self.step, &self.log))?;
        capture.paged("grid", &mut self.grid)
    }

    fn restore(restore: &mut Restore) -> ckpt::Result<Self> {
        let (step, log) = restore.serde("meta")?;
        Ok(Sim {
            step,
            log,
            grid: restore.paged("grid")?,
        })
    }
}

fn sim_at(step: u64) -> Sim {
    let log = (0..9_000 + step as usize * 10)
        .map(|i| (mix(i as u64 / 16) % 7) as u8 + (i % 3 == 0) as u8 * step as u8)
        .collect();
    let mut grid: Vec<u64> = (0..(PAGES * PAGE_LEN) as u64).map(mix).collect();
    for s in 1..=step {
        let at = (mix(s) as usize) % grid.len();
        grid[at] = mix(s << 8);
    }
    Sim {
        step,
        log,
        grid: PagedVec::from_slice_with_page_len(&grid, PAGE_LEN),
    }
}

/// One group rank's shard at a step.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Shard {
    rank: u32,
    step: u64,
    values: Vec<u64>,
}

fn shard_at(rank: u32, step: u64) -> Shard {
    Shard {
        rank,
        step,
        values: (0..1_200)
            .map(|i| mix(u64::from(rank) << 40 ^ step << 20 ^ i))
            .collect(),
    }
}

const RANKS: u32 = 2;
/// Steps every rank of the group store voted for (so they committed).
const GROUP_STEPS: [u64; 3] = [1, 2, 3];
/// A step only rank 0 voted for: it never committed.
const GROUP_PENDING: u64 = 4;

/// A store to damage, and what a reader may give back from it.
struct Fixture {
    objects: Vec<(String, Vec<u8>)>,
    scheme: Scheme,
    compression: i32,
    /// Steps whose state a restore may return.
    steps: Vec<u64>,
    group: bool,
    /// The policy the store was written with (the cost model runs on
    /// whatever state it loads).
    adaptive: bool,
}

impl Fixture {
    fn builder(&self) -> ckpt::CheckpointerBuilder {
        let builder = Checkpointer::builder()
            .scheme(self.scheme)
            .compression_level(self.compression)
            .chunk_size(4096)
            .keep_last(8)
            .threads(1)
            .mtbf(Duration::from_secs(600));
        if self.adaptive {
            builder.policy(Policy::adaptive())
        } else {
            builder
        }
    }

    fn copy(&self) -> MemStorage {
        let store = MemStorage::new();
        for (key, bytes) in &self.objects {
            store.put(key, bytes).unwrap();
        }
        store
    }
}

fn snapshot(store: &MemStorage) -> Vec<(String, Vec<u8>)> {
    let mut keys = store.list("").unwrap();
    keys.sort();
    keys.into_iter()
        .map(|k| {
            let bytes = store.get(&k).unwrap();
            (k, bytes)
        })
        .collect()
}

fn plain_store(scheme: Scheme, compression: i32, adaptive: bool) -> Fixture {
    let mut fixture = Fixture {
        objects: Vec::new(),
        scheme,
        compression,
        steps: STEPS.to_vec(),
        group: false,
        adaptive,
    };
    let store = MemStorage::new();
    let mut ck = fixture.builder().storage(store.clone()).build().unwrap();
    for step in STEPS {
        let mut sim = sim_at(step);
        ck.checkpoint(step, &mut sim).unwrap();
        ck.flush().unwrap();
    }
    ck.finish().unwrap();
    fixture.objects = snapshot(&store);
    assert!(
        fixture.objects.iter().any(|(k, _)| k == "model/advisor"),
        "finish() persists the model state"
    );
    fixture
}

fn group_store() -> Fixture {
    let mut fixture = Fixture {
        objects: Vec::new(),
        scheme: Scheme::Incremental,
        compression: 1,
        steps: GROUP_STEPS.to_vec(),
        group: true,
        adaptive: false,
    };
    let store = MemStorage::new();
    let mut ranks: Vec<Checkpointer> = (0..RANKS)
        .map(|rank| {
            let mut ck = fixture
                .builder()
                .storage(store.clone())
                .group(Group::new(RANKS, rank, "launch-0"))
                .build()
                .unwrap();
            assert!(ck.restore_latest::<Shard>().unwrap().is_none());
            ck
        })
        .collect();
    for step in GROUP_STEPS {
        for (rank, ck) in ranks.iter_mut().enumerate() {
            ck.checkpoint(step, &mut shard_at(rank as u32, step))
                .unwrap();
        }
    }
    ranks[0]
        .checkpoint(GROUP_PENDING, &mut shard_at(0, GROUP_PENDING))
        .unwrap();
    for ck in ranks {
        ck.finish().unwrap();
    }
    fixture.objects = snapshot(&store);
    assert!(
        fixture
            .objects
            .iter()
            .any(|(k, _)| k.starts_with("group/commits/"))
    );
    fixture
}

/// The stores, built once per test binary.
fn fixtures() -> &'static [Fixture] {
    static FIXTURES: OnceLock<Vec<Fixture>> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        vec![
            plain_store(Scheme::Full, 3, false),
            plain_store(Scheme::Incremental, 0, false),
            plain_store(Scheme::Incremental, 1, true),
            group_store(),
        ]
    })
}

/// The kind of an object, for splicing bytes of one object into another.
fn kind_of(key: &str) -> &str {
    let trimmed = key.strip_prefix("shards/").map_or(key, |rest| {
        rest.split_once('/').map_or(rest, |(_, tail)| tail)
    });
    match trimmed.rsplit_once('/') {
        Some((dir, _)) => dir,
        None => trimmed,
    }
}

/// How one object is damaged.
#[derive(Debug, Clone)]
enum Mutation {
    /// Flip these bits (positions modulo the object's length in bits).
    FlipBits(Vec<Index>),
    /// Keep only this share of the object.
    Truncate(Index),
    /// Append bytes.
    Extend(Vec<u8>),
    /// Replace the whole object.
    Replace(Vec<u8>),
    /// Overwrite bytes from an offset on.
    Overwrite(Index, Vec<u8>),
    /// This object's head up to a cut, another object's (same kind) tail
    /// from a cut: headers and lengths look right, contents are wrong.
    Splice {
        other: Index,
        cut: Index,
        from: Index,
    },
    /// Another object of the same kind, whole, under this one's key.
    Swap(Index),
    /// `remove` bytes at an offset replaced by an extreme value: what a
    /// decoder meets when one field of a payload changed.
    Field {
        at: Index,
        remove: usize,
        value: Index,
    },
}

/// Encodings of extreme values: bincode varints (`253` then a `u64`,
/// `252` then a `u32`) and `f64`s.
const EXTREMES: [&[u8]; 12] = [
    &[253, 255, 255, 255, 255, 255, 255, 255, 255],
    &[253, 0, 0, 0, 0, 0, 0, 0, 128],
    &[252, 255, 255, 255, 255],
    &[251, 255, 255],
    &[250],
    &[0],
    &[0, 0, 0, 0, 0, 0, 248, 127],             // NaN
    &[0, 0, 0, 0, 0, 0, 240, 127],             // +inf
    &[0, 0, 0, 0, 0, 0, 240, 255],             // -inf
    &[255, 255, 255, 255, 255, 255, 239, 127], // f64::MAX
    &[0, 0, 0, 0, 0, 0, 0, 128],               // -0.0
    &[0, 0, 0, 0, 0, 0, 240, 191],             // -1.0
];

/// `bytes` with `remove` bytes at `at` replaced by an extreme value.
fn with_field(bytes: &mut Vec<u8>, at: Index, remove: usize, value: Index) {
    let at = at.index(bytes.len() + 1);
    let end = (at + remove).min(bytes.len());
    let value = EXTREMES[value.index(EXTREMES.len())];
    bytes.splice(at..end, value.iter().copied());
}

fn field() -> impl Strategy<Value = (Index, usize, Index)> {
    (any::<Index>(), 1..=9usize, any::<Index>())
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => prop::collection::vec(any::<Index>(), 1..6).prop_map(Mutation::FlipBits),
        2 => any::<Index>().prop_map(Mutation::Truncate),
        1 => prop::collection::vec(any::<u8>(), 1..64).prop_map(Mutation::Extend),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Mutation::Replace),
        2 => (any::<Index>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Overwrite(at, bytes)),
        2 => (any::<Index>(), any::<Index>(), any::<Index>())
            .prop_map(|(other, cut, from)| Mutation::Splice { other, cut, from }),
        1 => any::<Index>().prop_map(Mutation::Swap),
        2 => field().prop_map(|(at, remove, value)| Mutation::Field { at, remove, value }),
    ]
}

/// `mutation` applied to object `target` of `fixture`.
fn damaged(fixture: &Fixture, target: usize, mutation: &Mutation) -> Vec<u8> {
    let (key, original) = &fixture.objects[target];
    let same_kind: Vec<&Vec<u8>> = fixture
        .objects
        .iter()
        .filter(|(k, _)| k != key && kind_of(k) == kind_of(key))
        .map(|(_, bytes)| bytes)
        .collect();
    let mut bytes = original.clone();
    match mutation {
        Mutation::FlipBits(bits) => {
            if !bytes.is_empty() {
                for bit in bits {
                    let bit = bit.index(bytes.len() * 8);
                    bytes[bit / 8] ^= 1 << (bit % 8);
                }
            }
        }
        Mutation::Truncate(len) => bytes.truncate(len.index(bytes.len().max(1))),
        Mutation::Extend(tail) => bytes.extend_from_slice(tail),
        Mutation::Replace(new) => bytes = new.clone(),
        Mutation::Overwrite(at, new) => {
            let at = at.index(bytes.len() + 1);
            for (i, b) in new.iter().enumerate() {
                match bytes.get_mut(at + i) {
                    Some(slot) => *slot = *b,
                    None => bytes.push(*b),
                }
            }
        }
        Mutation::Splice { other, cut, from } => {
            if !same_kind.is_empty() {
                let other = same_kind[other.index(same_kind.len())];
                bytes.truncate(cut.index(bytes.len() + 1));
                bytes.extend_from_slice(&other[from.index(other.len() + 1)..]);
            }
        }
        Mutation::Swap(other) => {
            if !same_kind.is_empty() {
                bytes = same_kind[other.index(same_kind.len())].clone();
            }
        }
        Mutation::Field { at, remove, value } => with_field(&mut bytes, *at, *remove, *value),
    }
    bytes
}

/// True for the errors a damaged store may give: "this is damaged".
fn is_damage_report(e: &Error) -> bool {
    matches!(
        e,
        Error::NoUsableCheckpoint { .. }
            | Error::StateMismatch { .. }
            | Error::Corrupt { .. }
            | Error::ShardDamaged { .. }
            | Error::UnsupportedVersion { .. }
            | Error::NotFound { .. }
    )
}

/// Runs every reader on `store`, a damaged copy of `fixture`.
fn read_everything(fixture: &Fixture, store: MemStorage, what: &str) {
    if fixture.group {
        read_group(fixture, store, what);
        return;
    }
    let mut ck = match fixture.builder().storage(store.clone()).build() {
        Ok(ck) => ck,
        Err(e) => {
            assert!(is_damage_report(&e), "{what}: build: {e}");
            return;
        }
    };
    match ck.list() {
        Ok(listing) => {
            for info in &listing.checkpoints {
                assert!(
                    fixture.steps.contains(&info.step),
                    "{what}: listed {info:?}"
                );
            }
        }
        Err(e) => assert!(is_damage_report(&e), "{what}: list: {e}"),
    }
    let next = match ck.restore_latest::<Sim>() {
        Ok(Some(restored)) => {
            assert!(
                fixture.steps.contains(&restored.step),
                "{what}: step {}",
                restored.step
            );
            assert!(
                restored.state == sim_at(restored.step),
                "{what}: wrong state"
            );
            restored.step + 1
        }
        Ok(None) => panic!("{what}: the store holds checkpoints, restore found none"),
        Err(e) => {
            assert!(is_damage_report(&e), "{what}: restore: {e}");
            return;
        }
    };
    // The cost model runs on the state it loaded, and the store takes
    // new checkpoints on top of what restore chose.
    for step in next..next + 2 {
        ck.checkpoint(step, &mut sim_at(step))
            .unwrap_or_else(|e| panic!("{what}: checkpoint after restore: {e}"));
    }
    ck.finish()
        .unwrap_or_else(|e| panic!("{what}: finish: {e}"));
    // A damaged journal object is skipped, never an error.
    let journal = ckpt::Reader::new(store)
        .journal()
        .unwrap_or_else(|e| panic!("{what}: journal: {e}"));
    assert!(
        !journal.is_empty(),
        "{what}: the run after restore is journaled"
    );
}

fn read_group(fixture: &Fixture, store: MemStorage, what: &str) {
    for rank in 0..RANKS {
        let built = fixture
            .builder()
            .storage(store.clone())
            .group(Group::new(RANKS, rank, "launch-1"))
            .build();
        let mut ck = match built {
            Ok(ck) => ck,
            Err(e) => {
                assert!(is_damage_report(&e), "{what}: rank {rank} build: {e}");
                continue;
            }
        };
        if let Err(e) = ck.list() {
            assert!(is_damage_report(&e), "{what}: rank {rank} list: {e}");
        }
        if let Err(e) = ck.newest_global_commit() {
            assert!(is_damage_report(&e), "{what}: rank {rank} newest: {e}");
        }
        match ck.restore_latest::<Shard>() {
            Ok(Some(restored)) => {
                assert!(
                    fixture.steps.contains(&restored.step),
                    "{what}: rank {rank} step {}",
                    restored.step
                );
                assert_eq!(restored.state, shard_at(rank, restored.step), "{what}");
            }
            Ok(None) => panic!("{what}: rank {rank}: the group committed, restore found none"),
            Err(e) => assert!(is_damage_report(&e), "{what}: rank {rank} restore: {e}"),
        }
    }
}

fn fuzz_one(family: usize, target: Index, mutation: &Mutation, only: Option<&str>) {
    let fixture = &fixtures()[family];
    let candidates: Vec<usize> = (0..fixture.objects.len())
        .filter(|&i| only.is_none_or(|p| fixture.objects[i].0.starts_with(p)))
        .collect();
    let target = candidates[target.index(candidates.len())];
    let bytes = damaged(fixture, target, mutation);
    let key = &fixture.objects[target].0;
    let store = fixture.copy();
    store.put(key, &bytes).unwrap();
    read_everything(
        fixture,
        store,
        &format!("family {family}, {key} {mutation:?}"),
    );
}

proptest! {
    #![proptest_config(config())]

    /// Any object of any store, any damage.
    #[test]
    fn damaged_objects_never_crash_a_reader(
        family in 0..4usize,
        target in any::<Index>(),
        mutation in mutation(),
    ) {
        fuzz_one(family, target, &mutation, None);
    }

    /// The cost model's state carries no checksum, so damage to it is
    /// decoded: the model must not crash on whatever it then holds.
    #[test]
    fn damaged_model_state_never_crashes(
        family in 0..3usize,
        target in any::<Index>(),
        mutation in mutation(),
    ) {
        fuzz_one(family, target, &mutation, Some("model/"));
    }

    /// Damage to the journal costs its records, never a checkpoint or a
    /// read.
    #[test]
    fn damaged_journal_never_crashes(
        family in 0..3usize,
        target in any::<Index>(),
        mutation in mutation(),
    ) {
        fuzz_one(family, target, &mutation, Some("journal/"));
    }
}

/// The persisted model state of the adaptive store.
fn model_state() -> &'static [u8] {
    let fixture = &fixtures()[2];
    let (_, bytes) = fixture
        .objects
        .iter()
        .find(|(k, _)| k == "model/advisor")
        .expect("the adaptive store has a model state");
    bytes
}

/// Everything an advisor loaded from damaged bytes is asked: it must
/// answer without panicking, and save itself again.
fn exercise(mut advisor: Advisor) {
    let schemes = [Scheme::Full, Scheme::Incremental, Scheme::CopyOnWrite];
    advisor.restarted();
    let _ = (advisor.trial(), advisor.in_force());
    let _ = advisor.begin(Plan::only(Scheme::Full));
    let model = advisor.model();
    let _ = (model.mtbf_secs(), model.step_time());
    let _ = model.classic_intervals(Duration::from_millis(5));
    for class in FailureClass::ALL {
        let _ = model.failure_rate(class);
    }
    for scheme in schemes {
        let _ = (
            model.observations(scheme),
            model.summary().checkpoints_by(scheme),
        );
    }
    let summary = advisor.summary();
    let _ = (
        summary.stall_quantile(0.5),
        summary.stall_quantile(1.0),
        summary.stall_share(),
    );
    for (n, scheme) in schemes.into_iter().enumerate() {
        let plan = Plan::with_full_every(scheme, 4);
        let _ = advisor.evaluate(plan, Duration::from_millis(250));
        let _ = advisor.advise(Plan::only(scheme), Duration::from_secs(n as u64 * 1_000));
        let mut event = CheckpointEvent::new(scheme, 100 + n as u64);
        event.steps = 10;
        event.compute = Duration::from_millis(200);
        event.stall = Duration::from_millis(3);
        event.persist = Duration::from_millis(9);
        event.logical_bytes = 40_000;
        event.dirty_bytes = 5_000;
        event.bytes_written = 6_000;
        advisor.observe(&Event::Checkpoint(event));
        let _ = advisor.advise(Plan::only(scheme), Duration::from_millis(200));
    }
    advisor.observe(&Event::Restore(RestoreEvent::new(
        7,
        Duration::from_millis(4),
        2,
    )));
    advisor.observe(&Event::Restart(RestartEvent::new(FailureClass::Process)));
    let _ = advisor.advise(Plan::only(Scheme::Incremental), Duration::ZERO);
    let bytes = advisor.to_bytes().expect("a loaded advisor saves again");
    Advisor::from_bytes(&bytes, model_config(), Policy::adaptive())
        .expect("what an advisor saves, it loads");
}

fn model_config() -> ModelConfig {
    ModelConfig::with_mtbf(Duration::from_secs(600))
}

/// Bytes of the model state with `flips` bits flipped: the state carries
/// no checksum, so most of these decode, into arbitrary values.
fn flipped(bytes: &[u8], flips: &[Index]) -> Vec<u8> {
    let mut bytes = bytes.to_vec();
    for bit in flips {
        let bit = bit.index(bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
    }
    bytes
}

proptest! {
    #![proptest_config(config())]

    /// A damaged model state loads as an error or as an advisor that
    /// works, whatever values the damage put into it.
    #[test]
    fn a_damaged_model_state_loads_or_is_refused(
        flips in prop::collection::vec(any::<Index>(), 0..4),
        fields in prop::collection::vec(field(), 0..3),
        tail in prop::collection::vec(any::<u8>(), 0..3),
        cut in any::<Index>(),
        policy in 0..3usize,
    ) {
        let mut bytes = flipped(model_state(), &flips);
        for (at, remove, value) in fields {
            with_field(&mut bytes, at, remove, value);
        }
        // Mostly whole; sometimes truncated or with bytes appended.
        if tail.len() == 1 {
            bytes.truncate(cut.index(bytes.len() + 1));
        } else if tail.len() == 2 {
            bytes.extend_from_slice(&tail);
        }
        let policy = [Policy::fixed(), Policy::advise(), Policy::adaptive()][policy].clone();
        match Advisor::from_bytes(&bytes, model_config(), policy) {
            Ok(advisor) => exercise(advisor),
            Err(e) => prop_assert!(
                matches!(e, Error::Corrupt { .. } | Error::UnsupportedVersion { .. }),
                "{e}"
            ),
        }
    }
}

/// Every store restores its newest checkpoint when nothing is damaged.
#[test]
fn undamaged_stores_restore_the_newest() {
    for fixture in fixtures() {
        let store = fixture.copy();
        if fixture.group {
            let mut ck = fixture
                .builder()
                .storage(store)
                .group(Group::new(RANKS, 1, "launch-1"))
                .build()
                .unwrap();
            let restored = ck.restore_latest::<Shard>().unwrap().unwrap();
            assert_eq!(restored.step, *GROUP_STEPS.last().unwrap());
        } else {
            let mut ck = fixture.builder().storage(store).build().unwrap();
            let restored = ck.restore_latest::<Sim>().unwrap().unwrap();
            assert_eq!(restored.step, *STEPS.last().unwrap());
            assert!(restored.skipped.is_empty());
        }
    }
}
