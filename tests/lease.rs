//! One writer per store on stores without a lock of their own: the writer
//! lease (`lease/` objects, created with `put_if_absent`, renewed while the
//! checkpointer lives).
//!
//! In one process: a second checkpointer is refused while the first
//! lives; a writer on "another machine" (a claim this process cannot judge
//! by its process table) is watched for its TTL; a writer that lost its
//! lease writes and deletes nothing. With real processes, on a shared
//! directory and (with the S3 test server) on one S3 prefix: a second
//! writer is refused, a writer killed with SIGKILL is replaced at once,
//! two writers started together leave exactly one writing, and nothing a
//! killed writer reported committed is ever lost.

mod common;

use ckpt::{Checkpointer, Error, FsStorage, MemStorage, Reader, Storage};
use common::child::{Reaper, run_ignored_test};
use common::{keys, mix};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

const TTL: Duration = Duration::from_millis(400);

fn state_at(step: u64) -> Vec<u64> {
    (0..20_000u64).map(|i| mix(step ^ (i << 20))).collect()
}

fn writer(store: impl Storage + 'static) -> ckpt::Result<Checkpointer> {
    Checkpointer::builder()
        .storage(store)
        .keep_last(2)
        .chunk_size(16 << 10)
        .lease_ttl(TTL)
        .build()
}

#[test]
fn a_second_writer_is_refused_until_the_first_is_dropped() {
    let store = MemStorage::new();
    let mut first = writer(store.clone()).unwrap();
    first.checkpoint(1, &mut state_at(1)).unwrap();
    let started = Instant::now();
    let second = writer(store.clone());
    assert!(
        matches!(&second, Err(Error::WriterActive { holder }) if holder.contains("pid")),
        "{second:?}"
    );
    assert!(
        started.elapsed() < TTL,
        "a live holder in this process is known at once"
    );
    // Refused before it wrote anything.
    assert_eq!(keys(&store, "manifests/").len(), 1);
    drop(first);
    let started = Instant::now();
    let mut second = writer(store.clone()).unwrap();
    assert!(started.elapsed() < TTL, "a released lease is taken at once");
    let restored = second.restore_latest::<Vec<u64>>().unwrap().unwrap();
    assert_eq!((restored.step, restored.state), (1, state_at(1)));
    // Readers never need the lease.
    assert!(
        Reader::new(store.clone())
            .restore_latest::<Vec<u64>>()
            .unwrap()
            .is_some()
    );
    // Only the newest epoch's objects stay.
    assert_eq!(
        keys(&store, "lease/").len(),
        2,
        "{:?}",
        keys(&store, "lease/")
    );
}

#[test]
fn an_exclusive_directory_needs_no_lease_and_a_shared_one_takes_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut ck = writer(FsStorage::open(dir.path()).unwrap()).unwrap();
    ck.checkpoint(0, &mut state_at(0)).unwrap();
    drop(ck);
    assert!(
        !dir.path().join("lease").exists(),
        "the lock file already keeps writers out"
    );
    let shared = || FsStorage::open_shared(dir.path()).unwrap();
    let _held = writer(shared()).unwrap();
    assert!(matches!(writer(shared()), Err(Error::WriterActive { .. })));
}

/// A claim and beat as a writer on another machine would write them.
fn foreign_claim(epoch: u64, ttl_ms: u64) -> Vec<u8> {
    format!(
        "ckpt-lease-claim 1\nholder {:032x}\nhost elsewhere\nboot 00000000-another-boot\npidns pid:[1]\npid 1\nstart 1\nttl_ms {ttl_ms}\n",
        0xabcu128 + u128::from(epoch)
    )
    .into_bytes()
}

fn foreign_beat(epoch: u64, count: u64, released: bool) -> Vec<u8> {
    format!(
        "ckpt-lease-beat 1\nholder {:032x}\ncount {count}\nreleased {}\n",
        0xabcu128 + u128::from(epoch),
        u8::from(released)
    )
    .into_bytes()
}

fn epoch_key(epoch: u64) -> String {
    format!("lease/{epoch:020}")
}

#[test]
fn a_writer_on_another_machine_is_watched_for_its_ttl() {
    let store = MemStorage::new();
    store.put(&epoch_key(1), &foreign_claim(1, 300)).unwrap();
    store
        .put(
            &format!("{}.beat", epoch_key(1)),
            &foreign_beat(1, 1, false),
        )
        .unwrap();
    // While its beat moves, it is alive.
    let beating = Arc::new(AtomicBool::new(true));
    let beater = {
        let (store, beating) = (store.clone(), beating.clone());
        std::thread::spawn(move || {
            let mut count = 1;
            while beating.load(Ordering::Relaxed) {
                count += 1;
                store
                    .put(
                        &format!("{}.beat", epoch_key(1)),
                        &foreign_beat(1, count, false),
                    )
                    .unwrap();
                std::thread::sleep(Duration::from_millis(40));
            }
        })
    };
    let refused = writer(store.clone());
    assert!(
        matches!(&refused, Err(Error::WriterActive { holder }) if holder.contains("elsewhere")),
        "{refused:?}"
    );
    beating.store(false, Ordering::Relaxed);
    beater.join().unwrap();
    // Silent for its TTL: taken over with the next epoch.
    let started = Instant::now();
    let taker = writer(store.clone()).unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300),
        "took over after {waited:?}"
    );
    assert!(keys(&store, "lease/").contains(&epoch_key(2)));
    drop(taker);
    // A released foreign lease is taken without waiting.
    store.put(&epoch_key(3), &foreign_claim(3, 60_000)).unwrap();
    store
        .put(&format!("{}.beat", epoch_key(3)), &foreign_beat(3, 9, true))
        .unwrap();
    let started = Instant::now();
    drop(writer(store.clone()).unwrap());
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_writer_that_lost_its_lease_writes_and_deletes_nothing() {
    let store = MemStorage::new();
    let mut ck = writer(store.clone()).unwrap();
    for step in 0..4 {
        ck.checkpoint(step, &mut state_at(step)).unwrap();
    }
    ck.flush().unwrap(); // nothing in flight, the model's saved state included
    let before: BTreeSet<String> = keys(&store, "")
        .into_iter()
        .filter(|k| !k.starts_with("lease/"))
        .collect();
    // Another machine took the store over (as it may once this writer's
    // lease lapsed, e.g. while it was paused).
    let top = keys(&store, "lease/")
        .iter()
        .filter_map(|k| k.strip_prefix("lease/")?.parse::<u64>().ok())
        .max()
        .unwrap();
    store
        .put(&epoch_key(top + 1), &foreign_claim(top + 1, 60_000))
        .unwrap();
    std::thread::sleep(TTL); // past the half-TTL that a renewal is trusted
    let mut fenced = false;
    for step in 4..8 {
        match ck.checkpoint(step, &mut state_at(step)) {
            Err(e) => {
                assert!(
                    e.report().to_string().contains("took this store over"),
                    "{e}"
                );
                fenced = true;
            }
            Ok(_) => panic!("a fenced writer committed step {step}"),
        }
    }
    assert!(fenced);
    drop(ck);
    let after: BTreeSet<String> = keys(&store, "")
        .into_iter()
        .filter(|k| !k.starts_with("lease/"))
        .collect();
    assert_eq!(before, after, "the fenced writer changed the store");
    let restored = Reader::new(store)
        .restore_latest::<Vec<u64>>()
        .unwrap()
        .unwrap();
    assert_eq!((restored.step, restored.state), (3, state_at(3)));
}

// ---- real processes -------------------------------------------------------

const CHILD_ENV: &str = "CKPT_LEASE_CHILD_STORE";
const CHILD_LIFETIME: Duration = Duration::from_secs(60);

/// Where a child writes: `dir:<path>` (a shared directory) or
/// `s3:<prefix>` (the S3 test server).
fn open_store(spec: &str) -> Arc<dyn Storage> {
    if let Some(dir) = spec.strip_prefix("dir:") {
        return Arc::new(FsStorage::open_shared(dir).expect("shared directory"));
    }
    #[cfg(feature = "object-store")]
    if let Some(prefix) = spec.strip_prefix("s3:") {
        return Arc::new(common::s3::builder(prefix).build().expect("S3 store"));
    }
    panic!("unknown store {spec}")
}

/// The child: takes the store (or says it was refused), restores, and
/// checkpoints until killed, reporting each durable step.
#[test]
#[ignore = "the child process of the lease process tests; does nothing alone"]
fn lease_child_process() {
    let Some(spec) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let born = Instant::now();
    let mut out = std::io::stdout().lock();
    let mut ck = match writer(open_store(&spec.to_string_lossy())) {
        Ok(ck) => ck,
        Err(Error::WriterActive { holder }) => {
            let _ = writeln!(out, "refused {holder}");
            return;
        }
        Err(e) => panic!("child build: {e}"),
    };
    let mut step = match ck.restore_latest::<Vec<u64>>().expect("child restores") {
        Some(r) => {
            assert!(
                r.state == state_at(r.step),
                "restored state differs at {}",
                r.step
            );
            let _ = writeln!(out, "restored {}", r.step);
            r.step + 1
        }
        None => {
            let _ = writeln!(out, "restored nothing");
            0
        }
    };
    while born.elapsed() < CHILD_LIFETIME {
        ck.checkpoint(step, &mut state_at(step))
            .expect("child checkpoints");
        if writeln!(out, "committed {step}")
            .and_then(|()| out.flush())
            .is_err()
        {
            return;
        }
        step += 1;
    }
}

/// What a child said, line by line.
#[derive(Debug, PartialEq)]
enum Said {
    Refused,
    Restored(Option<u64>),
    Committed(u64),
}

fn spawn_child(spec: &str) -> (Reaper, mpsc::Receiver<Said>) {
    let mut child = run_ignored_test("lease_child_process")
        .env(CHILD_ENV, spec)
        .spawn()
        .expect("spawn the child");
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let said = if line.contains("refused ") {
                Said::Refused
            } else if let Some((_, n)) = line.rsplit_once("restored ") {
                Said::Restored(n.trim().parse().ok())
            } else if let Some((_, n)) = line.rsplit_once("committed ") {
                Said::Committed(n.trim().parse().expect("a step"))
            } else {
                continue;
            };
            if tx.send(said).is_err() {
                break;
            }
        }
    });
    (Reaper(child), rx)
}

const WAIT: Duration = Duration::from_secs(60);

fn next(rx: &mpsc::Receiver<Said>, who: &str) -> Said {
    rx.recv_timeout(WAIT)
        .unwrap_or_else(|e| panic!("{who} said nothing: {e}"))
}

/// Runs the scenario on `spec`: refusal, kills with takeover, and a race
/// of two starters; returns how many kills it made.
fn writers_take_turns(spec: &str, seed: u64) -> usize {
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut holder, mut said) = spawn_child(spec);
    assert_eq!(next(&said, "first writer"), Said::Restored(None));
    let mut last_committed = None;
    const KILLS: usize = 6;
    for round in 0..KILLS {
        // Let it commit, then try a second writer beside it.
        while let Said::Committed(step) = next(&said, "writer") {
            last_committed = Some(step);
            if rng.random_bool(0.3) {
                break;
            }
        }
        let (_second, second_said) = spawn_child(spec);
        assert_eq!(
            next(&second_said, "second writer"),
            Said::Refused,
            "round {round}"
        );
        // Kill the holder at a random moment of a checkpoint.
        std::thread::sleep(Duration::from_millis(rng.random_range(0..40)));
        let _ = holder.0.kill();
        let _ = holder.0.wait();
        while let Ok(Said::Committed(step)) = said.try_recv() {
            last_committed = Some(step);
        }
        // Two start together: exactly one takes over, at once, and loses
        // nothing the killed one committed.
        let started = Instant::now();
        let (a, a_said) = spawn_child(spec);
        let (b, b_said) = spawn_child(spec);
        let (first, second) = (next(&a_said, "starter a"), next(&b_said, "starter b"));
        let (winner, winner_said, loser) = match (&first, &second) {
            (Said::Restored(_), Said::Refused) => (a, a_said, b),
            (Said::Refused, Said::Restored(_)) => (b, b_said, a),
            other => panic!("round {round}: exactly one starter must win: {other:?}"),
        };
        drop(loser);
        let restored = match (first, second) {
            (Said::Restored(s), _) | (_, Said::Restored(s)) => s,
            _ => unreachable!(),
        };
        assert!(
            restored >= last_committed,
            "round {round}: restored {restored:?}, but {last_committed:?} was committed"
        );
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "a writer killed on this machine is replaced without waiting out its lease"
        );
        holder = winner;
        said = winner_said;
    }
    KILLS
}

#[test]
fn writers_on_a_shared_directory_take_turns_without_losing_a_commit() {
    let dir = tempfile::tempdir().unwrap();
    let spec = format!("dir:{}", dir.path().display());
    let kills = writers_take_turns(&spec, 0x1ea5e);
    assert!(kills >= 6);
}

#[cfg(feature = "object-store")]
#[test]
fn writers_on_one_s3_prefix_take_turns_without_losing_a_commit() {
    if common::s3::unavailable("lease-s3", &["CKPT_S3_ENDPOINT"]) {
        return;
    }
    let spec = format!("s3:{}", common::s3::fresh_prefix("lease"));
    let kills = writers_take_turns(&spec, 0x5e3);
    assert!(kills >= 6);
}
