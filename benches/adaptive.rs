//! What the adaptive policy costs, measured against its baselines in the
//! same run (issue 4):
//!
//! * `model/*`: the cost model's work per checkpoint — `Advisor::observe`
//!   of one checkpoint event and `Advisor::advise` (evaluate every
//!   candidate plan at its best interval, then decide) — on an advisor
//!   that has measured all three schemes, restores and a failure, as it
//!   would be in the middle of a run. The checkpointer makes both calls
//!   after every commit; compare them with the checkpoint itself (the
//!   `end_to_end` group writes each in milliseconds).
//! * `end_to_end/*`: one short job — 8 MiB of paged `f64` plus serde
//!   metadata, 120 steps of sparse writes (1 % of the pages, random) and
//!   about 1 ms of arithmetic each, a checkpoint every 4 steps on an
//!   `FsStorage` in a temp dir — run with each static scheme and with
//!   `Policy::adaptive()` starting from full (MTBF 60 s). Every iteration
//!   starts from a fresh store, so the adaptive run pays for learning from
//!   nothing. It is not held to the static runs' interval: at an MTBF of
//!   60 s the model soon finds checkpoints every 4 ms far too frequent and
//!   lengthens the interval, so it may finish sooner than every static
//!   scheme by checkpointing less (examples/evaluate.rs compares schemes
//!   and the policy through real failures).
//!
//! Run with `cargo bench --bench adaptive`.

use ckpt::model::{
    Advisor, CheckpointEvent, Event, FailureClass, ModelConfig, Plan, Policy, RestartEvent,
    RestoreEvent,
};
use ckpt::{Capture, Checkpointer, FsStorage, PagedVec, Restore, Scheme, State};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::hint::black_box;
use std::time::Duration;

const GIB: u64 = 1 << 30;

/// A checkpoint event of `scheme` on a 1 GiB state, costs roughly those of
/// a disk at 1 GB/s, with a little noise.
fn event(scheme: Scheme, rng: &mut StdRng, chain: u32) -> Event {
    let dirty = (GIB as f64 * rng.random_range(0.01..0.03)) as u64;
    let written = if scheme == Scheme::Full { GIB } else { dirty };
    let write = written as f64 / 1e9 * rng.random_range(0.95..1.05);
    let mut e = CheckpointEvent::new(scheme, 0);
    e.steps = 100;
    e.compute = Duration::from_secs(60);
    e.stall = Duration::from_secs_f64(match scheme {
        Scheme::CopyOnWrite => 0.002,
        _ => write,
    });
    e.persist = Duration::from_secs_f64(write);
    e.logical_bytes = GIB;
    e.dirty_bytes = dirty;
    e.bytes_written = written;
    e.chain_length = chain;
    e.into()
}

/// An advisor in mid-run: every scheme measured, restores and a failure
/// seen.
fn trained_advisor() -> Advisor {
    let config = ModelConfig::with_mtbf(Duration::from_secs(4 * 3_600));
    let mut advisor = Advisor::new(config, Policy::adaptive()).expect("valid configuration");
    let mut rng = StdRng::seed_from_u64(1);
    for i in 0..90u32 {
        let scheme = [Scheme::Full, Scheme::Incremental, Scheme::CopyOnWrite][(i % 3) as usize];
        advisor.observe(&event(scheme, &mut rng, 1 + i % 8));
    }
    for chain in [1u32, 3, 6, 9] {
        let mut restore = RestoreEvent::new(
            0,
            Duration::from_secs_f64(1.0 + 0.1 * f64::from(chain)),
            chain,
        );
        restore.bytes_read = GIB;
        advisor.observe(&restore.into());
    }
    advisor.observe(&RestartEvent::new(FailureClass::Process).into());
    advisor
}

fn model_per_checkpoint(c: &mut Criterion) {
    let mut group = c.benchmark_group("model");
    let trained = trained_advisor();
    let mut rng = StdRng::seed_from_u64(2);
    let plan = Plan::with_full_every(Scheme::Incremental, 8);
    let interval = Duration::from_secs(60);
    let events: Vec<Event> = (0..64)
        .map(|i| event(Scheme::Incremental, &mut rng, 1 + i % 8))
        .collect();
    group.bench_function("observe", |b| {
        let mut advisor = trained.clone();
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % events.len();
            advisor.observe(black_box(&events[i]));
        });
    });
    group.bench_function("advise", |b| {
        let mut advisor = trained.clone();
        b.iter(|| black_box(advisor.advise(black_box(plan), interval)));
    });
    group.bench_function("observe+advise", |b| {
        let mut advisor = trained.clone();
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % events.len();
            advisor.observe(black_box(&events[i]));
            black_box(advisor.advise(black_box(plan), interval))
        });
    });
    group.finish();
}

/// The job of the end-to-end group: serde metadata and a paged table.
struct Job {
    step: u64,
    rng: u64,
    table: PagedVec<f64>,
}

impl State for Job {
    fn capture(&mut self, capture: &mut Capture) -> ckpt::Result<()> {
        capture.serde("meta", &(self.step, self.rng))?;
        capture.paged("table", &mut self.table)
    }

    fn restore(restore: &mut Restore) -> ckpt::Result<Self> {
        let (step, rng) = restore.serde("meta")?;
        Ok(Job {
            step,
            rng,
            table: restore.paged("table")?,
        })
    }
}

const STATE_BYTES: usize = 8 << 20;
const STEPS: u64 = 120;
const EVERY: u64 = 4;

impl Job {
    fn new() -> Self {
        let values: Vec<f64> = (0..STATE_BYTES / 8).map(|i| (i as f64).sin()).collect();
        Job {
            step: 0,
            rng: 7,
            table: PagedVec::from_vec(values),
        }
    }

    fn advance(&mut self) {
        let mut rng = StdRng::seed_from_u64(self.rng);
        let pages = self.table.page_count();
        for _ in 0..pages.div_ceil(100) {
            if let Some(page) = self.table.page_mut(rng.random_range(0..pages)) {
                page.iter_mut().for_each(|x| *x = *x * 0.999 + 0.001);
            }
        }
        let mut x = 0.5f64;
        for _ in 0..400_000 {
            x = x * 0.999_999 + 1e-7;
        }
        black_box(x);
        self.rng = rng.random();
        self.step += 1;
    }
}

fn run_job(policy: Option<Policy>, scheme: Scheme, dir: &std::path::Path, mut job: Job) {
    let builder = Checkpointer::builder()
        .storage(FsStorage::open(dir).expect("temp dir opens"))
        .compression_level(0)
        .every_steps(EVERY)
        .scheme(scheme);
    let builder = match policy {
        Some(policy) => builder.policy(policy).mtbf(Duration::from_secs(60)),
        None => builder,
    };
    let mut ck = builder.build().expect("valid configuration");
    while job.step < STEPS {
        let step = job.step;
        ck.scope(step, &mut job, Job::advance).expect("checkpoint");
    }
    ck.finish().expect("finish");
}

fn end_to_end(c: &mut Criterion) {
    let mut group = c.benchmark_group("end_to_end");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(15));
    let runs: [(&str, Scheme, Option<Policy>); 4] = [
        ("full", Scheme::Full, None),
        ("incremental", Scheme::Incremental, None),
        ("copy_on_write", Scheme::CopyOnWrite, None),
        ("adaptive", Scheme::Full, Some(Policy::adaptive())),
    ];
    for (name, scheme, policy) in runs {
        group.bench_function(name, |b| {
            b.iter_batched(
                || (tempfile::tempdir().expect("temp dir"), Job::new()),
                |(dir, job)| run_job(policy.clone(), scheme, dir.path(), job),
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();
}

// criterion's macro defines a public function it cannot document.
#[allow(missing_docs)]
mod group {
    use super::*;
    criterion_group!(benches, model_per_checkpoint, end_to_end);
}
use group::benches;
criterion_main!(benches);
