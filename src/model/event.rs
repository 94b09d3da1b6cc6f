//! Events: what the checkpointer reports to the cost model and to
//! subscribers, and a running [`EventSummary`] of them.

use super::decision::Decision;
use super::failure::FailureClass;
use crate::scheme::Scheme;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// One committed checkpoint: how long it took and what it moved.
///
/// In a mix (e.g. incremental with a full base every k), each checkpoint
/// reports the scheme that took it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CheckpointEvent {
    /// The scheme that took this checkpoint.
    pub scheme: Scheme,
    /// The step it was taken at.
    pub step: u64,
    /// Steps of work since the previous checkpoint (0 if unknown).
    pub steps: u64,
    /// Useful compute time since the previous checkpoint ended, excluding
    /// any checkpoint stall: the `τ` of the interval formulas.
    pub compute: Duration,
    /// Of those `steps`, the ones that ran while an earlier checkpoint was
    /// being persisted in the background and no drain to a lower tier was
    /// in flight (0 if unknown or none).
    pub steps_beside_persist: u64,
    /// Compute time of the `steps_beside_persist` steps. Against the other
    /// steps' it shows how much a background persist slows the
    /// computation (CPU, memory bandwidth, copy-on-write page copies).
    pub compute_beside_persist: Duration,
    /// Of those `steps`, the ones that ran while a drain to a lower tier
    /// was in flight and no persist was (0 without lower tiers).
    pub steps_beside_drain: u64,
    /// Compute time of the `steps_beside_drain` steps: against the steps
    /// beside neither it shows how much a drain slows the computation (its
    /// reads, the upload's CPU and network), which prices the drain ratio.
    pub compute_beside_drain: Duration,
    /// Of those `steps`, the ones that ran while both a background persist
    /// and a drain were in flight (0 without lower tiers). At short
    /// intervals, where persists run back to back, these are most of the
    /// steps a drain overlaps: against the steps beside one of the two
    /// they tell the drain's share of the slowdown from the persist's.
    pub steps_beside_both: u64,
    /// Compute time of the `steps_beside_both` steps.
    pub compute_beside_both: Duration,
    /// Time the computation was blocked by this checkpoint.
    pub stall: Duration,
    /// Of `stall`, the time the capture waited for room in the background
    /// persist queue because earlier copy-on-write checkpoints were still
    /// persisting (zero for the synchronous schemes). It depends on the
    /// interval and on what persisted before, not on this checkpoint's
    /// size, so the model prices it from persist times and the interval
    /// rather than learning it as this checkpoint's cost.
    pub queue_wait: Duration,
    /// Time from the start of the checkpoint until it was durable (its
    /// `queue_wait` included). For a synchronous scheme it equals `stall`;
    /// for copy-on-write it runs on in the background after the stall.
    pub persist: Duration,
    /// Size of the whole state, uncompressed.
    pub logical_bytes: u64,
    /// Bytes changed since the previous checkpoint, as far as the state
    /// can tell (`logical_bytes` when it cannot).
    pub dirty_bytes: u64,
    /// Bytes written to storage (packs and manifest).
    pub bytes_written: u64,
    /// Uncompressed bytes captured divided by the bytes they were stored
    /// in (1 without compression).
    pub compression_ratio: f64,
    /// Checkpoints a restore of this one reads: 1 for a full checkpoint,
    /// 1 + the incrementals since the base otherwise.
    pub chain_length: u32,
    /// Storage tier written, 0 for the first (fastest). An event with
    /// `tier > 0` reports a *drain*: a committed checkpoint copied to a
    /// lower tier in the background, with `bytes_written` the bytes copied
    /// and `persist` the time the copy took (`stall` is zero: the
    /// computation did not wait). The model prices the drain ratio from
    /// these; they are counted as drains, not as checkpoints.
    pub tier: u8,
    /// True for the full base an incremental plan takes (its first
    /// checkpoint, and every one after the chain reaches its bound):
    /// `scheme` is then [`Scheme::Incremental`], and the model prices the
    /// checkpoint as a full one, since it stores the whole state.
    pub full_base: bool,
    /// True for a process's first capture of a state it did not restore:
    /// with no earlier capture to compare against, its `dirty_bytes` is
    /// the whole state, which says nothing about how fast the computation
    /// changes it, so the model learns no dirtying rate from it.
    pub first_capture: bool,
    /// How long retention took after this checkpoint was durable. For
    /// copy-on-write it runs on the persisting thread, which starts the
    /// next checkpoint's write only after it, so the model counts it in
    /// the thread's time per checkpoint; for the synchronous schemes it
    /// runs on the caller's thread, and the next checkpoint's `stall`
    /// includes it.
    pub retention: Duration,
}

impl CheckpointEvent {
    /// An event for a checkpoint by `scheme` at `step`, with every
    /// measurement zero (compression ratio 1, chain length 1); set the
    /// fields you measured.
    pub fn new(scheme: Scheme, step: u64) -> Self {
        CheckpointEvent {
            scheme,
            step,
            steps: 0,
            compute: Duration::ZERO,
            steps_beside_persist: 0,
            compute_beside_persist: Duration::ZERO,
            steps_beside_drain: 0,
            compute_beside_drain: Duration::ZERO,
            steps_beside_both: 0,
            compute_beside_both: Duration::ZERO,
            stall: Duration::ZERO,
            queue_wait: Duration::ZERO,
            persist: Duration::ZERO,
            logical_bytes: 0,
            dirty_bytes: 0,
            bytes_written: 0,
            compression_ratio: 1.0,
            chain_length: 1,
            tier: 0,
            full_base: false,
            first_capture: false,
            retention: Duration::ZERO,
        }
    }

    /// The stall less the wait for room in the persist queue: what this
    /// checkpoint itself blocked the computation for.
    pub(crate) fn own_stall(&self) -> Duration {
        self.stall.saturating_sub(self.queue_wait)
    }

    /// How long this checkpoint itself kept its persist busy: the persist
    /// less the wait for room in the persist queue (at least
    /// [`own_stall`](Self::own_stall)) and, for copy-on-write, the
    /// retention pass the persisting thread runs after it.
    pub(crate) fn own_persist(&self) -> Duration {
        let retention = if self.scheme == Scheme::CopyOnWrite {
            self.retention
        } else {
            Duration::ZERO
        };
        self.persist
            .saturating_sub(self.queue_wait)
            .max(self.own_stall())
            .saturating_add(retention)
    }
}

/// A completed restore.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RestoreEvent {
    /// The step restored.
    pub step: u64,
    /// Wall time of the restore, from listing the store to a usable state.
    pub duration: Duration,
    /// Checkpoints read (1 for a full one).
    pub chain_length: u32,
    /// Bytes read from storage.
    pub bytes_read: u64,
    /// Size of the restored state, uncompressed.
    pub logical_bytes: u64,
    /// The tier restored from, 0 for the first (fastest); a restore from
    /// a lower tier prices what a lost first tier costs.
    pub tier: u8,
}

impl RestoreEvent {
    /// A restore of `step` that took `duration` and read a chain of
    /// `chain_length` checkpoints; byte counts zero.
    pub fn new(step: u64, duration: Duration, chain_length: u32) -> Self {
        RestoreEvent {
            step,
            duration,
            chain_length,
            bytes_read: 0,
            logical_bytes: 0,
            tier: 0,
        }
    }
}

/// A restart after a failure, detected at start-up (e.g. a run marker
/// left behind by a process that did not finish).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RestartEvent {
    /// What the failure took away.
    pub class: FailureClass,
    /// Time from the failure to the restart, if known.
    pub downtime: Option<Duration>,
    /// Running time of the failed process that no event reported: from
    /// where the learned state the restarted model resumed from ends its
    /// report ([`Advisor::reported_until`](crate::model::Advisor::reported_until))
    /// to the failure, as far as the checkpointer can bound it (`None` if
    /// unknown). The model counts it as exposure to failures before it
    /// counts the failure: a process that dies is always one that ran on
    /// after its last save, so without it every failure-dense estimate
    /// of the MTBF would be short by that much per failure.
    pub unreported: Option<Duration>,
}

impl RestartEvent {
    /// A restart after a failure of `class`.
    pub fn new(class: FailureClass) -> Self {
        RestartEvent {
            class,
            downtime: None,
            unreported: None,
        }
    }
}

/// A storage operation that failed (and was surfaced or retried).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StorageErrorEvent {
    /// The operation: put, get, list, delete.
    pub op: String,
    /// Whether a retry may succeed.
    pub transient: bool,
}

impl StorageErrorEvent {
    /// A failed storage `op`.
    pub fn new(op: impl Into<String>, transient: bool) -> Self {
        StorageErrorEvent {
            op: op.into(),
            transient,
        }
    }
}

/// The active storage failed and the store moved to the standby.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FailoverPauseEvent {
    /// How long storage operations were paused.
    pub pause: Duration,
    /// Operations retried on the standby.
    pub retried: u64,
}

impl FailoverPauseEvent {
    /// A failover that paused storage for `pause`.
    pub fn new(pause: Duration, retried: u64) -> Self {
        FailoverPauseEvent { pause, retried }
    }
}

/// The policy acted on a checkpoint's evaluation: it applied a change,
/// started a trial of another scheme, or (in advise mode) gave advice.
/// Holding is not reported.
///
/// Every decision is an event, so a subscriber sees each one even when a
/// single call commits two checkpoints (a background persist finishing
/// beside a new one), where
/// [`Checkpointer::last_decision`](crate::Checkpointer::last_decision)
/// keeps only the newest.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DecisionEvent {
    /// The step of the checkpoint whose evaluation led to the decision;
    /// `None` for the trial a policy with nothing learnt begins with
    /// ([`PolicyState::begin`](crate::model::PolicyState::begin)).
    pub step: Option<u64>,
    /// What the policy decided.
    pub decision: Decision,
}

impl DecisionEvent {
    /// `decision`, taken after the checkpoint at `step` (or at start-up).
    pub fn new(step: Option<u64>, decision: Decision) -> Self {
        DecisionEvent { step, decision }
    }
}

/// Everything the checkpointer reports.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A checkpoint was committed.
    Checkpoint(CheckpointEvent),
    /// A checkpoint was restored.
    Restore(RestoreEvent),
    /// The run restarted after a failure.
    Restart(RestartEvent),
    /// A storage operation failed.
    StorageError(StorageErrorEvent),
    /// Storage failed over to the standby.
    Failover(FailoverPauseEvent),
    /// The policy applied a change, started a trial or gave advice.
    Decision(DecisionEvent),
    /// A long restore read another part of its checkpoint.
    RestoreProgress(RestoreProgressEvent),
}

/// How far a restore has read: emitted about once per percent of the
/// checkpoint's stored bytes (but no more often than once per read of up
/// to 32 MiB),
/// for checkpoints of 64 MiB or more, so that an application can draw a
/// progress bar (see `examples/paged.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RestoreProgressEvent {
    /// The step of the checkpoint being restored.
    pub step: u64,
    /// Stored bytes read and verified so far.
    pub bytes_done: u64,
    /// Stored bytes the restore reads in all.
    pub bytes_total: u64,
}

impl RestoreProgressEvent {
    /// `bytes_done` of `bytes_total` read, restoring the checkpoint of `step`.
    pub fn new(step: u64, bytes_done: u64, bytes_total: u64) -> Self {
        RestoreProgressEvent {
            step,
            bytes_done,
            bytes_total,
        }
    }

    /// The fraction read, from 0 to 1.
    pub fn fraction(&self) -> f64 {
        if self.bytes_total == 0 {
            1.0
        } else {
            self.bytes_done as f64 / self.bytes_total as f64
        }
    }
}

impl From<RestoreProgressEvent> for Event {
    fn from(e: RestoreProgressEvent) -> Self {
        Event::RestoreProgress(e)
    }
}

impl From<CheckpointEvent> for Event {
    fn from(e: CheckpointEvent) -> Self {
        Event::Checkpoint(e)
    }
}

impl From<RestoreEvent> for Event {
    fn from(e: RestoreEvent) -> Self {
        Event::Restore(e)
    }
}

impl From<RestartEvent> for Event {
    fn from(e: RestartEvent) -> Self {
        Event::Restart(e)
    }
}

impl From<StorageErrorEvent> for Event {
    fn from(e: StorageErrorEvent) -> Self {
        Event::StorageError(e)
    }
}

impl From<FailoverPauseEvent> for Event {
    fn from(e: FailoverPauseEvent) -> Self {
        Event::Failover(e)
    }
}

impl From<DecisionEvent> for Event {
    fn from(e: DecisionEvent) -> Self {
        Event::Decision(e)
    }
}

/// Sub-buckets per power of two in [`DurationHistogram`]: relative error
/// of a reported percentile at most `2^(1/16) − 1` ≈ 4.4 %.
const SUB_BUCKETS: f64 = 8.0;
/// Bucket 0 holds everything below 1 µs; the last one everything above
/// 1 µs·2⁴⁰ (about 12.7 days).
const BUCKETS: usize = 1 + 8 * 40;
const FLOOR_NANOS: f64 = 1_000.0;

/// A log-bucketed histogram of durations: constant size, mergeable,
/// serializable, percentiles within a few percent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DurationHistogram {
    counts: Vec<u64>,
    total: u64,
}

impl Default for DurationHistogram {
    fn default() -> Self {
        DurationHistogram {
            counts: vec![0; BUCKETS],
            total: 0,
        }
    }
}

impl DurationHistogram {
    fn bucket(d: Duration) -> usize {
        let nanos = d.as_nanos() as f64;
        if nanos < FLOOR_NANOS {
            return 0;
        }
        let i = 1.0 + (SUB_BUCKETS * (nanos / FLOOR_NANOS).log2()).floor();
        (i as usize).min(BUCKETS - 1)
    }

    /// Records one duration.
    pub fn record(&mut self, d: Duration) {
        if self.counts.len() != BUCKETS {
            // A decoded histogram of another shape: start over rather than
            // misplace counts.
            *self = DurationHistogram::default();
        }
        // Saturating: counts decoded from a damaged state may be anything.
        if let Some(c) = self.counts.get_mut(Self::bucket(d)) {
            *c = c.saturating_add(1);
            self.total = self.total.saturating_add(1);
        }
    }

    /// Durations recorded.
    #[cfg(test)]
    fn count(&self) -> u64 {
        self.total
    }

    /// The `q`-quantile (0 ≤ q ≤ 1), as the geometric middle of its bucket;
    /// `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.total == 0 || q.is_nan() {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        let index = self.counts.iter().position(|c| {
            seen = seen.saturating_add(*c);
            seen >= rank
        })?;
        if index == 0 {
            return Some(Duration::from_nanos(500));
        }
        let lower = FLOOR_NANOS * ((index as f64 - 1.0) / SUB_BUCKETS).exp2();
        let upper = FLOOR_NANOS * (index as f64 / SUB_BUCKETS).exp2();
        Some(Duration::from_nanos((lower * upper).sqrt() as u64))
    }
}

/// Running totals of the events seen: counts, sums and stall percentiles.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EventSummary {
    /// Checkpoints committed.
    pub checkpoints: u64,
    by_scheme: BTreeMap<u8, u64>,
    /// Total time the computation was blocked by checkpoints.
    pub total_stall: Duration,
    /// Total time checkpoints took to become durable.
    pub total_persist: Duration,
    /// Total useful compute time reported between checkpoints.
    pub total_compute: Duration,
    /// Total bytes written by checkpoints.
    pub bytes_written: u64,
    /// Total dirty bytes captured by checkpoints.
    pub dirty_bytes: u64,
    /// Logical size of the state at the last checkpoint.
    pub last_logical_bytes: u64,
    /// Restores completed.
    pub restores: u64,
    /// Total time spent restoring.
    pub total_restore: Duration,
    /// Restarts after failures.
    pub restarts: u64,
    /// Storage operations that failed.
    pub storage_errors: u64,
    /// Storage failovers.
    pub failovers: u64,
    /// Total time storage was paused by failovers.
    pub total_failover_pause: Duration,
    /// Checkpoints drained to a lower tier (events with `tier > 0`).
    pub drains: u64,
    /// Total time drains took.
    pub total_drain: Duration,
    /// Total bytes drains copied.
    pub bytes_drained: u64,
    stalls: DurationHistogram,
}

impl EventSummary {
    /// Adds one event to the summary.
    pub fn record(&mut self, event: &Event) {
        match event {
            Event::Checkpoint(e) if e.tier > 0 => {
                self.drains = self.drains.saturating_add(1);
                self.total_drain = self.total_drain.saturating_add(e.persist);
                self.bytes_drained = self.bytes_drained.saturating_add(e.bytes_written);
            }
            Event::Checkpoint(e) => {
                self.checkpoints = self.checkpoints.saturating_add(1);
                let by_scheme = self.by_scheme.entry(e.scheme.code()).or_default();
                *by_scheme = by_scheme.saturating_add(1);
                self.total_stall = self.total_stall.saturating_add(e.stall);
                self.total_persist = self.total_persist.saturating_add(e.persist);
                self.total_compute = self.total_compute.saturating_add(e.compute);
                self.bytes_written = self.bytes_written.saturating_add(e.bytes_written);
                self.dirty_bytes = self.dirty_bytes.saturating_add(e.dirty_bytes);
                self.last_logical_bytes = e.logical_bytes;
                self.stalls.record(e.stall);
            }
            Event::Restore(e) => {
                self.restores = self.restores.saturating_add(1);
                self.total_restore = self.total_restore.saturating_add(e.duration);
            }
            Event::Restart(_) => self.restarts = self.restarts.saturating_add(1),
            Event::StorageError(_) => self.storage_errors = self.storage_errors.saturating_add(1),
            Event::Failover(e) => {
                self.failovers = self.failovers.saturating_add(1);
                self.total_failover_pause = self.total_failover_pause.saturating_add(e.pause);
            }
            // What the policy did is in its own state
            // (`PolicyState::changes_applied`), not in the event totals.
            Event::Decision(_) | Event::RestoreProgress(_) => {}
        }
    }

    /// Checkpoints taken by `scheme`.
    pub fn checkpoints_by(&self, scheme: Scheme) -> u64 {
        self.by_scheme.get(&scheme.code()).copied().unwrap_or(0)
    }

    /// The `q`-quantile of checkpoint stalls (e.g. 0.5, 0.99), within
    /// about 4.4 %.
    pub fn stall_quantile(&self, q: f64) -> Option<Duration> {
        self.stalls.quantile(q)
    }

    /// Share of the run the computation spent blocked by checkpoints:
    /// stall / (stall + compute).
    pub fn stall_share(&self) -> f64 {
        let stall = self.total_stall.as_secs_f64();
        let all = stall + self.total_compute.as_secs_f64();
        if all > 0.0 { stall / all } else { 0.0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(scheme: Scheme, stall_ms: u64) -> Event {
        let mut e = CheckpointEvent::new(scheme, 1);
        e.stall = Duration::from_millis(stall_ms);
        e.persist = e.stall;
        e.compute = Duration::from_millis(100);
        e.bytes_written = 10;
        e.into()
    }

    #[test]
    fn percentiles_are_within_bucket_error() {
        let mut h = DurationHistogram::default();
        for ms in 1..=1000 {
            h.record(Duration::from_millis(ms));
        }
        for (q, want) in [(0.5, 0.5), (0.9, 0.9), (0.99, 0.99), (0.01, 0.01)] {
            let got = h.quantile(q).expect("recorded").as_secs_f64();
            assert!((got - want).abs() <= 0.045 * want, "q{q}: {got} vs {want}");
        }
        assert_eq!(h.count(), 1000);
        assert!(DurationHistogram::default().quantile(0.5).is_none());
    }

    #[test]
    fn extremes_land_in_the_end_buckets() {
        let mut h = DurationHistogram::default();
        h.record(Duration::ZERO);
        h.record(Duration::from_secs(100 * 86_400));
        assert_eq!(h.quantile(0.0), Some(Duration::from_nanos(500)));
        assert!(h.quantile(1.0).expect("recorded") > Duration::from_secs(86_400));
    }

    #[test]
    fn summary_counts_and_totals() {
        let mut s = EventSummary::default();
        s.record(&checkpoint(Scheme::Full, 30));
        s.record(&checkpoint(Scheme::Incremental, 10));
        s.record(&checkpoint(Scheme::Incremental, 20));
        s.record(&RestoreEvent::new(3, Duration::from_secs(2), 3).into());
        s.record(&RestartEvent::new(FailureClass::Process).into());
        s.record(&StorageErrorEvent::new("put", true).into());
        s.record(&FailoverPauseEvent::new(Duration::from_millis(250), 4).into());
        assert_eq!(s.checkpoints, 3);
        assert_eq!(s.checkpoints_by(Scheme::Incremental), 2);
        assert_eq!(s.checkpoints_by(Scheme::CopyOnWrite), 0);
        assert_eq!(s.total_stall, Duration::from_millis(60));
        assert_eq!(s.bytes_written, 30);
        assert_eq!(
            (s.restores, s.restarts, s.storage_errors, s.failovers),
            (1, 1, 1, 1)
        );
        assert_eq!(s.total_failover_pause, Duration::from_millis(250));
        let p50 = s.stall_quantile(0.5).expect("recorded").as_secs_f64();
        assert!((p50 - 0.020).abs() < 0.001);
        assert!((s.stall_share() - 60.0 / 360.0).abs() < 1e-12);
    }

    /// Counts come back from a stored model state, which may be damaged:
    /// full counters saturate instead of overflowing.
    #[test]
    fn full_counters_saturate() {
        let mut h = DurationHistogram {
            counts: vec![u64::MAX; BUCKETS],
            total: u64::MAX,
        };
        h.record(Duration::from_millis(3));
        assert_eq!(h.count(), u64::MAX);
        assert!(h.quantile(1.0).is_some());
        let mut s = EventSummary {
            checkpoints: u64::MAX,
            restores: u64::MAX,
            restarts: u64::MAX,
            storage_errors: u64::MAX,
            failovers: u64::MAX,
            stalls: h,
            ..EventSummary::default()
        };
        s.by_scheme.insert(Scheme::Full.code(), u64::MAX);
        for event in [
            checkpoint(Scheme::Full, 1),
            RestoreEvent::new(3, Duration::from_secs(2), 3).into(),
            RestartEvent::new(FailureClass::Process).into(),
            StorageErrorEvent::new("put", true).into(),
            FailoverPauseEvent::new(Duration::from_millis(250), 4).into(),
        ] {
            s.record(&event);
        }
        assert_eq!(s.checkpoints_by(Scheme::Full), u64::MAX);
        assert_eq!((s.checkpoints, s.failovers), (u64::MAX, u64::MAX));
    }
}
