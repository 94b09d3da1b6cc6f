//! Configuring a pair: the mode, the rule that tells a failed backend
//! from an answer, and the builder that checks the options and opens it.

use super::{
    Admission, Backend, Classifier, Config, DEFAULT_ADMIT_WAIT, DEFAULT_DEADLINE,
    DEFAULT_DEADLINE_PER_MIB, DEFAULT_SLOW_STORE_PATIENCE, FailoverStorage, KEY_STRIPES, Pool,
    State, Storage,
};
use crate::error::{Error, Result};
use std::fmt;
use std::io;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How the active and the standby relate; see [`FailoverStorage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailoverMode {
    /// Two paths to one store: operations go to the active only.
    Shared,
    /// Two stores kept identical: reads from the active, writes to both.
    Mirrored,
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

/// Configures a [`FailoverStorage`]; see [`FailoverStorage::builder`].
#[must_use = "a builder does nothing until build() is called"]
pub struct FailoverBuilder {
    mode: FailoverMode,
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

impl FailoverStorage {
    /// Starts configuring a pair in `mode`.
    pub fn builder(mode: FailoverMode) -> FailoverBuilder {
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
}
