//! Transparent failover between an active and a standby backend.
//!
//! The behaviour is documented on [`FailoverStorage`], which is public
//! (its narrative lives in `behaviour.md`, included into the struct's
//! docs, so that it renders where users read it). This file holds the
//! struct, its public methods and its [`Storage`] impl. The rest, one job
//! a file:
//!
//! * `builder`: the mode, the unavailability rule, and the builder;
//! * `events`: what a pair reports (events, stats, operations in flight);
//! * `state`: the shared state behind the lock (backends, gate, records,
//!   counters);
//! * `op`: a storage operation as a value, borrowed or owned;
//! * `ops`: the path of an operation (gate, in-flight record, retries);
//! * `mirror`: mirrored writes, and reads checked against the standby;
//! * `relocate`: failing over, losing a standby, going down;
//! * `call`: backend calls under a deadline, and health checks;
//! * `slow`: shared mode's telling a slow store from a dead path;
//! * `resync`: the admission of a standby and the re-sync of a mirror.

mod builder;
mod call;
mod events;
mod mirror;
mod op;
mod ops;
mod relocate;
mod resync;
mod slow;
mod state;

pub use builder::{FailoverBuilder, FailoverMode, is_unavailable};
pub use events::{FailoverEvent, FailoverStats, InFlightOp, OpKind, OpState, Resync};

use super::Storage;
use super::pool::Pool;
use crate::error::{Error, Result};
use op::{Op, Output, Scatter};
use resync::Admission;
use state::{
    Backend, Callback, Classifier, Config, Gate, OpRecord, RecordState, SlowVerdict, State,
    Subscriber, Syncing,
};
use std::fmt;
use std::io;
use std::ops::Range;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// The deadline an operation gets unless configured otherwise.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);
/// Extra deadline per MiB moved, so large healthy puts are not mistaken
/// for a hang (this assumes at least 1 MiB/s).
pub const DEFAULT_DEADLINE_PER_MIB: Duration = Duration::from_secs(1);
/// How long [`FailoverStorage::readmit`] waits for operations still
/// running on the backend from before its failure, and for running
/// operations to drain before the final re-sync pass.
pub const DEFAULT_ADMIT_WAIT: Duration = Duration::from_secs(30);
/// How long, in shared mode, an operation waits on a store that is slow on
/// every path before it returns an error; see
/// [`FailoverBuilder::slow_store_patience`].
const DEFAULT_SLOW_STORE_PATIENCE: Duration = Duration::from_secs(120);

/// Objects under this prefix are health-check probes: written, read and
/// deleted at once, never copied by a re-sync.
const PROBE_PREFIX: &str = ".ckpt-failover/";
/// Stripes of the per-key lock that orders mirrored writes.
const KEY_STRIPES: usize = 64;

/// A [`Storage`] over an active and a standby backend that fails over
/// without surfacing errors.
///
/// A [`FailoverStorage`] is itself a [`Storage`]. It sends every operation to
/// the **active** backend and keeps a **standby** ready. When the active
/// fails during an operation, the caller does not see an error: the gate
/// closes, the store relocates to the standby, and every pending operation
/// is retried there. Callers see a pause.
///
#[doc = include_str!("behaviour.md")]
///
/// # Example
///
/// ```
/// use ckpt::storage::{FailoverStorage, Fault, FaultyStorage, FailoverMode};
/// use ckpt::{MemStorage, Storage};
/// use std::sync::Arc;
///
/// let a = Arc::new(FaultyStorage::new(MemStorage::new()));
/// let b = Arc::new(MemStorage::new());
/// let store = FailoverStorage::builder(FailoverMode::Mirrored)
///     .active("a", a.clone())
///     .standby("b", b.clone())
///     .build()?;
/// store.put("k", b"v")?;
/// assert_eq!(b.get("k")?, b"v"); // mirrored before put returned
///
/// a.control().fail_now(Fault::Error(std::io::ErrorKind::ConnectionReset));
/// assert_eq!(store.get("k")?, b"v"); // served by b; no error surfaced
/// assert_eq!(store.stats().active.as_deref(), Some("b"));
/// # Ok::<(), ckpt::Error>(())
/// ```
pub struct FailoverStorage {
    mode: FailoverMode,
    config: Config,
    state: Mutex<State>,
    /// Signalled whenever the gate changes or running attempts reach zero.
    changed: Condvar,
    subscribers: Mutex<Vec<Subscriber>>,
    /// Held for a whole readmission, so only one runs at a time.
    admission: Mutex<()>,
    /// Threads for backend calls under a deadline.
    pool: Pool,
    /// Mirrored writes of one key hold its stripe across both backends.
    key_stripes: Vec<Mutex<()>>,
}

impl FailoverStorage {
    /// The mode the pair runs in.
    pub fn mode(&self) -> FailoverMode {
        self.mode
    }

    /// A channel that receives every [`FailoverEvent`] from now on. Drop
    /// the receiver to unsubscribe.
    pub fn subscribe(&self) -> mpsc::Receiver<FailoverEvent> {
        let (sender, receiver) = mpsc::channel();
        self.subscribers().push(Subscriber::Channel(sender));
        receiver
    }

    /// Calls `callback` with every [`FailoverEvent`] from now on, on the
    /// thread where the event happened (keep it short; it may call back
    /// into this storage).
    pub fn on_event(&self, callback: impl Fn(&FailoverEvent) + Send + Sync + 'static) {
        self.subscribers()
            .push(Subscriber::Callback(Arc::new(callback)));
    }

    /// A snapshot of the pair and its counters.
    pub fn stats(&self) -> FailoverStats {
        let st = self.state();
        let down = matches!(st.gate, Gate::Down { .. });
        let c = &st.counters;
        FailoverStats {
            mode: self.mode,
            active: (!down).then(|| st.active.name.clone()),
            standby: st.standby.as_ref().map(|b| b.name.clone()),
            resyncing: st.syncing.as_ref().map(|s| s.backend.name.clone()),
            failed: st.failed.iter().map(|b| b.name.clone()).collect(),
            down,
            epoch: st.epoch,
            operations: c.operations,
            in_flight: st.ops.len(),
            failovers: c.failovers,
            failbacks: c.failbacks,
            standby_losses: c.standby_losses,
            paused_operations: c.paused_operations,
            slow_store_waits: c.slow_store_waits,
            slow_store_operations: c.slow_store_operations,
            total_pause: c.total_pause,
            max_pause: c.max_pause,
            total_relocation: c.total_relocation,
            max_relocation: c.max_relocation,
        }
    }

    /// Every operation in flight now, oldest first.
    pub fn in_flight(&self) -> Vec<InFlightOp> {
        let st = self.state();
        st.ops
            .values()
            .map(|r| InFlightOp {
                op: r.op,
                key: r.key.clone(),
                age: r.started.elapsed(),
                attempts: r.attempts,
                state: match &r.state {
                    RecordState::AtGate => OpState::AtGate,
                    RecordState::Running(b) => OpState::Running(b.name.clone()),
                    RecordState::Retrying => OpState::Retrying,
                    RecordState::SlowStore(b) => OpState::SlowStore(b.name.clone()),
                },
            })
            .collect()
    }

    /// Takes `storage` (a repaired backend, or a new one) back as the
    /// standby: failback.
    ///
    /// Waits until no operation started before its failure still runs on
    /// it, health-checks it, then — in shared mode — checks it reaches the
    /// active's store, or — in mirrored mode — re-synchronises it with the
    /// active (see [`FailoverStorage`]). Operations go on meanwhile,
    /// apart from a short pause for the final pass.
    ///
    /// Fails with [`Error::AdmitRefused`] (the pair runs on without a
    /// standby) if the pair already has a standby, is down, or the backend
    /// fails any of those steps.
    pub fn readmit(&self, name: impl Into<String>, storage: Arc<dyn Storage>) -> Result<Resync> {
        self.admit(name.into(), storage, Admission::Failback)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Critical sections only move values between fields; a panic in
        // one (there is no code that can panic there) would not leave a
        // half-made change worth refusing to read.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed
            .wait(guard)
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn subscribers(&self) -> MutexGuard<'_, Vec<Subscriber>> {
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn emit(&self, events: Vec<FailoverEvent>) {
        if events.is_empty() {
            return;
        }
        events.iter().for_each(FailoverEvent::trace);
        let callbacks: Vec<Callback> = {
            let mut subscribers = self.subscribers();
            subscribers.retain(|s| match s {
                Subscriber::Channel(sender) => {
                    events.iter().all(|e| sender.send(e.clone()).is_ok())
                }
                Subscriber::Callback(_) => true,
            });
            subscribers
                .iter()
                .filter_map(|s| match s {
                    Subscriber::Callback(c) => Some(Arc::clone(c)),
                    Subscriber::Channel(_) => None,
                })
                .collect()
        };
        for event in &events {
            for callback in &callbacks {
                callback(event);
            }
        }
    }
}

impl fmt::Debug for FailoverStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stats = self.stats();
        f.debug_struct("FailoverStorage")
            .field("mode", &stats.mode)
            .field("active", &stats.active)
            .field("standby", &stats.standby)
            .field("down", &stats.down)
            .field("epoch", &stats.epoch)
            .finish_non_exhaustive()
    }
}

impl Storage for FailoverStorage {
    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        self.execute(Op::Put(key, data)).map(|_| ())
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        match self.execute(Op::Get(key))? {
            Output::Bytes(bytes) => Ok(bytes),
            _ => Err(wrong_output("get", key)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        match self.execute(Op::List(prefix))? {
            Output::Keys(keys) => Ok(keys),
            _ => Err(wrong_output("list", prefix)),
        }
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.execute(Op::Delete(key)).map(|_| ())
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>> {
        match self.execute(Op::GetRange(key, range))? {
            Output::Bytes(bytes) => Ok(bytes),
            _ => Err(wrong_output("get", key)),
        }
    }

    /// Goes through the gate, retries and fails over like
    /// [`get_range`](Storage::get_range). Without a deadline the backend
    /// reads straight into `bufs`; with one, the call runs on a thread
    /// that may be abandoned at the deadline and so cannot borrow `bufs`:
    /// it reads into its own buffer, copied into `bufs` on success.
    fn read_into(&self, key: &str, offset: u64, bufs: &mut [&mut [u8]]) -> Result<()> {
        let target = Scatter::new(bufs);
        match self.execute(Op::ReadInto(key, offset, &target))? {
            Output::Done => Ok(()),
            Output::Bytes(bytes) => target.fill(key, offset, &bytes),
            _ => Err(wrong_output("get", key)),
        }
    }

    /// Goes through the gate, retries and fails over like
    /// [`put`](Storage::put). In shared mode the active path's
    /// `put_if_absent` decides; in mirrored mode the active's does, and only
    /// a create reaches the standby (as a plain put of the same bytes,
    /// before this returns). As the trait allows, a create retried after a
    /// failover may find the object its own first attempt made (a call
    /// that failed or ran past its deadline after it landed) and answer
    /// `Ok(false)`.
    fn put_if_absent(&self, key: &str, data: &[u8]) -> Result<bool> {
        match self.execute(Op::PutIfAbsent(key, data))? {
            Output::Created(created) => Ok(created),
            _ => Err(wrong_output("put", key)),
        }
    }

    /// Goes through the gate, retries and fails over like
    /// [`put`](Storage::put). Without a deadline the parts go to each
    /// backend's `put_parts` unjoined; with one, the call runs on a thread
    /// that may be abandoned at the deadline and so cannot borrow them: they
    /// are joined into one buffer (one copy per operation) and written with
    /// `put`.
    fn put_parts(&self, key: &str, parts: &[&[u8]]) -> Result<()> {
        self.execute(Op::PutParts(key, parts)).map(drop)
    }

    /// One batched `delete_many` per backend (the standby's first in
    /// mirrored mode, as for [`delete`](Storage::delete)), through the gate,
    /// retries and failover. Events and in-flight records name its first
    /// key.
    fn delete_many(&self, keys: &[String]) -> Result<()> {
        let first = keys.first().map_or("", String::as_str);
        self.execute(Op::DeleteMany(first, keys)).map(drop)
    }

    /// The larger of the two backends' (reads may go to either).
    fn read_gap_bytes(&self) -> u64 {
        let state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let standby = state
            .standby
            .as_ref()
            .map_or(0, |b| b.storage.read_gap_bytes());
        state.active.storage.read_gap_bytes().max(standby)
    }
}

/// Cannot happen: every operation kind has one output kind.
fn wrong_output(op: &'static str, key: &str) -> Error {
    Error::storage(
        op,
        key,
        io::Error::other("internal error: wrong output kind"),
    )
}
