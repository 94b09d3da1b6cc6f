//! A deterministic composite state for the scheme tests: a serde log that
//! is edited in the middle (so content-defined chunking matters) and a paged
//! grid of which three pages change per step.

use ckpt::{Capture, PagedVec, Restore, State};

const PAGES: usize = 256;
const PAGE_LEN: usize = 1024;

/// A simulation: a log (serde, edited in the middle) and a paged grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Sim {
    pub step: u64,
    pub log: Vec<u8>,
    pub grid: PagedVec<u64>,
}

impl State for Sim {
    fn capture(&mut self, capture: &mut Capture) -> ckpt::Result<()> {
        capture.serde("meta", &(self.step, &self.log))?;
        capture.paged("grid", &mut self.grid)
    }

    fn restore(restore: &mut Restore) -> ckpt::Result<Self> {
        let (step, log) = restore.serde("meta")?;
        Ok(Sim {
            step,
            log,
            grid: restore.paged("grid")?,
        })
    }
}

impl Sim {
    pub fn new() -> Self {
        Sim {
            step: 0,
            log: (0..100_000u32).map(|i| (i % 251) as u8).collect(),
            grid: PagedVec::from_slice_with_page_len(&vec![1; PAGES * PAGE_LEN], PAGE_LEN),
        }
    }

    /// One deterministic step: touches three pages, edits the log.
    pub fn advance(&mut self) {
        self.step += 1;
        let s = self.step as usize;
        for page in [s * 7 % PAGES, (s * 13 + 1) % PAGES, (s * s) % PAGES] {
            let at = page * PAGE_LEN + s % PAGE_LEN;
            self.grid[at] = self.grid[at].wrapping_mul(31).wrapping_add(self.step);
        }
        let at = s * 7919 % self.log.len();
        self.log.splice(at..at, (self.step as u32).to_le_bytes());
        self.log.truncate(120_000);
    }

    pub fn at(step: u64) -> Self {
        let mut sim = Sim::new();
        while sim.step < step {
            sim.advance();
        }
        sim
    }
}
