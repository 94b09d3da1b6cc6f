//! `ckpt report` on a real store (an adaptive checkpointer that crashed,
//! restored and went on): the page is self-contained, well formed, has a
//! `data-series` group for every series the journal calls for, and — when
//! a Chromium is installed (Debian's `chromium`) — loads in a headless
//! browser without console errors (with `--enable-logging=stderr` it logs
//! each console message as `INFO:CONSOLE...` on stderr), keeps its series
//! in the DOM and renders to a non-trivial PNG. Without Chromium the
//! browser part is skipped,
//! unless `CKPT_CHROMIUM_REQUIRED=1` (CI sets it when it installed one).

use ckpt::model::Policy;
use ckpt::{Checkpointer, FsStorage, JournalEvent, PagedVec, Reader, Scheme};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// An adaptive run of `steps` steps on `dir`, from its newest checkpoint;
/// `crash` ends it without `finish`.
fn run(dir: &Path, steps: u64, crash: bool) {
    let mut ck = Checkpointer::builder()
        .storage(FsStorage::open(dir).expect("opens"))
        .every(Duration::from_millis(20))
        .mtbf(Duration::from_secs(2))
        .policy(Policy::adaptive().allow(&[Scheme::Full, Scheme::CopyOnWrite]))
        .keep_last(3)
        .build()
        .expect("builds");
    let (first, mut grid) = match ck.restore_latest::<PagedVec<u64>>().expect("restores") {
        Some(r) => (r.step + 1, r.state),
        None => (
            0,
            PagedVec::from_slice_with_page_len(&vec![0; 32 * 1024], 1024),
        ),
    };
    for step in first..first + steps {
        ck.scope(step, &mut grid, |g| {
            g[(step as usize * 1031) % (32 * 1024)] += step;
            std::thread::sleep(Duration::from_millis(2));
        })
        .expect("checkpoints");
    }
    if crash {
        ck.flush().expect("flushes");
        drop(ck);
    } else {
        ck.finish().expect("finishes");
    }
}

/// The `data-series` ids the report of `dir` must have.
fn expected_series(dir: &Path) -> Vec<String> {
    let journal = Reader::open_dir(dir).unwrap().journal().unwrap();
    assert!(!journal.is_empty(), "the runs recorded a journal");
    let mut ids: Vec<String> = ["interval", "restarts", "restores", "decisions"]
        .map(String::from)
        .to_vec();
    for scheme in [Scheme::Full, Scheme::Incremental, Scheme::CopyOnWrite] {
        let used = journal.iter().any(|r| {
            matches!(&r.event, JournalEvent::Checkpoint { event, .. } if event.scheme == scheme)
        });
        if used {
            let name = scheme.to_string();
            ids.extend([
                format!("stall-{name}"),
                format!("durable-{name}"),
                format!("bytes-{name}"),
            ]);
        }
    }
    // The model was saved: the curves of its plan in force (or full, the
    // writer's default) with their bands.
    let plan = ckpt::model::ModelConfig::default();
    let advisor = Reader::open_dir(dir)
        .unwrap()
        .advisor(plan, Policy::adaptive())
        .unwrap()
        .expect("the model was saved");
    let in_force = advisor
        .in_force()
        .map_or_else(|| "full".to_owned(), |(p, _)| p.to_string());
    let slug = in_force
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    ids.extend([format!("curve-{slug}"), format!("band-{slug}")]);
    ids.push("interval-in-force".to_owned());
    ids
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

/// A Chromium on the PATH.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// Runs `command`, killing it after two minutes.
fn run_bounded(mut command: Command) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    let started = Instant::now();
    while child.try_wait().expect("waits").is_none() {
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("chromium did not finish in two minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().expect("output")
}

fn browser(chromium: &Path, profile: &Path) -> Command {
    let mut command = Command::new(chromium);
    command.args([
        "--headless",
        "--disable-gpu",
        "--no-sandbox",
        "--no-first-run",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
    ]);
    command.arg(format!("--user-data-dir={}", profile.display()));
    command
}

/// The width and height a PNG's header gives.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

#[test]
fn the_report_of_a_real_store_is_self_contained_and_renders() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    run(&store, 150, true);
    run(&store, 100, false);
    let out = dir.path().join("report.html");
    let output = Command::new(env!("CARGO_BIN_EXE_ckpt"))
        .args([
            "report",
            store.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let html = std::fs::read_to_string(&out).expect("the report was written");

    // Well formed enough, and self-contained.
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    assert_eq!(count(&html, "<svg"), count(&html, "</svg>"));
    assert_eq!(count(&html, "<g "), count(&html, "</g>"));
    assert_eq!(count(&html, "<table"), count(&html, "</table>"));
    assert!(count(&html, "<svg") >= 4, "four charts");
    for forbidden in ["http://", "https://", "<script", "src=", "@import", "url("] {
        assert!(!html.contains(forbidden), "the page references {forbidden}");
    }
    let expected = expected_series(&store);
    for id in &expected {
        assert!(
            html.contains(&format!("data-series=\"{id}\"")),
            "no series {id}"
        );
    }
    // The crash and the restore are drawn as markers, and every decision
    // is a row of the table.
    for group in ["restarts", "restores"] {
        let at = html.find(&format!("data-series=\"{group}\"")).unwrap();
        assert!(html[at..].split("</g>").next().unwrap().contains("<line"));
    }
    let journal = Reader::open_dir(&store).unwrap().journal().unwrap();
    let decisions = journal
        .iter()
        .filter(|r| matches!(r.event, JournalEvent::Decision(_)))
        .count();
    if decisions > 0 {
        let table = html.split("data-table=\"decisions\"").nth(1).unwrap();
        let table = table.split("</table>").next().unwrap();
        assert_eq!(count(table, "<tr><td"), decisions);
    }

    // `ckpt model` shows the newest of them.
    let model = Command::new(env!("CARGO_BIN_EXE_ckpt"))
        .args(["model", store.to_str().unwrap(), "--json"])
        .output()
        .expect("runs");
    let model: serde_json::Value = serde_json::from_slice(&model.stdout).expect("JSON");
    let recent = model["recent_decisions"].as_array().expect("a list");
    assert_eq!(recent.len(), decisions.min(5));

    let Some(chromium) = chromium() else {
        assert!(
            std::env::var("CKPT_CHROMIUM_REQUIRED").as_deref() != Ok("1"),
            "CKPT_CHROMIUM_REQUIRED=1 but no chromium on the PATH"
        );
        println!("no chromium on the PATH: the browser part of this test was skipped");
        return;
    };
    let url = format!("file://{}", out.display());
    let profile = dir.path().join("profile");
    let mut dump = browser(&chromium, &profile);
    dump.args(["--dump-dom", &url]);
    let loaded = run_bounded(dump);
    let dom = String::from_utf8_lossy(&loaded.stdout);
    let log = String::from_utf8_lossy(&loaded.stderr);
    assert!(loaded.status.success(), "chromium failed: {log}");
    for id in &expected {
        assert!(
            dom.contains(&format!("data-series=\"{id}\"")),
            "series {id} is not in the loaded DOM"
        );
    }
    for line in log.lines() {
        assert!(
            !line.contains("Uncaught")
                && !line.contains(":CONSOLE")
                && !line.contains("Failed to load"),
            "the page logged: {line}"
        );
    }
    let png = dir.path().join("report.png");
    let mut shot = browser(&chromium, &profile);
    shot.arg(format!("--screenshot={}", png.display()))
        .args(["--window-size=1200,3000", &url]);
    let shot = run_bounded(shot);
    assert!(
        shot.status.success(),
        "{}",
        String::from_utf8_lossy(&shot.stderr)
    );
    let bytes = std::fs::read(&png).expect("a screenshot");
    assert_eq!(png_size(&bytes), (1200, 3000));
    // A blank page of that size compresses to a few KiB; charts and
    // tables take far more.
    assert!(bytes.len() > 40_000, "{} bytes: a blank page?", bytes.len());
    println!(
        "rendered with {}: {} bytes",
        chromium.display(),
        bytes.len()
    );
}
