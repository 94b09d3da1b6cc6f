//! Crash consistency with real processes: this test binary runs itself as a
//! child that checkpoints in a loop, kills it with SIGKILL at seeded random
//! moments, and checks that the store always restores a checkpoint at least
//! as new as the last one the child reported committed, with exactly the
//! state of its step.
//!
//! Set `CKPT_CRASH_SEED` to replay another seed.

mod common;

use ckpt::{Checkpointer, FsStorage};
use common::child::{Reaper, resume_step, run_ignored_test, spawn_reporting};
use common::{mix, seed};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Where the child finds its store; without it the child test does nothing.
const STORE_ENV: &str = "CKPT_CRASH_CHILD_STORE";
const SEED_ENV: &str = "CKPT_CRASH_SEED";
const DEFAULT_SEED: u64 = 0xC4A5_11ED_2026;
const KILLS: usize = 60;
const KEEP_LAST: usize = 2;
const CHUNK_SIZE: usize = 64 * 1024;
/// A child that is never killed (the parent died) stops on its own.
const CHILD_LIFETIME: Duration = Duration::from_secs(30);

/// The state the child checkpoints: a pure function of its step.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Sim {
    step: u64,
    label: String,
    energy: f64,
    values: Vec<u64>,
}

/// 64 Ki to 384 Ki values (0.5 to 3 MB in memory), with an entropy that
/// varies by step so that packs differ in size and compressibility.
fn sim_at(step: u64) -> Sim {
    let len = 65_536 + (mix(step) % 327_680) as usize;
    let shift = step % 56;
    let values = (0..len as u64)
        .map(|i| mix(step.wrapping_mul(0x1_0000_0001) ^ i) >> shift)
        .collect();
    Sim {
        step,
        label: format!("step {step} of the crash test ✓"),
        energy: step as f64 * 0.5 - 1e-3,
        values,
    }
}

fn open(dir: &Path) -> ckpt::Result<Checkpointer> {
    Checkpointer::builder()
        .storage(FsStorage::open(dir)?)
        .keep_last(KEEP_LAST)
        .chunk_size(CHUNK_SIZE)
        .compression_level(1)
        .build()
}

/// The child: resumes from the store and checkpoints until it is killed.
#[test]
#[ignore = "the child process of crash_consistency_under_sigkill; does nothing alone"]
fn crash_child_process() {
    let Some(dir) = std::env::var_os(STORE_ENV) else {
        return;
    };
    let born = Instant::now();
    let mut ck = open(Path::new(&dir)).expect("child opens the store");
    let mut step = resume_step(ck.restore_latest::<Sim>().expect("child restores"), sim_at);
    let mut stdout = std::io::stdout().lock();
    while born.elapsed() < CHILD_LIFETIME {
        let mut state = sim_at(step);
        if writeln!(stdout, "begin {step}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            return;
        }
        ck.checkpoint(step, &mut state).expect("child checkpoints");
        if writeln!(stdout, "committed {step}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            return; // the parent is gone
        }
        step += 1;
    }
}

/// What the store looked like right after a kill, before it was reopened.
#[derive(Debug, Default, Clone, Copy)]
struct Evidence {
    temps: usize,
    packs: usize,
    manifests: usize,
}

fn inspect(dir: &Path) -> Evidence {
    let mut evidence = Evidence::default();
    for (sub, count) in [
        ("packs", &mut evidence.packs),
        ("manifests", &mut evidence.manifests),
    ] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for entry in entries {
            let name = entry.unwrap().file_name();
            if name.to_string_lossy().starts_with(".tmp-") {
                evidence.temps += 1;
            } else {
                *count += 1;
            }
        }
    }
    evidence
}

/// Where a kill landed, from what it left in the store and what the child
/// reported last: `inside` when it had begun a `checkpoint()` call that
/// it did not report committed.
fn phase(evidence: Evidence, committed_this_round: bool, inside: bool) -> &'static str {
    if evidence.temps > 0 {
        "during a put (temp file left)"
    } else if evidence.manifests > KEEP_LAST {
        "after the manifest, before retention"
    } else if evidence.packs > evidence.manifests {
        "after a pack, before its manifest, or mid-retention"
    } else if inside {
        "inside checkpoint(), no write in flight (capture, encoding, fsync)"
    } else if !committed_this_round {
        "before the first commit of the round"
    } else {
        "between checkpoints"
    }
}

/// What the child reports: the word's index in [`REPORTS`], and a step.
const REPORTS: &[&str] = &["committed", "begin"];
const COMMITTED: usize = 0;

/// Starts a child on `dir`; its reports arrive on the channel.
fn spawn_child(
    dir: &Path,
) -> (
    Reaper,
    mpsc::Receiver<(usize, u64)>,
    std::thread::JoinHandle<()>,
) {
    let mut command = run_ignored_test("crash_child_process");
    command.env(STORE_ENV, dir);
    spawn_reporting(command, REPORTS)
}

fn temp_files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for sub in ["", "packs", "manifests"] {
        if let Ok(entries) = std::fs::read_dir(dir.join(sub)) {
            for entry in entries {
                let name = entry.unwrap().file_name().to_string_lossy().into_owned();
                if name.starts_with(".tmp-") {
                    found.push(format!("{sub}/{name}"));
                }
            }
        }
    }
    found
}

#[test]
fn crash_consistency_under_sigkill() {
    let seed = seed(SEED_ENV, DEFAULT_SEED);
    println!("crash test seed {seed} (set {SEED_ENV} to replay another)");
    let mut rng = StdRng::seed_from_u64(seed);
    let store = tempfile::tempdir().unwrap();
    let dir = store.path();
    let started = Instant::now();

    let mut newest_reported: Option<u64> = None;
    let mut newest_restored: Option<u64> = None;
    let mut phases: std::collections::BTreeMap<&str, usize> = Default::default();
    let mut commits_seen = 0;
    for round in 0..KILLS {
        // Two thirds of the kills land 0-60 ms after the start (so some
        // fall before the first commit); the rest 0-120 ms after the first
        // commit of the round, so that even a slow machine sees kills in
        // the middle of later checkpoints and retention.
        let after_first_commit = rng.random_range(0..3) == 0;
        let delay = Duration::from_micros(if after_first_commit {
            rng.random_range(0..120_000)
        } else {
            rng.random_range(0..60_000)
        });
        let (mut child, rx, reader) = spawn_child(dir);
        let mut reports = Vec::new();
        if after_first_commit {
            loop {
                match rx.recv_timeout(Duration::from_secs(20)) {
                    Ok(report) => {
                        reports.push(report);
                        if report.0 == COMMITTED {
                            break;
                        }
                    }
                    Err(e) => panic!("round {round}: the child never committed ({e})"),
                }
            }
        }
        std::thread::sleep(delay);
        child.0.kill().unwrap();
        let status = child.0.wait().unwrap();
        assert_eq!(
            status.signal(),
            Some(9),
            "round {round}: the child ended on its own ({status}) instead of being killed"
        );
        reader.join().unwrap();
        reports.extend(rx.try_iter());
        let reported: Vec<u64> = reports
            .iter()
            .filter(|(word, _)| *word == COMMITTED)
            .map(|(_, step)| *step)
            .collect();
        let inside = reports.last().is_some_and(|(word, _)| *word != COMMITTED);
        commits_seen += reported.len();
        assert!(
            reported.windows(2).all(|w| w[1] == w[0] + 1),
            "round {round}: steps not consecutive: {reported:?}"
        );
        if let Some(&first) = reported.first() {
            let resume_at = newest_restored.map_or(0, |s| s + 1);
            assert_eq!(first, resume_at, "round {round}: the child did not resume");
        }
        newest_reported = reported.last().copied().max(newest_reported);
        let evidence = inspect(dir);
        *phases
            .entry(phase(evidence, !reported.is_empty(), inside))
            .or_default() += 1;

        let mut ck = open(dir).unwrap();
        assert!(
            temp_files_under(dir).is_empty(),
            "round {round}: opening the store left temp files: {:?}",
            temp_files_under(dir)
        );
        let listing = ck.list().unwrap();
        assert!(
            listing.unreadable.is_empty(),
            "round {round}: unreadable manifests after a kill: {:?}",
            listing.unreadable
        );
        // Kills between a manifest and its retention pass can leave more
        // than KEEP_LAST checkpoints, but they are always in commit order.
        assert!(
            listing
                .checkpoints
                .windows(2)
                .all(|w| w[0].seq < w[1].seq && w[0].step < w[1].step),
            "round {round}: {:?}",
            listing.checkpoints
        );
        match ck.restore_latest::<Sim>().unwrap() {
            Some(restored) => {
                assert!(
                    Some(restored.step) >= newest_reported,
                    "round {round} (seed {seed}): restored step {} but the child reported {:?} committed",
                    restored.step,
                    newest_reported
                );
                assert!(
                    Some(restored.step) >= newest_restored,
                    "round {round}: the store went back from {newest_restored:?} to {}",
                    restored.step
                );
                assert!(restored.skipped.is_empty(), "{:?}", restored.skipped);
                assert_eq!(restored.state.step, restored.step);
                let expected = sim_at(restored.step);
                assert!(
                    restored.state == expected,
                    "round {round} (seed {seed}): step {} restored with a different state",
                    restored.step
                );
                assert_eq!(
                    listing.checkpoints.last().map(|c| &c.key),
                    Some(&restored.info.key)
                );
                newest_restored = Some(restored.step);
            }
            None => assert_eq!(
                newest_reported, None,
                "round {round} (seed {seed}): nothing restored after a reported commit"
            ),
        }
        drop(ck); // releases the lock for the next child
    }

    // One clean checkpoint collects whatever the kills left behind.
    let mut ck = open(dir).unwrap();
    let step = newest_restored.map_or(0, |s| s + 1);
    ck.checkpoint(step, &mut sim_at(step)).unwrap();
    drop(ck);
    let evidence = inspect(dir);
    assert_eq!(
        (evidence.temps, evidence.packs, evidence.manifests),
        (0, KEEP_LAST, KEEP_LAST),
        "after a clean checkpoint the store holds exactly the retained checkpoints"
    );

    println!(
        "{KILLS} kills in {:.1?}; {commits_seen} commits reported, newest restored step {newest_restored:?}",
        started.elapsed()
    );
    for (phase, count) in &phases {
        println!("  {count:3} kills landed {phase}");
    }
    assert!(commits_seen > 0, "no child ever committed");
    let mid_checkpoint = phases
        .iter()
        .filter(|(p, _)| !p.starts_with("before") && !p.starts_with("between"))
        .map(|(_, n)| n)
        .sum::<usize>();
    assert!(
        mid_checkpoint > 0,
        "no kill landed inside a checkpoint: {phases:?}"
    );
}
