//! The simulated application: its state (a paged table plus serde
//! metadata) and one step of work on it.

use crate::calibration::Kernel;
use crate::workload::{Pattern, Writes};
use ckpt::{Capture, PagedVec, Restore, State};
use serde::{Deserialize, Serialize};
use std::hint::black_box;

/// Elements of one embedding row (1 KiB of f64).
pub(crate) const ROW_LEN: usize = 128;
/// Recent losses kept in the serde metadata.
const RECENT: usize = 32;

/// The application state: small serde metadata plus a big paged table.
pub(crate) struct Job {
    pub(crate) meta: Meta,
    pub(crate) table: PagedVec<f64>,
}

#[derive(Serialize, Deserialize, Clone)]
pub(crate) struct Meta {
    pub(crate) step: u64,
    pub(crate) rng: u64,
    pub(crate) recent: Vec<f64>,
}

impl State for Job {
    fn capture(&mut self, capture: &mut Capture) -> ckpt::Result<()> {
        capture.serde("meta", &self.meta)?;
        capture.paged("table", &mut self.table)
    }

    fn restore(restore: &mut Restore) -> ckpt::Result<Self> {
        Ok(Job {
            meta: restore.serde("meta")?,
            table: restore.paged("table")?,
        })
    }
}

impl Job {
    pub(crate) fn new(bytes: usize) -> Self {
        let len = bytes / std::mem::size_of::<f64>();
        let mut rng = SplitMix(0x5EED);
        let values: Vec<f64> = (0..len).map(|_| rng.unit() - 0.5).collect();
        Job {
            meta: Meta {
                step: 0,
                rng: 1,
                recent: Vec::new(),
            },
            table: PagedVec::from_vec(values),
        }
    }

    /// One step: the phase's writes, then its arithmetic.
    pub(crate) fn advance(&mut self, kernel: &Kernel) {
        let mut rng = SplitMix(self.meta.rng ^ self.meta.step.wrapping_mul(0x9E37_79B9));
        let touched = match kernel.writes {
            Writes::Rows {
                per_step,
                hot_share,
                hot_rows,
            } => self.update_rows(&mut rng, per_step, hot_share, hot_rows),
            Writes::Sweep => self.sweep(),
            Writes::Keys { per_step } => self.update_keys(&mut rng, per_step),
            Writes::Pages { share, pattern } => {
                self.update_pages(&mut rng, share, pattern, self.meta.step)
            }
        };
        let loss = if kernel.cores > 1 {
            // Every core: the same arithmetic on each, the step ends when
            // the slowest is done (a data-parallel step).
            std::thread::scope(|s| {
                for _ in 1..kernel.cores {
                    s.spawn(|| burn(kernel.burn_iters, touched));
                }
                burn(kernel.burn_iters, touched)
            })
        } else {
            burn(kernel.burn_iters, touched)
        };
        self.meta.rng = rng.next();
        self.meta.step += 1;
        if self.meta.recent.len() == RECENT {
            self.meta.recent.remove(0);
        }
        self.meta.recent.push(loss);
    }

    /// Sparse SGD on embedding rows, `hot_share` of them from the first
    /// `hot_rows` rows.
    pub(crate) fn update_rows(
        &mut self,
        rng: &mut SplitMix,
        per_step: usize,
        hot_share: f64,
        hot_rows: usize,
    ) -> f64 {
        let rows = self.table.len() / ROW_LEN;
        let page_len = self.table.page_len();
        let mut sum = 0.0;
        for _ in 0..per_step {
            let row = if rng.unit() < hot_share {
                rng.below(hot_rows.min(rows))
            } else {
                rng.below(rows)
            };
            let start = row * ROW_LEN;
            let (page, offset) = (start / page_len, start % page_len);
            let grad = rng.unit() - 0.5;
            if let Some(values) = self
                .table
                .page_mut(page)
                .and_then(|p| p.get_mut(offset..offset + ROW_LEN))
            {
                for x in values {
                    *x -= 0.01 * (grad + 0.001 * *x);
                    sum += *x;
                }
            }
        }
        sum
    }

    /// A 3-point smoothing stencil over the whole grid, in place.
    pub(crate) fn sweep(&mut self) -> f64 {
        let mut sum = 0.0;
        for page in self.table.pages_mut() {
            let mut previous = page.first().copied().unwrap_or(0.0);
            for i in 1..page.len().saturating_sub(1) {
                let next = page.get(i + 1).copied().unwrap_or(0.0);
                if let Some(x) = page.get_mut(i) {
                    let current = *x;
                    *x = 0.25 * previous + 0.5 * current + 0.25 * next + 1e-9;
                    previous = current;
                    sum += *x;
                }
            }
        }
        sum
    }

    /// Writes a few elements in `share` of the pages (rounded, at least
    /// one), chosen by `pattern`. A sweep continues where the previous
    /// step stopped (derived from the step, so recomputation repeats it).
    pub(crate) fn update_pages(
        &mut self,
        rng: &mut SplitMix,
        share: f64,
        pattern: Pattern,
        step: u64,
    ) -> f64 {
        let pages = self.table.page_count().max(1);
        let per_step = ((share * pages as f64).round() as usize).clamp(1, pages);
        let mut sum = 0.0;
        for i in 0..per_step {
            let page = match pattern {
                Pattern::Uniform => rng.below(pages),
                Pattern::Zipf { s } => zipf(rng.unit(), s, pages),
                Pattern::Sweep => ((step as usize).wrapping_mul(per_step).wrapping_add(i)) % pages,
            };
            let at = rng.below(ROW_LEN);
            if let Some(values) = self
                .table
                .page_mut(page)
                .and_then(|p| p.get_mut(at..(at + 8).min(p.len())))
            {
                for x in values {
                    *x = 0.99 * *x + 0.01;
                    sum += *x;
                }
            }
        }
        sum
    }

    /// Windowed aggregates (count, sum, sum of squares, min, max, ...) of
    /// `per_step` keys hashed across the whole state.
    pub(crate) fn update_keys(&mut self, rng: &mut SplitMix, per_step: usize) -> f64 {
        const CELLS: usize = 8;
        let len = self.table.len();
        let mut sum = 0.0;
        for _ in 0..per_step {
            let at = rng.below(len / CELLS) * CELLS;
            let value = rng.unit();
            let page_len = self.table.page_len();
            let (page, offset) = (at / page_len, at % page_len);
            if let Some(agg) = self
                .table
                .page_mut(page)
                .and_then(|cells| cells.get_mut(offset..offset + CELLS))
            {
                agg[0] += 1.0;
                agg[1] += value;
                agg[2] += value * value;
                agg[3] = agg[3].min(value);
                agg[4] = agg[4].max(value);
                agg[5] = 0.9 * agg[5] + 0.1 * value;
                sum += agg[1];
            }
        }
        sum
    }
}

/// Rank (0-based, below `n`) of a continuous power law of exponent `s`
/// over `1..=n` at quantile `u`: an inverse-CDF stand-in for a Zipf draw.
pub(crate) fn zipf(u: f64, s: f64, n: usize) -> usize {
    let n_f = n as f64;
    let x = if (s - 1.0).abs() < 1e-6 {
        n_f.powf(u)
    } else {
        let a = 1.0 - s;
        ((n_f.powf(a) - 1.0) * u + 1.0).powf(1.0 / a)
    };
    (x.floor() as usize).saturating_sub(1).min(n - 1)
}

/// A tiny deterministic RNG kept in the state, so that recomputed steps
/// after a restore are the same steps.
pub(crate) struct SplitMix(u64);

impl SplitMix {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.unit() * n.max(1) as f64) as usize % n.max(1)
    }
}

/// The arithmetic part of a step: a dependent chain of multiply-adds (a
/// stand-in for a dense layer or a flux computation), `iters` long.
pub(crate) fn burn(iters: u64, seed: f64) -> f64 {
    let (mut x, mut y) = (black_box(seed.fract().abs() + 0.5), 1.0f64);
    for _ in 0..iters {
        x = x * 0.999_999_7 + 0.000_000_3;
        y = y * x + 0.125 * (1.0 - y);
    }
    black_box(x + y)
}
