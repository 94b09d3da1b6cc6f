//! Unit tests of the checkpointer: intervals, stalls and reports.
use super::*;
use crate::model::{Decision, Event, Policy};
use crate::scheme::Scheme;
use crate::state::PagedVec;
use crate::storage::MemStorage;

/// A store whose writes of packs take `delay` and wait while its gate is
/// closed, and which remembers the threads that wrote the model's state.
#[derive(Debug, Clone)]
struct Slow {
    inner: MemStorage,
    delay: Duration,
    model_savers: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// True while pack writes may go on.
    gate: std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
}

impl Slow {
    fn open(&self) {
        let (open, changed) = &*self.gate;
        *open.lock().unwrap() = true;
        changed.notify_all();
    }
}

impl Storage for Slow {
    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        if key.starts_with("packs/") {
            std::thread::sleep(self.delay);
            let (open, changed) = &*self.gate;
            let guard = open.lock().unwrap();
            drop(changed.wait_while(guard, |open| !*open).unwrap());
        }
        if key == "model/advisor" {
            let name = std::thread::current().name().unwrap_or("?").to_owned();
            self.model_savers.lock().unwrap().push(name);
        }
        self.inner.put(key, data)
    }
    fn get(&self, key: &str) -> Result<Vec<u8>> {
        self.inner.get(key)
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.inner.list(prefix)
    }
    fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key)
    }
    fn put_if_absent(&self, key: &str, data: &[u8]) -> Result<bool> {
        self.inner.put_if_absent(key, data)
    }
}

fn slow(delay_ms: u64) -> Slow {
    Slow {
        inner: MemStorage::new(),
        delay: Duration::from_millis(delay_ms),
        model_savers: Default::default(),
        gate: std::sync::Arc::new((std::sync::Mutex::new(true), std::sync::Condvar::new())),
    }
}

/// The steps of the checkpoints `events` has received so far.
fn checkpoint_steps(events: &std::sync::mpsc::Receiver<Event>) -> Vec<u64> {
    events
        .try_iter()
        .filter_map(|e| match e {
            Event::Checkpoint(c) => Some(c.step),
            _ => None,
        })
        .collect()
}

/// A store that accepts no pack until [`Slow::open`].
fn gated() -> Slow {
    let store = slow(0);
    *store.gate.0.lock().unwrap() = false;
    store
}

#[test]
fn the_interval_counts_from_the_end_of_a_slow_checkpoint() {
    let mut ck = Checkpointer::builder()
        .storage(slow(80))
        .every(Duration::from_millis(40))
        .build()
        .expect("valid");
    let mut state = vec![1u64; 1024];
    ck.checkpoint(0, &mut state).expect("checkpoint");
    // The write took twice the interval; the computation has not run
    // since, so nothing is due yet.
    assert!(!ck.is_due());
    std::thread::sleep(Duration::from_millis(50));
    assert!(ck.is_due());
}

#[test]
fn a_full_checkpoint_reports_what_changed_since_the_last_one() {
    let mut ck = Checkpointer::builder()
        .storage(MemStorage::new())
        .scheme(Scheme::Full)
        .compression_level(0)
        .build()
        .expect("valid");
    let mut grid: PagedVec<u64> = PagedVec::from_slice_with_page_len(&[7; 16 * 1024], 1024);
    let first = ck.checkpoint(0, &mut grid).expect("checkpoint").cloned();
    let first = first.expect("durable");
    assert_eq!(first.dirty_bytes, 16 * 1024 * 8, "all new");
    grid[3] = 1;
    grid[5 * 1024] = 2;
    let second = ck.checkpoint(1, &mut grid).expect("checkpoint").cloned();
    let second = second.expect("durable");
    assert_eq!(
        second.changed_bytes,
        16 * 1024 * 8,
        "a full checkpoint stores all"
    );
    assert_eq!(second.dirty_bytes, 2 * 1024 * 8, "two pages changed");
}

#[test]
fn a_background_commit_is_reported_by_the_next_scope() {
    let mut ck = Checkpointer::builder()
        .storage(slow(20))
        .scheme(Scheme::CopyOnWrite)
        .every(Duration::from_secs(3_600))
        .build()
        .expect("valid");
    let mut grid: PagedVec<u64> = PagedVec::from_slice_with_page_len(&[7; 4096], 1024);
    assert!(ck.checkpoint(0, &mut grid).expect("captured").is_none());
    // No other checkpoint is due for an hour: only the scopes can
    // report this one once it is durable.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut step = 0;
    while ck.last_committed().is_none() && Instant::now() < deadline {
        step += 1;
        ck.scope(step, &mut grid, |g| {
            g[0] += 1;
            std::thread::sleep(Duration::from_millis(2));
        })
        .expect("scope");
    }
    assert_eq!(ck.last_committed().map(|c| c.info.step), Some(0));
    assert_eq!(ck.summary().checkpoints, 1);
}

#[test]
fn a_fresh_adaptive_run_begins_with_a_copy_on_write_trial_after_the_first_step() {
    let (sender, decisions) = std::sync::mpsc::channel();
    let build = |store: MemStorage, policy: Policy| {
        let sender = sender.clone();
        Checkpointer::builder()
            .storage(store)
            .every(Duration::from_secs(3_600))
            .mtbf(Duration::from_secs(60))
            .policy(policy)
            .on_event(move |e| {
                if let Event::Decision(d) = e {
                    let _ = sender.send(d.clone());
                }
            })
            .build()
            .expect("valid")
    };
    let store = MemStorage::new();
    let mut ck = build(store.clone(), Policy::adaptive().exploration(0.0));
    assert_eq!(ck.plan(), Plan::only(Scheme::CopyOnWrite));
    assert!(
        matches!(ck.last_decision(), Some(Decision::Explore { .. })),
        "{:?}",
        ck.last_decision()
    );
    // The trial is reported once its first checkpoint has set the interval
    // it runs at, so a subscriber that joins after build() sees it too.
    assert!(decisions.try_recv().is_err());
    let subscribed = ck.subscribe();
    assert!(ck.is_due(), "the first checkpoint is due at once");
    let mut grid: PagedVec<u64> = PagedVec::from_slice_with_page_len(&[7; 4096], 1024);
    ck.scope(0, &mut grid, |g| g[0] += 1).expect("scope");
    ck.flush().expect("flush");
    assert_eq!(ck.summary().checkpoints_by(Scheme::CopyOnWrite), 1);
    let first = decisions.try_recv().expect("the trial is reported");
    assert_eq!(first.step, None, "decided when the checkpointer was built");
    match first.decision {
        Decision::Explore {
            scheme: Scheme::CopyOnWrite,
            interval,
            ..
        } => assert!(interval > Duration::ZERO, "the trial's real interval"),
        other => panic!("{other:?}"),
    }
    assert!(subscribed.try_iter().any(|e| matches!(
        e,
        Event::Decision(d) if matches!(d.decision, Decision::Explore { .. })
    )));
    ck.finish().expect("finish");
    // A restart on the store does not begin again; without the option
    // a fresh run starts on the configured scheme.
    let ck = build(store, Policy::adaptive().exploration(0.0));
    assert!(decisions.try_iter().all(|d| d.step.is_some()));
    drop(ck);
    let ck = build(MemStorage::new(), Policy::adaptive().first_trial(false));
    assert_eq!(ck.plan(), Plan::only(Scheme::Full));
    assert!(!ck.is_due());
}

/// Runs `steps` scopes of 5 ms that each change a 32 KiB grid, then
/// flushes.
fn run_steps_of_5_ms(ck: &mut Checkpointer, steps: u64) {
    let mut grid: PagedVec<u64> = PagedVec::from_slice_with_page_len(&[7; 4096], 1024);
    for step in 0..steps {
        ck.scope(step, &mut grid, |g| {
            g[0] += 1;
            std::thread::sleep(Duration::from_millis(5));
        })
        .expect("scope");
    }
    ck.flush().expect("flush");
}

#[test]
fn steps_beside_a_background_persist_are_counted() {
    let mut ck = Checkpointer::builder()
        .storage(slow(60))
        .scheme(Scheme::CopyOnWrite)
        .every_steps(4)
        .build()
        .expect("valid");
    let events = ck.subscribe();
    run_steps_of_5_ms(&mut ck, 24);
    let beside: u64 = events
        .try_iter()
        .filter_map(|e| match e {
            Event::Checkpoint(c) => Some(c.steps_beside_persist),
            _ => None,
        })
        .sum();
    // Each 60 ms persist overlaps the next steps of 5 ms.
    assert!(beside >= 4, "{beside}");
}

#[test]
fn steps_beside_a_persist_and_a_drain_are_counted_apart() {
    // Persists of 60 ms every 4 steps of 5 ms, drains of 300 ms per pack
    // after every commit: most steps overlap a persist, many a drain too.
    let mut ck = Checkpointer::builder()
        .tier("local", slow(60))
        .tier("remote", slow(300))
        .drain_every(1)
        .scheme(Scheme::CopyOnWrite)
        .every_steps(4)
        .build()
        .expect("valid");
    let events = ck.subscribe();
    run_steps_of_5_ms(&mut ck, 40);
    let checkpoints: Vec<_> = events
        .try_iter()
        .filter_map(|e| match e {
            Event::Checkpoint(c) if c.tier == 0 => Some(c),
            _ => None,
        })
        .collect();
    for c in &checkpoints {
        let counted = c.steps_beside_persist + c.steps_beside_drain + c.steps_beside_both;
        assert!(counted <= c.steps, "{c:?}");
        let timed = c.compute_beside_persist + c.compute_beside_drain + c.compute_beside_both;
        assert!(timed <= c.compute, "{c:?}");
    }
    let both: u64 = checkpoints.iter().map(|c| c.steps_beside_both).sum();
    assert!(both >= 4, "{both} steps beside both of {checkpoints:?}");
}

#[test]
fn a_background_commit_durable_between_two_scopes_is_reported_by_the_next() {
    let store = slow(20);
    let probe = store.inner.clone();
    let mut ck = Checkpointer::builder()
        .storage(store)
        .scheme(Scheme::CopyOnWrite)
        .every(Duration::from_secs(3_600))
        .build()
        .expect("valid");
    let mut grid: PagedVec<u64> = PagedVec::from_slice_with_page_len(&[7; 4096], 1024);
    assert!(ck.checkpoint(0, &mut grid).expect("captured").is_none());
    // The computation does something else until the persist is durable.
    let deadline = Instant::now() + Duration::from_secs(20);
    while probe.list("manifests/").unwrap().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(50)); // the result is sent after the put
    ck.scope(1, &mut grid, |g| g[0] += 1).expect("scope");
    assert_eq!(ck.last_committed().map(|c| c.info.step), Some(0));
}

#[test]
fn a_subscriber_sees_the_crash_found_when_the_checkpointer_was_built() {
    let store = MemStorage::new();
    let mut ck = Checkpointer::builder()
        .storage(store.clone())
        .build()
        .unwrap();
    ck.checkpoint(0, &mut vec![1u64; 16]).unwrap();
    drop(ck); // no finish(): the next run counts this one as a crash
    let mut ck = Checkpointer::builder().storage(store).build().unwrap();
    let events = ck.subscribe();
    assert!(
        events.try_iter().any(|e| matches!(e, Event::Restart(_))),
        "the restart event of build() reaches a later subscriber"
    );
}

/// The unreported running a restart reports after a crash `gap` after
/// the newest of four checkpoints ~10 ms apart.
fn unreported_after(gap: Duration) -> f64 {
    let store = MemStorage::new();
    let mut ck = Checkpointer::builder()
        .storage(store.clone())
        .build()
        .unwrap();
    let mut state = vec![1u64; 16];
    for step in 0..4 {
        std::thread::sleep(Duration::from_millis(10));
        ck.checkpoint(step, &mut state).unwrap();
    }
    ck.flush().unwrap(); // the saver wrote the state: nothing in flight
    std::thread::sleep(gap);
    drop(ck); // no finish(): the next run counts this one as a crash
    let mut ck = Checkpointer::builder().storage(store).build().unwrap();
    let events = ck.subscribe();
    events
        .try_iter()
        .find_map(|e| match e {
            Event::Restart(r) => Some(r.unreported),
            _ => None,
        })
        .expect("a restart event")
        .expect("a bound from the stored state")
        .as_secs_f64()
}

#[test]
fn a_restart_counts_the_running_past_the_newest_report_up_to_the_save_rules_bound() {
    // Within the bound, the time since the newest checkpoint's capture.
    let secs = unreported_after(Duration::from_millis(60));
    assert!((0.06..0.18).contains(&secs), "{secs} s unreported");
    // Beyond it, the bound: under the save rule (every 10 checkpoints of
    // ~10 ms at the default MTBF of a day) at most ~0.1 s pass between
    // saves, plus the saver's 100 ms poll and a persist (µs in memory);
    // the rest of the 600 ms counts as downtime.
    let secs = unreported_after(Duration::from_millis(600));
    assert!((0.17..0.35).contains(&secs), "{secs} s unreported");
}

#[test]
fn the_full_base_of_an_incremental_plan_is_reported_as_incremental() {
    let mut ck = Checkpointer::builder()
        .storage(MemStorage::new())
        .scheme(Scheme::Incremental)
        .max_chain(2)
        .build()
        .unwrap();
    let events = ck.subscribe();
    let mut grid: PagedVec<u64> = PagedVec::from_slice_with_page_len(&[7; 4096], 1024);
    for step in 0..4 {
        grid[0] = step;
        ck.checkpoint(step, &mut grid).unwrap();
    }
    let reported: Vec<(Scheme, bool)> = events
        .try_iter()
        .filter_map(|e| match e {
            Event::Checkpoint(c) => Some((c.scheme, c.full_base)),
            _ => None,
        })
        .collect();
    let inc = Scheme::Incremental;
    assert_eq!(
        reported,
        vec![(inc, true), (inc, false), (inc, true), (inc, false)]
    );
    assert_eq!(ck.summary().checkpoints_by(Scheme::Full), 0);
}

#[test]
fn the_model_is_saved_off_the_callers_thread() {
    let store = slow(0);
    let mut ck = Checkpointer::builder()
        .storage(store.clone())
        .policy(Policy::adaptive())
        .build()
        .unwrap();
    let mut grid: PagedVec<u64> = PagedVec::from_slice_with_page_len(&[7; 4096], 1024);
    for step in 0..6 {
        ck.scope(step, &mut grid, |g| g[0] += 1).unwrap();
    }
    ck.finish().unwrap();
    // Every save, the last one of finish() included, ran on the saver
    // (saves queued together are written once, as the newest).
    let during = store.model_savers.lock().unwrap().clone();
    assert!(
        !during.is_empty(),
        "a learning model saves its state: {during:?}"
    );
    assert!(
        during.iter().all(|t| t == "ckpt-model-save"),
        "saved on {during:?}"
    );
    assert!(store.inner.get("model/advisor").is_ok());
    assert!(
        store.inner.get("model/running").is_err(),
        "finish removes the marker"
    );
}

#[test]
fn a_capture_that_waits_for_the_persist_queue_reports_the_wait_apart() {
    let mut ck = Checkpointer::builder()
        .storage(slow(60))
        .scheme(Scheme::CopyOnWrite)
        .max_in_flight(1)
        .build()
        .expect("valid");
    let events = ck.subscribe();
    let mut state = vec![1u64; 1024];
    // Back to back: the first persists, the second queues, the third
    // waits for the first to finish.
    for step in 0..3 {
        state[0] = step;
        ck.checkpoint(step, &mut state).expect("checkpoint");
    }
    ck.flush().expect("flush");
    let checkpoints: Vec<_> = events
        .try_iter()
        .filter_map(|e| match e {
            Event::Checkpoint(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(checkpoints.len(), 3);
    assert!(checkpoints[0].queue_wait < Duration::from_millis(10));
    let third = &checkpoints[2];
    assert!(
        third.queue_wait >= Duration::from_millis(30),
        "{:?}",
        third.queue_wait
    );
    assert!(third.queue_wait <= third.stall);
    // What the capture itself cost stays small: the wait is not its own.
    assert!(
        third.stall - third.queue_wait < Duration::from_millis(30),
        "{third:?}"
    );
    // Retention ran on the persisting thread after each, and was timed.
    assert!(checkpoints.iter().all(|c| c.retention > Duration::ZERO));
}

#[test]
fn the_first_trial_measures_how_fast_the_state_changes_one_step_later() {
    let build = |store: Slow| {
        Checkpointer::builder()
            .storage(store)
            .every(Duration::from_secs(3_600))
            .mtbf(Duration::from_secs(60))
            .policy(Policy::adaptive().exploration(0.0))
            .build()
            .expect("valid")
    };
    // Packs take 30 ms to write: longer than a step.
    let store = slow(30);
    let mut ck = build(store.clone());
    let events = ck.subscribe();
    let mut grid: PagedVec<u64> = PagedVec::from_slice_with_page_len(&[7; 64 * 1024], 1024);
    // The first capture finds the whole state new; the second, one step
    // after the first is durable, measures how much a step changes.
    let step = |g: &mut PagedVec<u64>, i: usize| {
        g[i] += 1;
        std::thread::sleep(Duration::from_millis(5));
    };
    ck.scope(0, &mut grid, |g| step(g, 0)).expect("scope");
    ck.flush().expect("flush");
    ck.scope(1, &mut grid, |g| step(g, 5000)).expect("scope");
    // While that measurement persists, no other checkpoint is due; once
    // it is durable, the interval rests on a measured rate: not one step.
    ck.scope(2, &mut grid, |g| step(g, 9000)).expect("scope");
    assert!(!ck.is_due());
    ck.flush().expect("flush");
    ck.scope(3, &mut grid, |g| step(g, 9000)).expect("scope");
    assert!(!ck.is_due());
    let checkpoints = |events: &std::sync::mpsc::Receiver<Event>| -> Vec<_> {
        events
            .try_iter()
            .filter_map(|e| match e {
                Event::Checkpoint(c) if c.tier == 0 => Some(c),
                _ => None,
            })
            .collect()
    };
    let seen = checkpoints(&events);
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[0].first_capture);
    assert_eq!(seen[0].dirty_bytes, seen[0].logical_bytes);
    assert!(!seen[1].first_capture);
    assert_eq!(seen[1].steps, 1);
    assert!(seen[1].dirty_bytes < seen[1].logical_bytes / 10);
    ck.finish().expect("finish");
    // A restored state's first capture compares with what was restored.
    let mut ck = build(store);
    let events = ck.subscribe();
    let mut grid = ck
        .restore_latest::<PagedVec<u64>>()
        .expect("restore")
        .expect("a checkpoint")
        .state;
    grid[0] += 1;
    ck.checkpoint(4, &mut grid).expect("checkpoint");
    ck.flush().expect("flush");
    let seen = checkpoints(&events);
    assert!(!seen[0].first_capture, "{seen:?}");
}

#[test]
fn a_scope_defers_a_due_checkpoint_while_the_persist_queue_is_full() {
    let store = gated();
    let mut ck = Checkpointer::builder()
        .storage(store.clone())
        .scheme(Scheme::CopyOnWrite)
        .max_in_flight(1)
        .every_steps(1)
        .build()
        .expect("valid");
    let events = ck.subscribe();
    // Storage accepts nothing yet: step 0's checkpoint persists (held),
    // step 1's queues, and every later scope computes on instead of
    // waiting for room. On another thread, so that a scope that waited
    // fails this test instead of hanging it.
    let (done, ran) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut state = vec![0u64; 1024];
        for step in 0..20 {
            ck.scope(step, &mut state, |s| s[0] = step).expect("scope");
        }
        done.send((ck, state)).expect("the test waits");
    });
    let received = ran.recv_timeout(Duration::from_secs(60));
    store.open();
    let (mut ck, mut state) = received.expect("no scope waits for storage");
    // Room again: the deferred checkpoint is taken at the next scope.
    ck.flush().expect("flush");
    ck.scope(20, &mut state, |s| s[0] = 20).expect("scope");
    ck.flush().expect("flush");
    assert_eq!(checkpoint_steps(&events), [0, 1, 20]);
    let restored = ck
        .restore_latest::<Vec<u64>>()
        .expect("restore")
        .expect("a checkpoint");
    assert_eq!((restored.step, restored.state), (20, state));
}

/// While a change of the workload is pending, a due copy-on-write
/// checkpoint waits for the one persisting (the one that confirms the
/// change) instead of queueing behind it at the old workload's interval.
#[test]
fn a_capture_waits_for_the_persisting_one_while_a_change_is_pending() {
    let store = slow(0);
    let policy = Policy::adaptive()
        .first_trial(false)
        .exploration(0.0)
        .min_saving(0.99);
    let mut ck = Checkpointer::builder()
        .storage(store.clone())
        .scheme(Scheme::CopyOnWrite)
        .policy(policy)
        .max_in_flight(1)
        .every_steps(1)
        .build()
        .expect("valid");
    let events = ck.subscribe();
    // Steps of a steady length, so the dirtying rate is pages per step.
    let pause = || std::thread::sleep(Duration::from_millis(3));
    let mut state: PagedVec<u64> = PagedVec::with_page_len(512);
    state.extend_from_slice(&vec![0u64; 512 * 64]);
    // One page of 64 written per step, then every page: the newest
    // checkpoint is a gross outlier, not yet confirmed.
    let mut step = 0;
    while step < 12 {
        state[(step as usize % 64) * 512] = step;
        ck.scope(step, &mut state, |_| pause()).expect("scope");
        ck.flush().expect("flush");
        step += 1;
    }
    assert!(!ck.advisor().model().change_pending(), "a steady workload");
    // (Distinct pages: identical ones are stored once.)
    let every_page = |state: &mut PagedVec<u64>, step: u64| {
        for (i, page) in (0u64..).zip(state.pages_mut()) {
            page[0] = step;
            page[1] = i;
        }
    };
    every_page(&mut state, step);
    ck.scope(step, &mut state, |_| pause()).expect("scope");
    ck.flush().expect("flush");
    assert!(ck.advisor().model().change_pending(), "one outlier");
    // Storage holds the next checkpoint: while it persists, no capture.
    *store.gate.0.lock().unwrap() = false;
    let (done, ran) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for s in step + 1..step + 6 {
            every_page(&mut state, s);
            ck.scope(s, &mut state, |_| pause()).expect("scope");
        }
        done.send(ck).expect("the test waits");
    });
    let received = ran.recv_timeout(Duration::from_secs(60));
    store.open();
    let mut ck = received.expect("no scope waits for storage");
    ck.flush().expect("flush");
    let steps: Vec<u64> = checkpoint_steps(&events)
        .into_iter()
        .filter(|s| *s > step)
        .collect();
    assert_eq!(steps, [step + 1], "one capture while the change is pending");
}
