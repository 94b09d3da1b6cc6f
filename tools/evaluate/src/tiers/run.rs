//! One run of the multi-level evaluation: a configuration of tiers under
//! process and node failures, through every crash, with every restore
//! recorded for checking.

use super::trace::Trace;
use super::verify::digest;
use crate::BoxError;
use crate::calibration::{Kernel, reference_blocks};
use crate::clock::CpuClock;
use crate::crash::{Clock, Contention, CrashGate, Deadline, failure_gaps};
use crate::state::Job;
use crate::workload::Workload;
use ckpt::model::{Decision, Event, ModelConfig, Policy};
use ckpt::{Checkpointer, CheckpointerBuilder, DrainEvent, FsStorage, Scheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

/// Mixed into a seed for its node-failure stream.
const NODE_SALT: u64 = 0x4E4F_4445;

/// Which tiers a run checkpoints to, and how it drains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Config {
    /// One tier: the slow store.
    RemoteOnly,
    /// One tier: the local store (lost with the node).
    LocalOnly,
    /// Local and remote, every k-th checkpoint drained.
    Static(u32),
    /// Local and remote, `Policy::adaptive()` started at k = 1.
    Adaptive,
}

impl Config {
    pub(crate) fn name(self) -> String {
        match self {
            Config::RemoteOnly => "remote-only".to_owned(),
            Config::LocalOnly => "local-only".to_owned(),
            Config::Static(k) => format!("k={k}"),
            Config::Adaptive => "adaptive".to_owned(),
        }
    }

    fn has_local(self) -> bool {
        self != Config::RemoteOnly
    }

    fn has_remote(self) -> bool {
        self != Config::LocalOnly
    }
}

/// A failure class: a process crash (the node's disk survives) or a lost
/// node (its local tier is wiped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Process = 0,
    Node = 1,
}

/// Where a restart's state came from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source {
    Local = 0,
    Remote = 1,
    Scratch = 2,
}

/// The node-failure rate: MTBF `before` until the job first reaches step
/// `change_at`, `after` from then on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NodeRate {
    pub(crate) before: Duration,
    pub(crate) after: Duration,
    pub(crate) change_at: u64,
}

/// Everything one run needs.
pub(crate) struct TierSpec<'a> {
    pub(crate) workload: &'a Workload,
    pub(crate) kernels: &'a [Kernel],
    pub(crate) config: Config,
    /// The checkpoint interval (compute time) the run starts with.
    pub(crate) interval: Duration,
    /// Process MTBF.
    pub(crate) mtbf: Duration,
    pub(crate) node: NodeRate,
    pub(crate) seed: u64,
    pub(crate) root: &'a Path,
    pub(crate) remote_slowdown: f64,
    /// How much longer a step takes while a transfer to the remote runs
    /// beside it ([`Contention`]).
    pub(crate) drain_contention: f64,
    /// Counted time after which the run is cut short (a configuration
    /// that cannot finish: local-only, whose every node failure restarts
    /// it from scratch, once nodes fail every `2·M`).
    pub(crate) cap: Duration,
}

#[derive(Debug, Default)]
pub(crate) struct TierOutcome {
    /// Counted time of the whole run.
    pub(crate) wall: Duration,
    /// Reference blocks (step times, no checkpointer) before and after.
    pub(crate) blocks: Vec<Vec<f64>>,
    /// Failures by class (process, node).
    pub(crate) failures: [u32; 2],
    /// Restarts by failure class and by source (local, remote, scratch).
    pub(crate) restores: [[u32; 3]; 2],
    pub(crate) restore_time: Duration,
    /// `(meta.step, digest)` of every restored state, then of the final one.
    pub(crate) checks: Vec<(u64, u64)>,
    /// Restores that went back past a checkpoint known to be durable.
    pub(crate) regressions: Vec<String>,
    /// The drain ratio in force over time: (counted seconds, k).
    pub(crate) k_timeline: Vec<(f64, u32)>,
    /// The changes the policy applied, at counted seconds, as it gave
    /// them (with `--verbose`).
    pub(crate) decisions: Vec<String>,
    /// Counted seconds at which the node-failure rate changed, if it did.
    pub(crate) rate_changed_at: Option<f64>,
    /// Counted seconds of every node failure.
    pub(crate) node_failures_at: Vec<f64>,
    pub(crate) checkpoints: u32,
    pub(crate) drains: u32,
    /// The job's step when last seen.
    pub(crate) last_step: u64,
    /// When the run was cut at the cap: the step it had reached.
    pub(crate) cut: Option<u64>,
    /// The model's price of the run's own plan at its interval, from what
    /// its checkpointer learnt over the whole run (runs that finished; the
    /// adaptive one at the plan and interval it ended on).
    pub(crate) priced: Option<Priced>,
}

/// What the cost model, fed one run's events and restarts, prices that
/// run's plan at: the calibration check of `--tiers`. A static run keeps
/// one plan and one interval, so its measured overhead (counted time over
/// the work, less one) is what the model should have predicted for it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Priced {
    /// The interval priced (compute time).
    pub(crate) interval: f64,
    /// Overhead over the work (wall/work − 1) and its standard error.
    pub(crate) overhead: f64,
    pub(crate) std_error: f64,
    /// Per checkpoint: the stall, and the time until durable.
    pub(crate) stall: f64,
    pub(crate) persist: f64,
    /// Per failure: the restart (restore, relaunch, and the lag of the
    /// checkpoint in flight).
    pub(crate) restart: f64,
    /// The MTBF of both failure classes together, as the model estimates
    /// it (`Evaluation::mtbf_secs`), whatever the tiers.
    pub(crate) mtbf: f64,
}

impl Priced {
    /// The model's price of `ck`'s plan at `interval`, if it has one.
    fn of(ck: &Checkpointer, interval: Duration) -> Option<Self> {
        let e = ck.advisor().evaluate(ck.plan(), interval)?;
        let c = e.current;
        Some(Priced {
            interval: interval.as_secs_f64(),
            overhead: c.overhead,
            std_error: c.std_error,
            stall: c.stall.as_secs_f64(),
            persist: c.persist.as_secs_f64(),
            restart: c.restart.as_secs_f64(),
            mtbf: e.mtbf_secs,
        })
    }
}

impl TierOutcome {
    /// Goodput with `reference` seconds per step.
    /// Goodput with `reference` seconds per step (of the steps reached,
    /// for a run cut at the cap).
    pub(crate) fn goodput(&self, steps: u64, reference: f64) -> f64 {
        self.cut.unwrap_or(steps) as f64 * reference / self.wall.as_secs_f64()
    }

    fn note_k(&mut self, t: f64, k: Option<u32>) {
        if let Some(k) = k
            && self.k_timeline.last().is_none_or(|&(_, was)| was != k)
        {
            self.k_timeline.push((t, k));
        }
    }
}

/// The newest checkpoints known durable (labels as passed to `scope`):
/// a restore must not go back past them.
#[derive(Debug, Default)]
struct Known {
    local: Option<u64>,
    remote: Option<u64>,
}

/// The failures of a seed on the run's counted-time axis: process
/// failures at the running sums of exponential gaps (mean `M`), node
/// failures where the node hazard (counted time over the node MTBF in
/// force, integrated) reaches the running sums of unit exponential draws.
struct Failures<P, N> {
    process_gaps: P,
    node_units: N,
    /// Counted time of the next process failure.
    next_process: Duration,
    /// Hazard level of the next node failure.
    next_node: f64,
    /// Node hazard accumulated up to the end of the last process.
    hazard: f64,
}

impl<P: Iterator<Item = Duration>, N: Iterator<Item = Duration>> Failures<P, N> {
    fn new(mut process_gaps: P, mut node_units: N) -> Self {
        let next_process = process_gaps.next().unwrap_or(Duration::MAX);
        let next_node = node_units.next().map_or(f64::MAX, |u| u.as_secs_f64());
        Failures {
            process_gaps,
            node_units,
            next_process,
            next_node,
            hazard: 0.0,
        }
    }

    /// The fate of a process starting at clock instant `start`, counted
    /// time `counted`, with node MTBF `rate`.
    fn fate(&self, start: Duration, counted: Duration, rate: Duration, changed: bool) -> Fate {
        let left = (self.next_node - self.hazard).clamp(0.0, 1e9);
        Fate {
            segment_start: start,
            hazard_start: self.hazard,
            rate,
            process_at: start.saturating_add(self.next_process.saturating_sub(counted)),
            node_at: start.saturating_add(rate.mul_f64(left)),
            changed,
        }
    }

    /// The process died of `class` with the node hazard at `hazard`:
    /// the next failure of that class is drawn.
    fn crashed(&mut self, class: Class, hazard: f64) {
        self.hazard = hazard;
        match class {
            Class::Process => {
                let gap = self.process_gaps.next().unwrap_or(Duration::MAX);
                self.next_process = self.next_process.saturating_add(gap);
            }
            Class::Node => {
                self.next_node += self.node_units.next().map_or(f64::MAX, |u| u.as_secs_f64());
            }
        }
    }
}

/// When the current process dies, and of what (instants on its clock).
struct Fate {
    /// Since when the node hazard accrues at `rate`.
    segment_start: Duration,
    /// The node hazard at `segment_start`.
    hazard_start: f64,
    /// The node MTBF in force.
    rate: Duration,
    process_at: Duration,
    node_at: Duration,
    /// False until the node rate has changed for this process.
    changed: bool,
}

impl Fate {
    fn crash_at(&self) -> Duration {
        self.process_at.min(self.node_at)
    }

    fn class(&self) -> Class {
        if self.node_at <= self.process_at {
            Class::Node
        } else {
            Class::Process
        }
    }

    /// The node hazard at clock instant `at`.
    fn hazard_at(&self, at: Duration) -> f64 {
        self.hazard_start
            + at.saturating_sub(self.segment_start).as_secs_f64() / self.rate.as_secs_f64()
    }

    /// How the process ended: crashed at its crash instant.
    fn crashed(&self) -> Life {
        Life::Crashed(self.class(), self.hazard_at(self.crash_at()))
    }

    fn apply(&self, clock: &mut Clock) {
        clock.set_crash_at(self.crash_at());
    }

    /// The job has just reached the step where the node rate changes: the
    /// hazard left before the next node failure runs out at the new rate.
    fn change_rate(&mut self, clock: &mut Clock, rate: NodeRate) {
        let now = clock.clock.now();
        let left = self.hazard_at(self.node_at) - self.hazard_at(now);
        self.hazard_start = self.hazard_at(now);
        self.segment_start = now;
        self.rate = rate.after;
        self.node_at = now.saturating_add(rate.after.mul_f64(left.clamp(0.0, 1e9)));
        self.changed = true;
        self.apply(clock);
    }

    /// Leaves the time since `from` out of the count (see
    /// [`Clock::exclude_since`]); every instant moves on by as much.
    fn exclude_since(&mut self, clock: &mut Clock, from: Duration) {
        let before = clock.crash_at();
        let spent = clock.exclude_since(from).saturating_sub(before);
        self.segment_start = self.segment_start.saturating_add(spent);
        self.process_at = self.process_at.saturating_add(spent);
        self.node_at = self.node_at.saturating_add(spent);
    }
}

/// The stores of a run and where the local one lives.
struct Stores {
    local_path: PathBuf,
    local: Option<Arc<FsStorage>>,
    remote: Option<Arc<FsStorage>>,
}

impl Stores {
    /// A lost node: the local tier's directory is wiped, and a new
    /// (empty) one takes its place.
    fn wipe_local(&mut self) -> Result<(), BoxError> {
        if self.local.take().is_some() {
            std::fs::remove_dir_all(&self.local_path)?;
            self.local = Some(Arc::new(FsStorage::open(&self.local_path)?));
        }
        Ok(())
    }
}

/// What one process needs beside the spec.
struct Process<'a> {
    clock: &'a mut Clock,
    out: &'a mut TierOutcome,
    fate: Fate,
    known: &'a mut Known,
    /// The class of the failure this process restarts after.
    after: Option<Class>,
    furthest: &'a mut u64,
}

enum Life {
    Done,
    /// Cut at the cap.
    Cut,
    /// Of this class, with the node hazard at the crash.
    Crashed(Class, f64),
}

/// Runs the workload to its last step through every failure.
pub(crate) fn run(spec: &TierSpec<'_>) -> Result<TierOutcome, BoxError> {
    let w = spec.workload;
    let dir = tempfile::tempdir_in(spec.root)?;
    let local_path = dir.path().join("local");
    let mut stores = Stores {
        local: match spec.config.has_local() {
            true => Some(Arc::new(FsStorage::open(&local_path)?)),
            false => None,
        },
        remote: match spec.config.has_remote() {
            true => Some(Arc::new(FsStorage::open(dir.path().join("remote"))?)),
            false => None,
        },
        local_path,
    };
    let cpu = CpuClock::for_this_thread();
    let mut out = TierOutcome {
        blocks: reference_blocks(w, spec.kernels, &cpu),
        ..TierOutcome::default()
    };
    let mut clock = Clock::new(cpu.clone(), 1);
    let mut failures = Failures::new(
        failure_gaps(spec.mtbf, spec.seed),
        failure_gaps(Duration::from_secs(1), spec.seed ^ NODE_SALT),
    );
    let mut known = Known::default();
    let mut furthest = 0;
    let mut after = None;
    let mut initial = Some(Job::new(w.state_bytes));
    loop {
        let counted = clock.total();
        if counted >= spec.cap {
            out.cut = Some(out.last_step);
            break;
        }
        let start = clock.start_life(Duration::ZERO);
        let changed = furthest >= spec.node.change_at;
        let rate = if changed {
            spec.node.after
        } else {
            spec.node.before
        };
        let fate = failures.fate(start, counted, rate, changed);
        fate.apply(&mut clock);
        let process = Process {
            clock: &mut clock,
            out: &mut out,
            fate,
            known: &mut known,
            after,
            furthest: &mut furthest,
        };
        match life(spec, &stores, process, &mut initial)? {
            Life::Done => break,
            Life::Cut => {
                out.cut = Some(out.last_step);
                break;
            }
            Life::Crashed(class, hazard) => {
                failures.crashed(class, hazard);
                out.failures[class as usize] += 1;
                after = Some(class);
                if class == Class::Node {
                    out.node_failures_at.push(clock.total().as_secs_f64());
                    stores.wipe_local()?;
                    known.local = None;
                }
            }
        }
    }
    out.wall = clock.total();
    drop(stores);
    drop(dir);
    for (phase, more) in out
        .blocks
        .iter_mut()
        .zip(reference_blocks(w, spec.kernels, &cpu))
    {
        phase.extend(more);
    }
    Ok(out)
}

fn gate(
    store: &Arc<FsStorage>,
    cpu: &CpuClock,
    deadline: &Deadline,
    slowdown: f64,
    contention: Contention,
) -> CrashGate {
    CrashGate {
        inner: Arc::clone(store),
        clock: cpu.clone(),
        crash_at: deadline.clone(),
        slowdown,
        contention,
    }
}

fn builder(
    spec: &TierSpec<'_>,
    stores: &Stores,
    p: &Process<'_>,
    contention: &Contention,
) -> Result<CheckpointerBuilder, BoxError> {
    let cpu = &p.clock.clock;
    let deadline = &p.clock.deadline();
    let local = stores
        .local
        .as_ref()
        .map(|s| gate(s, cpu, deadline, 1.0, Contention::default()));
    let remote = stores
        .remote
        .as_ref()
        .map(|s| gate(s, cpu, deadline, spec.remote_slowdown, contention.clone()));
    let b = Checkpointer::builder()
        .compression_level(0)
        .keep_last(2)
        .scheme(Scheme::CopyOnWrite)
        .every(spec.interval);
    let b = match (local, remote, spec.config) {
        (Some(local), Some(remote), Config::Static(k)) => {
            b.tier("local", local).tier("remote", remote).drain_every(k)
        }
        (Some(local), Some(remote), _) => {
            b.tier("local", local).tier("remote", remote).drain_every(1)
        }
        (Some(one), None, _) | (None, Some(one), _) => b.storage(one),
        (None, None, _) => return Err("a configuration without a store".into()),
    };
    Ok(match spec.config {
        Config::Adaptive => {
            let mut model = ModelConfig::with_mtbf(spec.mtbf);
            model.node_mtbf = Some(spec.node.before);
            b.model(model).policy(Policy::adaptive())
        }
        _ => b.mtbf(spec.mtbf),
    })
}

/// One process: open, restore (or start), step until done or dead.
fn life(
    spec: &TierSpec<'_>,
    stores: &Stores,
    mut p: Process<'_>,
    initial: &mut Option<Job>,
) -> Result<Life, BoxError> {
    let w = spec.workload;
    let total = w.total_steps();
    macro_rules! or_crash {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(_) if p.clock.crashed() => {
                    p.clock.charge(0);
                    return Ok(p.fate.crashed());
                }
                Err(e) => return Err(e.into()),
            }
        };
    }
    macro_rules! alive {
        () => {
            p.clock.charge(0);
            if p.clock.crashed() {
                return Ok(p.fate.crashed());
            }
        };
    }
    let (sender, events) = channel();
    let (decided, decisions) = channel();
    let trace = Trace::from_env(spec.config == Config::Adaptive);
    let listener = move |e: &Event| match e {
        Event::Checkpoint(c) if c.tier == 0 => {
            trace.checkpoint(c);
            let _ = sender.send(c.step);
        }
        Event::Checkpoint(c) => trace.drain(c),
        Event::Restart(r) => trace.restart(r),
        Event::Decision(d) => {
            if let Decision::Apply(rec) = &d.decision {
                let _ = decided.send(rec.to_string());
            }
        }
        _ => {}
    };
    let restore_started = Instant::now();
    let contention = Contention::new(spec.drain_contention);
    let mut ck = or_crash!(
        builder(spec, stores, &p, &contention)?
            .on_event(listener)
            .build()
    );
    let drains = ck.subscribe_drains();
    let restored = or_crash!(ck.restore_latest::<Job>());
    let mut job = match (restored, p.after) {
        (Some(r), after) => {
            p.out.restore_time += restore_started.elapsed();
            let source = match &r.tier {
                Some(t) if t.index > 0 => Source::Remote,
                Some(_) => Source::Local,
                None if spec.config == Config::RemoteOnly => Source::Remote,
                None => Source::Local,
            };
            restarted(&mut p, after, source, Some(r.step));
            let hashing = p.clock.clock.now();
            p.out.checks.push((r.state.meta.step, digest(&r.state)));
            p.fate.exclude_since(p.clock, hashing);
            r.state
        }
        (None, after) => {
            restarted(&mut p, after, Source::Scratch, None);
            initial.take().unwrap_or_else(|| Job::new(w.state_bytes))
        }
    };
    alive!();
    p.out.last_step = job.meta.step;
    let first_tier_is_remote = spec.config == Config::RemoteOnly;
    p.out
        .note_k(p.clock.total().as_secs_f64(), ck.drain_every());
    while job.meta.step < total {
        let kernel = spec
            .kernels
            .get(w.phase_of(job.meta.step))
            .copied()
            .ok_or("no kernel")?;
        let step = job.meta.step;
        or_crash!(ck.scope(step, &mut job, |j| contention.step(|| j.advance(&kernel))));
        alive!();
        p.out.last_step = job.meta.step;
        if p.clock.total() >= spec.cap {
            return Ok(Life::Cut);
        }
        for step in events.try_iter() {
            trace.committed(&ck, p.clock.total().as_secs_f64());
            p.out.checkpoints += 1;
            let known = match first_tier_is_remote {
                true => &mut p.known.remote,
                false => &mut p.known.local,
            };
            *known = (*known).max(Some(step));
        }
        for decision in decisions.try_iter() {
            trace.applied(&ck, &decision, p.clock.total().as_secs_f64());
            p.out.decisions.push(format!(
                "{:>6.2}s {decision}",
                p.clock.total().as_secs_f64()
            ));
        }
        for event in drains.try_iter() {
            if let DrainEvent::Drained { step, .. } = event {
                p.out.drains += 1;
                p.known.remote = p.known.remote.max(Some(step));
            }
        }
        p.out
            .note_k(p.clock.total().as_secs_f64(), ck.drain_every());
        *p.furthest = (*p.furthest).max(job.meta.step);
        if !p.fate.changed && *p.furthest >= spec.node.change_at {
            p.fate.change_rate(p.clock, spec.node);
            p.out.rate_changed_at = Some(p.clock.total().as_secs_f64());
        }
    }
    or_crash!(ck.flush());
    // The adaptive run is priced at the plan and interval it ended on.
    let interval = match spec.config {
        Config::Adaptive => ck
            .advisor()
            .in_force()
            .map_or(spec.interval, |(_, every)| every),
        _ => spec.interval,
    };
    p.out.priced = Priced::of(&ck, interval);
    or_crash!(ck.finish());
    alive!();
    p.out.checks.push((job.meta.step, digest(&job)));
    Ok(Life::Done)
}

/// Counts a restart after a failure of class `after` from `source`, and
/// flags one that went back past a checkpoint known durable for that
/// class (a node failure leaves only the remote's).
fn restarted(p: &mut Process<'_>, after: Option<Class>, source: Source, step: Option<u64>) {
    let Some(class) = after else {
        return;
    };
    p.out.restores[class as usize][source as usize] += 1;
    let expected = match class {
        Class::Process => p.known.local.max(p.known.remote),
        Class::Node => p.known.remote,
    };
    if let Some(expected) = expected
        && step.is_none_or(|s| s < expected)
    {
        p.out.regressions.push(format!(
            "after a {class:?} failure restored {} but step {expected} was durable",
            step.map_or("nothing".to_owned(), |s| format!("step {s}")),
        ));
    }
}
