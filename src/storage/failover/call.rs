//! Backend calls: one call under its deadline, classified (an answer, a
//! failure, an overrun), calls outside any operation, and the probes of
//! a health check.

use super::op::{BorrowedOp, Op, Output, OwnedOp, Parts, ReadTarget};
use super::{Backend, FailoverStorage, PROBE_PREFIX};
use crate::error::{Error, Result};
use crate::storage::pool::Pool;
use std::io;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

/// What one backend call came to.
pub(super) enum Attempt {
    Ok(Output),
    /// The backend answered with an error that is not a failure.
    Answer(Error),
    /// The backend is unavailable (an error that says so), with the cause.
    Failed(String),
    /// The call ran past its deadline, with the cause; it may still
    /// finish (see [`Pending`]).
    Overran(String, Pending),
}

/// A backend call still running past its deadline, whose result may
/// still come.
pub(super) struct Pending(mpsc::Receiver<Result<Output>>);

impl Pending {
    /// Waits up to `limit` more for the result; `None` if it has not come.
    pub(super) fn wait(&self, limit: Duration, key: &str) -> Option<Result<Output>> {
        match self.0.recv_timeout(limit) {
            Ok(result) => Some(result),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => Some(Err(Error::storage(
                "call",
                key,
                io::Error::other("the backend call panicked"),
            ))),
        }
    }

    /// [`wait`](Self::wait) for a call on `backend`, but gives up as
    /// soon as the pair fails over from `backend` (it is set aside).
    pub(super) fn wait_on(
        &self,
        backend: &Backend,
        limit: Duration,
        key: &str,
    ) -> Option<Result<Output>> {
        let until = Instant::now().checked_add(limit);
        loop {
            let left = until.map_or(SET_ASIDE_POLL, |u| {
                u.saturating_duration_since(Instant::now())
            });
            if let Some(result) = self.wait(left.min(SET_ASIDE_POLL), key) {
                return Some(result);
            }
            if left <= SET_ASIDE_POLL || backend.is_set_aside() {
                return None;
            }
        }
    }
}

/// How often a call past this long checks whether its backend was set
/// aside by a failover.
const SET_ASIDE_POLL: Duration = Duration::from_millis(20);

/// Why a path failed a health check.
pub(super) enum Trouble {
    /// A call ran past its deadline: the path, or the store behind it, is
    /// slow.
    Slow(String),
    /// A call failed: the path is dead (or the backend broken).
    Dead(String),
}

impl Trouble {
    pub(super) fn into_cause(self) -> String {
        match self {
            Trouble::Slow(cause) | Trouble::Dead(cause) => cause,
        }
    }
}

impl FailoverStorage {
    /// One call of `op` on `backend`, under the deadline, classified.
    pub(super) fn attempt(
        &self,
        backend: &Arc<Backend>,
        op: &BorrowedOp<'_>,
        owned: &mut Option<Arc<OwnedOp>>,
    ) -> Attempt {
        let result = match self.deadline_for(op) {
            None => {
                let _call = backend.start_call();
                op.apply(backend.storage.as_ref())
            }
            Some(limit) => {
                let shared = Arc::clone(owned.get_or_insert_with(|| Arc::new(op.to_owned_op())));
                match call_with_deadline(&self.pool, backend, shared, limit) {
                    Ok(result) => result,
                    Err(_) if backend.is_set_aside() => {
                        // Abandoned: the operation is retried on the new
                        // active (as after an overrun).
                        return Attempt::Failed(format!(
                            "{:?} of {:?} on {:?} was abandoned: the pair failed over from {:?}",
                            op.kind(),
                            op.key(),
                            backend.name,
                            backend.name
                        ));
                    }
                    Err(pending) => {
                        let cause = format!(
                            "{:?} of {:?} on {:?} ran past its deadline of {limit:?}",
                            op.kind(),
                            op.key(),
                            backend.name
                        );
                        return Attempt::Overran(cause, pending);
                    }
                }
            }
        };
        self.classify(backend, result)
    }

    pub(super) fn classify(&self, backend: &Backend, result: Result<Output>) -> Attempt {
        match result {
            Ok(output) => Attempt::Ok(output),
            Err(e) if (self.config.unavailable)(&e) => {
                Attempt::Failed(format!("{:?}: {}", backend.name, e.report()))
            }
            Err(e) => Attempt::Answer(e),
        }
    }

    fn deadline_for<K, D, T, P, L>(&self, op: &Op<K, D, T, P, L>) -> Option<Duration>
    where
        K: AsRef<str>,
        D: AsRef<[u8]>,
        T: ReadTarget,
        P: Parts,
        L: AsRef<[String]>,
    {
        let base = self.config.deadline?;
        let mib = op.bytes() as f64 / MIB as f64;
        let extra = Duration::try_from_secs_f64(self.config.deadline_per_mib.as_secs_f64() * mib)
            .unwrap_or(Duration::MAX);
        Some(base.saturating_add(extra))
    }

    /// A call made outside any operation (health checks, re-sync), with
    /// every error turned into a cause string — except `NotFound`, which
    /// callers need to tell apart.
    pub(super) fn call(&self, backend: &Arc<Backend>, op: &BorrowedOp<'_>) -> CallResult {
        match self.attempt(backend, op, &mut None) {
            Attempt::Ok(output) => CallResult::Ok(output),
            Attempt::Answer(Error::NotFound { .. }) => CallResult::NotFound,
            Attempt::Answer(e) => CallResult::Err(format!("{:?}: {}", backend.name, e.report())),
            Attempt::Failed(cause) | Attempt::Overran(cause, _) => CallResult::Err(cause),
        }
    }

    pub(super) fn call_ok(
        &self,
        backend: &Arc<Backend>,
        op: &BorrowedOp<'_>,
    ) -> std::result::Result<Output, String> {
        match self.call(backend, op) {
            CallResult::Ok(output) => Ok(output),
            CallResult::NotFound => Err(format!("{:?}: {:?} not found", backend.name, op.key())),
            CallResult::Err(cause) => Err(cause),
        }
    }

    /// Put, get and delete a probe object on `backend`.
    pub(super) fn health_check(&self, backend: &Arc<Backend>) -> std::result::Result<(), String> {
        self.check_path(backend).map_err(Trouble::into_cause)
    }

    /// [`health_check`](Self::health_check), saying whether a failure was
    /// an overrun (slow) or an error (dead).
    pub(super) fn check_path(&self, backend: &Arc<Backend>) -> std::result::Result<(), Trouble> {
        let key = format!("{PROBE_PREFIX}probe-{:016x}", rand::random::<u64>());
        let value = rand::random::<u128>().to_le_bytes();
        self.probe(backend, &Op::Put(&key, &value))?;
        let read = self.probe(backend, &Op::Get(&key));
        let cleaned = self.probe(backend, &Op::Delete(&key));
        match read? {
            Output::Bytes(bytes) if bytes == value => cleaned.map(|_| ()),
            _ => Err(Trouble::Dead(format!(
                "{:?} returned a different probe than was written",
                backend.name
            ))),
        }
    }

    fn probe(
        &self,
        backend: &Arc<Backend>,
        op: &BorrowedOp<'_>,
    ) -> std::result::Result<Output, Trouble> {
        match self.attempt(backend, op, &mut None) {
            Attempt::Ok(output) => Ok(output),
            Attempt::Answer(e) => Err(Trouble::Dead(format!("{:?}: {}", backend.name, e.report()))),
            Attempt::Failed(cause) => Err(Trouble::Dead(cause)),
            Attempt::Overran(cause, _) => Err(Trouble::Slow(cause)),
        }
    }

    /// Shared mode: a probe written through `active` must be read through
    /// `candidate`.
    pub(super) fn check_same_store(
        &self,
        active: &Arc<Backend>,
        candidate: &Arc<Backend>,
    ) -> std::result::Result<(), String> {
        let key = format!("{PROBE_PREFIX}same-store-{:016x}", rand::random::<u64>());
        let value = rand::random::<u128>().to_le_bytes();
        self.call_ok(active, &Op::Put(&key, &value))?;
        let seen = self.call(candidate, &Op::Get(&key));
        let _ = self.call(active, &Op::Delete(&key));
        match seen {
            CallResult::Ok(Output::Bytes(bytes)) if bytes == value => Ok(()),
            CallResult::Err(cause) => Err(cause),
            _ => Err(format!(
                "it does not reach the same store as the active {:?} (a probe written through the active is not visible through it); use FailoverMode::Mirrored for two separate stores",
                active.name
            )),
        }
    }
}

/// A call outside any operation.
pub(super) enum CallResult {
    Ok(Output),
    NotFound,
    Err(String),
}

/// Runs `op` on `backend` on a new thread and waits up to `limit`. `Err`
/// means the deadline passed: the call goes on, and the caller may wait
/// for it further or drop the [`Pending`] to abandon it; an abandoned
/// thread ends when the backend call does (the backend's running count
/// says so).
pub(super) fn call_with_deadline(
    pool: &Pool,
    backend: &Arc<Backend>,
    op: Arc<OwnedOp>,
    limit: Duration,
) -> std::result::Result<Result<Output>, Pending> {
    let pending = start_call(pool, backend, Arc::clone(&op));
    pending.wait_on(backend, limit, op.key()).ok_or(pending)
}

/// Starts `op` on `backend` on a pooled thread and returns at once (or,
/// with no thread to spare, runs it on the caller's first); the result
/// comes through the [`Pending`].
pub(super) fn start_call(pool: &Pool, backend: &Arc<Backend>, op: Arc<OwnedOp>) -> Pending {
    let (sender, receiver) = mpsc::sync_channel(1);
    let call = backend.start_call();
    let storage = Arc::clone(&backend.storage);
    let job = Box::new(move || {
        let result = op.apply(storage.as_ref());
        drop(call);
        // The caller may have given up; then nobody needs the result.
        let _ = sender.send(result);
    });
    if let Err(job) = pool.run(job) {
        // No thread to spare: run on the caller's, without a deadline.
        job();
    }
    Pending(receiver)
}
