//! A small pool of named threads for backend calls that must be abandoned
//! at a deadline (see `failover`).
//!
//! A blocking call cannot be cancelled, so the caller waits for the result
//! with a timeout and walks away if it passes. The thread stays with the
//! call until it returns. The pool never makes a job wait for a busy
//! thread (a busy thread may be stuck for good in a hung backend): a job
//! goes to an idle thread or to a new one. Threads that stay idle for
//! [`IDLE_EXIT`] end, so a burst of hung calls does not leave threads
//! behind for ever.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// How long an idle thread waits for work before it ends.
const IDLE_EXIT: Duration = Duration::from_secs(10);

type Job = Box<dyn FnOnce() + Send>;

/// Runs jobs on pooled threads named `name`.
#[derive(Debug)]
pub(crate) struct Pool {
    shared: Arc<Shared>,
    name: &'static str,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    work: Condvar,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let queue = self.lock();
        f.debug_struct("Pool")
            .field("queued", &queue.jobs.len())
            .field("idle", &queue.idle)
            .finish()
    }
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// Threads waiting for a job. Invariant: `jobs.len() <= idle`, so every
    /// queued job has a thread that will take it.
    idle: usize,
    closed: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Critical sections are single queue operations.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Pool {
    pub(crate) fn new(name: &'static str) -> Self {
        Pool {
            shared: Arc::new(Shared::default()),
            name,
        }
    }

    /// Runs `job` on a pooled thread. Gives the job back if no thread
    /// could be started for it.
    pub(crate) fn run(&self, job: Job) -> Result<(), Job> {
        let mut queue = self.shared.lock();
        if queue.jobs.len() < queue.idle {
            queue.jobs.push_back(job);
            drop(queue);
            self.shared.work.notify_one();
            return Ok(());
        }
        // Count the new thread as idle before it starts, so the invariant
        // holds while it is being born.
        queue.idle += 1;
        queue.jobs.push_back(job);
        drop(queue);
        let shared = Arc::clone(&self.shared);
        let spawned = std::thread::Builder::new()
            .name(self.name.to_owned())
            .spawn(move || work(&shared));
        if spawned.is_err() {
            let mut queue = self.shared.lock();
            queue.idle -= 1;
            // Take back a job (any: they are interchangeable for the
            // invariant) so that the queue does not outgrow its takers.
            if queue.jobs.len() > queue.idle {
                return queue.jobs.pop_back().map_or(Ok(()), Err);
            }
        }
        Ok(())
    }
}

impl Drop for Pool {
    /// Idle threads end now; busy ones when their call returns (they are
    /// not joined: one may be stuck in a hung backend for a long time).
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.work.notify_all();
    }
}

fn work(shared: &Shared) {
    let mut queue = shared.lock();
    loop {
        if let Some(job) = queue.jobs.pop_front() {
            queue.idle -= 1;
            drop(queue);
            job();
            queue = shared.lock();
            queue.idle += 1;
            continue;
        }
        if queue.closed {
            break;
        }
        let (next, waited) = shared
            .work
            .wait_timeout(queue, IDLE_EXIT)
            .unwrap_or_else(PoisonError::into_inner);
        queue = next;
        if waited.timed_out() && queue.jobs.is_empty() {
            break;
        }
    }
    queue.idle -= 1;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn a_stuck_job_never_delays_the_next_one() {
        let pool = Pool::new("test-pool");
        let (release, stuck) = mpsc::channel::<()>();
        pool.run(Box::new(move || {
            let _ = stuck.recv();
        }))
        .ok()
        .unwrap();
        let (done, finished) = mpsc::channel();
        for i in 0..4 {
            let done = done.clone();
            pool.run(Box::new(move || done.send(i).unwrap()))
                .ok()
                .unwrap();
        }
        let mut got: Vec<i32> = (0..4)
            .map(|_| finished.recv_timeout(Duration::from_secs(5)).unwrap())
            .collect();
        got.sort();
        assert_eq!(got, vec![0, 1, 2, 3]);
        release.send(()).unwrap();
    }
}
