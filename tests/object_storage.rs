//! `ObjectStorage` against a real S3 server: the storage suite, error
//! mapping, large objects and checkpoint round trips.
//!
//! Tests that need the server read `CKPT_S3_ENDPOINT` (and the other
//! variables `scripts/s3-server start` prints); when it is unset they print
//! why and return, so `cargo test` passes on a machine without the server.
//! Each test works under its own fresh prefix of the bucket.

mod common;

use ckpt::storage::{ObjectStorageBuilder, is_unavailable, suite};
use ckpt::{Checkpointer, Error, ObjectStorage, Scheme, Storage};
use common::gateway::Gateway;
use common::paged_sim::Sim;
use common::{s3, say};
use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// A builder for the test server with a prefix no other test or run uses,
/// or `None` (after saying why) when no server is configured.
fn server(test: &str) -> Option<(ObjectStorageBuilder, String)> {
    if s3::unavailable(test, &["CKPT_S3_ENDPOINT"]) {
        return None;
    }
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let prefix = format!(
        "{}-{}",
        s3::fresh_prefix(test),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    Some((s3::builder(&prefix), prefix))
}

fn store(test: &str) -> Option<ObjectStorage> {
    server(test).map(|(builder, _)| builder.build().unwrap())
}

/// Removes everything a test left under its prefix.
fn clear(store: &ObjectStorage) {
    for key in store.list("").unwrap() {
        store.delete(&key).unwrap();
    }
}

#[test]
fn passes_the_storage_suite() {
    let Some(store) = store("suite") else { return };
    assert!(
        suite::supports_conditional_put(&store),
        "put_if_absent must be supported on S3"
    );
    suite::run_all(&store);
    // run_all ran it already; a second run checks it leaves a clean slate.
    suite::conditional_put(&store);
    assert_eq!(store.list("").unwrap(), Vec::<String>::new());
}

#[test]
fn lists_from_the_top_of_the_bucket() {
    // No prefix: the suite's keys (`suite/...`) sit at the top of the shared
    // test bucket, beside the other tests' `ckpt-tests/...`, and listing
    // the empty prefix walks the whole bucket.
    let Some((builder, _)) = server("top") else {
        return;
    };
    let store = builder.prefix("").build().unwrap();
    assert_eq!(store.prefix(), "");
    suite::list_prefixes_and_order(&store);
    suite::get_range(&store);
}

#[test]
fn a_missing_object_is_not_found_under_the_callers_key() {
    let Some(store) = store("not-found") else {
        return;
    };
    match store.get("manifests/missing") {
        Err(Error::NotFound { key }) => assert_eq!(key, "manifests/missing"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(matches!(
        store.get_range("packs/missing", 0..10),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        store.get_range("packs/missing", 3..3),
        Err(Error::NotFound { .. })
    ));
    store.delete("never/written").unwrap();
}

#[test]
fn list_follows_every_page() {
    let Some((builder, _)) = server("pages") else {
        return;
    };
    let store = builder.list_page_size(7).build().unwrap();
    // Written out of order; 40 objects make 6 pages of 7.
    let mut keys: Vec<String> = (0..40).map(|i| format!("k/{:02}", (i * 17) % 40)).collect();
    for key in &keys {
        store.put(key, key.as_bytes()).unwrap();
    }
    keys.sort();
    assert_eq!(store.list("").unwrap(), keys);
    assert_eq!(store.list("k/1").unwrap(), keys[10..20].to_vec());
    clear(&store);
    assert_eq!(store.list("").unwrap(), Vec::<String>::new());
}

#[test]
fn ranges_outside_an_object_are_corrupt() {
    let Some(store) = store("ranges") else { return };
    store.put("object", &[7u8; 100]).unwrap();
    let backwards = std::ops::Range { start: 50, end: 40 };
    for range in [90..101, 100..101, 200..300, backwards] {
        match store.get_range("object", range.clone()) {
            Err(Error::Corrupt { key, reason }) => {
                assert_eq!(key, "object");
                assert!(reason.contains("100 bytes"), "{reason}");
            }
            other => panic!("get_range {range:?}: expected Corrupt, got {other:?}"),
        }
    }
    assert_eq!(
        store.get_range("object", 100..100).unwrap(),
        Vec::<u8>::new()
    );
    assert_eq!(store.get_range("object", 99..100).unwrap(), vec![7]);
    clear(&store);
}

/// xorshift noise, so no layer can compress or deduplicate a short write.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn large_objects_go_up_in_parts_and_come_back_whole() {
    let Some((builder, _)) = server("multipart") else {
        return;
    };
    // Small parts so a 23 MiB object takes 5 parts, 2 at a time.
    let store = builder
        .multipart_threshold(5 << 20)
        .part_size(5 << 20)
        .max_concurrency(2)
        .build()
        .unwrap();
    let data = noise((23 << 20) + 12_345, 42);
    store.put("big", &data).unwrap();
    assert!(
        store.get("big").unwrap() == data,
        "multipart object read back differs"
    );
    // A range across the boundary of parts 2 and 3.
    let across = (10 << 20) - 100..(10 << 20) + 100;
    assert_eq!(
        store
            .get_range("big", across.start as u64..across.end as u64)
            .unwrap(),
        data[across]
    );
    // Overwriting with a small object replaces the whole multipart one.
    store.put("big", b"small now").unwrap();
    assert_eq!(store.get("big").unwrap(), b"small now");
    assert_eq!(store.list("").unwrap(), vec!["big".to_owned()]);
    clear(&store);
}

#[test]
fn prefixes_keep_stores_apart() {
    let (Some(a), Some(b)) = (store("apart-a"), store("apart-b")) else {
        return;
    };
    a.put("manifests/1", b"a").unwrap();
    b.put("manifests/1", b"b").unwrap();
    assert_eq!(a.get("manifests/1").unwrap(), b"a");
    assert_eq!(b.get("manifests/1").unwrap(), b"b");
    assert_eq!(a.list("").unwrap(), vec!["manifests/1".to_owned()]);
    assert!(a.put_if_absent("manifests/2", b"a").unwrap());
    assert!(
        b.put_if_absent("manifests/2", b"b").unwrap(),
        "b's key is its own"
    );
    assert!(!a.put_if_absent("manifests/2", b"again").unwrap());
    assert_eq!(a.get("manifests/2").unwrap(), b"a");
    clear(&a);
    clear(&b);
    assert_eq!(b.list("").unwrap(), Vec::<String>::new());
}

fn checkpoint_and_restore(test: &str, scheme: Scheme) {
    let Some((builder, prefix)) = server(test) else {
        return;
    };
    let mut ck = Checkpointer::builder()
        .storage(builder.build().unwrap())
        .scheme(scheme)
        .every_steps(1)
        .keep_last(3)
        .chunk_size(4096)
        .build()
        .unwrap();
    assert!(
        ck.restore_latest::<Sim>().unwrap().is_none(),
        "a fresh prefix holds nothing"
    );
    let mut sim = Sim::new();
    let mut written = Vec::new();
    while sim.step < 6 {
        ck.scope(sim.step, &mut sim, Sim::advance).unwrap();
        written.push(ck.last_committed().map(|c| (c.full, c.bytes_written)));
    }
    ck.finish().unwrap();
    let fulls = written.iter().flatten().filter(|(full, _)| *full).count();
    let increments: Vec<u64> = written
        .iter()
        .flatten()
        .filter(|(f, _)| !f)
        .map(|c| c.1)
        .collect();
    match scheme {
        Scheme::Full => assert_eq!(fulls, written.len(), "every checkpoint is full"),
        _ => {
            assert!(
                !increments.is_empty(),
                "incremental wrote no increment: {written:?}"
            );
            let first_full = written.iter().flatten().find(|c| c.0).map_or(0, |c| c.1);
            assert!(
                increments.iter().all(|b| *b * 4 < first_full),
                "increments must be much smaller than the full base: {written:?}"
            );
        }
    }

    // A new process: a new store object and checkpointer on the same prefix.
    let reopened = server(test)
        .map(|(b, _)| b.prefix(prefix.clone()).build().unwrap())
        .unwrap();
    let mut ck = Checkpointer::builder().storage(reopened).build().unwrap();
    let restored = ck
        .restore_latest::<Sim>()
        .unwrap()
        .expect("a checkpoint to restore");
    assert!(restored.skipped.is_empty(), "{:?}", restored.skipped);
    // Debug output of a Sim is megabytes: compare without printing it.
    assert_eq!(
        restored.state.step, 6,
        "the newest checkpoint holds the last state"
    );
    assert!(
        restored.state == Sim::at(6),
        "restored state differs from the state checkpointed"
    );
    assert_eq!(
        ck.list().unwrap().checkpoints.len(),
        3,
        "keep_last(3) is honoured on S3"
    );
    ck.finish().unwrap();

    let leftovers = server(test)
        .map(|(b, _)| b.prefix(prefix).build().unwrap())
        .unwrap();
    clear(&leftovers);
}

#[test]
fn full_checkpoints_round_trip_through_s3() {
    checkpoint_and_restore("full", Scheme::Full);
}

#[test]
fn incremental_checkpoints_round_trip_through_s3() {
    checkpoint_and_restore("incremental", Scheme::Incremental);
}

#[test]
fn works_when_called_from_inside_a_tokio_runtime() {
    let Some(store) = store("in-tokio") else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let got = runtime.block_on(async move {
        store.put("k", b"from async").unwrap();
        let got = store.get("k").unwrap();
        clear(&store);
        // Dropped here, inside the runtime: must not panic either.
        drop(store);
        got
    });
    assert_eq!(got, b"from async");
}

#[test]
fn an_unreachable_endpoint_is_a_transient_storage_error() {
    // No server needed: nothing listens on port 1.
    let store = ObjectStorage::builder()
        .endpoint("http://127.0.0.1:1")
        .bucket("nowhere")
        .credentials("k", "s")
        .allow_http(true)
        .retries(1, Duration::from_secs(2))
        .build()
        .unwrap();
    let error = store.put("k", b"x").unwrap_err();
    match &error {
        Error::Storage { op, key, source } => {
            assert_eq!((*op, key.as_str()), ("put", "k"));
            assert_eq!(source.kind(), io::ErrorKind::ConnectionRefused, "{source}");
        }
        other => panic!("expected a storage error, got {other}"),
    }
    assert!(
        is_unavailable(&error),
        "a dead store must count as unavailable"
    );
    assert!(matches!(
        store.list(""),
        Err(Error::Storage { op: "list", .. })
    ));
}

#[test]
fn the_builder_names_the_option_it_rejects() {
    let rejected = |builder: ObjectStorageBuilder| match builder.build() {
        Err(Error::InvalidConfig { option, .. }) => option,
        other => panic!("expected InvalidConfig, got {other:?}"),
    };
    let base = || ObjectStorage::builder().credentials("k", "s");
    assert_eq!(rejected(base()), "bucket");
    assert_eq!(rejected(base().bucket("b").prefix("a//b")), "prefix");
    assert_eq!(rejected(base().bucket("b").part_size(1 << 20)), "part_size");
    assert_eq!(
        rejected(base().bucket("b").max_concurrency(0)),
        "max_concurrency"
    );
    assert_eq!(
        rejected(base().bucket("b").list_page_size(0)),
        "list_page_size"
    );
    assert_eq!(
        rejected(base().bucket("b").option("aws_no_such_thing", "1")),
        "option"
    );
    let store = base().bucket("b").prefix("jobs/7").build().unwrap();
    assert_eq!(store.prefix(), "jobs/7");
}

#[test]
fn keys_are_validated_before_any_request() {
    // The endpoint does not exist: an invalid key must be refused first.
    let store = ObjectStorage::builder()
        .endpoint("http://127.0.0.1:1")
        .bucket("nowhere")
        .credentials("k", "s")
        .allow_http(true)
        .build()
        .unwrap();
    for key in ["", "a//b", "../x", "tab\there", "new\nline"] {
        assert!(
            matches!(store.put(key, b"x"), Err(Error::InvalidKey { .. })),
            "{key:?}"
        );
        assert!(matches!(
            store.put_if_absent(key, b"x"),
            Err(Error::InvalidKey { .. })
        ));
    }
}

#[test]
fn fails_over_when_the_active_s3_gateway_dies() {
    let Some((builder, prefix)) = server("failover") else {
        return;
    };
    let Some(mut gateway) = Gateway::start() else {
        return;
    };
    // The gateway's own path: few retries, so its death shows quickly.
    let via_gateway = server("failover")
        .unwrap()
        .0
        .endpoint(&gateway.endpoint)
        .prefix(prefix.clone())
        .retries(1, Duration::from_millis(500))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    while via_gateway.put("probe", b"up").is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the gateway did not start"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    via_gateway.delete("probe").unwrap();
    let pair = std::sync::Arc::new(
        ckpt::FailoverStorage::builder(ckpt::storage::FailoverMode::Shared)
            .active("gateway", std::sync::Arc::new(via_gateway))
            .standby("server", std::sync::Arc::new(builder.build().unwrap()))
            .deadline(Some(Duration::from_secs(20)))
            .build()
            .unwrap(),
    );
    let mut ck = Checkpointer::builder()
        .storage(pair.clone())
        .scheme(Scheme::Incremental)
        .every_steps(1)
        .keep_last(2)
        .build()
        .unwrap();
    let mut sim = Sim::new();
    while sim.step < 8 {
        if sim.step == 4 {
            gateway.kill(); // a real server process dies under the checkpointer
        }
        ck.scope(sim.step, &mut sim, Sim::advance).unwrap();
    }
    ck.finish().unwrap();
    let stats = pair.stats();
    assert_eq!(stats.failovers, 1, "{stats:?}");
    assert_eq!(stats.active.as_deref(), Some("server"));

    let direct = server("failover")
        .unwrap()
        .0
        .prefix(prefix.clone())
        .build()
        .unwrap();
    let mut ck = Checkpointer::builder().storage(direct).build().unwrap();
    let restored = ck.restore_latest::<Sim>().unwrap().expect("a checkpoint");
    assert_eq!(restored.state.step, 8);
    assert!(restored.state == Sim::at(8), "restored state differs");
    ck.finish().unwrap();
    clear(
        &server("failover")
            .unwrap()
            .0
            .prefix(prefix)
            .build()
            .unwrap(),
    );
}

/// No credential leaves the process: neither the builder, the store, nor
/// a failed request's error (and its whole source chain) prints the secret
/// key or the session token, in `Debug` or `Display`. Needs no server.
#[test]
fn no_secret_in_debug_display_or_errors() {
    const SECRET: &str = "SECRETSECRETSECRET123";
    const TOKEN: &str = "TOKENTOKENTOKEN456";
    const KEY_ID: &str = "AKIDKEYIDKEYID789";
    // A closed port: bind one, note it, let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let builder = ObjectStorage::builder()
        .endpoint(format!("http://127.0.0.1:{port}"))
        .bucket("secret-test")
        .prefix("p")
        .credentials(KEY_ID, SECRET)
        .session_token(TOKEN)
        .option("aws_secret_access_key", SECRET)
        .allow_http(true)
        .retries(0, Duration::from_millis(100));
    let mut printed = vec![format!("{builder:?}"), format!("{builder:#?}")];
    let store = builder.build().unwrap();
    printed.push(format!("{store:?}"));
    let error = store.put("k", b"v").unwrap_err();
    let mut source: Option<&dyn std::error::Error> = Some(&error);
    while let Some(e) = source {
        printed.push(format!("{e}"));
        printed.push(format!("{e:?}"));
        source = e.source();
    }
    for text in &printed {
        assert!(!text.contains(SECRET), "the secret key leaked: {text}");
        assert!(!text.contains(TOKEN), "the session token leaked: {text}");
        assert!(
            !text.contains(KEY_ID),
            "the whole access key id shows: {text}"
        );
    }
    assert!(printed[0].contains("secret-test"), "{}", printed[0]);
    assert!(printed[0].contains("AKID"), "{}", printed[0]);
}

/// Wrong credentials against a gateway that checks them (an identity
/// config) fail at once, are not retried, and say which bucket refused
/// them and what to check — without printing the secret that was wrong.
#[test]
fn wrong_credentials_fail_at_once_naming_the_bucket() {
    let Some((_, prefix)) = server("credentials") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("s3.json");
    std::fs::write(
        &config,
        r#"{"identities":[{"name":"ckpt","credentials":[{"accessKey":"ckpt-auth","secretKey":"ckpt-auth-secret"}],"actions":["Admin","Read","Write","List","Tagging"]}]}"#,
    )
    .unwrap();
    let Some(gateway) = Gateway::start_with(&[format!("-config={}", config.display())]) else {
        return;
    };
    let bucket = std::env::var("CKPT_S3_BUCKET").unwrap_or_else(|_| "ckpt-test".to_owned());
    let as_user = |key_id: &str, secret: &str| {
        ObjectStorage::builder()
            .endpoint(&gateway.endpoint)
            .bucket(&bucket)
            .prefix(prefix.clone())
            .region("us-east-1")
            .credentials(key_id, secret)
            .allow_http(true)
            .build()
            .unwrap()
    };
    let good = as_user("ckpt-auth", "ckpt-auth-secret");
    let started = std::time::Instant::now();
    while good.put("probe", b"up").is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the authenticating gateway did not start"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for (key_id, secret) in [
        ("ckpt-auth", "WRONGSECRETWRONG"),
        ("ckpt-nobody", "WRONGSECRETWRONG"),
    ] {
        // Default retries (10 within 3 minutes): a retried error would take seconds.
        let bad = as_user(key_id, secret);
        let started = std::time::Instant::now();
        let error = bad.put("k", b"v").unwrap_err();
        let elapsed = started.elapsed();
        let text = format!("{error} {error:?}");
        assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}: {text}");
        assert!(
            matches!(&error, Error::Storage { source, .. } if source.kind() == io::ErrorKind::PermissionDenied),
            "{text}"
        );
        assert!(text.contains(&format!("s3://{bucket}/")), "{text}");
        assert!(text.contains("refused the credentials"), "{text}");
        assert!(text.contains("check the access key id"), "{text}");
        assert!(!text.contains("WRONGSECRETWRONG"), "{text}");
        say(&format!("wrong credentials ({key_id}): {error}"));
    }
    good.delete("probe").unwrap();
}
