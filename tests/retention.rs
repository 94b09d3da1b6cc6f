//! Retention and garbage collection on a filesystem store: exactly the
//! newest `keep_last` checkpoints and the packs they reference remain, a
//! damaged manifest does not count towards `keep_last`, what each commit
//! deleted is reported, and orphan packs are collected.

mod common;

use ckpt::{Checkpointer, Error, FsStorage, RetentionReport};
use common::state;
use std::collections::BTreeSet;
use std::path::Path;

const CHECKPOINTS: u64 = 12;

fn open(dir: &Path, keep_last: usize) -> Checkpointer {
    Checkpointer::builder()
        .storage(FsStorage::open(dir).unwrap())
        .keep_last(keep_last)
        .chunk_size(4096)
        .compression_level(1)
        .build()
        .unwrap()
}

/// The objects under `sub` (`packs` or `manifests`) as storage keys.
fn keys(dir: &Path, sub: &str) -> BTreeSet<String> {
    match std::fs::read_dir(dir.join(sub)) {
        Ok(entries) => entries
            .map(|e| format!("{sub}/{}", e.unwrap().file_name().to_string_lossy()))
            .collect(),
        Err(_) => BTreeSet::new(),
    }
}

/// One committed checkpoint: its manifest, the pack it wrote, its step.
#[derive(Debug, Clone)]
struct Taken {
    step: u64,
    manifest: String,
    pack: String,
}

/// Checkpoints `step` and checks what retention reported against what
/// actually disappeared from the directory.
fn take(ck: &mut Checkpointer, dir: &Path, step: u64) -> (Taken, RetentionReport) {
    let (packs_before, manifests_before) = (keys(dir, "packs"), keys(dir, "manifests"));
    let committed = ck
        .checkpoint(step, &mut state(step))
        .unwrap()
        .expect("a synchronous scheme commits")
        .clone();
    let (packs_after, manifests_after) = (keys(dir, "packs"), keys(dir, "manifests"));
    let new_packs: Vec<&String> = packs_after.difference(&packs_before).collect();
    assert_eq!(new_packs.len(), 1, "one pack per full checkpoint");
    let new_manifests: Vec<&String> = manifests_after.difference(&manifests_before).collect();
    assert_eq!(new_manifests, [&committed.info.key]);
    let report = &committed.retention;
    assert_eq!(
        report.manifests_deleted,
        manifests_before.difference(&manifests_after).count(),
        "step {step}: {report:?}"
    );
    assert_eq!(
        report.packs_deleted,
        packs_before.difference(&packs_after).count(),
        "step {step}: {report:?}"
    );
    let taken = Taken {
        step,
        manifest: committed.info.key.clone(),
        pack: new_packs[0].clone(),
    };
    (taken, committed.retention)
}

/// The store holds exactly `retained` (oldest first): their manifests, as
/// listed, and their packs, and restore gives the newest of them.
fn assert_holds(ck: &mut Checkpointer, dir: &Path, retained: &[&Taken], what: &str) {
    let listing = ck.list().unwrap();
    let listed: Vec<&str> = listing.checkpoints.iter().map(|c| c.key.as_str()).collect();
    let expected: Vec<&str> = retained.iter().map(|t| t.manifest.as_str()).collect();
    assert_eq!(listed, expected, "{what}: listed checkpoints");
    let packs: BTreeSet<String> = retained.iter().map(|t| t.pack.clone()).collect();
    assert_eq!(keys(dir, "packs"), packs, "{what}: packs on disk");
    let newest = retained.last().unwrap();
    let restored = ck.restore_latest::<Vec<u64>>().unwrap().unwrap();
    assert_eq!(restored.step, newest.step, "{what}");
    assert_eq!(restored.state, state(newest.step), "{what}");
}

#[test]
fn retention_keeps_exactly_the_newest_and_their_packs() {
    for keep_last in 1..=4 {
        let dir = tempfile::tempdir().unwrap();
        let mut ck = open(dir.path(), keep_last);
        let mut taken = Vec::new();
        for step in 1..=CHECKPOINTS {
            let (t, report) = take(&mut ck, dir.path(), step * 5);
            taken.push(t);
            let expired = usize::from(taken.len() > keep_last);
            assert_eq!(
                report,
                report_of(expired, expired),
                "keep_last {keep_last}, checkpoint {step}"
            );
            let retained: Vec<&Taken> = taken.iter().rev().take(keep_last).rev().collect();
            let what = format!("keep_last {keep_last}, after checkpoint {step}");
            assert_holds(&mut ck, dir.path(), &retained, &what);
            assert_eq!(
                keys(dir.path(), "manifests").len(),
                retained.len(),
                "{what}"
            );
        }
        // A new checkpointer on the directory sees the same.
        drop(ck);
        let mut ck = open(dir.path(), keep_last);
        let retained: Vec<&Taken> = taken.iter().rev().take(keep_last).rev().collect();
        assert_holds(&mut ck, dir.path(), &retained, "after reopening");
    }
}

fn flip_a_bit(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_damaged_newest_manifest_does_not_count_towards_keep_last() {
    for keep_last in 1..=4 {
        let what = |s: &str| format!("keep_last {keep_last}: {s}");
        let dir = tempfile::tempdir().unwrap();
        let mut ck = open(dir.path(), keep_last);
        let mut taken = Vec::new();
        for step in 1..=CHECKPOINTS {
            taken.push(take(&mut ck, dir.path(), step).0);
        }
        let damaged = taken.last().unwrap().clone();
        flip_a_bit(&dir.path().join(&damaged.manifest));

        // Restore passes over the damaged manifest and names it.
        if keep_last == 1 {
            match ck.restore_latest::<Vec<u64>>() {
                Err(Error::NoUsableCheckpoint { skipped }) => {
                    assert_eq!(skipped.len(), 1);
                    assert_eq!(skipped[0].key, damaged.manifest);
                }
                other => panic!("{:?}", other.map(|r| r.map(|r| r.step))),
            }
        } else {
            let restored = ck.restore_latest::<Vec<u64>>().unwrap().unwrap();
            assert_eq!(restored.step, CHECKPOINTS - 1, "{}", what("restore"));
            assert_eq!(restored.state, state(CHECKPOINTS - 1));
            assert_eq!(restored.skipped.len(), 1);
            assert_eq!(restored.skipped[0].key, damaged.manifest);
            assert_eq!(restored.skipped[0].step, Some(damaged.step));
            assert!(restored.skipped[0].reason.contains("checksum"));
        }

        // The next checkpoint keeps keep_last verifiable ones: the damaged
        // manifest is not one of them (its pack goes; for keep_last 1 the
        // manifest goes too, since it is older than the one kept).
        let (next, report) = take(&mut ck, dir.path(), CHECKPOINTS + 1);
        let expected_report = report_of(usize::from(keep_last == 1), 1);
        assert_eq!(report, expected_report, "{}", what("report"));
        taken.pop();
        taken.push(next);
        let retained: Vec<&Taken> = taken.iter().rev().take(keep_last).rev().collect();
        assert_holds(&mut ck, dir.path(), &retained, &what("after the damage"));
        let unreadable: Vec<String> = ck
            .list()
            .unwrap()
            .unreadable
            .into_iter()
            .map(|s| s.key)
            .collect();
        let expected_unreadable = if keep_last == 1 {
            vec![]
        } else {
            vec![damaged.manifest.clone()]
        };
        assert_eq!(unreadable, expected_unreadable, "{}", what("unreadable"));

        // Once keep_last newer checkpoints exist, it ages out.
        for step in CHECKPOINTS + 2..CHECKPOINTS + 2 + keep_last as u64 {
            taken.push(take(&mut ck, dir.path(), step).0);
        }
        let retained: Vec<&Taken> = taken.iter().rev().take(keep_last).rev().collect();
        assert_holds(&mut ck, dir.path(), &retained, &what("later"));
        assert!(ck.list().unwrap().unreadable.is_empty(), "{}", what("aged"));
        assert_eq!(keys(dir.path(), "manifests").len(), keep_last);
    }
}

#[test]
fn orphan_packs_are_collected_by_the_next_checkpoint() {
    let keep_last = 2;
    let dir = tempfile::tempdir().unwrap();
    let mut ck = open(dir.path(), keep_last);
    let mut taken = Vec::new();
    for step in 1..=3 {
        taken.push(take(&mut ck, dir.path(), step).0);
    }
    // What a crash between a pack and its manifest leaves, and junk.
    let orphans = [
        format!("packs/{:032x}", 0xdead_beef_u128),
        "packs/leftover".to_owned(),
    ];
    std::fs::write(
        dir.path().join(&orphans[0]),
        b"CKPTPACK\x01\x00 half-written",
    )
    .unwrap();
    std::fs::write(dir.path().join(&orphans[1]), b"").unwrap();
    // They do not disturb a restore.
    let restored = ck.restore_latest::<Vec<u64>>().unwrap().unwrap();
    assert_eq!(restored.step, 3);

    // A new process on the store collects them with its first checkpoint.
    drop(ck);
    let mut ck = open(dir.path(), keep_last);
    let (next, report) = take(&mut ck, dir.path(), 4);
    assert_eq!(report, report_of(1, 1 + orphans.len()));
    taken.push(next);
    for orphan in &orphans {
        assert!(!dir.path().join(orphan).exists(), "{orphan} survived");
    }
    let retained: Vec<&Taken> = taken.iter().rev().take(keep_last).rev().collect();
    assert_holds(&mut ck, dir.path(), &retained, "after collection");
}

/// `keep_last` is documented as the number of *verified* checkpoints kept
/// ("keep two or more so that a damaged newest one has a fallback"), but
/// retention only verifies manifests: a checkpoint whose pack is damaged
/// still counts, so the last restorable fallback is deleted.
#[test]
fn a_checkpoint_with_a_damaged_pack_does_not_count_towards_keep_last() {
    let dir = tempfile::tempdir().unwrap();
    let mut ck = open(dir.path(), 2);
    let a = take(&mut ck, dir.path(), 1).0;
    let b = take(&mut ck, dir.path(), 2).0;
    flip_a_bit(&dir.path().join(&b.pack));
    // Restore notices: b is skipped, a restores.
    let restored = ck.restore_latest::<Vec<u64>>().unwrap().unwrap();
    assert_eq!((restored.step, restored.skipped.len()), (1, 1));
    // One more checkpoint, then it too is damaged.
    let c = take(&mut ck, dir.path(), 3).0;
    flip_a_bit(&dir.path().join(&c.manifest));
    // With keep_last(2), the two verifiable checkpoints were c and a, so a
    // should still be there.
    let restored = ck.restore_latest::<Vec<u64>>();
    assert!(
        matches!(&restored, Ok(Some(r)) if r.step == a.step),
        "{:?}",
        restored.map(|r| r.map(|r| r.step))
    );
}

/// A report of `manifests` manifests and `packs` packs deleted, nothing
/// kept or spared (`RetentionReport` is `#[non_exhaustive]`).
fn report_of(manifests: usize, packs: usize) -> RetentionReport {
    let mut report = RetentionReport::default();
    report.manifests_deleted = manifests;
    report.packs_deleted = packs;
    report
}
