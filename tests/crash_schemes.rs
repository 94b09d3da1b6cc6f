//! Crash consistency of the incremental and copy-on-write schemes with a
//! composite (serde + paged) state: a child process mutates a few pages per
//! step and checkpoints every step; it is killed with SIGKILL at seeded
//! random moments — also while a background persist is running — and the
//! parent restores and compares byte for byte with a replay of the steps.
//!
//! Set `CKPT_CRASH_SEED` to replay another seed.

mod common;

use ckpt::{Checkpointer, FsStorage, Scheme};
use common::child::run_ignored_test;
use common::paged_sim::Sim;
use common::seed;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

const STORE_ENV: &str = "CKPT_CRASH_SCHEMES_STORE";
const SCHEME_ENV: &str = "CKPT_CRASH_SCHEMES_SCHEME";
const SEED_ENV: &str = "CKPT_CRASH_SEED";
const DEFAULT_SEED: u64 = 0x05C4_E3E5_2026;
const KILLS_PER_SCHEME: usize = 30;
const CHILD_LIFETIME: Duration = Duration::from_secs(30);

fn scheme_named(name: &str) -> Scheme {
    match name {
        "incremental" => Scheme::Incremental,
        "cow" => Scheme::CopyOnWrite,
        other => panic!("unknown scheme {other}"),
    }
}

fn open(dir: &Path, scheme: Scheme) -> ckpt::Result<Checkpointer> {
    Checkpointer::builder()
        .storage(FsStorage::open(dir)?)
        .scheme(scheme)
        .keep_last(2)
        .max_chain(5)
        .chunk_size(16 * 1024)
        .build()
}

/// The child: resumes and checkpoints every step until killed, printing
/// each step as soon as it is known to be durable.
#[test]
#[ignore = "the child process of every_scheme_survives_sigkill; does nothing alone"]
fn crash_schemes_child_process() {
    let (Some(dir), Ok(scheme)) = (std::env::var_os(STORE_ENV), std::env::var(SCHEME_ENV)) else {
        return;
    };
    let born = Instant::now();
    let mut ck = open(Path::new(&dir), scheme_named(&scheme)).expect("child opens the store");
    let mut sim = match ck.restore_latest::<Sim>().expect("child restores") {
        Some(restored) => restored.state,
        None => Sim::new(),
    };
    let mut stdout = std::io::stdout().lock();
    let mut reported = 0;
    while born.elapsed() < CHILD_LIFETIME {
        sim.advance();
        let step = sim.step;
        ck.checkpoint(step, &mut sim).expect("child checkpoints");
        if let Some(committed) = ck.last_committed().filter(|c| c.info.seq > reported) {
            reported = committed.info.seq;
            let line = format!("committed {}", committed.info.step);
            if writeln!(stdout, "{line}")
                .and_then(|()| stdout.flush())
                .is_err()
            {
                return;
            }
        }
    }
}

fn spawn_child(dir: &Path, scheme: &str) -> (Child, std::thread::JoinHandle<Vec<u64>>) {
    let mut child = run_ignored_test("crash_schemes_child_process")
        .env(STORE_ENV, dir)
        .env(SCHEME_ENV, scheme)
        .spawn()
        .expect("spawn the child test process");
    let stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|line| line.rsplit_once("committed ")?.1.trim().parse().ok())
            .collect()
    });
    (child, reader)
}

fn survive_kills(scheme: &str, rng: &mut StdRng) -> (usize, u64) {
    let store = tempfile::tempdir().unwrap();
    let dir = store.path();
    let mut newest_reported: Option<u64> = None;
    let mut newest_restored: Option<u64> = None;
    let mut commits = 0;
    for round in 0..KILLS_PER_SCHEME {
        let (mut child, reader) = spawn_child(dir, scheme);
        std::thread::sleep(Duration::from_micros(rng.random_range(0..300_000)));
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(9), "{scheme} round {round}: {status}");
        let reported = reader.join().unwrap();
        commits += reported.len();
        newest_reported = reported.last().copied().max(newest_reported);

        let mut ck = open(dir, Scheme::Full).unwrap();
        let listing = ck.list().unwrap();
        assert!(listing.unreadable.is_empty(), "{:?}", listing.unreadable);
        match ck.restore_latest::<Sim>().unwrap() {
            Some(restored) => {
                let step = restored.step;
                assert!(
                    Some(step) >= newest_reported.max(newest_restored),
                    "{scheme} round {round}: restored {step}, reported {newest_reported:?}, \
                     restored before {newest_restored:?}"
                );
                assert!(restored.skipped.is_empty(), "{:?}", restored.skipped);
                let expected = Sim::at(step);
                assert!(
                    restored.state == expected,
                    "{scheme} round {round}: step {step} restored with a different state"
                );
                newest_restored = Some(step);
            }
            None => assert_eq!(newest_reported, None, "{scheme} round {round}"),
        }
    }
    (commits, newest_restored.unwrap_or(0))
}

#[test]
fn every_scheme_survives_sigkill() {
    let seed = seed(SEED_ENV, DEFAULT_SEED);
    println!("crash test seed {seed} (set {SEED_ENV} to replay another)");
    let mut rng = StdRng::seed_from_u64(seed);
    for scheme in ["incremental", "cow"] {
        let started = Instant::now();
        let (commits, newest) = survive_kills(scheme, &mut rng);
        println!(
            "{scheme}: {KILLS_PER_SCHEME} kills in {:.1?}, {commits} commits reported, reached step {newest}",
            started.elapsed()
        );
        assert!(commits > 0, "{scheme}: no child ever committed");
    }
}
