//! Damage to stores written by the incremental and copy-on-write schemes,
//! whose checkpoints share packs: every file is in turn bit-flipped,
//! truncated and deleted (each in a fresh copy), and restore must never
//! return a wrong state, must skip every checkpoint that needs the damaged
//! file, and must still restore every checkpoint older than that file.

mod common;

use ckpt::{Checkpointer, Error, FsStorage, Scheme};
use common::copy_store;
use common::paged_sim::Sim;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::Path;

const SEED: u64 = 0x0C04_40B7;
const CHECKPOINTS: u64 = 8;

/// A checkpoint of the reference store and the files that existed once it
/// had committed.
struct Taken {
    step: u64,
    manifest: String,
    files_after: Vec<String>,
}

fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for sub in ["packs", "manifests"] {
        for entry in std::fs::read_dir(dir.join(sub)).into_iter().flatten() {
            let name = entry.unwrap().file_name();
            out.push(format!("{sub}/{}", name.to_string_lossy()));
        }
    }
    out.sort();
    out
}

fn open(dir: &Path, scheme: Scheme) -> Checkpointer {
    Checkpointer::builder()
        .storage(FsStorage::open(dir).unwrap())
        .scheme(scheme)
        .keep_last(4)
        .max_chain(3)
        .chunk_size(16 * 1024)
        .build()
        .unwrap()
}

fn build_store(dir: &Path, scheme: Scheme) -> Vec<Taken> {
    let mut ck = open(dir, scheme);
    let mut sim = Sim::new();
    let mut taken = Vec::new();
    for _ in 0..CHECKPOINTS {
        sim.advance();
        ck.checkpoint(sim.step, &mut sim).unwrap();
        let committed = ck.flush().unwrap().unwrap().clone();
        assert_eq!(committed.info.step, sim.step);
        taken.push(Taken {
            step: sim.step,
            manifest: committed.info.key,
            files_after: files(dir),
        });
    }
    ck.finish().unwrap();
    taken
}

fn damage(path: &Path, trial: usize, rng: &mut StdRng) -> String {
    let mut bytes = std::fs::read(path).unwrap();
    let len = bytes.len();
    match trial {
        0 | 1 => {
            let bit = rng.random_range(0..len * 8);
            bytes[bit / 8] ^= 1 << (bit % 8);
            std::fs::write(path, bytes).unwrap();
            format!("flip of bit {bit}")
        }
        2 => {
            let keep = rng.random_range(0..len);
            std::fs::write(path, &bytes[..keep]).unwrap();
            format!("truncation to {keep} of {len} bytes")
        }
        _ => {
            std::fs::remove_file(path).unwrap();
            "deletion".to_owned()
        }
    }
}

fn check_damage(scheme: Scheme, rng: &mut StdRng) -> usize {
    let reference = tempfile::tempdir().unwrap();
    let taken = build_store(reference.path(), scheme);
    let all = files(reference.path());
    let retained: Vec<&Taken> = taken.iter().filter(|t| all.contains(&t.manifest)).collect();
    let newest = *retained.last().unwrap();
    let mut cases = 0;
    for file in &all {
        // Objects are written once and only ever reference older ones, so
        // every checkpoint committed before `file` existed is independent
        // of it.
        let born = taken
            .iter()
            .position(|t| t.files_after.contains(file))
            .unwrap();
        let independent = retained
            .iter()
            .rev()
            .find(|t| !t.files_after.contains(file) && taken[born].step > t.step);
        let newest_needs_it = born + 1 == taken.len();
        for trial in 0..4 {
            let copy = tempfile::tempdir().unwrap();
            copy_store(reference.path(), copy.path());
            let how = damage(&copy.path().join(file), trial, rng);
            let what = format!("{scheme:?}: {how} of {file}");
            let mut ck = open(copy.path(), Scheme::Full);
            match ck.restore_latest::<Sim>() {
                Ok(Some(restored)) => {
                    assert!(
                        restored.state == Sim::at(restored.step),
                        "{what}: wrong state"
                    );
                    if let Some(t) = independent {
                        assert!(restored.step >= t.step, "{what}: {} lost", t.step);
                    }
                    if newest_needs_it {
                        assert!(restored.step < newest.step, "{what}: damage unnoticed");
                    }
                    assert!(
                        restored
                            .skipped
                            .iter()
                            .all(|s| s.step > Some(restored.step)),
                        "{what}: {:?}",
                        restored.skipped
                    );
                    if restored.step < newest.step && how != "deletion" {
                        assert!(
                            restored.skipped.iter().any(|s| s.key == newest.manifest),
                            "{what}: the newest checkpoint is not reported skipped"
                        );
                    }
                }
                Err(Error::NoUsableCheckpoint { skipped }) => {
                    assert!(independent.is_none(), "{what}: nothing restored");
                    assert!(!skipped.is_empty(), "{what}");
                }
                other => panic!("{what}: {:?}", other.map(|r| r.map(|r| r.step))),
            }
            cases += 1;
        }
    }
    cases
}

#[test]
fn damage_to_shared_packs_is_detected_and_contained() {
    let mut rng = StdRng::seed_from_u64(SEED);
    for scheme in [Scheme::Incremental, Scheme::CopyOnWrite] {
        let cases = check_damage(scheme, &mut rng);
        println!("{scheme:?}: {cases} damaged stores checked");
        assert!(cases >= 4 * 8, "{scheme:?}: too few files to damage");
    }
}
