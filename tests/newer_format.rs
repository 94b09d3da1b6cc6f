//! Objects written by a newer ckpt (a binary rolled back onto a store a
//! newer version wrote) are left alone: retention never deletes a manifest
//! or a pack of a format version this build cannot read, deletes no pack
//! while such a manifest is in the store, and `list()` reports them apart
//! from damaged ones. A damaged checkpoint whose manifest still decodes
//! keeps its packs as evidence until it ages out.

mod common;

use ckpt::{Checkpointer, FORMAT_VERSION, Group, MemStorage, Scheme, Storage};
use common::{keys, state};
use std::collections::BTreeSet;

/// Rewrites the record stored under `key` (a manifest or a group record)
/// as a newer format version would write it: the version field (bytes
/// 8..10) is `FORMAT_VERSION + 1` and the trailing CRC32 covers the change.
fn forge_newer_record(store: &MemStorage, key: &str) {
    let mut bytes = store.get(key).unwrap();
    bytes[8..10].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    let body = bytes.len() - 4;
    let crc = crc32fast::hash(&bytes[..body]);
    bytes[body..].copy_from_slice(&crc.to_le_bytes());
    store.put(key, &bytes).unwrap();
}

/// Rewrites the header of the pack `key` as a newer format version would:
/// version `FORMAT_VERSION + 1`, its CRC32 (of bytes 0..12) at 12..16.
fn forge_newer_pack(store: &MemStorage, key: &str) {
    let mut bytes = store.get(key).unwrap();
    bytes[8..10].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    let crc = crc32fast::hash(&bytes[..12]);
    bytes[12..16].copy_from_slice(&crc.to_le_bytes());
    store.put(key, &bytes).unwrap();
}

fn open(store: &MemStorage, scheme: Scheme, keep_last: usize) -> Checkpointer {
    Checkpointer::builder()
        .storage(store.clone())
        .scheme(scheme)
        .keep_last(keep_last)
        .chunk_size(4096)
        .build()
        .unwrap()
}

/// One checkpoint: its manifest key and the packs it added to the store.
struct Taken {
    manifest: String,
    new_packs: BTreeSet<String>,
    retention: ckpt::RetentionReport,
}

fn take(ck: &mut Checkpointer, store: &MemStorage, prefix: &str, step: u64) -> Taken {
    let before = keys(store, &format!("{prefix}packs/"));
    let committed = ck
        .checkpoint(step, &mut state(step))
        .unwrap()
        .expect("a synchronous scheme commits")
        .clone();
    let after = keys(store, &format!("{prefix}packs/"));
    Taken {
        manifest: committed.info.key.clone(),
        new_packs: after.difference(&before).cloned().collect(),
        retention: committed.retention,
    }
}

fn assert_present(store: &MemStorage, keys: &BTreeSet<String>, what: &str) {
    for key in keys {
        assert!(store.get(key).is_ok(), "{what}: {key} was deleted");
    }
}

/// The rollback of the issue: an older build reopens a store whose newest
/// checkpoint a newer build wrote, skips it on restore, and goes on taking
/// checkpoints with `keep_last(1)`. The newer checkpoint, and every pack it
/// may reference (including older packs an increment chains on), survive.
#[test]
fn a_rolled_back_build_keeps_the_newer_checkpoints_and_every_pack() {
    let store = MemStorage::new();
    let mut ck = open(&store, Scheme::Incremental, 3);
    let mut taken: Vec<Taken> = (1..=4).map(|s| take(&mut ck, &store, "", s)).collect();
    drop(ck);
    // A newer build wrote step 4: its manifest and its own pack.
    let newer = taken.pop().unwrap();
    forge_newer_record(&store, &newer.manifest);
    for pack in &newer.new_packs {
        forge_newer_pack(&store, pack);
    }
    let packs_then = keys(&store, "packs/");
    let manifests_then = keys(&store, "manifests/");

    // The rolled-back build restores step 3 and says why it skipped 4.
    let mut ck = open(&store, Scheme::Incremental, 1);
    let restored = ck.restore_latest::<Vec<u64>>().unwrap().unwrap();
    assert_eq!(restored.step, 3);
    assert_eq!(restored.skipped.len(), 1);
    assert_eq!(restored.skipped[0].key, newer.manifest);
    assert!(
        restored.skipped[0].reason.contains("format version"),
        "{}",
        restored.skipped[0].reason
    );
    for step in 5..=10 {
        let t = take(&mut ck, &store, "", step);
        assert_eq!(t.retention.packs_deleted, 0, "step {step}");
        assert!(t.retention.kept_newer_format >= 1, "{:?}", t.retention);
        assert!(t.retention.packs_spared >= 1, "{:?}", t.retention);
        taken.push(t);
    }
    assert_present(&store, &packs_then, "a pack the newer manifest may need");
    assert!(store.get(&newer.manifest).is_ok(), "newer manifest deleted");
    // Manifests of this build still age out.
    let now = keys(&store, "manifests/");
    assert!(
        manifests_then.difference(&now).count() == manifests_then.len() - 1,
        "only the newer manifest is left of the old ones: {now:?}"
    );

    let listing = ck.list().unwrap();
    let newer_listed: Vec<&str> = listing
        .newer_format
        .iter()
        .map(|s| s.key.as_str())
        .collect();
    assert_eq!(newer_listed, [newer.manifest.as_str()]);
    assert_eq!(listing.newer_format[0].step, Some(4));
    assert!(listing.unreadable.is_empty(), "{:?}", listing.unreadable);
    assert_eq!(listing.checkpoints.len(), 1);
    assert_eq!(
        ck.restore_latest::<Vec<u64>>().unwrap().unwrap().state,
        state(10)
    );

    // Once the newer manifest is gone (by hand, or an upgraded build),
    // collection resumes; a pack of the newer format still stays.
    store.delete(&newer.manifest).unwrap();
    let t = take(&mut ck, &store, "", 11);
    assert!(t.retention.packs_deleted > 0, "{:?}", t.retention);
    assert_eq!(t.retention.packs_spared, 0);
    assert_present(&store, &newer.new_packs, "a pack of a newer format");
    assert_eq!(t.retention.kept_newer_format, newer.new_packs.len());
    assert!(ck.list().unwrap().newer_format.is_empty());
}

/// A newer manifest older than every kept one is still never deleted, and
/// it does not count towards `keep_last`.
#[test]
fn an_old_newer_format_manifest_never_ages_out() {
    let store = MemStorage::new();
    let mut ck = open(&store, Scheme::Full, 2);
    let first = take(&mut ck, &store, "", 1);
    forge_newer_record(&store, &first.manifest);
    for step in 2..=8 {
        take(&mut ck, &store, "", step);
    }
    assert!(store.get(&first.manifest).is_ok());
    assert_present(&store, &first.new_packs, "its pack");
    let listing = ck.list().unwrap();
    assert_eq!(listing.newer_format.len(), 1);
    assert_eq!(listing.checkpoints.len(), 2, "keep_last good ones as well");
}

/// Retention of a damaged checkpoint whose manifest decodes (a pack of it
/// is bad): newer than the kept ones it stays with its packs, as evidence;
/// once older, it goes with them.
#[test]
fn a_damaged_checkpoint_keeps_its_packs_until_it_ages_out() {
    let store = MemStorage::new();
    let mut ck = open(&store, Scheme::Full, 2);
    take(&mut ck, &store, "", 1);
    take(&mut ck, &store, "", 2);
    let damaged = take(&mut ck, &store, "", 3);
    let pack = damaged.new_packs.iter().next().unwrap().clone();
    let mut bytes = store.get(&pack).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    store.put(&pack, &bytes).unwrap();
    let restored = ck.restore_latest::<Vec<u64>>().unwrap().unwrap();
    assert_eq!((restored.step, restored.skipped.len()), (2, 1));

    // Kept: 4 and 2; the damaged 3 between them stays, with its pack.
    take(&mut ck, &store, "", 4);
    assert!(store.get(&damaged.manifest).is_ok());
    assert_present(&store, &damaged.new_packs, "evidence");
    // Kept: 5 and 4; 3 is older, so it goes, pack and all.
    take(&mut ck, &store, "", 5);
    assert!(store.get(&damaged.manifest).is_err());
    assert!(store.get(&pack).is_err(), "the aged-out pack leaked");
}

const RANKS: u32 = 2;

fn open_rank(store: &MemStorage, rank: u32, run: &str) -> Checkpointer {
    Checkpointer::builder()
        .storage(store.clone())
        .group(Group::new(RANKS, rank, run))
        .scheme(Scheme::Incremental)
        .keep_last(1)
        .chunk_size(4096)
        .threads(1)
        .build()
        .unwrap()
}

/// Runs one launch of the group in lockstep on this thread (a rank's
/// checkpoint only votes, so ranks need not run concurrently), taking
/// `steps`; returns each rank's checkpoints.
fn group_launch(store: &MemStorage, run: &str, steps: std::ops::Range<u64>) -> Vec<Vec<Taken>> {
    let mut ranks: Vec<Checkpointer> = (0..RANKS).map(|r| open_rank(store, r, run)).collect();
    for ck in &mut ranks {
        ck.restore_latest::<Vec<u64>>().unwrap();
    }
    let mut taken: Vec<Vec<Taken>> = (0..RANKS).map(|_| Vec::new()).collect();
    for step in steps {
        for (rank, ck) in ranks.iter_mut().enumerate() {
            let prefix = format!("shards/{rank}/");
            taken[rank].push(take(ck, store, &prefix, step));
        }
    }
    taken
}

/// The same hole in a group: after a rollback, no rank deletes its shard
/// of the newer commit or any pack, and rank 0 keeps the newer commit.
#[test]
fn a_rolled_back_group_keeps_the_newer_commit_its_shards_and_packs() {
    let store = MemStorage::new();
    let taken = group_launch(&store, "new", 1..4);
    // A newer build wrote step 3: its commit and every rank's shard.
    let commits = keys(&store, "group/commits/");
    let newer_commit = commits.last().unwrap().clone();
    assert!(newer_commit.contains("00000000000000000003-new"));
    forge_newer_record(&store, &newer_commit);
    let mut newer_shards = Vec::new();
    for (rank, taken) in taken.iter().enumerate() {
        let shard = format!("shards/{rank}/{}", taken[2].manifest);
        forge_newer_record(&store, &shard);
        for pack in &taken[2].new_packs {
            forge_newer_pack(&store, pack);
        }
        newer_shards.push(shard);
    }
    let packs_then = keys(&store, "shards/");

    // The rolled-back build resumes from step 2 and goes on to step 7.
    group_launch(&store, "old", 3..8);
    assert!(store.get(&newer_commit).is_ok(), "newer commit deleted");
    for shard in &newer_shards {
        assert!(store.get(shard).is_ok(), "{shard} deleted");
    }
    let packs_then: BTreeSet<String> = packs_then
        .into_iter()
        .filter(|k| k.contains("/packs/"))
        .collect();
    assert_present(&store, &packs_then, "a pack a newer shard may need");
    // This build's own old commits still go (rank 0 collects before the
    // last commit exists, so the one before it is still there).
    let now = keys(&store, "group/commits/");
    let expected: BTreeSet<String> = [
        newer_commit.clone(),
        "group/commits/00000000000000000006-old".to_owned(),
        "group/commits/00000000000000000007-old".to_owned(),
    ]
    .into();
    assert_eq!(now, expected);
    for rank in 0..RANKS {
        let ck = open_rank(&store, rank, "list");
        let listing = ck.list().unwrap();
        assert_eq!(listing.newer_format.len(), 1, "rank {rank}");
    }
}
