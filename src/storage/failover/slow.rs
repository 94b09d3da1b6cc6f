//! Shared mode: telling a slow store from a dead path. A call that runs
//! past its deadline on the active path is kept running while the other
//! path is checked and, side by side, the suspect active path is probed:
//! if the other path answers in time and the suspect does not within
//! about as long ([`FailoverStorage::suspect_allowance`]), the active
//! path is sick and the pair fails over, one deadline and a probe round
//! after the call started; if the other path overruns too (or there is
//! none), the store itself is slow and the operation waits for its
//! call, up to `slow_store_patience`.

use super::call::{Attempt, Pending, Trouble, start_call};
use super::op::{BorrowedOp, Op, Output};
use super::ops::Pair;
use super::{
    Backend, DEFAULT_DEADLINE, FailoverEvent, FailoverStorage, Gate, OpKind, PROBE_PREFIX,
    RecordState, SlowVerdict, State,
};
use crate::error::{Error, Result};
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The suspect active path's probe is allowed at least this fraction of
/// the deadline (see [`FailoverStorage::suspect_allowance`]).
const SUSPECT_FLOOR: u32 = 4;

impl FailoverStorage {
    /// Waits out a call that overran its deadline on the active path of
    /// `pair` (shared mode). `Ok(Some(_))` is the operation's result,
    /// `Ok(None)` means "retry" (the pair failed over, or the path died),
    /// `Err` that the pair is down.
    pub(super) fn wait_out(
        &self,
        id: u64,
        pair: &Pair,
        op: &BorrowedOp<'_>,
        cause: String,
        pending: &Pending,
        started: Instant,
    ) -> Result<Option<Result<Output>>> {
        // Re-judged at most once a deadline, so a slow store gets one probe
        // per deadline, not one per waiting operation.
        let step = self.config.deadline.unwrap_or(DEFAULT_DEADLINE);
        let epoch = pair.epoch;
        self.mark_slow(id, &pair.active);
        loop {
            self.relocate(epoch, cause.clone(), true)?;
            if self.state().epoch != epoch {
                return Ok(None); // the active path was sick: failed over
            }
            let left = match self.config.slow_store_patience {
                Some(patience) => patience.saturating_sub(started.elapsed()),
                None => step,
            };
            if left.is_zero() {
                return Ok(Some(Err(self.out_of_patience(op))));
            }
            let Some(result) = pending.wait_on(&pair.active, step.min(left), op.key()) else {
                continue;
            };
            return match self.classify(&pair.active, result) {
                Attempt::Ok(output) => Ok(Some(Ok(output))),
                Attempt::Answer(e) => Ok(Some(Err(e))),
                Attempt::Failed(why) | Attempt::Overran(why, _) => {
                    // The late answer says the path is dead.
                    self.relocate(epoch, why, false).map(|()| None)
                }
            };
        }
    }

    /// Starts the probe of the suspect active path after an overrun: a
    /// read of a probe key that does not exist, run while the standby
    /// path is checked. Any answer, `NotFound` included, says the path
    /// reaches the store; see [`suspect_answered`](Self::suspect_answered).
    pub(super) fn start_suspect_probe(&self, active: &Arc<Backend>) -> Pending {
        let key = format!("{PROBE_PREFIX}alive-{:016x}", rand::random::<u64>());
        let op: BorrowedOp<'_> = Op::Get(&key);
        start_call(&self.pool, active, Arc::new(op.to_owned_op()))
    }

    /// How long the suspect active path's probe may take, from its start,
    /// once the standby path passed its check in `standby_took`: twice
    /// that (the store answers the standby that fast, so a working path
    /// answers about as fast), but at least a quarter of the deadline, and
    /// at most the deadline. So a hung path costs its overrun (one
    /// deadline) plus this, not a second deadline.
    pub(super) fn suspect_allowance(&self, standby_took: Duration) -> Duration {
        let deadline = self.config.deadline.unwrap_or(DEFAULT_DEADLINE);
        standby_took
            .saturating_mul(2)
            .max(deadline / SUSPECT_FLOOR)
            .min(deadline)
    }

    /// Whether the suspect path's probe answered within `limit` more with
    /// anything but an error that says the path is unavailable.
    pub(super) fn suspect_answered(
        &self,
        active: &Backend,
        probe: &Pending,
        limit: Duration,
    ) -> bool {
        match probe.wait(limit, PROBE_PREFIX) {
            Some(result) => !matches!(self.classify(active, result), Attempt::Failed(_)),
            None => false,
        }
    }

    fn mark_slow(&self, id: u64, active: &Arc<Backend>) {
        let mut st = self.state();
        st.counters.slow_store_operations += 1;
        if let Some(record) = st.ops.get_mut(&id) {
            record.state = RecordState::SlowStore(Arc::clone(active));
        }
    }

    fn out_of_patience(&self, op: &BorrowedOp<'_>) -> Error {
        let patience = self.config.slow_store_patience.unwrap_or_default();
        let name = match op.kind() {
            OpKind::Put => "put",
            OpKind::Get | OpKind::GetRange => "get",
            OpKind::List => "list",
            OpKind::Delete => "delete",
        };
        Error::storage(
            name,
            op.key(),
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the store stayed slow on every path for {patience:?} (slow_store_patience); \
                     the pair is still up: retry, or raise slow_store_patience"
                ),
            ),
        )
    }

    /// Called by an overrun's relocation with the gate open: when the
    /// store was found slow recently in this epoch, or there is no other
    /// path to compare with, the active stays without a probe. Returns the
    /// events to emit then, `None` when the standby must be probed.
    pub(super) fn slow_without_check(
        &self,
        st: &mut State,
        epoch: u64,
        cause: &str,
    ) -> Option<Vec<FailoverEvent>> {
        let step = self.config.deadline.unwrap_or(DEFAULT_DEADLINE);
        let fresh = st
            .slow
            .as_ref()
            .is_some_and(|v| v.epoch == epoch && v.at.elapsed() < step);
        if fresh {
            return Some(Vec::new());
        }
        if st.standby.is_some() {
            return None;
        }
        let evidence = "there is no standby path to compare with".to_owned();
        Some(vec![self.found_slow(st, epoch, cause, evidence)])
    }

    /// The standby path failed its probe after the active overran: the
    /// active stays. A standby that overran too stays the standby (the
    /// store is slow); one that failed outright is dead and leaves.
    pub(super) fn stay_on_slow_store(
        &self,
        st: &mut State,
        epoch: u64,
        standby: Arc<Backend>,
        trouble: Trouble,
        cause: String,
    ) -> Vec<FailoverEvent> {
        st.gate = Gate::Open;
        let mut events = Vec::new();
        let evidence = match trouble {
            Trouble::Slow(why) => {
                format!("the standby path {:?} overran too ({why})", standby.name)
            }
            Trouble::Dead(why) => {
                let evidence = format!("the standby path {:?} is dead ({why})", standby.name);
                if st
                    .standby
                    .as_ref()
                    .is_some_and(|s| Arc::ptr_eq(s, &standby))
                {
                    st.standby = None;
                    st.failed.push(Arc::clone(&standby));
                    st.counters.standby_losses += 1;
                    events.push(FailoverEvent::StandbyLost {
                        standby: standby.name.clone(),
                        cause: why,
                    });
                }
                evidence
            }
        };
        events.push(self.found_slow(st, epoch, &cause, evidence));
        events
    }

    /// Both paths answered their probes in time after an overrun: the
    /// store recovered (or the call is merely large). The active stays,
    /// and the call is waited on for another deadline before it is judged
    /// again.
    pub(super) fn store_recovered(&self, st: &mut State, epoch: u64) {
        st.gate = Gate::Open;
        st.slow = Some(SlowVerdict {
            epoch,
            at: Instant::now(),
        });
    }

    fn found_slow(
        &self,
        st: &mut State,
        epoch: u64,
        cause: &str,
        evidence: String,
    ) -> FailoverEvent {
        st.slow = Some(SlowVerdict {
            epoch,
            at: Instant::now(),
        });
        st.counters.slow_store_waits += 1;
        FailoverEvent::SlowStore {
            path: st.active.name.clone(),
            cause: cause.to_owned(),
            evidence,
        }
    }
}
