//! The one error type of the crate.
//!
//! Every variant carries the context a user needs (which object, which
//! checkpoint, which option) and its message suggests the next move.

use std::io;

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

/// Everything that can go wrong in `ckpt`.
#[derive(Debug, thiserror::Error)]
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
    #[error(
        "storage {op} of {key:?} failed: {source}; check that the store is reachable and writable, then retry"
    )]
    Storage {
        /// The operation: put, get, list, delete, open.
        op: &'static str,
        /// The object or prefix it touched.
        key: String,
        /// The underlying error; its kind tells transient from permanent.
        #[source]
        source: io::Error,
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
    /// checksum, length or hash).
    #[error("corrupt object {key:?}: {reason}; it will be skipped, an older checkpoint is used")]
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
        /// The encoder's message.
        reason: String,
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
        /// The decoder's message.
        reason: String,
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
    #[error("checkpointer is poisoned by an earlier failure ({cause}); reopen to recover")]
    Poisoned {
        /// The failure that poisoned it.
        cause: String,
    },
}

impl Error {
    /// Builds an [`Error::Storage`] from an I/O error.
    pub fn storage(op: &'static str, key: impl Into<String>, source: io::Error) -> Self {
        Error::Storage {
            op,
            key: key.into(),
            source,
        }
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
