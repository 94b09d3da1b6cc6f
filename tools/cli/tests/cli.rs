//! The `ckpt` binary run against real stores written by a real
//! `Checkpointer`: full, incremental and copy-on-write checkpoints in a
//! directory; a damaged pack; a writer holding the store; a copy restored
//! byte for byte; and, with the S3 test server's environment
//! (`scripts/s3-server`), a copy to S3 listed back.

use ckpt::{Checkpointer, FsStorage, PagedVec, Reader, Scheme};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

const ELEMENTS: usize = 20_000;
const PAGE_LEN: usize = 1024;

/// Runs `ckpt args...`.
fn ckpt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ckpt"))
        .args(args)
        .output()
        .expect("the ckpt binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs `ckpt args... --json`, expecting success, and parses its output.
fn json(args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let output = ckpt(&args);
    assert!(
        output.status.success(),
        "ckpt {args:?}: {}",
        stderr(&output)
    );
    serde_json::from_slice(&output.stdout).expect("--json prints JSON")
}

/// The state at `step`: every element depends on the step, and only a few
/// pages change from one step to the next.
fn state_at(step: u64) -> PagedVec<u64> {
    let mut values: Vec<u64> = (0..ELEMENTS as u64).collect();
    for s in 0..=step {
        let page = (s as usize * 3) % (ELEMENTS / PAGE_LEN);
        values[page * PAGE_LEN] = 1000 + s;
    }
    PagedVec::from_slice_with_page_len(&values, PAGE_LEN)
}

/// Opens `dir` for writing once the previous writer of this process let
/// go of it. Other tests of this process spawn `ckpt` meanwhile: a child
/// forked before it execs briefly holds every open descriptor, the lock
/// file's too, so a lock released by a dropped checkpointer can linger for
/// a moment.
fn open_when_free(dir: &Path) -> FsStorage {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match FsStorage::open(dir) {
            Err(ckpt::Error::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            opened => return opened.expect("opens"),
        }
    }
}

/// A store holding steps 0..=1 (full), 2..=4 (incremental) and 5..=6
/// (copy-on-write), each written by its own checkpointer.
fn store(dir: &Path) {
    let runs = [
        (Scheme::Full, 0..2u64),
        (Scheme::Incremental, 2..5),
        (Scheme::CopyOnWrite, 5..7),
    ];
    for (scheme, steps) in runs {
        let mut ck = Checkpointer::builder()
            .storage(open_when_free(dir))
            .scheme(scheme)
            .keep_last(100)
            .build()
            .expect("builds");
        for step in steps {
            ck.checkpoint(step, &mut state_at(step))
                .expect("checkpoints");
        }
        ck.finish().expect("finishes");
    }
}

fn restored(dir: &Path) -> (u64, Vec<u64>) {
    let restored = Reader::open_dir(dir)
        .expect("opens")
        .restore_latest::<PagedVec<u64>>()
        .expect("restores")
        .expect("a checkpoint");
    (restored.step, restored.state.iter().copied().collect())
}

#[test]
fn ls_lists_every_checkpoint_with_its_scheme_and_sizes() {
    let dir = tempfile::tempdir().unwrap();
    store(dir.path());
    let path = dir.path().to_str().unwrap();
    let listing = json(&["ls", path]);
    let rows = listing["checkpoints"].as_array().unwrap();
    let steps: Vec<u64> = rows.iter().map(|r| r["step"].as_u64().unwrap()).collect();
    assert_eq!(steps, (0..7).collect::<Vec<_>>());
    let schemes: Vec<&str> = rows.iter().map(|r| r["scheme"].as_str().unwrap()).collect();
    assert_eq!(&schemes[..2], ["full", "full"]);
    assert!(
        schemes[2..5].iter().all(|s| *s == "incremental"),
        "{schemes:?}"
    );
    assert!(
        schemes[5..].iter().all(|s| *s == "copy-on-write"),
        "{schemes:?}"
    );
    let chain = |i: usize| rows[i]["chain_len"].as_u64().unwrap();
    assert!(
        chain(4) > 1,
        "an incremental checkpoint builds on earlier ones"
    );
    let logical = (ELEMENTS * 8) as u64;
    assert!(
        rows.iter()
            .all(|r| r["logical_bytes"].as_u64() == Some(logical))
    );
    // An increment stores a few pages, far less than a full checkpoint.
    let stored = |i: usize| rows[i]["stored_bytes"].as_u64().unwrap();
    assert!(stored(4) * 4 < stored(0), "{} vs {}", stored(4), stored(0));
    assert!(rows[4]["compression_ratio"].as_f64().unwrap() > 4.0);

    let text = stdout(&ckpt(&["ls", path]));
    assert!(text.starts_with("seq"), "{text}");
    assert!(
        text.contains(&format!("incremental (chain {})", chain(4))),
        "{text}"
    );
    assert_eq!(
        text.lines().count(),
        8,
        "a header and one line per checkpoint:\n{text}"
    );
}

#[test]
fn show_lists_segments_pages_and_packs() {
    let dir = tempfile::tempdir().unwrap();
    store(dir.path());
    let path = dir.path().to_str().unwrap();
    let shown = json(&["show", path, "4"]);
    assert_eq!(shown["step"], 4);
    let segments = shown["segments"].as_array().unwrap();
    assert_eq!(segments.len(), 1);
    let segment = &segments[0];
    assert_eq!(segment["kind"], "paged");
    assert_eq!(
        segment["pages"].as_u64(),
        Some(ELEMENTS.div_ceil(PAGE_LEN) as u64)
    );
    assert_eq!(segment["elements"].as_u64(), Some(ELEMENTS as u64));
    let packs = shown["packs"].as_array().unwrap();
    assert!(packs.len() > 1, "an increment needs its base's packs too");
    let chunks: u64 = packs.iter().map(|p| p["chunks"].as_u64().unwrap()).sum();
    assert_eq!(Some(chunks), segment["chunks"].as_u64());
    let text = stdout(&ckpt(&["show", path, "4"]));
    assert!(text.contains("paged") && text.contains("packs/"), "{text}");
    let missing = ckpt(&["show", path, "99"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("no checkpoint of step 99"));
}

#[test]
fn verify_passes_on_an_intact_store_and_fails_on_a_damaged_pack() {
    let dir = tempfile::tempdir().unwrap();
    store(dir.path());
    let path = dir.path().to_str().unwrap();
    let ok = ckpt(&["verify", path]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    assert!(stdout(&ok).contains("step 6"));
    assert_eq!(json(&["verify", path, "--step", "3"])["verified"], true);

    // Damage a pack only the newest checkpoint wrote.
    let newest: Vec<String> = packs(path, "6");
    let older: Vec<String> = packs(path, "5");
    let own = newest
        .iter()
        .find(|p| !older.contains(p))
        .expect("step 6 wrote a pack");
    let file = dir.path().join(own);
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();

    let bad = ckpt(&["verify", path]);
    assert_eq!(bad.status.code(), Some(1), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("does not verify"), "{}", stderr(&bad));
    let older_ok = ckpt(&["verify", path, "--step", "1"]);
    assert_eq!(older_ok.status.code(), Some(0), "{}", stderr(&older_ok));
}

fn packs(path: &str, step: &str) -> Vec<String> {
    json(&["show", path, step])["packs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["key"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn model_shows_what_the_checkpointer_learnt() {
    let dir = tempfile::tempdir().unwrap();
    store(dir.path());
    let path = dir.path().to_str().unwrap();
    let model = json(&["model", path]);
    assert!(model["checkpoints"].as_u64().unwrap() >= 1, "{model}");
    let rates = model["failure_rates"].as_array().unwrap();
    assert_eq!(rates.len(), 3);
    for rate in rates {
        assert!(rate["lower"].as_f64() <= rate["upper"].as_f64(), "{rate}");
    }
    for priced in model["priced"].as_array().unwrap() {
        let (low, mid, high) = (
            priced["overhead_low"].as_f64().unwrap(),
            priced["overhead"].as_f64().unwrap(),
            priced["overhead_high"].as_f64().unwrap(),
        );
        assert!(low <= mid && mid <= high, "{priced}");
    }
    let text = stdout(&ckpt(&["model", path]));
    assert!(
        text.contains("learnt from") && text.contains("failures:"),
        "{text}"
    );
    let empty = tempfile::tempdir().unwrap();
    let none = ckpt(&["model", empty.path().to_str().unwrap()]);
    assert_eq!(none.status.code(), Some(1));
    assert!(stderr(&none).contains("no cost model state"));
}

#[test]
fn gc_refuses_while_a_writer_holds_the_store_and_collects_after() {
    let dir = tempfile::tempdir().unwrap();
    store(dir.path());
    let path = dir.path().to_str().unwrap();
    let before = restored(dir.path());
    let writer = Checkpointer::builder()
        .storage(open_when_free(dir.path()))
        .keep_last(100)
        .build()
        .unwrap();
    let refused = ckpt(&["gc", path, "--keep", "2"]);
    assert_eq!(refused.status.code(), Some(3), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("run this again once it has finished"));
    // A dry run takes no lock.
    let preview = json(&["gc", path, "--keep", "2", "--dry-run"]);
    assert_eq!(preview["manifests_deleted"], 5);
    assert_eq!(
        json(&["ls", path])["checkpoints"].as_array().unwrap().len(),
        7
    );
    writer.finish().unwrap();

    // The lock may linger a moment in a child another test is spawning
    // (see `open_when_free`): wait until this process could take it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while FsStorage::open(dir.path()).is_err() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let done = json(&["gc", path, "--keep", "2"]);
    assert_eq!(done["deleted"], preview["deleted"]);
    assert!(done["packs_deleted"].as_u64().unwrap() > 0);
    let steps: Vec<u64> = json(&["ls", path])["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, [5, 6]);
    assert_eq!(restored(dir.path()), before);
    assert_eq!(ckpt(&["verify", path]).status.code(), Some(0));
    assert_eq!(ckpt(&["gc", path, "--keep", "0"]).status.code(), Some(2));
}

#[test]
fn cp_copies_a_checkpoint_that_restores_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    store(dir.path());
    let path = dir.path().to_str().unwrap();
    let target = tempfile::tempdir().unwrap();
    let copy = target.path().join("copy");
    let copy_path = copy.to_str().unwrap();

    let copied = json(&["cp", path, copy_path, "--step", "3"]);
    assert_eq!(
        (copied["step"].as_u64(), copied["verified"].as_bool()),
        (Some(3), Some(true))
    );
    let expected: Vec<u64> = state_at(3).iter().copied().collect();
    assert_eq!(restored(&copy), (3, expected));
    // The newest goes on top, even though its own sequence number is not
    // the highest there.
    let output = ckpt(&["cp", path, copy_path]);
    assert!(output.status.success(), "{}", stderr(&output));
    let expected: Vec<u64> = state_at(6).iter().copied().collect();
    assert_eq!(restored(&copy), (6, expected));
    let listing = json(&["ls", copy_path]);
    assert_eq!(listing["checkpoints"].as_array().unwrap().len(), 2);
    assert_eq!(ckpt(&["verify", copy_path]).status.code(), Some(0));
}

#[test]
fn bad_store_names_are_usage_errors() {
    let output = ckpt(&["ls", "s3:///nobucket"]);
    assert_eq!(output.status.code(), Some(2));
    let help = stdout(&ckpt(&["--help"]));
    assert!(help.contains("Exit status:") && help.contains("ckpt cp ./ckpts s3://"));
}

/// Whether the S3 test server's environment is set; with `CKPT_S3_REQUIRED`
/// (CI) a missing one fails instead of skipping.
fn s3_unavailable() -> bool {
    let missing = ["CKPT_S3_ENDPOINT", "CKPT_S3_BUCKET"]
        .iter()
        .any(|v| std::env::var_os(v).is_none());
    if missing || !cfg!(feature = "s3") {
        assert!(
            std::env::var_os("CKPT_S3_REQUIRED").is_none(),
            "CKPT_S3_REQUIRED is set but the S3 environment or the s3 feature is missing"
        );
        eprintln!("skipped: no S3 test server (scripts/s3-server) or no s3 feature");
        return true;
    }
    false
}

#[test]
fn cp_to_s3_then_ls_and_verify_there() {
    if s3_unavailable() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    store(dir.path());
    let path = dir.path().to_str().unwrap();
    let bucket = std::env::var("CKPT_S3_BUCKET").unwrap();
    let nonce: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let remote = format!("s3://{bucket}/ckpt-cli-test-{nonce}");
    let copied = json(&["cp", path, &remote]);
    assert_eq!(copied["step"], 6);
    let listing = json(&["ls", &remote]);
    let rows = listing["checkpoints"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["scheme"], "copy-on-write");
    assert_eq!(ckpt(&["verify", &remote]).status.code(), Some(0));
    // And back to a directory, restored byte for byte.
    let back = tempfile::tempdir().unwrap();
    let back_path = back.path().join("back");
    json(&["cp", &remote, back_path.to_str().unwrap()]);
    let expected: Vec<u64> = state_at(6).iter().copied().collect();
    assert_eq!(restored(&back_path), (6, expected));
    let gc = json(&["gc", &remote, "--keep", "1"]);
    assert_eq!(gc["manifests_deleted"], 0);
}
