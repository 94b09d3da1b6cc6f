//! [`CostModel`]: what it holds, how it learns from [`Event`]s, and its
//! read-outs (failure rate, MTBF, step time, classic intervals). Pricing
//! and evaluation live in the sibling modules.

use super::change::{ChangePoints, GROSS_STEP};
use super::config::ModelConfig;
use super::learned::{Learned, RunningMean, SchemeRecord};
use crate::model::cost::{daly_interval, young_interval};
use crate::model::event::{CheckpointEvent, Event, EventSummary, RestoreEvent};
use crate::model::failure::{FailureClass, FailureCounts, RateEstimate};
use crate::model::fit::{Driver, LinearFit};
use crate::scheme::Scheme;
use std::time::Duration;

/// Mean time of the steps in the interval `e` closes that ran beside no
/// background persist and no drain (`None` if there were none).
pub(super) fn idle_step_secs(e: &CheckpointEvent) -> Option<f64> {
    let idle = e
        .steps
        .checked_sub(e.steps_beside_persist)?
        .checked_sub(e.steps_beside_drain)?
        .checked_sub(e.steps_beside_both)?;
    let idle_time = e.compute.as_secs_f64()
        - e.compute_beside_persist.as_secs_f64()
        - e.compute_beside_drain.as_secs_f64()
        - e.compute_beside_both.as_secs_f64();
    (idle > 0 && idle_time > 0.0).then(|| idle_time / idle as f64)
}

/// Largest slowdown of the steps beside a persist the model believes: a
/// persist that takes every core from a computation that wants them all
/// (its writer threads, page copies, memory bandwidth) can triple a step.
pub(super) const MAX_INTERFERENCE: f64 = 3.0;

/// True unless the idle steps of an interval (`idle`) ran at a very
/// different speed from the recent ones (`recent`): then the workload
/// changed within the interval, and its steps beside a persist and beside
/// none come from two regimes (a phase of 200 ms steps, then one of 4 ms
/// steps, read as a persist slowing steps fifty-fold), so the interval
/// says nothing about interference. Twice as fast or slow is the limit
/// ([`GROSS_STEP`]), where two such intervals in a row are a change of
/// the workload.
pub(super) fn steady_steps(idle: Option<f64>, recent: Option<f64>) -> bool {
    match (idle, recent) {
        (Some(idle), Some(recent)) if idle > 0.0 && recent > 0.0 => {
            (idle / recent).ln().abs() <= GROSS_STEP
        }
        _ => true,
    }
}

/// How much slower the steps that ran beside a background persist in the
/// interval `e` closes were than `per_idle`, the time of a step beside
/// none: those of the same interval ([`idle_step_secs`]) or, when every
/// step ran beside one (persists back to back, where interference matters
/// most), the recent mean of such steps. `None` without both.
///
/// Returned as the log of the ratio of step times, clamped to
/// ±ln(1 + [`MAX_INTERFERENCE`]): the model averages these and prices
/// `exp(mean) − 1`, a geometric mean. Step times are disturbed
/// multiplicatively (another process's burst makes one interval's steps
/// twice as slow as easily as half), so an arithmetic mean of ratios
/// would drift up on noise alone.
pub(super) fn slowdown(e: &CheckpointEvent, per_idle: Option<f64>) -> Option<f64> {
    log_slowdown(
        e.steps_beside_persist.min(e.steps),
        e.compute_beside_persist.as_secs_f64(),
        per_idle,
    )
}

/// [`slowdown`] of the steps that ran beside a drain to a lower tier.
pub(super) fn drain_slowdown(e: &CheckpointEvent, per_idle: Option<f64>) -> Option<f64> {
    log_slowdown(
        e.steps_beside_drain.min(e.steps),
        e.compute_beside_drain.as_secs_f64(),
        per_idle,
    )
}

/// [`slowdown`] of the steps that ran beside both a persist and a drain.
pub(super) fn both_slowdown(e: &CheckpointEvent, per_idle: Option<f64>) -> Option<f64> {
    log_slowdown(
        e.steps_beside_both.min(e.steps),
        e.compute_beside_both.as_secs_f64(),
        per_idle,
    )
}

/// One interval's sample of a log slowdown, from the steps beside that
/// activity alone (`alone`, over `n_alone` steps) and from the steps
/// beside it and the other activity (`both`, over `n_both` steps) less
/// the other's mean log slowdown `other`: step times multiply, so beside
/// both the logs add. The steps beside both count only once the other's
/// slowdown was measured (a sum of two unknowns tells neither); the two
/// parts are weighted by their steps.
pub(super) fn split_slowdown(
    alone: Option<f64>,
    n_alone: u64,
    both: Option<f64>,
    n_both: u64,
    other: Option<f64>,
) -> Option<f64> {
    let bound = MAX_INTERFERENCE.ln_1p();
    let from_both = both.zip(other).map(|(b, o)| (b - o).clamp(-bound, bound));
    match (alone, from_both) {
        (Some(a), Some(b)) => {
            let (wa, wb) = (n_alone as f64, n_both as f64);
            Some((wa * a + wb * b) / (wa + wb))
        }
        (a, b) => a.or(b),
    }
}

/// The clamped log of `busy_time / busy` steps over `per_idle`.
fn log_slowdown(busy: u64, busy_time: f64, per_idle: Option<f64>) -> Option<f64> {
    if busy == 0 || busy_time <= 0.0 {
        return None;
    }
    let per_idle = per_idle.filter(|t| *t > 0.0)?;
    let per_busy = busy_time / busy as f64;
    let bound = MAX_INTERFERENCE.ln_1p();
    Some((per_busy / per_idle).ln().clamp(-bound, bound))
}

/// The scheme whose costs `e` teaches: a full base stores the whole state,
/// so it is learnt as a full checkpoint, whichever plan took it.
fn learnt_as(e: &CheckpointEvent) -> Scheme {
    if e.full_base { Scheme::Full } else { e.scheme }
}

/// Bytes `e` stored, uncompressed: what write costs scale with (not what
/// changed: a full base stores everything however little changed;
/// increments store what changed).
fn stored_bytes(e: &CheckpointEvent) -> f64 {
    match e.bytes_written {
        0 => e.dirty_bytes as f64,
        written if e.compression_ratio > 0.0 => written as f64 * e.compression_ratio,
        written => written as f64,
    }
}

pub(super) fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::MAX)
}

/// The statistical cost model: feed it [`Event`]s, ask it to
/// [`evaluate`](CostModel::evaluate) the current plan.
#[derive(Debug, Clone)]
pub struct CostModel {
    pub(super) config: ModelConfig,
    pub(super) learned: Learned,
    /// Change-point detectors of the workload (not persisted).
    pub(super) changes: ChangePoints,
    /// Copy-on-write checkpoints that can be captured while an earlier
    /// one persists before a capture waits for room: the one persisting
    /// plus the queue's (not persisted: the checkpointer's configuration).
    pub(super) persist_queue: u32,
}

/// [`CostModel::persist_queue`] under the checkpointer's default
/// `max_in_flight` of one.
const DEFAULT_PERSIST_QUEUE: u32 = 2;

/// Two models are equal when they hold the same configuration and learned
/// the same; the change detectors are the run's transient state.
impl PartialEq for CostModel {
    fn eq(&self, other: &Self) -> bool {
        self.config == other.config && self.learned == other.learned
    }
}

impl CostModel {
    /// A model that has seen nothing yet.
    pub fn new(config: ModelConfig) -> Self {
        let learned = Learned {
            schemes: Vec::new(),
            pooled: LinearFit::new(config.forgetting),
            restore: LinearFit::new(config.forgetting),
            drain: LinearFit::new(config.forgetting),
            restore_lower: LinearFit::new(config.forgetting),
            logical: RunningMean::default(),
            dirty: RunningMean::default(),
            dirty_fraction: RunningMean::default(),
            dirty_interval: RunningMean::default(),
            ratio: RunningMean::default(),
            chain: RunningMean::default(),
            step_secs: RunningMean::default(),
            compute_secs: RunningMean::default(),
            interference: RunningMean::default(),
            drain_interference: RunningMean::default(),
            idle_step_secs: RunningMean::default(),
            warmup_step_secs: RunningMean::default(),
            failures: FailureClass::ALL
                .iter()
                .map(|c| (*c, FailureCounts::default()))
                .collect(),
            summary: EventSummary::default(),
        };
        CostModel {
            config,
            learned,
            changes: ChangePoints::default(),
            persist_queue: DEFAULT_PERSIST_QUEUE,
        }
    }

    /// What the model has learned, for persistence.
    pub(crate) fn learned(&self) -> &Learned {
        &self.learned
    }

    /// A model with `config` resuming from what was learned before.
    pub(crate) fn resume(config: ModelConfig, learned: Learned) -> Self {
        CostModel {
            config,
            learned,
            changes: ChangePoints::default(),
            persist_queue: DEFAULT_PERSIST_QUEUE,
        }
    }

    /// Tells the model how many copy-on-write checkpoints a checkpointer
    /// captures while an earlier one persists before a capture waits:
    /// its `max_in_flight` plus the one persisting.
    pub(crate) fn set_persist_queue(&mut self, captures: u32) {
        self.persist_queue = captures.max(1);
    }

    /// The same learned state under `config` (the change detectors start
    /// over, as on a resume).
    pub(crate) fn reconfigured(self, config: ModelConfig) -> Self {
        let queue = self.persist_queue;
        let mut model = Self::resume(config, self.learned);
        model.persist_queue = queue;
        model
    }

    /// Changes of the workload (step time, dirtying rate) or of what
    /// writing costs found so far in this run; after each, the model
    /// re-learned what changed from that checkpoint on.
    pub fn changes_detected(&self) -> u64 {
        self.changes.found
    }

    /// Whether the newest checkpoint's steps ran twice as fast or slow as
    /// before, or it found the state dirtied four times faster or slower:
    /// the first sign of a changed workload, which the next checkpoint
    /// confirms (and the model relearns from then) or not. Until then the
    /// model's means are the old workload's, and a decision taken on them
    /// (a retune for 229 ms single-core steps, applied on the first
    /// checkpoint of 12 ms all-core ones) would be undone one checkpoint
    /// later.
    pub fn change_pending(&self) -> bool {
        self.changes.pending()
    }

    /// Whether a checkpoint has measured how fast the state changes (see
    /// [`Evaluation::dirtiness_measured`](super::Evaluation::dirtiness_measured)).
    pub fn dirtiness_measured(&self) -> bool {
        self.learned.dirty_rate().is_some()
    }

    /// The configuration in force.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Running totals of the events seen.
    pub fn summary(&self) -> &EventSummary {
        &self.learned.summary
    }

    /// Learns from one event.
    pub fn observe(&mut self, event: &Event) {
        self.learned.summary.record(event);
        match event {
            Event::Checkpoint(e) => self.observe_checkpoint(e),
            Event::Restore(e) => self.observe_restore(e),
            Event::Restart(e) => {
                let unreported = e.unreported.map_or(0.0, |d| d.as_secs_f64());
                for (_, counts) in &mut self.learned.failures {
                    counts.expose(unreported);
                }
                let rate = self.mean_failure_rate(e.class);
                if let Some((_, counts)) = self
                    .learned
                    .failures
                    .iter_mut()
                    .find(|(c, _)| *c == e.class)
                {
                    counts.fail_and_test(rate);
                }
            }
            // Storage errors and failovers cost pauses that every plan pays
            // alike; they are summarised, and will drive the storage-tier
            // recommendation when tiers exist.
            Event::StorageError(_) | Event::Failover(_) => {}
            // The model's own output, not evidence.
            Event::Decision(_) => {}
            // A restore is learnt from once, when it completes.
            Event::RestoreProgress(_) => {}
        }
    }

    fn observe_checkpoint(&mut self, e: &CheckpointEvent) {
        let lambda = self.config.forgetting;
        if e.tier > 0 {
            // A drain to a lower tier: it says nothing about the first
            // tier's costs, and its time is not new work.
            self.learned.drain.observe(
                e.bytes_written as f64,
                e.logical_bytes as f64,
                e.persist.as_secs_f64(),
            );
            return;
        }
        self.relearn_what_changed(e);
        let l = &mut self.learned;
        let seen = l.summary.checkpoints;
        let (stall, persist) = (e.own_stall().as_secs_f64(), e.own_persist().as_secs_f64());
        let (dirty, logical) = (e.dirty_bytes as f64, e.logical_bytes as f64);
        let compute = e.compute.as_secs_f64();
        let scheme = learnt_as(e);
        let record = match l.schemes.iter().position(|r| r.scheme == scheme) {
            Some(i) => l.schemes.get_mut(i),
            None => {
                l.schemes.push(SchemeRecord {
                    scheme,
                    stall: LinearFit::new(lambda),
                    persist: LinearFit::new(lambda),
                    longest_chain: 0,
                    last_seen: seen,
                    least_stored: f64::INFINITY,
                });
                l.schemes.last_mut()
            }
        };
        let stored = stored_bytes(e);
        if let Some(r) = record {
            r.stall.observe(stored, logical, stall);
            r.persist.observe(stored, logical, persist);
            r.longest_chain = r.longest_chain.max(e.chain_length);
            r.last_seen = seen;
            r.least_stored = r.least_stored.min(stored);
        }
        l.pooled.observe(e.bytes_written as f64, logical, persist);
        let quick = self.config.workload_forgetting;
        l.logical.observe(logical, quick);
        if !e.first_capture {
            l.dirty.observe(dirty, quick);
        }
        if e.compression_ratio > 0.0 {
            l.ratio.observe(e.compression_ratio, quick);
        }
        l.chain.observe(f64::from(e.chain_length.max(1)), lambda);
        if compute > 0.0 {
            l.compute_secs.observe(compute, quick);
            if e.steps > 0 {
                l.step_secs.observe(compute / e.steps as f64, quick);
            }
            if logical > 0.0 && !e.first_capture {
                l.dirty_fraction
                    .observe((dirty / logical).clamp(0.0, 1.0), quick);
                l.dirty_interval.observe(compute, quick);
            }
            let (idle, warmup) = match idle_step_secs(e) {
                Some(idle) if e.first_capture => (None, Some(idle)),
                idle => (idle, None),
            };
            let recent = l.idle_step_secs.get();
            if steady_steps(idle, recent) {
                let baseline = idle.or(recent);
                let per_idle = baseline.or(warmup).or(l.warmup_step_secs.get());
                let both = both_slowdown(e, per_idle);
                let n_both = e.steps_beside_both;
                let persist = split_slowdown(
                    slowdown(e, per_idle),
                    e.steps_beside_persist,
                    both,
                    n_both,
                    l.drain_interference.get(),
                );
                let drain = split_slowdown(
                    drain_slowdown(e, per_idle),
                    e.steps_beside_drain,
                    both,
                    n_both,
                    l.interference.get(),
                );
                // Against a warm-up baseline a sample is only a floor.
                let floor = |slowdown: f64, prior: f64| match baseline {
                    Some(_) => slowdown,
                    None => slowdown.max(prior.ln_1p()),
                };
                if let Some(slowdown) = persist {
                    let prior = self.config.background_interference;
                    l.interference.observe(floor(slowdown, prior), quick);
                }
                if let Some(slowdown) = drain {
                    let prior = self.config.drain_interference;
                    l.drain_interference.observe(floor(slowdown, prior), quick);
                }
            }
            if let Some(idle) = idle {
                l.idle_step_secs.observe(idle, quick);
            }
            if let Some(warmup) = warmup {
                l.warmup_step_secs.observe(warmup, quick);
            }
        }
        for (_, counts) in &mut l.failures {
            counts.expose(compute + stall);
        }
    }

    fn observe_restore(&mut self, e: &RestoreEvent) {
        // Failures strike during restores too, and the MTBF the restart
        // cost is priced against is one of wall time, restores included.
        for (_, counts) in &mut self.learned.failures {
            counts.expose(e.duration.as_secs_f64());
        }
        let bytes = if e.bytes_read > 0 {
            e.bytes_read
        } else {
            e.logical_bytes
        };
        let fit = if e.tier > 0 {
            &mut self.learned.restore_lower
        } else {
            &mut self.learned.restore
        };
        fit.observe(
            bytes as f64,
            f64::from(e.chain_length.max(1)),
            e.duration.as_secs_f64(),
        );
    }

    /// What was observed of one class's failures.
    pub(super) fn failure_counts(&self, class: FailureClass) -> FailureCounts {
        self.learned
            .failures
            .iter()
            .find(|(c, _)| *c == class)
            .map(|(_, n)| *n)
            .unwrap_or_default()
    }

    /// The posterior failure rate of one class.
    pub fn failure_rate(&self, class: FailureClass) -> RateEstimate {
        self.config
            .prior(class)
            .posterior(&self.failure_counts(class), self.config.level)
    }

    /// The posterior mean failure rate of one class, per second
    /// ([`failure_rate`](Self::failure_rate)'s `per_second`, without the
    /// credible interval).
    fn mean_failure_rate(&self, class: FailureClass) -> f64 {
        self.config
            .prior(class)
            .mean_rate(&self.failure_counts(class))
    }

    /// MTBF, seconds, of the failures a restart from the checkpoint store
    /// recovers from (process and node classes); infinite if none is
    /// expected.
    pub fn mtbf_secs(&self) -> f64 {
        let rate = self.mean_failure_rate(FailureClass::Process)
            + self.mean_failure_rate(FailureClass::Node);
        if rate > 0.0 {
            1.0 / rate
        } else {
            f64::INFINITY
        }
    }

    #[cfg(test)]
    /// The fit of slower-tier copy time against (bytes written, logical
    /// bytes), from events with `tier > 0`: input for a
    /// `TwoLevel` model (`model::cost`) once tiers exist.
    pub(crate) fn drain_fit(&self) -> &LinearFit {
        &self.learned.drain
    }

    /// Checkpoints of `scheme` observed (not discounted by forgetting).
    pub fn observations(&self, scheme: Scheme) -> u64 {
        self.learned
            .schemes
            .iter()
            .find(|r| r.scheme == scheme)
            .map_or(0, |r| r.stall.count())
    }

    /// Mean compute time per step, once steps were reported.
    pub fn step_time(&self) -> Option<Duration> {
        self.learned.step_secs.get().map(secs)
    }

    /// Young's and Daly's intervals for a checkpoint cost `cost` at the
    /// current MTBF, seconds (both infinite when no failure is expected).
    pub fn classic_intervals(&self, cost: Duration) -> (f64, f64) {
        let (c, m) = (cost.as_secs_f64(), self.mtbf_secs());
        if m.is_finite() {
            (young_interval(c, m), daly_interval(c, m))
        } else {
            (f64::INFINITY, f64::INFINITY)
        }
    }
}

impl CostModel {
    /// Tests `e`'s signals for a change of the workload or of what writing
    /// costs, and forgets what a change made stale, so that `e` starts the
    /// new regime: the step and interference means on a new step time, the
    /// dirtiness means on a new dirtying rate, the write fits on a new
    /// cost. What still holds (what a byte costs to write when only the
    /// access pattern changed, and the reverse) is kept.
    fn relearn_what_changed(&mut self, e: &CheckpointEvent) {
        let compute = e.compute.as_secs_f64();
        let logical = e.logical_bytes as f64;
        // Steps beside no persist: what the workload costs, not what the
        // plan adds (a plan that persists in the background slows the steps
        // beside it, and switching to it is no change of the workload).
        let log_step = idle_step_secs(e).map(f64::ln);
        let log_dirty_rate = (compute > 0.0 && logical > 0.0 && !e.first_capture).then(|| {
            let fraction = (e.dirty_bytes as f64 / logical).clamp(1e-9, 1.0 - 1e-9);
            (-(-fraction).ln_1p() / compute).ln()
        });
        let persist = e.own_persist().as_secs_f64();
        // Against the scheme's own persist fit, on what it stored (as the
        // fit is fed below), once the fit has a few points.
        let scheme = learnt_as(e);
        let stored = stored_bytes(e);
        let log_cost = self
            .learned
            .schemes
            .iter()
            .find(|r| r.scheme == scheme && r.persist.count() >= self.config.min_observations)
            .and_then(|r| r.persist.solve(self.config.level, Driver::First))
            .map(|fit| fit.predict(stored, logical).mean)
            .filter(|predicted| *predicted > 0.0 && persist > 0.0)
            .map(|predicted| (scheme.code(), (persist / predicted).ln()));
        let found = self.changes.observe(log_step, log_dirty_rate, log_cost);
        let l = &mut self.learned;
        if found.step {
            l.step_secs = RunningMean::default();
            l.compute_secs = RunningMean::default();
            l.idle_step_secs = RunningMean::default();
            l.warmup_step_secs = RunningMean::default();
            l.interference = RunningMean::default();
            l.drain_interference = RunningMean::default();
        }
        if found.dirtiness {
            l.dirty = RunningMean::default();
            l.dirty_fraction = RunningMean::default();
            l.dirty_interval = RunningMean::default();
        }
        if found.cost {
            let lambda = self.config.forgetting;
            l.pooled = LinearFit::new(lambda);
            for record in &mut l.schemes {
                record.stall = LinearFit::new(lambda);
                record.persist = LinearFit::new(lambda);
            }
        }
    }
}
