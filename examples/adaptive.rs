//! The adaptive policy on a small job: what it decides, and why.
//!
//! A 16 MiB paged table is updated sparsely (a few rows per step) while
//! `Policy::adaptive()` steers. With nothing learnt the policy begins with
//! a trial of copy-on-write from the first step; every decision it takes
//! (a trial, a change applied) arrives as an `Event::Decision`, printed
//! here with its reason. At the end the summary says what the run cost.
//!
//! Run it with `cargo run --release --example adaptive`.

use ckpt::model::{Decision, Event, Policy};
use ckpt::{Checkpointer, FsStorage, PagedVec};
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let mut ck = Checkpointer::builder()
        .storage(FsStorage::open(dir.path())?)
        .compression_level(0)
        .every(Duration::from_secs(1))
        .mtbf(Duration::from_secs(30))
        .policy(Policy::adaptive().seed(1))
        .on_event(|event| {
            if let Event::Decision(d) = event {
                let at = d.step.map_or("start".to_owned(), |s| format!("step {s}"));
                match &d.decision {
                    Decision::Explore { scheme, reason, .. } => {
                        println!("{at}: try {scheme:?}: {reason}");
                    }
                    Decision::Apply(rec) => println!("{at}: apply: {rec}"),
                    other => println!("{at}: {other:?}"),
                }
            }
        })
        .build()?;

    let rows = 16 * 1024;
    let mut table: PagedVec<f64> = PagedVec::from_vec(vec![0.0; rows * 128]);
    let mut seed = 7u64;
    for step in 0..600u64 {
        ck.scope(step, &mut table, |t| {
            for _ in 0..8 {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let row = (seed >> 33) as usize % rows;
                t[row * 128] += 1.0;
            }
            std::thread::sleep(Duration::from_millis(5)); // the step's arithmetic
        })?;
    }
    ck.flush()?;
    let summary = ck.summary().clone();
    println!(
        "plan now: {}; {} checkpoints, {:.1} ms blocked in all, p99 stall {:?}",
        ck.plan(),
        summary.checkpoints,
        summary.total_stall.as_secs_f64() * 1e3,
        summary.stall_quantile(0.99).unwrap_or_default(),
    );
    ck.finish()?;
    Ok(())
}
