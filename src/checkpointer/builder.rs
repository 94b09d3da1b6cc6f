//! [`CheckpointerBuilder`]: plain options, all checked in `build()`.

use super::adaptive::{Adaptive, Listener};
use super::persister::Persister;
use super::pipeline::Pipeline;
use super::tiers::{TierOptions, Tiers};
use super::{Checkpointer, Exploration, Interval};
use crate::catalog::{self, KeepLast, Pins, Retention};
use crate::error::{Error, Result};
use crate::format::group::shard_prefix;
use crate::format::layout::MAX_SEQ;
use crate::format::pack::Compression;
use crate::group::{Coordinator, Group};
use crate::model::{Event, ModelConfig, Plan, Policy};
use crate::scheme::{Scheme, WriteOptions, Writer, WriterConfig};
use crate::storage::{
    DEFAULT_LEASE_TTL, FailoverEvent, MIN_LEASE_TTL, PrefixStorage, Storage, hold_writer_lease,
};
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

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
    policy: Policy,
    model: ModelConfig,
    listeners: Vec<Listener>,
    failover_events: Option<Receiver<FailoverEvent>>,
    group: Option<Group>,
    /// `None`: no writer lease (the caller guarantees one writer).
    lease_ttl: Option<Duration>,
    memory_budget: Option<u64>,
    /// Named tiers, fastest first (see [`tier`](Self::tier)).
    tiers: TierOptions,
}

impl std::fmt::Debug for CheckpointerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointerBuilder")
            .field("storage", &self.storage)
            .field("scheme", &self.scheme)
            .field("every_steps", &self.every_steps)
            .field("every", &self.every)
            .field("keep_last", &self.keep_last)
            .field("compression_level", &self.compression_level)
            .field("chunk_size", &self.chunk_size)
            .field("policy", &self.policy)
            .field("group", &self.group)
            .field("lease_ttl", &self.lease_ttl)
            .field("tiers", &self.tiers)
            .finish_non_exhaustive()
    }
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
            policy: Policy::fixed(),
            model: ModelConfig::default(),
            listeners: Vec::new(),
            failover_events: None,
            group: None,
            lease_ttl: Some(DEFAULT_LEASE_TTL),
            memory_budget: None,
            tiers: TierOptions::default(),
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

    /// Adds a storage tier named `name`, after those added before: the
    /// first tier is the fast one every checkpoint commits on (what
    /// [`storage`](Self::storage) is without tiers: give one or the
    /// other), and every [`drain_every`](Self::drain_every)-th committed
    /// checkpoint is then *drained* to each lower tier on a background
    /// thread — the packs it needs that the tier lacks, each durable, and
    /// its manifest last, so that a manifest appears on a tier only when
    /// everything it references is durable there.
    ///
    /// A lower tier that fails only delays drains (see
    /// [`Checkpointer::tiers`] and [`Checkpointer::subscribe_drains`]: it
    /// is retried with backoff), never a checkpoint on the first tier.
    /// [`Checkpointer::restore_latest`] takes the newest checkpoint that
    /// verifies on any tier, the first tier on a tie, and reports a lost
    /// first tier in [`Restored::tier`](crate::Restored::tier). With one
    /// tier, nothing differs from [`storage`](Self::storage).
    ///
    /// The writer lease (see [`lease_ttl`](Self::lease_ttl)) is held on
    /// the first tier only: a lower tier must be this checkpointer's
    /// alone (its own directory or prefix of a shared store).
    pub fn tier(mut self, name: &str, storage: impl Storage + 'static) -> Self {
        self.tiers.tiers.push((name.to_owned(), Arc::new(storage)));
        self
    }

    /// How many verified checkpoints retention keeps on the tier `name`
    /// (default: [`keep_last`](Self::keep_last)). On the first tier,
    /// checkpoints still being drained are kept as well, whatever their
    /// age; on a lower tier, retention runs after each drain.
    pub fn tier_keep_last(mut self, name: &str, n: usize) -> Self {
        self.tiers.keep_last.push((name.to_owned(), n));
        self
    }

    /// Drains every `k`-th committed checkpoint to the lower tiers
    /// (default 1: every one). The count goes on across restarts: the
    /// commits on the first tier newer than what every lower tier holds
    /// count as undrained, so a job restarted after each few checkpoints
    /// still drains every `k`-th; while a lower tier holds nothing, the
    /// first commit drains. A policy may change `k` later with
    /// [`Checkpointer::set_drain_every`].
    pub fn drain_every(mut self, k: u32) -> Self {
        self.tiers.drain_every = k;
        self
    }

    /// How long a failed drain waits before its first retry (default
    /// 1 s; doubling after each failure in a row, up to a minute).
    pub fn drain_retry(mut self, wait: Duration) -> Self {
        self.tiers.drain_retry = wait;
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
    /// since the last checkpoint let the computation go on (so a slow
    /// checkpoint does not eat into the next interval).
    pub fn every(mut self, interval: Duration) -> Self {
        self.every = Some(interval);
        self
    }

    /// How long a silent writer keeps its store (default
    /// [`DEFAULT_LEASE_TTL`], 10 s; at least [`MIN_LEASE_TTL`]).
    ///
    /// A checkpointer keeps its store to itself: on an exclusive
    /// [`FsStorage`](crate::FsStorage) by the directory's lock file, on
    /// every other store by a *writer lease* it takes in `build()` (objects
    /// under `lease/`) and renews every quarter of this TTL. A second
    /// checkpointer on the store fails to build with
    /// [`Error::WriterActive`] while the first lives; one that was paused
    /// or cut off for longer than the TTL and then replaced writes nothing
    /// more ([`Error::Fenced`]). A writer that crashed on this machine is
    /// replaced at once; one that died on another machine (or in another
    /// container) frees the store one TTL after its last renewal, so a
    /// shorter TTL restarts faster there, and a longer one tolerates
    /// longer storage outages before a second writer may take over.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = Some(ttl);
        self
    }

    /// Most memory, in bytes, the checkpointing plan may hold beyond the
    /// state (default: unlimited): see [`Policy::memory_budget`], which
    /// this sets on whatever policy is configured.
    pub fn memory_budget(mut self, bytes: u64) -> Self {
        self.memory_budget = Some(bytes);
        self
    }

    /// Writes without a writer lease (see [`lease_ttl`](Self::lease_ttl)).
    ///
    /// Only for a store that something else keeps to one writer (your own
    /// lock, a scheduler that never runs two copies of a job), or a custom
    /// backend without [`Storage::put_if_absent`]. Two writers on one store
    /// without a lease delete each other's checkpoints.
    pub fn without_writer_lease(mut self) -> Self {
        self.lease_ttl = None;
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
    /// while one is being written (default 1), bounding memory. Beyond
    /// that, [`Checkpointer::scope`] defers a due checkpoint to the first
    /// scope with room, and [`Checkpointer::checkpoint`] blocks until the
    /// oldest is durable.
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

    /// How the cost model's advice is used (default [`Policy::fixed`]: the
    /// model observes and learns, nothing changes). [`Policy::advise`]
    /// reports recommendations through
    /// [`Checkpointer::last_decision`]; [`Policy::adaptive`] applies them —
    /// switching scheme, adding a periodic full base, changing the
    /// interval — with hysteresis.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// The cost model's settings (priors, confidence level, forgetting).
    pub fn model(mut self, config: ModelConfig) -> Self {
        self.model = config;
        self
    }

    /// Shorthand for the model's expected mean time between failures
    /// (default 24 h); observed crashes update the estimate.
    pub fn mtbf(mut self, mtbf: Duration) -> Self {
        self.model.mtbf = mtbf;
        self
    }

    /// Calls `listener` with every [`Event`]: checkpoints, restores,
    /// detected crashes, storage errors. It runs on the thread that calls
    /// the checkpointer, so keep it short.
    pub fn on_event(mut self, listener: impl FnMut(&Event) + Send + 'static) -> Self {
        self.listeners.push(Box::new(listener));
        self
    }

    /// Feeds a [`FailoverStorage`](crate::storage::FailoverStorage)'s
    /// events to the cost model (failovers, the pauses callers saw, a lost
    /// standby), so it learns what storage failures cost:
    /// `.failover_events(pair.subscribe())`.
    pub fn failover_events(mut self, events: Receiver<FailoverEvent>) -> Self {
        self.failover_events = Some(events);
        self
    }

    /// Makes this checkpointer one rank of a [`Group`] of processes that
    /// checkpoint together: a step counts only once every rank's shard of
    /// it is durable, and [`Checkpointer::restore_latest`] gives every
    /// rank its shard of the newest step the whole group committed.
    ///
    /// The [`storage`](Self::storage) is then the store every rank shares
    /// (it must support [`Storage::put_if_absent`]); this rank keeps its
    /// own checkpoints under `shards/<rank>/` of it and the group's
    /// objects live under `group/`. [`keep_last`](Self::keep_last) counts
    /// global commits. Every rank must checkpoint the same steps, so a
    /// group takes [`every_steps`](Self::every_steps) (or explicit
    /// [`Checkpointer::checkpoint`] calls), not [`every`](Self::every), and
    /// a fixed or advising [`Policy`], not an adaptive one. See [`Group`]
    /// for the protocol and an example.
    pub fn group(mut self, group: Group) -> Self {
        self.group = Some(group);
        self
    }

    /// Validates the options and opens the checkpointer on its storage.
    pub fn build(mut self) -> Result<Checkpointer> {
        self.tiers
            .validate(self.storage.is_some(), self.group.is_some())?;
        if let Some((_, first)) = self.tiers.tiers.first() {
            self.storage = Some(Arc::clone(first));
        }
        let storage = self.storage.clone().ok_or_else(|| Error::InvalidConfig {
            option: "storage",
            reason: "no storage given; call .storage(FsStorage::open(dir)?) or .storage(MemStorage::new())".to_owned(),
        })?;
        if let Some(bytes) = self.memory_budget {
            self.policy = self.policy.clone().memory_budget(bytes);
        }
        let write = self.validate()?;
        let (storage, mut coordinator) = match self.group.clone() {
            Some(group) => {
                let shard = PrefixStorage::new(storage.clone(), &shard_prefix(group.rank()))?;
                let coordinator = Coordinator::open(storage, group)?;
                (Arc::new(shard) as Arc<dyn Storage>, Some(coordinator))
            }
            None => (storage, None),
        };
        let storage = match self.lease_ttl {
            Some(ttl) => hold_writer_lease(storage, ttl).map_err(lease_unsupported)?,
            None => storage,
        };
        let (names, _) = catalog::scan(storage.as_ref())?;
        // Parsed names stay below MAX_SEQ, so this cannot overflow. A
        // lower tier may hold newer checkpoints than the first (which may
        // be lost): numbering goes on after them, so that its retention
        // never mistakes the new ones for older.
        let lower_seq: Vec<Option<u64>> = self
            .tiers
            .tiers
            .iter()
            .skip(1)
            .map(|(_, tier)| {
                catalog::scan(tier.as_ref())
                    .ok()
                    .and_then(|(names, _)| names.last().map(|n| n.seq))
            })
            .collect();
        let newest = names
            .last()
            .map(|n| n.seq)
            .into_iter()
            .chain(lower_seq.iter().flatten().copied())
            .max();
        // Commits on the first tier since the stalest lower tier's newest:
        // the drain count resumes from them after a restart, so that a job
        // restarted often still drains every k-th commit, not its first.
        // They are counted by sequence number, not by the manifests the
        // first tier still holds: its retention may keep fewer than k,
        // and a count capped by it never reached k when failures came
        // every few commits (k = 8 under keep_last(2) drained 2 times in
        // 49 commits). A lower tier that holds nothing yet drains the
        // first commit.
        let undrained = match lower_seq.iter().min() {
            Some(Some(drained)) => Some(names.last().map_or(0, |newest| {
                usize::try_from(newest.seq.saturating_sub(*drained)).unwrap_or(usize::MAX)
            })),
            _ => None,
        };
        let next_seq = newest.map_or(1, |seq| seq + 1).min(MAX_SEQ);
        let first_keep_last = self.tiers.keep_last_of(0, self.keep_last);
        let pins = Pins::default();
        let mut tiers = self
            .tiers
            .start_drains(&storage, &pins, self.keep_last, undrained)?;
        let lower = tiers.as_ref().map_or_else(Vec::new, Tiers::lower_storages);
        let mut adaptive = Adaptive::open(
            &storage,
            lower,
            self.model,
            self.policy,
            self.listeners,
            self.tiers.drain_every,
        )?;
        adaptive.set_persist_queue(
            u32::try_from(self.max_in_flight)
                .unwrap_or(u32::MAX)
                .saturating_add(1),
        );
        // An automatic policy resumes what it applied before a restart;
        // the configured scheme and interval are where a new store starts.
        let (plan, interval) = match adaptive.advisor().in_force() {
            Some((plan, every)) => (
                plan,
                Interval {
                    every_steps: None,
                    every: Some(every),
                },
            ),
            None => (
                Plan::only(self.scheme),
                Interval {
                    every_steps: self.every_steps,
                    every: self.every,
                },
            ),
        };
        // With lower tiers the plan carries the drain ratio (the one the
        // policy applied, or the configured one); without, none.
        let plan = match &mut tiers {
            Some(tiers) => {
                let k = plan.drain_every().unwrap_or(tiers.drain_every());
                tiers.set_drain_every(k);
                plan.draining_every(k)
            }
            None => plan.without_drains(),
        };
        // A trial cut short by the crash goes on where it stopped, and a
        // policy with nothing learnt begins with one; the plan in force
        // resumes when it ends.
        let resumed = adaptive.advisor().trial();
        let begun = resumed.is_none().then(|| adaptive.begin(plan)).flatten();
        let exploring = resumed.or(begun).map(|_| Exploration {
            resume: plan,
            resume_interval: interval,
        });
        let (plan, interval) = match (resumed, begun) {
            (Some((scheme, every)), _) => (
                Plan::only(scheme),
                Interval {
                    every_steps: None,
                    every: Some(every),
                },
            ),
            // The first trial checkpoints after the first step; its first
            // commit sets the interval.
            (None, Some((scheme, _))) => (Plan::only(scheme), interval),
            (None, None) => (plan, interval),
        };
        let config = WriterConfig {
            scheme: plan.base(),
            write,
            cdc_average: (self.chunk_size / 8).clamp(1 << 10, 1 << 20),
            max_chain: plan.full_every().unwrap_or(self.max_chain),
        };
        let retention: Arc<dyn Retention> = match &mut coordinator {
            Some(coordinator) => coordinator.retention(self.keep_last, next_seq),
            None => Arc::new(KeepLast {
                keep_last: first_keep_last,
                pins,
            }),
        };
        let writer = Writer::new(storage.clone(), config);
        let pipeline = Pipeline::new(writer, storage.clone(), retention);
        let persister = Persister::new(pipeline, plan.base(), self.max_in_flight)?;
        if let Some(coordinator) = &coordinator {
            coordinator.register()?;
        }
        adaptive.built();
        Ok(Checkpointer {
            storage,
            plan,
            default_max_chain: self.max_chain,
            max_in_flight: self.max_in_flight,
            interval,
            persister,
            adaptive,
            next_seq,
            last_captured: None,
            work: Default::default(),
            last_checkpoint_at: Instant::now(),
            queued_work: Default::default(),
            exploring,
            due_now: begun.is_some(),
            failover_events: self.failover_events,
            last_committed: None,
            poisoned: None,
            group: coordinator,
            tiers,
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
        if self.lease_ttl.is_some_and(|ttl| ttl < MIN_LEASE_TTL) {
            return invalid("lease_ttl", "must be at least 200 ms (MIN_LEASE_TTL)");
        }
        if self.threads == 0 {
            return invalid("threads", "must be at least 1");
        }
        if self.model.mtbf.is_zero() {
            return invalid("mtbf", "must be longer than zero");
        }
        self.policy.validate()?;
        if let Some(group) = &self.group {
            group.validate()?;
            // A step commits only once every rank checkpointed it, so ranks
            // must choose the same steps; time and a learning policy would
            // choose differently on every rank.
            if self.every.is_some() {
                return invalid(
                    "every",
                    "in a group every rank must checkpoint the same steps: use every_steps(n), or call checkpoint at the same steps on every rank",
                );
            }
            if self.policy.mode() == crate::model::PolicyMode::Auto {
                return invalid(
                    "policy",
                    "in a group every rank must checkpoint the same steps, and an adaptive policy retunes each rank's interval on its own: use Policy::fixed() or Policy::advise()",
                );
            }
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

/// A backend without conditional puts cannot arbitrate a writer lease:
/// say so, and what to do.
fn lease_unsupported(error: Error) -> Error {
    match error {
        Error::Unsupported { backend, .. } => Error::Unsupported {
            backend,
            operation: "conditional put (put_if_absent), which the writer lease needs",
            hint: "implement put_if_absent, or call .without_writer_lease() if something else keeps the store to one writer",
        },
        other => other,
    }
}
