//! What [`Reader::journal`](super::Reader::journal) returns: the store's
//! journal of checkpoints, restores, restarts, storage errors, failovers
//! and policy decisions, as typed records.

use crate::error::Result;
use crate::format::journal::{Body, Entry, JOURNAL, decode, parse_journal_key};
use crate::format::journal::{MAX_OBJECTS, MAX_RECORDS_PER_OBJECT};
use crate::model::{
    CheckpointEvent, FailoverPauseEvent, FailureClass, Plan, RestartEvent, RestoreEvent,
    StorageErrorEvent,
};
use crate::scheme::Scheme;
use crate::storage::Storage;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Most records a store's journal holds: the writer keeps the newest 64
/// objects of at most 256 records each, deleting the oldest as it starts
/// a new one.
pub const JOURNAL_MAX_RECORDS: usize = MAX_OBJECTS as usize * MAX_RECORDS_PER_OBJECT;

/// One record of a store's journal: when the writer recorded it, and what.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct JournalRecord {
    /// Increases with each record, across runs of the writer (gaps where
    /// a run started a new object, or an object was lost).
    pub seq: u64,
    /// The writer's wall-clock time when it recorded the event.
    pub at: SystemTime,
    /// What happened.
    pub event: JournalEvent,
}

/// What a journal record says happened.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum JournalEvent {
    /// A checkpoint was committed. The event's steps and compute beside a
    /// persist or a drain and its `compression_ratio` are not journaled
    /// (0 and 1 here).
    Checkpoint {
        /// The checkpoint's timings and sizes.
        event: CheckpointEvent,
        /// The interval the checkpointer was running at.
        interval: Duration,
    },
    /// A committed checkpoint was drained to a lower tier (`event.tier`,
    /// 1 for the first lower one): `bytes_written` copied in `persist`.
    Drain(CheckpointEvent),
    /// A checkpoint was restored.
    Restore(RestoreEvent),
    /// The writer restarted after a failure (a crash of the run before).
    Restart(RestartEvent),
    /// A storage operation failed.
    StorageError(StorageErrorEvent),
    /// Storage failed over to the standby.
    Failover(FailoverPauseEvent),
    /// The policy applied a change, started a trial or gave advice.
    Decision(JournalDecision),
}

/// Which kind of decision a [`JournalDecision`] records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecisionKind {
    /// Advice only: nothing changed (an advising policy).
    Advise,
    /// The plan and interval were changed.
    Apply,
    /// A trial of another scheme began.
    Explore,
}

/// A policy decision as the journal keeps it: what, to which plan and
/// interval, why, and what the model predicted it would save.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct JournalDecision {
    /// The step of the checkpoint whose evaluation led to it; `None` for
    /// the trial a policy with nothing learnt begins with.
    pub step: Option<u64>,
    /// Advice, a change, or a trial.
    pub kind: DecisionKind,
    /// The plan advised, applied or tried.
    pub plan: Plan,
    /// The interval that goes with it.
    pub interval: Duration,
    /// For a trial, how many checkpoints it was planned to last; else 0.
    pub trial_checkpoints: u32,
    /// The predicted share of wall-clock time saved (advice and changes).
    pub saving: Option<f64>,
    /// The probability (0–1) that the change is an improvement.
    pub confidence: Option<f64>,
    /// Why, in the policy's words.
    pub reason: String,
}

/// Reads every journal object of `storage`, oldest first, skipping those
/// that are damaged, of a newer format, or deleted while being read.
pub(super) fn read(storage: &dyn Storage) -> Result<Vec<JournalRecord>> {
    let mut objects: Vec<(u64, String)> = storage
        .list(JOURNAL)?
        .into_iter()
        .filter_map(|key| parse_journal_key(&key).map(|n| (n, key)))
        .collect();
    objects.sort();
    let mut records = Vec::new();
    for (number, key) in objects {
        let entries = match storage.get(&key).and_then(|bytes| decode(&key, &bytes)) {
            Ok(entries) => entries,
            Err(e) if e.is_damage() => continue,
            Err(e) => return Err(e),
        };
        let base = number.saturating_mul(MAX_RECORDS_PER_OBJECT as u64);
        records.extend(
            entries
                .into_iter()
                .zip(0u64..)
                .filter_map(|(entry, i)| record(base.saturating_add(i), entry)),
        );
    }
    Ok(records)
}

/// The typed record of `entry`; `None` for one naming a scheme or failure
/// class this build does not know.
fn record(seq: u64, entry: Entry) -> Option<JournalRecord> {
    let event = match entry.body {
        Body::Checkpoint {
            step,
            scheme,
            full_base,
            steps,
            compute_ns,
            stall_ns,
            persist_ns,
            interval_ns,
            logical_bytes,
            dirty_bytes,
            bytes_written,
            chain_length,
            tier,
        } => {
            let mut e = CheckpointEvent::new(Scheme::from_code(scheme)?, step);
            e.full_base = full_base;
            e.steps = steps;
            e.compute = Duration::from_nanos(compute_ns);
            e.stall = Duration::from_nanos(stall_ns);
            e.persist = Duration::from_nanos(persist_ns);
            e.logical_bytes = logical_bytes;
            e.dirty_bytes = dirty_bytes;
            e.bytes_written = bytes_written;
            e.chain_length = chain_length;
            e.tier = tier;
            if tier > 0 {
                JournalEvent::Drain(e)
            } else {
                JournalEvent::Checkpoint {
                    event: e,
                    interval: Duration::from_nanos(interval_ns),
                }
            }
        }
        Body::Restore {
            step,
            duration_ns,
            chain_length,
            bytes_read,
        } => {
            let mut e = RestoreEvent::new(step, Duration::from_nanos(duration_ns), chain_length);
            e.bytes_read = bytes_read;
            e.logical_bytes = bytes_read;
            JournalEvent::Restore(e)
        }
        Body::Restart { class, downtime_ns } => {
            let mut e = RestartEvent::new(*FailureClass::ALL.get(usize::from(class))?);
            e.downtime = downtime_ns.map(Duration::from_nanos);
            JournalEvent::Restart(e)
        }
        Body::StorageError { op, transient } => {
            JournalEvent::StorageError(StorageErrorEvent::new(op, transient))
        }
        Body::Failover { pause_ns, retried } => JournalEvent::Failover(FailoverPauseEvent::new(
            Duration::from_nanos(pause_ns),
            retried,
        )),
        Body::Decision {
            step,
            kind,
            scheme,
            full_every,
            interval_ns,
            checkpoints,
            saving,
            confidence,
            reason,
        } => {
            let scheme = Scheme::from_code(scheme)?;
            JournalEvent::Decision(JournalDecision {
                step,
                kind: match kind {
                    1 => DecisionKind::Advise,
                    2 => DecisionKind::Apply,
                    3 => DecisionKind::Explore,
                    _ => return None,
                },
                plan: full_every.map_or(Plan::only(scheme), |k| Plan::with_full_every(scheme, k)),
                interval: Duration::from_nanos(interval_ns),
                trial_checkpoints: checkpoints,
                saving,
                confidence,
                reason,
            })
        }
    };
    Some(JournalRecord {
        seq,
        at: UNIX_EPOCH
            .checked_add(Duration::from_millis(entry.at_ms))
            .unwrap_or(UNIX_EPOCH),
        event,
    })
}
