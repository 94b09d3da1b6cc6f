//! Saving what the cost model learnt, and the journal's batches, off the
//! caller's thread: a save is a small put (with an fsync on a filesystem),
//! and the computation must not wait for it. Saves queue for one thread;
//! when several wait, only the newest model state is written, and of
//! several writes of one journal object only the last (each holds the
//! whole batch so far).
//!
//! The caller only leaves its job in the inbox and never wakes the thread:
//! a thread woken by the caller tends to run at once on the caller's core
//! (0.2–1.6 ms of a 1 GiB copy-on-write `checkpoint()` went to that), so the
//! thread looks at its inbox every [`POLL`] instead, and is woken only by
//! a caller that waits for it anyway (`wait_idle`, `stop`).

use crate::storage::Storage;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the saving thread looks for queued jobs: what a crash can
/// make the model forget is at most this much more than its last save.
pub(crate) const POLL: Duration = Duration::from_millis(100);

/// How the saves went since the caller last asked.
#[derive(Debug, Default)]
struct Outcome {
    /// How long the last save took.
    last: Duration,
    /// Saves that failed and were not reported yet.
    failures: u32,
    /// Journal writes that failed and were not reported yet.
    journal_failures: u32,
    /// Jobs queued and not written (or superseded) yet.
    pending: u32,
}

/// Jobs queued for the saving thread.
#[derive(Debug, Default)]
struct Inbox {
    /// The newest model state not written yet.
    model: Option<Vec<u8>>,
    /// Journal objects to write, one write per object.
    journal: Vec<JournalWrite>,
    /// Jobs these stand for.
    taken: u32,
    /// Set by `stop`: write what is queued and end.
    closed: bool,
}

/// What the caller and the saving thread share.
#[derive(Debug)]
struct Shared {
    storage: Arc<dyn Storage>,
    key: &'static str,
    inbox: Mutex<Inbox>,
    /// Signalled by a caller that waits for the queued jobs.
    hurry: Condvar,
    outcome: Mutex<Outcome>,
    /// Signalled after each write.
    written: Condvar,
    /// How long the thread sleeps between looks at its inbox.
    poll: Duration,
}

impl Shared {
    /// Writes `journal` then `model` (which stand for `taken` queued
    /// jobs) and records how that went.
    fn write(&self, model: Option<&[u8]>, journal: &[JournalWrite], taken: u32) {
        let mut journal_failed = 0u32;
        for write in journal {
            if self.storage.put(&write.key, &write.bytes).is_err() {
                journal_failed += 1;
            }
            // The journal's bound: a failed delete leaves an old object
            // that the next run's start-up expires again.
            for key in &write.expire {
                let _ = self.storage.delete(key);
            }
        }
        let started = Instant::now();
        let saved = model.map(|bytes| self.storage.put(self.key, bytes));
        let mut outcome = self.outcome.lock().unwrap_or_else(PoisonError::into_inner);
        if saved.is_some() {
            outcome.last = started.elapsed();
        }
        outcome.pending = outcome.pending.saturating_sub(taken);
        if matches!(saved, Some(Err(_))) {
            outcome.failures = outcome.failures.saturating_add(1);
        }
        outcome.journal_failures = outcome.journal_failures.saturating_add(journal_failed);
        self.written.notify_all();
    }

    fn inbox(&self) -> MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The saving thread: every [`POLL`] (or when hurried), writes what is
    /// queued; ends once closed and empty.
    fn run(&self) {
        loop {
            let mut inbox = self.inbox();
            while inbox.taken == 0 && !inbox.closed {
                inbox = self
                    .hurry
                    .wait_timeout(inbox, self.poll)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            let jobs = std::mem::take(&mut *inbox);
            inbox.closed = jobs.closed;
            drop(inbox);
            if jobs.taken > 0 {
                self.write(jobs.model.as_deref(), &jobs.journal, jobs.taken);
            }
            if jobs.closed {
                // Anything queued after `stop` began is written by it.
                return;
            }
        }
    }
}

/// A write of one journal object: its whole batch so far, and the older
/// objects to delete once it is written.
#[derive(Debug, Clone)]
pub(crate) struct JournalWrite {
    /// The object's key.
    pub key: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// Keys of journal objects past the bound.
    pub expire: Vec<String>,
}

/// The saving thread.
#[derive(Debug)]
pub(crate) struct Saver {
    worker: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl Saver {
    /// Starts a thread that writes each queued state under `key`. Without
    /// a thread (the system refused one), saves are written by the caller.
    pub(crate) fn start(storage: Arc<dyn Storage>, key: &'static str) -> Self {
        Self::polling(storage, key, POLL)
    }

    /// [`start`](Self::start) with the thread looking at its inbox every
    /// `poll`.
    fn polling(storage: Arc<dyn Storage>, key: &'static str, poll: Duration) -> Self {
        let shared = Arc::new(Shared {
            storage,
            key,
            inbox: Mutex::new(Inbox::default()),
            hurry: Condvar::new(),
            outcome: Mutex::new(Outcome::default()),
            written: Condvar::new(),
            poll,
        });
        let writer = shared.clone();
        let worker = std::thread::Builder::new()
            .name("ckpt-model-save".to_owned())
            .spawn(move || writer.run())
            .ok();
        Saver { worker, shared }
    }

    /// Queues the model state `bytes` to be written; returns at once.
    /// With no thread, writes them now.
    pub(crate) fn save(&self, bytes: Vec<u8>) {
        if self.worker.is_none() {
            return self.shared.write(Some(&bytes), &[], 0);
        }
        self.outcome().pending += 1;
        let mut inbox = self.shared.inbox();
        // Only the newest state is worth writing.
        inbox.model = Some(bytes);
        inbox.taken += 1;
    }

    /// Queues the model state `bytes` and wakes the thread to write it
    /// now rather than at its next look: for a state a crash should not
    /// lose (a change the policy applied, which a restart resumes), worth
    /// the wake-up on the caller's core that a save after every commit is
    /// not. Returns at once.
    pub(crate) fn save_now(&self, bytes: Vec<u8>) {
        self.save(bytes);
        self.shared.hurry.notify_all();
    }

    /// Queues a journal object to be written; returns at once. With no
    /// thread, writes it now.
    pub(crate) fn journal(&self, write: JournalWrite) {
        if self.worker.is_none() {
            return self.shared.write(None, &[write], 0);
        }
        self.outcome().pending += 1;
        let mut inbox = self.shared.inbox();
        coalesce(&mut inbox.journal, write);
        inbox.taken += 1;
    }

    /// Waits until every queued save is written.
    pub(crate) fn wait_idle(&self) {
        if self.worker.is_none() {
            return;
        }
        self.shared.hurry.notify_all();
        let mut outcome = self.outcome();
        while outcome.pending > 0 {
            outcome = self
                .shared
                .written
                .wait_timeout(outcome, POLL)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            // A job queued between the notify and the thread's wait is
            // picked up at its next poll; hurrying again costs nothing.
            self.shared.hurry.notify_all();
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

    /// Journal writes that failed since the last call.
    pub(crate) fn take_journal_failures(&self) -> u32 {
        std::mem::take(&mut self.outcome().journal_failures)
    }

    /// Writes every queued save and stops the thread.
    pub(crate) fn stop(&mut self) {
        if let Some(worker) = self.worker.take() {
            self.shared.inbox().closed = true;
            self.shared.hurry.notify_all();
            let _ = worker.join();
        }
    }

    fn outcome(&self) -> MutexGuard<'_, Outcome> {
        self.shared
            .outcome
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Adds `write` to the queued journal writes: a later write of the same
/// object replaces the earlier (it holds the whole batch), keeping the
/// keys either expires.
fn coalesce(queued: &mut Vec<JournalWrite>, mut write: JournalWrite) {
    if let Some(same) = queued.iter_mut().find(|w| w.key == write.key) {
        write.expire.append(&mut same.expire);
        *same = write;
    } else {
        queued.push(write);
    }
}

impl Drop for Saver {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemStorage;

    fn write(key: &str, bytes: &[u8], expire: &[&str]) -> JournalWrite {
        JournalWrite {
            key: key.to_owned(),
            bytes: bytes.to_vec(),
            expire: expire.iter().map(|k| (*k).to_owned()).collect(),
        }
    }

    #[test]
    fn queued_writes_of_one_object_keep_the_last_and_every_expiry() {
        let mut queued = Vec::new();
        coalesce(&mut queued, write("journal/1", b"a", &["journal/0"]));
        coalesce(&mut queued, write("journal/2", b"b", &[]));
        coalesce(&mut queued, write("journal/1", b"ab", &[]));
        let keys: Vec<(&str, &[u8])> = queued
            .iter()
            .map(|w| (w.key.as_str(), w.bytes.as_slice()))
            .collect();
        assert_eq!(keys, [("journal/1", &b"ab"[..]), ("journal/2", &b"b"[..])]);
        assert_eq!(queued[0].expire, ["journal/0"]);
    }

    /// A store that reports each put on a channel.
    #[derive(Debug)]
    struct Reporting(std::sync::Mutex<std::sync::mpsc::Sender<String>>);

    impl Storage for Reporting {
        fn put(&self, key: &str, _data: &[u8]) -> crate::Result<()> {
            let _ = self.0.lock().unwrap().send(key.to_owned());
            Ok(())
        }
        fn get(&self, key: &str) -> crate::Result<Vec<u8>> {
            Err(crate::Error::NotFound {
                key: key.to_owned(),
            })
        }
        fn list(&self, _prefix: &str) -> crate::Result<Vec<String>> {
            Ok(Vec::new())
        }
        fn delete(&self, _key: &str) -> crate::Result<()> {
            Ok(())
        }
        fn put_if_absent(&self, key: &str, data: &[u8]) -> crate::Result<bool> {
            self.put(key, data).map(|()| true)
        }
    }

    #[test]
    fn an_urgent_save_is_written_without_waiting_for_the_next_look() {
        let (sender, puts) = std::sync::mpsc::channel();
        let store = Reporting(std::sync::Mutex::new(sender));
        // A thread that looks at its inbox once an hour, given time to
        // begin its wait (a save queued before it does is written at its
        // first look).
        let mut saver =
            Saver::polling(Arc::new(store), "model/advisor", Duration::from_secs(3_600));
        std::thread::sleep(Duration::from_millis(200));
        saver.save_now(b"applied".to_vec());
        let written = puts.recv_timeout(Duration::from_secs(30));
        assert_eq!(written.as_deref(), Ok("model/advisor"));
        saver.stop();
    }

    #[test]
    fn journal_writes_land_and_expire_the_old_before_wait_idle_returns() {
        let store = MemStorage::new();
        store.put("journal/old", b"x").unwrap();
        let mut saver = Saver::start(Arc::new(store.clone()), "model/advisor");
        saver.journal(write("journal/new", b"records", &["journal/old"]));
        saver.save(b"model".to_vec());
        saver.wait_idle();
        assert_eq!(store.get("journal/new").unwrap(), b"records");
        assert!(store.get("journal/old").is_err());
        assert_eq!(store.get("model/advisor").unwrap(), b"model");
        assert_eq!(saver.take_journal_failures(), 0);
        saver.stop();
    }
}
