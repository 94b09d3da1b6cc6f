//! The operation path: the gate, running an operation on one epoch's
//! pair, relocation, and the backend calls themselves.

use super::{
    Backend, FailoverEvent, FailoverStorage, Gate, Mode, OpKind, OpRecord, PROBE_PREFIX,
    RecordState,
};
use crate::error::{Error, Result};
use crate::storage::pool::Pool;
use crate::storage::{Storage, scatter_into};
use std::collections::BTreeSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

/// A storage operation, borrowed ([`BorrowedOp`]) on the caller's thread
/// or owned ([`OwnedOp`]) for a deadline thread. `T` is where a
/// [`Storage::read_into`] puts its bytes, `P` what a
/// [`Storage::put_parts`] writes, `L` the keys of a
/// [`Storage::delete_many`].
#[derive(Clone)]
pub(super) enum Op<K, D, T, P, L> {
    Put(K, D),
    /// [`Storage::put_if_absent`]; a mirror gets a plain put of the bytes
    /// once the active created the object.
    PutIfAbsent(K, D),
    PutParts(K, P),
    Get(K),
    GetRange(K, Range<u64>),
    /// [`Storage::read_into`] from this offset into the target.
    ReadInto(K, u64, T),
    List(K),
    Delete(K),
    /// One batched call per backend; the key `K` is the first of them (or
    /// empty), for records and events.
    DeleteMany(K, L),
}

pub(super) type BorrowedOp<'a> =
    Op<&'a str, &'a [u8], &'a (dyn ReadTarget + 'a), &'a [&'a [u8]], &'a [String]>;
/// A deadline thread may outlive the call, so it cannot borrow the
/// caller's buffers: parts are joined into one buffer (one copy, made once
/// per operation) and written with a plain put.
pub(super) type OwnedOp = Op<String, Arc<[u8]>, u64, Arc<[u8]>, Vec<String>>;

pub(super) enum Output {
    Done,
    Bytes(Vec<u8>),
    Keys(Vec<String>),
    /// What a conditional put answered.
    Created(bool),
}

/// What a [`Op::PutParts`] writes.
pub(super) trait Parts {
    /// Bytes in all.
    fn len(&self) -> u64;
    /// Writes them under `key` on `storage`.
    fn put(&self, storage: &dyn Storage, key: &str) -> Result<()>;
}

/// The caller's parts, passed on unjoined (no deadline).
impl Parts for &[&[u8]] {
    fn len(&self) -> u64 {
        self.iter().map(|p| p.len() as u64).sum()
    }

    fn put(&self, storage: &dyn Storage, key: &str) -> Result<()> {
        storage.put_parts(key, self)
    }
}

/// Parts joined for a deadline thread.
impl Parts for Arc<[u8]> {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }

    fn put(&self, storage: &dyn Storage, key: &str) -> Result<()> {
        storage.put(key, self)
    }
}

/// Where a [`Op::ReadInto`] puts the bytes it reads.
pub(super) trait ReadTarget {
    /// How many bytes it takes.
    fn len(&self) -> u64;
    /// Reads them from `key` at `offset` on `storage`: `Output::Done` when
    /// they are in place, `Output::Bytes` when the caller must copy them
    /// into its buffers.
    fn read(&self, storage: &dyn Storage, key: &str, offset: u64) -> Result<Output>;
}

/// The caller's buffers, read into in place on the caller's thread (an
/// attempt without a deadline). A retried attempt rewrites them whole, so
/// what a failed one left in them does no harm.
pub(super) struct Scatter<'b, 'c> {
    bufs: Mutex<&'b mut [&'c mut [u8]]>,
    len: u64,
}

impl<'b, 'c> Scatter<'b, 'c> {
    pub(super) fn new(bufs: &'b mut [&'c mut [u8]]) -> Self {
        let len = bufs.iter().map(|b| b.len() as u64).sum();
        Scatter {
            bufs: Mutex::new(bufs),
            len,
        }
    }

    fn bufs(&self) -> MutexGuard<'_, &'b mut [&'c mut [u8]]> {
        // Only the caller's thread ever locks it, one attempt at a time.
        self.bufs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Copies `bytes`, read on a deadline thread from `offset` of `key`,
    /// into the buffers.
    pub(super) fn fill(&self, key: &str, offset: u64, bytes: &[u8]) -> Result<()> {
        scatter_into(key, offset, bytes, &mut self.bufs())
    }
}

impl ReadTarget for Scatter<'_, '_> {
    fn len(&self) -> u64 {
        self.len
    }

    fn read(&self, storage: &dyn Storage, key: &str, offset: u64) -> Result<Output> {
        storage.read_into(key, offset, &mut self.bufs())?;
        Ok(Output::Done)
    }
}

impl<T: ReadTarget + ?Sized> ReadTarget for &T {
    fn len(&self) -> u64 {
        (**self).len()
    }

    fn read(&self, storage: &dyn Storage, key: &str, offset: u64) -> Result<Output> {
        (**self).read(storage, key, offset)
    }
}

/// A deadline thread may outlive the call (abandoned at the deadline), so
/// it cannot hold the caller's buffers: it reads into its own, and the
/// caller copies the bytes out (one copy, like the default `read_into`).
impl ReadTarget for u64 {
    fn len(&self) -> u64 {
        *self
    }

    fn read(&self, storage: &dyn Storage, key: &str, offset: u64) -> Result<Output> {
        let len = usize::try_from(*self)
            .map_err(|_| Error::corrupt(key, format!("invalid range {offset}+{self}")))?;
        let mut buf = vec![0; len];
        storage.read_into(key, offset, &mut [buf.as_mut_slice()])?;
        Ok(Output::Bytes(buf))
    }
}

impl<K: AsRef<str>, D: AsRef<[u8]>, T: ReadTarget, P: Parts, L: AsRef<[String]>> Op<K, D, T, P, L> {
    pub(super) fn kind(&self) -> OpKind {
        match self {
            Op::Put(..) | Op::PutIfAbsent(..) | Op::PutParts(..) => OpKind::Put,
            Op::Get(_) => OpKind::Get,
            // A ranged read, whichever way its bytes are delivered.
            Op::GetRange(..) | Op::ReadInto(..) => OpKind::GetRange,
            Op::List(_) => OpKind::List,
            Op::Delete(_) | Op::DeleteMany(..) => OpKind::Delete,
        }
    }

    pub(super) fn key(&self) -> &str {
        match self {
            Op::Put(k, _)
            | Op::PutIfAbsent(k, _)
            | Op::PutParts(k, _)
            | Op::DeleteMany(k, _)
            | Op::Get(k)
            | Op::GetRange(k, _)
            | Op::ReadInto(k, ..)
            | Op::List(k)
            | Op::Delete(k) => k.as_ref(),
        }
    }

    /// Bytes the operation moves, when known in advance.
    fn bytes(&self) -> u64 {
        match self {
            Op::Put(_, data) | Op::PutIfAbsent(_, data) => data.as_ref().len() as u64,
            Op::PutParts(_, parts) => parts.len(),
            Op::GetRange(_, range) => range.end.saturating_sub(range.start),
            Op::ReadInto(_, _, target) => target.len(),
            _ => 0,
        }
    }

    fn is_write(&self) -> bool {
        matches!(
            self,
            Op::Put(..)
                | Op::PutIfAbsent(..)
                | Op::PutParts(..)
                | Op::Delete(_)
                | Op::DeleteMany(..)
        )
    }

    /// Every key the operation touches.
    fn keys(&self) -> Vec<&str> {
        match self {
            Op::DeleteMany(_, keys) => keys.as_ref().iter().map(String::as_str).collect(),
            _ => vec![self.key()],
        }
    }

    fn apply(&self, storage: &dyn Storage) -> Result<Output> {
        match self {
            Op::Put(key, data) => storage
                .put(key.as_ref(), data.as_ref())
                .map(|()| Output::Done),
            Op::PutIfAbsent(key, data) => storage
                .put_if_absent(key.as_ref(), data.as_ref())
                .map(Output::Created),
            Op::PutParts(key, parts) => parts.put(storage, key.as_ref()).map(|()| Output::Done),
            Op::Get(key) => storage.get(key.as_ref()).map(Output::Bytes),
            Op::GetRange(key, range) => storage
                .get_range(key.as_ref(), range.clone())
                .map(Output::Bytes),
            Op::ReadInto(key, offset, target) => target.read(storage, key.as_ref(), *offset),
            Op::List(prefix) => storage.list(prefix.as_ref()).map(Output::Keys),
            Op::Delete(key) => storage.delete(key.as_ref()).map(|()| Output::Done),
            Op::DeleteMany(_, keys) => storage.delete_many(keys.as_ref()).map(|()| Output::Done),
        }
    }
}

impl BorrowedOp<'_> {
    fn to_owned_op(&self) -> OwnedOp {
        match self {
            Op::Put(k, d) => Op::Put((*k).to_owned(), Arc::from(*d)),
            Op::PutIfAbsent(k, d) => Op::PutIfAbsent((*k).to_owned(), Arc::from(*d)),
            Op::PutParts(k, parts) => Op::PutParts((*k).to_owned(), Arc::from(parts.concat())),
            Op::Get(k) => Op::Get((*k).to_owned()),
            Op::GetRange(k, r) => Op::GetRange((*k).to_owned(), r.clone()),
            Op::ReadInto(k, offset, target) => Op::ReadInto((*k).to_owned(), *offset, target.len()),
            Op::List(k) => Op::List((*k).to_owned()),
            Op::Delete(k) => Op::Delete((*k).to_owned()),
            Op::DeleteMany(k, keys) => Op::DeleteMany((*k).to_owned(), keys.to_vec()),
        }
    }
}

/// What one backend call came to.
pub(super) enum Attempt {
    Ok(Output),
    /// The backend answered with an error that is not a failure.
    Answer(Error),
    /// The backend is unavailable (an error that says so), with the cause.
    Failed(String),
    /// The call ran past its deadline, with the cause; it may still
    /// finish (see [`Pending`]).
    Overran(String, Pending),
}

/// A backend call still running past its deadline, whose result may
/// still come.
pub(super) struct Pending(mpsc::Receiver<Result<Output>>);

impl Pending {
    /// Waits up to `limit` more for the result; `None` if it has not come.
    pub(super) fn wait(&self, limit: Duration, key: &str) -> Option<Result<Output>> {
        match self.0.recv_timeout(limit) {
            Ok(result) => Some(result),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => Some(Err(Error::storage(
                "call",
                key,
                io::Error::other("the backend call panicked"),
            ))),
        }
    }
}

/// Why a path failed a health check.
pub(super) enum Trouble {
    /// A call ran past its deadline: the path, or the store behind it, is
    /// slow.
    Slow(String),
    /// A call failed: the path is dead (or the backend broken).
    Dead(String),
}

impl Trouble {
    fn into_cause(self) -> String {
        match self {
            Trouble::Slow(cause) | Trouble::Dead(cause) => cause,
        }
    }
}

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

/// What comparing the active's listing with the standby's came to.
enum Listings {
    Settled(Outcome),
    /// The active lacks this many keys the standby lists.
    ActiveLacks(usize),
}

/// An attempt on the active, as the outcome of the operation.
fn outcome_of(attempt: Attempt) -> Outcome {
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
    standby: Option<Arc<Backend>>,
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
                Mode::Mirrored => st.standby.clone(),
                Mode::Shared => None,
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
                    Attempt::Overran(cause, pending) if self.mode == Mode::Shared => {
                        Outcome::ActiveOverran(cause, pending)
                    }
                    other => outcome_of(other),
                };
                let wrote = op.is_write() && matches!(outcome, Outcome::Done(Ok(_)));
                (outcome, wrote)
            }
        }
    }

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
    fn mirrored_write(
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
            Attempt::Answer(e) => self.lose_standby(pair.epoch, standby, e.to_string()),
            Attempt::Failed(cause) | Attempt::Overran(cause, _) => {
                self.lose_standby(pair.epoch, standby, cause)
            }
        }
    }

    /// A read from the active; "not found" is checked against the standby,
    /// which holding the object means the active has lost data.
    fn mirrored_get(
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
            Attempt::Answer(e) => Some(e.to_string()),
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
    fn mirrored_list(
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
            Attempt::Answer(e) => Some(e.to_string()),
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

    /// Drops `standby` from the pair after it failed. Returns false if the
    /// pair changed meanwhile (the standby may be the active now), in which
    /// case the operation must be retried on the new pair.
    fn lose_standby(&self, epoch: u64, standby: &Arc<Backend>, cause: String) -> bool {
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
    /// standby path passes its health check in time; if it overruns too,
    /// or there is no standby, the store itself is slow and the active
    /// stays (see [`wait_out`](Self::wait_out)): a slow store never takes
    /// the pair down.
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

        let check = match &standby {
            Some(standby) => self.check_path(standby),
            None => Err(Trouble::Dead(
                "there is no standby to fail over to".to_owned(),
            )),
        };
        // A prompt standby blames the active path only if that path is
        // still slow: the overrun call may date from before the store
        // recovered.
        let recovered = overran && check.is_ok() && self.check_path(&failed).is_ok();

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
            (Mode::Shared, Some(s)) => format!(
                "the shared store (reached through {:?} or {:?})",
                active.name, s.name
            ),
            (Mode::Shared, None) => format!("the shared store (reached through {:?})", active.name),
            (Mode::Mirrored, Some(s)) => {
                format!("{:?} and {:?} (each holds all of it)", active.name, s.name)
            }
            (Mode::Mirrored, None) => format!("{:?}", active.name),
        };
        (reason, holder)
    }

    // ----- backend calls -----

    /// One call of `op` on `backend`, under the deadline, classified.
    fn attempt(
        &self,
        backend: &Arc<Backend>,
        op: &BorrowedOp<'_>,
        owned: &mut Option<Arc<OwnedOp>>,
    ) -> Attempt {
        let result = match self.deadline_for(op) {
            None => {
                let _call = backend.start_call();
                op.apply(backend.storage.as_ref())
            }
            Some(limit) => {
                let shared = Arc::clone(owned.get_or_insert_with(|| Arc::new(op.to_owned_op())));
                match call_with_deadline(&self.pool, backend, shared, limit) {
                    Ok(result) => result,
                    Err(pending) => {
                        let cause = format!(
                            "{:?} of {:?} on {:?} ran past its deadline of {limit:?}",
                            op.kind(),
                            op.key(),
                            backend.name
                        );
                        return Attempt::Overran(cause, pending);
                    }
                }
            }
        };
        self.classify(backend, result)
    }

    pub(super) fn classify(&self, backend: &Backend, result: Result<Output>) -> Attempt {
        match result {
            Ok(output) => Attempt::Ok(output),
            Err(e) if (self.config.unavailable)(&e) => {
                Attempt::Failed(format!("{:?}: {e}", backend.name))
            }
            Err(e) => Attempt::Answer(e),
        }
    }

    fn deadline_for<K, D, T, P, L>(&self, op: &Op<K, D, T, P, L>) -> Option<Duration>
    where
        K: AsRef<str>,
        D: AsRef<[u8]>,
        T: ReadTarget,
        P: Parts,
        L: AsRef<[String]>,
    {
        let base = self.config.deadline?;
        let mib = op.bytes() as f64 / MIB as f64;
        let extra = Duration::try_from_secs_f64(self.config.deadline_per_mib.as_secs_f64() * mib)
            .unwrap_or(Duration::MAX);
        Some(base.saturating_add(extra))
    }

    /// A call made outside any operation (health checks, re-sync), with
    /// every error turned into a cause string — except `NotFound`, which
    /// callers need to tell apart.
    pub(super) fn call(&self, backend: &Arc<Backend>, op: &BorrowedOp<'_>) -> CallResult {
        match self.attempt(backend, op, &mut None) {
            Attempt::Ok(output) => CallResult::Ok(output),
            Attempt::Answer(Error::NotFound { .. }) => CallResult::NotFound,
            Attempt::Answer(e) => CallResult::Err(format!("{:?}: {e}", backend.name)),
            Attempt::Failed(cause) | Attempt::Overran(cause, _) => CallResult::Err(cause),
        }
    }

    pub(super) fn call_ok(
        &self,
        backend: &Arc<Backend>,
        op: &BorrowedOp<'_>,
    ) -> std::result::Result<Output, String> {
        match self.call(backend, op) {
            CallResult::Ok(output) => Ok(output),
            CallResult::NotFound => Err(format!("{:?}: {:?} not found", backend.name, op.key())),
            CallResult::Err(cause) => Err(cause),
        }
    }

    /// Put, get and delete a probe object on `backend`.
    pub(super) fn health_check(&self, backend: &Arc<Backend>) -> std::result::Result<(), String> {
        self.check_path(backend).map_err(Trouble::into_cause)
    }

    /// [`health_check`](Self::health_check), saying whether a failure was
    /// an overrun (slow) or an error (dead).
    pub(super) fn check_path(&self, backend: &Arc<Backend>) -> std::result::Result<(), Trouble> {
        let key = format!("{PROBE_PREFIX}probe-{:016x}", rand::random::<u64>());
        let value = rand::random::<u128>().to_le_bytes();
        self.probe(backend, &Op::Put(&key, &value))?;
        let read = self.probe(backend, &Op::Get(&key));
        let cleaned = self.probe(backend, &Op::Delete(&key));
        match read? {
            Output::Bytes(bytes) if bytes == value => cleaned.map(|_| ()),
            _ => Err(Trouble::Dead(format!(
                "{:?} returned a different probe than was written",
                backend.name
            ))),
        }
    }

    fn probe(
        &self,
        backend: &Arc<Backend>,
        op: &BorrowedOp<'_>,
    ) -> std::result::Result<Output, Trouble> {
        match self.attempt(backend, op, &mut None) {
            Attempt::Ok(output) => Ok(output),
            Attempt::Answer(e) => Err(Trouble::Dead(format!("{:?}: {e}", backend.name))),
            Attempt::Failed(cause) => Err(Trouble::Dead(cause)),
            Attempt::Overran(cause, _) => Err(Trouble::Slow(cause)),
        }
    }

    /// Shared mode: a probe written through `active` must be read through
    /// `candidate`.
    pub(super) fn check_same_store(
        &self,
        active: &Arc<Backend>,
        candidate: &Arc<Backend>,
    ) -> std::result::Result<(), String> {
        let key = format!("{PROBE_PREFIX}same-store-{:016x}", rand::random::<u64>());
        let value = rand::random::<u128>().to_le_bytes();
        self.call_ok(active, &Op::Put(&key, &value))?;
        let seen = self.call(candidate, &Op::Get(&key));
        let _ = self.call(active, &Op::Delete(&key));
        match seen {
            CallResult::Ok(Output::Bytes(bytes)) if bytes == value => Ok(()),
            CallResult::Err(cause) => Err(cause),
            _ => Err(format!(
                "it does not reach the same store as the active {:?} (a probe written through the active is not visible through it); use Mode::Mirrored for two separate stores",
                active.name
            )),
        }
    }
}

/// A call outside any operation.
pub(super) enum CallResult {
    Ok(Output),
    NotFound,
    Err(String),
}

/// Runs `op` on `backend` on a new thread and waits up to `limit`. `Err`
/// means the deadline passed: the call goes on, and the caller may wait
/// for it further or drop the [`Pending`] to abandon it; an abandoned
/// thread ends when the backend call does (the backend's running count
/// says so).
fn call_with_deadline(
    pool: &Pool,
    backend: &Arc<Backend>,
    op: Arc<OwnedOp>,
    limit: Duration,
) -> std::result::Result<Result<Output>, Pending> {
    let (sender, receiver) = mpsc::sync_channel(1);
    let call = backend.start_call();
    let storage = Arc::clone(&backend.storage);
    let job_op = Arc::clone(&op);
    let job = Box::new(move || {
        let result = job_op.apply(storage.as_ref());
        drop(call);
        // The caller may have given up; then nobody needs the result.
        let _ = sender.send(result);
    });
    if let Err(job) = pool.run(job) {
        // No thread to spare: run on the caller's, without a deadline.
        job();
    }
    let pending = Pending(receiver);
    pending.wait(limit, op.key()).ok_or(pending)
}
