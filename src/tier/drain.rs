//! The drain of one lower tier: a named background thread copies the
//! newest checkpoint queued for it from the first tier (packs, then the
//! manifest), applies that tier's retention, and retries with backoff
//! while the tier fails. The caller only queues (a few map operations):
//! it never waits for a lower tier, except in [`Drainer::wait`].

use super::copy::{CopyError, copy_checkpoint};
use super::{DrainEvent, TierStatus};
use crate::catalog::{Pins, apply_retention};
use crate::error::{Error, Result};
use crate::format::layout::ManifestName;
use crate::storage::Storage;
use crate::trace;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The longest wait between two attempts on a failing tier.
const MAX_RETRY: Duration = Duration::from_secs(60);

/// What a drain thread shares with the checkpointer.
#[derive(Debug)]
struct Shared {
    state: Mutex<DrainState>,
    changed: Condvar,
    /// Subscribers to [`DrainEvent`]s.
    listeners: Mutex<Vec<Sender<DrainEvent>>>,
    /// `DrainState::busy`, readable without the lock: the computation
    /// asks at every step whether a drain runs beside it.
    copying: AtomicBool,
}

#[derive(Debug, Default)]
struct DrainState {
    /// The checkpoint to drain next: only the newest queued one (a newer
    /// one makes an older, not yet begun, pointless).
    pending: Option<ManifestName>,
    /// True while an attempt runs.
    busy: bool,
    /// Attempts finished so far.
    attempts: u64,
    /// The attempt number of the last failure.
    failed_attempt: Option<u64>,
    /// Skip the backoff: the caller waits for an attempt.
    retry_now: bool,
    next_retry: Option<Instant>,
    stop: bool,
    status: TierStatus,
}

/// The drain of one lower tier (see the module doc).
#[derive(Debug)]
pub(crate) struct Drainer {
    shared: Arc<Shared>,
    pins: Pins,
    thread: Option<JoinHandle<()>>,
}

/// What the drain thread needs.
struct Job {
    shared: Arc<Shared>,
    name: String,
    source: Arc<dyn Storage>,
    target: Arc<dyn Storage>,
    keep_last: usize,
    retry: Duration,
    pins: Pins,
}

impl Drainer {
    /// Starts the drain of tier `name` (`target`) from `source`, the first
    /// tier, whose retention honours `pins`; `retry` is the first wait
    /// after a failure (doubling up to a minute).
    pub(crate) fn start(
        name: &str,
        source: Arc<dyn Storage>,
        target: Arc<dyn Storage>,
        keep_last: usize,
        retry: Duration,
        pins: Pins,
    ) -> Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(DrainState {
                status: TierStatus::new(name),
                ..DrainState::default()
            }),
            changed: Condvar::new(),
            listeners: Mutex::new(Vec::new()),
            copying: AtomicBool::new(false),
        });
        let job = Job {
            shared: Arc::clone(&shared),
            name: name.to_owned(),
            source,
            target,
            keep_last,
            retry,
            pins: pins.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("ckpt-drain-{name}"))
            .spawn(move || job.run())
            .map_err(|e| Error::storage("spawn", "ckpt-drain thread", e))?;
        Ok(Drainer {
            shared,
            pins,
            thread: Some(thread),
        })
    }

    /// Queues `name` (committed on the first tier) for this tier. It
    /// replaces a queued checkpoint whose drain has not begun.
    pub(crate) fn queue(&self, name: ManifestName) {
        self.pins.pin(&name.key());
        let mut state = self.shared.lock();
        let replaced = match state.pending.replace(name) {
            // The attempt running on it unpins it when it ends.
            Some(old) if state.busy => {
                let _ = old;
                None
            }
            old => old,
        };
        state.status.pending = Some(name.step);
        if state.retry_now || state.next_retry.is_none_or(|at| at <= Instant::now()) {
            // Its attempt starts as soon as the drain thread wakes: the
            // step the computation starts now runs beside it.
            self.shared.copying.store(true, Ordering::Relaxed);
        }
        drop(state);
        self.shared.changed.notify_all();
        if let Some(old) = replaced {
            self.pins.unpin(&old.key());
            let name = self.shared.lock().status.name.clone();
            self.shared.emit(DrainEvent::Superseded {
                tier: name,
                step: old.step,
                reason: "a newer checkpoint was queued before its drain began".to_owned(),
            });
        }
    }

    /// Waits until nothing is queued, or until an attempt begun after
    /// this call failed (the tier is down: waiting longer would only
    /// stall the caller; the drain goes on retrying). The backoff is
    /// skipped so that the wait is one attempt at most.
    pub(crate) fn wait(&self) {
        let mut state = self.shared.lock();
        let since = state.attempts + u64::from(state.busy);
        state.retry_now = true;
        self.shared.changed.notify_all();
        while state.pending.is_some() && state.failed_attempt.is_none_or(|a| a <= since) {
            state = self
                .shared
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state.retry_now = false;
    }

    /// True while a drain attempt runs (a copy to the tier, or its
    /// retention) or is queued to start at once, i.e. while it competes
    /// with the computation.
    pub(crate) fn busy(&self) -> bool {
        self.shared.copying.load(Ordering::Relaxed)
    }

    /// This tier's drain status now.
    pub(crate) fn status(&self) -> TierStatus {
        self.shared.lock().status.clone()
    }

    /// Sends every [`DrainEvent`] of this tier from now on to `sender`.
    pub(crate) fn subscribe(&self, sender: Sender<DrainEvent>) {
        self.shared
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(sender);
    }
}

impl Drop for Drainer {
    /// Stops after the attempt in progress (a queued drain not yet begun
    /// is left: the next run's drains supersede it).
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.changed.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, DrainState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn emit(&self, event: DrainEvent) {
        let mut listeners = self
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        listeners.retain(|listener| listener.send(event.clone()).is_ok());
    }
}

impl Job {
    fn run(self) {
        while let Some(name) = self.next() {
            let _span = trace::info_span!("drain", tier = %self.name, step = name.step).entered();
            let started = Instant::now();
            let outcome = self.attempt(&name);
            self.pins_after(&name, &outcome);
            let event = self.record(&name, outcome, started.elapsed());
            self.shared.emit(event);
        }
    }

    /// Waits for the next attempt: a queued checkpoint whose backoff has
    /// passed (or a caller waiting); `None` once stopped.
    fn next(&self) -> Option<ManifestName> {
        let mut state = self.shared.lock();
        loop {
            if state.stop {
                return None;
            }
            let now = Instant::now();
            let due = state.retry_now || state.next_retry.is_none_or(|at| at <= now);
            match state.pending {
                Some(name) if due => {
                    state.busy = true;
                    self.shared.copying.store(true, Ordering::Relaxed);
                    return Some(name);
                }
                Some(_) => {
                    let wait = state.next_retry.map_or(MAX_RETRY, |at| at - now);
                    state = self
                        .shared
                        .changed
                        .wait_timeout(state, wait)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                None => {
                    state = self
                        .shared
                        .changed
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }

    /// Copies `name`, then applies this tier's retention.
    fn attempt(&self, name: &ManifestName) -> std::result::Result<Drained, CopyError> {
        let (_, copied) = copy_checkpoint(self.source.as_ref(), self.target.as_ref(), name, false)?;
        let retention = apply_retention(
            self.target.as_ref(),
            self.keep_last,
            &BTreeSet::new(),
            &BTreeSet::new(),
        )
        .map_err(CopyError::Failed)?;
        Ok(Drained {
            packs: copied.packs,
            bytes: copied.bytes,
            retention,
        })
    }

    /// The first tier may let `name` go once its drain is over (done or
    /// pointless); a failed one stays pinned for the retry.
    fn pins_after(&self, name: &ManifestName, outcome: &std::result::Result<Drained, CopyError>) {
        let retrying = matches!(outcome, Err(CopyError::Failed(_)));
        let state = self.shared.lock();
        let still_queued = state.pending == Some(*name);
        drop(state);
        if !(retrying && still_queued) {
            self.pins.unpin(&name.key());
        }
    }

    /// Records the outcome of an attempt and wakes whoever waits.
    fn record(
        &self,
        name: &ManifestName,
        outcome: std::result::Result<Drained, CopyError>,
        took: Duration,
    ) -> DrainEvent {
        let mut state = self.shared.lock();
        state.busy = false;
        self.shared.copying.store(false, Ordering::Relaxed);
        state.attempts += 1;
        let attempt = state.attempts;
        let done = |state: &mut DrainState| {
            if state.pending == Some(*name) {
                state.pending = None;
                state.status.pending = None;
            }
            state.next_retry = None;
            state.status.failures = 0;
        };
        let event = match outcome {
            Ok(drained) => {
                trace::info!(packs_copied = drained.packs, bytes_copied = drained.bytes, took = ?took, "drained");
                done(&mut state);
                state.status.drained = Some(name.step);
                state.status.last_error = None;
                DrainEvent::Drained {
                    tier: self.name.clone(),
                    step: name.step,
                    key: name.key(),
                    packs_copied: drained.packs,
                    bytes_copied: drained.bytes,
                    took,
                    retention: drained.retention,
                }
            }
            Err(CopyError::SourceGone(error)) => {
                trace::info!(error = %error.report(), "drain superseded: the first tier no longer holds the checkpoint whole");
                done(&mut state);
                DrainEvent::Superseded {
                    tier: self.name.clone(),
                    step: name.step,
                    reason: format!(
                        "the first tier no longer holds it whole: {}",
                        error.report()
                    ),
                }
            }
            Err(CopyError::Failed(error)) => {
                state.status.failures += 1;
                let shift = state.status.failures.saturating_sub(1).min(16);
                let retry_in = self.retry.saturating_mul(1 << shift).min(MAX_RETRY);
                state.next_retry = Some(Instant::now() + retry_in);
                state.failed_attempt = Some(attempt);
                state.status.last_error = Some(error.clone());
                trace::warn!(error = %error.report(), failures = state.status.failures, retry_in = ?retry_in, "drain failed");
                DrainEvent::Failed {
                    tier: self.name.clone(),
                    step: name.step,
                    error,
                    failures: state.status.failures,
                    retry_in,
                }
            }
        };
        drop(state);
        self.shared.changed.notify_all();
        event
    }
}

/// A successful drain.
struct Drained {
    packs: usize,
    bytes: u64,
    retention: crate::catalog::RetentionReport,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Fault, FaultyStorage, MemStorage};
    use std::io::ErrorKind;

    fn name(step: u64) -> ManifestName {
        ManifestName {
            seq: step,
            step,
            id: u128::from(step),
        }
    }

    #[test]
    fn a_queued_drain_competes_from_the_moment_it_is_queued_unless_it_backs_off() {
        let source = FaultyStorage::new(MemStorage::new());
        let faults = source.control();
        faults.fail_now(Fault::Error(ErrorKind::ConnectionReset));
        let retry = Duration::from_secs(600);
        let drainer = Drainer::start(
            "remote",
            Arc::new(source),
            Arc::new(MemStorage::new()),
            2,
            retry,
            Pins::default(),
        )
        .unwrap();
        let (sender, events) = std::sync::mpsc::channel();
        drainer.subscribe(sender);
        // The step the computation starts right after a checkpoint is
        // queued runs beside its drain, scheduled or not yet.
        drainer.queue(name(1));
        assert!(drainer.busy());
        let failed = events.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(matches!(failed, DrainEvent::Failed { .. }), "{failed:?}");
        assert!(!drainer.busy());
        // Queued during the backoff, it waits (minutes here): no step
        // runs beside it.
        drainer.queue(name(2));
        assert!(!drainer.busy());
    }
}
