//! A fault-injecting [`Storage`] wrapper, for tests.
//!
//! Faults are injected at the storage seam (redb's habit): wrap a real
//! backend in a [`FaultyStorage`], keep its [`FaultControl`], and fail,
//! hang, slow down or tear its operations on command, after N operations,
//! or at a seeded random operation. `ckpt`'s own crash and failover tests
//! use it; so can yours, to check how your setup behaves when storage dies.
//! Compiled only with the `test-suite` feature.

use super::Storage;
use crate::error::{Error, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::VecDeque;
use std::io;
use std::ops::Range;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// How long a [`Fault::Hang`] blocks before failing, unless released.
pub const DEFAULT_HANG_LIMIT: Duration = Duration::from_secs(60);

/// What an injected fault does to the operation it hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// The operation fails with [`Error::Storage`] carrying an I/O error of
    /// this kind, and touches nothing.
    Error(io::ErrorKind),
    /// The operation blocks, as on a stuck network mount: it goes on
    /// normally once [`FaultControl::release_hangs`] or
    /// [`FaultControl::repair`] is called, or fails with
    /// [`io::ErrorKind::TimedOut`] after the hang limit.
    Hang,
    /// The operation is delayed by this long, then goes on normally.
    Delay(Duration),
    /// A `put` writes the first half of the object to the inner store and
    /// then fails (a backend that breaks the atomic-put contract as it
    /// dies); other operations fail like
    /// `Fault::Error(io::ErrorKind::ConnectionAborted)`.
    TornWrite,
}

/// A [`Storage`] wrapper that injects faults into the operations of an
/// inner store, for tests of `ckpt` and of your own setups.
///
/// With no fault armed it is a transparent pass-through (it passes the
/// storage conformance suite). Faults are armed through the shared
/// [`FaultControl`] handle:
///
/// * [`fail_now`](FaultControl::fail_now): the backend is down — every
///   operation hits the fault — until [`repair`](FaultControl::repair);
/// * [`fail_next`](FaultControl::fail_next): only the next operation;
/// * [`fail_after`](FaultControl::fail_after): the backend goes down after
///   N more operations;
/// * [`fail_randomly`](FaultControl::fail_randomly): the backend goes down
///   at a random operation drawn from a seeded generator;
/// * [`set_latency`](FaultControl::set_latency): every operation is slowed.
///
/// ```
/// use ckpt::{MemStorage, Storage};
/// use ckpt::storage::{Fault, FaultyStorage};
/// use std::io::ErrorKind;
///
/// let store = FaultyStorage::new(MemStorage::new());
/// let faults = store.control();
/// store.put("a", b"1")?;
/// faults.fail_now(Fault::Error(ErrorKind::ConnectionRefused));
/// assert!(store.get("a").is_err());
/// faults.repair();
/// assert_eq!(store.get("a")?, b"1");
/// # Ok::<(), ckpt::Error>(())
/// ```
#[derive(Debug)]
pub struct FaultyStorage<S> {
    inner: S,
    control: FaultControl,
}

/// The shared handle that arms, and repairs, the faults of a
/// [`FaultyStorage`]. Clones control the same store.
#[derive(Debug, Clone)]
pub struct FaultControl {
    shared: Arc<FaultShared>,
}

#[derive(Debug)]
struct FaultShared {
    state: Mutex<FaultState>,
    /// Signalled when hung operations are released.
    released: Condvar,
}

#[derive(Debug)]
struct FaultState {
    /// While set, every operation hits this fault.
    down: Option<Fault>,
    /// One-shot faults for the next operations, in order.
    next: VecDeque<Fault>,
    /// Operations left before the backend goes down, and how.
    after: Option<(u64, Fault)>,
    /// A seeded draw per operation that may take the backend down.
    random: Option<RandomFault>,
    latency: Duration,
    hang_limit: Duration,
    /// Bumped to release every hung operation.
    releases: u64,
    operations: u64,
    injected: u64,
}

#[derive(Debug)]
struct RandomFault {
    rng: StdRng,
    probability: f64,
    fault: Fault,
}

impl<S: Storage> FaultyStorage<S> {
    /// Wraps `inner` with no fault armed.
    pub fn new(inner: S) -> Self {
        FaultyStorage {
            inner,
            control: FaultControl {
                shared: Arc::new(FaultShared {
                    state: Mutex::new(FaultState {
                        down: None,
                        next: VecDeque::new(),
                        after: None,
                        random: None,
                        latency: Duration::ZERO,
                        hang_limit: DEFAULT_HANG_LIMIT,
                        releases: 0,
                        operations: 0,
                        injected: 0,
                    }),
                    released: Condvar::new(),
                }),
            },
        }
    }

    /// A handle that arms and repairs this store's faults.
    pub fn control(&self) -> FaultControl {
        self.control.clone()
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Runs `operation` on the inner store unless a fault says otherwise.
    /// `torn` is the parts of what a put writes: a torn write leaves the
    /// first half of them behind (puts only).
    fn run<T>(
        &self,
        op: &'static str,
        key: &str,
        torn: Option<&[&[u8]]>,
        operation: impl FnOnce(&S) -> Result<T>,
    ) -> Result<T> {
        let (fault, generation) = self.control.draw();
        match fault {
            None | Some(Fault::Delay(_)) => {}
            Some(Fault::Error(kind)) => return Err(injected(op, key, kind, "injected fault")),
            Some(Fault::Hang) => self.control.hang(op, key, generation)?,
            Some(Fault::TornWrite) => {
                if let Some(parts) = torn {
                    let data = parts.concat();
                    let half = data.get(..data.len() / 2).unwrap_or_default();
                    // The point is the debris; whether writing it worked
                    // does not change what the caller is told.
                    let _ = self.inner.put(key, half);
                }
                let kind = io::ErrorKind::ConnectionAborted;
                return Err(injected(op, key, kind, "injected torn write"));
            }
        }
        operation(&self.inner)
    }
}

fn injected(op: &'static str, key: &str, kind: io::ErrorKind, what: &str) -> Error {
    Error::storage(op, key, io::Error::new(kind, what.to_owned()))
}

impl FaultControl {
    fn state(&self) -> MutexGuard<'_, FaultState> {
        // Every critical section leaves the state consistent.
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts one operation and decides its fault; sleeps its latency and
    /// any [`Fault::Delay`] before returning. Also returns the release
    /// generation the decision was taken in, so a release that comes before
    /// the operation starts hanging still releases it.
    fn draw(&self) -> (Option<Fault>, u64) {
        let (fault, latency, generation) = {
            let mut st = self.state();
            st.operations += 1;
            let fault = st.decide();
            if fault.is_some() {
                st.injected += 1;
            }
            (fault, st.latency, st.releases)
        };
        let delay = match fault {
            Some(Fault::Delay(d)) => d,
            _ => Duration::ZERO,
        };
        let total = latency.saturating_add(delay);
        if !total.is_zero() {
            std::thread::sleep(total);
        }
        (fault, generation)
    }

    /// Blocks until released (`Ok`, the operation goes on) or the hang
    /// limit passes (a `TimedOut` error).
    fn hang(&self, op: &'static str, key: &str, generation: u64) -> Result<()> {
        let st = self.state();
        let limit = st.hang_limit;
        let (st, timeout) = self
            .shared
            .released
            .wait_timeout_while(st, limit, |s| s.releases == generation)
            .unwrap_or_else(PoisonError::into_inner);
        drop(st);
        if timeout.timed_out() {
            let kind = io::ErrorKind::TimedOut;
            return Err(injected(op, key, kind, "injected hang timed out"));
        }
        Ok(())
    }

    /// Takes the backend down: every operation hits `fault` until
    /// [`repair`](Self::repair).
    pub fn fail_now(&self, fault: Fault) {
        self.state().down = Some(fault);
    }

    /// Makes only the next operation hit `fault` (one-shot faults queue up
    /// in the order they were armed, ahead of any other fault).
    pub fn fail_next(&self, fault: Fault) {
        self.state().next.push_back(fault);
    }

    /// Lets `operations` more operations through, then takes the backend
    /// down with `fault` (0: the next operation). Replaces an earlier
    /// `fail_after`.
    pub fn fail_after(&self, operations: u64, fault: Fault) {
        self.state().after = Some((operations, fault));
    }

    /// Takes the backend down with `fault` at a random operation: each
    /// operation does so with `probability` (clamped to `0.0..=1.0`; NaN is
    /// 0), drawn from a generator seeded with `seed`, so a single-threaded
    /// run fails at the same operation every time. Replaces an earlier
    /// `fail_randomly`.
    pub fn fail_randomly(&self, seed: u64, probability: f64, fault: Fault) {
        let probability = if probability.is_nan() {
            0.0
        } else {
            probability.clamp(0.0, 1.0)
        };
        self.state().random = Some(RandomFault {
            rng: StdRng::seed_from_u64(seed),
            probability,
            fault,
        });
    }

    /// Adds `latency` to every operation (not cleared by
    /// [`repair`](Self::repair): it models the device, not a fault).
    pub fn set_latency(&self, latency: Duration) {
        self.state().latency = latency;
    }

    /// How long a [`Fault::Hang`] blocks before failing with `TimedOut`
    /// (default [`DEFAULT_HANG_LIMIT`]).
    pub fn set_hang_limit(&self, limit: Duration) {
        self.state().hang_limit = limit;
    }

    /// Lets every operation hung right now go on (later ones still hang
    /// while a hang is armed).
    pub fn release_hangs(&self) {
        self.state().releases += 1;
        self.shared.released.notify_all();
    }

    /// Brings the backend back: clears the down state and every armed
    /// trigger (next, after, random), and releases hung operations. The
    /// latency set with [`set_latency`](Self::set_latency) stays.
    pub fn repair(&self) {
        {
            let mut st = self.state();
            st.down = None;
            st.next.clear();
            st.after = None;
            st.random = None;
            st.releases += 1;
        }
        self.shared.released.notify_all();
    }

    /// True while the backend is down (a fault is hit by every operation).
    pub fn is_down(&self) -> bool {
        self.state().down.is_some()
    }

    /// Operations seen so far, faulty or not.
    pub fn operations(&self) -> u64 {
        self.state().operations
    }

    /// Operations that hit a fault so far.
    pub fn faults_injected(&self) -> u64 {
        self.state().injected
    }
}

impl FaultState {
    fn decide(&mut self) -> Option<Fault> {
        if let Some(fault) = self.next.pop_front() {
            return Some(fault);
        }
        if self.down.is_some() {
            return self.down;
        }
        if let Some((left, fault)) = self.after {
            if left == 0 {
                self.after = None;
                self.down = Some(fault);
                return Some(fault);
            }
            self.after = Some((left - 1, fault));
        }
        if let Some(random) = &mut self.random
            && random.rng.random_bool(random.probability)
        {
            let fault = random.fault;
            self.random = None;
            self.down = Some(fault);
            return Some(fault);
        }
        None
    }
}

impl<S: Storage> Storage for FaultyStorage<S> {
    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        self.run("put", key, Some(&[data]), |s| s.put(key, data))
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        self.run("get", key, None, |s| s.get(key))
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.run("list", prefix, None, |s| s.list(prefix))
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.run("delete", key, None, |s| s.delete(key))
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>> {
        self.run("get", key, None, |s| s.get_range(key, range))
    }

    fn put_if_absent(&self, key: &str, data: &[u8]) -> Result<bool> {
        self.run("put", key, Some(&[data]), |s| s.put_if_absent(key, data))
    }

    /// Faults hit it like a `put`; a torn write leaves the first half of
    /// the joined parts.
    fn put_parts(&self, key: &str, parts: &[&[u8]]) -> Result<()> {
        self.run("put", key, Some(parts), |s| s.put_parts(key, parts))
    }

    /// One operation, like a `delete`, named by its first key: a fault
    /// fails (or holds back) the whole batch, which touches nothing.
    fn delete_many(&self, keys: &[String]) -> Result<()> {
        let first = keys.first().map_or("", String::as_str);
        self.run("delete", first, None, |s| s.delete_many(keys))
    }

    /// Faults hit it like a `get_range`: an injected error leaves the
    /// buffers untouched; a hang or delay holds the read back.
    fn read_into(&self, key: &str, offset: u64, bufs: &mut [&mut [u8]]) -> Result<()> {
        self.run("get", key, None, |s| s.read_into(key, offset, bufs))
    }

    fn read_gap_bytes(&self) -> u64 {
        self.inner.read_gap_bytes()
    }
    fn holds_writer_lock(&self) -> bool {
        self.inner.holds_writer_lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemStorage;

    #[test]
    fn after_n_operations_the_backend_goes_down_until_repaired() {
        let store = FaultyStorage::new(MemStorage::new());
        let faults = store.control();
        faults.fail_after(2, Fault::Error(io::ErrorKind::NotConnected));
        store.put("a", b"1").unwrap();
        store.put("b", b"2").unwrap();
        assert!(store.get("a").is_err());
        assert!(store.get("b").is_err());
        assert!(faults.is_down());
        faults.repair();
        assert_eq!(store.get("b").unwrap(), b"2");
        assert_eq!(faults.faults_injected(), 2);
    }

    #[test]
    fn a_torn_write_leaves_half_an_object_and_fails() {
        let store = FaultyStorage::new(MemStorage::new());
        store.control().fail_next(Fault::TornWrite);
        assert!(store.put("k", b"abcdef").is_err());
        assert_eq!(store.inner().get("k").unwrap(), b"abc");
        store.put("k", b"abcdef").unwrap();
        assert_eq!(store.get("k").unwrap(), b"abcdef");
    }

    #[test]
    fn faults_hit_put_parts_and_delete_many_like_their_plain_forms() {
        let store = FaultyStorage::new(MemStorage::new());
        let faults = store.control();
        faults.fail_next(Fault::TornWrite);
        assert!(store.put_parts("k", &[b"abc", b"def"]).is_err());
        assert_eq!(store.inner().get("k").unwrap(), b"abc");
        store.put_parts("k", &[b"abc", b"", b"def"]).unwrap();
        assert_eq!(store.get("k").unwrap(), b"abcdef");

        faults.fail_next(Fault::Error(io::ErrorKind::ConnectionReset));
        let keys = ["k".to_owned()];
        let err = store.delete_many(&keys).unwrap_err();
        assert!(err.report().to_string().contains("injected"), "{err}");
        assert_eq!(store.inner().get("k").unwrap(), b"abcdef");
        store.delete_many(&keys).unwrap();
        assert!(store.inner().list("").unwrap().is_empty());
        assert_eq!(faults.faults_injected(), 2);
    }

    #[test]
    fn a_hang_times_out_or_goes_on_when_released() {
        let store = Arc::new(FaultyStorage::new(MemStorage::new()));
        let faults = store.control();
        faults.set_hang_limit(Duration::from_millis(20));
        faults.fail_next(Fault::Hang);
        let err = store.put("k", b"1").unwrap_err();
        assert!(err.report().to_string().contains("timed out"), "{err}");

        faults.set_hang_limit(Duration::from_secs(30));
        faults.fail_now(Fault::Hang);
        let hung = {
            let store = Arc::clone(&store);
            std::thread::spawn(move || store.put("k", b"2"))
        };
        while faults.operations() < 2 {
            std::thread::yield_now();
        }
        faults.repair();
        hung.join().unwrap().unwrap();
        assert_eq!(store.get("k").unwrap(), b"2");
    }

    #[test]
    fn random_faults_are_reproducible_from_the_seed() {
        let first_failure = |seed| {
            let store = FaultyStorage::new(MemStorage::new());
            store
                .control()
                .fail_randomly(seed, 0.1, Fault::Error(io::ErrorKind::Other));
            (0..1000).position(|i| store.put(&format!("k{i}"), b"x").is_err())
        };
        assert_eq!(first_failure(7), first_failure(7));
        assert!(first_failure(7).is_some());
    }
}
