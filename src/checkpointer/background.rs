//! Copy-on-write persistence: a named background thread persists captured
//! snapshots in order while the computation goes on.

use super::pipeline::{Persisted, Pipeline};
use crate::error::{Error, Result};
use crate::format::Manifest;
use crate::scheme::{Job, Scheme};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, channel, sync_channel};
use std::thread::JoinHandle;

/// A message to the persisting thread.
#[derive(Debug)]
enum Message {
    Persist(Box<Job>),
    /// Diff the next checkpoint against this restored manifest; these
    /// newer checkpoints failed verification.
    ResumeFrom(Box<Manifest>, BTreeSet<String>),
    /// Use this scheme and chain bound from the next job on.
    SetPlan(Scheme, u32),
}

/// The persisting thread and its two channels.
///
/// At most `max_in_flight` captured snapshots wait while one is being
/// written; a further [`submit`](Self::submit) blocks (back-pressure).
#[derive(Debug)]
pub(crate) struct Background {
    jobs: Option<SyncSender<Message>>,
    results: Receiver<Result<Persisted>>,
    worker: Option<JoinHandle<Pipeline>>,
    pending: usize,
    /// Jobs submitted and not yet persisted (or failed) by the thread.
    in_flight: Arc<AtomicUsize>,
    /// Jobs that may wait while one is persisted.
    max_in_flight: usize,
}

impl Background {
    /// Starts the thread that owns `pipeline`.
    pub(crate) fn spawn(mut pipeline: Pipeline, max_in_flight: usize) -> Result<Self> {
        let (jobs, inbox) = sync_channel::<Message>(max_in_flight);
        let (outbox, results) = channel();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let done = in_flight.clone();
        let worker = std::thread::Builder::new()
            .name("ckpt-persist".to_owned())
            .spawn(move || {
                for message in inbox {
                    match message {
                        Message::SetPlan(scheme, max_chain) => pipeline.set_plan(scheme, max_chain),
                        Message::ResumeFrom(manifest, damaged) => {
                            pipeline.resume_from(*manifest, damaged);
                        }
                        Message::Persist(job) => {
                            let result = pipeline.persist(*job);
                            done.fetch_sub(1, Ordering::Release);
                            let failed = result.is_err();
                            if outbox.send(result).is_err() || failed {
                                break; // nothing after a failed persist can be trusted
                            }
                        }
                    }
                }
                pipeline
            })
            .map_err(|e| Error::storage("spawn", "ckpt-persist thread", e))?;
        Ok(Background {
            jobs: Some(jobs),
            results,
            worker: Some(worker),
            pending: 0,
            in_flight,
            max_in_flight,
        })
    }

    /// Queues a job, blocking while `max_in_flight` are already queued.
    pub(crate) fn submit(&mut self, job: Job) -> Result<()> {
        self.in_flight.fetch_add(1, Ordering::Acquire);
        if let Err(e) = self.send(Message::Persist(Box::new(job))) {
            self.in_flight.fetch_sub(1, Ordering::Release);
            return Err(e);
        }
        self.pending += 1;
        Ok(())
    }

    /// True while a submitted job is still being persisted (or waits to
    /// be), whether or not its result was collected.
    pub(crate) fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0
    }

    /// True when a job submitted now would wait for room: one is being
    /// persisted and `max_in_flight` more are queued.
    pub(crate) fn full(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > self.max_in_flight
    }

    /// See [`Pipeline::resume_from`].
    pub(crate) fn resume_from(
        &mut self,
        manifest: Manifest,
        damaged: BTreeSet<String>,
    ) -> Result<()> {
        self.send(Message::ResumeFrom(Box::new(manifest), damaged))
    }

    /// See [`Pipeline::set_plan`].
    pub(crate) fn set_plan(&mut self, scheme: Scheme, max_chain: u32) -> Result<()> {
        self.send(Message::SetPlan(scheme, max_chain))
    }

    /// Waits for the queued jobs, stops the thread and hands back its
    /// pipeline, with the results of the jobs it finished.
    pub(crate) fn into_pipeline(mut self) -> (Result<Pipeline>, Vec<Result<Persisted>>) {
        let results = self.wait();
        self.jobs.take();
        let pipeline = match self.worker.take().map(JoinHandle::join) {
            Some(Ok(pipeline)) => Ok(pipeline),
            _ => Err(Error::poisoned("the background persist thread panicked")),
        };
        (pipeline, results)
    }

    fn send(&self, message: Message) -> Result<()> {
        let sent = self.jobs.as_ref().map(|jobs| jobs.send(message));
        match sent {
            Some(Ok(())) => Ok(()),
            _ => Err(Error::poisoned(
                "the background persist thread stopped after a failure",
            )),
        }
    }

    /// Results of the jobs that finished, in order, without waiting.
    pub(crate) fn finished(&mut self) -> Vec<Result<Persisted>> {
        let mut out = Vec::new();
        while self.pending > 0 {
            match self.results.try_recv() {
                Ok(result) => {
                    self.pending -= 1;
                    out.push(result);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.pending = 0;
                    out.push(Err(self.stopped()));
                }
            }
        }
        out
    }

    /// Waits until every queued job finished and returns their results.
    pub(crate) fn wait(&mut self) -> Vec<Result<Persisted>> {
        let mut out = Vec::new();
        while self.pending > 0 {
            self.pending -= 1;
            match self.results.recv() {
                Ok(result) => out.push(result),
                Err(_) => {
                    self.pending = 0;
                    out.push(Err(self.stopped()));
                }
            }
        }
        out
    }

    fn stopped(&mut self) -> Error {
        let panicked = self
            .worker
            .take()
            .map(JoinHandle::join)
            .is_some_and(|joined| joined.is_err());
        Error::poisoned(if panicked {
            "the background persist thread panicked"
        } else {
            "the background persist thread stopped after a failure"
        })
    }
}

impl Drop for Background {
    /// Lets the thread finish what was captured (so every snapshot handed
    /// over is either committed or never visible), then joins it.
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}
