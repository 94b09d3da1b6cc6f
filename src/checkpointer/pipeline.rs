//! One checkpoint from capture to commit: the writer stores it (packs,
//! then manifest), then retention tidies the store. Runs on the caller's
//! thread or on the background thread, in the order checkpoints were
//! captured.

use crate::catalog::{CheckpointInfo, Retention, RetentionReport};
use crate::error::Result;
use crate::format::Manifest;
use crate::scheme::{Job, Scheme, Writer, Written};
use crate::storage::Storage;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A persisted checkpoint and what retention did after it.
#[derive(Debug)]
pub(crate) struct Persisted {
    pub written: Written,
    pub info: CheckpointInfo,
    pub retention: RetentionReport,
    /// How long retention took.
    pub retention_took: Duration,
}

/// The writer and the retention that follows each of its commits.
#[derive(Debug)]
pub(crate) struct Pipeline {
    writer: Writer,
    storage: Arc<dyn Storage>,
    retention: Arc<dyn Retention>,
    /// Manifests known to fail verification; retention does not count them.
    damaged: BTreeSet<String>,
}

impl Pipeline {
    pub(crate) fn new(
        writer: Writer,
        storage: Arc<dyn Storage>,
        retention: Arc<dyn Retention>,
    ) -> Self {
        Pipeline {
            writer,
            storage,
            retention,
            damaged: BTreeSet::new(),
        }
    }

    /// Writes one checkpoint, then applies retention. A retention error
    /// after the manifest is durable is still an error: the store's state
    /// is then unknown, so the checkpointer stops (see `Error::Poisoned`).
    pub(crate) fn persist(&mut self, job: Job) -> Result<Persisted> {
        let written = self.writer.persist(job)?;
        let started = Instant::now();
        let retention =
            self.retention
                .apply(self.storage.as_ref(), &written.manifest, &self.damaged)?;
        let retention_took = started.elapsed();
        Ok(Persisted {
            info: CheckpointInfo::of(&written.manifest),
            written,
            retention,
            retention_took,
        })
    }

    /// Makes `manifest` (durable and verified by a restore) the base of
    /// the next increment; `damaged` are the newer manifests that restore
    /// found unusable, which retention must not count as kept.
    pub(crate) fn resume_from(&mut self, manifest: Manifest, damaged: BTreeSet<String>) {
        self.writer.resume_from(manifest);
        self.damaged = damaged;
    }

    /// See [`Writer::set_plan`].
    pub(crate) fn set_plan(&mut self, scheme: Scheme, max_chain: u32) {
        self.writer.set_plan(scheme, max_chain);
    }
}
