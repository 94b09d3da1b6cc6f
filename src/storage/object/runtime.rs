//! The backend's own async runtime, hidden behind a blocking call.
//!
//! `object_store` is async; `ckpt` is not. Every operation is spawned onto a
//! small multi-threaded tokio runtime that the backend owns, and the calling
//! thread waits on a std channel. Nothing here calls `block_on` on the
//! caller's thread, so a caller that is itself inside a tokio runtime does
//! not panic (it blocks that worker for the duration of the call, as any
//! blocking I/O would: prefer `spawn_blocking` there).

use crate::error::{Error, Result};
use std::future::Future;
use std::io;

/// Worker threads of the runtime. Requests are I/O-bound; the threads only
/// sign requests and copy bytes, so two keep up with a 10 Gbit/s link.
const WORKER_THREADS: usize = 2;

/// An owned tokio runtime that runs futures to completion for blocking
/// callers.
#[derive(Debug)]
pub(super) struct BlockingRuntime {
    /// `Some` until dropped; taken in `drop` to shut it down without blocking.
    runtime: Option<tokio::runtime::Runtime>,
}

impl BlockingRuntime {
    pub(super) fn new() -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKER_THREADS)
            .thread_name("ckpt-object-store")
            .enable_all()
            .build()
            .map_err(|e| Error::storage("open", "object store runtime", e))?;
        Ok(BlockingRuntime {
            runtime: Some(runtime),
        })
    }

    /// Runs `future` on the runtime and waits for its output.
    ///
    /// `op` and `key` only label the error returned if the task dies (a
    /// panic inside `object_store`), which is reported, not propagated.
    pub(super) fn run<F>(&self, op: &'static str, key: &str, future: F) -> Result<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let lost = || {
            Error::storage(
                op,
                key,
                io::Error::other("the object store runtime dropped the request (a task panicked)"),
            )
        };
        let runtime = self.runtime.as_ref().ok_or_else(lost)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            // The receiver only goes away if the caller's thread died.
            let _ = tx.send(future.await);
        });
        rx.recv().map_err(|_| lost())
    }
}

impl Drop for BlockingRuntime {
    fn drop(&mut self) {
        // Dropping a runtime blocks until its tasks end, which panics inside
        // another runtime; no request is in flight here (each `run` waits for
        // its own), so shutting down in the background loses nothing.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
