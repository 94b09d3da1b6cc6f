//! What a pair reports: its events, its stats, and its operations in
//! flight.

use super::FailoverMode;
#[cfg(doc)]
use super::FailoverStorage;
#[cfg(doc)]
use crate::error::Error;
#[cfg(doc)]
use crate::storage::Storage;
use std::time::Duration;

/// The kind of a storage operation, in events and in-flight records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
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

impl FailoverEvent {
    /// Logs this event with the `tracing` feature: a failover, a lost
    /// standby or a slow store as a warning, both paths down as an error.
    pub(super) fn trace(&self) {
        #[cfg(feature = "tracing")]
        match self {
            FailoverEvent::FailedOver {
                from,
                to,
                cause,
                relocation,
                epoch,
            } => {
                tracing::warn!(from = %from, to = %to, relocation = ?relocation, epoch, cause = %cause, "failover")
            }
            FailoverEvent::Down { reason, holder } => {
                tracing::error!(reason = %reason, holder = %holder, "failover: both paths are down")
            }
            FailoverEvent::StandbyLost { standby, cause } => {
                tracing::warn!(standby = %standby, cause = %cause, "failover: standby lost")
            }
            FailoverEvent::FailedBack { standby, resync } => {
                tracing::info!(standby = %standby, copied = resync.copied, removed = resync.removed, bytes_copied = resync.bytes_copied, took = ?resync.duration, "failover: standby readmitted")
            }
            FailoverEvent::SlowStore {
                path,
                cause,
                evidence,
            } => {
                tracing::warn!(path = %path, cause = %cause, evidence = %evidence, "failover: slow store")
            }
            FailoverEvent::Paused {
                op,
                key,
                paused,
                total,
                attempts,
            } => {
                tracing::debug!(op = ?op, key = %key, paused = ?paused, total = ?total, attempts, "failover: operation delayed")
            }
        }
    }
}

/// What re-synchronising a readmitted standby took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
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
    pub(super) fn add(&mut self, part: Resync) {
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
    pub mode: FailoverMode,
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
