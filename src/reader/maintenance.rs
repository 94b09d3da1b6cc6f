//! [`Maintenance`]: the store's writer lock taken by hand, for retention
//! on demand and for copying checkpoints in; and the recording wrapper
//! that lets a retention pass be previewed without deleting anything.

use super::Reader;
use crate::catalog::{self, CheckpointInfo, RetentionReport};
use crate::error::{Error, Result};
use crate::format::MAX_MANIFEST_BYTES;
use crate::format::layout::{MANIFESTS, ManifestName, pack_key};
use crate::recover;
use crate::storage::{DEFAULT_LEASE_TTL, Storage, hold_writer_lease};
use std::collections::{BTreeSet, HashSet};
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};

/// What a retention pass deleted (or, previewed, would delete).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Collected {
    /// The counts, as a checkpointer's own retention reports them.
    pub report: RetentionReport,
    /// The keys deleted, manifests first, in the order they went.
    pub deleted: Vec<String>,
}

/// A store opened as its one writer, for maintenance by hand: retention
/// ([`keep_last`](Self::keep_last)) and copying checkpoints in from
/// another store ([`copy_from`](Self::copy_from)).
///
/// Opening takes the store's writer lock (an exclusive [`FsStorage`](crate::FsStorage)
/// already holds it) or its writer lease, exactly as a
/// [`Checkpointer`](crate::Checkpointer) does, so maintenance never runs
/// beside a live writer: [`open`](Self::open) fails with
/// [`Error::WriterActive`] (or, for a directory, `FsStorage::open` with
/// [`Error::Locked`]) while one holds the store. The lease is released
/// when the value is dropped.
///
/// ```
/// use ckpt::{Checkpointer, FsStorage, Maintenance, Reader};
///
/// # let dir = tempfile::tempdir()?;
/// # let dir = dir.path();
/// let mut ck = Checkpointer::builder().storage(FsStorage::open(dir)?).keep_last(10).build()?;
/// for step in 0..5u64 {
///     ck.checkpoint(step, &mut vec![step; 1000])?;
/// }
/// ck.finish()?;
/// // Previewed without the lock, then applied with it:
/// let preview = Reader::open_dir(dir)?.preview_retention(2)?;
/// let done = Maintenance::open(FsStorage::open(dir)?)?.keep_last(2)?;
/// assert_eq!(preview, done);
/// assert_eq!(done.report.manifests_deleted, 3);
/// assert_eq!(Reader::open_dir(dir)?.list()?.checkpoints.len(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Maintenance {
    storage: Arc<dyn Storage>,
}

impl Maintenance {
    /// Takes the writer lock or lease of `storage`: see the type's docs.
    pub fn open(storage: impl Storage + 'static) -> Result<Self> {
        let storage = hold_writer_lease(Arc::new(storage), DEFAULT_LEASE_TTL)?;
        Ok(Maintenance { storage })
    }

    /// Keeps the newest `n` checkpoints that verify and deletes older ones
    /// and every pack no kept checkpoint references, by the rules of a
    /// checkpointer's own retention (see [`RetentionReport`]). `n` must be
    /// at least 1.
    pub fn keep_last(&self, n: usize) -> Result<Collected> {
        collect(self.storage.clone(), n, true)
    }

    /// Copies the checkpoint stored under `key` in `from` into this store,
    /// with every pack it needs, and verifies the copy (reading back every
    /// byte). Packs go first, each durable before the next; the manifest
    /// goes last, so the copy exists only once it is whole. Packs this
    /// store already holds under the same key are not copied again.
    ///
    /// The copy keeps its commit sequence number if that is newer than
    /// every checkpoint here, and otherwise gets the next one, so it is
    /// the store's newest checkpoint either way (a restore picks it).
    pub fn copy_from(&self, from: &Reader, key: &str) -> Result<CheckpointInfo> {
        let name = recover::parse_key(key)?;
        let mut manifest = catalog::load_manifest(from.storage.as_ref(), &name)?;
        let present: HashSet<String> = self
            .storage
            .list(crate::format::layout::PACKS)?
            .into_iter()
            .collect();
        let packs: BTreeSet<u128> = manifest.packs().collect();
        for pack in packs.into_iter().map(pack_key) {
            if !present.contains(&pack) {
                self.storage.put(&pack, &from.storage.get(&pack)?)?;
            }
        }
        let (names, _) = catalog::scan(self.storage.as_ref())?;
        let newest_here = names.iter().map(|n| n.seq).max().unwrap_or(0);
        let bytes = if manifest.seq > newest_here {
            from.storage.get(key)?
        } else {
            manifest.seq = newest_here + 1;
            manifest.encode(MAX_MANIFEST_BYTES)?
        };
        let copied: ManifestName = manifest.name();
        debug_assert!(copied.key().starts_with(MANIFESTS));
        self.storage.put(&copied.key(), &bytes)?;
        recover::verify(self.storage.as_ref(), &copied, &mut |_, _, _| {})
    }
}

impl Reader {
    /// What [`Maintenance::keep_last`] would delete now, without deleting
    /// anything or taking any lock: the same retention pass, run with its
    /// deletes recorded instead of done. A writer that commits meanwhile
    /// makes the real pass differ.
    pub fn preview_retention(&self, n: usize) -> Result<Collected> {
        collect(self.storage.clone(), n, false)
    }
}

/// One retention pass keeping `n` over `storage`, deleting only when
/// `delete` is set.
fn collect(storage: Arc<dyn Storage>, n: usize, delete: bool) -> Result<Collected> {
    if n == 0 {
        return Err(Error::InvalidConfig {
            option: "keep_last",
            reason: "must keep at least 1 checkpoint".to_owned(),
        });
    }
    let recorder = Recorder {
        inner: storage,
        delete,
        deleted: Mutex::default(),
    };
    let report = catalog::apply_retention(&recorder, n, &BTreeSet::new(), &BTreeSet::new())?;
    let deleted = recorder
        .deleted
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    Ok(Collected { report, deleted })
}

/// Forwards reads, records deletes (and does them when `delete` is set);
/// refuses every other write.
#[derive(Debug)]
struct Recorder {
    inner: Arc<dyn Storage>,
    delete: bool,
    deleted: Mutex<Vec<String>>,
}

impl Recorder {
    fn record(&self, keys: &[String]) {
        self.deleted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(keys);
    }
}

impl Storage for Recorder {
    fn put(&self, key: &str, _: &[u8]) -> Result<()> {
        Err(Error::ReadOnly {
            op: "put",
            key: key.to_owned(),
        })
    }
    fn get(&self, key: &str) -> Result<Vec<u8>> {
        self.inner.get(key)
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.inner.list(prefix)
    }
    fn delete(&self, key: &str) -> Result<()> {
        self.delete_many(&[key.to_owned()])
    }
    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>> {
        self.inner.get_range(key, range)
    }
    fn delete_many(&self, keys: &[String]) -> Result<()> {
        if self.delete {
            self.inner.delete_many(keys)?;
        }
        self.record(keys);
        Ok(())
    }
}
