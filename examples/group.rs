//! Four processes checkpoint their shards of one computation together.
//!
//! Each rank process owns a slice of a 1-D rod whose temperature diffuses;
//! each step the ranks exchange nothing (a real code would exchange halos
//! with MPI), but a step counts only once all four shards of it are durable.
//! The first launch is torn down when rank 2 crashes at step 37; the
//! second launch (a new run id, as a scheduler restart would give) resumes
//! every rank from the newest step the whole group committed.
//!
//! Run it with `cargo run --release --example group [store-dir]`. The
//! parent re-runs this program as `group rank <rank> <run-id> <dir>` for
//! each rank.

use ckpt::{Checkpointer, FsStorage, Group, Scheme};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::process::Command;

const RANKS: u32 = 4;
const STEPS: u64 = 60;
const CRASH: (u32, u64) = (2, 37);

/// One rank's shard of the computation.
#[derive(Serialize, Deserialize, Debug)]
struct Shard {
    temperature: Vec<f64>,
}

impl Shard {
    fn new(rank: u32) -> Self {
        let mut temperature = vec![0.0; 50_000];
        temperature[25_000] = 1e6 * f64::from(rank + 1);
        Shard { temperature }
    }

    fn advance(&mut self) {
        let t = &self.temperature;
        self.temperature = (0..t.len())
            .map(|i| {
                let left = t[i.saturating_sub(1)];
                let right = t[(i + 1).min(t.len() - 1)];
                t[i] + 0.25 * (left - 2.0 * t[i] + right)
            })
            .collect();
    }
}

/// One rank of one launch: resume, compute, checkpoint every 5 steps.
fn run_rank(rank: u32, run_id: &str, dir: &Path) -> ckpt::Result<()> {
    let mut ck = Checkpointer::builder()
        // Every rank opens the same directory; the group keeps each rank's
        // checkpoints apart (`shards/<rank>/`) and commits steps together.
        .storage(FsStorage::open_shared(dir)?)
        .group(Group::new(RANKS, rank, run_id))
        .scheme(if rank.is_multiple_of(2) {
            Scheme::Incremental
        } else {
            Scheme::Full
        })
        .every_steps(5)
        .keep_last(2)
        .build()?;
    let (mut shard, first) = match ck.restore_latest::<Shard>()? {
        Some(r) => {
            println!("  rank {rank} [{run_id}]: resumed from step {}", r.step);
            (r.state, r.step + 1)
        }
        None => (Shard::new(rank), 0),
    };
    for step in first..STEPS {
        if run_id == "launch-1" && (rank, step) == CRASH {
            println!("  rank {rank} [{run_id}]: crashing at step {step}");
            std::process::abort();
        }
        ck.scope(step, &mut shard, Shard::advance)?;
        let status = ck.last_committed().and_then(|c| c.group.as_ref());
        if let Some(s) = status.filter(|s| s.created && s.step == step) {
            println!(
                "  rank {rank} [{run_id}]: step {} globally committed",
                s.step
            );
        }
    }
    ck.finish()
}

/// Starts every rank of one launch and waits for them.
fn launch(run_id: &str, dir: &Path) -> bool {
    println!("launch {run_id}:");
    let exe = std::env::current_exe().expect("this program");
    let children: Vec<_> = (0..RANKS)
        .map(|rank| {
            Command::new(&exe)
                .args(["rank", &rank.to_string(), run_id])
                .arg(dir)
                .spawn()
                .expect("start a rank")
        })
        .collect();
    let mut all_ok = true;
    for mut child in children {
        all_ok &= child.wait().expect("wait for a rank").success();
    }
    all_ok
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [mode, rank, run_id, dir] = args.as_slice()
        && mode == "rank"
    {
        return Ok(run_rank(rank.parse()?, run_id, Path::new(dir))?);
    }
    let temp = tempfile::tempdir()?;
    let dir = args.first().map_or(temp.path(), |d| Path::new(d));
    // A scheduler would tear the job down when a rank dies; the ranks here
    // simply run on until their steps are done, and the commits stop at
    // the last step rank 2 voted for.
    if !launch("launch-1", dir) {
        println!("launch-1 ended with a crashed rank");
    }
    // The restart: a new run id, the same on every rank.
    assert!(launch("launch-2", dir), "the second launch completes");
    println!(
        "every rank resumed from the same step and finished step {}",
        STEPS - 1
    );
    Ok(())
}
