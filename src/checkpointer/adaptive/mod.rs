//! The checkpointer's side of the cost model: turning commits and restores
//! into events, telling subscribers, asking the advisor what to do, and
//! keeping the advisor's learned state (and a run marker that reveals
//! crashes) in the store, with a journal of the events (`journal`).

mod saving;

use super::Committed;
use super::journal::Journal;
use super::saver::Saver;
use crate::error::Result;
use crate::format::layout::MODEL_KEY;
use crate::model::{
    Advisor, CheckpointEvent, Decision, DecisionEvent, Event, FailoverPauseEvent, FailureClass,
    ModelConfig, Plan, Policy, RestartEvent, RestoreEvent, StorageErrorEvent,
};
use crate::scheme::Scheme;
use crate::storage::FailoverEvent as StorageFailoverEvent;
use crate::storage::Storage;
use crate::tier::DrainEvent;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

/// Present while a checkpointer runs on the store; found at start-up, it
/// means the previous run ended without `finish()`: a crash.
const RUNNING_KEY: &str = "model/running";

/// A callback that receives every event.
pub(crate) type Listener = Box<dyn FnMut(&Event) + Send>;

/// The advisor, its audience and its persistence.
pub(crate) struct Adaptive {
    advisor: Advisor,
    listeners: Vec<Listener>,
    subscribers: Vec<Sender<Event>>,
    last_decision: Option<Decision>,
    commits_since_save: u32,
    /// When the learned state was last queued for saving.
    last_save: Instant,
    /// Writes the learned state and the journal off the caller's thread.
    saver: Saver,
    /// The journal's batch; `None` when the store could not be listed at
    /// start-up.
    journal: Option<Journal>,
    /// The interval the checkpointer ran at, as of the last commit (for
    /// the journal).
    interval: Duration,
    /// Events emitted while the checkpointer was being built, which every
    /// subscriber receives first (subscribing is only possible after).
    opening: Vec<Event>,
    /// True until the checkpointer is built.
    building: bool,
    /// The first trial, decided when the checkpointer was built and
    /// reported once its first checkpoint sets the interval it runs at.
    first_trial: Option<Decision>,
    /// The lower tiers, which carry a run marker too (see [`open`](Self::open)).
    lower: Vec<Arc<dyn Storage>>,
    /// Write the learned state to each lower tier (see
    /// [`save_below`](Self::save_below)).
    lower_savers: Vec<Saver>,
}

impl std::fmt::Debug for Adaptive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Adaptive")
            .field("advisor", &self.advisor)
            .field("listeners", &self.listeners.len())
            .field("subscribers", &self.subscribers.len())
            .field("last_decision", &self.last_decision)
            .finish()
    }
}

impl Adaptive {
    /// Loads the learned state from `storage` (or starts afresh when there
    /// is none or it does not decode), and notes a crash of the previous
    /// run if its marker is still there: the failure is counted and the
    /// learned state saved (and waited for) before the build returns.
    ///
    /// With lower tiers (`lower`, in order), the marker is put on every
    /// tier, and the learned state, which each drain copies down, is
    /// loaded from the first tier that holds it. A marker on the first
    /// tier means the previous run crashed and the first tier survived: a
    /// [`FailureClass::Process`] failure. A marker on a lower tier only
    /// means the first tier was lost with it (emptied or replaced: the
    /// node was lost): a [`FailureClass::Node`] failure. A lower tier that
    /// fails here is reported as a storage error and never fails the
    /// build. `drain_every` is the configured drain ratio, which bounds
    /// the running a lost first tier can take with it when no policy
    /// applied another.
    pub(crate) fn open(
        storage: &Arc<dyn Storage>,
        lower: Vec<Arc<dyn Storage>>,
        config: ModelConfig,
        policy: Policy,
        listeners: Vec<Listener>,
        drain_every: u32,
    ) -> Result<Self> {
        let mut lower_errors = 0u32;
        let mut stored = present(storage.as_ref(), MODEL_KEY)?;
        let loaded_below = stored.is_none();
        for tier in &lower {
            if stored.is_some() {
                break;
            }
            match present(tier.as_ref(), MODEL_KEY) {
                Ok(found) => stored = found,
                Err(_) => lower_errors += 1,
            }
        }
        let mut advisor = match stored {
            Some(bytes) => Advisor::from_bytes(&bytes, config.clone(), policy.clone())
                .or_else(|_| Advisor::new(config, policy))?,
            None => Advisor::new(config, policy)?,
        };
        advisor.restarted();
        let mut adaptive = Adaptive {
            advisor,
            listeners,
            subscribers: Vec::new(),
            last_decision: None,
            commits_since_save: 0,
            last_save: Instant::now(),
            saver: Saver::start(storage.clone(), MODEL_KEY),
            journal: Journal::open(storage.as_ref()),
            interval: Duration::ZERO,
            opening: Vec::new(),
            building: true,
            first_trial: None,
            lower_savers: lower
                .iter()
                .map(|tier| Saver::start(Arc::clone(tier), MODEL_KEY))
                .collect(),
            lower,
        };
        let crashed_here = present(storage.as_ref(), RUNNING_KEY)?.is_some();
        let marker = std::process::id().to_le_bytes();
        let mut crashed_below = false;
        for tier in &adaptive.lower {
            match present(tier.as_ref(), RUNNING_KEY) {
                Ok(found) => crashed_below |= found.is_some(),
                Err(_) => lower_errors += 1,
            }
            if tier.put(RUNNING_KEY, &marker).is_err() {
                lower_errors += 1;
            }
        }
        let class = if crashed_here {
            Some(FailureClass::Process)
        } else if crashed_below {
            Some(FailureClass::Node)
        } else {
            None
        };
        if let Some(class) = class {
            let mut restart = RestartEvent::new(class);
            let below = (loaded_below && class == FailureClass::Node).then(|| {
                adaptive
                    .advisor
                    .in_force()
                    .and_then(|(plan, _)| plan.drain_every())
                    .unwrap_or(drain_every)
            });
            restart.unreported = adaptive.unreported_running(below);
            adaptive.emit(restart.into());
            // Stored at once (on every tier, so that the loss of the first
            // tier never loses it either): a process that dies before its
            // first save would otherwise take the failure with it, and the
            // next would count one failure for two. Where failures come
            // every few checkpoints that undercounted them by half (a
            // remote-only run priced an MTBF of 1.5 s where 0.73 s was
            // true). One small put on a path that restores the state next.
            adaptive.save_everywhere();
            adaptive.wait_saved();
        }
        for _ in 0..lower_errors {
            adaptive.emit(StorageErrorEvent::new("lower tier at start-up", true).into());
        }
        storage.put(RUNNING_KEY, &marker)?;
        Ok(adaptive)
    }

    /// The trial the policy begins with when nothing is learnt yet (see
    /// [`PolicyState::begin`](crate::model::PolicyState::begin)): its
    /// scheme and first interval, reported as a decision.
    ///
    /// Its decision event is emitted once the trial's first checkpoint has
    /// set the interval it runs at (see [`committed`](Self::committed)).
    pub(crate) fn begin(&mut self, current: Plan) -> Option<(Scheme, Duration)> {
        let decision = self.advisor.begin(current)?;
        let Decision::Explore {
            scheme, interval, ..
        } = decision
        else {
            return None;
        };
        self.first_trial = Some(decision.clone());
        self.last_decision = Some(decision);
        Some((scheme, interval))
    }

    /// The checkpointer is built: events from now on reach subscribers
    /// directly.
    pub(crate) fn built(&mut self) {
        self.building = false;
    }

    /// A channel that receives the events of the checkpointer's opening
    /// (a crash of the previous run found at start-up), then every event
    /// from now on.
    pub(crate) fn subscribe(&mut self) -> Receiver<Event> {
        let (sender, receiver) = channel();
        for event in &self.opening {
            let _ = sender.send(event.clone());
        }
        self.subscribers.push(sender);
        receiver
    }

    /// Feeds `event` to the model, tells every listener, and records it
    /// in the journal.
    pub(crate) fn emit(&mut self, event: Event) {
        trace_event(&event);
        if self.building {
            self.opening.push(event.clone());
        }
        if let Some(journal) = &mut self.journal {
            journal.record(&event, self.interval, &self.saver);
        }
        self.advisor.observe(&event);
        for listener in &mut self.listeners {
            listener(&event);
        }
        self.subscribers
            .retain(|subscriber| subscriber.send(event.clone()).is_ok());
    }

    /// Reports a committed checkpoint, asks the advisor what to do next,
    /// and saves the learned state when that changes the plan, while a
    /// scheme is being learnt (its first measurements are what a trial is
    /// for, and a crash should not make the policy try it again), when
    /// saving is cheap beside the checkpoint, or every [`SAVE_EVERY`]
    /// commits.
    pub(crate) fn committed(
        &mut self,
        committed: &Committed,
        work: Work,
        plan: Plan,
        interval: Duration,
    ) -> &Decision {
        self.interval = interval;
        self.report_save_failures();
        let scheme = committed.info.scheme.unwrap_or_default();
        let mut event = CheckpointEvent::new(scheme, committed.info.step);
        event.full_base = scheme == Scheme::Incremental && committed.full;
        event.steps = work.steps;
        event.compute = work.compute;
        event.steps_beside_persist = work.busy_steps;
        event.compute_beside_persist = work.busy_compute;
        event.steps_beside_drain = work.drain_steps;
        event.compute_beside_drain = work.drain_compute;
        event.steps_beside_both = work.both_steps;
        event.compute_beside_both = work.both_compute;
        event.stall = committed.stall + work.overhead;
        event.queue_wait = work.queue_wait.min(event.stall);
        // Durable after the wait for the queue and the write.
        event.persist = (committed.persist + event.queue_wait).max(event.stall);
        event.logical_bytes = committed.info.logical_bytes;
        // What changed since the previous checkpoint, not what this one
        // stored: a full checkpoint stores everything, but the model learns
        // from it how fast the state changes.
        event.dirty_bytes = committed.dirty_bytes;
        event.bytes_written = committed.bytes_written;
        event.compression_ratio = if committed.bytes_written == 0 {
            1.0
        } else {
            committed.changed_bytes as f64 / committed.bytes_written as f64
        };
        event.chain_length = committed.info.chain_len;
        event.first_capture = work.first_capture;
        event.retention = work.retention;
        self.emit(event.into());
        self.commits_since_save += 1;
        let trial_before = self.advisor.trial().map(|(scheme, _)| scheme);
        let decision = self.advisor.advise(plan, interval);
        if let Some(Decision::Explore {
            scheme,
            checkpoints,
            interval,
            reason,
        }) = self.first_trial.take()
        {
            // The trial's first checkpoint has run: report the trial with
            // the interval it goes on at.
            let interval = self.advisor.trial().map_or(interval, |(_, every)| every);
            let started = Decision::Explore {
                scheme,
                checkpoints,
                interval,
                reason,
            };
            self.emit(DecisionEvent::new(None, started).into());
        }
        if decision != Decision::Hold {
            self.emit(DecisionEvent::new(Some(committed.info.step), decision.clone()).into());
        }
        let trial_after = self.advisor.trial().map(|(scheme, _)| scheme);
        let acts = changes_the_plan(&decision, trial_before, trial_after);
        self.save_after_commit(scheme, committed.persist, acts);
        self.last_decision.insert(decision)
    }

    /// Reports a restore from tier `tier` (0 for the first).
    pub(crate) fn restored(
        &mut self,
        step: u64,
        duration: Duration,
        chain_len: u32,
        bytes: u64,
        tier: u8,
    ) {
        let mut event = RestoreEvent::new(step, duration, chain_len);
        event.logical_bytes = bytes;
        event.bytes_read = bytes;
        event.tier = tier;
        self.emit(event.into());
    }

    /// Reports a drain to lower tier `tier` (1 for the first lower one) of
    /// a state of `logical_bytes`: one that finished as a checkpoint
    /// event of that tier (copy time against the bytes copied, no stall),
    /// one that failed as a transient storage error.
    pub(crate) fn drained(&mut self, tier: u8, event: &DrainEvent, logical_bytes: u64) {
        match event {
            DrainEvent::Drained {
                step,
                bytes_copied,
                took,
                ..
            } => {
                let mut e = CheckpointEvent::new(Scheme::default(), *step);
                e.tier = tier.max(1);
                e.persist = *took;
                e.bytes_written = *bytes_copied;
                e.logical_bytes = logical_bytes;
                e.dirty_bytes = *bytes_copied;
                self.emit(e.into());
                self.save_below();
            }
            DrainEvent::Failed { tier: name, .. } => {
                self.emit(StorageErrorEvent::new(format!("drain to {name}"), true).into());
            }
            _ => {}
        }
    }

    /// Reports a storage failure.
    pub(crate) fn storage_failed(&mut self, op: &str) {
        self.emit(StorageErrorEvent::new(op, false).into());
    }

    /// Reports what a [`FailoverStorage`](crate::storage::FailoverStorage)
    /// said since the last call: each failover as one event whose pause is
    /// the relocation plus the longest pause an operation saw, with the
    /// operations that had to wait or retry; a pair that went down or lost
    /// its standby as a storage error.
    pub(crate) fn storage_events(&mut self, events: impl Iterator<Item = StorageFailoverEvent>) {
        let mut relocations = Vec::new();
        let (mut longest_pause, mut delayed) = (Duration::ZERO, 0u64);
        for event in events {
            match event {
                StorageFailoverEvent::FailedOver { relocation, .. } => relocations.push(relocation),
                StorageFailoverEvent::Paused { paused, .. } => {
                    longest_pause = longest_pause.max(paused);
                    delayed += 1;
                }
                StorageFailoverEvent::Down { .. } => self.storage_failed("failover: both down"),
                StorageFailoverEvent::StandbyLost { .. } => {
                    self.emit(StorageErrorEvent::new("failover: standby lost", true).into());
                }
                _ => {}
            }
        }
        for relocation in relocations {
            self.emit(FailoverPauseEvent::new(relocation.max(longest_pause), delayed).into());
            delayed = 0;
        }
    }

    /// Saves the learned state, waits until it is written, and removes the
    /// run marker: a clean stop.
    pub(crate) fn close(&mut self, storage: &dyn Storage) -> Result<()> {
        self.save_everywhere();
        self.saver.stop();
        for saver in &mut self.lower_savers {
            saver.stop();
        }
        self.report_save_failures();
        // The first tier's marker goes last: a crash in between leaves it,
        // and the next start counts a process failure, as it should.
        for tier in &self.lower {
            // Best effort: a lower tier that fails keeps a stale marker,
            // which only matters if the first tier is lost before the
            // next clean stop.
            let _ = tier.delete(RUNNING_KEY);
        }
        storage.delete(RUNNING_KEY)
    }

    /// The advisor.
    pub(crate) fn advisor(&self) -> &Advisor {
        &self.advisor
    }

    /// See [`Advisor::set_persist_queue`].
    pub(crate) fn set_persist_queue(&mut self, captures: u32) {
        self.advisor.set_persist_queue(captures);
    }

    /// What the advisor decided after the last commit.
    pub(crate) fn last_decision(&self) -> Option<&Decision> {
        self.last_decision.as_ref()
    }
}

/// The object `key` of `storage`, `None` when it is missing or damaged
/// (the learned state and the run marker are rebuilt, not restored).
fn present(storage: &dyn Storage, key: &str) -> Result<Option<Vec<u8>>> {
    match storage.get(key) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.is_damage() => Ok(None),
        Err(e) => Err(e),
    }
}

/// The useful work a checkpoint covers.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Work {
    /// Scopes run since the previous checkpoint.
    pub steps: u64,
    /// Time spent in them (or wall time, without scopes).
    pub compute: Duration,
    /// Those of the scopes that ran while a background persist was in
    /// flight and no drain was.
    pub busy_steps: u64,
    /// Time spent in the `busy_steps` scopes.
    pub busy_compute: Duration,
    /// The scopes that ran while a drain to a lower tier was in flight
    /// and no persist was.
    pub drain_steps: u64,
    /// Time spent in the `drain_steps` scopes.
    pub drain_compute: Duration,
    /// The scopes that ran while both a persist and a drain were in
    /// flight.
    pub both_steps: u64,
    /// Time spent in the `both_steps` scopes.
    pub both_compute: Duration,
    /// Time the computation spent in the checkpointer on earlier
    /// checkpoints' bookkeeping that no reported stall included yet.
    pub overhead: Duration,
    /// For a checkpoint persisted in the background: how long the call
    /// that captured it blocked the computation.
    pub blocked: Option<Duration>,
    /// Of `blocked`, how long it waited for room in the persist queue.
    pub queue_wait: Duration,
    /// The checkpoint's capture had no earlier one to compare against.
    pub first_capture: bool,
    /// How long retention took after the checkpoint was durable.
    pub retention: Duration,
}

/// Logs the decisions, restarts and storage errors among the events with
/// the `tracing` feature (commits and restores have their own spans).
fn trace_event(event: &Event) {
    #[cfg(feature = "tracing")]
    match event {
        Event::Decision(e) => match &e.decision {
            Decision::Advise(r) | Decision::Apply(r) => {
                let kind = if matches!(e.decision, Decision::Apply(_)) {
                    "apply"
                } else {
                    "advise"
                };
                let advice = r.advice();
                tracing::info!(step = e.step, kind, scheme = %r.plan().base(), plan = %r.plan(), interval = ?r.interval().every, saving = advice.saving, confidence = advice.confidence, reason = %advice.reason, "decision");
            }
            Decision::Explore {
                scheme,
                checkpoints,
                interval,
                reason,
            } => {
                tracing::info!(step = e.step, kind = "explore", scheme = %scheme, checkpoints, interval = ?interval, reason = %reason, "decision")
            }
            _ => {}
        },
        Event::StorageError(e) => {
            tracing::warn!(op = %e.op, transient = e.transient, "storage error")
        }
        Event::Restart(e) => {
            tracing::info!(class = ?e.class, downtime = ?e.downtime, "restart after a failure")
        }
        _ => {}
    }
    #[cfg(not(feature = "tracing"))]
    let _ = event;
}

/// Whether `decision`, taken with the trial of `before` running (if any)
/// and leaving that of `after`, changes what the checkpointer does: an
/// applied change, a trial started, or a trial that ended going back to
/// the plan in force (a [`Decision::Hold`] that ends the trial). A
/// restart that resumed a state saved before the trial ended would run
/// the trial's scheme again and then switch back, two switches in a
/// phase the run had already left.
fn changes_the_plan(decision: &Decision, before: Option<Scheme>, after: Option<Scheme>) -> bool {
    matches!(decision, Decision::Apply(_) | Decision::Explore { .. }) || before != after
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpointer::Checkpointer;
    use crate::storage::MemStorage;

    const GIB: u64 = 1 << 30;

    /// An advisor that has applied a switch from full to incremental,
    /// after a few incremental checkpoints among full ones.
    fn advisor_that_switched(policy: &Policy) -> (Advisor, Plan, Duration) {
        let config = ModelConfig::with_mtbf(Duration::from_secs(3_600));
        let mut advisor = Advisor::new(config, policy.clone()).expect("valid");
        let plan = Plan::only(Scheme::Full);
        let every = Duration::from_secs(60);
        for i in 0..40u32 {
            let scheme = if i % 2 == 1 && i < 8 {
                Scheme::Incremental
            } else {
                Scheme::Full
            };
            let mut e = CheckpointEvent::new(scheme, u64::from(i));
            e.steps = 10;
            e.compute = every;
            let written = if scheme == Scheme::Full {
                GIB
            } else {
                GIB / 100
            };
            e.stall = Duration::from_secs_f64(0.01 + written as f64 / 1e9);
            e.persist = e.stall;
            e.logical_bytes = GIB;
            e.dirty_bytes = GIB / 100;
            e.bytes_written = written;
            e.chain_length = if scheme == Scheme::Full { 1 } else { 2 };
            advisor.observe(&e.into());
            if let Decision::Apply(rec) = advisor.advise(plan, every) {
                return (advisor, rec.plan(), rec.interval().every);
            }
        }
        panic!("the advisor never switched");
    }

    /// A store holding `advisor`'s state, as a crashed run leaves it.
    fn store_holding(advisor: &Advisor) -> MemStorage {
        let store = MemStorage::new();
        store
            .put(MODEL_KEY, &advisor.to_bytes().expect("encodes"))
            .expect("put");
        store
    }

    /// A checkpointer restarted on `store` under `policy`.
    fn open(store: &MemStorage, policy: Policy) -> Checkpointer {
        Checkpointer::builder()
            .storage(store.clone())
            .policy(policy)
            .build()
            .expect("valid")
    }

    #[test]
    fn every_restart_counts_even_when_its_process_dies_before_a_checkpoint() {
        let store = MemStorage::new();
        let mut ck = open(&store, Policy::fixed());
        ck.checkpoint(1, &mut vec![7u64; 64]).expect("checkpoint");
        ck.flush().expect("flush");
        drop(ck); // a crash: no finish, the marker stays
        // Each process dies right after its start-up, before a checkpoint
        // (and so before a save after a commit).
        for failures in 1..=3 {
            let ck = open(&store, Policy::fixed());
            assert_eq!(ck.advisor().summary().restarts, failures);
            drop(ck);
        }
    }

    #[test]
    fn a_process_that_fails_before_its_first_checkpoint_counts_its_running() {
        let store = MemStorage::new();
        drop(open(&store, Policy::fixed())); // a crash before anything
        let crashed = open(&store, Policy::fixed());
        let ran = Duration::from_millis(60);
        std::thread::sleep(ran);
        drop(crashed); // ran 60 ms after its restart, then crashed
        let mut ck = open(&store, Policy::fixed());
        let unreported: Vec<Option<Duration>> = ck
            .subscribe()
            .try_iter()
            .filter_map(|e| match e {
                Event::Restart(r) => Some(r.unreported),
                _ => None,
            })
            .collect();
        assert_eq!(unreported.len(), 1);
        let counted = unreported[0].expect("the running is counted");
        assert!(counted >= ran && counted < ran * 20, "{counted:?}");
    }

    #[test]
    fn a_restart_goes_on_with_the_trial_the_crash_cut_short() {
        let policy = Policy::adaptive()
            .allow(&[Scheme::Full, Scheme::CopyOnWrite])
            .exploration(0.0);
        let config = ModelConfig::with_mtbf(Duration::from_secs(3_600));
        let mut advisor = Advisor::new(config, policy.clone()).expect("valid");
        let plan = Plan::only(Scheme::Full);
        // Full's best interval here, so that no interval change competes.
        let every = Duration::from_secs(190);
        let mut trial = None;
        for i in 0..5u64 {
            let mut e = CheckpointEvent::new(Scheme::Full, i);
            e.steps = 10;
            e.compute = every;
            e.stall = Duration::from_secs(5);
            e.persist = e.stall;
            e.logical_bytes = GIB;
            e.dirty_bytes = GIB / 100;
            e.bytes_written = GIB;
            e.chain_length = 1;
            advisor.observe(&e.into());
            if let Decision::Explore {
                scheme, interval, ..
            } = advisor.advise(plan, every)
            {
                trial = Some((scheme, interval));
                break;
            }
        }
        let (scheme, interval) =
            trial.expect("a 5 s full checkpoint makes the prior of copy-on-write worth a trial");
        assert_eq!(advisor.trial(), Some((scheme, interval)));
        let store = store_holding(&advisor);
        let ck = open(&store, policy);
        assert_eq!(ck.plan(), Plan::only(scheme));
        assert_eq!(ck.advisor().trial(), Some((scheme, interval)));
        drop(ck); // one writer per store: the restart comes after
        // A policy that no longer allows the scheme abandons the trial.
        let ck = open(&store, Policy::adaptive().allow(&[Scheme::Full]));
        assert_eq!(ck.plan(), Plan::only(Scheme::Full));
        assert_eq!(ck.advisor().trial(), None);
    }

    #[test]
    fn a_restart_resumes_the_plan_the_policy_applied() {
        let policy = Policy::adaptive()
            .allow(&[Scheme::Full, Scheme::Incremental])
            .exploration(0.0);
        let (advisor, plan, every) = advisor_that_switched(&policy);
        assert_eq!(plan.base(), Scheme::Incremental);
        let store = store_holding(&advisor);
        let ck = open(&store, policy);
        assert_eq!(ck.plan(), plan);
        assert_eq!(ck.advisor().in_force(), Some((plan, every)));
        drop(ck); // one writer per store: the restart comes after
        // A policy that does not apply changes starts where it is told.
        let ck = open(&store, Policy::advise());
        assert_eq!(ck.plan(), Plan::only(Scheme::Full));
    }

    #[test]
    fn a_trial_that_ends_without_a_switch_changes_the_plan() {
        let cow = Some(Scheme::CopyOnWrite);
        assert!(changes_the_plan(&Decision::Hold, cow, None), "trial ended");
        assert!(
            !changes_the_plan(&Decision::Hold, cow, cow),
            "trial runs on"
        );
        assert!(!changes_the_plan(&Decision::Hold, None, None));
    }
}
