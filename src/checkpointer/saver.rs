//! Saving what the cost model learnt, off the caller's thread: a save is
//! a small put (with an fsync on a filesystem), and the computation must
//! not wait for it. Saves queue on one thread; when several wait, only the
//! newest is written.

use crate::storage::Storage;
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How the saves went since the caller last asked.
#[derive(Debug, Default)]
struct Outcome {
    /// How long the last save took.
    last: Duration,
    /// Saves that failed and were not reported yet.
    failures: u32,
}

/// The saving thread.
#[derive(Debug)]
pub(crate) struct Saver {
    queue: Option<Sender<Vec<u8>>>,
    worker: Option<JoinHandle<()>>,
    outcome: Arc<Mutex<Outcome>>,
}

impl Saver {
    /// Starts a thread that writes each queued state under `key`. Without
    /// a thread (the system refused one), saves are written by the caller.
    pub(crate) fn start(storage: Arc<dyn Storage>, key: &'static str) -> Self {
        let (queue, inbox) = channel::<Vec<u8>>();
        let outcome = Arc::new(Mutex::new(Outcome::default()));
        let reported = outcome.clone();
        let worker = std::thread::Builder::new()
            .name("ckpt-model-save".to_owned())
            .spawn(move || {
                while let Ok(mut bytes) = inbox.recv() {
                    // Only the newest state is worth writing.
                    while let Ok(newer) = inbox.try_recv() {
                        bytes = newer;
                    }
                    let started = Instant::now();
                    let saved = storage.put(key, &bytes);
                    let mut outcome = reported.lock().unwrap_or_else(PoisonError::into_inner);
                    outcome.last = started.elapsed();
                    if saved.is_err() {
                        outcome.failures = outcome.failures.saturating_add(1);
                    }
                }
            })
            .ok();
        Saver {
            queue: worker.is_some().then_some(queue),
            worker,
            outcome,
        }
    }

    /// Queues `bytes` to be written; returns at once. With no thread,
    /// writes them with `storage` now.
    pub(crate) fn save(&self, storage: &dyn Storage, key: &str, bytes: Vec<u8>) {
        match &self.queue {
            Some(queue) if queue.send(bytes.clone()).is_ok() => {}
            _ => {
                let started = Instant::now();
                let saved = storage.put(key, &bytes);
                let mut outcome = self.outcome();
                outcome.last = started.elapsed();
                if saved.is_err() {
                    outcome.failures = outcome.failures.saturating_add(1);
                }
            }
        }
    }

    /// How long the last save took.
    pub(crate) fn last_duration(&self) -> Duration {
        self.outcome().last
    }

    /// Saves that failed since the last call.
    pub(crate) fn take_failures(&self) -> u32 {
        std::mem::take(&mut self.outcome().failures)
    }

    /// Writes every queued save and stops the thread.
    pub(crate) fn stop(&mut self) {
        self.queue.take();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }

    fn outcome(&self) -> std::sync::MutexGuard<'_, Outcome> {
        self.outcome.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Saver {
    fn drop(&mut self) {
        self.stop();
    }
}
