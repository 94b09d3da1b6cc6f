//! [`Reader`]: list, verify, take apart and restore checkpoints without
//! writing a byte (`details` has what it reports of one checkpoint, and
//! `journal` the store's journal of events); and [`Maintenance`], the
//! writer lock taken by hand for retention and copies (`maintenance`).

mod details;
mod journal;
mod maintenance;

pub use details::{CheckpointDetails, GroupCommit, PackUse, SegmentDetails, SegmentLayout};
pub use journal::{
    DecisionKind, JOURNAL_MAX_RECORDS, JournalDecision, JournalEvent, JournalRecord,
};
pub use maintenance::{Collected, Maintenance};

use crate::catalog::{self, CheckpointInfo, Listing};
use crate::error::{Error, Result};
use crate::format::group::{COMMITS, GlobalCommit, Record, parse_commit_key};
use crate::format::layout::MODEL_KEY;
use crate::format::layout::ManifestName;
use crate::model::{Advisor, ModelConfig, Policy, RestoreProgressEvent};
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

    /// The checkpoint under `key` taken apart: its segments (layout, size,
    /// chunk count, packs) and every pack a restore of it reads. Reads and
    /// verifies only its manifest.
    pub fn details(&self, key: &str) -> Result<CheckpointDetails> {
        let name = recover::parse_key(key)?;
        let manifest = catalog::load_manifest(self.storage.as_ref(), &name)?;
        Ok(CheckpointDetails::of(&manifest))
    }

    /// What the store's checkpointer learnt (its cost model and policy
    /// memory, as [`Advisor::to_bytes`] saved them), read with `config` and
    /// `policy` (pass the writer's, or the defaults); `None` when no
    /// checkpointer saved any. Damaged or newer-format state is an error.
    pub fn advisor(&self, config: ModelConfig, policy: Policy) -> Result<Option<Advisor>> {
        self.model_state()?
            .map(|bytes| Advisor::from_bytes(&bytes, config, policy))
            .transpose()
    }

    /// What the store's checkpointer learnt, read with the model
    /// configuration its writer ran with (stored beside it: its MTBF,
    /// priors and forgetting) and `policy`: the model as the writer saw
    /// it. `None` when no checkpointer saved any; damaged or newer-format
    /// state is an error.
    pub fn advisor_as_written(&self, policy: Policy) -> Result<Option<Advisor>> {
        self.model_state()?
            .map(|bytes| Advisor::from_bytes_as_written(&bytes, policy))
            .transpose()
    }

    fn model_state(&self) -> Result<Option<Vec<u8>>> {
        match self.storage.get(MODEL_KEY) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The store's journal, oldest record first: the checkpoints,
    /// restores, restarts after failures, storage errors, failovers and
    /// policy decisions its checkpointers recorded (timings, sizes, plans
    /// and reasons; never state bytes). What `ckpt report` draws.
    ///
    /// The journal is bounded (at most [`JOURNAL_MAX_RECORDS`] records,
    /// the newest kept) and written off the writer's critical path, when
    /// it saves its model and on `flush()`/`finish()`: a crash loses the
    /// records since. A damaged journal object is skipped, not an error;
    /// an error means the store could not be listed or read.
    pub fn journal(&self) -> Result<Vec<JournalRecord>> {
        journal::read(self.storage.as_ref())
    }

    /// The global commits of a [`Group`](crate::Group) whose ranks share
    /// this store, oldest first; empty for a lone checkpointer's store.
    /// Each record is read and verified; a damaged one is an error.
    pub fn group_commits(&self) -> Result<Vec<GroupCommit>> {
        let mut keys: Vec<(u64, String, String)> = self
            .storage
            .list(COMMITS)?
            .into_iter()
            .filter_map(|key| parse_commit_key(&key).map(|(step, run)| (step, run, key)))
            .collect();
        keys.sort();
        keys.into_iter()
            .map(|(_, _, key)| {
                let commit = GlobalCommit::decode(&key, &self.storage.get(&key)?)?;
                Ok(GroupCommit {
                    step: commit.step,
                    run_id: commit.run.clone(),
                    shards: commit.shards.into_iter().map(|s| s.manifest).collect(),
                    key,
                })
            })
            .collect()
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
