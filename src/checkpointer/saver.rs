//! Saving what the cost model learnt, off the caller's thread: a save is
//! a small put (with an fsync on a filesystem), and the computation must
//! not wait for it. Saves queue on one thread; when several wait, only the
//! newest is written.

use crate::storage::Storage;
use std::sync::mpsc::{SendError, Sender, channel};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How the saves went since the caller last asked.
#[derive(Debug, Default)]
struct Outcome {
    /// How long the last save took.
    last: Duration,
    /// Saves that failed and were not reported yet.
    failures: u32,
    /// Saves queued and not written (or superseded) yet.
    pending: u32,
}

/// What the caller and the saving thread share.
#[derive(Debug)]
struct Shared {
    storage: Arc<dyn Storage>,
    key: &'static str,
    outcome: Mutex<Outcome>,
    /// Signalled after each write.
    written: Condvar,
}

impl Shared {
    /// Writes `bytes` (which stand for `taken` queued saves) and records
    /// how that went.
    fn write(&self, bytes: &[u8], taken: u32) {
        let started = Instant::now();
        let saved = self.storage.put(self.key, bytes);
        let mut outcome = self.outcome.lock().unwrap_or_else(PoisonError::into_inner);
        outcome.last = started.elapsed();
        outcome.pending = outcome.pending.saturating_sub(taken);
        if saved.is_err() {
            outcome.failures = outcome.failures.saturating_add(1);
        }
        self.written.notify_all();
    }
}

/// The saving thread.
#[derive(Debug)]
pub(crate) struct Saver {
    queue: Option<Sender<Vec<u8>>>,
    worker: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl Saver {
    /// Starts a thread that writes each queued state under `key`. Without
    /// a thread (the system refused one), saves are written by the caller.
    pub(crate) fn start(storage: Arc<dyn Storage>, key: &'static str) -> Self {
        let (queue, inbox) = channel::<Vec<u8>>();
        let shared = Arc::new(Shared {
            storage,
            key,
            outcome: Mutex::new(Outcome::default()),
            written: Condvar::new(),
        });
        let writer = shared.clone();
        let worker = std::thread::Builder::new()
            .name("ckpt-model-save".to_owned())
            .spawn(move || {
                while let Ok(mut bytes) = inbox.recv() {
                    // Only the newest state is worth writing.
                    let mut taken = 1;
                    while let Ok(newer) = inbox.try_recv() {
                        bytes = newer;
                        taken += 1;
                    }
                    writer.write(&bytes, taken);
                }
            })
            .ok();
        Saver {
            queue: worker.is_some().then_some(queue),
            worker,
            shared,
        }
    }

    /// Queues `bytes` to be written; returns at once. With no thread,
    /// writes them now.
    pub(crate) fn save(&self, bytes: Vec<u8>) {
        let bytes = match &self.queue {
            Some(queue) => {
                self.outcome().pending += 1;
                match queue.send(bytes) {
                    Ok(()) => return,
                    Err(SendError(bytes)) => {
                        self.outcome().pending -= 1;
                        bytes
                    }
                }
            }
            None => bytes,
        };
        self.shared.write(&bytes, 0);
    }

    /// Waits until every queued save is written.
    pub(crate) fn wait_idle(&self) {
        let mut outcome = self.outcome();
        while outcome.pending > 0 && self.worker.is_some() {
            outcome = self
                .shared
                .written
                .wait(outcome)
                .unwrap_or_else(PoisonError::into_inner);
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
        self.shared
            .outcome
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Saver {
    fn drop(&mut self) {
        self.stop();
    }
}
