//! Checking restores: a digest of the whole state, and a failure-free
//! replay that gives the true digest at every step a run restored.

use crate::calibration::Kernel;
use crate::state::Job;
use crate::workload::Workload;
use std::collections::{BTreeMap, BTreeSet};

/// A 64-bit digest of every byte of `job`: metadata and every element of
/// the table, bit for bit.
pub(crate) fn digest(job: &Job) -> u64 {
    let mut h = Digest(0x243F_6A88_85A3_08D3);
    h.add(job.meta.step);
    h.add(job.meta.rng);
    h.add(job.meta.recent.len() as u64);
    for x in &job.meta.recent {
        h.add(x.to_bits());
    }
    h.add(job.table.len() as u64);
    for page in job.table.pages() {
        for x in page {
            h.add(x.to_bits());
        }
    }
    h.finish()
}

struct Digest(u64);

impl Digest {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517C_C1B7_2722_0A95);
    }

    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The digest of the true state at each of `steps` (the state whose
/// `meta.step` is that step, before the step runs), by running the
/// workload once from its initial state with no checkpointer.
pub(crate) fn true_digests(
    w: &Workload,
    kernels: &[Kernel],
    steps: &BTreeSet<u64>,
) -> BTreeMap<u64, u64> {
    let mut job = Job::new(w.state_bytes);
    let mut found = BTreeMap::new();
    let Some(&last) = steps.last() else {
        return found;
    };
    for step in 0..=last {
        if steps.contains(&step) {
            found.insert(step, digest(&job));
        }
        if step == last {
            break;
        }
        let phase = w.phase_of(step);
        if let Some(kernel) = kernels.get(phase) {
            job.advance(kernel);
        }
    }
    found
}
