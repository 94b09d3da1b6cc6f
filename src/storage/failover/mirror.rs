//! Mirrored mode: writes that reach both stores in order, and reads and
//! listings checked against the standby for data the active has lost.

use super::call::Attempt;
use super::op::{BorrowedOp, Op, Output, OwnedOp};
use super::ops::{Outcome, Pair, outcome_of};
use super::{Backend, FailoverStorage, PROBE_PREFIX};
use crate::error::Error;
use std::collections::BTreeSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, MutexGuard, PoisonError};

/// What comparing the active's listing with the standby's came to.
pub(super) enum Listings {
    Settled(Outcome),
    /// The active lacks this many keys the standby lists.
    ActiveLacks(usize),
}

impl FailoverStorage {
    /// A put goes to the active, then the standby; a delete to the
    /// standby, then the active — so the standby never holds what the
    /// active lacks. The keys' stripes are held throughout, so that writes
    /// of one key reach both mirrors in the same order (a put racing a
    /// delete could otherwise leave them different).
    ///
    /// A conditional put is decided by the active alone; only a create
    /// reaches the standby, as a plain put of the same bytes. (A loser
    /// writes nothing: the winner held the stripe until its bytes were on
    /// both mirrors.)
    pub(super) fn mirrored_write(
        &self,
        pair: &Pair,
        standby: &Arc<Backend>,
        op: &BorrowedOp<'_>,
        owned: &mut Option<Arc<OwnedOp>>,
    ) -> (Outcome, bool) {
        let _in_order = self.lock_keys(&op.keys());
        let standby_first = matches!(op, Op::Delete(_) | Op::DeleteMany(..));
        if standby_first && !self.on_standby(pair, standby, op, owned) {
            return (Outcome::Retry, false);
        }
        let output = match self.attempt(&pair.active, op, owned) {
            Attempt::Ok(output) => output,
            other => return (outcome_of(other), false),
        };
        let mirrored = match (op, &output) {
            (_, Output::Created(false)) => true,
            (Op::PutIfAbsent(key, data), _) => {
                let mut plain = match owned.as_deref() {
                    Some(Op::PutIfAbsent(k, d)) => {
                        Some(Arc::new(Op::Put(k.clone(), Arc::clone(d))))
                    }
                    _ => None,
                };
                self.on_standby(pair, standby, &Op::Put(key, data), &mut plain)
            }
            _ => standby_first || self.on_standby(pair, standby, op, owned),
        };
        if !mirrored {
            return (Outcome::Retry, true);
        }
        (Outcome::Done(Ok(output)), true)
    }

    /// Runs a write on the standby; if it fails in any way the standby
    /// leaves the pair. False when the pair changed meanwhile: retry.
    fn on_standby(
        &self,
        pair: &Pair,
        standby: &Arc<Backend>,
        op: &BorrowedOp<'_>,
        owned: &mut Option<Arc<OwnedOp>>,
    ) -> bool {
        match self.attempt(standby, op, owned) {
            Attempt::Ok(_) => true,
            Attempt::Answer(e) => self.lose_standby(pair.epoch, standby, e.report().to_string()),
            Attempt::Failed(cause) | Attempt::Overran(cause, _) => {
                self.lose_standby(pair.epoch, standby, cause)
            }
        }
    }

    /// A read from the active; "not found" is checked against the standby,
    /// which holding the object means the active has lost data.
    pub(super) fn mirrored_get(
        &self,
        pair: &Pair,
        standby: &Arc<Backend>,
        op: &BorrowedOp<'_>,
        owned: &mut Option<Arc<OwnedOp>>,
    ) -> Outcome {
        match self.attempt(&pair.active, op, owned) {
            Attempt::Answer(Error::NotFound { .. }) => {}
            other => return outcome_of(other),
        }
        // Under the key's stripe no mirrored write of it is half done, so
        // the two backends must agree on whether it exists.
        let _consistent = self.lock_key(op.key());
        let probe: BorrowedOp<'_> = Op::GetRange(op.key(), 0..0);
        let cause = match self.attempt(standby, &probe, &mut None) {
            Attempt::Ok(_) => None,
            Attempt::Answer(Error::NotFound { .. }) => {
                // Neither has it (now): the active's answer stands.
                return outcome_of(self.attempt(&pair.active, op, owned));
            }
            Attempt::Answer(e) => Some(e.report().to_string()),
            Attempt::Failed(cause) | Attempt::Overran(cause, _) => Some(cause),
        };
        if let Some(cause) = cause {
            if !self.lose_standby(pair.epoch, standby, cause) {
                return Outcome::Retry;
            }
            return outcome_of(self.attempt(&pair.active, op, owned));
        }
        match self.attempt(&pair.active, op, owned) {
            Attempt::Answer(Error::NotFound { .. }) => Outcome::ActiveFailed(format!(
                "the active lacks {:?}, which the standby holds: it has lost data",
                op.key()
            )),
            other => outcome_of(other),
        }
    }

    /// A listing from the active, checked against the standby's: keys only
    /// the standby lists mean the active has lost data. A write half done
    /// between the two listings can fake that, so a mismatch is looked at
    /// again with every key stripe held (no mirrored write in progress).
    pub(super) fn mirrored_list(
        &self,
        pair: &Pair,
        standby: &Arc<Backend>,
        op: &BorrowedOp<'_>,
        owned: &mut Option<Arc<OwnedOp>>,
    ) -> Outcome {
        if let Listings::Settled(outcome) = self.compare_listings(pair, standby, op, owned) {
            return outcome;
        }
        let _no_write_in_progress: Vec<_> = self
            .key_stripes
            .iter()
            .map(|m| m.lock().unwrap_or_else(PoisonError::into_inner))
            .collect();
        match self.compare_listings(pair, standby, op, owned) {
            Listings::Settled(outcome) => outcome,
            Listings::ActiveLacks(lost) => Outcome::ActiveFailed(format!(
                "the active's listing of {:?} lacks {lost} object(s) the standby holds: it has lost data",
                op.key()
            )),
        }
    }

    fn compare_listings(
        &self,
        pair: &Pair,
        standby: &Arc<Backend>,
        op: &BorrowedOp<'_>,
        owned: &mut Option<Arc<OwnedOp>>,
    ) -> Listings {
        let ours = match self.attempt(&pair.active, op, owned) {
            Attempt::Ok(Output::Keys(keys)) => keys,
            other => return Listings::Settled(outcome_of(other)),
        };
        let cause = match self.attempt(standby, op, owned) {
            Attempt::Ok(Output::Keys(theirs)) => {
                let mine: BTreeSet<&String> = ours.iter().collect();
                let lost = theirs
                    .iter()
                    .filter(|k| !k.starts_with(PROBE_PREFIX) && !mine.contains(k))
                    .count();
                if lost > 0 {
                    return Listings::ActiveLacks(lost);
                }
                None
            }
            Attempt::Ok(_) => None,
            Attempt::Answer(e) => Some(e.report().to_string()),
            Attempt::Failed(cause) | Attempt::Overran(cause, _) => Some(cause),
        };
        if let Some(cause) = cause
            && !self.lose_standby(pair.epoch, standby, cause)
        {
            return Listings::Settled(Outcome::Retry);
        }
        Listings::Settled(Outcome::Done(Ok(Output::Keys(ours))))
    }

    /// Serialises mirrored writes of keys that share `key`'s stripe.
    fn lock_key(&self, key: &str) -> Option<MutexGuard<'_, ()>> {
        self.key_stripes
            .get(self.stripe_of(key))
            .map(|m| m.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The stripes of every key in `keys`, each once, taken in ascending
    /// order (as [`mirrored_list`](Self::mirrored_list) takes all of them),
    /// so two batches cannot deadlock.
    fn lock_keys(&self, keys: &[&str]) -> Vec<MutexGuard<'_, ()>> {
        let stripes: BTreeSet<usize> = keys.iter().map(|k| self.stripe_of(k)).collect();
        stripes
            .into_iter()
            .filter_map(|s| self.key_stripes.get(s))
            .map(|m| m.lock().unwrap_or_else(PoisonError::into_inner))
            .collect()
    }

    fn stripe_of(&self, key: &str) -> usize {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        let stripes = self.key_stripes.len().max(1) as u64;
        usize::try_from(hasher.finish() % stripes).unwrap_or(0)
    }
}
