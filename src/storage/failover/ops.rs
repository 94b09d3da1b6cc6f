//! The operation path: the gate, running an operation on one epoch's
//! pair, and the in-flight record from start to finish. Mirrored
//! operations are in `mirror`, relocation in `relocate`, the backend
//! calls in `call`.

use super::call::{Attempt, Pending};
use super::op::{BorrowedOp, Op, Output, OwnedOp};
use super::{Backend, FailoverEvent, FailoverMode, FailoverStorage, Gate, OpRecord, RecordState};
use crate::error::Result;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What running an operation on one epoch's pair came to.
pub(super) enum Outcome {
    Done(Result<Output>),
    /// The active failed: relocate, then retry.
    ActiveFailed(String),
    /// Shared mode: the call on the active ran past its deadline and may
    /// still finish; see [`FailoverStorage::wait_out`].
    ActiveOverran(String, Pending),
    /// The pair changed under the operation: retry on the new one.
    Retry,
}

/// An attempt on the active, as the outcome of the operation.
pub(super) fn outcome_of(attempt: Attempt) -> Outcome {
    match attempt {
        Attempt::Ok(output) => Outcome::Done(Ok(output)),
        Attempt::Answer(e) => Outcome::Done(Err(e)),
        Attempt::Failed(cause) | Attempt::Overran(cause, _) => Outcome::ActiveFailed(cause),
    }
}

/// The backends one attempt uses, as of one epoch.
pub(super) struct Pair {
    pub(super) epoch: u64,
    pub(super) active: Arc<Backend>,
    /// Only in mirrored mode (a shared-mode standby is not written).
    pub(super) standby: Option<Arc<Backend>>,
}

impl FailoverStorage {
    /// Runs `op` through the gate, failing over and retrying as needed.
    pub(super) fn execute(&self, op: BorrowedOp<'_>) -> Result<Output> {
        let started = Instant::now();
        let id = self.register(&op);
        let mut owned: Option<Arc<OwnedOp>> = None;
        let mut delayed = false;
        let mut last_call = Duration::ZERO;
        let result = loop {
            let pair = match self.enter(id, &mut delayed) {
                Ok(pair) => pair,
                Err(e) => break Err(e),
            };
            let call_started = Instant::now();
            let (outcome, wrote) = self.run_on(&pair, &op, &mut owned);
            last_call = call_started.elapsed();
            self.leave(id, if wrote { op.keys() } else { Vec::new() });
            match outcome {
                Outcome::Done(result) => break result,
                Outcome::Retry => delayed = true,
                Outcome::ActiveFailed(cause) => {
                    delayed = true;
                    if let Err(e) = self.relocate(pair.epoch, cause, false) {
                        break Err(e);
                    }
                }
                Outcome::ActiveOverran(cause, pending) => {
                    delayed = true;
                    let waited = self.wait_out(id, &pair, &op, cause, &pending, started);
                    last_call = call_started.elapsed();
                    match waited {
                        Ok(Some(result)) => break result,
                        Ok(None) => {}
                        Err(e) => break Err(e),
                    }
                }
            }
        };
        let paused = if result.is_ok() {
            started.elapsed().saturating_sub(last_call)
        } else {
            started.elapsed()
        };
        self.finish(id, delayed, paused, started.elapsed());
        result
    }

    fn register(&self, op: &BorrowedOp<'_>) -> u64 {
        let mut st = self.state();
        let id = st.next_op;
        st.next_op += 1;
        st.ops.insert(
            id,
            OpRecord {
                op: op.kind(),
                key: op.key().to_owned(),
                started: Instant::now(),
                attempts: 0,
                state: RecordState::AtGate,
            },
        );
        id
    }

    /// Waits at the gate, then marks the operation as running on this
    /// epoch's pair.
    fn enter(&self, id: u64, delayed: &mut bool) -> Result<Pair> {
        let mut st = self.state();
        loop {
            if let Some(down) = st.down_error() {
                return Err(down);
            }
            if matches!(st.gate, Gate::Open) {
                break;
            }
            *delayed = true;
            if let Some(record) = st.ops.get_mut(&id) {
                record.state = RecordState::AtGate;
            }
            st = self.wait(st);
        }
        st.running += 1;
        let active = Arc::clone(&st.active);
        if let Some(record) = st.ops.get_mut(&id) {
            record.attempts += 1;
            record.state = RecordState::Running(Arc::clone(&active));
        }
        Ok(Pair {
            epoch: st.epoch,
            active,
            standby: match self.mode {
                FailoverMode::Mirrored => st.standby.clone(),
                FailoverMode::Shared => None,
            },
        })
    }

    fn leave(&self, id: u64, wrote: Vec<&str>) {
        let mut st = self.state();
        st.running = st.running.saturating_sub(1);
        if let Some(record) = st.ops.get_mut(&id) {
            record.state = RecordState::Retrying;
        }
        if let Some(syncing) = st.syncing.as_mut() {
            syncing.dirty.extend(wrote.into_iter().map(str::to_owned));
        }
        if st.running == 0 {
            self.changed.notify_all();
        }
    }

    fn finish(&self, id: u64, delayed: bool, paused: Duration, total: Duration) {
        let event = {
            let mut st = self.state();
            let record = st.ops.remove(&id);
            st.counters.operations += 1;
            if delayed {
                let c = &mut st.counters;
                c.paused_operations += 1;
                c.total_pause = c.total_pause.saturating_add(paused);
                c.max_pause = c.max_pause.max(paused);
            }
            record.filter(|_| delayed).map(|r| FailoverEvent::Paused {
                op: r.op,
                key: r.key,
                paused,
                total,
                attempts: r.attempts,
            })
        };
        self.emit(event.into_iter().collect());
    }

    /// Runs `op` on one epoch's pair. Also says whether the active now
    /// holds a write (for a re-sync in progress).
    fn run_on(
        &self,
        pair: &Pair,
        op: &BorrowedOp<'_>,
        owned: &mut Option<Arc<OwnedOp>>,
    ) -> (Outcome, bool) {
        match (pair.standby.as_ref(), op) {
            (
                Some(standby),
                Op::Put(..)
                | Op::PutIfAbsent(..)
                | Op::PutParts(..)
                | Op::Delete(_)
                | Op::DeleteMany(..),
            ) => self.mirrored_write(pair, standby, op, owned),
            (Some(standby), Op::Get(_) | Op::GetRange(..) | Op::ReadInto(..)) => {
                (self.mirrored_get(pair, standby, op, owned), false)
            }
            (Some(standby), Op::List(_)) => (self.mirrored_list(pair, standby, op, owned), false),
            (None, _) => {
                let outcome = match self.attempt(&pair.active, op, owned) {
                    Attempt::Overran(cause, pending) if self.mode == FailoverMode::Shared => {
                        Outcome::ActiveOverran(cause, pending)
                    }
                    other => outcome_of(other),
                };
                let wrote = op.is_write() && matches!(outcome, Outcome::Done(Ok(_)));
                (outcome, wrote)
            }
        }
    }
}
