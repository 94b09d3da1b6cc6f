//! Every backend and wrapper in `ckpt` passes the one storage conformance
//! suite (`ckpt::storage::suite`).
//!
//! The suite is behind the `test-suite` feature; this crate's
//! `[dev-dependencies]` turn it on for its own tests, so a plain
//! `cargo test` runs this file.

use ckpt::storage::{FailoverStorage, FaultyStorage, Mode, PrefixStorage, suite};
use ckpt::{FsStorage, MemStorage, Result, Storage};
use std::ops::Range;
use std::sync::Arc;

#[test]
fn mem_storage() {
    suite::run_all(&MemStorage::new());
}

#[test]
fn fs_storage() {
    let dir = tempfile::tempdir().unwrap();
    suite::run_all(&FsStorage::open(dir.path()).unwrap());
}

#[test]
fn fs_storage_shared() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStorage::open_shared(dir.path()).unwrap();
    suite::run_all(&store);
    assert!(suite::supports_conditional_put(&store));
    // Two shared handles see each other's objects, and creates race
    // through the same link(2).
    let other = FsStorage::open_shared(dir.path()).unwrap();
    assert!(store.put_if_absent("group/x", b"first").unwrap());
    assert!(!other.put_if_absent("group/x", b"second").unwrap());
    assert_eq!(other.get("group/x").unwrap(), b"first");
    // An exclusive open waits for every shared handle to go, and shuts
    // shared ones out while it lives.
    assert!(matches!(
        FsStorage::open(dir.path()),
        Err(ckpt::Error::Locked { .. })
    ));
    drop((store, other));
    let exclusive = FsStorage::open(dir.path()).unwrap();
    assert!(matches!(
        FsStorage::open_shared(dir.path()),
        Err(ckpt::Error::Locked { .. })
    ));
    drop(exclusive);
    FsStorage::open_shared(dir.path()).unwrap();
}

#[test]
fn conditional_put_is_supported_where_coordination_needs_it() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FsStorage::open(dir.path()).unwrap();
    let backends: [(&str, Box<dyn Storage>); 4] = [
        ("mem", Box::new(MemStorage::new())),
        (
            "prefix over mem",
            Box::new(PrefixStorage::new(MemStorage::new(), "p").unwrap()),
        ),
        (
            "faulty over mem",
            Box::new(FaultyStorage::new(MemStorage::new())),
        ),
        ("fs", Box::new(fs)),
    ];
    for (name, store) in &backends {
        assert!(suite::supports_conditional_put(store.as_ref()), "{name}");
        suite::conditional_put(store.as_ref());
    }
}

#[test]
fn prefix_storage_over_mem_and_fs() {
    let shared = MemStorage::new();
    suite::run_all(&PrefixStorage::new(shared.clone(), "tenant").unwrap());
    suite::run_all(&PrefixStorage::new(shared.clone(), "deep/ly/nested").unwrap());
    assert!(
        shared.list("suite/").unwrap().is_empty(),
        "nothing leaked out of the prefix"
    );

    let dir = tempfile::tempdir().unwrap();
    let fs = FsStorage::open(dir.path()).unwrap();
    suite::run_all(&PrefixStorage::new(fs, "job 7/ünï").unwrap());
}

#[test]
fn faulty_storage_without_faults() {
    let store = FaultyStorage::new(MemStorage::new());
    suite::run_all(&store);
    assert_eq!(store.control().faults_injected(), 0);
}

#[test]
fn failover_storage_mirrored_over_mem() {
    let (a, b) = (Arc::new(MemStorage::new()), Arc::new(MemStorage::new()));
    let store = FailoverStorage::builder(Mode::Mirrored)
        .active("a", a.clone())
        .standby("b", b.clone())
        .build()
        .unwrap();
    suite::run_all(&store);
    assert_eq!(store.stats().failovers, 0);
}

#[test]
fn failover_storage_mirrored_over_fs_without_deadline() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store = FailoverStorage::builder(Mode::Mirrored)
        .active("a", Arc::new(FsStorage::open(da.path()).unwrap()))
        .standby("b", Arc::new(FsStorage::open(db.path()).unwrap()))
        .deadline(None)
        .build()
        .unwrap();
    suite::run_all(&store);
    assert_eq!(store.stats().failovers, 0);
}

#[test]
fn failover_storage_shared() {
    let one_store = MemStorage::new();
    let store = FailoverStorage::builder(Mode::Shared)
        .active("path-1", Arc::new(one_store.clone()))
        .standby("path-2", Arc::new(one_store.clone()))
        .build()
        .unwrap();
    suite::run_all(&store);
    assert_eq!(store.stats().failovers, 0);
}

/// A backend that lists in the wrong order: the suite must catch it.
#[derive(Debug)]
struct UnsortedList(MemStorage);

impl Storage for UnsortedList {
    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        self.0.put(key, data)
    }
    fn get(&self, key: &str) -> Result<Vec<u8>> {
        self.0.get(key)
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let mut keys = self.0.list(prefix)?;
        keys.reverse();
        Ok(keys)
    }
    fn delete(&self, key: &str) -> Result<()> {
        self.0.delete(key)
    }
    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>> {
        self.0.get_range(key, range)
    }
}

#[test]
#[should_panic(expected = "storage suite: list")]
fn the_suite_catches_a_backend_that_lists_out_of_order() {
    suite::list_prefixes_and_order(&UnsortedList(MemStorage::new()));
}

/// A conditional put built as "check, then write" (what s3s-fs does): the
/// suite's race must catch it.
#[derive(Debug)]
struct CheckThenWrite(MemStorage);

impl Storage for CheckThenWrite {
    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        self.0.put(key, data)
    }
    fn get(&self, key: &str) -> Result<Vec<u8>> {
        self.0.get(key)
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.0.list(prefix)
    }
    fn delete(&self, key: &str) -> Result<()> {
        self.0.delete(key)
    }
    fn put_if_absent(&self, key: &str, data: &[u8]) -> Result<bool> {
        if self.0.get(key).is_ok() {
            return Ok(false);
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
        self.0.put(key, data).map(|()| true)
    }
}

#[test]
#[should_panic(expected = "exactly one winner")]
fn the_suite_catches_a_conditional_put_that_checks_then_writes() {
    suite::conditional_put(&CheckThenWrite(MemStorage::new()));
}
