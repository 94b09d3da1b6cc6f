//! Coordinated checkpoints with real processes: this test binary runs
//! itself as 4 rank processes that checkpoint their shards in a loop. Each
//! round, the parent SIGKILLs one rank at a seeded random moment, then
//! stops (kills) the rest, and restarts all four with a new run id; every
//! rank must resume from the same globally committed step, at least as new
//! as any step a rank reported globally committed, with exactly its shard
//! of that step (byte for byte, from the launch that committed it).
//!
//! Some ranks' last vote is still in flight when they die (the child
//! parks it under `late/` and hangs, as a put that never returned); the
//! parent lands it at a random moment of the next launch's restore, as a
//! slow store would, and the ranks must still agree.
//!
//! The ranks share a local directory ([`FsStorage::open_shared`]), or an
//! S3 server when `CKPT_S3_ENDPOINT` is set (see [`shared_store`]). Set
//! `CKPT_GROUP_CRASH_SEED` to replay another seed.

mod common;

use ckpt::{Checkpointer, FsStorage, Group, Storage};
use common::child::{Reaper, run_ignored_test};
use common::group::{Shard, scheme_of};
use common::{mix, s3, seed};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::ops::Range;
use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

const RANKS: u32 = 4;
const KEEP_LAST: usize = 2;
const ROUNDS: u32 = 20;
/// Where the store is (a directory, or a prefix of the S3 bucket).
const LOCATION_ENV: &str = "CKPT_GROUP_CHILD_STORE";
const RANK_ENV: &str = "CKPT_GROUP_CHILD_RANK";
const LAUNCH_ENV: &str = "CKPT_GROUP_CHILD_LAUNCH";
/// The step whose vote a child leaves in flight (default: none).
const LATE_VOTE_ENV: &str = "CKPT_GROUP_CHILD_LATE_VOTE";
/// Where a vote in flight waits for the parent to land it.
const LATE: &str = "late/";
/// Steps a child takes before finishing cleanly (default: until killed).
const STEPS_ENV: &str = "CKPT_GROUP_CHILD_STEPS";
const SEED_ENV: &str = "CKPT_GROUP_CRASH_SEED";
const DEFAULT_SEED: u64 = 0x6409_C4A5_2026;
/// A child that is never killed (the parent died) stops on its own.
const CHILD_LIFETIME: Duration = Duration::from_secs(30);
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// The shared store at `location`: a prefix of the S3 test bucket
/// (`s3:<prefix>`, when `CKPT_S3_ENDPOINT` is set) or a local directory
/// opened with [`FsStorage::open_shared`].
fn shared_store(location: &str) -> Arc<dyn Storage> {
    if let Some(prefix) = location.strip_prefix("s3:") {
        return Arc::new(s3::builder(prefix).build().expect("open the S3 store"));
    }
    Arc::new(FsStorage::open_shared(location).expect("open the shared directory"))
}

/// A fresh location for one test run (a new prefix of the S3 test bucket
/// when `CKPT_S3_ENDPOINT` is set, else a temporary directory), and what
/// keeps it alive.
fn new_location() -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    if std::env::var_os("CKPT_S3_ENDPOINT").is_some() {
        let prefix = s3::fresh_prefix("group-crash");
        println!("group crash test against the S3 server, under {prefix}");
        return (format!("s3:{prefix}"), dir);
    }
    (dir.path().display().to_string(), dir)
}

fn shard_at(rank: u32, step: u64, launch: u32) -> Shard {
    let len = 16_384 + (mix(step ^ u64::from(rank)) % 16_384) as usize;
    let values = (0..len as u64)
        .map(|i| {
            if i % 64 == step % 64 {
                mix(step << 24 ^ u64::from(launch) << 8 ^ i)
            } else {
                mix(u64::from(rank) << 40 ^ i)
            }
        })
        .collect();
    Shard {
        rank,
        step,
        launch,
        values,
    }
}

/// FNV-1a over the shard, so the parent can check it without the bytes.
fn digest(shard: &Shard) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let words = [u64::from(shard.rank), shard.step, u64::from(shard.launch)];
    for word in words.iter().chain(&shard.values) {
        for byte in word.to_le_bytes() {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok()?.parse().ok()
}

/// A rank: restores, reports, then checkpoints until killed (or for
/// `STEPS_ENV` steps).
#[test]
#[ignore = "a rank process of group_checkpoints_survive_sigkill; does nothing alone"]
fn group_child_process() {
    let Ok(location) = std::env::var(LOCATION_ENV) else {
        return;
    };
    let rank: u32 = env(RANK_ENV).expect("rank");
    let launch: u32 = env(LAUNCH_ENV).expect("launch");
    let steps: u64 = env(STEPS_ENV).unwrap_or(u64::MAX);
    let born = Instant::now();
    let store = LateVote {
        inner: shared_store(&location),
        step: env(LATE_VOTE_ENV),
        born,
    };
    let mut ck = Checkpointer::builder()
        .storage(store)
        .group(Group::new(RANKS, rank, format!("launch-{launch}")))
        .scheme(scheme_of(rank))
        .keep_last(KEEP_LAST)
        .chunk_size(64 * 1024)
        .threads(1)
        .build()
        .expect("child opens the store");
    let mut out = std::io::stdout().lock();
    let mut say = |line: String| {
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            std::process::exit(0); // the parent is gone
        }
    };
    let first = match ck.restore_latest::<Shard>().expect("child restores") {
        Some(r) => {
            say(format!(
                "@restored {} {} {}",
                r.step,
                r.state.launch,
                digest(&r.state)
            ));
            r.step + 1
        }
        None => {
            say("@restored none".to_owned());
            0
        }
    };
    let mut rng = StdRng::seed_from_u64(u64::from(rank) << 32 | u64::from(launch));
    let mut newest_committed = None;
    for step in first..first.saturating_add(steps) {
        if born.elapsed() > CHILD_LIFETIME {
            return;
        }
        std::thread::sleep(Duration::from_micros(rng.random_range(500..3_000)));
        let mut shard = shard_at(rank, step, launch);
        ck.checkpoint(step, &mut shard).expect("child checkpoints");
        say(format!("@checkpointed {step}"));
        report_commit(&ck, &mut newest_committed, &mut say);
    }
    // Copy-on-write votes for its last step once that step is durable.
    ck.flush().expect("child flushes");
    report_commit(&ck, &mut newest_committed, &mut say);
    ck.finish().expect("child finishes");
    say("@finished".to_owned());
}

/// A rank's store that leaves its vote of `step` in flight: the vote goes
/// to `late/<key>` for the parent to land later, and the put never returns
/// (the rank's writer hangs until the rank is killed).
#[derive(Debug)]
struct LateVote {
    inner: Arc<dyn Storage>,
    step: Option<u64>,
    born: Instant,
}

impl Storage for LateVote {
    fn put(&self, key: &str, data: &[u8]) -> ckpt::Result<()> {
        let held = self
            .step
            .is_some_and(|step| key.starts_with(&format!("group/votes/{step:020}-")));
        if !held {
            return self.inner.put(key, data);
        }
        self.inner.put(&format!("{LATE}{key}"), data)?;
        while self.born.elapsed() < CHILD_LIFETIME {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::process::exit(0); // never killed: the parent is gone
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
    fn get_range(&self, key: &str, range: Range<u64>) -> ckpt::Result<Vec<u8>> {
        self.inner.get_range(key, range)
    }
    fn read_into(&self, key: &str, offset: u64, bufs: &mut [&mut [u8]]) -> ckpt::Result<()> {
        self.inner.read_into(key, offset, bufs)
    }
    fn read_gap_bytes(&self) -> u64 {
        self.inner.read_gap_bytes()
    }
    fn delete_many(&self, keys: &[String]) -> ckpt::Result<()> {
        self.inner.delete_many(keys)
    }
    fn put_parts(&self, key: &str, parts: &[&[u8]]) -> ckpt::Result<()> {
        self.inner.put_parts(key, parts)
    }
    fn put_if_absent(&self, key: &str, data: &[u8]) -> ckpt::Result<bool> {
        self.inner.put_if_absent(key, data)
    }
}

/// Lands the votes left in flight (see [`LateVote`]); returns how many,
/// and how many of them completed their step's vote set.
fn land_late_votes(store: &dyn Storage) -> (usize, usize) {
    let late = store.list(LATE).unwrap();
    let mut completed = 0;
    for key in &late {
        let vote = key.strip_prefix(LATE).expect("listed under late/");
        store.put(vote, &store.get(key).unwrap()).unwrap();
        store.delete(key).unwrap();
        let (set, _) = vote.rsplit_once('-').expect("a vote key ends in its rank");
        completed += usize::from(store.list(set).unwrap().len() == RANKS as usize);
    }
    (late.len(), completed)
}

/// Reports the newest step this rank saw globally committed, once.
fn report_commit(ck: &Checkpointer, newest: &mut Option<u64>, say: &mut impl FnMut(String)) {
    let status = ck.last_committed().and_then(|c| c.group.clone());
    if let Some(status) = status.filter(|s| s.globally_committed)
        && *newest < Some(status.step)
    {
        *newest = Some(status.step);
        say(format!("@committed {}", status.step));
    }
}

const PENDING_SHARD: &str = "a durable shard newer than the newest commit";
const UNVOTED_SHARD: &str = "a durable shard without its vote";
const UNCOMMITTED_VOTES: &str = "complete votes without their commit";

/// Where the kills of `launch` left the protocol, read from the store
/// before the next launch touches it.
fn kill_phases(store: &dyn Storage, launch: u32) -> Vec<&'static str> {
    let run = format!("launch-{launch}");
    let step_of =
        |key: &str, at: usize| -> Option<u64> { key.split(['-', '/']).nth(at)?.parse().ok() };
    let newest_commit = store
        .list("group/commits/")
        .unwrap()
        .iter()
        .filter_map(|k| step_of(k, 2))
        .max();
    let votes: Vec<(u64, String)> = store
        .list("group/votes/")
        .unwrap()
        .into_iter()
        .filter(|k| k.contains(&format!("-{run}-")))
        .filter_map(|k| Some((step_of(&k, 2)?, k)))
        .collect();
    let mut phases = BTreeSet::new();
    for rank in 0..RANKS {
        let newest_shard = store
            .list(&format!("shards/{rank}/manifests/"))
            .unwrap()
            .iter()
            .filter_map(|k| step_of(k, 4))
            .max();
        let newest_vote = votes
            .iter()
            .filter(|(_, k)| k.ends_with(&format!("-{rank}")))
            .map(|(step, _)| *step)
            .max();
        if newest_shard > newest_commit {
            phases.insert(PENDING_SHARD);
        }
        if newest_shard > newest_vote && newest_shard > newest_commit {
            phases.insert(UNVOTED_SHARD);
        }
    }
    let steps: BTreeSet<u64> = votes.iter().map(|(step, _)| *step).collect();
    for step in steps {
        let count = votes.iter().filter(|(s, _)| *s == step).count();
        if count == RANKS as usize && Some(step) > newest_commit {
            phases.insert(UNCOMMITTED_VOTES);
        }
    }
    phases.into_iter().collect()
}

/// What a rank restored: step, launch and digest of its shard (`None`: a
/// fresh start).
type Restore = Option<(u64, u32, u64)>;

#[derive(Debug, Clone, PartialEq)]
enum Line {
    Restored(Restore),
    Checkpointed(u64),
    Committed(u64),
    Finished,
}

fn parse(line: &str) -> Option<Line> {
    // libtest prints "test group_child_process ... " without a newline
    // before the test runs, so the first line may follow it; the rank's
    // own words start with '@'.
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| w.starts_with('@'))?;
    let number = |i: usize| words.get(at + i)?.parse().ok();
    Some(match words[at] {
        "@restored" if words.get(at + 1) == Some(&"none") => Line::Restored(None),
        "@restored" => Line::Restored(Some((number(1)?, number(2)? as u32, number(3)?))),
        "@checkpointed" => Line::Checkpointed(number(1)?),
        "@committed" => Line::Committed(number(1)?),
        "@finished" => Line::Finished,
        _ => return None,
    })
}

/// Starts the four ranks of one launch; their lines arrive tagged with
/// their rank.
fn spawn_launch(
    location: &str,
    launch: u32,
    steps: Option<u64>,
    late_votes: &[Option<u64>],
) -> (Vec<Reaper>, Receiver<(u32, Line)>) {
    let (tx, rx) = mpsc::channel();
    let children = (0..RANKS)
        .map(|rank| {
            let mut command = run_ignored_test("group_child_process");
            command
                .env(LOCATION_ENV, location)
                .env(RANK_ENV, rank.to_string())
                .env(LAUNCH_ENV, launch.to_string());
            if let Some(steps) = steps {
                command.env(STEPS_ENV, steps.to_string());
            }
            if let Some(Some(step)) = late_votes.get(rank as usize) {
                command.env(LATE_VOTE_ENV, step.to_string());
            }
            let mut child = command.spawn().expect("spawn a rank process");
            let stdout = child.stdout.take().expect("piped stdout");
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(parsed) = parse(&line)
                        && tx.send((rank, parsed)).is_err()
                    {
                        break;
                    }
                }
            });
            Reaper(child)
        })
        .collect();
    (children, rx)
}

/// What the parent learned from one launch.
#[derive(Debug, Default)]
struct Seen {
    restored: Vec<Option<Restore>>,
    committed: Option<u64>,
    checkpointed: Option<u64>,
    finished: u32,
}

impl Seen {
    fn new() -> Self {
        Seen {
            restored: vec![None; RANKS as usize],
            ..Seen::default()
        }
    }

    fn absorb(&mut self, (rank, line): (u32, Line)) {
        match line {
            Line::Restored(r) => self.restored[rank as usize] = Some(r),
            Line::Checkpointed(step) => self.checkpointed = self.checkpointed.max(Some(step)),
            Line::Committed(step) => self.committed = self.committed.max(Some(step)),
            Line::Finished => self.finished += 1,
        }
    }

    fn all_restored(&self) -> bool {
        self.restored.iter().all(Option::is_some)
    }

    /// Every rank that got through its restore restored the same step,
    /// from one launch, with exactly its shard; returns that step.
    fn check_restores(&self, context: &str) -> Option<u64> {
        let done: Vec<(u32, Restore)> = self
            .restored
            .iter()
            .enumerate()
            .filter_map(|(rank, r)| r.map(|r| (rank as u32, r)))
            .collect();
        let steps: BTreeSet<Option<(u64, u32)>> = done
            .iter()
            .map(|(_, r)| r.map(|(step, launch, _)| (step, launch)))
            .collect();
        assert!(
            steps.len() <= 1,
            "{context}: ranks resumed from different steps or launches: {done:?}"
        );
        for (rank, restored) in &done {
            if let Some((step, launch, digest_seen)) = restored {
                let expected = digest(&shard_at(*rank, *step, *launch));
                assert_eq!(
                    *digest_seen, expected,
                    "{context}: rank {rank} restored another shard of step {step}"
                );
            }
        }
        steps.into_iter().next().flatten().map(|(step, _)| step)
    }
}

fn wait_until(rx: &Receiver<(u32, Line)>, seen: &mut Seen, done: impl Fn(&Seen) -> bool) {
    let deadline = Instant::now() + REPLY_TIMEOUT;
    while !done(seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => seen.absorb(line),
            Err(RecvTimeoutError::Timeout) => panic!("ranks stopped answering: {seen:?}"),
            Err(RecvTimeoutError::Disconnected) => panic!("every rank exited: {seen:?}"),
        }
    }
}

fn kill(child: &mut Reaper) {
    child.0.kill().expect("kill a rank");
    let status = child.0.wait().expect("reap a rank");
    assert!(
        status.signal() == Some(9) || status.success(),
        "a rank failed on its own: {status}"
    );
}

#[test]
fn group_checkpoints_survive_sigkill() {
    let seed = seed(SEED_ENV, DEFAULT_SEED);
    println!("group crash test seed {seed} (set {SEED_ENV} to replay another)");
    let mut rng = StdRng::seed_from_u64(seed);
    let (location, _keep) = new_location();
    let started = Instant::now();
    let mut newest_committed: Option<u64> = None;
    let mut newest_checkpointed: Option<u64> = None;
    let mut newest_restored: Option<u64> = None;
    let mut kills_during_restore = 0;
    let mut late_landed = 0;
    let mut late_completed = 0;
    let mut phases: BTreeMap<&str, usize> = BTreeMap::new();
    for round in 0..ROUNDS {
        let context = format!("round {round} (seed {seed})");
        // Some ranks leave their vote of a step a little after the
        // restored one in flight (only a rank's newest vote can be).
        let base = newest_committed.map_or(0, |s| s + 1);
        let late: Vec<Option<u64>> = (0..RANKS)
            .map(|_| (rng.random_range(0..3) == 0).then(|| base + rng.random_range(1..12)))
            .collect();
        let (mut children, rx) = spawn_launch(&location, round, None, &late);
        let mut seen = Seen::new();
        // The previous launch's votes in flight land during this restore.
        match rng.random_range(0..3) {
            0 => {}
            1 => wait_until(&rx, &mut seen, |s| s.restored.iter().any(Option::is_some)),
            _ => std::thread::sleep(Duration::from_micros(rng.random_range(0..30_000))),
        }
        let (landed, completed) = land_late_votes(shared_store(&location).as_ref());
        late_landed += landed;
        late_completed += completed;
        // Most kills land while the ranks checkpoint; some during restore.
        let early = rng.random_range(0..5) == 0;
        if early {
            std::thread::sleep(Duration::from_micros(rng.random_range(0..40_000)));
            seen.absorb_ready(&rx);
            kills_during_restore += usize::from(!seen.all_restored());
        } else {
            wait_until(&rx, &mut seen, Seen::all_restored);
            // (A rank that leaves a vote in flight may stop the launch
            // before its first commit.)
            if rng.random_range(0..3) == 0 && late.iter().all(Option::is_none) {
                wait_until(&rx, &mut seen, |s| s.committed.is_some());
            }
            std::thread::sleep(Duration::from_micros(rng.random_range(10_000..250_000)));
        }
        let victim = rng.random_range(0..RANKS) as usize;
        kill(&mut children[victim]);
        // The scheduler tears the rest of the job down a moment later.
        std::thread::sleep(Duration::from_micros(rng.random_range(0..20_000)));
        for (rank, child) in children.iter_mut().enumerate() {
            if rank != victim {
                kill(child);
            }
        }
        drop(children);
        seen.absorb_all(&rx);
        let store = shared_store(&location);
        for phase in kill_phases(store.as_ref(), round) {
            *phases.entry(phase).or_default() += 1;
        }
        let restored = seen.check_restores(&context);
        if seen.all_restored() {
            assert!(
                restored >= newest_committed,
                "{context}: resumed from {restored:?}, but step {newest_committed:?} was reported globally committed"
            );
            assert!(
                restored >= newest_restored,
                "{context}: went back from {newest_restored:?} to {restored:?}"
            );
            assert!(
                restored <= newest_checkpointed,
                "{context}: resumed from {restored:?}, never checkpointed"
            );
            newest_restored = restored;
        }
        println!(
            "  round {round}: resumed from {restored:?}; then checkpointed up to {:?}, committed up to {:?}",
            seen.checkpointed, seen.committed
        );
        newest_committed = newest_committed.max(seen.committed);
        newest_checkpointed = newest_checkpointed.max(seen.checkpointed);
    }

    // A clean launch resumes and commits a few steps; it and the launch
    // after it collect what the killed launches left behind.
    let store = shared_store(&location);
    let shards = |rank: u32| -> BTreeSet<String> {
        let prefix = format!("shards/{rank}/manifests/");
        store.list(&prefix).unwrap().into_iter().collect()
    };
    let before: Vec<BTreeSet<String>> = (0..RANKS).map(shards).collect();
    let clean_steps = 8;
    let (children, rx) = spawn_launch(&location, ROUNDS, Some(clean_steps), &[]);
    let mut seen = Seen::new();
    let (landed, completed) = land_late_votes(store.as_ref());
    late_landed += landed;
    late_completed += completed;
    wait_until(&rx, &mut seen, |s| s.finished == RANKS);
    drop(children);
    let resumed = seen.check_restores("clean launch");
    assert!(
        resumed >= newest_committed,
        "clean launch resumed from {resumed:?}"
    );
    let last = resumed.map_or(clean_steps - 1, |s| s + clean_steps);
    assert_eq!(
        seen.committed,
        Some(last),
        "the clean launch commits its last step: {:?} {:?}",
        store.list("group/commits/"),
        store.list("group/votes/")
    );
    // And the launch after it finds the clean launch's last step.
    let (children, rx) = spawn_launch(&location, ROUNDS + 1, Some(0), &[]);
    let mut seen = Seen::new();
    wait_until(&rx, &mut seen, |s| s.finished == RANKS);
    drop(children);
    assert_eq!(seen.check_restores("last launch"), Some(last));
    // Ranks run at their own pace, so a rank may have finished the clean
    // launch before the commits that retire the old shards existed; the
    // last launch's restores collect them. What is left is exactly the
    // newest KEEP_LAST commits and each rank's shards of them.
    let commits = store.list("group/commits/").unwrap();
    assert_eq!(commits.len(), KEEP_LAST, "{commits:?}");
    for (rank, old) in before.iter().enumerate() {
        let now = shards(rank as u32);
        let kept: Vec<_> = now.intersection(old).collect();
        assert!(
            kept.is_empty(),
            "rank {rank} kept shards of killed launches: {kept:?}"
        );
        assert_eq!(now.len(), KEEP_LAST, "rank {rank}: {now:?}");
    }
    let votes = store.list("group/votes/").unwrap();
    assert!(votes.is_empty(), "votes outlived their commits: {votes:?}");

    for key in store.list("").unwrap() {
        store.delete(&key).unwrap();
    }
    println!(
        "{ROUNDS} rounds in {:.1?}: newest step reported committed {newest_committed:?}, {kills_during_restore} kills during a restore, {late_landed} late votes landed ({late_completed} completed a vote set)",
        started.elapsed()
    );
    for (phase, count) in &phases {
        println!("  {count:3} kills left {phase}");
    }
    assert!(
        phases.contains_key(PENDING_SHARD),
        "no kill landed between a shard and its commit: {phases:?}"
    );
    assert!(late_landed > 0, "no vote was left in flight");
    assert!(
        newest_committed.is_some_and(|s| s > 0),
        "the killed launches never committed past step 0"
    );
}

impl Seen {
    /// Takes the lines already received.
    fn absorb_ready(&mut self, rx: &Receiver<(u32, Line)>) {
        while let Ok(line) = rx.try_recv() {
            self.absorb(line);
        }
    }

    /// Takes every line still buffered (the children are dead).
    fn absorb_all(&mut self, rx: &Receiver<(u32, Line)>) {
        while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            self.absorb(line);
        }
    }
}
