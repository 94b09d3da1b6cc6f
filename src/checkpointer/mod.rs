//! The [`Checkpointer`]: scopes, checkpoints, restore, and the policy loop
//! that applies the cost model's decisions.

mod adaptive;
mod background;
mod builder;
mod committed;
mod journal;
mod persister;
mod pipeline;
mod restore;
mod saver;
mod tiers;

pub use crate::recover::Restored;
pub use builder::CheckpointerBuilder;
pub use committed::Committed;

use crate::catalog::{self, Listing};
use crate::error::{Error, Result};
use crate::format::Manifest;
use crate::group::{Coordinator, GlobalCommitInfo, Group};
use crate::model::{Advisor, Decision, Event, EventSummary, Plan};
use crate::scheme::{CheckpointId, Job};
use crate::state::{Capture, State};
use crate::storage::{FailoverEvent, Storage};
use crate::trace;
use adaptive::{Adaptive, Work};
use persister::{Persister, Submitted};
use pipeline::Persisted;
use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Takes checkpoints of a state, keeps the store tidy and restores.
///
/// ```
/// use ckpt::{Checkpointer, MemStorage};
///
/// let store = MemStorage::new();
/// let mut ck = Checkpointer::builder().storage(store.clone()).every_steps(10).build()?;
///
/// // Resume from the newest checkpoint, or start fresh.
/// let (mut total, first): (u64, u64) = match ck.restore_latest::<u64>()? {
///     Some(r) => (r.state, r.step + 1),
///     None => (0, 0),
/// };
/// for step in first..100 {
///     ck.scope(step, &mut total, |total| *total += step)?;
/// }
/// ck.finish()?;
///
/// // A new process on the same store picks up where this one stopped.
/// let mut ck = Checkpointer::builder().storage(store).build()?;
/// let restored = ck.restore_latest::<u64>()?.expect("a checkpoint was taken");
/// assert_eq!((restored.step, restored.state), (99, (0..100).sum()));
/// # Ok::<(), ckpt::Error>(())
/// ```
#[derive(Debug)]
pub struct Checkpointer {
    storage: Arc<dyn Storage>,
    /// The scheme (and periodic full base) in force.
    plan: Plan,
    /// The chain bound used when the plan names no periodic full base.
    default_max_chain: u32,
    max_in_flight: usize,
    interval: Interval,
    persister: Persister,
    adaptive: Adaptive,
    next_seq: u64,
    /// The checkpoint the next capture diffs against.
    last_captured: Option<u128>,
    /// Work done since the last checkpoint.
    work: Work,
    last_checkpoint_at: Instant,
    /// Work covered by each background job still in flight, in order.
    queued_work: VecDeque<Work>,
    exploring: Option<Exploration>,
    /// The next scope ends with a checkpoint, whatever the interval says
    /// (the first checkpoint of the trial a policy with nothing learnt
    /// begins with).
    due_now: bool,
    failover_events: Option<Receiver<FailoverEvent>>,
    last_committed: Option<Committed>,
    poisoned: Option<Arc<Error>>,
    /// Set for a rank of a group.
    group: Option<Coordinator>,
    /// Set when more than one tier was given.
    tiers: Option<tiers::Tiers>,
}

/// When a scope ends with a checkpoint.
#[derive(Debug, Clone, Copy)]
struct Interval {
    every_steps: Option<u64>,
    every: Option<Duration>,
}

/// A trial of another scheme started by the policy; it lasts while the
/// policy says so ([`PolicyState::exploring`](crate::model::PolicyState::exploring)).
#[derive(Debug, Clone, Copy)]
struct Exploration {
    resume: Plan,
    resume_interval: Interval,
}

impl Checkpointer {
    /// Starts configuring a checkpointer.
    pub fn builder() -> CheckpointerBuilder {
        CheckpointerBuilder::default()
    }

    /// Runs one unit of work, then checkpoints `state` if one is due.
    ///
    /// `step` numbers the work `body` completes; a checkpoint taken here is
    /// recorded at that step, so after a restore, resume at
    /// [`Restored::step`]` + 1`. Returns what `body` returned.
    ///
    /// With copy-on-write, a due checkpoint is deferred while the persist
    /// queue is full (storage slower than the interval, or a large full
    /// base): the scope returns without waiting, and the checkpoint is
    /// taken at the first scope after an earlier one is durable. So a
    /// scope never waits for storage; [`checkpoint`](Self::checkpoint)
    /// called directly does (see
    /// [`max_in_flight`](CheckpointerBuilder::max_in_flight)). Under an
    /// automatic policy a due checkpoint is also deferred while one
    /// persists if the model has a change of the workload pending
    /// ([`CostModel::change_pending`](crate::model::CostModel::change_pending)):
    /// the interval in force was priced on the old workload.
    pub fn scope<S: State, R>(
        &mut self,
        step: u64,
        state: &mut S,
        body: impl FnOnce(&mut S) -> R,
    ) -> Result<R> {
        self.check_usable()?;
        let beside_persist = self.persister.busy();
        let beside_drain = self.tiers.as_ref().is_some_and(tiers::Tiers::draining);
        let started = Instant::now();
        let result = body(state);
        let elapsed = started.elapsed();
        self.work.steps += 1;
        self.work.compute += elapsed;
        match (beside_persist, beside_drain) {
            (true, true) => {
                self.work.both_steps += 1;
                self.work.both_compute += elapsed;
            }
            (true, false) => {
                self.work.busy_steps += 1;
                self.work.busy_compute += elapsed;
            }
            (false, true) => {
                self.work.drain_steps += 1;
                self.work.drain_compute += elapsed;
            }
            (false, false) => {}
        }
        if self.persister.is_background() {
            // A background commit that became durable since the last call
            // (during this scope or between two) is reported now, not at
            // the next checkpoint, an interval later.
            self.report_finished()?;
        }
        if self.is_due() && !self.defers_capture() {
            self.checkpoint(step, state)?;
        }
        Ok(result)
    }

    /// True when a checkpoint the interval asks for waits for a later
    /// scope: the copy-on-write persist queue is full, so a capture now
    /// would hold the computation until an earlier checkpoint is durable,
    /// while computing on and capturing at the first scope with room
    /// becomes durable as soon and covers more work. The ranks of a group
    /// checkpoint at the steps they agreed on, so they never defer.
    ///
    /// Under an automatic policy, a capture also waits while a checkpoint
    /// persists if a change of the workload is pending: the interval in
    /// force was priced on the old workload, and the checkpoint persisting
    /// is the one that confirms or dismisses the change (and retunes the
    /// interval). A capture queued behind it would be taken at the stale
    /// interval: a 108 MiB state whose writes grew fivefold ran three
    /// checkpoints back to back at the old workload's 1.7 s interval.
    fn defers_capture(&self) -> bool {
        if self.group.is_some() {
            return false;
        }
        let advisor = self.adaptive.advisor();
        let unconfirmed = advisor.policy().mode() == crate::model::PolicyMode::Auto
            && advisor.model().change_pending()
            && self.persister.busy();
        self.persister.full() || unconfirmed
    }

    /// True when the interval says the next scope should end with a
    /// checkpoint.
    pub fn is_due(&self) -> bool {
        let Interval { every_steps, every } = self.interval;
        let by_steps = every_steps.is_some_and(|n| self.work.steps >= n);
        let by_time = every.is_some_and(|d| self.last_checkpoint_at.elapsed() >= d);
        let unconfigured = every_steps.is_none() && every.is_none();
        self.due_now || by_steps || by_time || (unconfigured && self.work.steps > 0)
    }

    /// Checkpoints `state` at `step` now, whatever the interval says.
    ///
    /// With the synchronous schemes the checkpoint is durable when this
    /// returns, and its [`Committed`] report is returned. With
    /// [`Scheme::CopyOnWrite`](crate::Scheme::CopyOnWrite) the state has been captured and is being
    /// persisted in the background: this returns `None`, and
    /// [`last_committed`](Self::last_committed), [`flush`](Self::flush) or
    /// [`finish`](Self::finish) report it once durable. A storage failure
    /// poisons the checkpointer (see [`Error::Poisoned`]); a failure in the
    /// background is returned by the next call.
    pub fn checkpoint<S: State>(&mut self, step: u64, state: &mut S) -> Result<Option<&Committed>> {
        let entered = Instant::now();
        self.check_usable()?;
        self.drain_failover_events();
        let finished = self.persister.finished();
        self.absorb(finished)?;
        if let Some(coordinator) = &self.group {
            coordinator.check_checkpoint(step)?;
        }
        let started = Instant::now();
        let ident = CheckpointId {
            seq: self.next_seq,
            step,
            id: rand::random(),
            scheme: self.plan.base(),
            created_unix_ms: unix_ms_now(),
        };
        let span = trace::info_span!("checkpoint", step, seq = ident.seq, scheme = %ident.scheme, bytes_written = trace::Empty, dirty_bytes = trace::Empty, stall = trace::Empty, persist = trace::Empty);
        let _entered = span.enter();
        let mut capture = Capture::new(ident.id, self.last_captured);
        let captured = trace::debug_span!(
            "capture",
            segments = trace::Empty,
            pages = trace::Empty,
            dirty_pages = trace::Empty
        );
        captured.in_scope(|| state.capture(&mut capture))?;
        self.due_now = false;
        if let Some(coordinator) = &mut self.group {
            coordinator.checkpointing(step);
        }
        let job = Job {
            ident,
            segments: capture.into_segments(),
            capture_time: started.elapsed(),
            background: self.persister.is_background(),
            span: span.clone(),
        };
        trace::record!(
            captured,
            segments = job.segments.len(),
            pages = job.pages().0,
            dirty_pages = job.pages().1
        );
        let mut work = std::mem::take(&mut self.work);
        work.first_capture = self.last_captured.is_none();
        if work.steps == 0 {
            work.compute = self.last_checkpoint_at.elapsed();
        }
        self.next_seq += 1;
        self.last_captured = Some(ident.id);
        let submitted = Instant::now();
        let durable = match self.persister.submit(job) {
            Ok(Submitted::Persisted(persisted)) => {
                self.on_commit(*persisted, work)?;
                if let Some(c) = &self.last_committed {
                    trace::record!(span, bytes_written = c.bytes_written, dirty_bytes = c.dirty_bytes, stall = ?c.stall, persist = ?c.persist);
                }
                let reported = self
                    .last_committed
                    .as_ref()
                    .map_or(Duration::ZERO, |c| c.stall);
                // What this call cost beyond the stall its commit reported
                // (the policy's evaluation, saving what the model learnt,
                // a change of scheme) is charged to the next checkpoint,
                // so the model sees everything the computation waits for.
                self.work.overhead += entered.elapsed().saturating_sub(reported);
                true
            }
            Ok(Submitted::Queued) => {
                // Everything this call blocked for: bookkeeping of earlier
                // commits, the snapshot, and waiting for room in the queue.
                work.blocked = Some(entered.elapsed());
                work.queue_wait = submitted.elapsed();
                self.queued_work.push_back(work);
                self.hold_while_measuring();
                false
            }
            Err(e) => {
                self.adaptive.storage_failed("checkpoint");
                return Err(self.poison(e));
            }
        };
        // The interval counts from the moment the computation resumes, so
        // that `every` is compute time between checkpoints (what the cost
        // model's intervals mean), not compute plus the last stall.
        self.last_checkpoint_at = Instant::now();
        Ok(if durable {
            self.last_committed.as_ref()
        } else {
            None
        })
    }

    /// Reports background checkpoints that became durable since the last
    /// call, so that the policy decides on each as soon as it is durable
    /// rather than at the next checkpoint, an interval later. The time
    /// this takes (the policy's evaluation, a change of scheme) is charged
    /// to the next checkpoint.
    fn report_finished(&mut self) -> Result<()> {
        let started = Instant::now();
        let finished = self.persister.finished();
        if finished.is_empty() {
            return Ok(());
        }
        self.drain_failover_events();
        self.absorb(finished)?;
        self.work.overhead += started.elapsed();
        Ok(())
    }

    /// Waits until every captured checkpoint is durable (and what the cost
    /// model learnt and the store's journal of events, whose saving runs
    /// on a thread of its own, are written, and the drains queued for lower
    /// tiers are done, or failed once: see [`tiers`](Self::tiers)) and
    /// returns the newest committed one.
    pub fn flush(&mut self) -> Result<Option<&Committed>> {
        self.check_usable()?;
        let results = self.persister.wait();
        self.drain_failover_events();
        self.absorb(results)?;
        // Nothing of this checkpointer is in flight afterwards, the
        // model's saved state and the drains to lower tiers included (a
        // failing tier gets one attempt: it delays drains, never this).
        self.wait_drains();
        let logical = self
            .last_committed
            .as_ref()
            .map_or(0, |c| c.info.logical_bytes);
        self.report_drains(logical);
        self.adaptive.wait_saved();
        Ok(self.last_committed.as_ref())
    }

    fn drain_failover_events(&mut self) {
        if let Some(events) = &self.failover_events {
            self.adaptive.storage_events(events.try_iter());
        }
    }

    fn absorb(&mut self, results: Vec<Result<Persisted>>) -> Result<()> {
        for result in results {
            let work = self.queued_work.pop_front().unwrap_or_default();
            match result {
                Ok(persisted) => self.on_commit(persisted, work)?,
                Err(e) => {
                    self.adaptive.storage_failed("checkpoint");
                    return Err(self.poison(e));
                }
            }
        }
        Ok(())
    }

    /// Records a commit, reports it, and carries out the policy's decision.
    ///
    /// During a trial the policy is asked about the plan in force (the one
    /// the trial returns to), not the trial: what it decides is whether to
    /// leave that plan. An applied change ends the trial; otherwise the
    /// trial runs its course and the plan and interval in force resume.
    fn on_commit(&mut self, persisted: Persisted, mut work: Work) -> Result<()> {
        work.retention = persisted.retention_took;
        let group = match &self.group {
            Some(coordinator) => match coordinator.vote(self.storage.as_ref(), &persisted.info) {
                Ok(status) => Some(status),
                Err(e) => {
                    self.adaptive.storage_failed("group vote");
                    return Err(self.poison(e));
                }
            },
            None => None,
        };
        let name = persisted.written.manifest.name();
        self.report_drains(persisted.info.logical_bytes);
        let mut committed = Committed::new(persisted, work.blocked, group);
        committed.drain_queued = self.drain_committed(name);
        let (plan, interval) = match &self.exploring {
            Some(trial) => (trial.resume, trial.resume_interval),
            None => (self.plan, self.interval),
        };
        let every = self.compute_interval(interval, work);
        trace::info!(step = committed.info.step, seq = committed.info.seq, scheme = %committed.info.scheme.unwrap_or_default(), full = committed.full, bytes_written = committed.bytes_written, dirty_bytes = committed.dirty_bytes, stall = ?committed.stall, persist = ?committed.persist, chain_len = committed.info.chain_len, "checkpoint committed");
        let decision = self
            .adaptive
            .committed(&committed, work, plan, every)
            .clone();
        self.last_committed = Some(committed);
        let advisor = self.adaptive.advisor();
        let trial_over = !advisor
            .policy_state()
            .exploring(advisor.summary().checkpoints);
        match decision {
            Decision::Apply(recommendation) => {
                self.exploring = None;
                self.interval = Interval {
                    every_steps: None,
                    every: Some(recommendation.interval().every),
                };
                self.set_plan(recommendation.plan())
            }
            Decision::Explore {
                scheme,
                interval: trial_every,
                ..
            } => {
                self.exploring = Some(Exploration {
                    resume: plan,
                    resume_interval: interval,
                });
                self.interval = Interval {
                    every_steps: None,
                    every: Some(trial_every),
                };
                self.set_plan(Plan::only(scheme))
            }
            _ if self.exploring.is_some() && trial_over => {
                self.exploring = None;
                self.interval = interval;
                self.set_plan(plan)
            }
            _ => {
                // A running trial follows the model's best interval for its
                // scheme as the trial measures it.
                if self.exploring.is_some()
                    && let Some((_, every)) = self.adaptive.advisor().trial()
                {
                    self.interval = Interval {
                        every_steps: None,
                        every: Some(every),
                    };
                }
                Ok(())
            }
        }
    }

    /// During a trial that has not yet measured how fast the state changes
    /// (its checkpoints come one step after the last is durable), no
    /// checkpoint is due while the one just captured persists: it is the
    /// measurement, and more at one step would only queue behind it.
    fn hold_while_measuring(&mut self) {
        if let Some(trial) = &self.exploring
            && !self.adaptive.advisor().model().dirtiness_measured()
        {
            self.interval = trial.resume_interval;
        }
    }

    /// `interval` as compute time between checkpoints.
    fn compute_interval(&self, interval: Interval, last: Work) -> Duration {
        if let Some(every) = interval.every {
            return every;
        }
        let steps = interval.every_steps.unwrap_or(1);
        match self.adaptive.advisor().model().step_time() {
            Some(step) => step.saturating_mul(u32::try_from(steps).unwrap_or(u32::MAX)),
            None => last.compute,
        }
    }

    /// Switches scheme and periodic full base from the next checkpoint on,
    /// and the drain ratio when `plan` names one (a trial's plan does not:
    /// the ratio in force goes on).
    fn set_plan(&mut self, plan: Plan) -> Result<()> {
        self.plan = match (&mut self.tiers, plan.drain_every()) {
            (Some(tiers), Some(k)) => {
                tiers.set_drain_every(k);
                plan
            }
            (Some(tiers), None) => plan.draining_every(tiers.drain_every()),
            (None, _) => plan.without_drains(),
        };
        let max_chain = plan.full_every().unwrap_or(self.default_max_chain);
        let finished = self
            .persister
            .set_plan(plan.base(), max_chain, self.max_in_flight)
            .map_err(|e| self.poison(e))?;
        self.absorb(finished)
    }

    /// For a rank of a [`Group`]: the newest globally committed step in
    /// the shared store (the one a restore would choose, unless this
    /// rank's shard of it turns out damaged).
    pub fn newest_global_commit(&self) -> Result<Option<GlobalCommitInfo>> {
        match &self.group {
            Some(coordinator) => coordinator.newest(),
            None => Err(Error::InvalidConfig {
                option: "group",
                reason: "this checkpointer is not a rank of a group; build it with .group(Group::new(ranks, rank, run_id))".to_owned(),
            }),
        }
    }

    /// The group this checkpointer is a rank of, if any.
    pub fn group(&self) -> Option<&Group> {
        self.group.as_ref().map(Coordinator::group)
    }

    /// Lists the checkpoints in the store (manifests only; packs are
    /// verified on restore). For a rank of a group: this rank's shards.
    pub fn list(&self) -> Result<Listing> {
        catalog::list(self.storage.as_ref())
    }

    /// The last checkpoint this checkpointer committed.
    pub fn last_committed(&self) -> Option<&Committed> {
        self.last_committed.as_ref()
    }

    /// The scheme (and periodic full base, and with lower tiers the drain
    /// ratio) in force now; an adaptive policy changes it.
    pub fn plan(&self) -> Plan {
        self.plan
    }

    /// What the policy decided after the last commit: with
    /// [`Policy::advise`](crate::model::Policy::advise), the
    /// recommendations to read.
    pub fn last_decision(&self) -> Option<&Decision> {
        self.adaptive.last_decision()
    }

    /// The cost model and policy, with what they learned so far.
    pub fn advisor(&self) -> &Advisor {
        self.adaptive.advisor()
    }

    /// Counts, totals and stall percentiles of everything so far.
    pub fn summary(&self) -> &EventSummary {
        self.adaptive.advisor().summary()
    }

    /// A channel that receives every [`Event`] from now on.
    pub fn subscribe(&mut self) -> Receiver<Event> {
        self.adaptive.subscribe()
    }

    /// Ends the run: waits until every captured checkpoint is durable,
    /// stores what the cost model learned, and reports any error hit on
    /// the way. A checkpointer dropped without `finish` also waits for
    /// background work, but its next run on the store counts this one as
    /// a crash.
    pub fn finish(mut self) -> Result<()> {
        self.flush()?;
        self.adaptive.close(self.storage.as_ref())
    }

    /// Makes the restored `manifest` the base of the next increment, and
    /// tells retention which newer checkpoints failed verification so they
    /// do not count as kept.
    fn resume_from(&mut self, manifest: Manifest, damaged: BTreeSet<String>) -> Result<()> {
        self.work = Work::default();
        self.last_checkpoint_at = Instant::now();
        self.last_captured = Some(manifest.id);
        self.persister.resume_from(manifest, damaged)
    }

    fn check_usable(&self) -> Result<()> {
        match &self.poisoned {
            Some(cause) => Err(Error::poisoned_by(Arc::clone(cause))),
            None => Ok(()),
        }
    }

    fn poison(&mut self, error: Error) -> Error {
        trace::warn!(error = %error.report(), "checkpoint failed; the checkpointer is poisoned");
        self.poisoned = Some(Arc::new(error.clone()));
        error
    }
}

fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests;
