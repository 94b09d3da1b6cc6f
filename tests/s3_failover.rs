//! Real gateway failures under concurrent checkpointers: two standalone
//! SeaweedFS S3 gateways onto one store, a [`FailoverStorage`] in
//! [`FailoverMode::Shared`] over them, and the active gateway's process killed
//! (SIGKILL) again and again, or hung (SIGSTOP), while four threads
//! checkpoint. No caller may see an error, and each thread's newest
//! committed checkpoint must restore exactly.
//!
//! Needs `scripts/s3-server` (it exports `CKPT_S3_ENDPOINT`,
//! `CKPT_S3_FILER` and `CKPT_S3_WEED`); without it the tests print why and
//! pass, unless `CKPT_S3_REQUIRED` is set (CI), where they fail.
//!
//! The checkpoint-call latencies measured while gateways die are printed
//! (p50, p99, max) to stderr, past the harness's capture.

mod common;

use ckpt::storage::{FailoverMode, FailoverStorage, PrefixStorage};
use ckpt::{Checkpointer, ObjectStorage, Reader, Scheme, Storage};
use common::gateway::Gateway;
use common::s3::builder;
use common::{mix, s3, say};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Concurrent checkpointers, each under its own prefix.
const THREADS: usize = 4;
/// `u64`s in a thread's state: 4 KiB.
const WORDS: u64 = 512;
/// A bound on each thread's loop, whatever the clock says.
const MAX_STEPS: u64 = 100_000;
/// How long a new gateway may take to accept a put.
const GATEWAY_START: Duration = Duration::from_secs(30);

/// One test at a time: the latencies are each test's own, not two tests'
/// gateways fighting for the same cores.
static SERIAL: Mutex<()> = Mutex::new(());

/// The state thread `thread` checkpoints at `step`: a pure function of
/// both, so a restore can be checked byte for byte.
fn state_at(thread: usize, step: u64) -> Vec<u64> {
    (0..WORDS)
        .map(|i| mix(((thread as u64) << 56) ^ (step << 16) ^ i))
        .collect()
}

/// A fresh prefix for `test`, or `None` (after saying why) without a
/// server.
fn server(test: &str) -> Option<String> {
    if s3::unavailable(test, &["CKPT_S3_ENDPOINT", "CKPT_S3_FILER", "CKPT_S3_WEED"]) {
        return None;
    }
    Some(s3::fresh_prefix(test))
}

/// A gateway of the test's own and the pair's path through it.
struct Path {
    name: String,
    gateway: Gateway,
    storage: Arc<ObjectStorage>,
}

/// Starts gateway `n` and waits until a put through it succeeds. One retry
/// within 500 ms: a dead gateway shows in well under a second.
fn start_path(prefix: &str, n: usize) -> Path {
    let gateway = Gateway::start().expect("checked by server()");
    let storage = builder(prefix)
        .endpoint(&gateway.endpoint)
        .retries(1, Duration::from_millis(500))
        .build()
        .unwrap();
    let started = Instant::now();
    while storage.put("probe", b"up").is_err() {
        assert!(
            started.elapsed() < GATEWAY_START,
            "gateway {n} ({}) did not accept a put within {GATEWAY_START:?}",
            gateway.endpoint
        );
        thread::sleep(Duration::from_millis(100));
    }
    storage.delete("probe").unwrap();
    Path {
        name: format!("gw-{n}"),
        gateway,
        storage: Arc::new(storage),
    }
}

/// What one checkpointing thread did.
struct Work {
    /// The step of its newest committed checkpoint.
    newest: Option<u64>,
    /// Each checkpoint call, as the caller saw it.
    latencies: Vec<Duration>,
    /// Errors returned to it (checkpoint or finish).
    errors: Vec<String>,
}

/// Checkpoints a function of the step, full, keep_last(3), until `stop`.
fn checkpoint_until(pair: Arc<FailoverStorage>, thread: usize, stop: &AtomicBool) -> Work {
    let mut work = Work {
        newest: None,
        latencies: Vec::new(),
        errors: Vec::new(),
    };
    let storage = PrefixStorage::new(pair, &format!("thread-{thread}")).unwrap();
    let mut ck = Checkpointer::builder()
        .storage(storage)
        .scheme(Scheme::Full)
        .keep_last(3)
        .build()
        .unwrap();
    for step in 0..MAX_STEPS {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let mut state = state_at(thread, step);
        let started = Instant::now();
        let result = ck.checkpoint(step, &mut state);
        work.latencies.push(started.elapsed());
        match result {
            Ok(Some(committed)) => work.newest = Some(committed.info.step),
            Ok(None) => work.errors.push(format!("step {step}: no commit report")),
            Err(e) => {
                work.errors.push(format!("step {step}: {e}"));
                break;
            }
        }
    }
    if let Err(e) = ck.finish() {
        work.errors.push(format!("finish: {e}"));
    }
    work
}

/// Runs `THREADS` checkpointers over `pair` while `chaos` runs, then checks
/// them: no errors, and every thread's newest committed step restores
/// exactly through a fresh `Reader` on the server's own endpoint.
fn under_load(test: &str, prefix: &str, pair: &Arc<FailoverStorage>, chaos: impl FnOnce()) {
    let stop = AtomicBool::new(false);
    let works: Vec<Work> = thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let pair = Arc::clone(pair);
                let stop = &stop;
                s.spawn(move || checkpoint_until(pair, t, stop))
            })
            .collect();
        // The checkpointers stop even if the chaos panics.
        let chaos = std::panic::catch_unwind(std::panic::AssertUnwindSafe(chaos));
        stop.store(true, Ordering::Relaxed);
        let works = handles.into_iter().map(|h| h.join().unwrap()).collect();
        if let Err(panic) = chaos {
            std::panic::resume_unwind(panic);
        }
        works
    });

    let mut latencies: Vec<Duration> = works.iter().flat_map(|w| w.latencies.clone()).collect();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    let stats = pair.stats();
    say(&format!(
        "{test}: {} checkpoint calls on {THREADS} threads; latency p50 {:?}, p99 {:?}, max {:?}; \
         {} failovers, {} failbacks, max relocation {:?}, max pause {:?}",
        latencies.len(),
        at(0.5),
        at(0.99),
        at(1.0),
        stats.failovers,
        stats.failbacks,
        stats.max_relocation,
        stats.max_pause,
    ));
    for (t, work) in works.iter().enumerate() {
        assert!(work.errors.is_empty(), "thread {t}: {:?}", work.errors);
    }
    assert!(!stats.down, "{stats:?}");

    let direct = Arc::new(builder(prefix).build().unwrap());
    for (t, work) in works.iter().enumerate() {
        let newest = work.newest.expect("every thread committed something");
        let prefixed = PrefixStorage::new(Arc::clone(&direct), &format!("thread-{t}")).unwrap();
        let restored = Reader::new(prefixed)
            .restore_latest::<Vec<u64>>()
            .unwrap()
            .expect("a checkpoint");
        assert!(
            restored.skipped.is_empty(),
            "thread {t}: {:?}",
            restored.skipped
        );
        assert_eq!(
            restored.step, newest,
            "thread {t}: the newest committed step"
        );
        assert!(
            restored.state == state_at(t, newest),
            "thread {t}: the state restored at step {newest} differs"
        );
    }
    for key in direct.list("").unwrap() {
        direct.delete(&key).unwrap();
    }
}

/// The pair's active path.
fn active(pair: &FailoverStorage) -> String {
    pair.stats().active.expect("the pair is up")
}

/// Waits (bounded) until the pair has failed over `count` times in all.
fn await_failovers(pair: &FailoverStorage, count: u64, within: Duration) {
    let started = Instant::now();
    while pair.stats().failovers < count {
        assert!(
            started.elapsed() < within,
            "no failover within {within:?}: {:?}",
            pair.stats()
        );
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn survives_the_active_gateway_being_killed_again_and_again() {
    const KILLS: u64 = 10;
    /// The whole kill loop, gateway restarts included.
    const BUDGET: Duration = Duration::from_secs(75);
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(prefix) = server("s3-kill") else {
        return;
    };
    let mut paths: BTreeMap<String, Path> = BTreeMap::new();
    let (a, b) = (start_path(&prefix, 0), start_path(&prefix, 1));
    let pair = Arc::new(
        FailoverStorage::builder(FailoverMode::Shared)
            .active(&a.name, a.storage.clone())
            .standby(&b.name, b.storage.clone())
            // A killed gateway refuses connections at once; the deadline
            // only guards against a hang, well above the store's latency.
            .deadline(Some(Duration::from_secs(10)))
            .admit_wait(Duration::from_secs(10))
            .build()
            .unwrap(),
    );
    paths.insert(a.name.clone(), a);
    paths.insert(b.name.clone(), b);

    let started = Instant::now();
    under_load("s3-kill", &prefix, &pair, || {
        for kill in 1..=KILLS {
            assert!(started.elapsed() < BUDGET, "{kill} kills took {BUDGET:?}");
            thread::sleep(Duration::from_millis(300)); // load on the active
            let victim = active(&pair);
            let mut dead = paths.remove(&victim).expect("the active is ours");
            dead.gateway.kill();
            await_failovers(&pair, kill, Duration::from_secs(15));
            let fresh = start_path(&prefix, (kill + 1) as usize);
            pair.readmit(&fresh.name, fresh.storage.clone())
                .unwrap_or_else(|e| panic!("readmit {}: {e}", fresh.name));
            paths.insert(fresh.name.clone(), fresh);
        }
        thread::sleep(Duration::from_millis(300));
    });
    let stats = pair.stats();
    assert_eq!(stats.failovers, KILLS, "{stats:?}");
    assert_eq!(stats.failbacks, KILLS, "{stats:?}");
    say(&format!(
        "s3-kill: {KILLS} kills in {:?}",
        started.elapsed()
    ));
}

#[test]
fn survives_the_active_gateway_hanging() {
    const HANGS: u64 = 2;
    /// A hung call is abandoned after this; a healthy one takes
    /// milliseconds here (see "The deadline, per mode").
    const DEADLINE: Duration = Duration::from_secs(2);
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(prefix) = server("s3-hang") else {
        return;
    };
    let (a, b) = (start_path(&prefix, 0), start_path(&prefix, 1));
    let pair = Arc::new(
        FailoverStorage::builder(FailoverMode::Shared)
            .active(&a.name, a.storage.clone())
            .standby(&b.name, b.storage.clone())
            .deadline(Some(DEADLINE))
            .admit_wait(Duration::from_secs(20))
            .build()
            .unwrap(),
    );
    let paths = [a, b];
    let started = Instant::now();
    under_load("s3-hang", &prefix, &pair, || {
        for hang in 1..=HANGS {
            thread::sleep(Duration::from_millis(300));
            let victim = active(&pair);
            let hung = paths.iter().find(|p| p.name == victim).expect("ours");
            hung.gateway.pause();
            // Resumed even if no failover comes, so the process can be reaped.
            let failed_over = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                await_failovers(&pair, hang, DEADLINE * 5);
                thread::sleep(Duration::from_secs(3)); // the pair runs on the other path
            }));
            hung.gateway.resume();
            if let Err(panic) = failed_over {
                std::panic::resume_unwind(panic);
            }
            // The resumed gateway answers its abandoned calls; then it may
            // come back as the standby.
            pair.readmit(&hung.name, hung.storage.clone())
                .unwrap_or_else(|e| panic!("readmit {}: {e}", hung.name));
        }
        thread::sleep(Duration::from_millis(300));
    });
    let stats = pair.stats();
    assert_eq!(stats.failovers, HANGS, "{stats:?}");
    // A hung path costs its overrun plus a probe round (the suspect path
    // is probed alongside the standby), not two deadlines.
    assert!(stats.max_pause < DEADLINE * 2, "{stats:?}");
    say(&format!(
        "s3-hang: {HANGS} hangs in {:?}",
        started.elapsed()
    ));
}
