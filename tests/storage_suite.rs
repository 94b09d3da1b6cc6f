//! Every backend and wrapper in `ckpt` passes the one storage conformance
//! suite (`ckpt::storage::suite`).
//!
//! The suite is behind the `test-suite` feature; this crate's
//! `[dev-dependencies]` turn it on for its own tests, so a plain
//! `cargo test` runs this file.

use ckpt::storage::{FailoverMode, FailoverStorage, FaultyStorage, PrefixStorage, suite};
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
fn fs_storage_private() {
    let dir = tempfile::tempdir().unwrap();
    suite::run_all(&FsStorage::open_private(dir.path().join("store")).unwrap());
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
    let one = MemStorage::new();
    let pair = |mode, a: MemStorage, b: MemStorage| {
        FailoverStorage::builder(mode)
            .active("a", Arc::new(a))
            .standby("b", Arc::new(b))
            .build()
            .unwrap()
    };
    let backends: [(&str, Box<dyn Storage>); 7] = [
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
        (
            "mirrored pair",
            Box::new(pair(
                FailoverMode::Mirrored,
                MemStorage::new(),
                MemStorage::new(),
            )),
        ),
        (
            "shared pair",
            Box::new(pair(FailoverMode::Shared, one.clone(), one.clone())),
        ),
        (
            "prefix over a pair over faulty",
            Box::new(
                PrefixStorage::new(
                    FailoverStorage::builder(FailoverMode::Mirrored)
                        .active("a", Arc::new(FaultyStorage::new(MemStorage::new())))
                        .standby("b", Arc::new(FaultyStorage::new(MemStorage::new())))
                        .deadline(None)
                        .build()
                        .unwrap(),
                    "p",
                )
                .unwrap(),
            ),
        ),
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
    let store = FailoverStorage::builder(FailoverMode::Mirrored)
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
    let store = FailoverStorage::builder(FailoverMode::Mirrored)
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
    let store = FailoverStorage::builder(FailoverMode::Shared)
        .active("path-1", Arc::new(one_store.clone()))
        .standby("path-2", Arc::new(one_store.clone()))
        .build()
        .unwrap();
    suite::run_all(&store);
    assert_eq!(store.stats().failovers, 0);
}

/// A wrapper that forgets to forward `put_if_absent`: `run_all` must fail
/// on it, and only a backend declared without conditional puts may skip
/// that check.
#[derive(Debug)]
struct NoConditionalPut(MemStorage);

impl Storage for NoConditionalPut {
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
}

#[test]
#[should_panic(expected = "put_if_absent is not supported")]
fn the_suite_fails_a_store_without_conditional_put() {
    suite::run_all(&NoConditionalPut(MemStorage::new()));
}

#[test]
fn a_store_declared_without_conditional_put_passes_the_rest() {
    suite::run_all_without_conditional_put(&NoConditionalPut(MemStorage::new()));
}

#[test]
#[should_panic(expected = "declared without conditional put")]
fn the_suite_catches_a_declaration_that_is_not_true() {
    suite::run_all_without_conditional_put(&MemStorage::new());
}

/// A mirrored pair's conditional put is decided by the active, and the
/// winner's bytes (only) reach the standby; batched deletes and parts
/// reach both mirrors.
#[test]
fn failover_pair_mirrors_conditional_puts_parts_and_batched_deletes() {
    for deadline in [None, Some(std::time::Duration::from_secs(5))] {
        let (a, b) = (Arc::new(MemStorage::new()), Arc::new(MemStorage::new()));
        let store = FailoverStorage::builder(FailoverMode::Mirrored)
            .active("a", a.clone())
            .standby("b", b.clone())
            .deadline(deadline)
            .build()
            .unwrap();
        assert!(store.put_if_absent("global/1", b"winner").unwrap());
        assert!(!store.put_if_absent("global/1", b"loser").unwrap());
        assert_eq!(b.get("global/1").unwrap(), b"winner", "{deadline:?}");
        store
            .put_parts("packs/p", &[b"ab".as_slice(), b"", b"cd"])
            .unwrap();
        assert_eq!(a.get("packs/p").unwrap(), b"abcd", "{deadline:?}");
        assert_eq!(b.get("packs/p").unwrap(), b"abcd", "{deadline:?}");
        let keys = [
            "global/1".to_owned(),
            "packs/p".to_owned(),
            "none".to_owned(),
        ];
        store.delete_many(&keys).unwrap();
        assert!(a.list("").unwrap().is_empty(), "{deadline:?}");
        assert!(b.list("").unwrap().is_empty(), "{deadline:?}");
    }
}

/// Conditional puts, parts and batched deletes fail over like puts.
#[test]
fn failover_pair_fails_over_conditional_puts_parts_and_batched_deletes() {
    use ckpt::storage::Fault;
    for mode in [FailoverMode::Mirrored, FailoverMode::Shared] {
        let one = MemStorage::new();
        let backend = || match mode {
            FailoverMode::Shared => Arc::new(FaultyStorage::new(one.clone())),
            FailoverMode::Mirrored => Arc::new(FaultyStorage::new(MemStorage::new())),
        };
        let (a, b) = (backend(), backend());
        let store = FailoverStorage::builder(mode)
            .active("a", a.clone())
            .standby("b", b.clone())
            .deadline(None)
            .build()
            .unwrap();
        let reset = Fault::Error(std::io::ErrorKind::ConnectionReset);
        a.control().fail_now(reset);
        assert!(store.put_if_absent("g", b"1").unwrap(), "{mode:?}");
        assert_eq!(store.stats().failovers, 1, "{mode:?}");
        assert!(!store.put_if_absent("g", b"2").unwrap(), "{mode:?}");
        store.put_parts("p", &[b"x".as_slice(), b"y"]).unwrap();
        assert_eq!(b.inner().get("p").unwrap(), b"xy", "{mode:?}");
        b.control().fail_next(reset);
        let err = store.delete_many(&["p".to_owned()]).unwrap_err();
        assert!(
            matches!(err, ckpt::Error::StorageDown { .. }),
            "{mode:?}: {err}"
        );
        assert_eq!(b.inner().get("p").unwrap(), b"xy", "{mode:?}");
    }
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

/// `read_into` through a failover pair fails over like `get_range` does,
/// with and without a deadline (the buffers are filled in place, or from
/// the deadline thread's copy), and a retried read leaves no trace of the
/// failed attempt in the buffers.
#[test]
fn failover_read_into_fails_over_like_get_range() {
    use ckpt::storage::Fault;
    for deadline in [None, Some(std::time::Duration::from_secs(5))] {
        let active = Arc::new(FaultyStorage::new(MemStorage::new()));
        let faults = active.control();
        let store = FailoverStorage::builder(FailoverMode::Mirrored)
            .active("a", active.clone())
            .standby("b", Arc::new(MemStorage::new()))
            .deadline(deadline)
            .build()
            .unwrap();
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 13 % 251) as u8).collect();
        store.put("packs/p", &data).unwrap();

        faults.fail_now(Fault::Error(std::io::ErrorKind::ConnectionRefused));
        let (mut head, mut body) = (vec![0xee; 16], vec![0xee; 3000]);
        store
            .read_into("packs/p", 100, &mut [&mut head, &mut [], &mut body])
            .unwrap();
        assert_eq!(head, data[100..116], "deadline {deadline:?}");
        assert_eq!(body, data[116..3116], "deadline {deadline:?}");
        assert_eq!(store.stats().failovers, 1, "deadline {deadline:?}");

        let err = store
            .read_into("packs/p", 4999, &mut [&mut [0; 2]])
            .unwrap_err();
        assert!(err.is_damage(), "deadline {deadline:?}: {err}");
        let err = store
            .read_into("packs/none", 0, &mut [&mut [0; 2]])
            .unwrap_err();
        assert!(
            matches!(err, ckpt::Error::NotFound { .. }),
            "deadline {deadline:?}: {err}"
        );
    }
}

/// A `FaultyStorage` injects its faults into `read_into` as into
/// `get_range`, instead of letting it reach the inner store unharmed.
#[test]
fn faults_hit_read_into() {
    use ckpt::storage::Fault;
    let store = FaultyStorage::new(MemStorage::new());
    store.put("k", b"abcdef").unwrap();
    let faults = store.control();
    faults.fail_next(Fault::Error(std::io::ErrorKind::ConnectionReset));
    let mut buf = [0; 3];
    let err = store.read_into("k", 1, &mut [&mut buf]).unwrap_err();
    assert!(matches!(err, ckpt::Error::Storage { .. }), "{err}");
    assert_eq!(faults.faults_injected(), 1);
    store.read_into("k", 1, &mut [&mut buf]).unwrap();
    assert_eq!(&buf, b"bcd");
}

/// Every file and directory under `dir`, hidden ones included, with sizes.
fn snapshot(dir: &std::path::Path) -> Vec<(std::path::PathBuf, u64)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        out.push((entry.path(), meta.len()));
        if meta.is_dir() {
            out.extend(snapshot(&entry.path()));
        }
    }
    out.sort();
    out
}

fn expect_read_only<T: std::fmt::Debug>(op: &str, result: Result<T>) {
    match result {
        Err(ckpt::Error::ReadOnly { op: got, .. }) => assert_eq!(got, op),
        other => panic!("{op} on a read-only store must be ReadOnly, got {other:?}"),
    }
}

#[test]
fn read_only_fs_storage_reads_beside_the_writer_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let writer = FsStorage::open(dir.path()).unwrap();
    let data: Vec<u8> = (0..4096u32).map(|i| (i % 199) as u8).collect();
    writer.put("packs/p1", &data).unwrap();
    writer.put("manifests/m 1", b"manifest").unwrap();
    // A crashed writer's temporary file: a reader must leave it alone.
    std::fs::write(dir.path().join("packs/.tmp-00000000deadbeef"), b"debris").unwrap();
    let before = snapshot(dir.path());

    let reader = FsStorage::open_read_only(dir.path()).unwrap();
    assert!(reader.is_read_only());
    assert!(!writer.is_read_only());
    assert_eq!(reader.get("packs/p1").unwrap(), data);
    assert_eq!(reader.get_range("packs/p1", 10..20).unwrap(), data[10..20]);
    let (mut a, mut b) = (vec![0; 100], vec![0; 900]);
    reader
        .read_into("packs/p1", 3000, &mut [&mut a, &mut b])
        .unwrap();
    assert_eq!([a, b].concat(), data[3000..4000]);
    assert_eq!(
        reader.list("").unwrap(),
        vec!["manifests/m 1".to_string(), "packs/p1".to_string()]
    );
    assert!(matches!(
        reader.get("packs/none"),
        Err(ckpt::Error::NotFound { .. })
    ));
    assert!(
        reader
            .read_into("packs/p1", 4000, &mut [&mut [0; 97]])
            .unwrap_err()
            .is_damage()
    );

    expect_read_only("put", reader.put("packs/p1", b"x"));
    expect_read_only("put", reader.put("new", b"x"));
    expect_read_only("put_parts", reader.put_parts("new/a", &[b"x", b"y"]));
    expect_read_only("put_if_absent", reader.put_if_absent("new/b", b"x"));
    expect_read_only("delete", reader.delete("packs/p1"));
    expect_read_only("delete_many", reader.delete_many(&["packs/p1".to_string()]));
    expect_read_only("delete_many", reader.delete_many(&[]));
    let message = reader.put("k", b"v").unwrap_err().to_string();
    assert!(
        message.contains("read-only") && message.contains("FsStorage::open"),
        "{message}"
    );

    assert_eq!(
        snapshot(dir.path()),
        before,
        "a read-only store changed its directory"
    );
    // The writer still holds its lock and goes on; the reader sees it.
    assert!(matches!(
        FsStorage::open(dir.path()),
        Err(ckpt::Error::Locked { .. })
    ));
    writer.put("packs/p2", b"later").unwrap();
    assert_eq!(reader.get("packs/p2").unwrap(), b"later");
    drop(reader);
    writer.delete("packs/p2").unwrap();
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn read_only_fs_storage_creates_no_lock_file() {
    let dir = tempfile::tempdir().unwrap();
    drop(FsStorage::open(dir.path()).unwrap().put("a/b", b"1"));
    std::fs::remove_file(dir.path().join(".lock")).unwrap();
    let before = snapshot(dir.path());
    let reader = FsStorage::open_read_only(dir.path()).unwrap();
    assert_eq!(reader.get("a/b").unwrap(), b"1");
    assert_eq!(reader.list("a/").unwrap(), vec!["a/b".to_string()]);
    let _ = reader.put("a/c", b"2");
    let _ = reader.delete("a/b");
    assert_eq!(snapshot(dir.path()), before);
    assert!(!dir.path().join(".lock").exists());
    // A second reader, and a writer, open beside it.
    let again = FsStorage::open_read_only(dir.path()).unwrap();
    let writer = FsStorage::open(dir.path()).unwrap();
    writer.put("a/c", b"2").unwrap();
    assert_eq!(again.get("a/c").unwrap(), b"2");
}

#[test]
fn read_only_fs_storage_of_a_missing_directory_says_what_to_do() {
    let parent = tempfile::tempdir().unwrap();
    let missing = parent.path().join("no-store-here");
    let err = FsStorage::open_read_only(&missing).unwrap_err();
    let message = err.report().to_string();
    assert!(
        matches!(&err, ckpt::Error::Storage { source, .. } if source.kind() == std::io::ErrorKind::NotFound),
        "{err:?}"
    );
    assert!(message.contains("does not exist"), "{message}");
    assert!(message.contains("FsStorage::open"), "{message}");
    assert!(!missing.exists(), "open_read_only must create nothing");

    let file = parent.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    let err = FsStorage::open_read_only(&file).unwrap_err();
    assert!(
        err.report().to_string().contains("not a directory"),
        "{err}"
    );
}

/// A `read_into` that stops at the end of the object and calls the rest
/// zeros: the suite must catch it.
#[derive(Debug)]
struct ClampedReadInto(MemStorage);

impl Storage for ClampedReadInto {
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
    fn read_into(&self, key: &str, offset: u64, bufs: &mut [&mut [u8]]) -> Result<()> {
        let whole = self.0.get(key)?;
        let mut rest = whole.get(offset as usize..).unwrap_or_default();
        for buf in bufs.iter_mut() {
            let n = buf.len().min(rest.len());
            buf[..n].copy_from_slice(&rest[..n]);
            buf[n..].fill(0);
            rest = &rest[n..];
        }
        Ok(())
    }
}

#[test]
#[should_panic(expected = "must fail")]
fn the_suite_catches_a_read_into_that_reads_past_the_end() {
    suite::read_into(&ClampedReadInto(MemStorage::new()));
}
