//! The [`Checkpointer`]: its builder, scopes, checkpoints and restore.

use crate::catalog::{self, CheckpointInfo, Listing, Skipped};
use crate::error::{Error, Result};
use crate::format::Manifest;
use crate::format::layout::ManifestName;
use crate::format::pack::Compression;
use crate::scheme::{
    Background, CheckpointId, Committed, Job, Scheme, WriteOptions, Writer, WriterConfig,
};
use crate::state::{Capture, Restore, State};
use crate::storage::Storage;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const DEFAULT_KEEP_LAST: usize = 3;
const DEFAULT_COMPRESSION_LEVEL: i32 = 1;
const DEFAULT_CHUNK_SIZE: usize = 1 << 20;
const MIN_CHUNK_SIZE: usize = 4 << 10;
const MAX_CHUNK_SIZE: usize = 256 << 20;
const DEFAULT_MAX_CHAIN: u32 = 10;
const DEFAULT_MAX_IN_FLIGHT: usize = 1;

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
    max_chain: u32,
    max_in_flight: usize,
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
            max_chain: DEFAULT_MAX_CHAIN,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
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

    /// For the incremental schemes: the longest chain of checkpoints a
    /// restore may have to read (default 10). When the newest checkpoint's
    /// chain reaches it, the next one is a full base — this is how a
    /// periodic full checkpoint is added beside an incremental one.
    pub fn max_chain(mut self, n: u32) -> Self {
        self.max_chain = n;
        self
    }

    /// For [`Scheme::CopyOnWrite`]: how many captured snapshots may wait
    /// while one is being written (default 1). A checkpoint beyond that
    /// blocks until the oldest is durable, bounding memory.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n;
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
        let write = self.validate()?;
        let config = WriterConfig {
            scheme: self.scheme,
            write,
            cdc_average: (self.chunk_size / 8).clamp(1 << 10, 1 << 20),
            max_chain: self.max_chain,
            keep_last: self.keep_last,
        };
        let (names, _) = catalog::scan(storage.as_ref())?;
        let next_seq = names.last().map_or(1, |n| n.seq + 1);
        let writer = Writer::new(storage.clone(), config);
        let persister = match self.scheme {
            Scheme::CopyOnWrite => {
                Persister::Background(Background::spawn(writer, self.max_in_flight)?)
            }
            _ => Persister::Inline(Box::new(writer)),
        };
        Ok(Checkpointer {
            storage,
            scheme: self.scheme,
            every_steps: self.every_steps,
            every: self.every,
            persister,
            next_seq,
            last_captured: None,
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
        if self.max_chain == 0 {
            return invalid(
                "max_chain",
                "must be at least 1 (1 makes every checkpoint full)",
            );
        }
        if self.max_in_flight == 0 {
            return invalid("max_in_flight", "must be at least 1");
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
    persister: Persister,
    next_seq: u64,
    /// The checkpoint the next capture diffs against.
    last_captured: Option<u128>,
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
    /// With the synchronous schemes the checkpoint is durable when this
    /// returns, and its [`Committed`] report is returned. With
    /// [`Scheme::CopyOnWrite`] the state has been captured and is being
    /// persisted in the background: this returns `None`, and
    /// [`last_committed`](Self::last_committed), [`flush`](Self::flush) or
    /// [`finish`](Self::finish) report it once durable. A storage failure
    /// poisons the checkpointer (see [`Error::Poisoned`]); a failure in the
    /// background is returned by the next call.
    pub fn checkpoint<S: State>(&mut self, step: u64, state: &mut S) -> Result<Option<&Committed>> {
        self.check_usable()?;
        self.collect_finished()?;
        let started = Instant::now();
        let ident = CheckpointId {
            seq: self.next_seq,
            step,
            id: rand::random(),
            scheme: self.scheme,
            created_unix_ms: unix_ms_now(),
        };
        let mut capture = Capture::new(ident.id, self.last_captured);
        state.capture(&mut capture)?;
        let background = matches!(self.persister, Persister::Background(_));
        let job = Job {
            ident,
            segments: capture.into_segments(),
            capture_time: started.elapsed(),
            background,
        };
        self.next_seq += 1;
        self.last_captured = Some(ident.id);
        self.scopes_since_checkpoint = 0;
        self.last_checkpoint_at = Instant::now();
        let outcome = match &mut self.persister {
            Persister::Inline(writer) => writer.persist(job).map(Some),
            Persister::Background(background) => background.submit(job).map(|()| None),
        };
        match outcome {
            Ok(Some(committed)) => Ok(Some(self.last_committed.insert(committed))),
            Ok(None) => Ok(None),
            Err(e) => Err(self.poison(e)),
        }
    }

    /// Waits until every captured checkpoint is durable and returns the
    /// newest committed one.
    pub fn flush(&mut self) -> Result<Option<&Committed>> {
        self.check_usable()?;
        if let Persister::Background(background) = &mut self.persister {
            let results = background.wait();
            self.absorb(results)?;
        }
        Ok(self.last_committed.as_ref())
    }

    fn collect_finished(&mut self) -> Result<()> {
        if let Persister::Background(background) = &mut self.persister {
            let results = background.finished();
            self.absorb(results)?;
        }
        Ok(())
    }

    fn absorb(&mut self, results: Vec<Result<Committed>>) -> Result<()> {
        for result in results {
            match result {
                Ok(committed) => self.last_committed = Some(committed),
                Err(e) => return Err(self.poison(e)),
            }
        }
        Ok(())
    }

    /// Restores the newest checkpoint that verifies, or `None` if the store
    /// holds no checkpoint at all.
    ///
    /// Newer checkpoints that fail verification are passed over and listed
    /// in [`Restored::skipped`]. If checkpoints exist but none verifies,
    /// this is [`Error::NoUsableCheckpoint`] rather than `None`, so a
    /// damaged store is never mistaken for a fresh start.
    pub fn restore_latest<S: State>(&mut self) -> Result<Option<Restored<S>>> {
        self.flush()?;
        // Foreign names under manifests/ are not checkpoints: list() shows
        // them, restore does not count them as skipped.
        let (names, _foreign) = catalog::scan(self.storage.as_ref())?;
        let mut skipped = Vec::new();
        for name in names.iter().rev() {
            match load_verified(self.storage.as_ref(), name) {
                Ok((manifest, segments)) => {
                    let mut restore = Restore::new(manifest.step, manifest.id, segments);
                    let state = S::restore(&mut restore)?;
                    let info = CheckpointInfo::of(&manifest);
                    let damaged = skipped.iter().map(|s: &Skipped| s.key.clone()).collect();
                    self.resume_from(manifest, damaged)?;
                    return Ok(Some(Restored {
                        state,
                        step: info.step,
                        info,
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

    /// Ends the run: waits until every captured checkpoint is durable and
    /// reports any error hit on the way. Dropping a checkpointer also
    /// waits for (but cannot report) background work.
    pub fn finish(mut self) -> Result<()> {
        self.flush().map(|_| ())
    }

    /// Makes the restored `manifest` the base of the next increment, and
    /// tells retention which newer checkpoints failed verification so they
    /// do not count as kept.
    fn resume_from(&mut self, manifest: Manifest, damaged: BTreeSet<String>) -> Result<()> {
        self.scopes_since_checkpoint = 0;
        self.last_checkpoint_at = Instant::now();
        self.last_captured = Some(manifest.id);
        match &mut self.persister {
            Persister::Inline(writer) => writer.resume_from(manifest, damaged),
            Persister::Background(background) => background.resume_from(manifest, damaged)?,
        }
        Ok(())
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

/// Where captured checkpoints go to be written.
#[derive(Debug)]
enum Persister {
    /// Written by the caller's thread before `checkpoint` returns.
    Inline(Box<Writer>),
    /// Written by a background thread (copy-on-write).
    Background(Background),
}

fn load_verified(
    storage: &dyn Storage,
    name: &ManifestName,
) -> Result<(Manifest, catalog::LoadedSegments)> {
    let manifest = catalog::load_manifest(storage, name)?;
    let segments = catalog::load_segments(storage, &manifest)?;
    Ok((manifest, segments))
}

fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
