//! Where captured checkpoints go to be written: the caller's thread, or a
//! background thread for copy-on-write. Switching between the two hands the
//! same pipeline (and so the same diff base) across.

use super::background::Background;
use super::pipeline::{Persisted, Pipeline};
use crate::error::Result;
use crate::format::Manifest;
use crate::scheme::{Job, Scheme};
use std::collections::BTreeSet;

/// The writer, inline or on its thread.
#[derive(Debug)]
pub(crate) enum Persister {
    /// Written by the caller's thread before `checkpoint` returns.
    Inline(Box<Pipeline>),
    /// Written by a background thread (copy-on-write).
    Background(Background),
    /// Between the two during a switch that failed; every call errors.
    Broken,
}

/// What submitting a job produced.
pub(crate) enum Submitted {
    /// Persisted already (inline).
    Persisted(Box<Persisted>),
    /// Queued for the background thread.
    Queued,
}

impl Persister {
    /// An inline or background persister for `scheme`.
    pub(crate) fn new(pipeline: Pipeline, scheme: Scheme, max_in_flight: usize) -> Result<Self> {
        Ok(if scheme == Scheme::CopyOnWrite {
            Persister::Background(Background::spawn(pipeline, max_in_flight)?)
        } else {
            Persister::Inline(Box::new(pipeline))
        })
    }

    /// True when jobs are persisted beside the computation.
    pub(crate) fn is_background(&self) -> bool {
        matches!(self, Persister::Background(_))
    }

    /// True while a background job is being persisted.
    pub(crate) fn busy(&self) -> bool {
        match self {
            Persister::Background(background) => background.busy(),
            _ => false,
        }
    }

    /// True when a job submitted now would block until an earlier one is
    /// durable.
    pub(crate) fn full(&self) -> bool {
        match self {
            Persister::Background(background) => background.full(),
            _ => false,
        }
    }

    /// Persists or queues `job`.
    pub(crate) fn submit(&mut self, job: Job) -> Result<Submitted> {
        match self {
            Persister::Inline(pipeline) => {
                Ok(Submitted::Persisted(Box::new(pipeline.persist(job)?)))
            }
            Persister::Background(background) => background.submit(job).map(|()| Submitted::Queued),
            Persister::Broken => Err(broken()),
        }
    }

    /// Results of background jobs that finished, without waiting.
    pub(crate) fn finished(&mut self) -> Vec<Result<Persisted>> {
        match self {
            Persister::Background(background) => background.finished(),
            _ => Vec::new(),
        }
    }

    /// Waits for every queued job and returns their results.
    pub(crate) fn wait(&mut self) -> Vec<Result<Persisted>> {
        match self {
            Persister::Background(background) => background.wait(),
            _ => Vec::new(),
        }
    }

    /// See [`Pipeline::resume_from`].
    pub(crate) fn resume_from(
        &mut self,
        manifest: Manifest,
        damaged: BTreeSet<String>,
    ) -> Result<()> {
        match self {
            Persister::Inline(pipeline) => {
                pipeline.resume_from(manifest, damaged);
                Ok(())
            }
            Persister::Background(background) => background.resume_from(manifest, damaged),
            Persister::Broken => Err(broken()),
        }
    }

    /// Uses `scheme` and `max_chain` from the next job on, moving the
    /// writer to or from the background thread when that changes. Returns
    /// the results of background jobs finished on the way.
    pub(crate) fn set_plan(
        &mut self,
        scheme: Scheme,
        max_chain: u32,
        max_in_flight: usize,
    ) -> Result<Vec<Result<Persisted>>> {
        let background = scheme == Scheme::CopyOnWrite;
        match std::mem::replace(self, Persister::Broken) {
            Persister::Inline(mut pipeline) => {
                pipeline.set_plan(scheme, max_chain);
                *self = Persister::new(*pipeline, scheme, max_in_flight)?;
                Ok(Vec::new())
            }
            Persister::Background(mut thread) if background => {
                thread.set_plan(scheme, max_chain)?;
                *self = Persister::Background(thread);
                Ok(Vec::new())
            }
            Persister::Background(thread) => {
                let (pipeline, results) = thread.into_pipeline();
                let mut pipeline = pipeline?;
                pipeline.set_plan(scheme, max_chain);
                *self = Persister::Inline(Box::new(pipeline));
                Ok(results)
            }
            Persister::Broken => Err(broken()),
        }
    }
}

fn broken() -> crate::Error {
    crate::Error::poisoned("a change of scheme failed to restart the persisting thread")
}
