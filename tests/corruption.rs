//! Damage to a store on disk: every file of a store with several known
//! checkpoints is in turn bit-flipped, truncated and deleted (each in a
//! fresh copy of the store), and restore must then give exactly the newest
//! intact checkpoint, name the damaged one it skipped, and never panic.
//!
//! Set `CKPT_CORRUPTION_SEED` to replay another seed.

mod common;

use ckpt::{Checkpointer, Error, FsStorage, Storage};
use common::{copy_store, seed};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const SEED_ENV: &str = "CKPT_CORRUPTION_SEED";
const DEFAULT_SEED: u64 = 0xBAD_B175;
const KEEP_LAST: usize = 5;
const CHECKPOINTS: u64 = 7;
const FLIP_TRIALS: usize = 4;

/// A state whose content is a pure function of its step.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Doc {
    step: u64,
    title: String,
    cells: Vec<u32>,
    notes: BTreeMap<u32, String>,
}

/// About 40-60 KB encoded: a dozen 4 KiB chunks, compressible.
fn doc(step: u64) -> Doc {
    let len = 10_000 + (step as usize * 37) % 5_000;
    Doc {
        step,
        title: format!("document at step {step} — ✓"),
        cells: (0..len as u32)
            .map(|i| (i / 3).wrapping_mul(step as u32 + 1) ^ (i % 251))
            .collect(),
        notes: (0..50)
            .map(|i| (i, format!("note {i} of {step}")))
            .collect(),
    }
}

fn step_of(index: usize) -> u64 {
    (index as u64 + 1) * 10
}

fn builder() -> ckpt::CheckpointerBuilder {
    Checkpointer::builder()
        .keep_last(KEEP_LAST)
        .compression_level(3)
        .chunk_size(4096)
}

fn open(dir: &Path) -> (Checkpointer, Arc<FsStorage>) {
    let storage = Arc::new(FsStorage::open(dir).unwrap());
    let ck = builder().storage(Arc::clone(&storage)).build().unwrap();
    (ck, storage)
}

/// A checkpoint of the reference store and the files that make it up.
#[derive(Debug, Clone)]
struct Known {
    step: u64,
    manifest: String,
    packs: Vec<String>,
}

/// Files below `dir`, as storage keys (`packs/…`, `manifests/…`), skipping
/// the lock file.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for sub in ["packs", "manifests"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for entry in entries {
            let entry = entry.unwrap();
            assert!(entry.file_type().unwrap().is_file());
            out.push(format!("{sub}/{}", entry.file_name().to_string_lossy()));
        }
    }
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(
            // The model's state and the journal are damaged in their
            // own tests (decode_fuzz, journal): a checkpoint never needs them.
            [".lock", "packs", "manifests", "model", "journal"].contains(&name.as_str()),
            "unexpected entry {name} in the store"
        );
    }
    out.sort();
    out
}

/// Builds the reference store: CHECKPOINTS checkpoints, of which KEEP_LAST
/// are retained. Returns them oldest first.
fn build_store(dir: &Path) -> Vec<Known> {
    let (mut ck, _storage) = open(dir);
    let mut known = Vec::new();
    for index in 0..CHECKPOINTS as usize {
        let before = files(dir);
        let step = step_of(index);
        let committed = ck
            .checkpoint(step, &mut doc(step))
            .unwrap()
            .expect("a synchronous scheme commits")
            .clone();
        let packs: Vec<String> = files(dir)
            .into_iter()
            .filter(|f| f.starts_with("packs/") && !before.contains(f))
            .collect();
        assert_eq!(packs.len(), 1, "the full scheme writes one pack");
        known.push(Known {
            step,
            manifest: committed.info.key.clone(),
            packs,
        });
    }
    let known = known.split_off(known.len() - KEEP_LAST);
    let mut expected: Vec<String> = known
        .iter()
        .flat_map(|k| k.packs.iter().chain([&k.manifest]).cloned())
        .collect();
    expected.sort();
    assert_eq!(
        files(dir),
        expected,
        "the store holds the retained checkpoints"
    );
    let restored = ck.restore_latest::<Doc>().unwrap().unwrap();
    assert_eq!(restored.step, known.last().unwrap().step);
    assert!(
        restored.info.logical_bytes > 8 * 4096,
        "several chunks each"
    );
    known
}

#[derive(Debug, Clone)]
enum Damage {
    FlipBits(Vec<u64>),
    Truncate(u64),
    Delete,
    /// Overwritten with the bytes of another object of the same kind.
    ReplaceWith(PathBuf),
}

fn apply(path: &Path, damage: &Damage) {
    match damage {
        Damage::FlipBits(bits) => {
            let mut bytes = std::fs::read(path).unwrap();
            for &bit in bits {
                bytes[(bit / 8) as usize] ^= 1 << (bit % 8);
            }
            std::fs::write(path, bytes).unwrap();
        }
        Damage::Truncate(len) => {
            let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
            file.set_len(*len).unwrap();
        }
        Damage::Delete => std::fs::remove_file(path).unwrap(),
        Damage::ReplaceWith(other) => {
            std::fs::write(path, std::fs::read(other).unwrap()).unwrap();
        }
    }
}

fn damages(len: u64, rng: &mut StdRng) -> Vec<Damage> {
    let mut out = Vec::new();
    for _ in 0..FLIP_TRIALS {
        let count = rng.random_range(1..=3);
        let mut bits: Vec<u64> = (0..count).map(|_| rng.random_range(0..len * 8)).collect();
        bits.sort_unstable();
        bits.dedup();
        out.push(Damage::FlipBits(bits));
    }
    out.push(Damage::Truncate(0));
    out.push(Damage::Truncate(rng.random_range(1..len)));
    out.push(Damage::Truncate(len - 1));
    out.push(Damage::Delete);
    out
}

/// Restores from `dir` again and again, deleting the newest manifest after
/// each restore, and checks every answer against the known checkpoints,
/// one of which (`damaged`) may be unusable. `gone` is a checkpoint whose
/// manifest no longer exists at all.
fn walk(dir: &Path, known: &[Known], damaged: Option<usize>, gone: Option<usize>, what: &str) {
    let (mut ck, storage) = open(dir);
    let mut remaining: Vec<usize> = (0..known.len()).filter(|&i| Some(i) != gone).collect();

    let listing = ck.list().unwrap();
    let listed: Vec<&str> = listing.checkpoints.iter().map(|c| c.key.as_str()).collect();
    let unreadable: Vec<&str> = listing.unreadable.iter().map(|s| s.key.as_str()).collect();
    let manifest_damaged = damaged
        .filter(|&d| remaining.contains(&d) && !listed.contains(&known[d].manifest.as_str()));
    let expect_listed: Vec<&str> = remaining
        .iter()
        .filter(|&&i| Some(i) != manifest_damaged)
        .map(|&i| known[i].manifest.as_str())
        .collect();
    assert_eq!(listed, expect_listed, "{what}: list().checkpoints");
    let expect_unreadable: Vec<&str> = manifest_damaged
        .map(|d| known[d].manifest.as_str())
        .into_iter()
        .collect();
    assert_eq!(unreadable, expect_unreadable, "{what}: list().unreadable");

    loop {
        let result = catch_unwind(AssertUnwindSafe(|| ck.restore_latest::<Doc>()))
            .unwrap_or_else(|_| panic!("{what}: restore panicked"));
        let intact = remaining.iter().rev().find(|&&i| Some(i) != damaged);
        let damaged_above =
            damaged.filter(|&d| remaining.contains(&d) && intact.is_none_or(|&i| d > i));
        let expect_skipped: Vec<&str> = damaged_above
            .map(|d| known[d].manifest.as_str())
            .into_iter()
            .collect();
        match (result, intact) {
            (Ok(Some(restored)), Some(&i)) => {
                assert_eq!(restored.step, known[i].step, "{what}");
                assert_eq!(restored.info.key, known[i].manifest, "{what}");
                assert!(
                    restored.state == doc(known[i].step),
                    "{what}: state differs"
                );
                let skipped: Vec<&str> = restored.skipped.iter().map(|s| s.key.as_str()).collect();
                assert_eq!(skipped, expect_skipped, "{what}: skipped");
                for s in &restored.skipped {
                    assert!(!s.reason.is_empty(), "{what}");
                    assert_eq!(s.step, Some(known[damaged.unwrap()].step), "{what}");
                }
            }
            (Err(Error::NoUsableCheckpoint { skipped }), None) if !remaining.is_empty() => {
                let skipped: Vec<&str> = skipped.iter().map(|s| s.key.as_str()).collect();
                assert_eq!(skipped, expect_skipped, "{what}: NoUsableCheckpoint");
            }
            (Ok(None), None) if remaining.is_empty() => {}
            (result, expected) => panic!(
                "{what}: with {remaining:?} left, expected {expected:?}, got {:?}",
                result.map(|r| r.map(|r| (r.step, r.skipped)))
            ),
        }
        let Some(top) = remaining.pop() else { break };
        storage.delete(&known[top].manifest).unwrap();
    }
}

/// Checks that the reason restore gives for the damaged checkpoint names
/// the damaged object.
fn check_reason(dir: &Path, known: &[Known], damaged: usize, file: &str, what: &str) {
    let (mut ck, _storage) = open(dir);
    let reasons: Vec<String> = match ck.restore_latest::<Doc>() {
        Ok(Some(restored)) => restored.skipped.into_iter().map(|s| s.reason).collect(),
        Err(Error::NoUsableCheckpoint { skipped }) => {
            skipped.into_iter().map(|s| s.reason).collect()
        }
        other => panic!("{what}: {:?}", other.map(|r| r.map(|r| r.step))),
    };
    if damaged + 1 == known.len() {
        assert_eq!(reasons.len(), 1, "{what}");
        assert!(reasons[0].contains(file), "{what}: reason {:?}", reasons[0]);
    }
}

#[test]
fn every_damaged_file_is_detected_and_skipped() {
    let seed = seed(SEED_ENV, DEFAULT_SEED);
    println!("corruption test seed {seed} (set {SEED_ENV} to replay another)");
    let mut rng = StdRng::seed_from_u64(seed);
    let reference = tempfile::tempdir().unwrap();
    let known = build_store(reference.path());
    let undamaged = tempfile::tempdir().unwrap();
    copy_store(reference.path(), undamaged.path());
    walk(undamaged.path(), &known, None, None, "undamaged store");

    let all = files(reference.path());
    assert_eq!(all.len(), 2 * KEEP_LAST);
    let mut scenarios = 0;
    for file in &all {
        let owner = known
            .iter()
            .position(|k| k.manifest == *file || k.packs.contains(file))
            .unwrap_or_else(|| panic!("{file} belongs to no retained checkpoint"));
        let len = std::fs::metadata(reference.path().join(file))
            .unwrap()
            .len();
        // Another object of the same kind, from the reference store.
        let same_kind: Vec<&String> = all
            .iter()
            .filter(|f| *f != file && f.split('/').next() == file.split('/').next())
            .collect();
        let other = same_kind[rng.random_range(0..same_kind.len())];
        let mut trials = damages(len, &mut rng);
        trials.push(Damage::ReplaceWith(reference.path().join(other)));
        for damage in trials {
            let what = format!(
                "{damage:?} of {file} (checkpoint at step {})",
                known[owner].step
            );
            let copy = tempfile::tempdir().unwrap();
            copy_store(reference.path(), copy.path());
            let path: PathBuf = copy.path().join(file);
            apply(&path, &damage);
            let manifest_gone = matches!(damage, Damage::Delete) && file.starts_with("manifests/");
            if !manifest_gone {
                check_reason(copy.path(), &known, owner, file, &what);
            }
            let (damaged, gone) = if manifest_gone {
                (None, Some(owner))
            } else {
                (Some(owner), None)
            };
            walk(copy.path(), &known, damaged, gone, &what);
            scenarios += 1;
        }
    }
    println!("{scenarios} damage scenarios on {} files", all.len());
}

#[test]
fn all_manifests_damaged_is_no_usable_checkpoint() {
    let reference = tempfile::tempdir().unwrap();
    let known = build_store(reference.path());
    let newest_first: Vec<&str> = known.iter().rev().map(|k| k.manifest.as_str()).collect();

    let flipped = tempfile::tempdir().unwrap();
    copy_store(reference.path(), flipped.path());
    for (i, k) in known.iter().enumerate() {
        let damage = if i % 2 == 0 {
            Damage::FlipBits(vec![100 + i as u64])
        } else {
            Damage::Truncate(10)
        };
        apply(&flipped.path().join(&k.manifest), &damage);
    }
    let (mut ck, _storage) = open(flipped.path());
    match ck.restore_latest::<Doc>() {
        Err(Error::NoUsableCheckpoint { skipped }) => {
            let keys: Vec<&str> = skipped.iter().map(|s| s.key.as_str()).collect();
            assert_eq!(keys, newest_first);
        }
        other => panic!("{:?}", other.map(|r| r.map(|r| r.step))),
    }
    let listing = ck.list().unwrap();
    assert!(listing.checkpoints.is_empty());
    assert_eq!(listing.unreadable.len(), KEEP_LAST);

    // Every pack gone: the manifests verify but none restores.
    let packless = tempfile::tempdir().unwrap();
    copy_store(reference.path(), packless.path());
    for k in &known {
        for pack in &k.packs {
            apply(&packless.path().join(pack), &Damage::Delete);
        }
    }
    let (mut ck, _storage) = open(packless.path());
    match ck.restore_latest::<Doc>() {
        Err(Error::NoUsableCheckpoint { skipped }) => {
            let keys: Vec<&str> = skipped.iter().map(|s| s.key.as_str()).collect();
            assert_eq!(keys, newest_first);
            for (s, k) in skipped.iter().zip(known.iter().rev()) {
                assert!(s.reason.contains(&k.packs[0]), "{}", s.reason);
            }
        }
        other => panic!("{:?}", other.map(|r| r.map(|r| r.step))),
    }
    assert_eq!(ck.list().unwrap().checkpoints.len(), KEEP_LAST);
}

#[test]
fn a_stray_file_under_manifests_is_listed_and_ignored() {
    let reference = tempfile::tempdir().unwrap();
    let known = build_store(reference.path());
    let newest = known.last().unwrap();
    for stray in ["notes.txt", "00000000000000000001-x", "manifest-copy"] {
        std::fs::write(
            reference.path().join("manifests").join(stray),
            b"CKPTMANI not really",
        )
        .unwrap();
    }
    let (mut ck, _storage) = open(reference.path());
    let listing = ck.list().unwrap();
    assert_eq!(listing.checkpoints.len(), KEEP_LAST);
    let mut unreadable: Vec<&str> = listing.unreadable.iter().map(|s| s.key.as_str()).collect();
    unreadable.sort_unstable();
    assert_eq!(
        unreadable,
        [
            "manifests/00000000000000000001-x",
            "manifests/manifest-copy",
            "manifests/notes.txt"
        ]
    );
    let restored = ck.restore_latest::<Doc>().unwrap().unwrap();
    assert_eq!(restored.step, newest.step);
    assert!(restored.state == doc(newest.step));
    // A checkpoint after the strays is taken, retained and restored as
    // usual, and retention leaves the strays alone.
    let step = newest.step + 1;
    let committed = ck
        .checkpoint(step, &mut doc(step))
        .unwrap()
        .expect("a synchronous scheme commits")
        .clone();
    assert_eq!(committed.retention.manifests_deleted, 1);
    assert_eq!(committed.retention.packs_deleted, 1);
    let restored = ck.restore_latest::<Doc>().unwrap().unwrap();
    assert_eq!(restored.step, step);
    assert!(restored.state == doc(step));
    assert_eq!(ck.list().unwrap().unreadable.len(), 3);
}

/// `restore_latest` documents `None` for "the store holds no checkpoint at
/// all", and a foreign file is not a checkpoint; but the stray is reported
/// as a skipped checkpoint and the empty store as `NoUsableCheckpoint`.
#[test]
fn a_stray_file_alone_is_not_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("manifests")).unwrap();
    std::fs::write(dir.path().join("manifests/notes.txt"), b"hello").unwrap();
    let (mut ck, _storage) = open(dir.path());
    let restored = ck.restore_latest::<Doc>();
    assert!(
        matches!(restored, Ok(None)),
        "{:?}",
        restored.map(|r| r.map(|r| r.step))
    );
}

/// A junk file whose name parses as a manifest with sequence number
/// `u64::MAX` makes `build()` compute `seq + 1`: a panic ("attempt to add
/// with overflow") in debug builds, and in release a wrap to sequence 0, so
/// the next checkpoint is numbered below every existing one.
#[test]
fn a_manifest_name_with_the_largest_sequence_does_not_overflow() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("manifests")).unwrap();
    let junk = format!("manifests/{}-{:020}-{:032x}", u64::MAX, 1, 7);
    std::fs::write(dir.path().join(&junk), b"junk").unwrap();
    let built = catch_unwind(|| builder().storage(FsStorage::open(dir.path())?).build());
    let mut ck = built
        .expect("build() must not panic on a store's contents")
        .unwrap();
    let committed = ck
        .checkpoint(5, &mut doc(5))
        .unwrap()
        .expect("a synchronous scheme commits")
        .clone();
    assert!(committed.info.seq >= 1, "sequence numbers start at 1");
    let restored = ck.restore_latest::<Doc>().unwrap().unwrap();
    assert_eq!(restored.step, 5);
}
