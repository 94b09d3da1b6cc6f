//! The checkpointer's side of the store's journal: every event (but a
//! restore's progress) becomes a compact record in a batch, and the batch
//! is written as `journal/<n>` by the saving thread when the model's state
//! is saved and on `flush()`/`finish()` — never on the caller's thread.
//!
//! Each write holds the whole batch so far, so a crash loses only what
//! was recorded since the last save; a full batch
//! ([`MAX_RECORDS_PER_OBJECT`]) starts object `n + 1`, and the writer
//! deletes object `n + 1 − MAX_OBJECTS`: the journal's garbage collection,
//! which bounds it to [`MAX_OBJECTS`] objects. Retention (which deletes
//! only manifests and packs) never touches it.

use super::saver::{JournalWrite, Saver};
use crate::format::journal::{
    Body, Entry, JOURNAL, MAX_OBJECTS, MAX_RECORDS_PER_OBJECT, clip, encode, journal_key,
    parse_journal_key,
};
use crate::model::{Decision, Event, FailureClass};
use crate::storage::Storage;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The batch being filled and where it goes.
#[derive(Debug)]
pub(crate) struct Journal {
    /// The number of the object the batch is written as.
    number: u64,
    /// The batch: every record of object `number`.
    batch: Vec<Entry>,
    /// Records added since the batch was last written.
    unwritten: bool,
    /// Objects past the bound, deleted with the next write.
    expire: Vec<String>,
}

impl Journal {
    /// Starts a new object after the store's newest, expiring any that a
    /// bound would not keep beside it; `None` (no journal) when the store
    /// cannot be listed.
    pub(crate) fn open(storage: &dyn Storage) -> Option<Self> {
        let mut numbers: Vec<u64> = storage
            .list(JOURNAL)
            .ok()?
            .iter()
            .filter_map(|key| parse_journal_key(key))
            .collect();
        numbers.sort_unstable();
        let number = numbers.last().map_or(0, |n| n.saturating_add(1));
        let expire = numbers
            .iter()
            .filter(|n| n.saturating_add(MAX_OBJECTS) <= number)
            .map(|n| journal_key(*n))
            .collect();
        Some(Journal {
            number,
            batch: Vec::new(),
            unwritten: false,
            expire,
        })
    }

    /// Records `event`; `interval` is the interval the checkpointer runs
    /// at. A full batch is queued on `saver` and a new one begun.
    pub(crate) fn record(&mut self, event: &Event, interval: Duration, saver: &Saver) {
        let Some(body) = body(event, interval) else {
            return;
        };
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.batch.push(Entry { at_ms, body });
        self.unwritten = true;
        if self.batch.len() >= MAX_RECORDS_PER_OBJECT {
            self.flush(saver);
            self.batch.clear();
            self.number = self.number.saturating_add(1);
            if let Some(old) = self.number.checked_sub(MAX_OBJECTS) {
                self.expire.push(journal_key(old));
            }
        }
    }

    /// Queues the batch on `saver` if it has records not written yet.
    pub(crate) fn flush(&mut self, saver: &Saver) {
        if !self.unwritten {
            return;
        }
        self.unwritten = false;
        // Records are clipped and at most MAX_RECORDS_PER_OBJECT, so they
        // encode; if not, the batch is dropped: the journal never costs a
        // checkpoint.
        if let Ok(bytes) = encode(&self.batch) {
            saver.journal(JournalWrite {
                key: journal_key(self.number),
                bytes,
                expire: std::mem::take(&mut self.expire),
            });
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The record of `event`: timings, sizes and the policy's words, never
/// state bytes. `None` for a restore's progress (the restore's own event
/// says what it took).
fn body(event: &Event, interval: Duration) -> Option<Body> {
    Some(match event {
        Event::Checkpoint(e) => Body::Checkpoint {
            step: e.step,
            scheme: e.scheme.code(),
            full_base: e.full_base,
            steps: e.steps,
            compute_ns: nanos(e.compute),
            stall_ns: nanos(e.stall),
            persist_ns: nanos(e.persist),
            interval_ns: nanos(interval),
            logical_bytes: e.logical_bytes,
            dirty_bytes: e.dirty_bytes,
            bytes_written: e.bytes_written,
            chain_length: e.chain_length,
            tier: e.tier,
        },
        Event::Restore(e) => Body::Restore {
            step: e.step,
            duration_ns: nanos(e.duration),
            chain_length: e.chain_length,
            bytes_read: e.bytes_read,
        },
        Event::Restart(e) => Body::Restart {
            class: failure_code(e.class),
            downtime_ns: e.downtime.map(nanos),
        },
        Event::StorageError(e) => Body::StorageError {
            op: clip(&e.op),
            transient: e.transient,
        },
        Event::Failover(e) => Body::Failover {
            pause_ns: nanos(e.pause),
            retried: e.retried,
        },
        Event::Decision(e) => decision(e.step, &e.decision)?,
        _ => return None,
    })
}

fn decision(step: Option<u64>, decision: &Decision) -> Option<Body> {
    Some(match decision {
        Decision::Advise(r) | Decision::Apply(r) => {
            let advice = r.advice();
            Body::Decision {
                step,
                kind: if matches!(decision, Decision::Advise(_)) {
                    1
                } else {
                    2
                },
                scheme: r.plan().base().code(),
                full_every: r.plan().full_every(),
                interval_ns: nanos(r.interval().every),
                checkpoints: 0,
                saving: Some(advice.saving),
                confidence: Some(advice.confidence),
                reason: clip(&advice.reason),
            }
        }
        Decision::Explore {
            scheme,
            checkpoints,
            interval,
            reason,
        } => Body::Decision {
            step,
            kind: 3,
            scheme: scheme.code(),
            full_every: None,
            interval_ns: nanos(*interval),
            checkpoints: *checkpoints,
            saving: None,
            confidence: None,
            reason: clip(reason),
        },
        _ => return None,
    })
}

/// The code a record stores for `class`: its place in
/// [`FailureClass::ALL`].
fn failure_code(class: FailureClass) -> u8 {
    FailureClass::ALL
        .iter()
        .position(|c| *c == class)
        .and_then(|i| u8::try_from(i).ok())
        .unwrap_or(u8::MAX)
}
