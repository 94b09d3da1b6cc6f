//! Transparent failover between an active and a standby backend.
//!
//! The behaviour is documented on [`FailoverStorage`], which is public.
//! This file holds the public types, the builder and the shared state;
//! `ops` the path of an operation (gate, attempts, relocation); `resync`
//! the admission of a standby and the re-sync of a mirror.

mod ops;
mod resync;
mod slow;

use super::Storage;
use super::pool::Pool;
use crate::error::{Error, Result};
use ops::{Op, Output, Scatter};
use resync::Admission;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
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
/// How long, in shared mode, an operation waits on a store that is slow on
/// every path before it returns an error; see
/// [`FailoverBuilder::slow_store_patience`].
const DEFAULT_SLOW_STORE_PATIENCE: Duration = Duration::from_secs(120);

/// Objects under this prefix are health-check probes: written, read and
/// deleted at once, never copied by a re-sync.
const PROBE_PREFIX: &str = ".ckpt-failover/";
/// Stripes of the per-key lock that orders mirrored writes.
const KEY_STRIPES: usize = 64;

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
    /// [`Storage::put`], [`Storage::put_parts`] or [`Storage::put_if_absent`].
    Put,
    /// [`Storage::get`].
    Get,
    /// [`Storage::get_range`] or [`Storage::read_into`].
    GetRange,
    /// [`Storage::list`].
    List,
    /// [`Storage::delete`] or [`Storage::delete_many`] (recorded under
    /// its first key).
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
    /// Shared mode: a call overran its deadline on the active path, and
    /// the store itself was found slow (the other path overran too, or
    /// there is none to compare with), so operations wait for their calls
    /// on the active path instead of failing over. Emitted at most once a
    /// deadline while the store stays slow.
    SlowStore {
        /// The active path, which stays active.
        path: String,
        /// The overrun that started the check.
        cause: String,
        /// Why the store, not the path, is blamed.
        evidence: String,
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
    /// Shared mode: times the store was found slow on every path (see
    /// [`FailoverEvent::SlowStore`]).
    pub slow_store_waits: u64,
    /// Shared mode: operations whose call overran the deadline on the
    /// active path and were waited on rather than failed over at once.
    pub slow_store_operations: u64,
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
    /// Shared mode: its call on this path overran the deadline; it waits
    /// for the call while the store is slow.
    SlowStore(String),
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
    slow_store_patience: Option<Duration>,
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
            .field("slow_store_patience", &self.slow_store_patience)
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
    ///
    /// What an overrun means depends on the mode (see "The deadline, per
    /// mode" on [`FailoverStorage`]): in mirrored mode it blames one of two
    /// stores; in shared mode it only starts a check of the other path,
    /// and a store that is slow on both paths is waited on (up to
    /// [`slow_store_patience`](Self::slow_store_patience)), never failed
    /// over and never taken down.
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

    /// Shared mode: how long in all an operation waits on a store that is
    /// slow on every path (default 120 s; `None`:
    /// no limit). Past it the operation returns [`Error::Storage`] with
    /// [`io::ErrorKind::TimedOut`] — and the pair stays up. See "The
    /// deadline, per mode" on [`FailoverStorage`].
    pub fn slow_store_patience(mut self, patience: Option<Duration>) -> Self {
        self.slow_store_patience = patience;
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
    /// from an answer. A deadline overrun is judged apart from this rule
    /// (see [`deadline`](Self::deadline)).
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
                slow_store_patience: self.slow_store_patience,
                unavailable: self.unavailable,
                discard_standby_extras: self.discard_standby_extras,
            },
            state: Mutex::new(State::new(Backend::new(active_name, active))),
            changed: Condvar::new(),
            subscribers: Mutex::new(Vec::new()),
            admission: Mutex::new(()),
            pool: Pool::new("ckpt-failover-call"),
            key_stripes: (0..KEY_STRIPES).map(|_| Mutex::new(())).collect(),
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
///   [`FailoverBuilder::deadline`]) — in shared mode, only if the other
///   path then answers in time (see below);
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
/// # The deadline, per mode
///
/// A call that runs past the deadline ([`FailoverBuilder::deadline`])
/// counts as a failure of the backend it ran on, and what that means
/// differs between the modes:
///
/// * **Mirrored**: the two backends are two stores, so an overrun blames
///   one of them, and the other (which holds every committed object)
///   takes over. A deadline a little above the store's worst healthy
///   latency turns a hung store into a short pause.
/// * **Shared**: the two backends are two *paths* to one store, and an
///   overrun alone cannot tell a sick path from a slow store. So the call
///   that overran is **kept running**, and the standby path is
///   health-checked (a probe put, get and delete, each under the
///   deadline):
///   * the standby answers in time and the active path, probed the same
///     way, does not: the active *path* is sick; the pair fails over and
///     the operation is retried on the standby (if both answer in time,
///     the store has just recovered, and the call is waited on);
///   * the standby overruns too, or there is no standby: the *store* is
///     slow ([`FailoverEvent::SlowStore`]). Nothing fails over; the
///     operation waits for its call on the active path;
///   * the standby fails with an error: that path is dead and leaves the
///     pair ([`FailoverEvent::StandbyLost`]); the active, merely slow,
///     stays, and the operation waits for its call.
///
///   The verdict "slow store" stands for one deadline, so a slow store
///   costs one probe per deadline, not one per waiting operation; a call
///   still running after that is judged again. A waiting operation
///   returns as soon as its call does: an error that says the path is
///   dead (see [`is_unavailable`]) fails over as usual. It gives up after
///   [`FailoverBuilder::slow_store_patience`] in all (default
///   120 s) with [`Error::Storage`] of kind
///   [`io::ErrorKind::TimedOut`]; the pair stays up. So in shared mode **a
///   slow store is waited on and never takes the pair down**: the pair
///   goes down only when both paths fail with errors (or the active fails
///   with one while there is no standby). Calls that overrun and are
///   waited on are counted in [`FailoverStats::slow_store_operations`].
///
///   Two costs remain. Each overrun makes callers wait at least a
///   deadline before the probe decides, and the probe itself may take up
///   to a deadline with the gate closed; and an error the path's own
///   client gives after *its* timeout (`TimedOut`) counts as a dead path,
///   like any other [`is_unavailable`] error. So set the deadline above
///   the store's usual latency (allowing for
///   [`FailoverBuilder::deadline_per_mib`]), and a client's timeouts above
///   its worst.
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
///    under `.ckpt-failover/`, a prefix reserved for these probes, each
///    under the deadline) and promotes it.
///    The failed backend is set aside; the pair has no standby until one
///    is readmitted.
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
/// A re-sync copies on up to 8 scoped threads of its own
/// (`ckpt-failover-resync`), joined before `readmit` returns.
///
/// Lock order: `admission` (one readmission at a time) before `state`; a
/// key stripe (held by a mirrored write across its two backend calls, so
/// that writes of one key reach both mirrors in the same order) before
/// `state`; `state` is never held across a backend call or an event
/// delivery;
/// `subscribers` and the call pool's queue lock are never taken while
/// `state` is held, and never held while taking another lock.
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
    /// Mirrored writes of one key hold its stripe across both backends.
    key_stripes: Vec<Mutex<()>>,
}

struct Config {
    deadline: Option<Duration>,
    deadline_per_mib: Duration,
    admit_wait: Duration,
    slow_store_patience: Option<Duration>,
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
    /// Shared mode: when the store was last found slow on every path.
    slow: Option<SlowVerdict>,
    counters: Counters,
}

/// The store was found slow on every path at `at`, in `epoch`.
struct SlowVerdict {
    epoch: u64,
    at: Instant,
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
    SlowStore(Arc<Backend>),
}

#[derive(Default)]
struct Counters {
    operations: u64,
    failovers: u64,
    failbacks: u64,
    standby_losses: u64,
    paused_operations: u64,
    slow_store_waits: u64,
    slow_store_operations: u64,
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
            slow: None,
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
            slow_store_patience: Some(DEFAULT_SLOW_STORE_PATIENCE),
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
