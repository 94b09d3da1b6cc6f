//! Transparent failover between an active and a standby backend.
//!
//! The behaviour is documented on [`FailoverStorage`], which is public.

use super::Storage;
use super::pool::Pool;
use crate::error::{Error, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// The deadline an operation gets unless configured otherwise.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);
/// Extra deadline per MiB moved, so large healthy puts are not mistaken
/// for a hang (this assumes at least 1 MiB/s).
pub const DEFAULT_DEADLINE_PER_MIB: Duration = Duration::from_secs(1);
/// How long [`FailoverStorage::readmit`] waits for operations still
/// running on the backend from before its failure, and for running
/// operations to drain before the final re-sync pass.
pub const DEFAULT_ADMIT_WAIT: Duration = Duration::from_secs(30);

/// Objects under this prefix are health-check probes: written, read and
/// deleted at once, never copied by a re-sync.
const PROBE_PREFIX: &str = ".ckpt-failover/";
const MIB: u64 = 1 << 20;
/// Threads that copy objects during a re-sync.
const RESYNC_THREADS: usize = 8;
/// Pre-copy rounds at most before the exclusive final pass of a re-sync.
const PRECOPY_ROUNDS: usize = 8;
/// Few enough written keys to copy with the gate closed.
const FINAL_PASS_KEYS: usize = 16;

/// How the active and the standby relate; see [`FailoverStorage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Two paths to one store: operations go to the active only.
    Shared,
    /// Two stores kept identical: reads from the active, writes to both.
    Mirrored,
}

/// The kind of a storage operation, in events and in-flight records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// [`Storage::put`].
    Put,
    /// [`Storage::get`].
    Get,
    /// [`Storage::get_range`].
    GetRange,
    /// [`Storage::list`].
    List,
    /// [`Storage::delete`].
    Delete,
}

/// Something that happened to a [`FailoverStorage`]. Plain data: the cost
/// model and applications consume these.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailoverEvent {
    /// The active failed and the standby took over.
    FailedOver {
        /// The backend that failed.
        from: String,
        /// The backend that is active now.
        to: String,
        /// What the failing operation saw.
        cause: String,
        /// How long the gate was closed: health check and promotion.
        relocation: Duration,
        /// The relocation count after this one (the pair's epoch).
        epoch: u64,
    },
    /// The active failed and there was no healthy standby: the pair is
    /// down and every operation now returns [`Error::StorageDown`].
    Down {
        /// What failed, backend by backend.
        reason: String,
        /// The backend(s) holding every committed object.
        holder: String,
    },
    /// The standby failed a mirrored write (or a check) and left the pair,
    /// which runs degraded, without a standby, until one is readmitted.
    StandbyLost {
        /// The standby that left.
        standby: String,
        /// What it failed.
        cause: String,
    },
    /// A backend was (re)admitted as the standby.
    FailedBack {
        /// The new standby.
        standby: String,
        /// What re-synchronising it took.
        resync: Resync,
    },
    /// An operation was delayed by a failover or a re-sync: it waited at
    /// the gate, or failed on a backend and was retried.
    Paused {
        /// What the operation was.
        op: OpKind,
        /// The key (or list prefix) it touched.
        key: String,
        /// Time lost: the whole operation minus its final, successful
        /// backend call (all of it if it ended in an error).
        paused: Duration,
        /// The whole operation, as the caller saw it.
        total: Duration,
        /// Backend calls made (1 if it only waited at the gate).
        attempts: u32,
    },
}

/// What re-synchronising a readmitted standby took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Resync {
    /// Objects copied from the active (missing or different).
    pub copied: u64,
    /// Objects removed from the standby because the active lacks them.
    pub removed: u64,
    /// Bytes copied.
    pub bytes_copied: u64,
    /// Wall time of the whole readmission.
    pub duration: Duration,
    /// How long the gate was closed for the final pass (callers waited).
    pub exclusive_pause: Duration,
}

impl Resync {
    fn add(&mut self, part: Resync) {
        self.copied += part.copied;
        self.removed += part.removed;
        self.bytes_copied += part.bytes_copied;
    }
}

/// A snapshot of a [`FailoverStorage`]'s state and counters.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FailoverStats {
    /// The mode it runs in.
    pub mode: Mode,
    /// The active backend's name (`None` once the pair is down).
    pub active: Option<String>,
    /// The standby's name, if the pair has one.
    pub standby: Option<String>,
    /// A backend being re-synchronised to become the standby.
    pub resyncing: Option<String>,
    /// Backends that failed and were not readmitted.
    pub failed: Vec<String>,
    /// True once both backends failed; see [`Error::StorageDown`].
    pub down: bool,
    /// How many relocations happened (starts at 0).
    pub epoch: u64,
    /// Operations completed (with or without an error).
    pub operations: u64,
    /// Operations in flight now.
    pub in_flight: usize,
    /// Failovers from the active to the standby.
    pub failovers: u64,
    /// Backends readmitted as standby after the pair was built.
    pub failbacks: u64,
    /// Standbys that left the pair after failing.
    pub standby_losses: u64,
    /// Operations that were delayed by a failover or a re-sync.
    pub paused_operations: u64,
    /// Their summed delay.
    pub total_pause: Duration,
    /// The longest single delay.
    pub max_pause: Duration,
    /// Summed time the gate was closed for relocations.
    pub total_relocation: Duration,
    /// The longest relocation.
    pub max_relocation: Duration,
}

/// One operation in flight, as [`FailoverStorage::in_flight`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct InFlightOp {
    /// What it is.
    pub op: OpKind,
    /// The key (or list prefix).
    pub key: String,
    /// Time since it started.
    pub age: Duration,
    /// Backend calls started so far.
    pub attempts: u32,
    /// Where it is now.
    pub state: OpState,
}

/// Where an in-flight operation is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpState {
    /// Waiting at the closed gate (a relocation or re-sync is under way).
    AtGate,
    /// Inside a call to this backend.
    Running(String),
    /// Its call failed; it waits for the relocation to retry.
    Retrying,
}

/// The rule that decides whether an error from the active means the
/// backend is unavailable (fail over) or is an answer (return it); see the
/// [`FailoverStorage`] docs.
pub fn is_unavailable(error: &Error) -> bool {
    use io::ErrorKind as K;
    match error {
        Error::Storage { source, .. } => !matches!(
            source.kind(),
            K::InvalidInput
                | K::InvalidFilename
                | K::FileTooLarge
                | K::IsADirectory
                | K::NotADirectory
                | K::DirectoryNotEmpty
        ),
        Error::StorageDown { .. } => true,
        _ => false,
    }
}

type Classifier = Arc<dyn Fn(&Error) -> bool + Send + Sync>;
type Callback = Arc<dyn Fn(&FailoverEvent) + Send + Sync>;

/// Configures a [`FailoverStorage`]; see [`FailoverStorage::builder`].
#[must_use = "a builder does nothing until build() is called"]
pub struct FailoverBuilder {
    mode: Mode,
    active: Option<(String, Arc<dyn Storage>)>,
    standby: Option<(String, Arc<dyn Storage>)>,
    deadline: Option<Duration>,
    deadline_per_mib: Duration,
    admit_wait: Duration,
    unavailable: Classifier,
    discard_standby_extras: bool,
}

impl fmt::Debug for FailoverBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailoverBuilder")
            .field("mode", &self.mode)
            .field("active", &self.active.as_ref().map(|(n, _)| n))
            .field("standby", &self.standby.as_ref().map(|(n, _)| n))
            .field("deadline", &self.deadline)
            .field("deadline_per_mib", &self.deadline_per_mib)
            .field("admit_wait", &self.admit_wait)
            .finish_non_exhaustive()
    }
}

impl FailoverBuilder {
    /// The backend used first (required). `name` appears in events, stats
    /// and errors. Keep a clone of the `Arc` to [`readmit`](FailoverStorage::readmit)
    /// it after a repair.
    pub fn active(mut self, name: impl Into<String>, storage: Arc<dyn Storage>) -> Self {
        self.active = Some((name.into(), storage));
        self
    }

    /// The backend failed over to (required). In mirrored mode, `build`
    /// re-synchronises it with the active first.
    pub fn standby(mut self, name: impl Into<String>, storage: Arc<dyn Storage>) -> Self {
        self.standby = Some((name.into(), storage));
        self
    }

    /// How long one backend call may take before the backend counts as
    /// unavailable (default [`DEFAULT_DEADLINE`]), plus
    /// [`deadline_per_mib`](Self::deadline_per_mib) per MiB moved. `None`
    /// runs calls on the caller's thread with no deadline: cheaper, but a
    /// hung backend then hangs its callers.
    pub fn deadline(mut self, deadline: Option<Duration>) -> Self {
        self.deadline = deadline;
        self
    }

    /// Deadline added per MiB a put writes or a ranged get reads (default
    /// [`DEFAULT_DEADLINE_PER_MIB`]). Set it above the slowest healthy
    /// throughput you expect, or large puts will fail over spuriously.
    pub fn deadline_per_mib(mut self, extra: Duration) -> Self {
        self.deadline_per_mib = extra;
        self
    }

    /// How long [`readmit`](FailoverStorage::readmit) waits for operations
    /// left running on a failed backend, and for operations to drain before
    /// its final pass (default [`DEFAULT_ADMIT_WAIT`]).
    pub fn admit_wait(mut self, wait: Duration) -> Self {
        self.admit_wait = wait;
        self
    }

    /// Replaces [`is_unavailable`], the rule that tells a failed backend
    /// from an answer. A deadline overrun always counts as unavailable.
    pub fn unavailable_if(mut self, rule: impl Fn(&Error) -> bool + Send + Sync + 'static) -> Self {
        self.unavailable = Arc::new(rule);
        self
    }

    /// Mirrored mode: let `build` delete objects the standby holds and the
    /// active lacks (default `false`: `build` refuses such a standby).
    ///
    /// A standby with extra objects was most likely the active after an
    /// earlier failover, so it holds commits the active never saw; making
    /// it a copy of the active would lose them. Swap the roles instead,
    /// unless you know the extras are garbage. ([`FailoverStorage::readmit`]
    /// always re-syncs from the active: there, the pair's history says the
    /// active is current.)
    pub fn discard_standby_extras(mut self, discard: bool) -> Self {
        self.discard_standby_extras = discard;
        self
    }

    /// Checks the options and opens the pair. In shared mode this checks
    /// that both paths reach one store; in mirrored mode it re-synchronises
    /// the standby with the active (the active is the source of truth).
    pub fn build(self) -> Result<FailoverStorage> {
        let invalid = |option, reason: &str| Error::InvalidConfig {
            option,
            reason: reason.to_owned(),
        };
        let (active_name, active) = self.active.ok_or_else(|| {
            invalid(
                "active",
                "no active backend given; call .active(name, storage)",
            )
        })?;
        let (standby_name, standby) = self.standby.ok_or_else(|| {
            invalid(
                "standby",
                "no standby given; call .standby(name, storage) — without one there is nothing to fail over to",
            )
        })?;
        if self.deadline == Some(Duration::ZERO) {
            return Err(invalid(
                "deadline",
                "must be longer than zero (None turns it off)",
            ));
        }
        if std::ptr::addr_eq(Arc::as_ptr(&active), Arc::as_ptr(&standby)) {
            return Err(invalid(
                "standby",
                "is the same object as the active; give a second path or store",
            ));
        }
        let storage = FailoverStorage {
            mode: self.mode,
            config: Config {
                deadline: self.deadline,
                deadline_per_mib: self.deadline_per_mib,
                admit_wait: self.admit_wait,
                unavailable: self.unavailable,
                discard_standby_extras: self.discard_standby_extras,
            },
            state: Mutex::new(State::new(Backend::new(active_name, active))),
            changed: Condvar::new(),
            subscribers: Mutex::new(Vec::new()),
            admission: Mutex::new(()),
            pool: Pool::new("ckpt-failover-call"),
        };
        storage.admit(standby_name, standby, Admission::Initial)?;
        Ok(storage)
    }
}

/// A [`Storage`] over an active and a standby backend that fails over
/// without surfacing errors.
///
/// A [`FailoverStorage`] is itself a [`Storage`]. It sends every operation to
/// the **active** backend and keeps a **standby** ready. When the active
/// fails during an operation, the caller does not see an error: the gate
/// closes, the store relocates to the standby, and every pending operation
/// is retried there. Callers see a pause.
///
/// # Two modes
///
/// * [`Mode::Shared`]: active and standby are two paths to **one** store
///   (two mount points, two gateways to one object store). Operations go to
///   the active only; failing over just changes the path. `build` and
///   `readmit` check that a probe written through one path is read through
///   the other.
/// * [`Mode::Mirrored`]: two separate stores that `FailoverStorage` keeps
///   identical. Reads go to the active; writes go to both.
///
/// # What counts as "unavailable"
///
/// An operation fails over when, on the active,
///
/// * it returns [`Error::Storage`] (the backend could not do the
///   operation) whose I/O error kind does not blame the request itself —
///   see [`is_unavailable`]: connection refused or reset, timeouts,
///   permission denied, a read-only or full filesystem, a vanished store
///   directory all fail over, while `InvalidInput`, `InvalidFilename`,
///   `FileTooLarge` and a key that collides with a directory are answers;
///   or it returns [`Error::StorageDown`] (a nested pair that is down);
/// * or it runs longer than the deadline (see
///   [`FailoverBuilder::deadline`]);
/// * or, in mirrored mode, a `get` finds nothing on the active although the
///   standby holds the object, or a `list` of the active lacks keys the
///   standby lists: the active has lost data (a directory removed under it,
///   a disk swapped). Because writes reach the active first and deletes
///   the standby first, the standby never legitimately holds what the
///   active lacks.
///
/// Every other error is the store's *answer* and goes back to the caller
/// unchanged: [`Error::NotFound`], [`Error::InvalidKey`], [`Error::Corrupt`]
/// (e.g. a range outside the object). Failing over on those would only move
/// the same answer to the other backend. Override the rule with
/// [`FailoverBuilder::unavailable_if`].
///
/// # The commit rule (mirrored mode)
///
/// An object is **committed** when a `put` of it returned `Ok` and no
/// `delete` of it has returned `Ok` since. In mirrored mode a `put` (and a
/// `delete`) returns `Ok` only after it succeeded on the active **and** on
/// the standby, if the pair has one. So the standby always holds every
/// committed object, and failing over needs no copy — which is just as
/// well, since the active is dead. For `ckpt` this means: a checkpoint is
/// reported committed once its manifest is, its packs were committed
/// before it, so the standby holds the whole checkpoint.
///
/// The trade-off: every write waits for two backends, one after the other
/// (active first, so "the standby has it" implies "the active has it",
/// which is what lets a read tell a lost object from a missing one), so
/// mirrored writes take about twice as long. Deletes go standby first for
/// the same reason. If the *standby* fails a write, it leaves the pair
/// ([`FailoverEvent::StandbyLost`]) and the pair runs **degraded**: writes
/// then commit on the active alone until a standby is readmitted with
/// [`FailoverStorage::readmit`], which re-synchronises it first. A failure
/// of the active while degraded (or of both) ends in
/// [`Error::StorageDown`], which names the backend that holds everything
/// committed.
///
/// # Failover, step by step
///
/// 1. Every operation passes a gate and is recorded as in flight (see
///    [`FailoverStorage::in_flight`]).
/// 2. The first operation that sees the active fail closes the gate and
///    becomes the relocation leader. New operations wait at the gate;
///    operations that are inside a backend call finish it — those that
///    succeed return (their result is valid: the active was working when it
///    answered), those that fail go to sleep until the gate opens.
/// 3. The leader health-checks the standby (a probe put, get and delete
///    under `.ckpt-failover/`, each under the deadline) and promotes it. The failed backend is set
///    aside; the pair has no standby until one is readmitted.
/// 4. The gate opens, the sleepers wake, and each pending operation runs
///    again on the new active. Retrying is safe because `ckpt`'s writes are
///    idempotent by construction (content-addressed packs, unique manifest
///    names, deletes of missing objects succeed).
/// 5. If the standby fails its health check, or there is none, the pair is
///    down: every waiting and later operation returns
///    [`Error::StorageDown`].
///
/// # Failback
///
/// [`FailoverStorage::readmit`] takes a repaired backend (or a fresh one)
/// back as the standby. It first waits until no operation started before
/// its failure is still running on it, health-checks it, and in mirrored
/// mode re-synchronises it with the active: a first pass copies every
/// object that is missing or different and removes every object the active
/// does not have, while operations go on; then, as in a live migration,
/// rounds copy what was written during the previous round while they
/// shrink; a last pass closes the gate briefly, waits for running
/// operations to end, and copies what is left. Callers see that last pass
/// as a short pause; its length grows with how fast they write.
///
/// # Events
///
/// Failovers, failbacks, lost standbys, the pair going down, and every
/// operation that was delayed (with how long) are [`FailoverEvent`]s,
/// delivered to [`subscribe`](FailoverStorage::subscribe)d channels and
/// [`on_event`](FailoverStorage::on_event) callbacks, and summed up in
/// [`stats`](FailoverStorage::stats).
///
/// # Threads and locks
///
/// Without a deadline, operations run on the caller's thread. With one
/// (the default), each backend call runs on a pooled thread named
/// `ckpt-failover-call`, and the caller waits for it up to the deadline. A
/// blocking call cannot be cancelled, so a call stuck in a hung backend is
/// abandoned, not joined: its thread stays with it until it returns
/// (holding only its own copy of the operation and the backend), and the
/// pool starts another thread rather than queue behind it. Idle pool
/// threads end after a few seconds, and when the `FailoverStorage` drops.
///
/// Lock order: `admission` (one readmission at a time) before `state`;
/// `state` is never held across a backend call or an event delivery, and
/// `subscribers` is never taken while `state` is held.
///
/// # Known limits
///
/// * In shared mode there is no fencing: an operation abandoned on the
///   failed path may still complete later (e.g. a put that hung). With
///   `ckpt`'s write-once keys this can at worst bring back an object that
///   was deleted meanwhile, which retention removes again. `readmit` waits
///   for such operations before taking a path back.
/// * A mirrored read is checked against the standby only where the active
///   says *less* than the standby: a `get` that finds nothing, a `list`
///   that lacks keys (each costs one extra call on the standby; a `list`
///   always does). Wrong bytes from the active are not detected here —
///   `ckpt` verifies every checksum on restore.
///
/// # Example
///
/// ```
/// use ckpt::storage::{FailoverStorage, Fault, FaultyStorage, Mode};
/// use ckpt::{MemStorage, Storage};
/// use std::sync::Arc;
///
/// let a = Arc::new(FaultyStorage::new(MemStorage::new()));
/// let b = Arc::new(MemStorage::new());
/// let store = FailoverStorage::builder(Mode::Mirrored)
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
    mode: Mode,
    config: Config,
    state: Mutex<State>,
    /// Signalled whenever the gate changes or running attempts reach zero.
    changed: Condvar,
    subscribers: Mutex<Vec<Subscriber>>,
    /// Held for a whole readmission, so only one runs at a time.
    admission: Mutex<()>,
    /// Threads for backend calls under a deadline.
    pool: Pool,
}

struct Config {
    deadline: Option<Duration>,
    deadline_per_mib: Duration,
    admit_wait: Duration,
    unavailable: Classifier,
    discard_standby_extras: bool,
}

enum Subscriber {
    Channel(mpsc::Sender<FailoverEvent>),
    Callback(Callback),
}

/// A backend and the number of its calls still running (including calls
/// abandoned at a deadline).
struct Backend {
    name: String,
    storage: Arc<dyn Storage>,
    running: Arc<AtomicUsize>,
}

impl Backend {
    fn new(name: String, storage: Arc<dyn Storage>) -> Arc<Self> {
        Arc::new(Backend {
            name,
            storage,
            running: Arc::new(AtomicUsize::new(0)),
        })
    }

    fn is(&self, storage: &Arc<dyn Storage>) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.storage), Arc::as_ptr(storage))
    }

    fn start_call(&self) -> CallGuard {
        self.running.fetch_add(1, Ordering::SeqCst);
        CallGuard(Arc::clone(&self.running))
    }
}

/// Counts one backend call as running until dropped.
struct CallGuard(Arc<AtomicUsize>);

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

enum Gate {
    Open,
    Relocating,
    Resyncing,
    Down { reason: String, holder: String },
}

struct State {
    gate: Gate,
    epoch: u64,
    active: Arc<Backend>,
    standby: Option<Arc<Backend>>,
    failed: Vec<Arc<Backend>>,
    syncing: Option<Syncing>,
    next_sync: u64,
    ops: BTreeMap<u64, OpRecord>,
    next_op: u64,
    /// Backend calls made by operations right now (not abandoned ones).
    running: usize,
    counters: Counters,
}

struct Syncing {
    id: u64,
    backend: Arc<Backend>,
    /// Keys written on the active since the re-sync started.
    dirty: BTreeSet<String>,
}

struct OpRecord {
    op: OpKind,
    key: String,
    started: Instant,
    attempts: u32,
    state: RecordState,
}

enum RecordState {
    AtGate,
    Running(Arc<Backend>),
    Retrying,
}

#[derive(Default)]
struct Counters {
    operations: u64,
    failovers: u64,
    failbacks: u64,
    standby_losses: u64,
    paused_operations: u64,
    total_pause: Duration,
    max_pause: Duration,
    total_relocation: Duration,
    max_relocation: Duration,
}

impl State {
    fn new(active: Arc<Backend>) -> Self {
        State {
            gate: Gate::Open,
            epoch: 0,
            active,
            standby: None,
            failed: Vec::new(),
            syncing: None,
            next_sync: 0,
            ops: BTreeMap::new(),
            next_op: 0,
            running: 0,
            counters: Counters::default(),
        }
    }

    fn down_error(&self) -> Option<Error> {
        match &self.gate {
            Gate::Down { reason, holder } => Some(Error::StorageDown {
                reason: reason.clone(),
                holder: holder.clone(),
            }),
            _ => None,
        }
    }

    fn is_syncing(&self, id: u64) -> bool {
        self.syncing.as_ref().is_some_and(|s| s.id == id)
    }
}

/// A storage operation, borrowed (`Op<&str, &[u8]>`) on the caller's
/// thread or owned (`Op<String, Arc<[u8]>>`) for a deadline thread.
#[derive(Clone)]
enum Op<K, D> {
    Put(K, D),
    Get(K),
    GetRange(K, Range<u64>),
    List(K),
    Delete(K),
}

type BorrowedOp<'a> = Op<&'a str, &'a [u8]>;
type OwnedOp = Op<String, Arc<[u8]>>;

enum Output {
    Done,
    Bytes(Vec<u8>),
    Keys(Vec<String>),
}

impl<K: AsRef<str>, D: AsRef<[u8]>> Op<K, D> {
    fn kind(&self) -> OpKind {
        match self {
            Op::Put(..) => OpKind::Put,
            Op::Get(_) => OpKind::Get,
            Op::GetRange(..) => OpKind::GetRange,
            Op::List(_) => OpKind::List,
            Op::Delete(_) => OpKind::Delete,
        }
    }

    fn key(&self) -> &str {
        match self {
            Op::Put(k, _) | Op::Get(k) | Op::GetRange(k, _) | Op::List(k) | Op::Delete(k) => {
                k.as_ref()
            }
        }
    }

    /// Bytes the operation moves, when known in advance.
    fn bytes(&self) -> u64 {
        match self {
            Op::Put(_, data) => data.as_ref().len() as u64,
            Op::GetRange(_, range) => range.end.saturating_sub(range.start),
            _ => 0,
        }
    }

    fn is_write(&self) -> bool {
        matches!(self, Op::Put(..) | Op::Delete(_))
    }

    fn apply(&self, storage: &dyn Storage) -> Result<Output> {
        match self {
            Op::Put(key, data) => storage
                .put(key.as_ref(), data.as_ref())
                .map(|()| Output::Done),
            Op::Get(key) => storage.get(key.as_ref()).map(Output::Bytes),
            Op::GetRange(key, range) => storage
                .get_range(key.as_ref(), range.clone())
                .map(Output::Bytes),
            Op::List(prefix) => storage.list(prefix.as_ref()).map(Output::Keys),
            Op::Delete(key) => storage.delete(key.as_ref()).map(|()| Output::Done),
        }
    }
}

impl BorrowedOp<'_> {
    fn to_owned_op(&self) -> OwnedOp {
        match self {
            Op::Put(k, d) => Op::Put((*k).to_owned(), Arc::from(*d)),
            Op::Get(k) => Op::Get((*k).to_owned()),
            Op::GetRange(k, r) => Op::GetRange((*k).to_owned(), r.clone()),
            Op::List(k) => Op::List((*k).to_owned()),
            Op::Delete(k) => Op::Delete((*k).to_owned()),
        }
    }
}

/// What one backend call came to.
enum Attempt<E = Error> {
    Ok(Output),
    /// The backend answered with an error that is not a failure.
    Answer(E),
    /// The backend is unavailable (error or deadline), with the cause.
    Failed(String),
}

/// What running an operation on one epoch's pair came to.
enum Outcome {
    Done(Result<Output>),
    /// The active failed: relocate, then retry.
    ActiveFailed(String),
    /// The pair changed under the operation: retry on the new one.
    Retry,
}

/// The backends one attempt uses, as of one epoch.
struct Pair {
    epoch: u64,
    active: Arc<Backend>,
    /// Only in mirrored mode (a shared-mode standby is not written).
    standby: Option<Arc<Backend>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Admission {
    Initial,
    Failback,
}

impl FailoverStorage {
    /// Starts configuring a pair in `mode`.
    pub fn builder(mode: Mode) -> FailoverBuilder {
        FailoverBuilder {
            mode,
            active: None,
            standby: None,
            deadline: Some(DEFAULT_DEADLINE),
            deadline_per_mib: DEFAULT_DEADLINE_PER_MIB,
            admit_wait: DEFAULT_ADMIT_WAIT,
            unavailable: Arc::new(is_unavailable),
            discard_standby_extras: false,
        }
    }

    /// The mode the pair runs in.
    pub fn mode(&self) -> Mode {
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

    // ----- the operation path -----

    /// Runs `op` through the gate, failing over and retrying as needed.
    fn execute(&self, op: BorrowedOp<'_>) -> Result<Output> {
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
            self.leave(id, wrote.then(|| op.key()));
            match outcome {
                Outcome::Done(result) => break result,
                Outcome::Retry => delayed = true,
                Outcome::ActiveFailed(cause) => {
                    delayed = true;
                    if let Err(e) = self.relocate(pair.epoch, cause) {
                        break Err(e);
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

    fn leave(&self, id: u64, wrote: Option<&str>) {
        let mut st = self.state();
        st.running = st.running.saturating_sub(1);
        if let Some(record) = st.ops.get_mut(&id) {
            record.state = RecordState::Retrying;
        }
        if let (Some(key), Some(syncing)) = (wrote, st.syncing.as_mut()) {
            syncing.dirty.insert(key.to_owned());
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
        let standby = pair.standby.as_ref();
        if let (Op::Delete(_), Some(standby)) = (op, standby) {
            // Standby first, so the standby never holds what the active lacks.
            if let Attempt::Answer(e) | Attempt::Failed(e) = self.attempt_any(standby, op, owned)
                && !self.lose_standby(pair.epoch, standby, e)
            {
                return (Outcome::Retry, false);
            }
        }
        let output = match self.attempt(&pair.active, op, owned) {
            Attempt::Ok(output) => output,
            Attempt::Failed(cause) => return (Outcome::ActiveFailed(cause), false),
            Attempt::Answer(Error::NotFound { key })
                if standby.is_some() && matches!(op, Op::Get(_) | Op::GetRange(..)) =>
            {
                return (self.check_lost(pair, key), false);
            }
            Attempt::Answer(e) => return (Outcome::Done(Err(e)), false),
        };
        if let (Op::List(prefix), Some(standby), Output::Keys(keys)) = (op, standby, &output) {
            match self.attempt_any(standby, op, owned) {
                Attempt::Ok(Output::Keys(theirs)) => {
                    let ours: BTreeSet<&String> = keys.iter().collect();
                    let lost = theirs
                        .iter()
                        .filter(|k| !k.starts_with(PROBE_PREFIX) && !ours.contains(k))
                        .count();
                    if lost > 0 {
                        let cause = format!(
                            "the active's listing of {prefix:?} lacks {lost} object(s) the standby holds: it has lost data"
                        );
                        return (Outcome::ActiveFailed(cause), false);
                    }
                }
                Attempt::Ok(_) => {}
                Attempt::Answer(e) | Attempt::Failed(e) => {
                    if !self.lose_standby(pair.epoch, standby, e) {
                        return (Outcome::Retry, false);
                    }
                }
            }
        }
        if let (Op::Put(..), Some(standby)) = (op, standby)
            && let Attempt::Answer(e) | Attempt::Failed(e) = self.attempt_any(standby, op, owned)
            && !self.lose_standby(pair.epoch, standby, e)
        {
            return (Outcome::Retry, true);
        }
        (Outcome::Done(Ok(output)), op.is_write())
    }

    /// The active found nothing under `key`: an answer, unless the standby
    /// holds it, which means the active has lost data.
    fn check_lost(&self, pair: &Pair, key: String) -> Outcome {
        let Some(standby) = pair.standby.as_ref() else {
            return Outcome::Done(Err(Error::NotFound { key }));
        };
        let probe: BorrowedOp<'_> = Op::GetRange(&key, 0..0);
        match self.attempt(standby, &probe, &mut None) {
            Attempt::Ok(_) => Outcome::ActiveFailed(format!(
                "the active lacks {key:?}, which the standby holds: it has lost data"
            )),
            Attempt::Answer(Error::NotFound { .. }) => Outcome::Done(Err(Error::NotFound { key })),
            Attempt::Answer(e) => {
                let cause = format!("checking {key:?}: {e}");
                if self.lose_standby(pair.epoch, standby, cause) {
                    Outcome::Done(Err(Error::NotFound { key }))
                } else {
                    Outcome::Retry
                }
            }
            Attempt::Failed(cause) => {
                if self.lose_standby(pair.epoch, standby, cause) {
                    Outcome::Done(Err(Error::NotFound { key }))
                } else {
                    Outcome::Retry
                }
            }
        }
    }

    /// Like [`attempt`](Self::attempt), with an answer turned into a cause
    /// string: for the standby, any error means it is out of step.
    fn attempt_any(
        &self,
        backend: &Arc<Backend>,
        op: &BorrowedOp<'_>,
        owned: &mut Option<Arc<OwnedOp>>,
    ) -> Attempt<String> {
        match self.attempt(backend, op, owned) {
            Attempt::Ok(o) => Attempt::Ok(o),
            Attempt::Answer(e) => Attempt::Answer(e.to_string()),
            Attempt::Failed(c) => Attempt::Failed(c),
        }
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
    fn relocate(&self, failed_epoch: u64, cause: String) -> Result<()> {
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
        // This operation leads the relocation.
        let started = Instant::now();
        st.gate = Gate::Relocating;
        let failed = Arc::clone(&st.active);
        let standby = st.standby.take();
        st.syncing = None; // a re-sync from the failed active is void
        drop(st);

        let check = match &standby {
            Some(standby) => self.health_check(standby),
            None => Err("there is no standby to fail over to".to_owned()),
        };

        let mut st = self.state();
        let relocation = started.elapsed();
        let (event, result) = match (standby, check) {
            (Some(standby), Ok(())) => {
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
                (event, Ok(()))
            }
            (standby, check) => {
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
                    FailoverEvent::Down { reason, holder },
                    error.map_or(Ok(()), Err),
                )
            }
        };
        self.changed.notify_all();
        drop(st);
        self.emit(vec![event]);
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
                    Some(result) => result,
                    None => {
                        return Attempt::Failed(format!(
                            "{:?} of {:?} on {:?} ran past its deadline of {limit:?}",
                            op.kind(),
                            op.key(),
                            backend.name
                        ));
                    }
                }
            }
        };
        match result {
            Ok(output) => Attempt::Ok(output),
            Err(e) if (self.config.unavailable)(&e) => {
                Attempt::Failed(format!("{:?}: {e}", backend.name))
            }
            Err(e) => Attempt::Answer(e),
        }
    }

    fn deadline_for<K: AsRef<str>, D: AsRef<[u8]>>(&self, op: &Op<K, D>) -> Option<Duration> {
        let base = self.config.deadline?;
        let mib = op.bytes() as f64 / MIB as f64;
        let extra = Duration::try_from_secs_f64(self.config.deadline_per_mib.as_secs_f64() * mib)
            .unwrap_or(Duration::MAX);
        Some(base.saturating_add(extra))
    }

    /// A call made outside any operation (health checks, re-sync), with
    /// every error turned into a cause string — except `NotFound`, which
    /// callers need to tell apart.
    fn call(&self, backend: &Arc<Backend>, op: &BorrowedOp<'_>) -> CallResult {
        match self.attempt(backend, op, &mut None) {
            Attempt::Ok(output) => CallResult::Ok(output),
            Attempt::Answer(Error::NotFound { .. }) => CallResult::NotFound,
            Attempt::Answer(e) => CallResult::Err(format!("{:?}: {e}", backend.name)),
            Attempt::Failed(cause) => CallResult::Err(cause),
        }
    }

    fn call_ok(
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
    fn health_check(&self, backend: &Arc<Backend>) -> std::result::Result<(), String> {
        let key = format!("{PROBE_PREFIX}probe-{:016x}", rand::random::<u64>());
        let value = rand::random::<u128>().to_le_bytes();
        self.call_ok(backend, &Op::Put(&key, &value))?;
        let read = self.call_ok(backend, &Op::Get(&key));
        let cleaned = self.call_ok(backend, &Op::Delete(&key));
        match read? {
            Output::Bytes(bytes) if bytes == value => cleaned.map(|_| ()),
            _ => Err(format!(
                "{:?} returned a different probe than was written",
                backend.name
            )),
        }
    }

    /// Shared mode: a probe written through `active` must be read through
    /// `candidate`.
    fn check_same_store(
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

    // ----- admission and re-sync -----

    fn admit(&self, name: String, storage: Arc<dyn Storage>, how: Admission) -> Result<Resync> {
        let _one_at_a_time = self
            .admission
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let started = Instant::now();
        let refuse = |reason: String| Error::AdmitRefused {
            backend: name.clone(),
            reason,
        };
        let (backend, active, epoch) = {
            let mut st = self.state();
            if matches!(st.gate, Gate::Down { .. }) {
                return Err(refuse(
                    "the pair is down; open a new FailoverStorage instead".to_owned(),
                ));
            }
            if let Some(standby) = &st.standby {
                return Err(refuse(format!(
                    "the pair already has a standby ({:?})",
                    standby.name
                )));
            }
            if st.active.is(&storage) {
                return Err(refuse("it is the active backend".to_owned()));
            }
            // A failed backend keeps its count of abandoned calls.
            let backend = match st.failed.iter().position(|b| b.is(&storage)) {
                Some(i) => {
                    let old = st.failed.remove(i);
                    Arc::new(Backend {
                        name: name.clone(),
                        storage: Arc::clone(&old.storage),
                        running: Arc::clone(&old.running),
                    })
                }
                None => Backend::new(name.clone(), storage),
            };
            (backend, Arc::clone(&st.active), st.epoch)
        };
        let result = self
            .wait_for_abandoned_calls(&backend)
            .and_then(|()| self.health_check(&backend))
            .and_then(|()| match self.mode {
                Mode::Shared => self
                    .check_same_store(&active, &backend)
                    .map(|()| Resync::default()),
                Mode::Mirrored => self.resync(&active, &backend, epoch, how),
            });
        let mut st = self.state();
        if st.syncing.is_some() {
            st.syncing = None;
        }
        let outcome = match result {
            Ok(mut resync) if st.epoch == epoch && st.standby.is_none() => {
                resync.duration = started.elapsed();
                st.standby = Some(Arc::clone(&backend));
                if how == Admission::Failback {
                    st.counters.failbacks += 1;
                }
                Ok(resync)
            }
            Ok(_) => Err("the active failed while it was being admitted".to_owned()),
            Err(reason) => Err(reason),
        };
        if outcome.is_err() {
            st.failed.push(backend);
        }
        if matches!(st.gate, Gate::Resyncing) {
            st.gate = Gate::Open;
            self.changed.notify_all();
        }
        drop(st);
        match outcome {
            Ok(resync) => {
                if how == Admission::Failback {
                    self.emit(vec![FailoverEvent::FailedBack {
                        standby: name.clone(),
                        resync,
                    }]);
                }
                Ok(resync)
            }
            Err(reason) => Err(refuse(reason)),
        }
    }

    fn wait_for_abandoned_calls(&self, backend: &Backend) -> std::result::Result<(), String> {
        let deadline = Instant::now() + self.config.admit_wait;
        loop {
            let running = backend.running.load(Ordering::SeqCst);
            if running == 0 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{running} operation(s) started before its failure are still running on it; wait for them to end (or restart the process)"
                ));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Makes `target` a copy of `active`: a first pass while operations go
    /// on, then a short exclusive pass for what they wrote meanwhile.
    fn resync(
        &self,
        active: &Arc<Backend>,
        target: &Arc<Backend>,
        epoch: u64,
        how: Admission,
    ) -> std::result::Result<Resync, String> {
        let id = {
            let mut st = self.state();
            st.next_sync += 1;
            let id = st.next_sync;
            st.syncing = Some(Syncing {
                id,
                backend: Arc::clone(target),
                dirty: BTreeSet::new(),
            });
            id
        };
        let mut report = Resync::default();
        let result = self
            .copy_everything(active, target, id, how, &mut report)
            .and_then(|()| self.copy_dirty_while_shrinking(active, target, id, &mut report))
            .and_then(|()| self.final_pass(active, target, id, epoch, &mut report));
        // On success the gate stays closed: `admit` installs the standby
        // and opens it in one step, so no write can slip between the two.
        result.map(|()| report)
    }

    fn still_syncing(&self, id: u64) -> std::result::Result<(), String> {
        if self.state().is_syncing(id) {
            Ok(())
        } else {
            Err("the active failed during the re-sync".to_owned())
        }
    }

    fn copy_everything(
        &self,
        active: &Arc<Backend>,
        target: &Arc<Backend>,
        id: u64,
        how: Admission,
        report: &mut Resync,
    ) -> std::result::Result<(), String> {
        let source = self.list_all(active)?;
        let existing = self.list_all(target)?;
        let mut extras = existing.difference(&source).peekable();
        if let (Admission::Initial, false, Some(first)) =
            (how, self.config.discard_standby_extras, extras.peek())
        {
            return Err(format!(
                "it holds {} object(s) the active lacks (e.g. {first:?}): it was probably the active after an earlier failover and holds newer commits; open the pair with it as the active, or set discard_standby_extras(true) to drop them",
                existing.difference(&source).count()
            ));
        }
        let tasks: Vec<Task<'_>> = source
            .iter()
            .map(|k| Task::Copy(k, existing.contains(k)))
            .chain(existing.difference(&source).map(|k| Task::Remove(k)))
            .collect();
        report.add(self.copy_many(active, target, &tasks, Some(id))?);
        Ok(())
    }

    /// Pre-copy rounds (as in live migration): copies what was written
    /// during the previous round while operations go on, until little is
    /// left for the exclusive pass or the writers outpace the copy.
    fn copy_dirty_while_shrinking(
        &self,
        active: &Arc<Backend>,
        target: &Arc<Backend>,
        id: u64,
        report: &mut Resync,
    ) -> std::result::Result<(), String> {
        let mut previous = usize::MAX;
        for _ in 0..PRECOPY_ROUNDS {
            let dirty = {
                let mut st = self.state();
                let Some(syncing) = st.syncing.as_mut().filter(|s| s.id == id) else {
                    return Err("the active failed during the re-sync".to_owned());
                };
                if syncing.dirty.len() <= FINAL_PASS_KEYS || syncing.dirty.len() >= previous {
                    return Ok(());
                }
                std::mem::take(&mut syncing.dirty)
            };
            previous = dirty.len();
            // Keys deleted since need no copy (the final pass removes them
            // from the target); a key written again meanwhile goes back into
            // the dirty set.
            let source = self.list_all(active)?;
            let tasks: Vec<Task<'_>> = dirty
                .iter()
                .filter(|k| source.contains(*k))
                .map(|k| Task::Copy(k, false))
                .collect();
            report.add(self.copy_many(active, target, &tasks, Some(id))?);
        }
        Ok(())
    }

    /// The exclusive pass: close the gate, wait for running operations,
    /// copy what was written during the first pass, compare listings.
    fn final_pass(
        &self,
        active: &Arc<Backend>,
        target: &Arc<Backend>,
        id: u64,
        epoch: u64,
        report: &mut Resync,
    ) -> std::result::Result<(), String> {
        let closed_at;
        let dirty = {
            let mut st = self.state();
            while matches!(st.gate, Gate::Relocating) {
                st = self.wait(st);
            }
            if !st.is_syncing(id) || st.epoch != epoch || !matches!(st.gate, Gate::Open) {
                return Err("the active failed during the re-sync".to_owned());
            }
            st.gate = Gate::Resyncing;
            closed_at = Instant::now();
            let drain_by = closed_at + self.config.admit_wait;
            while st.running > 0 {
                let left = drain_by.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(format!(
                        "{} operation(s) did not finish within {:?} for the final re-sync pass",
                        st.running, self.config.admit_wait
                    ));
                }
                st = self
                    .changed
                    .wait_timeout(st, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            st.syncing
                .as_mut()
                .map(|s| std::mem::take(&mut s.dirty))
                .unwrap_or_default()
        };
        let result = self.copy_keys(active, target, &dirty, report);
        report.exclusive_pause = closed_at.elapsed();
        result
    }

    fn copy_keys(
        &self,
        active: &Arc<Backend>,
        target: &Arc<Backend>,
        dirty: &BTreeSet<String>,
        report: &mut Resync,
    ) -> std::result::Result<(), String> {
        // Copy what was written (no need to compare: it is new) or is
        // missing, and remove what the active no longer has.
        let source = self.list_all(active)?;
        let existing = self.list_all(target)?;
        let tasks: Vec<Task<'_>> = source
            .iter()
            .filter(|k| dirty.contains(*k) || !existing.contains(*k))
            .map(|k| Task::Copy(k, false))
            .chain(existing.difference(&source).map(|k| Task::Remove(k)))
            .collect();
        report.add(self.copy_many(active, target, &tasks, None)?);
        Ok(())
    }

    /// Runs `tasks` on up to [`RESYNC_THREADS`] threads: backend calls are
    /// mostly waiting. With `sync`, stops as soon as that re-sync is void.
    fn copy_many(
        &self,
        active: &Arc<Backend>,
        target: &Arc<Backend>,
        tasks: &[Task<'_>],
        sync: Option<u64>,
    ) -> std::result::Result<Resync, String> {
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let work = || -> std::result::Result<Resync, String> {
            let mut part = Resync::default();
            while !stop.load(Ordering::Relaxed) {
                let Some(task) = tasks.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    break;
                };
                let copied = sync
                    .map_or(Ok(()), |id| self.still_syncing(id))
                    .and_then(|()| match *task {
                        Task::Copy(key, maybe_there) => {
                            self.copy_if_different(active, target, key, maybe_there, &mut part)
                        }
                        Task::Remove(key) => {
                            part.removed += 1;
                            self.call_ok(target, &Op::Delete(key)).map(drop)
                        }
                    });
                if let Err(e) = copied {
                    stop.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
            Ok(part)
        };
        std::thread::scope(|scope| {
            let helpers: Vec<_> = (1..RESYNC_THREADS.min(tasks.len()))
                .filter_map(|_| {
                    std::thread::Builder::new()
                        .name("ckpt-failover-resync".to_owned())
                        .spawn_scoped(scope, work)
                        .ok()
                })
                .collect();
            let mut total = work()?;
            for helper in helpers {
                match helper.join() {
                    Ok(part) => total.add(part?),
                    Err(_) => return Err("a re-sync thread panicked".to_owned()),
                }
            }
            Ok(total)
        })
    }

    fn list_all(&self, backend: &Arc<Backend>) -> std::result::Result<BTreeSet<String>, String> {
        match self.call_ok(backend, &Op::List(""))? {
            Output::Keys(keys) => Ok(keys
                .into_iter()
                .filter(|k| !k.starts_with(PROBE_PREFIX))
                .collect()),
            _ => Err(format!("{:?}: list returned no keys", backend.name)),
        }
    }

    /// Copies `key` from `active` to `target` unless `target` already holds
    /// the same bytes; removes it from `target` if `active` lacks it.
    fn copy_if_different(
        &self,
        active: &Arc<Backend>,
        target: &Arc<Backend>,
        key: &str,
        target_may_have_it: bool,
        report: &mut Resync,
    ) -> std::result::Result<(), String> {
        let data = match self.call(active, &Op::Get(key)) {
            CallResult::Ok(Output::Bytes(data)) => data,
            CallResult::NotFound => {
                // Deleted meanwhile: the target must not keep it either.
                self.call_ok(target, &Op::Delete(key))?;
                return Ok(());
            }
            CallResult::Ok(_) => return Err(format!("{:?}: get returned no bytes", active.name)),
            CallResult::Err(cause) => return Err(cause),
        };
        if target_may_have_it
            && let CallResult::Ok(Output::Bytes(existing)) = self.call(target, &Op::Get(key))
            && existing == data
        {
            return Ok(());
        }
        self.call_ok(target, &Op::Put(key, &data))?;
        report.copied += 1;
        report.bytes_copied += data.len() as u64;
        Ok(())
    }
}

/// One step of a re-sync.
enum Task<'a> {
    /// Copy the key from the active; `true` if the target may hold it
    /// already (then compare first).
    Copy(&'a str, bool),
    /// Remove the key from the target.
    Remove(&'a str),
}

/// A call outside any operation.
enum CallResult {
    Ok(Output),
    NotFound,
    Err(String),
}

/// Runs `op` on `backend` on a new thread and waits up to `limit`. `None`
/// means the deadline passed; the thread is abandoned and ends when the
/// backend call does (the backend's running count says so).
fn call_with_deadline(
    pool: &Pool,
    backend: &Arc<Backend>,
    op: Arc<OwnedOp>,
    limit: Duration,
) -> Option<Result<Output>> {
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
    match receiver.recv_timeout(limit) {
        Ok(result) => Some(result),
        Err(mpsc::RecvTimeoutError::Timeout) => None,
        Err(mpsc::RecvTimeoutError::Disconnected) => Some(Err(Error::storage(
            "call",
            op.key(),
            io::Error::other("the backend call panicked"),
        ))),
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
}

/// Cannot happen: every operation kind has one output kind.
fn wrong_output(op: &'static str, key: &str) -> Error {
    Error::storage(
        op,
        key,
        io::Error::other("internal error: wrong output kind"),
    )
}
