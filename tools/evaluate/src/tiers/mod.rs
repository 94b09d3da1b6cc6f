//! `--tiers`: multi-level checkpoints under process and node failures
//! (issue 15 item 4).
//!
//! # What is compared
//!
//! Two stores: a **local** [`FsStorage`](ckpt::FsStorage) (the node's
//! disk, behind a `CrashGate` at slowdown 1) and a **remote** one behind
//! a `CrashGate` that makes every operation `--remote-slowdown` times as
//! slow (default 6: an object store at a sixth of the disk's bandwidth).
//! A transfer to the remote also costs the computation: every step that
//! overlaps one takes `--drain-contention` (default 0.5) longer, spun on
//! the computation's thread (`crash::Contention`: an upload's TLS and
//! checksums, the network the job shares). Without it (`0`) a drain only
//! waits, costs the steps nothing, and draining every checkpoint is best
//! whatever the node-failure rate; with it, fewer drains save work while
//! node failures are rare, and cost more once they are frequent. The
//! checkpointer is not told: it measures the slowdown from its steps.
//! Both gates share one crash instant: the whole process dies, its drain
//! thread included, and nothing more reaches either store.
//!
//! Two failure classes, each a seeded stream of exponential draws:
//!
//! * a **process failure**, MTBF `M`: a crash; the local tier survives;
//! * a **node failure**, MTBF `10·M`: a crash after which the local
//!   tier's directory is deleted (a new node has an empty disk).
//!
//! Both are laid on the run's counted time (restarts included): process
//! failures at the running sums of the process gaps, node failures where
//! the node hazard (counted time over the node MTBF in force, integrated)
//! reaches the running sums of unit exponential draws. Every
//! configuration of a seed meets the same draws at the same instants of
//! its counted time (common random numbers). The default mode draws one
//! gap per process life instead; with two classes that would let a
//! configuration that needs fewer lives skip a node failure the others
//! meet.
//!
//! `M` is set as `--random` sets a workload's: a full checkpoint on the
//! local tier (probed) is [`YOUNG_SHARE`] (12 %) of Young's interval,
//! `M = C_full / (2·share²)` (`C_full` the median of three probes), unless
//! `--mtbf` gives it: the probe moves by up to 2× between runs on a shared
//! disk, and with it the regime, so runs meant to be compared (before
//! and after a change) should fix `M`. The
//! run is [`WORK_IN_MTBFS`] `M` of work, at most [`MAX_WORK`] seconds
//! (times `--scale`), so that it sees about ten process failures and one
//! node failure (steady) or three (worsening) unless the disk is slow.
//! 12 % is near the top of the randomized family's 2–20 %: at a few %
//! the same number of failures would need runs ten times longer than
//! the 15-minute budget of `--seeds 3` allows.
//!
//! The workload is (c), stream aggregates with 2 ms steps (most pages
//! dirty between checkpoints, so a copy-on-write checkpoint writes most
//! of the state and the remote's bandwidth matters), on a 16 MiB state
//! (`--state`); `--only a` runs (a), sparse embedding training, instead.
//!
//! The configurations, all in one run with the same failure seeds:
//!
//! * **remote-only**: one tier, the slow store;
//! * **local-only**: one tier, the local store; a node failure loses
//!   every checkpoint, and the job starts again from scratch;
//! * **k = 1, 2, 4, 8, 16**: local and remote, `drain_every(k)`;
//! * **adaptive**: local and remote, `Policy::adaptive()` with default
//!   settings and a fresh store (nothing learnt), started at
//!   `drain_every(1)`, copy-on-write and the static k interval, its
//!   `ModelConfig` given the process MTBF `M` and `node_mtbf = 10·M`.
//!   It reads `ck.drain_every()` after every step; the tables show the
//!   k in force over the run's counted time (`1→4@t=3.2s`).
//!
//! # Static intervals: one rule
//!
//! Every static configuration uses copy-on-write at one interval, Young's
//! `√(2·P·M')` in compute time, where `P` is the probed time for a
//! copy-on-write checkpoint to become durable on the tier it commits on
//! (the median of three probes)
//! and `M'` the combined MTBF of the failures that roll the job back to
//! that interval's checkpoints:
//!
//! * remote-only: `P` remote, `M' = 1/(1/M + 1/10M)` (every failure
//!   restores from the remote);
//! * local-only: `P` local, `M' = M` (its checkpoints are no use against
//!   a node failure, whatever the interval);
//! * k = 1…16 (and the adaptive run's start): `P` local,
//!   `M' = 1/(1/M + 1/10M)` (every failure restores from the newest
//!   checkpoint still there); k alone differs between them.
//!
//! The rates are those configured before the run (`10·M` for nodes) in
//! both scenarios: neither the static runs nor the adaptive one are told
//! of the change in the second.
//!
//! # Scenarios
//!
//! * **steady**: node MTBF `10·M` throughout;
//! * **worsening**: node MTBF `10·M` until the job first reaches half its
//!   steps, `2·M` from then on (the furthest step reached counts, so a
//!   rollback does not undo it; the hazard accrues at the new rate from
//!   that instant).
//!
//! # Goodput and checks
//!
//! Goodput as in the default mode: steps × reference step time / counted
//! time, one reference (the median of the reference blocks measured
//! around every run of the seed) for every configuration of a seed. A
//! run is cut after [`CAP_IN_WORKS`] times its work of counted time
//! (local-only in the worsening scenario: every node failure restarts it
//! from scratch, and with nodes failing every `2·M` it may never finish);
//! its goodput is then the steps it had reached over that time, marked
//! `cut` in the tables.
//!
//! Every restored state is hashed (every byte of the metadata and table;
//! the hashing is left out of the counted time) and compared, at the end,
//! with the state at the same step of a failure-free replay of the
//! workload; so is every run's final state. A restore that went back past
//! a checkpoint known durable for its failure class (a local commit the
//! process saw, or a drain to the remote it saw finish) is flagged too.
//! Either makes the harness exit non-zero; a missed target does not.
//!
//! ```text
//! cargo run --release -p ckpt-evaluate -- --tiers --seeds 3
//! cargo run --release -p ckpt-evaluate -- --tiers --ci
//! ```
//!
//! `CKPT_TIERS_TRACE=1` (or `2`) prints what the adaptive runs measured
//! and decided to stderr (module `trace`);
//! `CKPT_TIERS_SCENARIO=steady` (or `worsening`) runs that scenario only.

mod report;
mod run;
mod trace;
mod verify;

use crate::calibration::{Kernel, calibrate, probe, reference_step_times};
use crate::clock::CpuClock;
use crate::workload::{PhaseSpec, Workload, sparse_phase, steps_for, stream_phase};
use crate::{BoxError, MIB};
use ckpt::Scheme;
use report::{SeedResult, print_scenario, print_seed};
use run::{Config, NodeRate, TierSpec};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

/// A full local checkpoint's share of Young's interval, which sets `M`.
pub(crate) const YOUNG_SHARE: f64 = 0.12;
/// The run's work, in process MTBFs.
pub(crate) const WORK_IN_MTBFS: f64 = 10.0;
/// The most work a run takes, seconds (times `--scale`): on a slow disk
/// (a large `M`) the runs see fewer failures rather than overrun the
/// 15-minute budget of `--seeds 3`.
pub(crate) const MAX_WORK: f64 = 10.0;
/// A run is cut short after this many times its work of counted time.
const CAP_IN_WORKS: f64 = 4.0;
/// Node MTBF over process MTBF before the change, and after it.
const NODE_RATIO: (f64, f64) = (10.0, 2.0);

/// The configurations, in the tables' order.
pub(crate) const CONFIGS: [Config; 8] = [
    Config::RemoteOnly,
    Config::LocalOnly,
    Config::Static(1),
    Config::Static(2),
    Config::Static(4),
    Config::Static(8),
    Config::Static(16),
    Config::Adaptive,
];

/// The options `--tiers` takes.
pub(crate) struct TierOptions {
    pub(crate) workload: String,
    pub(crate) state_mib: Option<usize>,
    pub(crate) scale: f64,
    pub(crate) seed: u64,
    pub(crate) seeds: u64,
    pub(crate) remote_slowdown: f64,
    pub(crate) drain_contention: f64,
    /// The process MTBF, seconds (positive), from `--mtbf`; `None`: set
    /// from the probe.
    pub(crate) mtbf: Option<f64>,
    pub(crate) ci: bool,
    pub(crate) verbose: bool,
}

/// The workload of the tiers evaluation: (a) sparse or (c) stream, at
/// `state` MiB (default 16, 4 for `--ci`); its length is set once `M` is
/// known. `--ci` takes the short reference blocks and probes.
fn workload(key: &str, state: Option<usize>, ci: bool) -> Result<Workload, BoxError> {
    let bytes = state.unwrap_or(if ci { 4 } else { 16 }) * MIB;
    let (title, phase): (&str, PhaseSpec) = match key {
        "a" => ("(a) sparse: embedding training", sparse_phase(bytes, 1.0)),
        "c" => ("(c) stream aggregates, 2 ms steps", stream_phase(1.0)),
        other => return Err(format!("--tiers runs workload a or c, not {other}").into()),
    };
    Ok(Workload {
        key: key.to_owned(),
        title: format!("{title}, {} MiB", bytes / MIB),
        state_bytes: bytes,
        phases: vec![phase],
        slowdown: 1.0,
        salt: u64::from(key.as_bytes()[0]),
        quick: ci,
    })
}

/// What the probes found and the intervals they set.
struct Setup {
    mtbf: f64,
    intervals: Vec<Duration>,
}

/// Probes the stores (full on local for `M`, copy-on-write on each tier)
/// and applies the interval rule of the module docs.
fn setup(
    w: &mut Workload,
    kernels: &[Kernel],
    o: &TierOptions,
    root: &Path,
) -> Result<Setup, BoxError> {
    let kernel = *kernels.first().ok_or("no kernel")?;
    let step = w.phases.first().map_or(Duration::ZERO, |p| p.step_time);
    // Three probes, their median, for every probed time: one probe's
    // median of four checkpoints still moved by 3x between runs on this
    // disk (the remote copy-on-write probe by 7x, 80-548 ms, and with it
    // remote-only's interval), and `M` sets the run's length.
    let persist = |w: &Workload, scheme: Scheme, interval: Duration| {
        let mut times = Vec::new();
        for _ in 0..3 {
            times.push(probe(w, kernel, scheme, interval, root)?.persist);
        }
        Ok::<_, BoxError>(crate::calibration::median(&times))
    };
    let full = persist(w, Scheme::Full, step.max(Duration::from_millis(100)))?;
    let mtbf = o.mtbf.unwrap_or(full / (2.0 * YOUNG_SHARE * YOUNG_SHARE));
    let tau0 = Duration::from_secs_f64((2.0 * full * mtbf).sqrt());
    let local = persist(w, Scheme::CopyOnWrite, tau0)?;
    let mut slow = w.clone();
    slow.slowdown = o.remote_slowdown;
    let remote = persist(&slow, Scheme::CopyOnWrite, tau0)?;
    let all = 1.0 / (1.0 / mtbf + 1.0 / (NODE_RATIO.0 * mtbf));
    let young = |p: f64, m: f64| Duration::from_secs_f64((2.0 * p * m).sqrt().max(1e-3));
    let intervals: Vec<Duration> = CONFIGS
        .iter()
        .map(|c| match c {
            Config::RemoteOnly => young(remote, all),
            Config::LocalOnly => young(local, mtbf),
            _ => young(local, all),
        })
        .collect();
    let work = (WORK_IN_MTBFS * mtbf).min(MAX_WORK) * o.scale;
    if let Some(p) = w.phases.first_mut() {
        p.steps = steps_for(work, p.step_time);
    }
    println!(
        "    probes: full on local durable after {:.1} ms; copy-on-write durable after {:.1} ms local, \
         {:.1} ms remote (slowdown {})",
        full * 1e3,
        local * 1e3,
        remote * 1e3,
        o.remote_slowdown
    );
    println!(
        "    process MTBF M = {mtbf:.2} s ({}full local = {:.0} % of Young's {:.2} s), node MTBF {:.1} s \
         (then {:.1} s in the worsening scenario); {work:.1} s of work in {} steps",
        if o.mtbf.is_some() { "--mtbf; " } else { "" },
        100.0 * (full / (2.0 * mtbf)).sqrt(),
        tau0.as_secs_f64(),
        NODE_RATIO.0 * mtbf,
        NODE_RATIO.1 * mtbf,
        w.total_steps()
    );
    let listed: Vec<String> = [0, 1, 2]
        .iter()
        .filter_map(|&i| {
            let c = CONFIGS.get(i)?;
            Some(format!(
                "{} {:.3} s",
                c.name(),
                intervals.get(i)?.as_secs_f64()
            ))
        })
        .collect();
    println!(
        "    static intervals (compute time): {}; k=1..16 and adaptive's start share the last",
        listed.join(", ")
    );
    Ok(Setup { mtbf, intervals })
}

/// Runs the tiers evaluation; `Ok(false)` when a restore was wrong.
pub(crate) fn evaluate(
    o: &TierOptions,
    root: &Path,
    rate: f64,
    cpu: &CpuClock,
) -> Result<bool, BoxError> {
    let mut w = workload(&o.workload, o.state_mib, o.ci)?;
    println!(
        "\n{}: configurations {}; failure seeds {}..{}",
        w.title,
        CONFIGS.map(Config::name).join(", "),
        o.seed,
        o.seed + o.seeds - 1
    );
    let kernels = calibrate(&w, rate, cpu);
    let setup = setup(&mut w, &kernels, o, root)?;
    let m = Duration::from_secs_f64(setup.mtbf);
    let work = w.total_steps() as f64 * w.phases.first().map_or(0.0, |p| p.step_time.as_secs_f64());
    let half = w.total_steps() / 2;
    let scenarios = [
        (
            "steady",
            NodeRate {
                before: m.mul_f64(NODE_RATIO.0),
                after: m.mul_f64(NODE_RATIO.0),
                change_at: u64::MAX,
            },
        ),
        (
            "worsening",
            NodeRate {
                before: m.mul_f64(NODE_RATIO.0),
                after: m.mul_f64(NODE_RATIO.1),
                change_at: half,
            },
        ),
    ];
    let mut all = Vec::new();
    let only = std::env::var("CKPT_TIERS_SCENARIO").ok();
    for (name, node) in scenarios {
        if only.as_deref().is_some_and(|only| only != name) {
            continue;
        }
        println!(
            "\nscenario {name}: node MTBF {:.1} s{}",
            node.before.as_secs_f64(),
            if node.change_at == u64::MAX {
                String::new()
            } else {
                format!(", {:.1} s from step {half} on", node.after.as_secs_f64())
            }
        );
        let mut seeds = Vec::new();
        for n in 0..o.seeds {
            let seed = (o.seed + n).wrapping_mul(1_000).wrapping_add(w.salt);
            let mut outcomes: Vec<Option<run::TierOutcome>> =
                CONFIGS.iter().map(|_| None).collect();
            // Each seed runs the configurations in another order, so that
            // a drift of the machine's load favours none of them.
            for j in 0..CONFIGS.len() {
                let i = (j + n as usize) % CONFIGS.len();
                let spec = TierSpec {
                    workload: &w,
                    kernels: &kernels,
                    config: CONFIGS[i],
                    interval: setup.intervals[i],
                    mtbf: m,
                    node,
                    seed,
                    root,
                    remote_slowdown: o.remote_slowdown,
                    drain_contention: o.drain_contention,
                    cap: Duration::from_secs_f64(CAP_IN_WORKS * work),
                };
                outcomes[i] = Some(run::run(&spec)?);
            }
            let outcomes: Vec<run::TierOutcome> = outcomes.into_iter().flatten().collect();
            let mut blocks = Vec::new();
            for out in &outcomes {
                blocks.extend(out.blocks.iter().flatten().copied());
            }
            let reference = reference_step_times(&[blocks])
                .first()
                .copied()
                .unwrap_or(f64::NAN);
            let change_at = (node.change_at != u64::MAX).then_some(node.change_at);
            let result = SeedResult::new(o.seed + n, &w, reference, outcomes, change_at);
            print_seed(&result, o.verbose);
            seeds.push(result);
        }
        all.push((name, node, seeds));
    }
    let wrong = check_restores(&w, &kernels, &mut all);
    for (name, node, seeds) in &all {
        print_scenario(name, node.change_at != u64::MAX, seeds);
    }
    println!("\nrestores checked against a failure-free replay: {wrong} wrong");
    Ok(wrong == 0)
}

/// Replays the workload once and compares every restored and final state
/// with the true one; records the wrong ones in each result and returns
/// how many there were (regressions past a durable checkpoint included).
fn check_restores(
    w: &Workload,
    kernels: &[Kernel],
    all: &mut [(&str, NodeRate, Vec<SeedResult>)],
) -> usize {
    let steps: BTreeSet<u64> = all
        .iter()
        .flat_map(|(_, _, seeds)| seeds.iter())
        .flat_map(|s| s.outcomes.iter())
        .flat_map(|o| o.checks.iter().map(|&(step, _)| step))
        .collect();
    let truth = verify::true_digests(w, kernels, &steps);
    let mut wrong = 0;
    for seed in all.iter_mut().flat_map(|(_, _, seeds)| seeds.iter_mut()) {
        for (config, out) in CONFIGS.iter().zip(&seed.outcomes) {
            let bad: Vec<u64> = out
                .checks
                .iter()
                .filter(|&&(step, d)| truth.get(&step) != Some(&d))
                .map(|&(step, _)| step)
                .collect();
            if !bad.is_empty() || !out.regressions.is_empty() {
                println!(
                    "  WRONG RESTORE seed {} {}: states differ at steps {bad:?}; {}",
                    seed.seed,
                    config.name(),
                    out.regressions.join("; ")
                );
            }
            wrong += bad.len() + out.regressions.len();
        }
    }
    wrong
}
