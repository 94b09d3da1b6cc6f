//! `FsStorage` stays inside its directory and touches only what it wrote:
//! it follows no symbolic link in its lock or its sweeps, lists only names
//! it could have written, and can keep its files private.
#![cfg(unix)]

use ckpt::{Error, FsStorage, Storage};
use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

#[test]
fn a_symlinked_lock_file_is_refused_and_its_target_left_alone() {
    let outside = tempfile::tempdir().unwrap();
    let precious = outside.path().join("precious");
    fs::write(&precious, b"do not truncate me").unwrap();
    let dir = tempfile::tempdir().unwrap();
    symlink(&precious, dir.path().join(".lock")).unwrap();

    for open in [FsStorage::open, FsStorage::open_shared] {
        let err = open(dir.path()).unwrap_err();
        let message = err.report().to_string();
        assert!(matches!(err, Error::Storage { .. }), "{err:?}");
        assert!(message.contains("symbolic link"), "{message}");
        assert_eq!(fs::read(&precious).unwrap(), b"do not truncate me");
    }
}

#[test]
fn a_dangling_symlinked_lock_file_creates_nothing() {
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("created-through-the-link");
    let dir = tempfile::tempdir().unwrap();
    symlink(&target, dir.path().join(".lock")).unwrap();
    assert!(FsStorage::open(dir.path()).is_err());
    assert!(!target.exists());
}

#[test]
fn a_lock_file_that_is_a_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join(".lock")).unwrap();
    let message = FsStorage::open(dir.path())
        .unwrap_err()
        .report()
        .to_string();
    assert!(message.contains("not a regular file"), "{message}");
}

#[test]
fn a_refused_open_leaves_the_holder_in_the_lock_file() {
    let dir = tempfile::tempdir().unwrap();
    let _writer = FsStorage::open(dir.path()).unwrap();
    let before = fs::read_to_string(dir.path().join(".lock")).unwrap();
    assert!(before.starts_with("pid "), "{before}");
    for _ in 0..2 {
        assert!(matches!(
            FsStorage::open(dir.path()),
            Err(Error::Locked { holder, .. }) if holder == before
        ));
        assert!(FsStorage::open_shared(dir.path()).is_err());
    }
    assert_eq!(
        fs::read_to_string(dir.path().join(".lock")).unwrap(),
        before
    );
}

#[test]
fn the_temp_sweep_does_not_follow_symlinked_directories() {
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join(".tmp-x"), b"not ours").unwrap();
    fs::create_dir(outside.path().join("deeper")).unwrap();
    fs::write(outside.path().join("deeper/.tmp-y"), b"not ours").unwrap();
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("packs")).unwrap();
    symlink(outside.path(), dir.path().join("packs/linked")).unwrap();
    symlink(outside.path(), dir.path().join("linked")).unwrap();
    // A temp-named link to a file: the sweep removes only regular files.
    symlink(
        outside.path().join(".tmp-x"),
        dir.path().join("packs/.tmp-link"),
    )
    .unwrap();
    // A real stale temp file of ours is still swept.
    fs::write(dir.path().join("packs/.tmp-0123"), b"stale").unwrap();

    drop(FsStorage::open(dir.path()).unwrap());

    assert!(outside.path().join(".tmp-x").exists());
    assert!(outside.path().join("deeper/.tmp-y").exists());
    assert!(fs::symlink_metadata(dir.path().join("packs/.tmp-link")).is_ok());
    assert!(!dir.path().join("packs/.tmp-0123").exists());
}

#[test]
fn list_neither_follows_nor_returns_symlinks() {
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("victim"), b"not ours").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = FsStorage::open(dir.path()).unwrap();
    store.put("packs/p1", b"1").unwrap();
    symlink(outside.path(), dir.path().join("packs/linked")).unwrap();
    symlink(outside.path(), dir.path().join("linked")).unwrap();
    symlink(
        outside.path().join("victim"),
        dir.path().join("packs/victim"),
    )
    .unwrap();

    assert_eq!(store.list("").unwrap(), vec!["packs/p1".to_string()]);
    assert_eq!(store.list("packs/").unwrap(), vec!["packs/p1".to_string()]);
    assert!(store.list("packs/linked/").unwrap().is_empty());
    assert!(store.list("linked/").unwrap().is_empty());
    // So whatever deletes what it lists (retention) never reaches them.
    let listed = store.list("").unwrap();
    store.delete_many(&listed).unwrap();
    assert!(outside.path().join("victim").exists());
}

#[test]
fn list_skips_names_that_are_not_canonical_encodings() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStorage::open(dir.path()).unwrap();
    store.put("packs/A", b"ours").unwrap();
    store.put("packs/a b", b"ours").unwrap();
    let packs = dir.path().join("packs");
    // Each decodes to a valid key, but none is what `put` writes for it.
    for stray in [
        "%41",    // "A", written as "A"
        "a%2fb",  // lower-case hex
        "%2E%2E", // ".."
        "%2E",    // "."
        "x%2Fy",  // a '/' inside a component
        "%00",    // NUL
        "%zz",    // not hex at all
        "caf\u{e9}",
    ] {
        fs::write(packs.join(stray), b"stray").unwrap();
    }
    fs::create_dir(dir.path().join("%70acks")).unwrap(); // "packs"
    fs::write(dir.path().join("%70acks/B"), b"stray").unwrap();

    let listed = store.list("").unwrap();
    assert_eq!(listed, vec!["packs/A".to_string(), "packs/a b".to_string()]);
    assert_eq!(store.list("packs/").unwrap(), listed);
    store.delete_many(&listed).unwrap();
    assert!(packs.join("%41").exists());
    assert!(dir.path().join("%70acks/B").exists());
}

#[cfg(target_os = "linux")]
#[test]
fn list_skips_names_that_are_not_utf8() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let store = FsStorage::open(dir.path()).unwrap();
    store.put("packs/p", b"ours").unwrap();
    let name = OsStr::from_bytes(b"bad\xff");
    fs::write(dir.path().join("packs").join(name), b"stray").unwrap();
    assert_eq!(store.list("").unwrap(), vec!["packs/p".to_string()]);
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn open_creates_missing_parents_of_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("a/b/store");
    let store = FsStorage::open(&root).unwrap();
    store.put("k", b"v").unwrap();
    assert_eq!(store.list("").unwrap(), vec!["k".to_string()]);
    drop(store);
    let store = FsStorage::open_shared(dir.path().join("c/d")).unwrap();
    store.put("k", b"v").unwrap();
}

#[test]
fn a_private_store_creates_files_0600_and_directories_0700() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("parent/store");
    let store = FsStorage::open_private(&root).unwrap();
    store.put("packs/deep/p1", b"secret").unwrap();
    store.put_parts("packs/p2", &[b"se", b"cret"]).unwrap();
    assert!(store.put_if_absent("manifests/m1", b"secret").unwrap());
    for created in ["parent", "parent/store"] {
        assert_eq!(mode(&dir.path().join(created)), 0o700, "{created}");
    }
    for created in ["packs", "packs/deep", "manifests"] {
        assert_eq!(mode(&root.join(created)), 0o700, "{created}");
    }
    for created in [".lock", "packs/deep/p1", "packs/p2", "manifests/m1"] {
        assert_eq!(mode(&root.join(created)), 0o600, "{created}");
    }
    // Overwriting keeps the object private (it is a new file renamed over).
    store.put("packs/p2", b"again").unwrap();
    assert_eq!(mode(&root.join("packs/p2")), 0o600);
    assert_eq!(store.list("").unwrap().len(), 3);
}

#[test]
fn the_default_store_leaves_modes_to_the_umask() {
    // Private modes are opt-in: a default store's files are readable by
    // the group and others wherever the umask lets them be (it never
    // removes the owner's bits, and 0o600 would remove all of theirs).
    let dir = tempfile::tempdir().unwrap();
    let store = FsStorage::open(dir.path().join("store")).unwrap();
    store.put("packs/p1", b"shared").unwrap();
    let probe = dir.path().join("probe");
    fs::write(&probe, b"").unwrap();
    fs::create_dir(dir.path().join("probe-dir")).unwrap();
    let file_mode = mode(&probe);
    let dir_mode = mode(&dir.path().join("probe-dir"));
    let root = dir.path().join("store");
    assert_eq!(mode(&root.join("packs/p1")), file_mode);
    assert_eq!(mode(&root.join(".lock")), file_mode);
    assert_eq!(mode(&root.join("packs")), dir_mode);
    assert_eq!(mode(&root), dir_mode);
}

#[test]
fn retention_leaves_stray_files_and_links_alone() {
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("victim"), b"not ours").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let packs = dir.path().join("packs");
    fs::create_dir(&packs).unwrap();
    // None of these is a name `put` writes; before, `%2E%2E` listed as the
    // invalid key `packs/..` and failed every retention pass, and the link
    // listed as an unreferenced pack and was deleted.
    let strays = ["%2E%2E", "%41", "a%2fb"];
    for stray in strays {
        fs::write(packs.join(stray), b"stray").unwrap();
    }
    symlink(outside.path().join("victim"), packs.join("linked")).unwrap();

    let mut ck = ckpt::Checkpointer::builder()
        .storage(FsStorage::open(dir.path()).unwrap())
        .keep_last(1)
        .chunk_size(4096)
        .build()
        .unwrap();
    for step in 0..3u64 {
        let mut state: Vec<u64> = (0..2_000).map(|i| i * 7 + step * 1_000_003).collect();
        ck.checkpoint(step, &mut state).unwrap();
    }
    drop(ck);

    for stray in strays {
        assert!(packs.join(stray).exists(), "{stray}");
    }
    assert!(fs::symlink_metadata(packs.join("linked")).is_ok());
    assert!(outside.path().join("victim").exists());
    let store = FsStorage::open_read_only(dir.path()).unwrap();
    assert_eq!(store.list("manifests/").unwrap().len(), 1);
}
