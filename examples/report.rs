//! A store worth a report: an adaptive checkpointer runs a small job
//! through two phases (sparse updates, then dense ones), crashing twice
//! and restoring each time, so that the store's journal holds checkpoints
//! by several schemes, the policy's trials and changes, restarts and
//! restores. Then draw it:
//!
//! ```text
//! cargo run --release --example report -- /tmp/report-store
//! cargo run --release -p ckpt-cli -- report /tmp/report-store -o report.html
//! ```
//!
//! (`docs/report-example.html` was made so.) Without a directory argument
//! the store goes to a temporary directory and is removed at the end.

use ckpt::model::Policy;
use ckpt::{Checkpointer, FsStorage, PagedVec};
use std::path::Path;
use std::time::Duration;

const ROWS: usize = 16 * 1024;
const ROW: usize = 128;

/// One run of the job on `dir`, from wherever the store's newest
/// checkpoint left it, for `steps` steps updating `rows_per_step` rows
/// each; `crash` drops the checkpointer without `finish`.
fn run(dir: &Path, steps: u64, rows_per_step: usize, crash: bool) -> ckpt::Result<()> {
    let mut ck = Checkpointer::builder()
        .storage(FsStorage::open(dir)?)
        .compression_level(0)
        .every(Duration::from_millis(200))
        .mtbf(Duration::from_secs(4))
        .keep_last(4)
        .policy(Policy::adaptive().seed(3))
        .build()?;
    let (first, mut table) = match ck.restore_latest::<PagedVec<f64>>()? {
        Some(restored) => (restored.step + 1, restored.state),
        None => (0, PagedVec::from_vec(vec![0.0; ROWS * ROW])),
    };
    let mut seed = first.wrapping_add(7);
    for step in first..first + steps {
        ck.scope(step, &mut table, |t| {
            for _ in 0..rows_per_step {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let row = (seed >> 33) as usize % ROWS;
                t[row * ROW] += 1.0;
            }
            std::thread::sleep(Duration::from_millis(4)); // the step's arithmetic
        })?;
    }
    if crash {
        ck.flush()?; // what was durable when the process died
        drop(ck);
        println!("crashed after step {}", first + steps - 1);
        Ok(())
    } else {
        println!("plan at the end: {}", ck.plan());
        ck.finish()
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let temp = tempfile::tempdir()?;
    let dir = std::env::args()
        .nth(1)
        .map_or_else(|| temp.path().to_owned(), Into::into);
    std::fs::create_dir_all(&dir)?;
    run(&dir, 1200, 8, true)?; // sparse updates: copy-on-write or incremental pay
    run(&dir, 1200, 2_000, true)?; // dense updates: the costs change
    run(&dir, 1000, 8, false)?; // sparse again, to the end
    let journal = ckpt::Reader::open_dir(&dir)?.journal()?;
    println!(
        "{} journal records in {}; draw them with `ckpt report {} -o report.html`",
        journal.len(),
        dir.display(),
        dir.display()
    );
    Ok(())
}
