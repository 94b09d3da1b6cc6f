//! Multi-level checkpoints and the cost model: drains reach the model,
//! a restart tells a process failure (the first tier survived) from a
//! node failure (the first tier was lost), the learned state survives the
//! loss of the first tier, and the drain ratio a policy applied resumes.

mod common;

use ckpt::model::{
    Addition, Decision, Event, FailureClass, ModelConfig, Plan, Policy, Recommendation,
};
use ckpt::storage::FaultyStorage;
use ckpt::{Checkpointer, JournalEvent, MemStorage, Reader, Scheme};
use common::state;
use std::time::{Duration, Instant};

fn open(local: &MemStorage, remote: &MemStorage, policy: Policy) -> Checkpointer {
    Checkpointer::builder()
        .tier("local", local.clone())
        .tier("remote", remote.clone())
        .drain_every(2)
        .scheme(Scheme::Full)
        .policy(policy)
        .model(ModelConfig::with_mtbf(Duration::from_secs(3_600)))
        .build()
        .unwrap()
}

/// Checkpoints `steps`, each made durable (and its drain, if it has one,
/// done) before the next: a drain queued while the previous one has not
/// begun replaces it (a drain never holds the computation back), and on
/// an in-memory store a release build checkpoints faster than the drain
/// thread is scheduled, so without the flushes the drains counted would
/// depend on the scheduler.
fn run(ck: &mut Checkpointer, steps: std::ops::Range<u64>) {
    for step in steps {
        let mut s = state(step);
        ck.checkpoint(step, &mut s).unwrap();
        ck.flush().unwrap();
    }
}

/// The restart classes a new checkpointer reported at start-up.
fn restarts(ck: &mut Checkpointer) -> Vec<FailureClass> {
    ck.subscribe()
        .try_iter()
        .filter_map(|e| match e {
            Event::Restart(r) => Some(r.class),
            _ => None,
        })
        .collect()
}

#[test]
fn a_restart_tells_a_process_failure_from_a_lost_first_tier() {
    let (local, remote) = (MemStorage::new(), MemStorage::new());
    let mut ck = open(&local, &remote, Policy::fixed());
    assert_eq!(restarts(&mut ck), []);
    run(&mut ck, 0..6);
    let summary = ck.advisor().summary().clone();
    assert_eq!(summary.checkpoints, 6);
    assert_eq!(summary.drains, 3, "every second of six drains");
    assert!(summary.bytes_drained > 0);
    // The journal keeps drains apart from checkpoints.
    let journal = Reader::new(local.clone()).journal().unwrap();
    let count = |drain: bool| {
        journal
            .iter()
            .filter(|r| match &r.event {
                JournalEvent::Drain(e) => drain && e.tier == 1,
                JournalEvent::Checkpoint { .. } => !drain,
                _ => false,
            })
            .count()
    };
    assert_eq!((count(false), count(true)), (6, 3));
    drop(ck); // a crash: no finish

    // The process died; the node (and the first tier) survived.
    let mut ck = open(&local, &remote, Policy::fixed());
    assert_eq!(restarts(&mut ck), [FailureClass::Process]);
    let restored = ck.restore_latest::<Vec<u64>>().unwrap().unwrap();
    assert_eq!((restored.step, restored.tier.unwrap().index), (5, 0));
    run(&mut ck, 6..9);
    let learned = ck.advisor().summary().checkpoints;
    drop(ck);

    // The node was lost with the process: a new, empty first tier.
    let local = MemStorage::new();
    let mut ck = open(&local, &remote, Policy::fixed());
    assert_eq!(restarts(&mut ck), [FailureClass::Node]);
    // What the model learned came back from the lower tier, as of the
    // newest drain (the checkpoint of step 8 drained last).
    let resumed = ck.advisor().summary().checkpoints;
    assert!(
        resumed >= 6 && resumed <= learned,
        "resumed {resumed} of {learned} checkpoints learned"
    );
    assert_eq!(ck.advisor().summary().restarts, 2);
    let restored = ck.restore_latest::<Vec<u64>>().unwrap().unwrap();
    let tier = restored.tier.clone().unwrap();
    assert!(tier.first_tier_lost && tier.index == 1, "{tier:?}");
    assert_eq!(restored.state, state(restored.step));
    let rate = |ck: &Checkpointer, class| ck.advisor().model().failure_rate(class).per_second;
    assert!(rate(&ck, FailureClass::Node) > 0.0);
    ck.finish().unwrap();

    // A clean stop leaves no marker on either tier: no restart next time.
    let mut ck = open(&local, &remote, Policy::fixed());
    assert_eq!(restarts(&mut ck), []);
    ck.finish().unwrap();
}

#[test]
fn the_plan_carries_the_drain_ratio_and_one_tier_has_none() {
    let (local, remote) = (MemStorage::new(), MemStorage::new());
    let mut ck = open(&local, &remote, Policy::fixed());
    assert_eq!(ck.plan(), Plan::only(Scheme::Full).draining_every(2));
    ck.set_drain_every(5).unwrap();
    assert_eq!(
        (ck.drain_every(), ck.plan().drain_every()),
        (Some(5), Some(5))
    );
    ck.finish().unwrap();
    let single = Checkpointer::builder()
        .storage(MemStorage::new())
        .scheme(Scheme::Full)
        .build()
        .unwrap();
    assert_eq!(single.plan(), Plan::only(Scheme::Full));
    assert_eq!(single.plan().drain_every(), None);
}

#[test]
fn an_adaptive_policy_drains_less_often_when_drains_cost_more_than_node_losses() {
    let (local, remote_store) = (MemStorage::new(), MemStorage::new());
    let remote = FaultyStorage::new(remote_store.clone());
    remote.control().set_latency(Duration::from_millis(20));
    // Node losses are rare and a step beside a drain takes three times as
    // long (the steps below see to it; the model is told nothing and
    // measures it): every checkpoint drained costs far more than the work
    // a lost node would lose at a lower ratio.
    let mut config = ModelConfig::with_mtbf(Duration::from_secs(30));
    config.node_mtbf = Some(Duration::from_secs(1_000_000));
    let mut ck = Checkpointer::builder()
        .tier("local", local.clone())
        .tier("remote", remote)
        .drain_every(1)
        .scheme(Scheme::Full)
        .policy(Policy::adaptive().allow(&[Scheme::Full]).exploration(0.0))
        .model(config)
        .build()
        .unwrap();
    let events = ck.subscribe();
    let mut s = state(0);
    let started = Instant::now();
    let mut step = 0;
    while ck.drain_every() == Some(1) && started.elapsed() < Duration::from_secs(60) {
        let draining = ck.tiers().iter().any(|t| t.pending.is_some());
        let work = Duration::from_millis(if draining { 6 } else { 2 });
        ck.scope(step, &mut s, |s| {
            let at = step as usize % s.len();
            s[at] += 1;
            std::thread::sleep(work);
        })
        .unwrap();
        step += 1;
    }
    let k = ck.drain_every().unwrap();
    assert!(k > 1, "still draining every checkpoint after {step} steps");
    assert_eq!(ck.plan().drain_every(), Some(k));
    let reason = events
        .try_iter()
        .find_map(|e| match e {
            Event::Decision(d) => match d.decision {
                Decision::Apply(Recommendation::Add {
                    addition: Addition::DrainEvery(n),
                    advice,
                }) if n == k => Some(advice.reason),
                _ => None,
            },
            _ => None,
        })
        .expect("the change is reported with its reason");
    assert!(reason.contains("node failures"), "{reason}");
    let reopen = |local: &MemStorage| {
        Checkpointer::builder()
            .tier("local", local.clone())
            .tier("remote", remote_store.clone())
            .drain_every(1)
            .scheme(Scheme::Full)
            .policy(Policy::adaptive().allow(&[Scheme::Full]).exploration(0.0))
            .build()
            .unwrap()
    };
    // The node is lost right after the decision, long before the next
    // drain at the new ratio: the restart resumes the ratio from the
    // lower tier's copy of the learned state, which the decision itself
    // updated (not the copy of the last drain, from before it).
    drop(ck); // a crash: no finish
    let replaced = MemStorage::new();
    let mut ck = reopen(&replaced);
    assert_eq!(restarts(&mut ck), [FailureClass::Node]);
    assert_eq!(ck.drain_every(), Some(k));
    ck.finish().unwrap();
    // The ratio the policy applied resumes after a clean restart too.
    let ck = reopen(&replaced);
    assert_eq!(ck.drain_every(), Some(k));
    ck.finish().unwrap();
}

#[test]
fn a_lost_first_tier_keeps_the_running_since_the_last_drain() {
    let remote = MemStorage::new();
    let open = |local: &MemStorage| {
        Checkpointer::builder()
            .tier("local", local.clone())
            .tier("remote", remote.clone())
            // Far more than the checkpoints below: the drain cycle's bound
            // stays well above their running however slow the machine.
            .drain_every(16)
            .scheme(Scheme::Full)
            .policy(Policy::fixed())
            // Failures every second: the save rule then bounds what a
            // first-tier save can leave unreported to about a tenth of it.
            .model(ModelConfig::with_mtbf(Duration::from_secs(1)))
            .build()
            .unwrap()
    };
    let mut ck = open(&MemStorage::new());
    let period = Duration::from_millis(40);
    let mut step = 0;
    while ck.advisor().summary().drains == 0 {
        std::thread::sleep(period);
        ck.checkpoint(step, &mut state(step)).unwrap();
        ck.flush().unwrap();
        step += 1;
        assert!(step < 100, "no drain");
    }
    // The state was saved below with the drain; seven more checkpoints
    // (280 ms) are saved only on the first tier, which the node takes
    // with it.
    let drained = Instant::now();
    for _ in 0..7 {
        std::thread::sleep(period);
        ck.checkpoint(step, &mut state(step)).unwrap();
        ck.flush().unwrap();
        step += 1;
    }
    assert_eq!(ck.advisor().summary().drains, 1);
    let ran = drained.elapsed();
    drop(ck);

    let mut ck = open(&MemStorage::new());
    let unreported: Vec<Duration> = ck
        .subscribe()
        .try_iter()
        .filter_map(|e| match e {
            Event::Restart(r) if r.class == FailureClass::Node => r.unreported,
            _ => None,
        })
        .collect();
    assert_eq!(unreported.len(), 1, "one node failure");
    assert!(
        unreported[0] >= ran.mul_f64(0.9),
        "{:?} of the {ran:?} run since the drain counted",
        unreported[0]
    );
    ck.finish().unwrap();
}
