//! Multi-level checkpoints: drains to a lower tier, restore across tiers
//! after the first tier is lost or damaged, a failing lower tier that
//! delays drains but never a checkpoint, and the builder's checks.

mod common;

use ckpt::storage::{Fault, FaultyStorage};
use ckpt::{Checkpointer, DrainEvent, Error, FsStorage, MemStorage, Scheme, Storage};
use common::tiers::assert_whole;
use common::{keys, state};
use std::io::ErrorKind;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn open(local: &Path, remote: &Path, scheme: Scheme, every: u32) -> ckpt::Result<Checkpointer> {
    Checkpointer::builder()
        .tier("local", FsStorage::open(local)?)
        .tier("remote", FsStorage::open(remote)?)
        .tier_keep_last("remote", 2)
        .keep_last(3)
        .drain_every(every)
        .scheme(scheme)
        .chunk_size(4096)
        .build()
}

/// Takes checkpoints of `state(step)` for `steps`, returning the steps
/// that were queued for a drain.
fn run(ck: &mut Checkpointer, steps: std::ops::Range<u64>) -> Vec<u64> {
    let mut drained = Vec::new();
    for step in steps {
        let mut s = state(step);
        let committed = ck.checkpoint(step, &mut s).unwrap().cloned().unwrap();
        if committed.drain_queued {
            drained.push(step);
        }
    }
    drained
}

#[test]
fn every_kth_checkpoint_drains_whole_and_survives_the_loss_of_the_local_tier() {
    for scheme in [Scheme::Full, Scheme::Incremental] {
        let dir = tempfile::tempdir().unwrap();
        let (local, remote) = (dir.path().join("local"), dir.path().join("remote"));
        let mut ck = open(&local, &remote, scheme, 3).unwrap();
        let events = ck.subscribe_drains();
        let queued = run(&mut ck, 0..11);
        ck.finish().unwrap();
        // The first commit drains, then every third.
        let expected: Vec<u64> = (0..11).step_by(3).collect();
        assert_eq!(queued, expected, "{scheme:?}");
        let drained: Vec<u64> = events
            .try_iter()
            .filter_map(|e| match e {
                DrainEvent::Drained { step, .. } => Some(step),
                _ => None,
            })
            .collect();
        assert_eq!(drained.last(), queued.last(), "{scheme:?}: {drained:?}");
        let remote_steps = assert_whole("remote", Arc::new(FsStorage::open(&remote).unwrap()));
        assert_eq!(remote_steps.len(), 2, "remote keeps 2: {remote_steps:?}");
        assert_eq!(remote_steps.last(), queued.last());

        // The node is replaced: the local tier is gone.
        std::fs::remove_dir_all(&local).unwrap();
        let mut ck = open(&local, &remote, scheme, 3).unwrap();
        let restored = ck.restore_latest::<Vec<u64>>().unwrap().unwrap();
        let newest = *queued.last().unwrap();
        assert_eq!(restored.step, newest, "{scheme:?}");
        assert_eq!(restored.state, state(newest), "{scheme:?}: byte for byte");
        let tier = restored.tier.clone().unwrap();
        assert_eq!((tier.name.as_str(), tier.index), ("remote", 1));
        assert!(tier.first_tier_lost && tier.promoted, "{tier:?}");

        // The run goes on; numbering continues past the remote's, so the
        // remote's retention keeps the new checkpoints. The remote holds
        // the restored one: the third commit from here drains.
        let queued = run(&mut ck, newest + 1..newest + 4);
        assert_eq!(queued, [newest + 3], "{scheme:?}");
        ck.finish().unwrap();
        let remote_steps = assert_whole("remote", Arc::new(FsStorage::open(&remote).unwrap()));
        assert_eq!(remote_steps.last(), Some(&(newest + 3)), "{remote_steps:?}");
        let local_steps = assert_whole("local", Arc::new(FsStorage::open(&local).unwrap()));
        assert_eq!(local_steps.last(), Some(&(newest + 3)));

        // Two commits the remote lacks, then a process crash (the local
        // tier survives): the newest local one is restored, and the count
        // goes on from those two, so the next commit drains.
        let mut ck = open(&local, &remote, scheme, 3).unwrap();
        assert!(run(&mut ck, newest + 4..newest + 6).is_empty());
        drop(ck);
        let mut ck = open(&local, &remote, scheme, 3).unwrap();
        let restored = ck.restore_latest::<Vec<u64>>().unwrap().unwrap();
        assert_eq!(restored.step, newest + 5);
        assert_eq!(restored.state, state(newest + 5));
        let tier = restored.tier.unwrap();
        assert_eq!(tier.index, 0);
        assert!(!tier.first_tier_lost && !tier.promoted);
        assert_eq!(run(&mut ck, newest + 6..newest + 9), [newest + 6]);
    }
}

/// A job that fails every few commits still drains every k-th commit
/// when the first tier keeps fewer checkpoints than k: the count goes on
/// from the commits made since the drained one, not from the manifests
/// retention left.
#[test]
fn the_drain_count_outlives_restarts_and_first_tier_retention() {
    let dir = tempfile::tempdir().unwrap();
    let (local, remote) = (dir.path().join("local"), dir.path().join("remote"));
    let open = || {
        Checkpointer::builder()
            .tier("local", FsStorage::open(&local).unwrap())
            .tier("remote", FsStorage::open(&remote).unwrap())
            .keep_last(2)
            .drain_every(5)
            .scheme(Scheme::Full)
            .chunk_size(4096)
            .build()
            .unwrap()
    };
    let mut queued = Vec::new();
    let mut next = 0;
    // Processes that each commit three checkpoints and are killed (the
    // local tier survives): 15 commits, so drains at the 1st, then every
    // 5th.
    for _ in 0..5 {
        let mut ck = open();
        if next > 0 {
            let restored = ck.restore_latest::<Vec<u64>>().unwrap().unwrap();
            assert_eq!(restored.step, next - 1);
        }
        queued.extend(run(&mut ck, next..next + 3));
        next += 3;
        ck.flush().unwrap();
        drop(ck);
    }
    assert_eq!(
        queued,
        [0, 5, 10],
        "drains every 5th commit across restarts"
    );
    let remote_steps = assert_whole("remote", Arc::new(FsStorage::open(&remote).unwrap()));
    assert_eq!(remote_steps.last(), Some(&10));
}

#[test]
fn restore_falls_back_to_the_lower_tier_when_the_local_copy_is_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let (local, remote) = (dir.path().join("local"), dir.path().join("remote"));
    let mut ck = open(&local, &remote, Scheme::Full, 1).unwrap();
    run(&mut ck, 0..4);
    ck.finish().unwrap();
    // Damage every pack of the local tier.
    let store = FsStorage::open(&local).unwrap();
    for key in keys(&store, "packs/") {
        let mut bytes = store.get(&key).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xFF;
        store.put(&key, &bytes).unwrap();
    }
    drop(store);
    let mut ck = open(&local, &remote, Scheme::Full, 1).unwrap();
    let restored = ck.restore_latest::<Vec<u64>>().unwrap().unwrap();
    assert_eq!(restored.step, 3, "the same checkpoint, from the other tier");
    assert_eq!(restored.state, state(3));
    let tier = restored.tier.unwrap();
    assert_eq!(tier.index, 1);
    assert!(!tier.first_tier_lost, "the local tier is damaged, not lost");
    assert!(
        restored.skipped[0].reason.contains("\"local\""),
        "{:?}",
        restored.skipped
    );
}

#[test]
fn a_failing_remote_tier_delays_drains_and_never_a_checkpoint() {
    let local = MemStorage::new();
    let remote = Arc::new(FaultyStorage::new(MemStorage::new()));
    let faults = remote.control();
    faults.fail_now(Fault::Error(ErrorKind::ConnectionRefused));
    let mut ck = Checkpointer::builder()
        .tier("local", local.clone())
        .tier("remote", Arc::clone(&remote))
        .drain_every(2)
        .drain_retry(Duration::from_millis(20))
        .build()
        .unwrap();
    let events = ck.subscribe_drains();
    let queued = run(&mut ck, 0..6);
    ck.flush().unwrap();
    let status = &ck.tiers()[0];
    assert_eq!(status.name, "remote");
    assert!(
        status.failures >= 1 && status.last_error.is_some(),
        "{status:?}"
    );
    assert_eq!(status.pending, queued.last().copied());
    assert_eq!(status.drained, None);
    assert!(
        events
            .try_iter()
            .any(|e| matches!(e, DrainEvent::Failed { ref tier, .. } if tier == "remote"))
    );
    assert!(remote.inner().list("manifests/").unwrap().is_empty());

    // The tier heals: the newest queued checkpoint drains.
    faults.repair();
    ck.flush().unwrap();
    let status = &ck.tiers()[0];
    assert_eq!(
        (status.drained, status.pending, status.failures),
        (queued.last().copied(), None, 0)
    );
    let listed = ck.list_tier("remote").unwrap().checkpoints;
    assert_eq!(listed.last().map(|c| c.step), queued.last().copied());
    assert_eq!(
        ck.list_tier("local")
            .unwrap()
            .checkpoints
            .last()
            .unwrap()
            .step,
        5
    );
    assert!(matches!(
        ck.list_tier("nowhere"),
        Err(Error::InvalidConfig { .. })
    ));
    let steps = assert_whole("remote", Arc::new(remote.inner().clone()));
    assert_eq!(steps.last(), queued.last());
    ck.finish().unwrap();
    let steps = assert_whole("local", Arc::new(local));
    assert_eq!(steps.last(), Some(&5));
}

#[test]
fn a_slow_remote_drains_what_the_local_tier_would_have_deleted() {
    let remote = Arc::new(FaultyStorage::new(MemStorage::new()));
    remote.control().set_latency(Duration::from_millis(30));
    let mut ck = Checkpointer::builder()
        .tier("local", MemStorage::new())
        .tier("remote", Arc::clone(&remote))
        .keep_last(1)
        .chunk_size(4096)
        .build()
        .unwrap();
    let events = ck.subscribe_drains();
    let queued = run(&mut ck, 0..5);
    ck.finish().unwrap();
    let events: Vec<DrainEvent> = events.try_iter().collect();
    let drained: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            DrainEvent::Drained { step, .. } => Some(*step),
            _ => None,
        })
        .collect();
    assert!(
        !events.iter().any(
            |e| matches!(e, DrainEvent::Superseded { reason, .. } if reason.contains("no longer"))
        ),
        "a drain lost its source to retention: {events:?}"
    );
    assert_eq!(drained.last(), queued.last(), "{events:?}");
    assert_whole("remote", Arc::new(remote.inner().clone()));
}

#[test]
fn the_builder_checks_the_tiers() {
    let invalid = |result: ckpt::Result<Checkpointer>, option: &str| match result {
        Err(Error::InvalidConfig { option: o, .. }) => assert_eq!(o, option),
        other => panic!("expected InvalidConfig({option}), got {other:?}"),
    };
    invalid(
        Checkpointer::builder()
            .storage(MemStorage::new())
            .tier("remote", MemStorage::new())
            .build(),
        "tier",
    );
    invalid(
        Checkpointer::builder()
            .tier("a", MemStorage::new())
            .tier("a", MemStorage::new())
            .build(),
        "tier",
    );
    invalid(
        Checkpointer::builder()
            .tier("a", MemStorage::new())
            .tier("b", MemStorage::new())
            .drain_every(0)
            .build(),
        "drain_every",
    );
    invalid(
        Checkpointer::builder()
            .tier("a", MemStorage::new())
            .tier_keep_last("c", 2)
            .build(),
        "tier_keep_last",
    );
    // One tier is a plain storage: no drains, no drain ratio.
    let mut ck = Checkpointer::builder()
        .tier("only", MemStorage::new())
        .build()
        .unwrap();
    assert_eq!(ck.drain_every(), None);
    assert!(ck.set_drain_every(2).is_err());
    let committed = ck.checkpoint(0, &mut state(0)).unwrap().cloned().unwrap();
    assert!(!committed.drain_queued);
    let restored = ck.restore_latest::<Vec<u64>>().unwrap().unwrap();
    assert!(restored.tier.is_none());
    // The drain ratio is a knob a policy may turn.
    let mut ck = Checkpointer::builder()
        .tier("a", MemStorage::new())
        .tier("b", MemStorage::new())
        .build()
        .unwrap();
    assert_eq!(ck.drain_every(), Some(1));
    ck.set_drain_every(4).unwrap();
    assert_eq!(ck.drain_every(), Some(4));
    assert!(matches!(
        ck.set_drain_every(0),
        Err(Error::InvalidConfig { .. })
    ));
    let queued = run(&mut ck, 0..9);
    assert_eq!(queued, vec![3, 7], "k counts from the last drained commit");
}

#[test]
fn copy_on_write_commits_drain_once_collected() {
    let remote = MemStorage::new();
    let mut ck = Checkpointer::builder()
        .tier("local", MemStorage::new())
        .tier("remote", remote.clone())
        .scheme(Scheme::CopyOnWrite)
        .drain_every(2)
        .build()
        .unwrap();
    for step in 0..6 {
        let mut s = state(step);
        ck.checkpoint(step, &mut s).unwrap();
    }
    let newest = ck.flush().unwrap().cloned().unwrap();
    assert_eq!(newest.info.step, 5);
    // Commits 0, 2 and 4 drained (the first, then every second).
    let status = &ck.tiers()[0];
    assert_eq!((status.drained, status.pending), (Some(4), None));
    ck.finish().unwrap();
    let steps = assert_whole("remote", Arc::new(remote));
    assert_eq!(steps.last(), Some(&4));
}

#[test]
fn an_unreachable_remote_with_an_empty_local_tier_is_an_error_not_a_fresh_start() {
    let remote = Arc::new(FaultyStorage::new(MemStorage::new()));
    let mut ck = Checkpointer::builder()
        .tier("local", MemStorage::new())
        .tier("remote", Arc::clone(&remote))
        .build()
        .unwrap();
    run(&mut ck, 0..2);
    ck.finish().unwrap();
    // The node is replaced while the remote is down.
    remote
        .control()
        .fail_now(Fault::Error(ErrorKind::ConnectionRefused));
    let mut ck = Checkpointer::builder()
        .tier("local", MemStorage::new())
        .tier("remote", Arc::clone(&remote))
        .build()
        .unwrap();
    let error = ck.restore_latest::<Vec<u64>>().unwrap_err();
    assert!(matches!(error, Error::Storage { .. }), "{error:?}");
    // Once it is back, the newest drained checkpoint returns.
    remote.control().repair();
    let restored = ck.restore_latest::<Vec<u64>>().unwrap().unwrap();
    assert_eq!((restored.step, restored.state), (1, state(1)));
    assert!(restored.tier.unwrap().first_tier_lost);
}
