//! Paged state with the three schemes: a 256 MiB grid of which a few pages
//! change per step, checkpointed full, incrementally and copy-on-write.
//! Prints what each checkpoint wrote and how long the computation stalled,
//! then restores each store with a progress bar drawn from the restore's
//! progress events, and reads an older checkpoint with a read-only
//! [`Reader`](ckpt::Reader).
//!
//! Run it with `cargo run --release --example paged`.

use ckpt::model::Event;
use ckpt::{Capture, Checkpointer, FsStorage, PagedVec, Reader, Restore, Scheme, State};
use serde::{Deserialize, Serialize};
use std::io::Write;

/// A stencil code's state: small metadata plus a big grid.
struct Stencil {
    meta: Meta,
    grid: PagedVec<f64>,
}

#[derive(Serialize, Deserialize, Clone, Copy)]
struct Meta {
    step: u64,
    dt: f64,
}

impl State for Stencil {
    fn capture(&mut self, capture: &mut Capture) -> ckpt::Result<()> {
        capture.serde("meta", &self.meta)?;
        capture.paged("grid", &mut self.grid)
    }

    fn restore(restore: &mut Restore) -> ckpt::Result<Self> {
        Ok(Stencil {
            meta: restore.serde("meta")?,
            grid: restore.paged("grid")?,
        })
    }
}

const CELLS: usize = 32 << 20; // 256 MiB of f64
const STEPS: u64 = 6;

impl Stencil {
    fn new() -> Self {
        let cells: Vec<f64> = (0..CELLS).map(|i| (i as f64 * 1e-3).sin()).collect();
        Stencil {
            meta: Meta { step: 0, dt: 0.1 },
            grid: PagedVec::from_vec(cells),
        }
    }

    /// Updates a moving window of about 1 % of the grid.
    fn advance(&mut self) {
        let window = CELLS / 100;
        let start = (self.meta.step as usize * 7919 * 4096) % (CELLS - window);
        for i in start..start + window {
            self.grid[i] += self.meta.dt;
        }
        self.meta.step += 1;
    }
}

fn report(scheme: Scheme, committed: &ckpt::Committed) {
    println!(
        "  {:<12} step {}: {:<5} changed {:>6.1} MiB, wrote {:>6.1} MiB, stall {:>6.1} ms, persist {:>6.1} ms",
        format!("{scheme:?}"),
        committed.info.step,
        if committed.full { "full" } else { "delta" },
        committed.changed_bytes as f64 / 1048576.0,
        committed.bytes_written as f64 / 1048576.0,
        committed.stall.as_secs_f64() * 1e3,
        committed.persist.as_secs_f64() * 1e3
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("A 256 MiB grid, about 1 % of it written per step, a checkpoint every step:");
    for scheme in [Scheme::Full, Scheme::Incremental, Scheme::CopyOnWrite] {
        let dir = tempfile::tempdir()?;
        let mut ck = Checkpointer::builder()
            .storage(FsStorage::open(dir.path())?)
            .scheme(scheme)
            .compression_level(0) // float data barely compresses
            .max_chain(4)
            .keep_last(2)
            .build()?;
        let mut sim = Stencil::new();
        let mut reported = 0;
        for _ in 0..STEPS {
            ck.scope(sim.meta.step, &mut sim, Stencil::advance)?;
            if let Some(c) = ck.last_committed().filter(|c| c.info.seq > reported) {
                reported = c.info.seq;
                report(scheme, c);
            }
        }
        if let Some(c) = ck.flush()?.filter(|c| c.info.seq > reported) {
            report(scheme, c);
        }
        ck.finish()?;

        let mut ck = Checkpointer::builder()
            .storage(FsStorage::open(dir.path())?)
            .on_event(draw_progress)
            .build()?;
        let restored = ck.restore_latest::<Stencil>()?.ok_or("no checkpoint")?;
        let identical =
            restored.state.grid == sim.grid && restored.state.meta.step == sim.meta.step;
        println!(
            "  {:<12} restored step {} from a chain of {}: {}",
            format!("{scheme:?}"),
            restored.step,
            restored.info.chain_len,
            if identical {
                "identical to the live state"
            } else {
                "DIFFERENT"
            }
        );
        if !identical {
            return Err("restore differs".into());
        }
        // An older checkpoint, read without a lock and without writing,
        // while the checkpointer above still holds the store.
        let reader = Reader::open_dir(dir.path())?;
        let listed = reader.list()?;
        if let Some(oldest) = listed.checkpoints.first() {
            let older = reader.restore_key::<Stencil>(&oldest.key)?;
            println!(
                "  {:<12} read-only: {} checkpoints listed, the oldest (step {}) restores too",
                "",
                listed.checkpoints.len(),
                older.step
            );
        }
        ck.finish()?;
    }
    Ok(())
}

/// Draws a restore's progress as a bar on one terminal line.
fn draw_progress(event: &Event) {
    if let Event::RestoreProgress(progress) = event {
        let width = 40;
        let filled = (progress.fraction() * width as f64).round() as usize;
        print!(
            "\r  restoring [{}{}] {:>5.1} / {:.1} MiB",
            "#".repeat(filled),
            " ".repeat(width - filled.min(width)),
            progress.bytes_done as f64 / 1048576.0,
            progress.bytes_total as f64 / 1048576.0
        );
        if progress.bytes_done == progress.bytes_total {
            println!();
        }
        let _ = std::io::stdout().flush();
    }
}
