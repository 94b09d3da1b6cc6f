//! The [`Checkpointer`]: its builder, scopes, checkpoints and restore.

use crate::catalog::{self, CheckpointInfo, Listing, RetentionReport, Skipped};
use crate::error::{Error, Result};
use crate::format::layout::ManifestName;
use crate::format::pack::Compression;
use crate::scheme::{CheckpointId, Scheme, WriteOptions, write_full};
use crate::state::{Capture, Restore, State};
use crate::storage::Storage;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const DEFAULT_KEEP_LAST: usize = 3;
const DEFAULT_COMPRESSION_LEVEL: i32 = 1;
const DEFAULT_CHUNK_SIZE: usize = 1 << 20;
const MIN_CHUNK_SIZE: usize = 4 << 10;
const MAX_CHUNK_SIZE: usize = 256 << 20;

/// Configures and opens a [`Checkpointer`]; see [`Checkpointer::builder`].
///
/// Options take plain values; [`build`](Self::build) checks them all and
/// names the first bad one.
#[derive(Debug)]
#[must_use = "a builder does nothing until build() is called"]
pub struct CheckpointerBuilder {
    storage: Option<Arc<dyn Storage>>,
    scheme: Scheme,
    every_steps: Option<u64>,
    every: Option<Duration>,
    keep_last: usize,
    compression_level: i32,
    chunk_size: usize,
    threads: usize,
}

impl Default for CheckpointerBuilder {
    fn default() -> Self {
        CheckpointerBuilder {
            storage: None,
            scheme: Scheme::default(),
            every_steps: None,
            every: None,
            keep_last: DEFAULT_KEEP_LAST,
            compression_level: DEFAULT_COMPRESSION_LEVEL,
            chunk_size: DEFAULT_CHUNK_SIZE,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

impl CheckpointerBuilder {
    /// Where checkpoints are stored (required). Pass a backend by value, or
    /// an `Arc` to keep a handle of your own.
    pub fn storage(mut self, storage: impl Storage + 'static) -> Self {
        self.storage = Some(Arc::new(storage));
        self
    }

    /// The checkpoint scheme (default [`Scheme::Full`]).
    pub fn scheme(mut self, scheme: Scheme) -> Self {
        self.scheme = scheme;
        self
    }

    /// Checkpoint after every `n` scopes. With [`every`](Self::every) as
    /// well, whichever comes first triggers. Without either, every scope
    /// checkpoints.
    pub fn every_steps(mut self, n: u64) -> Self {
        self.every_steps = Some(n);
        self
    }

    /// Checkpoint at the end of the first scope once `interval` has passed
    /// since the last checkpoint.
    pub fn every(mut self, interval: Duration) -> Self {
        self.every = Some(interval);
        self
    }

    /// How many verified checkpoints retention keeps (default 3, at least
    /// 1). Keep two or more so that a damaged newest one has a fallback.
    pub fn keep_last(mut self, n: usize) -> Self {
        self.keep_last = n;
        self
    }

    /// zstd level for stored chunks: 0 turns compression off, 1..=22 trade
    /// speed for size, negative levels are faster still (default 1).
    /// Chunks that do not shrink are stored as they are.
    pub fn compression_level(mut self, level: i32) -> Self {
        self.compression_level = level;
        self
    }

    /// Size of the chunks state bytes are cut into (default 1 MiB, from
    /// 4 KiB to 256 MiB). Chunks are compressed and verified one by one.
    pub fn chunk_size(mut self, bytes: usize) -> Self {
        self.chunk_size = bytes;
        self
    }

    /// Threads used to compress and hash chunks (default: the number of
    /// cores).
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n;
        self
    }

    /// Validates the options and opens the checkpointer on its storage.
    pub fn build(self) -> Result<Checkpointer> {
        let storage = self.storage.clone().ok_or_else(|| Error::InvalidConfig {
            option: "storage",
            reason: "no storage given; call .storage(FsStorage::open(dir)?) or .storage(MemStorage::new())".to_owned(),
        })?;
        let options = self.validate()?;
        let (names, _) = catalog::scan(storage.as_ref())?;
        let next_seq = names.last().map_or(1, |n| n.seq + 1);
        Ok(Checkpointer {
            storage,
            scheme: self.scheme,
            every_steps: self.every_steps,
            every: self.every,
            keep_last: self.keep_last,
            options,
            next_seq,
            scopes_since_checkpoint: 0,
            last_checkpoint_at: Instant::now(),
            last_committed: None,
            poisoned: None,
        })
    }

    fn validate(&self) -> Result<WriteOptions> {
        let invalid = |option, reason: &str| {
            Err(Error::InvalidConfig {
                option,
                reason: reason.to_owned(),
            })
        };
        if self.every_steps == Some(0) {
            return invalid("every_steps", "must be at least 1");
        }
        if self.every == Some(Duration::ZERO) {
            return invalid("every", "must be longer than zero");
        }
        if self.keep_last == 0 {
            return invalid("keep_last", "must keep at least 1 checkpoint (2+ advised)");
        }
        let levels = zstd::compression_level_range();
        if self.compression_level != 0 && !levels.contains(&self.compression_level) {
            return Err(Error::InvalidConfig {
                option: "compression_level",
                reason: format!(
                    "{} is outside zstd's range {}..={} (0 turns compression off)",
                    self.compression_level,
                    levels.start(),
                    levels.end()
                ),
            });
        }
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&self.chunk_size) {
            return invalid("chunk_size", "must be between 4 KiB and 256 MiB");
        }
        if self.scheme != Scheme::Full {
            return Err(Error::InvalidConfig {
                option: "scheme",
                reason: format!(
                    "{:?} is not available in this build yet; use Scheme::Full",
                    self.scheme
                ),
            });
        }
        if self.threads == 0 {
            return invalid("threads", "must be at least 1");
        }
        let compression = match self.compression_level {
            0 => Compression::Off,
            level => Compression::Zstd(level),
        };
        Ok(WriteOptions {
            compression,
            chunk_size: self.chunk_size,
            threads: self.threads,
        })
    }
}

/// What one committed checkpoint did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Committed {
    /// The checkpoint, as [`Checkpointer::list`] would show it.
    pub info: CheckpointInfo,
    /// Bytes written to storage: packs plus manifest.
    pub bytes_written: u64,
    /// Time the caller was blocked: capture plus persist.
    pub stall: Duration,
    /// What retention removed after this commit.
    pub retention: RetentionReport,
}

/// A restored state and where it came from.
#[derive(Debug)]
#[non_exhaustive]
pub struct Restored<S> {
    /// The state as it was checkpointed.
    pub state: S,
    /// The step it was checkpointed at (as passed to
    /// [`Checkpointer::checkpoint`] or [`Checkpointer::scope`]).
    pub step: u64,
    /// The checkpoint it came from.
    pub info: CheckpointInfo,
    /// Newer checkpoints that were passed over because they did not
    /// verify, newest first.
    pub skipped: Vec<Skipped>,
}

/// Takes checkpoints of a state, keeps the store tidy and restores.
///
/// ```
/// use ckpt::{Checkpointer, MemStorage};
///
/// let store = MemStorage::new();
/// let mut ck = Checkpointer::builder().storage(store.clone()).every_steps(10).build()?;
///
/// // Resume from the newest checkpoint, or start fresh.
/// let (mut total, first): (u64, u64) = match ck.restore_latest::<u64>()? {
///     Some(r) => (r.state, r.step + 1),
///     None => (0, 0),
/// };
/// for step in first..100 {
///     ck.scope(step, &mut total, |total| *total += step)?;
/// }
/// ck.finish()?;
///
/// // A new process on the same store picks up where this one stopped.
/// let mut ck = Checkpointer::builder().storage(store).build()?;
/// let restored = ck.restore_latest::<u64>()?.expect("a checkpoint was taken");
/// assert_eq!((restored.step, restored.state), (99, (0..100).sum()));
/// # Ok::<(), ckpt::Error>(())
/// ```
#[derive(Debug)]
pub struct Checkpointer {
    storage: Arc<dyn Storage>,
    scheme: Scheme,
    every_steps: Option<u64>,
    every: Option<Duration>,
    keep_last: usize,
    options: WriteOptions,
    next_seq: u64,
    scopes_since_checkpoint: u64,
    last_checkpoint_at: Instant,
    last_committed: Option<Committed>,
    poisoned: Option<String>,
}

impl Checkpointer {
    /// Starts configuring a checkpointer.
    pub fn builder() -> CheckpointerBuilder {
        CheckpointerBuilder::default()
    }

    /// Runs one unit of work, then checkpoints `state` if one is due.
    ///
    /// `step` numbers the work `body` completes; a checkpoint taken here is
    /// recorded at that step, so after a restore, resume at
    /// [`Restored::step`]` + 1`. Returns what `body` returned.
    pub fn scope<S: State, R>(
        &mut self,
        step: u64,
        state: &mut S,
        body: impl FnOnce(&mut S) -> R,
    ) -> Result<R> {
        self.check_usable()?;
        let result = body(state);
        self.scopes_since_checkpoint += 1;
        if self.is_due() {
            self.checkpoint(step, state)?;
        }
        Ok(result)
    }

    /// True when the configured interval says the next scope should end
    /// with a checkpoint.
    pub fn is_due(&self) -> bool {
        let by_steps = self
            .every_steps
            .is_some_and(|n| self.scopes_since_checkpoint >= n);
        let by_time = self
            .every
            .is_some_and(|d| self.last_checkpoint_at.elapsed() >= d);
        let unconfigured = self.every_steps.is_none() && self.every.is_none();
        by_steps || by_time || (unconfigured && self.scopes_since_checkpoint > 0)
    }

    /// Checkpoints `state` at `step` now, whatever the interval says.
    ///
    /// When this returns `Ok`, the checkpoint is durable and a restore in
    /// a new process finds it. A storage failure poisons the checkpointer
    /// (see [`Error::Poisoned`]).
    pub fn checkpoint<S: State>(&mut self, step: u64, state: &mut S) -> Result<&Committed> {
        self.check_usable()?;
        let started = Instant::now();
        let mut capture = Capture::default();
        state.capture(&mut capture)?;
        let segments = capture.into_segments();
        let ident = CheckpointId {
            seq: self.next_seq,
            step,
            id: rand::random(),
            scheme: self.scheme.code(),
            created_unix_ms: unix_ms_now(),
        };
        let manifest = match write_full(self.storage.as_ref(), &segments, ident, self.options) {
            Ok(manifest) => manifest,
            Err(e) => return Err(self.poison(e)),
        };
        self.next_seq += 1;
        self.scopes_since_checkpoint = 0;
        self.last_checkpoint_at = Instant::now();
        let stall = started.elapsed();
        let retention = catalog::apply_retention(self.storage.as_ref(), self.keep_last)?;
        let manifest_len = manifest.encode().len() as u64;
        Ok(self.last_committed.insert(Committed {
            info: CheckpointInfo::of(&manifest),
            bytes_written: manifest.stored_bytes + manifest_len,
            stall,
            retention,
        }))
    }

    /// Restores the newest checkpoint that verifies, or `None` if the store
    /// holds no checkpoint at all.
    ///
    /// Newer checkpoints that fail verification are passed over and listed
    /// in [`Restored::skipped`]. If checkpoints exist but none verifies,
    /// this is [`Error::NoUsableCheckpoint`] rather than `None`, so a
    /// damaged store is never mistaken for a fresh start.
    pub fn restore_latest<S: State>(&mut self) -> Result<Option<Restored<S>>> {
        let storage = self.storage.as_ref();
        let (names, mut skipped) = catalog::scan(storage)?;
        for name in names.iter().rev() {
            match load_verified(storage, name) {
                Ok((manifest, segments)) => {
                    let mut restore = Restore::new(manifest.step, segments);
                    let state = S::restore(&mut restore)?;
                    self.scopes_since_checkpoint = 0;
                    self.last_checkpoint_at = Instant::now();
                    return Ok(Some(Restored {
                        state,
                        step: manifest.step,
                        info: CheckpointInfo::of(&manifest),
                        skipped,
                    }));
                }
                Err(e) if e.is_damage() => skipped.push(catalog::skipped(name, &e)),
                Err(e) => return Err(e),
            }
        }
        if skipped.is_empty() {
            Ok(None)
        } else {
            Err(Error::NoUsableCheckpoint { skipped })
        }
    }

    /// Lists the checkpoints in the store (manifests only; packs are
    /// verified on restore).
    pub fn list(&self) -> Result<Listing> {
        catalog::list(self.storage.as_ref())
    }

    /// The last checkpoint this checkpointer committed.
    pub fn last_committed(&self) -> Option<&Committed> {
        self.last_committed.as_ref()
    }

    /// Ends the run: waits for outstanding work and reports any error it
    /// hit. Every checkpoint reported committed before is durable.
    pub fn finish(self) -> Result<()> {
        self.check_usable()
    }

    fn check_usable(&self) -> Result<()> {
        match &self.poisoned {
            Some(cause) => Err(Error::Poisoned {
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    fn poison(&mut self, error: Error) -> Error {
        self.poisoned = Some(error.to_string());
        error
    }
}

fn load_verified(
    storage: &dyn Storage,
    name: &ManifestName,
) -> Result<(crate::format::Manifest, catalog::LoadedSegments)> {
    let manifest = catalog::load_manifest(storage, name)?;
    let segments = catalog::load_segments(storage, &manifest)?;
    Ok((manifest, segments))
}

fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
