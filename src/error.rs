//! The one error type of the crate.
//!
//! Every variant carries the context a user needs (which object, which
//! checkpoint, which option); [`Error::kind`] groups the variants by what
//! the user does next. A message says what happened; the error that caused
//! it, if any, is [`source()`](std::error::Error::source) and is never
//! repeated in the message ([`Error::report`] prints the whole chain).

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::sync::Arc;

/// Shorthand for `Result<T, ckpt::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A checkpoint that restore or listing passed over, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The manifest's key.
    pub key: String,
    /// Its step, when the key says so.
    pub step: Option<u64>,
    /// What failed (corruption, a missing pack, an unknown version...).
    pub reason: String,
}

/// What a user does next about an [`Error`]: see [`Error::kind`].
///
/// New kinds may be added; match with a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A builder option, a key, the group's setup or the order of calls is
    /// wrong: fix the configuration or the calling code; retrying the same
    /// thing fails the same way. ([`Error::InvalidConfig`],
    /// [`Error::InvalidKey`], [`Error::ReadOnly`], [`Error::Unsupported`],
    /// [`Error::GroupSizeMismatch`], [`Error::RunReused`],
    /// [`Error::GroupOrder`].)
    Config,
    /// The application state does not encode, or a checkpoint does not
    /// decode as the requested type: fix the state's types, restore with
    /// the type that wrote it, or migrate. ([`Error::Serialize`],
    /// [`Error::StateMismatch`].)
    State,
    /// The store failed in a way a retry does not mend (access denied, bad
    /// path, disk full, every backend of a failover pair down...): fix the
    /// store or the access to it, then open it again. ([`Error::Storage`]
    /// with a permanent [`io::ErrorKind`], [`Error::StorageDown`],
    /// [`Error::AdmitRefused`].)
    Store,
    /// The store did not answer, timed out or was busy: the same storage
    /// operation may succeed later. A [`Checkpointer`](crate::Checkpointer)
    /// that returned it from a persist is poisoned all the same: open a new
    /// one to go on. ([`Error::Storage`] with a transient
    /// [`io::ErrorKind`]: refused, reset or aborted connection, timeout,
    /// interrupted, busy.)
    RetryLater,
    /// Another process or writer uses the store: stop it, or use another
    /// store (or [`PrefixStorage`](crate::storage::PrefixStorage)
    /// namespace). ([`Error::Locked`], [`Error::WriterActive`],
    /// [`Error::Fenced`].)
    Conflict,
    /// Data in the store is damaged or missing: restore passes over such a
    /// checkpoint to an older one where it can; otherwise inspect the store,
    /// or move it aside to start fresh. ([`Error::Corrupt`],
    /// [`Error::NotFound`], [`Error::NoUsableCheckpoint`],
    /// [`Error::ShardDamaged`].)
    Damaged,
    /// The data was written by a newer `ckpt`: upgrade to read it.
    /// ([`Error::UnsupportedVersion`].)
    NewerFormat,
    /// This checkpointer refuses further work after an earlier failure:
    /// drop it and open a new one, whose restore picks the newest
    /// checkpoint that verifies. ([`Error::Poisoned`].)
    Poisoned,
}

impl ErrorKind {
    /// Whether repeating the failed operation later may succeed (only
    /// [`ErrorKind::RetryLater`]).
    pub fn is_retryable(self) -> bool {
        self == ErrorKind::RetryLater
    }
}

/// Everything that can go wrong in `ckpt`.
///
/// The variants are flat, one per situation; [`Error::kind`] groups them by
/// what the user does next ([`ErrorKind`]: fix the configuration, fix the
/// state's types, fix the store, retry later, stop the other writer, the
/// data is damaged, upgrade, reopen). A message says what happened and,
/// where it is true on every path that returns it, what to do; the
/// underlying error is [`source()`](std::error::Error::source), never
/// repeated in the message, so print [`Error::report`] (or walk the
/// sources) to see it.
///
/// Errors are cheap to clone: their sources are shared.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A builder option was out of range or inconsistent.
    #[error("invalid option `{option}`: {reason}")]
    InvalidConfig {
        /// The builder method whose value was rejected.
        option: &'static str,
        /// Why it was rejected and what to pass instead.
        reason: String,
    },

    /// A storage key that the backend cannot represent.
    #[error("invalid storage key {key:?}: {reason}")]
    InvalidKey {
        /// The offending key.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The object does not exist in the store.
    #[error("object {key:?} not found in the store")]
    NotFound {
        /// The missing object.
        key: String,
    },

    /// A storage backend operation failed.
    ///
    /// The source's [`io::ErrorKind`] tells a transient failure
    /// ([`ErrorKind::RetryLater`]) from a permanent one
    /// ([`ErrorKind::Store`]); see [`Error::kind`].
    #[error("storage {op} of {key:?} failed; {}", storage_hint(source.kind()))]
    Storage {
        /// The operation: put, get, list, delete, open.
        op: &'static str,
        /// The object or prefix it touched.
        key: String,
        /// The underlying error (shared, so that the error can be cloned);
        /// its kind tells transient from permanent.
        #[source]
        source: Arc<io::Error>,
    },

    /// Another process holds the store's lock.
    #[error(
        "store {path} is locked by another process ({holder}); stop that process or open another directory"
    )]
    Locked {
        /// The store directory.
        path: String,
        /// What the lock file says about its holder (e.g. "pid 4242").
        holder: String,
    },

    /// Another checkpointer holds the store's writer lease: two writers
    /// on one store would delete each other's checkpoints.
    #[error(
        "another checkpointer writes to this store ({holder}); stop it, or give this one another store or PrefixStorage namespace (a writer that died on another machine frees the store one lease TTL after its last renewal)"
    )]
    WriterActive {
        /// Who holds the lease, as its claim says.
        holder: String,
    },

    /// Another writer took the store over after this checkpointer's lease
    /// lapsed (it was paused, or cut off from the store, for longer than
    /// the lease TTL), so this checkpointer writes and deletes nothing
    /// more.
    #[error(
        "another writer took this store over ({holder}) after this checkpointer's lease lapsed; this checkpointer writes nothing more: drop it, and restore from a new one once the other writer is gone"
    )]
    Fenced {
        /// Who holds the lease now.
        holder: String,
    },

    /// A write to a store opened read-only
    /// ([`FsStorage::open_read_only`](crate::FsStorage::open_read_only)).
    #[error(
        "cannot {op} {key:?}: the store was opened read-only (FsStorage::open_read_only); open it with FsStorage::open to write"
    )]
    ReadOnly {
        /// The write refused: put, put_parts, put_if_absent, delete,
        /// delete_many.
        op: &'static str,
        /// The object it would have written or removed (the first one, for
        /// `delete_many`).
        key: String,
    },

    /// An object in the store failed verification (bad magic, version,
    /// checksum, length or hash), or is shorter than a range asked of it.
    ///
    /// Restore passes over a checkpoint that returns it and tries an older
    /// one (see [`Skipped`]); elsewhere (a group record, the model's state,
    /// a range read) it is returned as is.
    #[error(
        "corrupt object {key:?}: {reason}; it does not hold what ckpt wrote there (damaged, truncated, or another program's)"
    )]
    Corrupt {
        /// The object that failed verification.
        key: String,
        /// What check failed.
        reason: String,
    },

    /// An object was written by a format version this build cannot read.
    #[error(
        "object {key:?} has format version {found}, this build reads up to {supported}; upgrade ckpt to read it"
    )]
    UnsupportedVersion {
        /// The object.
        key: String,
        /// The version found on disk.
        found: u16,
        /// The newest version this build understands.
        supported: u16,
    },

    /// The application state could not be encoded.
    #[error("could not serialize state segment {segment:?}: {reason}")]
    Serialize {
        /// The segment being captured.
        segment: String,
        /// What went wrong, in words (the encoder's error is `source`).
        reason: String,
        /// The encoder's error, when there is one.
        #[source]
        source: Option<Arc<dyn StdError + Send + Sync>>,
    },

    /// A verified checkpoint did not decode into the requested type: the
    /// type changed since it was written, or the wrong type was asked for.
    #[error(
        "checkpoint at step {step} does not decode as the requested state (segment {segment:?}): {reason}; restore with the type that wrote it, or migrate"
    )]
    StateMismatch {
        /// The step of the checkpoint.
        step: u64,
        /// The segment that failed.
        segment: String,
        /// What did not match, in words (the decoder's error is `source`).
        reason: String,
        /// The decoder's error, when there is one.
        #[source]
        source: Option<Arc<dyn StdError + Send + Sync>>,
    },

    /// The store holds checkpoints but none of them verifies.
    #[error(
        "none of the {} checkpoints in the store verifies (newest: {}); inspect them with Checkpointer::list, or move the store aside to start fresh",
        skipped.len(),
        skipped.first().map_or("?", |s| s.reason.as_str())
    )]
    NoUsableCheckpoint {
        /// Every checkpoint tried, newest first, with why it failed.
        skipped: Vec<Skipped>,
    },

    /// Every backend of a [`FailoverStorage`](crate::storage::FailoverStorage)
    /// failed: the active, and then the standby (or there was no standby to
    /// fail over to).
    ///
    /// Nothing reported committed is lost: it is all on the backend(s) named
    /// in `holder`. The pair stays down (every later operation returns this
    /// error at once); repair a holder and open a new `FailoverStorage` with
    /// it as the active.
    #[error(
        "failover storage is down: {reason}; every object reported committed is on {holder}: repair it and open a new FailoverStorage with it as the active"
    )]
    StorageDown {
        /// What failed, backend by backend.
        reason: String,
        /// The backend(s) that hold every committed object.
        holder: String,
    },

    /// A backend could not be admitted as the standby of a
    /// [`FailoverStorage`](crate::storage::FailoverStorage) (at build time, or
    /// on failback). The pair keeps running on its active without a standby.
    #[error(
        "cannot admit {backend:?} as standby: {reason}; fix it and try again (a running pair carries on without a standby meanwhile)"
    )]
    AdmitRefused {
        /// The backend's name.
        backend: String,
        /// Why it was refused.
        reason: String,
    },

    /// The storage backend cannot do what was asked of it (for example a
    /// conditional put, which coordinated checkpoints need).
    #[error("storage backend {backend} does not support {operation}; {hint}")]
    Unsupported {
        /// The backend's type.
        backend: String,
        /// The operation it lacks.
        operation: &'static str,
        /// Which backends do support it.
        hint: &'static str,
    },

    /// The shared store holds a checkpoint [`Group`](crate::Group) of
    /// another size than this checkpointer's.
    #[error(
        "the store holds a checkpoint group of {found} ranks, this checkpointer was configured for {expected}; start every rank with the same number of ranks, or use another store (or PrefixStorage namespace) for a group of another size"
    )]
    GroupSizeMismatch {
        /// The number of ranks this checkpointer was given.
        expected: u32,
        /// The number of ranks the store's group was created with.
        found: u32,
    },

    /// This rank already joined the group under this run id: the id was
    /// reused by a later launch (or a second checkpointer of the same
    /// rank). Reusing an id could mix the shards of two launches in one
    /// global commit, so it is refused.
    #[error(
        "run id {run:?} was already used by rank {rank}; give every launch of the group (including each restart) a new run id, the same on every rank, e.g. $SLURM_JOB_ID-$SLURM_RESTART_COUNT"
    )]
    RunReused {
        /// The run id.
        run: String,
        /// The rank that found it taken.
        rank: u32,
    },

    /// This rank's shard of the newest globally committed step does not
    /// verify. The rank does not fall back to an older step on its own,
    /// because every rank must resume from the same step.
    #[error(
        "rank {rank}'s shard of globally committed step {step} does not verify ({reason}); the group cannot resume from that step: delete the commit {commit:?} and the votes starting with {votes:?} from the store, so that every rank falls back to the previous global commit"
    )]
    ShardDamaged {
        /// The rank whose shard is damaged.
        rank: u32,
        /// The committed step.
        step: u64,
        /// The global commit's key in the shared store.
        commit: String,
        /// The prefix of the keys of the votes it was made from (restore
        /// would make the commit again from them).
        votes: String,
        /// What failed.
        reason: String,
    },

    /// A rank of a group was used out of the order the protocol needs.
    #[error("group checkpoint refused: {reason}")]
    GroupOrder {
        /// What was out of order and what to do instead.
        reason: String,
    },

    /// An earlier persist failed, so the checkpointer refuses further work.
    ///
    /// After a failed write or fsync the operating system may have dropped
    /// the dirty pages it could not write ("fsyncgate"), so retrying cannot
    /// prove durability. Drop this checkpointer and open a new one: restore
    /// then picks the newest checkpoint that verifies.
    #[error(
        "checkpointer is poisoned by an earlier failure{}; drop it and open a new one, whose restore picks the newest checkpoint that verifies",
        source.as_ref().map_or_else(|| format!(" ({cause})"), |_| String::new())
    )]
    Poisoned {
        /// The failure that poisoned it, in words (its message, when
        /// `source` holds it; the message then leaves it to `source`).
        cause: String,
        /// The error that poisoned it, when it was an error (a panic or a
        /// lost thread is not).
        #[source]
        source: Option<Arc<Error>>,
    },
}

/// The advice of an [`Error::Storage`] message, true of every error of that
/// kind.
fn storage_hint(kind: io::ErrorKind) -> &'static str {
    if transient(kind) {
        "the store did not answer in time or was busy: check that it is reachable"
    } else {
        "check the store's location, permissions and free space"
    }
}

/// I/O error kinds that a later retry of the same operation may not see.
fn transient(kind: io::ErrorKind) -> bool {
    use io::ErrorKind as K;
    matches!(
        kind,
        K::ConnectionRefused
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::NotConnected
            | K::BrokenPipe
            | K::TimedOut
            | K::Interrupted
            | K::WouldBlock
            | K::ResourceBusy
            | K::HostUnreachable
            | K::NetworkUnreachable
            | K::NetworkDown
    )
}

impl Error {
    /// Builds an [`Error::Storage`] from an I/O error.
    pub fn storage(op: &'static str, key: impl Into<String>, source: io::Error) -> Self {
        Error::Storage {
            op,
            key: key.into(),
            source: Arc::new(source),
        }
    }

    /// Builds an [`Error::Serialize`] caused by the encoder's `source`.
    pub(crate) fn encode(
        segment: impl Into<String>,
        source: impl StdError + Send + Sync + 'static,
    ) -> Self {
        Error::Serialize {
            segment: segment.into(),
            reason: "the encoder refused the value".to_owned(),
            source: Some(Arc::new(source)),
        }
    }

    /// Builds an [`Error::Serialize`] with no underlying error.
    pub(crate) fn serialize(segment: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Serialize {
            segment: segment.into(),
            reason: reason.into(),
            source: None,
        }
    }

    /// Builds an [`Error::Poisoned`] caused by `source`.
    pub(crate) fn poisoned_by(source: Arc<Error>) -> Self {
        Error::Poisoned {
            cause: source.to_string(),
            source: Some(source),
        }
    }

    /// Builds an [`Error::Poisoned`] whose cause is no error value (a
    /// panic, a lost thread).
    pub(crate) fn poisoned(cause: impl Into<String>) -> Self {
        Error::Poisoned {
            cause: cause.into(),
            source: None,
        }
    }

    /// What the user does next; see [`ErrorKind`].
    pub fn kind(&self) -> ErrorKind {
        use ErrorKind as K;
        match self {
            Error::InvalidConfig { .. }
            | Error::InvalidKey { .. }
            | Error::ReadOnly { .. }
            | Error::Unsupported { .. }
            | Error::GroupSizeMismatch { .. }
            | Error::RunReused { .. }
            | Error::GroupOrder { .. } => K::Config,
            Error::Serialize { .. } | Error::StateMismatch { .. } => K::State,
            Error::Storage { source, .. } if transient(source.kind()) => K::RetryLater,
            Error::Storage { .. } | Error::StorageDown { .. } | Error::AdmitRefused { .. } => {
                K::Store
            }
            Error::Locked { .. } | Error::WriterActive { .. } | Error::Fenced { .. } => K::Conflict,
            Error::Corrupt { .. }
            | Error::NotFound { .. }
            | Error::NoUsableCheckpoint { .. }
            | Error::ShardDamaged { .. } => K::Damaged,
            Error::UnsupportedVersion { .. } => K::NewerFormat,
            Error::Poisoned { .. } => K::Poisoned,
        }
    }

    /// The message followed by that of each source (those whose text the
    /// message before does not already hold), separated by `: `, for logs
    /// and reports.
    pub fn report(&self) -> ErrorReport<'_> {
        ErrorReport(self)
    }

    /// Builds an [`Error::Corrupt`].
    pub fn corrupt(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// True for errors that say "this object is damaged or missing", which
    /// restore answers by falling back to an older checkpoint.
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            Error::Corrupt { .. } | Error::NotFound { .. } | Error::UnsupportedVersion { .. }
        )
    }
}

/// An [`Error`] with its chain of sources; see [`Error::report`].
#[derive(Debug, Clone, Copy)]
pub struct ErrorReport<'a>(&'a Error);

impl fmt::Display for ErrorReport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.0.to_string();
        f.write_str(&shown)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            let text = e.to_string();
            if !shown.contains(&text) {
                write!(f, ": {text}")?;
                shown = text;
            }
            source = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every error and the text of each of its sources.
    fn chain(error: &Error) -> Vec<String> {
        let mut out = Vec::new();
        let mut source = error.source();
        while let Some(e) = source {
            out.push(e.to_string());
            source = e.source();
        }
        out
    }

    #[test]
    fn messages_leave_the_source_to_source() {
        let storage = Error::storage(
            "put",
            "k",
            io::Error::new(io::ErrorKind::TimedOut, "the disk said SENTINEL-IO"),
        );
        let decoded = Error::StateMismatch {
            step: 3,
            segment: "weights".to_owned(),
            reason: "its bytes do not decode as the requested type".to_owned(),
            source: Some(Arc::new(io::Error::other("SENTINEL-DECODE"))),
        };
        let encoded = Error::encode("weights", io::Error::other("SENTINEL-ENCODE"));
        let poisoned = Error::poisoned_by(Arc::new(storage.clone()));
        for (error, sentinel) in [
            (&storage, "SENTINEL-IO"),
            (&decoded, "SENTINEL-DECODE"),
            (&encoded, "SENTINEL-ENCODE"),
            (&poisoned, "SENTINEL-IO"),
        ] {
            let message = error.to_string();
            let sources = chain(error);
            assert!(
                sources.iter().any(|s| s.contains(sentinel)),
                "{sentinel} not in the sources {sources:?}"
            );
            assert!(
                !message.contains(sentinel),
                "{sentinel} repeated in {message}"
            );
            // The report shows the cause, once.
            let report = error.report().to_string();
            assert_eq!(report.matches(sentinel).count(), 1, "{report}");
        }
        assert!(poisoned.to_string().contains("drop it and open a new one"));
        // A poisoning with no error value says what it was.
        let lost = Error::poisoned("the background persist thread panicked");
        assert!(lost.source().is_none());
        assert!(
            lost.to_string().contains("persist thread panicked"),
            "{lost}"
        );
    }

    #[test]
    fn kinds_group_by_what_to_do_next() {
        let io = |kind| Error::storage("get", "k", io::Error::new(kind, "x"));
        let cases = [
            (io(io::ErrorKind::TimedOut), ErrorKind::RetryLater),
            (io(io::ErrorKind::ConnectionRefused), ErrorKind::RetryLater),
            (io(io::ErrorKind::ResourceBusy), ErrorKind::RetryLater),
            (io(io::ErrorKind::PermissionDenied), ErrorKind::Store),
            (io(io::ErrorKind::StorageFull), ErrorKind::Store),
            (
                Error::InvalidConfig {
                    option: "keep_last",
                    reason: "0".to_owned(),
                },
                ErrorKind::Config,
            ),
            (Error::corrupt("k", "checksum mismatch"), ErrorKind::Damaged),
            (Error::NotFound { key: "k".into() }, ErrorKind::Damaged),
            (
                Error::UnsupportedVersion {
                    key: "k".into(),
                    found: 9,
                    supported: 1,
                },
                ErrorKind::NewerFormat,
            ),
            (
                Error::WriterActive {
                    holder: "pid 1".into(),
                },
                ErrorKind::Conflict,
            ),
            (Error::serialize("s", "two segments"), ErrorKind::State),
            (Error::poisoned("panic"), ErrorKind::Poisoned),
        ];
        for (error, kind) in cases {
            assert_eq!(error.kind(), kind, "{error}");
            assert_eq!(kind.is_retryable(), kind == ErrorKind::RetryLater);
        }
        // Storage advice follows the kind: "reachable" for transient ones.
        assert!(
            io(io::ErrorKind::TimedOut)
                .to_string()
                .contains("reachable")
        );
        assert!(
            io(io::ErrorKind::PermissionDenied)
                .to_string()
                .contains("permissions")
        );
    }
}
