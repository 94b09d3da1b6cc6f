//! One run: a workload under one mode, through every crash.

use crate::calibration::{Kernel, reference_blocks, reference_step_times};
use crate::clock::CpuClock;
use crate::crash::{Clock, Contention, CrashGate, failure_gaps};
use crate::state::Job;
use crate::workload::Workload;
use crate::{BoxError, MIB};
use ckpt::model::{Decision, Event, PlanEstimate, Policy};
use ckpt::{Checkpointer, FsStorage, Scheme};
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Mode {
    Static(Scheme),
    Adaptive,
}

impl Mode {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::Static(Scheme::Full) => "full",
            Mode::Static(Scheme::Incremental) => "incremental",
            Mode::Static(_) => "cow",
            Mode::Adaptive => "adaptive",
        }
    }
}

/// Everything one run needs.
pub(crate) struct RunSpec<'a> {
    pub(crate) workload: &'a Workload,
    pub(crate) kernels: &'a [Kernel],
    pub(crate) mode: Mode,
    pub(crate) interval: Duration,
    pub(crate) mtbf: Duration,
    pub(crate) seed: u64,
    pub(crate) root: &'a Path,
    pub(crate) verbose: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Wall time per phase.
    pub(crate) wall: Vec<Duration>,
    /// Useful work per phase (steps × reference step time).
    pub(crate) useful: Vec<f64>,
    pub(crate) failures: u32,
    pub(crate) restore: Duration,
    /// Time in step bodies, and steps run (recomputed ones included).
    pub(crate) step_time: Duration,
    pub(crate) steps_run: u64,
    pub(crate) reference: Vec<f64>,
    /// Reference blocks (step times with no checkpointer) measured before
    /// and after the run, per phase.
    pub(crate) blocks: Vec<Vec<f64>>,
    pub(crate) checkpoints: [u32; 3],
    pub(crate) applied: u32,
    pub(crate) explored: u32,
    /// Checkpoints committed under each base scheme, per phase.
    pub(crate) plan_share: Vec<[u32; 3]>,
    pub(crate) timeline: Vec<String>,
    pub(crate) final_plan: String,
    /// Changes of the base scheme the checkpoints are taken with, per
    /// phase (a trial's start and its end each count; so does a restart
    /// that resumes under another scheme than the crashed process's).
    pub(crate) switches: Vec<u32>,
    /// The base scheme of the plan in force when last seen.
    last_base: Option<usize>,
}

impl Outcome {
    /// Values the run's work at `reference` step times per phase.
    pub(crate) fn rebase(&mut self, w: &Workload, reference: &[f64]) {
        self.useful = w
            .phases
            .iter()
            .zip(reference)
            .map(|(p, t)| p.steps as f64 * t)
            .collect();
        self.reference = reference.to_vec();
    }

    pub(crate) fn goodput(&self) -> f64 {
        self.useful.iter().sum::<f64>() / self.wall.iter().sum::<Duration>().as_secs_f64()
    }

    pub(crate) fn phase_goodput(&self, phase: usize) -> f64 {
        let useful = self.useful.get(phase).copied().unwrap_or(0.0);
        let wall = self.wall.get(phase).map_or(0.0, Duration::as_secs_f64);
        useful / wall
    }
}

fn scheme_index(s: Scheme) -> usize {
    match s {
        Scheme::Full => 0,
        Scheme::Incremental => 1,
        _ => 2,
    }
}

fn builder(spec: &RunSpec<'_>, storage: CrashGate) -> ckpt::CheckpointerBuilder {
    let b = Checkpointer::builder()
        .storage(storage)
        .compression_level(0)
        .keep_last(2)
        .every(spec.interval)
        .mtbf(spec.mtbf);
    match spec.mode {
        Mode::Static(scheme) => b.scheme(scheme),
        Mode::Adaptive => b.scheme(Scheme::Full).policy(Policy::adaptive()),
    }
}

enum Life {
    Done,
    Crashed,
}

/// Runs the workload to its last step through as many crashes as the
/// failure gaps bring.
pub(crate) fn run(spec: &RunSpec<'_>) -> Result<Outcome, BoxError> {
    let w = spec.workload;
    let dir = tempfile::tempdir_in(spec.root)?;
    let storage = Arc::new(FsStorage::open(dir.path())?);
    let cpu = CpuClock::for_this_thread();
    let before = reference_blocks(w, spec.kernels, &cpu);
    let mut out = Outcome {
        plan_share: vec![[0; 3]; w.phases.len()],
        switches: vec![0; w.phases.len()],
        ..Outcome::default()
    };
    let mut clock = Clock::new(cpu.clone(), w.phases.len());
    let mut gaps = failure_gaps(spec.mtbf, spec.seed);
    let started = Instant::now();
    let mut initial = Some(Job::new(w.state_bytes));
    loop {
        let gap = gaps.next().unwrap_or(Duration::MAX);
        clock.start_life(gap);
        let gate = CrashGate {
            inner: storage.clone(),
            clock: cpu.clone(),
            crash_at: clock.deadline(),
            slowdown: w.slowdown,
            contention: Contention::default(),
        };
        match life(spec, gate, &mut clock, &mut out, &mut initial, started)? {
            Life::Done => break,
            Life::Crashed => {
                out.failures += 1;
                if spec.verbose || spec.mode == Mode::Adaptive {
                    out.timeline.push(format!(
                        "{:>6.2}s crash (wall so far {:.2}s)",
                        started.elapsed().as_secs_f64(),
                        clock.total().as_secs_f64()
                    ));
                }
            }
        }
    }
    out.wall = clock.per_phase;
    drop(storage);
    drop(dir);
    out.blocks = before;
    for (phase, more) in out
        .blocks
        .iter_mut()
        .zip(reference_blocks(w, spec.kernels, &cpu))
    {
        phase.extend(more);
    }
    out.rebase(w, &reference_step_times(&out.blocks));
    Ok(out)
}

/// One process: open, restore (or start), step until done or dead.
fn life(
    spec: &RunSpec<'_>,
    gate: CrashGate,
    clock: &mut Clock,
    out: &mut Outcome,
    initial: &mut Option<Job>,
    started: Instant,
) -> Result<Life, BoxError> {
    let w = spec.workload;
    let total = w.total_steps();
    macro_rules! or_crash {
        ($e:expr, $phase:expr) => {
            match $e {
                Ok(v) => v,
                Err(_) if clock.crashed() => {
                    clock.charge($phase);
                    return Ok(Life::Crashed);
                }
                Err(e) => return Err(e.into()),
            }
        };
    }
    let restore_started = Instant::now();
    // Events from the start on: the first trial is decided while building.
    let (sender, events) = channel();
    let listener = move |e: &Event| {
        let _ = sender.send(e.clone());
    };
    let mut ck = or_crash!(builder(spec, gate).on_event(listener).build(), clock.phase);
    let restored = or_crash!(ck.restore_latest::<Job>(), clock.phase);
    let mut job = match restored {
        Some(r) => {
            out.restore += restore_started.elapsed();
            r.state
        }
        None => match initial.take() {
            Some(job) => job,
            None => Job::new(w.state_bytes),
        },
    };
    let mut phase = w.phase_of(job.meta.step);
    clock.charge(phase);
    if clock.crashed() {
        return Ok(Life::Crashed);
    }
    let configured = match spec.mode {
        Mode::Static(scheme) => scheme,
        Mode::Adaptive => Scheme::Full,
    };
    let mut in_force = ck
        .advisor()
        .in_force()
        .unwrap_or((ckpt::model::Plan::only(configured), spec.interval));
    let mut last_plan = ck.plan();
    count_switch(out, phase, last_plan.base());
    if spec.mode == Mode::Adaptive && spec.verbose {
        out.timeline.push(format!(
            "{:>6.2}s start at step {} with {last_plan}",
            started.elapsed().as_secs_f64(),
            job.meta.step
        ));
    }
    while job.meta.step < total {
        phase = w.phase_of(job.meta.step);
        let kernel = spec.kernels.get(phase).copied().ok_or("no kernel")?;
        let step = job.meta.step;
        let body = &mut out.step_time;
        let cpu = &clock.clock;
        or_crash!(
            ck.scope(step, &mut job, |j| {
                let t = cpu.now();
                j.advance(&kernel);
                *body += cpu.now().saturating_sub(t);
            }),
            phase
        );
        out.steps_run += 1;
        clock.charge(phase);
        if clock.crashed() {
            return Ok(Life::Crashed);
        }
        note_commit(spec, &ck, &events, out, phase, &mut in_force, started);
        note_plan(spec, &ck, out, &mut last_plan, started);
        count_switch(out, phase, last_plan.base());
    }
    or_crash!(ck.flush(), phase);
    note_commit(spec, &ck, &events, out, phase, &mut in_force, started);
    out.final_plan = ck.plan().to_string();
    or_crash!(ck.finish(), phase);
    clock.charge(phase);
    if clock.crashed() {
        return Ok(Life::Crashed);
    }
    Ok(Life::Done)
}

/// Counts a change of the base scheme in `phase`.
fn count_switch(out: &mut Outcome, phase: usize, base: Scheme) {
    let now = scheme_index(base);
    if out.last_base.is_some_and(|was| was != now)
        && let Some(n) = out.switches.get_mut(phase)
    {
        *n += 1;
    }
    out.last_base = Some(now);
}

/// Logs a change of the adaptive run's plan (a switch, or a trial's start
/// or end).
fn note_plan(
    spec: &RunSpec<'_>,
    ck: &Checkpointer,
    out: &mut Outcome,
    last_plan: &mut ckpt::model::Plan,
    started: Instant,
) {
    if spec.mode == Mode::Adaptive && ck.plan() != *last_plan {
        *last_plan = ck.plan();
        out.timeline.push(format!(
            "{:>6.2}s plan is now {last_plan}",
            started.elapsed().as_secs_f64()
        ));
    }
}

/// Counts the commits since the last call and, for the adaptive run, logs
/// what the policy decided (from the event stream, which reports every
/// decision even when one call commits two checkpoints).
fn note_commit(
    spec: &RunSpec<'_>,
    ck: &Checkpointer,
    events: &Receiver<Event>,
    out: &mut Outcome,
    phase: usize,
    in_force: &mut (ckpt::model::Plan, Duration),
    started: Instant,
) {
    let t = started.elapsed().as_secs_f64();
    for event in events.try_iter() {
        match event {
            Event::Checkpoint(c) => {
                if let Some(n) = out.checkpoints.get_mut(scheme_index(c.scheme)) {
                    *n += 1;
                }
                if let Some(n) = out
                    .plan_share
                    .get_mut(phase)
                    .and_then(|share| share.get_mut(scheme_index(ck.plan().base())))
                {
                    *n += 1;
                }
                if spec.mode == Mode::Adaptive && spec.verbose {
                    log_checkpoint(ck, &c, out, *in_force, t);
                }
            }
            Event::Decision(d) if spec.mode == Mode::Adaptive => {
                let step = d.step.map_or("start".to_owned(), |s| s.to_string());
                match d.decision {
                    Decision::Apply(rec) => {
                        out.applied += 1;
                        *in_force = (rec.plan(), rec.interval().every);
                        out.timeline
                            .push(format!("{t:>6.2}s step {step:>6} apply: {rec}"));
                    }
                    Decision::Explore {
                        scheme,
                        checkpoints,
                        interval,
                        reason,
                        ..
                    } => {
                        out.explored += 1;
                        out.timeline.push(format!(
                            "{t:>6.2}s step {step:>6} explore {scheme:?} for {checkpoints} every {:.2} s: {reason}",
                            interval.as_secs_f64()
                        ));
                    }
                    other => out
                        .timeline
                        .push(format!("{t:>6.2}s step {step:>6} {other:?}")),
                }
            }
            _ => {}
        }
    }
}

/// One checkpoint of the adaptive run and the model's view after it: the
/// cheapest plans at their best intervals, and the recommendations made
/// against the plan and interval in force.
fn log_checkpoint(
    ck: &Checkpointer,
    c: &ckpt::model::CheckpointEvent,
    out: &mut Outcome,
    (plan, every): (ckpt::model::Plan, Duration),
    t: f64,
) {
    let stall = c.stall.as_secs_f64() * 1e3;
    let persist = c.persist.as_secs_f64() * 1e3;
    let dirty = c.dirty_bytes as f64 / c.logical_bytes.max(1) as f64;
    out.timeline.push(format!(
        "{t:>6.2}s step {:>6} {:?} stall {stall:.1} ms persist {persist:.1} ms dirty {:.1} % wrote {:.1} MiB, plan {plan} every {:.2} s",
        c.step,
        c.scheme,
        dirty * 100.0,
        c.bytes_written as f64 / MIB as f64,
        every.as_secs_f64()
    ));
    // The steps of the interval beside a persist and beside none (what
    // the model's interference estimate learns from).
    let per_step = |n: u64, t: Duration| (n > 0).then(|| t.as_secs_f64() * 1e3 / n as f64);
    let beside = per_step(c.steps_beside_persist, c.compute_beside_persist);
    let idle_steps = c.steps.saturating_sub(c.steps_beside_persist);
    let idle = per_step(
        idle_steps,
        c.compute.saturating_sub(c.compute_beside_persist),
    );
    let ms = |x: Option<f64>| x.map_or("-".to_owned(), |x| format!("{x:.1} ms"));
    out.timeline.push(format!(
        "          steps beside a persist {} at {}, beside none {} at {}",
        c.steps_beside_persist,
        ms(beside),
        idle_steps,
        ms(idle)
    ));
    let Some(eval) = ck.advisor().evaluate(plan, every) else {
        return;
    };
    for e in eval.candidates.iter().take(3).chain([&eval.current_tuned]) {
        out.timeline.push(format!("          {}", estimate_line(e)));
    }
    // The cheapest plan of every other scheme too (a trial runs at its
    // scheme's best interval, which the three cheapest may not show).
    let shown: Vec<_> = eval
        .candidates
        .iter()
        .take(3)
        .map(|e| e.plan.base())
        .collect();
    for scheme in [Scheme::Full, Scheme::Incremental, Scheme::CopyOnWrite] {
        let other = eval.candidates.iter().find(|e| e.plan.base() == scheme);
        if let Some(e) = other.filter(|_| !shown.contains(&scheme)) {
            out.timeline
                .push(format!("          also {}", estimate_line(e)));
        }
    }
    if eval.change_pending {
        out.timeline
            .push("          a change of the workload is pending".to_owned());
    }
    for r in &eval.recommendations {
        out.timeline.push(format!("          rec: {r}"));
    }
}

/// One plan's estimate on one line (the verbose timelines, the `--tiers`
/// trace).
pub(crate) fn estimate_line(e: &PlanEstimate) -> String {
    format!(
        "{:<40} every {:>7.4}s overhead {:.3} ± {:.3} ({:?}) stall {:.2} ms persist {:.1} ms restart {:.1} ms dirty {:.1} MiB",
        e.plan.to_string(),
        e.interval.as_secs_f64(),
        e.overhead,
        e.std_error,
        e.basis,
        e.stall.as_secs_f64() * 1e3,
        e.persist.as_secs_f64() * 1e3,
        e.restart.as_secs_f64() * 1e3,
        e.dirty_bytes / MIB as f64,
    )
}
