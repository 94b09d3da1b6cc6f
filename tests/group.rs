//! Coordinated checkpoints of a group of ranks (threads here, sharing one
//! `MemStorage`): every launch restores every rank from the same globally
//! committed step with exactly its shard, whatever failed in the launch
//! before; shards of steps that never committed are never restored and are
//! collected. The multi-process version is `tests/group_crash.rs`.

mod common;

use ckpt::storage::{Fault, FaultyStorage};
use ckpt::{Checkpointer, Error, Group, MemStorage, Scheme, Storage};
use common::group::{Shard, scheme_of};
use common::{keys, mix};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Barrier};
use std::time::Duration;

const RANKS: u32 = 4;
const KEEP_LAST: usize = 2;

/// Mostly the same from step to step (so increments are small), with a
/// few values that depend on the step and the launch.
fn shard_at(rank: u32, step: u64, launch: u32) -> Shard {
    let mut values: Vec<u64> = (0..2048).map(|i| mix(u64::from(rank) << 32 | i)).collect();
    for k in 0..8 {
        let at = (mix(step ^ k) % 2048) as usize;
        values[at] = mix(step << 20 ^ u64::from(launch) << 8 ^ k);
    }
    Shard {
        rank,
        step,
        launch,
        values,
    }
}

fn run_id(launch: u32) -> String {
    format!("launch-{launch}")
}

fn open(store: impl Storage + 'static, rank: u32, launch: u32) -> ckpt::Result<Checkpointer> {
    Checkpointer::builder()
        .storage(store)
        .group(Group::new(RANKS, rank, run_id(launch)))
        .scheme(scheme_of(rank))
        .keep_last(KEEP_LAST)
        .chunk_size(4096)
        .threads(1)
        .build()
}

/// What one rank did in one launch.
#[derive(Debug, Default)]
struct Report {
    /// Restored step and shard; `None` when a fault stopped the rank
    /// before its restore completed.
    restored: Option<Option<(u64, Shard)>>,
    /// Newest step this rank saw globally committed.
    newest_committed: Option<u64>,
    /// Steps checkpointed (not necessarily voted).
    last_checkpointed: Option<u64>,
    failed: bool,
}

/// Runs one rank for `steps` steps after its restore. A storage failure
/// ends the rank's launch (as a crash would); anything else is a bug.
fn run_rank(
    store: impl Storage + 'static,
    rank: u32,
    launch: u32,
    steps: u64,
    seed: u64,
    barrier: Option<Arc<Barrier>>,
) -> Report {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut report = Report::default();
    let opened = open(store, rank, launch);
    let restored = opened.and_then(|mut ck| ck.restore_latest::<Shard>().map(|r| (ck, r)));
    let (mut ck, restored) = match restored {
        Ok(found) => found,
        Err(e @ Error::Storage { .. }) => {
            println!("rank {rank} launch {launch}: storage failed before restoring: {e}");
            report.failed = true;
            return report;
        }
        Err(e) => panic!("rank {rank} launch {launch}: {e}"),
    };
    let first = restored.as_ref().map_or(0, |r| r.step + 1);
    report.restored = Some(restored.map(|r| {
        let global = r.global.expect("a group restore names its commit");
        assert_eq!(global.step, r.step);
        assert_eq!(
            global.run_id,
            run_id(r.state.launch),
            "shard of another launch"
        );
        assert_eq!(global.shard, r.info.key);
        (r.step, r.state)
    }));
    for step in first..first + steps {
        std::thread::sleep(Duration::from_micros(rng.random_range(0..400)));
        let mut shard = shard_at(rank, step, launch);
        let result = ck.checkpoint(step, &mut shard).map(|_| ());
        if let Err(e) = result {
            assert!(
                matches!(e, Error::Storage { .. } | Error::Poisoned { .. }),
                "rank {rank}: unexpected {e}"
            );
            report.failed = true;
            break;
        }
        report.last_checkpointed = Some(step);
        note_committed(&ck, &mut report);
        if let Some(barrier) = &barrier {
            barrier.wait();
        }
    }
    if !report.failed {
        report.failed = ck.flush().is_err();
        note_committed(&ck, &mut report);
    }
    report
}

fn note_committed(ck: &Checkpointer, report: &mut Report) {
    let status = ck.last_committed().and_then(|c| c.group.as_ref());
    if let Some(status) = status.filter(|s| s.globally_committed) {
        report.newest_committed = report.newest_committed.max(Some(status.step));
    }
}

/// Runs every rank of one launch on its own thread; `storage(rank)` gives
/// each rank its view of the shared store.
fn launch<S: Storage + 'static>(
    launch: u32,
    steps: u64,
    seed: u64,
    storage: impl Fn(u32) -> S,
) -> Vec<Report> {
    launch_with(launch, steps, seed, storage, None)
}

/// As [`launch`]; with a barrier, ranks move in lockstep (as ranks that
/// exchange data every step do).
fn launch_with<S: Storage + 'static>(
    launch: u32,
    steps: u64,
    seed: u64,
    storage: impl Fn(u32) -> S,
    barrier: Option<Arc<Barrier>>,
) -> Vec<Report> {
    let threads: Vec<_> = (0..RANKS)
        .map(|rank| {
            let store = storage(rank);
            let seed = seed ^ u64::from(rank);
            let barrier = barrier.clone();
            std::thread::spawn(move || run_rank(store, rank, launch, steps, seed, barrier))
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("rank thread"))
        .collect()
}

/// Every rank restored the same step, with exactly its shard, all from
/// one launch; returns that step.
fn check_restores(reports: &[Report], context: &str) -> Option<u64> {
    let done = || reports.iter().filter_map(|r| r.restored.as_ref());
    let restored: BTreeSet<Option<u64>> = done().map(|r| r.as_ref().map(|(s, _)| *s)).collect();
    assert_eq!(restored.len(), 1, "{context}: ranks disagree: {restored:?}");
    let launches: BTreeSet<Option<u32>> =
        done().map(|r| r.as_ref().map(|(_, s)| s.launch)).collect();
    assert_eq!(
        launches.len(),
        1,
        "{context}: shards of several launches: {launches:?}"
    );
    for (rank, report) in reports.iter().enumerate() {
        if let Some(Some((step, shard))) = &report.restored {
            let expected = shard_at(rank as u32, *step, shard.launch);
            assert!(
                shard == &expected,
                "{context}: rank {rank} restored another shard"
            );
        }
    }
    restored.into_iter().next().flatten()
}

#[test]
fn launches_with_random_failures_always_resume_together() {
    let seed = std::env::var("CKPT_GROUP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6A0F_2026);
    println!("group test seed {seed} (set CKPT_GROUP_SEED to replay another)");
    let mut rng = StdRng::seed_from_u64(seed);
    let store = MemStorage::new();
    let mut newest_committed: Option<u64> = None;
    let mut newest_checkpointed: Option<u64> = None;
    let mut failed_launches = 0;
    for n in 0..24 {
        // One rank's storage fails after a random number of operations:
        // during a pack, a manifest, a vote, a commit or a collection.
        let victim = (n % 3 != 2).then(|| (rng.random_range(0..RANKS), rng.random_range(0..80)));
        let faulty: Vec<FaultyStorage<MemStorage>> = (0..RANKS)
            .map(|_| FaultyStorage::new(store.clone()))
            .collect();
        if let Some((rank, after)) = victim {
            faulty[rank as usize]
                .control()
                .fail_after(after, Fault::Error(ErrorKind::Other));
        }
        let faulty: Vec<Arc<FaultyStorage<MemStorage>>> =
            faulty.into_iter().map(Arc::new).collect();
        let reports = launch(n, 5, rng.random(), |rank| faulty[rank as usize].clone());
        let context = format!("launch {n} (seed {seed})");
        let restored = check_restores(&reports, &context);
        assert!(
            restored >= newest_committed,
            "{context}: restored {restored:?}, but step {newest_committed:?} was reported globally committed"
        );
        assert!(
            restored <= newest_checkpointed,
            "{context}: restored a step never checkpointed"
        );
        failed_launches += usize::from(reports.iter().any(|r| r.failed));
        for report in &reports {
            newest_committed = newest_committed.max(report.newest_committed);
            newest_checkpointed = newest_checkpointed.max(report.last_checkpointed);
        }
    }
    assert!(
        failed_launches >= 8,
        "too few launches hit a fault: {failed_launches}"
    );
    assert!(newest_committed.is_some(), "nothing ever committed");

    // A clean launch commits every step it takes and collects what the
    // failed launches left: shards that never committed, older shards,
    // votes of old launches, old commits.
    let before: Vec<BTreeSet<String>> = (0..RANKS)
        .map(|r| keys(&store, &format!("shards/{r}/manifests/")))
        .collect();
    let steps = 4 + KEEP_LAST as u64;
    let barrier = Some(Arc::new(Barrier::new(RANKS as usize)));
    let reports = launch_with(100, steps, 7, |_| store.clone(), barrier);
    assert!(reports.iter().all(|r| !r.failed));
    let resumed = check_restores(&reports, "clean launch").expect("something committed");
    let last = resumed + steps;
    let final_reports = launch(101, 0, 8, |_| store.clone());
    assert_eq!(check_restores(&final_reports, "final launch"), Some(last));
    for (rank, old) in before.iter().enumerate() {
        let now = keys(&store, &format!("shards/{rank}/manifests/"));
        assert!(
            now.is_disjoint(old),
            "rank {rank} kept shards of old launches: {:?}",
            now.intersection(old).collect::<Vec<_>>()
        );
        // Restores collect too, so what is left is exactly the shards of
        // the retained commits.
        assert_eq!(now.len(), KEEP_LAST, "rank {rank} keeps {now:?}");
    }
    let votes = keys(&store, "group/votes/");
    assert!(votes.is_empty(), "{votes:?}");
    let commits = keys(&store, "group/commits/");
    assert_eq!(commits.len(), KEEP_LAST, "{commits:?}");
}

/// A store that fails writes of keys starting with `prefix`, as a crash at
/// exactly that point of the protocol would.
#[derive(Debug, Clone)]
struct FailWrites {
    inner: MemStorage,
    prefix: String,
}

impl FailWrites {
    fn check(&self, key: &str) -> ckpt::Result<()> {
        if key.starts_with(&self.prefix) {
            let e = std::io::Error::other("injected crash");
            return Err(Error::storage("put", key, e));
        }
        Ok(())
    }
}

impl Storage for FailWrites {
    fn put(&self, key: &str, data: &[u8]) -> ckpt::Result<()> {
        self.check(key)?;
        self.inner.put(key, data)
    }
    fn put_if_absent(&self, key: &str, data: &[u8]) -> ckpt::Result<bool> {
        self.check(key)?;
        self.inner.put_if_absent(key, data)
    }
    fn get(&self, key: &str) -> ckpt::Result<Vec<u8>> {
        self.inner.get(key)
    }
    fn get_range(&self, key: &str, range: Range<u64>) -> ckpt::Result<Vec<u8>> {
        self.inner.get_range(key, range)
    }
    fn list(&self, prefix: &str) -> ckpt::Result<Vec<String>> {
        self.inner.list(prefix)
    }
    fn delete(&self, key: &str) -> ckpt::Result<()> {
        self.inner.delete(key)
    }
}

#[test]
fn a_step_whose_commit_was_lost_is_rolled_forward_on_restore() {
    let store = MemStorage::new();
    // Every rank that completes the votes of step 3 dies creating the commit.
    let reports = launch(1, 6, 1, |_| FailWrites {
        inner: store.clone(),
        prefix: "group/commits/00000000000000000003-".into(),
    });
    assert!(reports.iter().any(|r| r.failed));
    assert!(reports.iter().all(|r| r.newest_committed <= Some(2)));
    assert_eq!(
        keys(&store, "group/votes/00000000000000000003-").len(),
        RANKS as usize
    );
    // All four shards of step 3 are durable: the next launch commits it.
    let reports = launch(2, 0, 2, |_| store.clone());
    assert_eq!(check_restores(&reports, "after the lost commit"), Some(3));
    assert!(
        store
            .get("group/commits/00000000000000000003-launch-1")
            .is_ok()
    );
}

#[test]
fn a_shard_without_its_vote_is_never_restored_and_is_collected() {
    let store = MemStorage::new();
    // Rank 1 dies after its shard of step 3 is durable, before voting.
    let reports = launch(1, 6, 3, |rank| FailWrites {
        inner: store.clone(),
        prefix: if rank == 1 {
            "group/votes/00000000000000000003-".into()
        } else {
            "never/".into()
        },
    });
    assert!(reports[1].failed);
    let orphans: BTreeSet<String> = keys(&store, "shards/1/manifests/")
        .into_iter()
        .filter(|k| k.contains("-00000000000000000003-"))
        .collect();
    assert_eq!(orphans.len(), 1, "rank 1's unvoted shard of step 3");
    // The others went on to step 5, but nothing after step 2 committed.
    let reports = launch(2, 4, 4, |_| store.clone());
    assert_eq!(check_restores(&reports, "after the lost vote"), Some(2));
    assert!(reports.iter().all(|r| restored_launch(r) == 1));
    let now = keys(&store, "shards/1/manifests/");
    assert!(
        now.is_disjoint(&orphans),
        "the orphan shard was not collected"
    );
    // Steps 3..=6 were recomputed by launch 2 and committed.
    let reports = launch(3, 0, 5, |_| store.clone());
    assert_eq!(check_restores(&reports, "third launch"), Some(6));
    assert!(reports.iter().all(|r| restored_launch(r) == 2));
}

#[test]
fn a_damaged_commit_is_skipped_by_every_rank_and_a_damaged_shard_is_an_error() {
    let store = MemStorage::new();
    launch(1, 5, 9, |_| store.clone());
    // Damage the newest commit: every rank falls back to step 3.
    let newest = "group/commits/00000000000000000004-launch-1";
    let mut bytes = store.get(newest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    store.put(newest, &bytes).unwrap();
    let mut restored = Vec::new();
    for rank in 0..RANKS {
        let mut ck = open(store.clone(), rank, 2).unwrap();
        let r = ck.restore_latest::<Shard>().unwrap().unwrap();
        assert_eq!(r.step, 3);
        assert_eq!(r.skipped.len(), 1);
        assert_eq!(r.skipped[0].key, newest);
        assert!(r.state == shard_at(rank, 3, 1));
        restored.push(r.info.key);
    }
    // Damage rank 2's shard of step 3 (its manifest): rank 2 refuses to
    // fall back alone; the others still restore step 3.
    let shard = format!("shards/2/{}", restored[2]);
    let mut bytes = store.get(&shard).unwrap();
    bytes[20] ^= 1;
    store.put(&shard, &bytes).unwrap();
    let mut ck = open(store.clone(), 2, 3).unwrap();
    match ck.restore_latest::<Shard>() {
        Err(Error::ShardDamaged {
            rank: 2,
            step: 3,
            commit,
            votes,
            ..
        }) => {
            assert_eq!(commit, "group/commits/00000000000000000003-launch-1");
            // What the error says to do: remove the commit and its votes,
            // and the whole group falls back to step 2.
            store.delete(&commit).unwrap();
            for vote in store.list(&votes).unwrap() {
                store.delete(&vote).unwrap();
            }
        }
        other => panic!("expected ShardDamaged, got {other:?}"),
    }
    drop(ck); // one writer per shard: the next launch comes after
    let reports = launch(4, 0, 10, |_| store.clone());
    assert_eq!(
        check_restores(&reports, "after removing the commit"),
        Some(2)
    );
}

/// A backend without conditional puts.
#[derive(Debug)]
struct NoConditionalPut(MemStorage);

impl Storage for NoConditionalPut {
    fn put(&self, key: &str, data: &[u8]) -> ckpt::Result<()> {
        self.0.put(key, data)
    }
    fn get(&self, key: &str) -> ckpt::Result<Vec<u8>> {
        self.0.get(key)
    }
    fn list(&self, prefix: &str) -> ckpt::Result<Vec<String>> {
        self.0.list(prefix)
    }
    fn delete(&self, key: &str) -> ckpt::Result<()> {
        self.0.delete(key)
    }
}

fn build(store: impl Storage + 'static, group: Group) -> ckpt::Result<Checkpointer> {
    Checkpointer::builder().storage(store).group(group).build()
}

#[test]
fn misuse_is_refused_with_typed_errors() {
    let store = MemStorage::new();
    for (group, what) in [
        (Group::new(4, 4, "r1"), "rank out of range"),
        (Group::new(0, 0, "r1"), "no ranks"),
        (Group::new(4, 0, ""), "empty run id"),
        (Group::new(4, 0, "a/b"), "run id with a slash"),
        (Group::new(4, 0, ".hidden"), "run id with a leading dot"),
    ] {
        let result = build(store.clone(), group);
        assert!(
            matches!(
                result,
                Err(Error::InvalidConfig {
                    option: "group",
                    ..
                })
            ),
            "{what}: {result:?}"
        );
    }
    let timed = Checkpointer::builder()
        .storage(store.clone())
        .group(Group::new(4, 0, "r1"))
        .every(Duration::from_secs(1))
        .build();
    assert!(
        matches!(
            timed,
            Err(Error::InvalidConfig {
                option: "every",
                ..
            })
        ),
        "{timed:?}"
    );
    let adaptive = Checkpointer::builder()
        .storage(store.clone())
        .group(Group::new(4, 0, "r1"))
        .policy(ckpt::model::Policy::adaptive())
        .build();
    assert!(
        matches!(
            adaptive,
            Err(Error::InvalidConfig {
                option: "policy",
                ..
            })
        ),
        "{adaptive:?}"
    );
    let result = build(NoConditionalPut(MemStorage::new()), Group::new(2, 0, "r1"));
    assert!(
        matches!(result, Err(Error::Unsupported { .. })),
        "{result:?}"
    );

    let mut ck = build(store.clone(), Group::new(2, 0, "r1")).unwrap();
    let result = build(store.clone(), Group::new(3, 1, "r1"));
    assert!(
        matches!(
            result,
            Err(Error::GroupSizeMismatch {
                expected: 3,
                found: 2
            })
        ),
        "{result:?}"
    );
    // A second live checkpointer of rank 0 is refused by the shard's
    // writer lease; once the first is gone, by the run id it reused.
    let result = build(store.clone(), Group::new(2, 0, "r1"));
    assert!(
        matches!(result, Err(Error::WriterActive { .. })),
        "{result:?}"
    );

    let mut state = vec![1u64; 8];
    let result = ck.checkpoint(0, &mut state);
    assert!(
        matches!(result, Err(Error::GroupOrder { .. })),
        "before restore: {result:?}"
    );
    assert!(ck.restore_latest::<Vec<u64>>().unwrap().is_none());
    let committed = ck.checkpoint(5, &mut state).unwrap().cloned().unwrap();
    let status = committed.group.expect("a rank's commit carries its vote");
    assert_eq!((status.step, status.votes, status.ranks), (5, 1, 2));
    assert!(!status.globally_committed, "rank 1 has not voted");
    for step in [5, 4] {
        let result = ck.checkpoint(step, &mut state);
        assert!(
            matches!(result, Err(Error::GroupOrder { .. })),
            "step {step}: {result:?}"
        );
    }
    assert_eq!(ck.newest_global_commit().unwrap(), None);
    let result = ck.restore_latest::<Vec<u64>>();
    assert!(
        matches!(result, Err(Error::GroupOrder { .. })),
        "restore after checkpoint: {result:?}"
    );

    let mut other = build(store.clone(), Group::new(2, 1, "r1")).unwrap();
    assert!(other.restore_latest::<Vec<u64>>().unwrap().is_none());
    let committed = other.checkpoint(5, &mut state).unwrap().cloned().unwrap();
    let status = committed.group.unwrap();
    assert!(status.globally_committed && status.created && status.votes == 2);
    let newest = ck
        .newest_global_commit()
        .unwrap()
        .expect("step 5 committed");
    assert_eq!((newest.step, newest.run_id.as_str()), (5, "r1"));
    assert_eq!(
        Some(newest.shard),
        ck.last_committed().map(|c| c.info.key.clone())
    );
    drop(ck);
    let result = build(store.clone(), Group::new(2, 0, "r1"));
    assert!(
        matches!(result, Err(Error::RunReused { rank: 0, .. })),
        "{result:?}"
    );

    let lone = Checkpointer::builder()
        .storage(MemStorage::new())
        .build()
        .unwrap();
    assert!(matches!(
        lone.newest_global_commit(),
        Err(Error::InvalidConfig { .. })
    ));
}

fn restored_launch(report: &Report) -> u32 {
    let restored = report.restored.as_ref().expect("restore completed");
    restored.as_ref().expect("a step was restored").1.launch
}

#[test]
fn the_first_increment_after_a_restore_chains_from_the_restored_shard() {
    let store = MemStorage::new();
    let open_rank = |rank: u32, run: &str| {
        Checkpointer::builder()
            .storage(store.clone())
            .group(Group::new(2, rank, run))
            .scheme(Scheme::Incremental)
            .chunk_size(4096)
            .build()
            .unwrap()
    };
    let mut first: Vec<Checkpointer> = (0..2).map(|rank| open_rank(rank, "a")).collect();
    for ck in &mut first {
        assert!(ck.restore_latest::<Shard>().unwrap().is_none());
    }
    for step in 0..3 {
        for (rank, ck) in first.iter_mut().enumerate() {
            ck.checkpoint(step, &mut shard_at(rank as u32, step, 1))
                .unwrap();
        }
    }
    drop(first);
    for rank in 0..2 {
        let mut ck = open_rank(rank, "b");
        let restored = ck.restore_latest::<Shard>().unwrap().unwrap();
        assert_eq!(restored.step, 2);
        let full_size = restored.info.logical_bytes;
        let committed = ck
            .checkpoint(3, &mut shard_at(rank, 3, 2))
            .unwrap()
            .cloned()
            .unwrap();
        assert!(
            !committed.full,
            "rank {rank}: a full checkpoint after restore"
        );
        assert_eq!(committed.info.chain_len, restored.info.chain_len + 1);
        assert!(
            committed.changed_bytes < full_size * 3 / 4,
            "rank {rank}: {} of {full_size} bytes written",
            committed.changed_bytes
        );
    }
}

/// A store that holds back the puts of keys starting with `prefix`
/// (answering success) until [`land`](Self::land): a vote still in flight
/// when its launch crashed, landing after the next launch began.
#[derive(Debug, Clone)]
struct HoldPuts {
    inner: MemStorage,
    prefix: String,
    held: Arc<std::sync::Mutex<Vec<Held>>>,
}

/// A put held back: key and bytes.
type Held = (String, Vec<u8>);

impl HoldPuts {
    fn land(&self) -> usize {
        let held = std::mem::take(&mut *self.held.lock().unwrap());
        for (key, data) in &held {
            self.inner.put(key, data).unwrap();
        }
        held.len()
    }
}

impl Storage for HoldPuts {
    fn put(&self, key: &str, data: &[u8]) -> ckpt::Result<()> {
        if key.starts_with(&self.prefix) {
            self.held
                .lock()
                .unwrap()
                .push((key.to_owned(), data.to_vec()));
            return Ok(());
        }
        self.inner.put(key, data)
    }
    fn put_if_absent(&self, key: &str, data: &[u8]) -> ckpt::Result<bool> {
        assert!(!key.starts_with(&self.prefix), "{key}");
        self.inner.put_if_absent(key, data)
    }
    fn get(&self, key: &str) -> ckpt::Result<Vec<u8>> {
        self.inner.get(key)
    }
    fn get_range(&self, key: &str, range: Range<u64>) -> ckpt::Result<Vec<u8>> {
        self.inner.get_range(key, range)
    }
    fn list(&self, prefix: &str) -> ckpt::Result<Vec<String>> {
        self.inner.list(prefix)
    }
    fn delete(&self, key: &str) -> ckpt::Result<()> {
        self.inner.delete(key)
    }
}

fn open_pair(store: impl Storage + 'static, rank: u32, run: &str) -> Checkpointer {
    Checkpointer::builder()
        .storage(store)
        .group(Group::new(2, rank, run))
        .keep_last(1)
        .threads(1)
        .build()
        .unwrap()
}

/// Checkpoints `steps` on both ranks of a pair, one step at a time.
fn checkpoint_pair(ranks: &mut [Checkpointer; 2], steps: Range<u64>, launch: u32) {
    for step in steps {
        for (rank, ck) in (0..).zip(ranks.iter_mut()) {
            ck.checkpoint(step, &mut shard_at(rank, step, launch))
                .unwrap();
            ck.flush().unwrap();
        }
    }
}

#[test]
fn a_late_vote_of_a_crashed_launch_cannot_split_the_next_launchs_restore() {
    let store = MemStorage::new();
    // Launch 1 commits step 0; both votes of step 1 are still in flight
    // when it crashes.
    let held = HoldPuts {
        inner: store.clone(),
        prefix: "group/votes/00000000000000000001-".into(),
        held: Arc::default(),
    };
    let mut ranks = [0, 1].map(|rank| open_pair(held.clone(), rank, "launch-1"));
    for ck in &mut ranks {
        assert!(ck.restore_latest::<Shard>().unwrap().is_none());
    }
    checkpoint_pair(&mut ranks, 0..2, 1);
    drop(ranks);
    assert_eq!(keys(&store, "group/commits/").len(), 1);

    // Launch 2: rank 0 restores step 0; then the votes land, completing
    // step 1 of launch 1; then rank 1 restores: step 0 as well.
    let mut rank0 = open_pair(store.clone(), 0, "launch-2");
    let mut rank1 = open_pair(store.clone(), 1, "launch-2");
    let r0 = rank0.restore_latest::<Shard>().unwrap().unwrap();
    assert_eq!(held.land(), 2);
    let r1 = rank1.restore_latest::<Shard>().unwrap().unwrap();
    assert_eq!((r0.step, r1.step), (0, 0), "the group split");
    assert!(r0.state == shard_at(0, 0, 1) && r1.state == shard_at(1, 0, 1));

    // Launch 2 goes on; launch 3 resumes from it, and only launch 3's
    // restore choice is left.
    let mut ranks = [rank0, rank1];
    checkpoint_pair(&mut ranks, 1..3, 2);
    drop(ranks);
    let mut ranks = [0, 1].map(|rank| open_pair(store.clone(), rank, "launch-3"));
    for (rank, ck) in (0..).zip(ranks.iter_mut()) {
        let r = ck.restore_latest::<Shard>().unwrap().unwrap();
        assert_eq!(r.step, 2);
        assert!(r.state == shard_at(rank, 2, 2));
    }
    assert_eq!(
        keys(&store, "group/restores/"),
        BTreeSet::from(["group/restores/launch-3".to_owned()])
    );
}

/// A store whose first conditional create of a key starting with `prefix`
/// happens but answers a timeout.
#[derive(Debug, Clone)]
struct TimeoutAfterCreate {
    inner: MemStorage,
    prefix: String,
    fired: Arc<std::sync::atomic::AtomicBool>,
}

impl Storage for TimeoutAfterCreate {
    fn put(&self, key: &str, data: &[u8]) -> ckpt::Result<()> {
        self.inner.put(key, data)
    }
    fn put_if_absent(&self, key: &str, data: &[u8]) -> ckpt::Result<bool> {
        let created = self.inner.put_if_absent(key, data)?;
        if key.starts_with(&self.prefix) && !self.fired.swap(true, Ordering::SeqCst) {
            let e = std::io::Error::new(ErrorKind::TimedOut, "injected timeout");
            return Err(Error::storage("put_if_absent", key, e));
        }
        Ok(created)
    }
    fn get(&self, key: &str) -> ckpt::Result<Vec<u8>> {
        self.inner.get(key)
    }
    fn list(&self, prefix: &str) -> ckpt::Result<Vec<String>> {
        self.inner.list(prefix)
    }
    fn delete(&self, key: &str) -> ckpt::Result<()> {
        self.inner.delete(key)
    }
}

#[test]
fn build_retried_after_a_timeout_that_registered_the_run_succeeds() {
    let store = MemStorage::new();
    let flaky = TimeoutAfterCreate {
        inner: store.clone(),
        prefix: "group/runs/".into(),
        fired: Arc::default(),
    };
    let first = build(flaky.clone(), Group::new(2, 1, "retried"));
    assert!(matches!(first, Err(Error::Storage { .. })), "{first:?}");
    assert_eq!(
        keys(&store, "group/runs/"),
        BTreeSet::from(["group/runs/retried-1".to_owned()])
    );
    let mut ck = build(flaky, Group::new(2, 1, "retried")).expect("the retry is not a reuse");
    assert!(ck.restore_latest::<Vec<u64>>().unwrap().is_none());
    drop(ck);
    // Another checkpointer with the same run id and rank is still refused.
    let again = build(store, Group::new(2, 1, "retried"));
    assert!(
        matches!(again, Err(Error::RunReused { rank: 1, .. })),
        "{again:?}"
    );
}
