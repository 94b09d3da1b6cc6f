//! Crash consistency with tiers: this test binary runs itself as a child
//! that checkpoints incrementally on a local tier and drains every other
//! checkpoint to a remote one (a second directory), kills it with SIGKILL
//! at seeded random moments (many during drains), and checks after each
//! kill that no tier holds a manifest whose packs are incomplete, and that
//! a restore is exact byte for byte: at least as new as the last commit
//! the child reported, or, after the local tier is wiped (a lost node),
//! as the last drain it reported.
//!
//! Set `CKPT_CRASH_SEED` to replay another seed.

mod common;

use ckpt::storage::FaultyStorage;
use ckpt::{Checkpointer, DrainEvent, FsStorage, Scheme, Storage};
use common::child::{Reaper, resume_step, run_ignored_test, spawn_reporting};
use common::tiers::assert_whole;
use common::{mix, seed};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

/// Where the child finds its tiers; without it the child does nothing.
const DIR_ENV: &str = "CKPT_CRASH_TIERS_CHILD_DIR";
const SEED_ENV: &str = "CKPT_CRASH_SEED";
const DEFAULT_SEED: u64 = 0x71E2_5EED_2026;
const KILLS: usize = 30;
/// Every how many kills the local tier is wiped as well.
const WIPE_EVERY: usize = 3;
const CHILD_LIFETIME: Duration = Duration::from_secs(30);
/// Microseconds added to every operation on the child's remote tier (a
/// remote store is slow, so kills land in drains): 0 or 3 ms, drawn per
/// round, so that some rounds see drains finish and others mostly kill
/// them half-way.
const LATENCY_ENV: &str = "CKPT_CRASH_TIERS_CHILD_LATENCY_US";

/// The state at `step`: 32 Ki to 96 Ki values, a part of which changes
/// from step to step (so increments are smaller than the state).
fn sim_at(step: u64) -> Vec<u64> {
    let len = 32_768 + (mix(step / 4) % 65_536) as usize;
    (0..len as u64)
        .map(|i| {
            if i % 7 == step % 7 {
                mix(step ^ i)
            } else {
                mix(i)
            }
        })
        .collect()
}

fn dirs(root: &Path) -> (PathBuf, PathBuf) {
    (root.join("local"), root.join("remote"))
}

/// Opens the tiers; the child's remote is slowed by `latency` per
/// operation, as a remote store is, so that kills often land in a drain.
fn open(root: &Path, latency: Duration) -> ckpt::Result<Checkpointer> {
    let (local, remote) = dirs(root);
    let remote = FaultyStorage::new(FsStorage::open(remote)?);
    remote.control().set_latency(latency);
    Checkpointer::builder()
        .tier("local", FsStorage::open(local)?)
        .tier("remote", remote)
        .keep_last(2)
        .tier_keep_last("remote", 2)
        .drain_every(2)
        .drain_retry(Duration::from_millis(10))
        .scheme(Scheme::Incremental)
        .max_chain(4)
        .chunk_size(16 * 1024)
        .build()
}

/// The child: resumes from the tiers and checkpoints until it is killed,
/// reporting each commit and each finished drain.
#[test]
#[ignore = "the child process of tiers_survive_sigkill_during_drains; does nothing alone"]
fn crash_tiers_child_process() {
    let Some(dir) = std::env::var_os(DIR_ENV) else {
        return;
    };
    let born = Instant::now();
    let latency = std::env::var(LATENCY_ENV)
        .ok()
        .and_then(|us| us.parse().ok())
        .map_or(Duration::ZERO, Duration::from_micros);
    let mut ck = open(Path::new(&dir), latency).expect("child opens the tiers");
    let drains = ck.subscribe_drains();
    let mut step = resume_step(
        ck.restore_latest::<Vec<u64>>().expect("child restores"),
        sim_at,
    );
    let mut stdout = std::io::stdout().lock();
    while born.elapsed() < CHILD_LIFETIME {
        let mut state = sim_at(step);
        ck.checkpoint(step, &mut state).expect("child checkpoints");
        let mut report = format!("committed {step}\n");
        for event in drains.try_iter() {
            if let DrainEvent::Drained { step, .. } = event {
                report.push_str(&format!("drained {step}\n"));
            }
        }
        if stdout
            .write_all(report.as_bytes())
            .and_then(|()| stdout.flush())
            .is_err()
        {
            return; // the parent is gone
        }
        step += 1;
    }
}

/// What the child reports: the word's index in [`REPORTS`], and a step.
const REPORTS: &[&str] = &["committed", "drained"];
const COMMITTED: usize = 0;

fn spawn_child(
    root: &Path,
    latency_us: u64,
) -> (
    Reaper,
    mpsc::Receiver<(usize, u64)>,
    std::thread::JoinHandle<()>,
) {
    let mut command = run_ignored_test("crash_tiers_child_process");
    command
        .env(DIR_ENV, root)
        .env(LATENCY_ENV, latency_us.to_string());
    spawn_reporting(command, REPORTS)
}

/// True when the remote tier shows the kill landed in a drain or its
/// retention: a temp file of a pack or manifest being written, or more
/// manifests than its retention keeps. (A lower bound: a kill between two
/// pack copies leaves no such trace.)
fn mid_drain(remote: &Path) -> bool {
    let temps = ["packs", "manifests"].iter().any(|sub| {
        std::fs::read_dir(remote.join(sub)).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
        })
    });
    let store = FsStorage::open_read_only(remote).unwrap();
    temps || store.list("manifests/").unwrap().len() > 2
}

#[test]
fn tiers_survive_sigkill_during_drains() {
    let seed = seed(SEED_ENV, DEFAULT_SEED);
    println!("tier crash test seed {seed} (set {SEED_ENV} to replay another)");
    let mut rng = StdRng::seed_from_u64(seed);
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let (local, remote) = dirs(root);
    let started = Instant::now();
    let mut newest_committed: Option<u64> = None;
    let mut newest_drained: Option<u64> = None;
    let (mut drains_seen, mut wipes, mut in_drain) = (0, 0, 0);
    for round in 0..KILLS {
        let latency_us = if rng.random_range(0..2) == 0 {
            0
        } else {
            3_000
        };
        let (mut child, rx, reader) = spawn_child(root, latency_us);
        // Let the child commit once, then kill it 0-120 ms later: drains
        // of every other checkpoint run most of that time.
        let first = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(report) => report,
            Err(e) => panic!("round {round}: the child never reported ({e})"),
        };
        std::thread::sleep(Duration::from_micros(rng.random_range(0..120_000)));
        child.0.kill().unwrap();
        let status = child.0.wait().unwrap();
        assert_eq!(status.signal(), Some(9), "round {round}: {status}");
        reader.join().unwrap();
        for (word, step) in std::iter::once(first).chain(rx.try_iter()) {
            if word == COMMITTED {
                newest_committed = newest_committed.max(Some(step));
            } else {
                drains_seen += 1;
                newest_drained = newest_drained.max(Some(step));
            }
        }
        if remote.exists() && mid_drain(&remote) {
            in_drain += 1;
        }
        // No tier holds a manifest whose packs are incomplete.
        let remote_steps = assert_whole(
            "remote",
            Arc::new(FsStorage::open_read_only(&remote).unwrap()),
        );
        assert_whole(
            "local",
            Arc::new(FsStorage::open_read_only(&local).unwrap()),
        );
        if let Some(drained) = newest_drained {
            assert!(
                remote_steps.last().is_some_and(|&s| s >= drained),
                "round {round}: drained {drained} reported, remote holds {remote_steps:?}"
            );
        }

        let wipe = round % WIPE_EVERY == WIPE_EVERY - 1;
        if wipe {
            wipes += 1;
            std::fs::remove_dir_all(&local).unwrap();
        }
        let mut ck = open(root, Duration::ZERO).unwrap();
        let restored = ck.restore_latest::<Vec<u64>>().unwrap();
        let floor = if wipe {
            newest_drained
        } else {
            newest_committed
        };
        match restored {
            Some(restored) => {
                assert!(
                    restored.state == sim_at(restored.step),
                    "round {round}: restored state of step {} is not exact",
                    restored.step
                );
                assert!(
                    floor.is_none_or(|f| restored.step >= f),
                    "round {round} (wipe {wipe}): restored {} older than {floor:?}",
                    restored.step
                );
                let tier = restored.tier.unwrap();
                if wipe {
                    assert!(tier.first_tier_lost && tier.index == 1, "{tier:?}");
                }
                // The child resumes after it: later reports are newer.
                newest_committed = Some(restored.step);
                newest_drained = newest_drained.min(Some(restored.step));
            }
            None => assert!(floor.is_none(), "round {round}: nothing restored"),
        }
        drop(ck);
    }
    println!(
        "{KILLS} kills ({wipes} with the local tier wiped, {in_drain} mid-drain), {drains_seen} drains reported, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(drains_seen > 0, "no drain finished in any round");
}
