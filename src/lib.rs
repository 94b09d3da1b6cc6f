//! # ckpt — crash-safe checkpoints for long-running computations
//!
//! Wrap a compute loop in [`Checkpointer::scope`], and after a crash
//! [`Checkpointer::restore_latest`] gives back the newest checkpoint that
//! verifies. Checkpoints are durable when reported committed, every byte on
//! disk is checksummed, and a damaged checkpoint is skipped (and reported),
//! never restored.
//!
//! ## Quick start
//!
//! ```
//! use ckpt::{Checkpointer, FsStorage};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Sim { step: u64, field: Vec<f64> }
//!
//! # let dir = tempfile::tempdir()?;
//! # let dir = dir.path();
//! let mut ck = Checkpointer::builder()
//!     .storage(FsStorage::open(dir)?)
//!     .every_steps(100)
//!     .keep_last(3)
//!     .build()?;
//!
//! let mut sim = match ck.restore_latest::<Sim>()? {
//!     Some(restored) => restored.state,
//!     None => Sim { step: 0, field: vec![0.0; 1024] },
//! };
//! while sim.step < 1_000 {
//!     ck.scope(sim.step, &mut sim, |sim| {
//!         sim.field.iter_mut().for_each(|x| *x += 1.0);
//!         sim.step += 1;
//!     })?;
//! }
//! ck.finish()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Entry points
//!
//! * [`Checkpointer`], built with [`Checkpointer::builder`]
//!   ([`CheckpointerBuilder`]): checkpoints a computation and restores it
//!   (the quick start above).
//! * [`Reader`]: read-only access to a store: list, verify, restore,
//!   without taking the writer's lock.
//! * [`Group`]: one rank of a computation split across processes, passed
//!   to the builder; every rank restores the same globally committed step.
//! * Storages, all implementing [`Storage`]: [`FsStorage`] (a directory),
//!   [`MemStorage`] (memory, for tests), [`FailoverStorage`] (an active and
//!   a standby backend), [`PrefixStorage`] (several checkpointers in one
//!   store), and with the `object-store` feature `ObjectStorage` (S3 and
//!   S3-compatible stores).
//! * [`State`]: what is captured; every serde type already is one, and a
//!   struct implements it to store its parts as separate segments.
//!   [`PagedVec`] holds large arrays of plain data ([`Element`]s) and is
//!   written incrementally, page by page.
//! * [`Policy`](model::Policy): how much the cost model may change the
//!   scheme and interval on its own; [`model`] has the events a
//!   checkpointer reports and the decisions it takes.
//!
//! Each of these has an example in its own documentation. Two features
//! widen the API: `object-store` (`ObjectStorage`) and `test-suite`
//! (`storage::suite`, the storage conformance suite, and fault injection:
//! `storage::FaultyStorage`).
//!
//! ## Tracing
//!
//! With the `tracing` feature the library reports what it does through the
//! [`tracing`](https://docs.rs/tracing) crate, to whatever subscriber the
//! application installs (without the feature there is no `tracing`
//! dependency and nothing is spent on it):
//!
//! * `checkpoint` (info span): `step`, `seq`, `scheme`; once committed
//!   inline, `bytes_written`, `dirty_bytes`, `stall`, `persist`. Every
//!   commit, inline or in the background, is also a `checkpoint
//!   committed` info event with those fields.
//! * `capture` (debug span, inside `checkpoint`): `segments`, `pages`
//!   (pages of paged segments, and how many of them are `dirty_pages`).
//! * `persist` (debug span, on the thread that writes: the caller's, or
//!   `ckpt-persist` for copy-on-write): `step`, `scheme`, `packs`,
//!   `bytes`, `took`.
//! * `drain` (info span, on a tier's drain thread): `tier`, `step`; an
//!   info event with `packs_copied`, `bytes_copied`, `took` when done, a
//!   warn event with the `error` when an attempt fails.
//! * `restore` (info span, for every checkpoint read, through a
//!   [`Checkpointer`] or a [`Reader`]): `step`, `seq`, `chain_len`, then
//!   `bytes_read`, `took`; a warn event for each damaged checkpoint passed
//!   over, and an info event naming the `tier` a restore across tiers
//!   found its checkpoint on.
//! * [`FailoverStorage`]: a warn event for a failover (`from`, `to`,
//!   `relocation`, `cause`), a lost standby or a slow store, an error
//!   event when both backends are down, an info event for a readmitted
//!   standby, a debug event for each delayed operation.
//! * The policy's decisions (info events `decision`: `kind`, `scheme`,
//!   `interval`, `saving`, `reason`), and storage errors the checkpointer
//!   hits (warn).
//!
//! Nothing logged holds state bytes, object contents or a storage's
//! configuration (where credentials are).
//!
//! Letting the policy choose the scheme and interval:
//!
//! ```
//! use ckpt::model::Policy;
//! use ckpt::{Checkpointer, MemStorage, Scheme};
//!
//! let ck = Checkpointer::builder()
//!     .storage(MemStorage::new())
//!     .scheme(Scheme::Incremental)
//!     .every_steps(100)
//!     .policy(Policy::adaptive().allow(&[Scheme::Full, Scheme::Incremental]))
//!     .build()?;
//! # drop(ck);
//! # Ok::<(), ckpt::Error>(())
//! ```
//!
//! ## Layers
//!
//! State ([`State`]) is captured into named segments, a scheme ([`Scheme`])
//! turns them into packs and a manifest, and a [`Storage`] backend
//! ([`MemStorage`], [`FsStorage`], and with the `object-store` feature
//! `ObjectStorage` for S3 and S3-compatible stores) stores those objects
//! atomically. Each module imports only from the ones below it
//! (ARCHITECTURE.md in the repository has the picture and the rule):
//!
//! ```text
//! reader, checkpointer    entry points: write, restore, read-only access
//! model                   events in, decisions out (plain data)
//! recover, group, catalog choosing, coordinating and keeping checkpoints
//! scheme, state           capture and write; lazy restore of segments
//! fetch, format           verified reads; the bytes (no I/O)
//! storage, error          backends; the one error type
//! ```
//!
//! ## Many processes
//!
//! A computation split across processes checkpoints as a [`Group`]: each
//! rank checkpoints its own shard, a step counts once every shard of it is
//! durable (committed atomically with [`Storage::put_if_absent`]), and
//! every rank restores its shard of the newest step the whole group
//! committed.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::indexing_slicing))]

mod catalog;
mod checkpointer;
mod error;
mod fetch;
mod format;
mod group;
pub mod model;
mod reader;
mod recover;
mod scheme;
mod state;
pub mod storage;
mod tier;
mod trace;

pub use catalog::{CheckpointInfo, Listing, RetentionReport};
pub use checkpointer::{Checkpointer, CheckpointerBuilder, Committed, Restored};
pub use error::Skipped;
pub use error::{Error, ErrorKind, ErrorReport, Result};
pub use format::FORMAT_VERSION;
pub use group::{GlobalCommitInfo, Group, GroupStatus};
pub use reader::{
    CheckpointDetails, Collected, DecisionKind, GroupCommit, JOURNAL_MAX_RECORDS, JournalDecision,
    JournalEvent, JournalRecord, Maintenance, PackUse, Reader, SegmentDetails, SegmentLayout,
};
pub use recover::RestoredTier;
pub use scheme::Scheme;
pub use state::{
    Capture, DEFAULT_PAGE_BYTES, DEFAULT_SEGMENT, Element, PagedVec, Restore, State, TypeChange,
};
pub use storage::{FailoverStorage, FsStorage, MemStorage, PrefixStorage, Storage};
#[cfg(feature = "object-store")]
pub use storage::{ObjectStorage, ObjectStorageBuilder};
pub use tier::{DrainEvent, TierStatus};
