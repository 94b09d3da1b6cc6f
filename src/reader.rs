//! [`Reader`]: list, verify and restore checkpoints without writing a byte.

use crate::catalog::{self, CheckpointInfo, Listing};
use crate::error::{Error, Result};
use crate::format::layout::ManifestName;
use crate::model::RestoreProgressEvent;
use crate::recover::Restored;
use crate::recover::{self, Recovered};
use crate::state::State;
use crate::storage::{FsStorage, Storage};
use std::path::Path;
use std::sync::Arc;

/// Progress callback of a [`Reader`].
type ProgressCallback = Box<dyn FnMut(&RestoreProgressEvent) + Send>;

/// A read-only view of a store: lists, verifies and restores checkpoints,
/// taking no lock and writing nothing.
///
/// This is the way in when the store cannot or must not be written: a
/// read-only mount, a directory owned by someone else, a full disk (a
/// common reason for the crash), a store whose writer is still running,
/// or a look at yesterday's checkpoint from another machine. A
/// [`Checkpointer`](crate::Checkpointer) by contrast takes the store's
/// lock and records what its model learns there.
///
/// ```
/// use ckpt::{Checkpointer, FsStorage, Reader};
///
/// # let dir = tempfile::tempdir()?;
/// # let dir = dir.path();
/// let mut ck = Checkpointer::builder().storage(FsStorage::open(dir)?).build()?;
/// for step in 0..3u64 {
///     ck.checkpoint(step, &mut vec![step; 1000])?;
/// }
/// // While the writer still holds the store:
/// let reader = Reader::open_dir(dir)?;
/// assert_eq!(reader.list()?.checkpoints.len(), 3);
/// let newest = reader.restore_latest::<Vec<u64>>()?.expect("a checkpoint");
/// assert_eq!((newest.step, newest.state[0]), (2, 2));
/// let older = reader.restore_at::<Vec<u64>>(1)?.expect("step 1 was checkpointed");
/// assert_eq!(older.state[0], 1);
/// reader.verify_step(0)?;
/// # ck.finish()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Reader {
    storage: Arc<dyn Storage>,
    progress: Option<std::sync::Mutex<ProgressCallback>>,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("storage", &self.storage)
            .finish_non_exhaustive()
    }
}

impl Reader {
    /// A reader over `storage`. Only its read methods (`get`, `get_range`,
    /// `read_into`, `list`) are ever called.
    pub fn new(storage: impl Storage + 'static) -> Self {
        Reader {
            storage: Arc::new(storage),
            progress: None,
        }
    }

    /// A reader over the store in directory `dir`, opened with
    /// [`FsStorage::open_read_only`]: no lock is taken and nothing is
    /// created, so it works on a read-only mount and beside a running
    /// writer.
    pub fn open_dir(dir: impl AsRef<Path>) -> Result<Self> {
        Ok(Self::new(FsStorage::open_read_only(dir)?))
    }

    /// Calls `callback` as a long restore or verification reads its
    /// checkpoint (about once per percent, for checkpoints of 64 MiB or
    /// more).
    pub fn on_progress(
        mut self,
        callback: impl FnMut(&RestoreProgressEvent) + Send + 'static,
    ) -> Self {
        self.progress = Some(std::sync::Mutex::new(Box::new(callback)));
        self
    }

    /// The store's checkpoints (manifests only; packs are read by
    /// [`verify`](Self::verify) and the restores).
    pub fn list(&self) -> Result<Listing> {
        catalog::list(self.storage.as_ref())
    }

    /// Restores the newest checkpoint that verifies, passing over damaged
    /// ones (listed in [`Restored::skipped`]); `None` for an empty store,
    /// [`Error::NoUsableCheckpoint`] when nothing verifies.
    pub fn restore_latest<S: State>(&self) -> Result<Option<Restored<S>>> {
        let (names, _foreign) = catalog::scan(self.storage.as_ref())?;
        let found = self.with_progress(|progress| {
            recover::restore_newest::<S>(self.storage.as_ref(), &names, progress)
        })?;
        Ok(found.map(restored))
    }

    /// Restores the checkpoint taken at `step` (the newest of them, if the
    /// step was checkpointed more than once); `None` when there is none.
    /// A checkpoint that does not verify is an error, not a fallback.
    pub fn restore_at<S: State>(&self, step: u64) -> Result<Option<Restored<S>>> {
        let Some(name) = recover::find_step(self.storage.as_ref(), step)? else {
            return Ok(None);
        };
        self.restore_named(&name).map(Some)
    }

    /// Restores the checkpoint whose manifest is stored under `key`
    /// (as [`CheckpointInfo::key`] names it).
    pub fn restore_key<S: State>(&self, key: &str) -> Result<Restored<S>> {
        self.restore_named(&recover::parse_key(key)?)
    }

    /// Reads and verifies every byte the checkpoint under `key` needs (its
    /// manifest, and every chunk of every pack it references), keeping
    /// nothing. `Ok` means a restore of it would find its bytes intact.
    pub fn verify(&self, key: &str) -> Result<CheckpointInfo> {
        self.verify_named(&recover::parse_key(key)?)
    }

    /// [`verify`](Self::verify) for the newest checkpoint taken at `step`.
    pub fn verify_step(&self, step: u64) -> Result<CheckpointInfo> {
        let name =
            recover::find_step(self.storage.as_ref(), step)?.ok_or_else(|| Error::NotFound {
                key: format!("a checkpoint of step {step}"),
            })?;
        self.verify_named(&name)
    }

    fn restore_named<S: State>(&self, name: &ManifestName) -> Result<Restored<S>> {
        self.with_progress(|progress| {
            recover::restore_named::<S>(self.storage.as_ref(), name, progress)
        })
        .map(restored)
    }

    fn verify_named(&self, name: &ManifestName) -> Result<CheckpointInfo> {
        self.with_progress(|progress| recover::verify(self.storage.as_ref(), name, progress))
    }

    fn with_progress<T>(&self, run: impl FnOnce(recover::ProgressSink<'_>) -> T) -> T {
        let mut guard = self
            .progress
            .as_ref()
            .map(|p| p.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        let mut sink = |step, done, total| {
            if let Some(callback) = guard.as_mut() {
                callback(&RestoreProgressEvent::new(step, done, total));
            }
        };
        run(&mut sink)
    }
}

fn restored<S>(recovered: Recovered<S>) -> Restored<S> {
    let info = recovered.info();
    Restored {
        state: recovered.state,
        step: info.step,
        info,
        skipped: recovered.skipped,
        global: None,
        type_changes: recovered.type_changes,
        tier: None,
    }
}
