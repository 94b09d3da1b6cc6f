//! Relocation: failing over to the standby, losing a standby, and the
//! pair going down.

use super::call::Trouble;
use super::{Backend, FailoverEvent, FailoverMode, FailoverStorage, Gate};
use crate::error::Result;
use std::sync::Arc;
use std::time::Instant;

impl FailoverStorage {
    /// Drops `standby` from the pair after it failed. Returns false if the
    /// pair changed meanwhile (the standby may be the active now), in which
    /// case the operation must be retried on the new pair.
    pub(super) fn lose_standby(&self, epoch: u64, standby: &Arc<Backend>, cause: String) -> bool {
        let event = {
            let mut st = self.state();
            if st.epoch != epoch {
                return false;
            }
            match &st.standby {
                Some(current) if Arc::ptr_eq(current, standby) => {
                    st.standby = None;
                    st.failed.push(Arc::clone(standby));
                    st.counters.standby_losses += 1;
                    Some(FailoverEvent::StandbyLost {
                        standby: standby.name.clone(),
                        cause,
                    })
                }
                _ => None, // another operation already dropped it
            }
        };
        self.emit(event.into_iter().collect());
        true
    }

    /// Fails over from the active of `failed_epoch`, or waits for the
    /// relocation another operation is doing. `Ok` means "retry".
    ///
    /// `overran` (shared mode only): the active's call ran past its
    /// deadline rather than failing. Then the pair fails over only if the
    /// standby path passes its health check in time and the active path,
    /// probed meanwhile, does not answer within about as long; if the
    /// standby overruns too, or there is no standby, the store itself is
    /// slow and the active stays (see [`wait_out`](Self::wait_out)): a
    /// slow store never takes the pair down.
    pub(super) fn relocate(&self, failed_epoch: u64, cause: String, overran: bool) -> Result<()> {
        let mut st = self.state();
        loop {
            if let Some(down) = st.down_error() {
                return Err(down);
            }
            if st.epoch != failed_epoch {
                return Ok(()); // someone else relocated already
            }
            if matches!(st.gate, Gate::Open) {
                break;
            }
            st = self.wait(st);
        }
        if overran && let Some(events) = self.slow_without_check(&mut st, failed_epoch, &cause) {
            drop(st);
            self.emit(events);
            return Ok(());
        }
        // This operation leads the relocation.
        let started = Instant::now();
        st.gate = Gate::Relocating;
        let failed = Arc::clone(&st.active);
        // An overrun may leave the standby where it is, so it stays in
        // place meanwhile (and no readmission takes its place).
        let standby = if overran {
            st.standby.clone()
        } else {
            st.standby.take()
        };
        st.syncing = None; // a re-sync from the failed active is void
        drop(st);

        // After an overrun, the suspect active path is probed at the same
        // time as the standby path, so that a hung path costs one deadline
        // (its overrun) and a probe round, not a second deadline.
        let suspect = overran.then(|| self.start_suspect_probe(&failed));
        let check = match &standby {
            Some(standby) => self.check_path(standby),
            None => Err(Trouble::Dead(
                "there is no standby to fail over to".to_owned(),
            )),
        };
        // A prompt standby blames the active path only if that path is
        // still slow: the overrun call may date from before the store
        // recovered. The active path gets about as long as the standby
        // took (see `suspect_allowance`).
        let recovered = match (&suspect, &check) {
            (Some(probe), Ok(())) => {
                let took = started.elapsed();
                let left = self.suspect_allowance(took).saturating_sub(took);
                self.suspect_answered(&failed, probe, left)
            }
            _ => false,
        };

        let mut st = self.state();
        let relocation = started.elapsed();
        let (events, result) = match (standby, check) {
            _ if recovered => {
                self.store_recovered(&mut st, failed_epoch);
                (Vec::new(), Ok(()))
            }
            (Some(standby), Err(trouble)) if overran => {
                let events =
                    self.stay_on_slow_store(&mut st, failed_epoch, standby, trouble, cause);
                (events, Ok(()))
            }
            (Some(standby), Ok(())) => {
                if overran {
                    st.standby = None;
                }
                st.active = Arc::clone(&standby);
                failed.set_aside();
                st.failed.push(Arc::clone(&failed));
                st.epoch += 1;
                st.gate = Gate::Open;
                let c = &mut st.counters;
                c.failovers += 1;
                c.total_relocation = c.total_relocation.saturating_add(relocation);
                c.max_relocation = c.max_relocation.max(relocation);
                let event = FailoverEvent::FailedOver {
                    from: failed.name.clone(),
                    to: standby.name.clone(),
                    cause,
                    relocation,
                    epoch: st.epoch,
                };
                (vec![event], Ok(()))
            }
            (standby, check) => {
                let check = check.map_err(Trouble::into_cause);
                let (reason, holder) = self.down_reason(&failed, standby.as_deref(), &cause, check);
                if let Some(standby) = standby {
                    st.failed.push(standby);
                }
                st.gate = Gate::Down {
                    reason: reason.clone(),
                    holder: holder.clone(),
                };
                let error = st.down_error();
                (
                    vec![FailoverEvent::Down { reason, holder }],
                    error.map_or(Ok(()), Err),
                )
            }
        };
        self.changed.notify_all();
        drop(st);
        self.emit(events);
        result
    }

    /// Says what failed and which backend holds every committed object.
    fn down_reason(
        &self,
        active: &Backend,
        standby: Option<&Backend>,
        cause: &str,
        check: std::result::Result<(), String>,
    ) -> (String, String) {
        let standby_part = match (standby, &check) {
            (Some(s), Err(e)) => format!("standby {:?} failed its health check ({e})", s.name),
            (Some(s), Ok(())) => format!("standby {:?} was not usable", s.name),
            (None, Err(e)) => e.clone(),
            (None, Ok(())) => "there is no standby".to_owned(),
        };
        let reason = format!(
            "active {:?} failed ({cause}) and {standby_part}",
            active.name
        );
        let holder = match (self.mode, standby) {
            (FailoverMode::Shared, Some(s)) => format!(
                "the shared store (reached through {:?} or {:?})",
                active.name, s.name
            ),
            (FailoverMode::Shared, None) => {
                format!("the shared store (reached through {:?})", active.name)
            }
            (FailoverMode::Mirrored, Some(s)) => {
                format!("{:?} and {:?} (each holds all of it)", active.name, s.name)
            }
            (FailoverMode::Mirrored, None) => format!("{:?}", active.name),
        };
        (reason, holder)
    }
}
