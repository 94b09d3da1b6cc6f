//! The workloads: what each phase of a run writes, for how many steps,
//! at what step time.
//!
//! This module is the harness's seam: everything else (calibration, the
//! runs, the report) runs whatever [`workloads`] returns, a list of
//! [`Workload`]s, each a state size and a sequence of [`PhaseSpec`]s. A
//! phase's step writes what its [`Writes`] says (carried out by
//! `state::Job::advance`) and is then padded with calibrated arithmetic up
//! to its `step_time`. The randomized generator (`generate.rs`) produces
//! the same kind of list; the four fixed workloads here are the
//! regression cases.

use crate::MIB;
use crate::state::ROW_LEN;
use std::ops::Range;
use std::time::Duration;

/// What a step writes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Writes {
    /// Embedding rows: `per_step` rows, `hot_share` of them among the
    /// first `hot_rows`.
    Rows {
        per_step: usize,
        hot_share: f64,
        hot_rows: usize,
    },
    /// Every element (a stencil sweep).
    Sweep,
    /// `per_step` aggregates at keys hashed across the state.
    Keys { per_step: usize },
    /// A share of the state's pages, each written once (a few elements),
    /// chosen by `pattern`: the generated workloads (`generate.rs`).
    Pages { share: f64, pattern: Pattern },
}

/// Which pages a [`Writes::Pages`] step writes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Pattern {
    /// Pages drawn uniformly (with repeats).
    Uniform,
    /// Pages drawn from a Zipf law of exponent `s` over the pages (page
    /// 0 the most popular), with repeats.
    Zipf { s: f64 },
    /// The next pages in order, wrapping around: a sequential sweep.
    Sweep,
}

#[derive(Debug, Clone)]
pub(crate) struct PhaseSpec {
    pub(crate) name: String,
    pub(crate) steps: u64,
    pub(crate) step_time: Duration,
    pub(crate) writes: Writes,
    /// Threads the step's arithmetic runs on (1, or every core).
    pub(crate) cores: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct Workload {
    pub(crate) key: String,
    pub(crate) title: String,
    pub(crate) state_bytes: usize,
    pub(crate) phases: Vec<PhaseSpec>,
    /// Storage slowdown: every store operation takes this many times as
    /// long as on the local disk (1 = the disk itself).
    pub(crate) slowdown: f64,
    /// Mixed into the failure seed, so workloads see different failures.
    pub(crate) salt: u64,
    /// Shorter reference blocks and probes (the generated workloads,
    /// whose steps reach 500 ms).
    pub(crate) quick: bool,
}

impl Workload {
    pub(crate) fn total_steps(&self) -> u64 {
        self.phases.iter().map(|p| p.steps).sum()
    }

    /// Step ranges of the phases.
    pub(crate) fn ranges(&self) -> Vec<Range<u64>> {
        let mut start = 0;
        self.phases
            .iter()
            .map(|p| {
                let r = start..start + p.steps;
                start = r.end;
                r
            })
            .collect()
    }

    pub(crate) fn phase_of(&self, step: u64) -> usize {
        self.ranges()
            .iter()
            .position(|r| r.contains(&step))
            .unwrap_or(self.phases.len() - 1)
    }
}

pub(crate) fn sparse_phase(state_bytes: usize, seconds: f64) -> PhaseSpec {
    let step_time = Duration::from_millis(20);
    PhaseSpec {
        name: "sparse".to_owned(),
        steps: steps_for(seconds, step_time),
        step_time,
        writes: Writes::Rows {
            per_step: 32,
            hot_share: 0.95,
            hot_rows: state_bytes / (ROW_LEN * 8) / 50,
        },
        cores: 1,
    }
}

pub(crate) fn dense_phase(seconds: f64) -> PhaseSpec {
    let step_time = Duration::from_millis(50);
    PhaseSpec {
        name: "dense".to_owned(),
        steps: steps_for(seconds, step_time),
        step_time,
        writes: Writes::Sweep,
        cores: 1,
    }
}

pub(crate) fn stream_phase(seconds: f64) -> PhaseSpec {
    let step_time = Duration::from_millis(2);
    PhaseSpec {
        name: "stream".to_owned(),
        steps: steps_for(seconds, step_time),
        step_time,
        writes: Writes::Keys { per_step: 8 },
        cores: 1,
    }
}

pub(crate) fn steps_for(seconds: f64, step: Duration) -> u64 {
    (seconds / step.as_secs_f64()).round().max(1.0) as u64
}

pub(crate) fn workloads(scale: f64) -> Vec<Workload> {
    let single = 9.0 * scale;
    let phase = 6.0 * scale;
    let fixed = |key: &str, title: &str, state_bytes: usize, phases: Vec<PhaseSpec>| Workload {
        key: key.to_owned(),
        title: title.to_owned(),
        state_bytes,
        phases,
        slowdown: 1.0,
        salt: u64::from(key.as_bytes()[0]),
        quick: false,
    };
    vec![
        fixed(
            "a",
            "(a) sparse: embedding training, 64 MiB",
            64 * MIB,
            vec![sparse_phase(64 * MIB, single)],
        ),
        fixed(
            "b",
            "(b) dense: PDE stencil, 32 MiB",
            32 * MIB,
            vec![dense_phase(single)],
        ),
        fixed(
            "c",
            "(c) large state, 2 ms steps: stream aggregates, 128 MiB",
            128 * MIB,
            vec![stream_phase(single)],
        ),
        fixed(
            "d",
            "(d) phases a -> b -> c: training pipeline, 64 MiB",
            64 * MIB,
            vec![
                sparse_phase(64 * MIB, phase),
                dense_phase(phase),
                stream_phase(phase),
            ],
        ),
    ]
}
