//! The storage conformance test-suite: what every [`Storage`] must do.
//!
//! Modelled on `object_store`'s `integration` module: public functions that
//! take a `&dyn Storage`, exercise one part of the contract each, and panic
//! with a message naming the violation. Every backend and wrapper in `ckpt`
//! runs all of them (`tests/storage_suite.rs`); run them against yours too:
//!
//! ```toml
//! [dev-dependencies]
//! ckpt = { version = "0.1", features = ["test-suite"] }
//! ```
//!
//! ```
//! # // Inside ckpt's own doctests the feature is on through its dev-dependency.
//! use ckpt::storage::suite;
//! use ckpt::MemStorage;
//!
//! suite::run_all(&MemStorage::new());
//! ```
//!
//! [`run_all`] includes the conditional put ([`Storage::put_if_absent`]),
//! which coordinated checkpoints need, and fails on a backend that answers
//! [`Error::Unsupported`] — a wrapper that forgot to forward it looks just
//! like that. A backend that lacks conditional puts by design declares so
//! by running [`run_all_without_conditional_put`] instead.
//!
//! Each function works under its own prefix (`suite/<name>/`), removes what
//! it finds there first and what it wrote last, and never reads or writes
//! outside it, so the store may hold other data — but two suites must not
//! run on one store at the same time.
//!
//! The suite does not check durability across crashes (that needs a real
//! process kill, see the crash tests) nor whether a key can be both an
//! object and a prefix of other keys' components (`a` and `a/b`): object
//! stores allow it, filesystems do not, and `ckpt` never does it.

use super::Storage;
use crate::error::{Error, Result};
use std::collections::BTreeSet;
use std::fmt::Debug;

/// Runs every check of the suite, in order, the conditional put
/// included: a store whose `put_if_absent` answers [`Error::Unsupported`]
/// fails it (see [`run_all_without_conditional_put`]).
pub fn run_all(store: &dyn Storage) {
    run_all_but_conditional_put(store);
    conditional_put(store);
}

/// Runs every check but the conditional put's, for a backend that declares
/// it lacks [`Storage::put_if_absent`] (coordinated checkpoints then refuse
/// it), and checks that it says so: `put_if_absent` must answer
/// [`Error::Unsupported`], not create or fail some other way.
pub fn run_all_without_conditional_put(store: &dyn Storage) {
    run_all_but_conditional_put(store);
    assert!(
        !supports_conditional_put(store),
        "storage suite: the backend was declared without conditional put, but put_if_absent did not answer Unsupported; run suite::run_all instead"
    );
}

fn run_all_but_conditional_put(store: &dyn Storage) {
    put_get_overwrite(store);
    put_parts_concatenates(store);
    delete_is_idempotent(store);
    delete_many_removes_each(store);
    not_found(store);
    empty_objects(store);
    list_prefixes_and_order(store);
    get_range(store);
    read_into(store);
    large_object(store);
    awkward_keys(store);
    invalid_keys(store);
    concurrent_puts(store);
}

/// Whether `store` implements [`Storage::put_if_absent`] at all (a backend
/// may answer [`Error::Unsupported`]; coordinated checkpoints then refuse
/// it). Probes with one object under `suite/probe/` and removes it.
pub fn supports_conditional_put(store: &dyn Storage) -> bool {
    let root = fresh(store, "suite/probe/");
    let answer = store.put_if_absent(&format!("{root}x"), b"probe");
    clear(store, &root);
    !matches!(answer, Err(Error::Unsupported { .. }))
}

/// `put_if_absent` creates a missing object, refuses to replace an
/// existing one (keeping its bytes), rejects invalid keys, and of many
/// concurrent creators of one key exactly one wins. An
/// [`Error::Unsupported`] answer fails it.
pub fn conditional_put(store: &dyn Storage) {
    const THREADS: usize = 8;
    const ROUNDS: usize = 6;
    let root = fresh(store, "suite/conditional/");
    let key = format!("{root}once");
    let created = match store.put_if_absent(&key, b"first") {
        Err(e @ Error::Unsupported { .. }) => panic!(
            "storage suite: put_if_absent is not supported ({e}); a wrapper must forward it to its inner store, and a backend that lacks it by design must be run with suite::run_all_without_conditional_put"
        ),
        other => ok("put_if_absent", other),
    };
    assert!(
        created,
        "storage suite: put_if_absent of a missing {key:?} must create it"
    );
    assert!(
        !ok("put_if_absent", store.put_if_absent(&key, b"second")),
        "storage suite: put_if_absent of an existing {key:?} must answer false"
    );
    assert_bytes(&key, &ok("get", store.get(&key)), b"first");
    ok("delete", store.delete(&key));
    assert!(
        ok("put_if_absent", store.put_if_absent(&key, b"third")),
        "storage suite: put_if_absent after delete must create {key:?} again"
    );
    assert_bytes(&key, &ok("get", store.get(&key)), b"third");
    expect_invalid("a//b", "put_if_absent", store.put_if_absent("a//b", b"x"));
    for round in 0..ROUNDS {
        let contested = format!("{root}race{round}");
        let barrier = std::sync::Barrier::new(THREADS);
        let winners: Vec<usize> = std::thread::scope(|scope| {
            let racers: Vec<_> = (0..THREADS)
                .map(|t| {
                    let (contested, barrier) = (&contested, &barrier);
                    scope.spawn(move || {
                        barrier.wait();
                        let value = noise(4096, (round * THREADS + t) as u64 + 1);
                        ok(
                            "racing put_if_absent",
                            store.put_if_absent(contested, &value),
                        )
                        .then_some(t)
                    })
                })
                .collect();
            racers
                .into_iter()
                .filter_map(|r| {
                    r.join()
                        .unwrap_or_else(|_| panic!("storage suite: a racer thread panicked"))
                })
                .collect()
        });
        assert_eq!(
            winners.len(),
            1,
            "storage suite: {THREADS} concurrent put_if_absent of {contested:?} must have exactly one winner, got {winners:?}"
        );
        let winner = winners.first().copied().unwrap_or_default();
        let expected = noise(4096, (round * THREADS + winner) as u64 + 1);
        assert_bytes(&contested, &ok("get", store.get(&contested)), &expected);
    }
    clear(store, &root);
}

/// `put` then `get` returns the bytes; a second `put` replaces the object
/// whole, whether longer or shorter.
pub fn put_get_overwrite(store: &dyn Storage) {
    let root = fresh(store, "suite/put-get/");
    let key = format!("{root}object");
    let first: Vec<u8> = (0..=255).collect();
    ok("put", store.put(&key, &first));
    assert_bytes(&key, &ok("get", store.get(&key)), &first);

    let longer: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    ok("overwrite", store.put(&key, &longer));
    assert_bytes(&key, &ok("get after overwrite", store.get(&key)), &longer);

    let shorter = b"\0\xff short";
    ok("overwrite", store.put(&key, shorter));
    assert_bytes(
        &key,
        &ok("get after a shorter overwrite", store.get(&key)),
        shorter,
    );
    assert_eq!(
        ok("list", store.list(&root)),
        vec![key.clone()],
        "storage suite: overwriting {key:?} must leave exactly one object"
    );
    clear(store, &root);
}

/// `put_parts` stores the parts back to back, replacing the object whole,
/// including with no parts at all (an empty object) and with more parts
/// than one `writev` takes.
pub fn put_parts_concatenates(store: &dyn Storage) {
    let root = fresh(store, "suite/put-parts/");
    let key = format!("{root}object");
    let (big, tail) = (noise(300_000, 7), noise(17, 8));
    let parts: [&[u8]; 5] = [b"head", &[], &big, b"x", &tail];
    ok("put_parts", store.put_parts(&key, &parts));
    assert_bytes(&key, &ok("get", store.get(&key)), &parts.concat());
    ok("put_parts with no parts", store.put_parts(&key, &[]));
    assert_bytes(&key, &ok("get", store.get(&key)), b"");
    let many: Vec<Vec<u8>> = (0..3000u64).map(|i| noise((i % 97) as usize, i)).collect();
    let many: Vec<&[u8]> = many.iter().map(Vec::as_slice).collect();
    ok("put_parts of 3000 parts", store.put_parts(&key, &many));
    assert_bytes(&key, &ok("get", store.get(&key)), &many.concat());
    clear(store, &root);
}

/// `delete_many` removes every object named (missing ones are not an
/// error) across directories, and nothing else.
pub fn delete_many_removes_each(store: &dyn Storage) {
    let root = fresh(store, "suite/delete-many/");
    let keys: Vec<String> = ["a/1", "a/2", "b/c/3", "top"]
        .iter()
        .map(|k| format!("{root}{k}"))
        .collect();
    for key in &keys {
        ok("put", store.put(key, b"doomed"));
    }
    let survivor = format!("{root}a/survivor");
    ok("put", store.put(&survivor, b"kept"));
    let mut doomed = keys.clone();
    doomed.push(format!("{root}a/never-written"));
    ok("delete_many", store.delete_many(&doomed));
    ok("delete_many again", store.delete_many(&doomed));
    ok("delete_many of nothing", store.delete_many(&[]));
    for key in &keys {
        expect_not_found(key, store.get(key));
    }
    assert_bytes(&survivor, &ok("get", store.get(&survivor)), b"kept");
    assert_eq!(
        ok("list", store.list(&root)),
        vec![survivor.clone()],
        "storage suite: delete_many must remove exactly the keys it was given"
    );
    clear(store, &root);
}

/// `delete` removes the object; deleting a missing object is not an error.
pub fn delete_is_idempotent(store: &dyn Storage) {
    let root = fresh(store, "suite/delete/");
    let key = format!("{root}dir/object");
    ok("put", store.put(&key, b"bytes"));
    ok("delete", store.delete(&key));
    expect_not_found(&key, store.get(&key));
    ok("a second delete of the same key", store.delete(&key));
    ok(
        "delete of a key never written",
        store.delete(&format!("{root}never/written")),
    );
    assert_eq!(
        ok("list", store.list(&root)),
        Vec::<String>::new(),
        "storage suite: a deleted object must not be listed"
    );
    clear(store, &root);
}

/// A missing object is [`Error::NotFound`] for `get` and `get_range`,
/// including a key that only names a prefix of other keys.
pub fn not_found(store: &dyn Storage) {
    let root = fresh(store, "suite/not-found/");
    let missing = format!("{root}missing");
    expect_not_found(&missing, store.get(&missing));
    expect_not_found(&missing, store.get_range(&missing, 0..1));
    let deep = format!("{root}no/such/parent/object");
    expect_not_found(&deep, store.get(&deep));

    ok("put", store.put(&format!("{root}dir/object"), b"x"));
    let dir = format!("{root}dir");
    expect_not_found(&dir, store.get(&dir));
    expect_not_found(&dir, store.get_range(&dir, 0..1));
    let below = format!("{root}dir/object/below");
    expect_not_found(&below, store.get(&below));
    clear(store, &root);
}

/// An empty object is an object: it is stored, listed and read back.
pub fn empty_objects(store: &dyn Storage) {
    let root = fresh(store, "suite/empty/");
    let key = format!("{root}empty");
    ok("put of an empty object", store.put(&key, b""));
    assert_bytes(&key, &ok("get of an empty object", store.get(&key)), b"");
    assert_bytes(
        &key,
        &ok(
            "get_range 0..0 of an empty object",
            store.get_range(&key, 0..0),
        ),
        b"",
    );
    assert!(
        store.get_range(&key, 0..1).is_err(),
        "storage suite: get_range 0..1 of an empty object must fail"
    );
    assert_eq!(ok("list", store.list(&root)), vec![key.clone()]);
    ok("overwrite with bytes", store.put(&key, b"now full"));
    ok("overwrite with nothing", store.put(&key, b""));
    assert_bytes(&key, &ok("get", store.get(&key)), b"");
    clear(store, &root);
}

/// `list(prefix)` returns exactly the keys starting with `prefix` — a
/// prefix may end inside a component — in ascending byte order, objects
/// only.
pub fn list_prefixes_and_order(store: &dyn Storage) {
    let root = fresh(store, "suite/list/");
    // Put in an order that is neither sorted nor reverse-sorted.
    let names = ["b", "a/c/d", "B", "ab", "a.b", "a/b", "a-", "z/y/x/w"];
    for name in names {
        ok("put", store.put(&format!("{root}{name}"), name.as_bytes()));
    }
    let expect = |prefix: &str, wanted: &[&str]| {
        let got = ok("list", store.list(&format!("{root}{prefix}")));
        let wanted: Vec<String> = wanted.iter().map(|n| format!("{root}{n}")).collect();
        assert_eq!(
            got, wanted,
            "storage suite: list({root}{prefix:?}) returned the wrong keys or order"
        );
    };
    expect(
        "",
        &["B", "a-", "a.b", "a/b", "a/c/d", "ab", "b", "z/y/x/w"],
    );
    expect("a", &["a-", "a.b", "a/b", "a/c/d", "ab"]);
    expect("a/", &["a/b", "a/c/d"]);
    expect("a/c", &["a/c/d"]);
    expect("b", &["b"]);
    expect("B", &["B"]);
    expect("z/y/", &["z/y/x/w"]);
    expect("c", &[]);
    expect("no/such/dir/", &[]);
    let everything = ok("list of the empty prefix", store.list(""));
    let mine: Vec<&String> = everything.iter().filter(|k| k.starts_with(&root)).collect();
    assert_eq!(
        mine.len(),
        names.len(),
        "storage suite: list(\"\") must include every object"
    );
    assert!(
        everything.windows(2).all(|w| w.first() < w.get(1)),
        "storage suite: list(\"\") must be sorted and free of duplicates"
    );
    clear(store, &root);
}

/// `get_range` returns exactly the requested bytes; a range outside the
/// object (or with its start after its end) is an error, never a panic or a
/// short read.
pub fn get_range(store: &dyn Storage) {
    let root = fresh(store, "suite/range/");
    let key = format!("{root}object");
    let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 256) as u8).collect();
    ok("put", store.put(&key, &data));
    for (start, end) in [(0, 10), (990, 1000), (500, 500), (0, 1000), (1000, 1000)] {
        let got = ok("get_range", store.get_range(&key, start..end));
        let wanted = data.get(start as usize..end as usize).unwrap_or_default();
        assert_bytes(&format!("{key}[{start}..{end}]"), &got, wanted);
    }
    let bad = [
        (995, 1005),
        (1000, 1001),
        (10, 5),
        (u64::MAX - 1, u64::MAX),
        (0, u64::MAX),
    ];
    for (start, end) in bad {
        if let Ok(got) = store.get_range(&key, start..end) {
            panic!(
                "storage suite: get_range({key:?}, {start}..{end}) of a 1000-byte object must fail, \
                 it returned {} bytes",
                got.len()
            );
        }
    }
    clear(store, &root);
}

/// `read_into` fills the buffers with exactly the bytes `get_range` returns
/// for the same range, whatever their sizes: no buffers, empty ones, a zero
/// total, more buffers than one `readv` takes, a list covering the whole
/// object. Reading past the end (or a range whose end overflows) is an
/// error for which [`Error::is_damage`] holds, and so is a missing object.
pub fn read_into(store: &dyn Storage) {
    const LEN: usize = 10_000;
    let root = fresh(store, "suite/read-into/");
    let key = format!("{root}object");
    let data = noise(LEN, 0x1d70);
    ok("put", store.put(&key, &data));
    let cases: Vec<(u64, Vec<usize>)> = vec![
        (0, vec![]),
        (0, vec![0]),
        (5000, vec![0, 0, 0]),
        (LEN as u64, vec![0, 0]),
        (0, vec![LEN]),
        (0, vec![1, 0, 4095, 4096, 0, 1808]),
        (3, vec![7, 0, 1, 300, 0]),
        (9990, vec![4, 0, 6]),
        // More buffers than IOV_MAX (1024), some empty.
        (17, (0..1500).map(|i| i % 3).collect()),
        (0, scattered_sizes(LEN, 0xb0f)),
    ];
    for (offset, sizes) in &cases {
        let total: usize = sizes.iter().sum();
        let end = *offset + total as u64;
        let what = format!("{key}: read_into at {offset} of {} buffers", sizes.len());
        let mut bufs: Vec<Vec<u8>> = sizes.iter().map(|&n| vec![0xa5; n]).collect();
        let mut slices: Vec<&mut [u8]> = bufs.iter_mut().map(Vec::as_mut_slice).collect();
        ok(&what, store.read_into(&key, *offset, &mut slices));
        let wanted = ok("get_range", store.get_range(&key, *offset..end));
        assert_bytes(&what, &bufs.concat(), &wanted);
    }
    let past_the_end: [(u64, Vec<usize>); 5] = [
        (LEN as u64 - 5, vec![10]),
        (LEN as u64 - 5, vec![3, 0, 3]),
        (LEN as u64, vec![1]),
        (LEN as u64 + 1, vec![0]),
        (u64::MAX, vec![1]),
    ];
    for (offset, sizes) in past_the_end {
        let mut bufs: Vec<Vec<u8>> = sizes.iter().map(|&n| vec![0; n]).collect();
        let mut slices: Vec<&mut [u8]> = bufs.iter_mut().map(Vec::as_mut_slice).collect();
        match store.read_into(&key, offset, &mut slices) {
            Err(e) if e.is_damage() => {}
            Err(e) => panic!(
                "storage suite: read_into({key:?}, {offset}, {sizes:?}) of a {LEN}-byte object must be damage (Corrupt), got: {e}"
            ),
            Ok(()) => panic!(
                "storage suite: read_into({key:?}, {offset}, {sizes:?}) of a {LEN}-byte object must fail"
            ),
        }
    }
    let missing = format!("{root}missing");
    expect_not_found(
        &missing,
        store.read_into(&missing, 0, &mut [&mut [0; 4][..]]),
    );
    expect_not_found(&missing, store.read_into(&missing, 0, &mut []));
    clear(store, &root);
}

/// Buffer sizes from 0 to 600 bytes that add up to `total` (pseudo-random
/// from `seed`), a quarter of them empty.
fn scattered_sizes(total: usize, seed: u64) -> Vec<usize> {
    let mut sizes = Vec::new();
    let mut left = total;
    for draw in noise(total, seed).chunks(2) {
        if left == 0 {
            break;
        }
        let [a, b] = [draw.first(), draw.get(1)].map(|x| usize::from(x.copied().unwrap_or(0)));
        let size = if a % 4 == 0 { 0 } else { (a * 256 + b) % 601 };
        let size = size.min(left);
        sizes.push(size);
        left -= size;
    }
    sizes.push(left);
    sizes
}

/// A 32 MiB object round-trips intact, whole and by range, and reads back
/// through `read_into` into 512 buffers (restore's shape of call).
pub fn large_object(store: &dyn Storage) {
    const SIZE: usize = 32 << 20;
    let root = fresh(store, "suite/large/");
    let key = format!("{root}object");
    let data = noise(SIZE, 0x5eed);
    ok("put of 32 MiB", store.put(&key, &data));
    assert_bytes(&key, &ok("get of 32 MiB", store.get(&key)), &data);
    let tail = (SIZE - (1 << 20)) as u64..SIZE as u64;
    let got = ok("get_range of the last MiB", store.get_range(&key, tail));
    assert_bytes(&key, &got, data.get(SIZE - (1 << 20)..).unwrap_or_default());
    drop(got);
    let mut whole = vec![0; SIZE];
    let mut slices: Vec<&mut [u8]> = whole.chunks_mut(SIZE / 512).collect();
    ok("read_into of 32 MiB", store.read_into(&key, 0, &mut slices));
    assert_bytes(&key, &whole, &data);
    clear(store, &root);
}

/// Keys with spaces, unicode, `%`, leading dots, punctuation, long and
/// deeply nested components round-trip, list and delete like any other.
pub fn awkward_keys(store: &dyn Storage) {
    let root = fresh(store, "suite/awkward/");
    let deep: Vec<String> = (0..32).map(|i| format!("d{i}")).collect();
    let deep = format!("{}/leaf", deep.join("/"));
    let long = "x".repeat(100);
    let names = [
        "with space",
        "  padded  ",
        "ünïcödé",
        "ключ/鍵/🔑",
        "100%",
        "%41",
        "a%2Fb",
        "%",
        "%%",
        ".hidden",
        ".hidden-dir/.x",
        "..double-dot-prefix",
        "trailing.dot.",
        ".lock",
        ".tmp-0000000000000000",
        "quote'\"",
        "#?&=+;,@!$()[]{}~`^|<>*:\\",
        "-",
        "_",
        "~",
        deep.as_str(),
        long.as_str(),
    ];
    let keys: BTreeSet<String> = names.iter().map(|n| format!("{root}{n}")).collect();
    for key in &keys {
        ok(&format!("put {key:?}"), store.put(key, key.as_bytes()));
    }
    for key in &keys {
        assert_bytes(
            key,
            &ok(&format!("get {key:?}"), store.get(key)),
            key.as_bytes(),
        );
    }
    let listed = ok("list", store.list(&root));
    let wanted: Vec<String> = keys.iter().cloned().collect();
    assert_eq!(
        listed, wanted,
        "storage suite: awkward keys must list exactly as written, in byte order"
    );
    let pct = format!("{root}%41");
    assert_bytes(
        &pct,
        &ok("get_range", store.get_range(&pct, 1..3)),
        pct.as_bytes().get(1..3).unwrap_or_default(),
    );
    for key in &keys {
        ok(&format!("delete {key:?}"), store.delete(key));
    }
    assert_eq!(
        ok("list after deleting", store.list(&root)),
        Vec::<String>::new(),
        "storage suite: every awkward key must delete"
    );
}

/// Malformed keys are [`Error::InvalidKey`] for every operation, and never
/// reach the backend.
pub fn invalid_keys(store: &dyn Storage) {
    let invalid = [
        "", "/", "/a", "a/", "a//b", ".", "..", "a/./b", "a/../b", "../a", "a\0b",
    ];
    for key in invalid {
        expect_invalid(key, "put", store.put(key, b"x"));
        expect_invalid(key, "get", store.get(key));
        expect_invalid(key, "get_range", store.get_range(key, 0..1));
        expect_invalid(key, "delete", store.delete(key));
    }
}

/// Eight threads put concurrently: every object lands intact, and racing
/// overwrites of one key leave one writer's value whole (put is atomic),
/// as a concurrent reader sees throughout.
pub fn concurrent_puts(store: &dyn Storage) {
    const THREADS: u8 = 8;
    const PER_THREAD: usize = 24;
    const LEN: usize = 16 << 10;
    let root = fresh(store, "suite/concurrent/");
    let shared = format!("{root}shared");
    let value = |thread: u8, i: usize| vec![thread.wrapping_mul(31).wrapping_add(i as u8); LEN];
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                match store.get(&shared) {
                    Ok(bytes) => assert_whole(&shared, &bytes, LEN),
                    Err(Error::NotFound { .. }) => {}
                    Err(e) => panic!("storage suite: concurrent get of {shared:?} failed: {e}"),
                }
            }
        });
        let writers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (root, shared) = (&root, &shared);
                scope.spawn(move || {
                    for i in 0..PER_THREAD {
                        let key = format!("{root}t{t}/{i}");
                        ok("concurrent put", store.put(&key, &value(t, i)));
                        ok("concurrent overwrite", store.put(shared, &value(t, i)));
                    }
                })
            })
            .collect();
        for writer in writers {
            writer
                .join()
                .unwrap_or_else(|_| panic!("storage suite: a writer thread panicked"));
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        reader
            .join()
            .unwrap_or_else(|_| panic!("storage suite: the reader thread panicked"));
    });
    for t in 0..THREADS {
        for i in 0..PER_THREAD {
            let key = format!("{root}t{t}/{i}");
            assert_bytes(&key, &ok("get", store.get(&key)), &value(t, i));
        }
    }
    assert_whole(&shared, &ok("get", store.get(&shared)), LEN);
    let listed = ok("list", store.list(&root));
    assert_eq!(
        listed.len(),
        usize::from(THREADS) * PER_THREAD + 1,
        "storage suite: concurrent puts must all be listed"
    );
    clear(store, &root);
}

/// Unwraps `result`, or panics naming the step and the error.
fn ok<T>(what: &str, result: Result<T>) -> T {
    result.unwrap_or_else(|e| panic!("storage suite: {what} failed: {e}"))
}

/// Removes whatever a previous, interrupted run left under `root`.
fn fresh(store: &dyn Storage, root: &str) -> String {
    clear(store, root);
    root.to_owned()
}

fn clear(store: &dyn Storage, root: &str) {
    for key in ok("list", store.list(root)) {
        ok("delete", store.delete(&key));
    }
}

fn assert_bytes(key: &str, got: &[u8], wanted: &[u8]) {
    if got != wanted {
        let first_difference = got.iter().zip(wanted).position(|(a, b)| a != b);
        panic!(
            "storage suite: {key:?} read back {} bytes, {} were written (first difference at {:?})",
            got.len(),
            wanted.len(),
            first_difference
        );
    }
}

/// A value written by one writer of [`concurrent_puts`]: `len` equal bytes.
fn assert_whole(key: &str, bytes: &[u8], len: usize) {
    let whole = bytes.len() == len && bytes.windows(2).all(|w| w.first() == w.get(1));
    assert!(
        whole,
        "storage suite: {key:?} holds a torn or mixed value ({} bytes); put must be atomic",
        bytes.len()
    );
}

fn expect_not_found<T: Debug>(key: &str, result: Result<T>) {
    match result {
        Err(Error::NotFound { .. }) => {}
        Err(e) => panic!("storage suite: reading missing {key:?} must be NotFound, got: {e}"),
        Ok(v) => panic!("storage suite: reading missing {key:?} must be NotFound, got Ok({v:?})"),
    }
}

fn expect_invalid<T: Debug>(key: &str, op: &str, result: Result<T>) {
    match result {
        Err(Error::InvalidKey { .. }) => {}
        Err(e) => panic!("storage suite: {op} of invalid key {key:?} must be InvalidKey, got: {e}"),
        Ok(v) => {
            panic!("storage suite: {op} of invalid key {key:?} must be InvalidKey, got Ok({v:?})")
        }
    }
}

/// `len` bytes that do not compress (xorshift64), so a backend that
/// compresses or deduplicates cannot hide a short write.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}
