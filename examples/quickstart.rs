//! A small heat-diffusion simulation that checkpoints, crashes for real
//! (the process aborts mid-run), and resumes from its newest checkpoint.
//!
//! Run it with `cargo run --release --example quickstart`.

use ckpt::{Checkpointer, FsStorage};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::process::Command;

const STEPS: u64 = 2_000;
const CRASH_AT: u64 = 1_234;
const CHECKPOINT_EVERY: u64 = 100;

/// The application's state: a 1-D rod whose temperature diffuses.
#[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
struct Sim {
    step: u64,
    temperature: Vec<f64>,
}

impl Sim {
    fn new() -> Self {
        let mut temperature = vec![0.0; 100_000];
        temperature[50_000] = 1e6; // a hot spot in the middle
        Sim {
            step: 0,
            temperature,
        }
    }

    fn advance(&mut self) {
        let t = &self.temperature;
        let next: Vec<f64> = (0..t.len())
            .map(|i| {
                let left = if i == 0 { t[i] } else { t[i - 1] };
                let right = if i + 1 == t.len() { t[i] } else { t[i + 1] };
                t[i] + 0.25 * (left - 2.0 * t[i] + right)
            })
            .collect();
        self.temperature = next;
        self.step += 1;
    }
}

/// Runs the simulation against the store in `dir`, resuming if it can.
/// With `crash_at`, the process aborts (no unwinding, no cleanup) there.
fn run(dir: &Path, crash_at: Option<u64>) -> ckpt::Result<Sim> {
    let mut ck = Checkpointer::builder()
        .storage(FsStorage::open(dir)?)
        .every_steps(CHECKPOINT_EVERY)
        .keep_last(3)
        .build()?;
    let mut sim = match ck.restore_latest::<Sim>()? {
        Some(restored) => {
            println!(
                "  resumed from the checkpoint at step {} ({} bytes stored, {} skipped)",
                restored.state.step,
                restored.info.stored_bytes,
                restored.skipped.len()
            );
            restored.state
        }
        None => {
            println!("  no checkpoint found: starting from step 0");
            Sim::new()
        }
    };
    while sim.step < STEPS {
        if Some(sim.step) == crash_at {
            println!("  step {}: the process crashes now (abort)", sim.step);
            std::process::abort();
        }
        ck.scope(sim.step, &mut sim, Sim::advance)?;
        let just_committed = ck.last_committed().filter(|c| c.info.step + 1 == sim.step);
        if let Some(c) = just_committed.filter(|c| c.info.step % 500 == 499) {
            println!(
                "  step {}: checkpoint committed, {} KiB written in {:.1} ms",
                sim.step,
                c.bytes_written / 1024,
                c.stall.as_secs_f64() * 1e3
            );
        }
    }
    ck.finish()?;
    Ok(sim)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, mode, dir] = args.as_slice()
        && mode == "--crashing-child"
    {
        run(Path::new(dir), Some(CRASH_AT))?;
        return Ok(());
    }

    let dir = tempfile::tempdir()?;
    println!(
        "1. A child process simulates {STEPS} steps, checkpointing every {CHECKPOINT_EVERY}, and crashes at step {CRASH_AT}:"
    );
    let status = Command::new(std::env::current_exe()?)
        .args(["--crashing-child", &dir.path().display().to_string()])
        .status()?;
    println!("  child exited with {status}");

    println!("2. This process opens the same store and finishes the run:");
    let resumed = run(dir.path(), None)?;

    println!("3. Compare with a run that never crashed:");
    let mut reference = Sim::new();
    while reference.step < STEPS {
        reference.advance();
    }
    let identical = reference == resumed;
    println!(
        "  final state after {} steps is {}",
        resumed.step,
        if identical {
            "bit-for-bit identical"
        } else {
            "DIFFERENT"
        }
    );
    if !identical {
        return Err("resumed run diverged from the reference".into());
    }
    Ok(())
}
