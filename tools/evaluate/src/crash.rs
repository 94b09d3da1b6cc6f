//! Failures: the storage gate that kills a process's writes at its
//! crash instant (and slows the store down, for the generated
//! workloads' slower storage), the per-phase clock, and the failure gaps.

use crate::clock::CpuClock;
use ckpt::{FsStorage, Storage};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A process's crash instant on its [`CpuClock`], shared by every gate of
/// the process (a multi-level run has two stores, which die together) and
/// by its [`Clock`]; it can move while the process lives (`--tiers`: the
/// node-failure rate changes half-way through the work).
///
/// A gate that found the process dead says so here ([`tripped`](Self::tripped)),
/// and [`Clock::crashed`] says so too: the clock leaves out the main
/// thread's waits for a CPU only once the thread runs again, so a
/// background thread can read it past the instant while the main thread,
/// resumed, reads it just before.
#[derive(Debug, Clone)]
pub(crate) struct Deadline {
    at: Arc<AtomicU64>,
    tripped: Arc<AtomicBool>,
}

impl Deadline {
    pub(crate) fn at(at: Duration) -> Self {
        let deadline = Deadline {
            at: Arc::new(AtomicU64::new(0)),
            tripped: Arc::new(AtomicBool::new(false)),
        };
        deadline.set(at);
        deadline
    }

    pub(crate) fn never() -> Self {
        Deadline::at(Duration::MAX)
    }

    pub(crate) fn get(&self) -> Duration {
        Duration::from_nanos(self.at.load(Ordering::SeqCst))
    }

    /// Moves the instant (only while the process lives, so a gate has not
    /// found it dead).
    pub(crate) fn set(&self, at: Duration) {
        let nanos = u64::try_from(at.as_nanos()).unwrap_or(u64::MAX);
        self.at.store(nanos, Ordering::SeqCst);
        self.tripped.store(false, Ordering::SeqCst);
    }

    /// True once a gate refused an operation because the process was dead.
    pub(crate) fn tripped(&self) -> bool {
        self.tripped.load(Ordering::SeqCst)
    }

    /// True (and remembered) when `now` is at or past the instant.
    fn passed(&self, now: Duration) -> bool {
        if self.tripped() || now >= self.get() {
            self.tripped.store(true, Ordering::SeqCst);
            return true;
        }
        false
    }
}

/// The store as a process sees it: from `crash_at` (on the clock) on, the
/// process is dead and nothing it writes reaches the disk.
#[derive(Debug)]
pub(crate) struct CrashGate {
    pub(crate) inner: Arc<FsStorage>,
    pub(crate) clock: CpuClock,
    pub(crate) crash_at: Deadline,
    /// Every store operation takes this many times as long as on the
    /// disk (1: no throttle): after the disk's own time the gate sleeps
    /// `slowdown − 1` times as long, i.e. the store has `1/slowdown` of
    /// the disk's bandwidth (and latency times `slowdown`).
    pub(crate) slowdown: f64,
    /// What this store's transfers cost the computation, if anything.
    pub(crate) contention: Contention,
}

/// Emulated contention of a slow store's transfers with the computation
/// (`--tiers --drain-contention`): an upload to an object store spends
/// CPU on TLS and checksums and shares the network with the job's own
/// messages, which a throttle that only sleeps leaves out. While an
/// operation is in flight on a gate that has a contention, every step of
/// the computation that overlaps it takes `slowdown` longer, spun on the
/// computation's own thread (so the counted time, which leaves out waits
/// for a CPU, sees it). The checkpointer is not told: it can only measure
/// it from its steps' times.
#[derive(Debug, Clone, Default)]
pub(crate) struct Contention {
    in_flight: Arc<AtomicUsize>,
    slowdown: f64,
}

impl Contention {
    /// Steps beside a transfer take `slowdown` (e.g. 0.5: half) longer.
    pub(crate) fn new(slowdown: f64) -> Self {
        Contention {
            in_flight: Arc::default(),
            slowdown: slowdown.max(0.0),
        }
    }

    fn active(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) > 0
    }

    /// Runs one step of the computation, slowed if it overlaps a transfer.
    pub(crate) fn step<R>(&self, body: impl FnOnce() -> R) -> R {
        let overlapped = self.active();
        let started = Instant::now();
        let out = body();
        if self.slowdown > 0.0 && (overlapped || self.active()) {
            let extra = started.elapsed().mul_f64(self.slowdown);
            let spin = Instant::now();
            while spin.elapsed() < extra {
                std::hint::spin_loop();
            }
        }
        out
    }

    /// Runs `op`, a transfer, counting it in flight.
    fn transfer<T>(&self, op: impl FnOnce() -> T) -> T {
        if self.slowdown <= 0.0 {
            return op();
        }
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let out = op();
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        out
    }
}

impl CrashGate {
    /// A gate that never crashes (the probes).
    pub(crate) fn open(inner: Arc<FsStorage>, slowdown: f64) -> Self {
        CrashGate {
            inner,
            clock: CpuClock::for_this_thread(),
            crash_at: Deadline::never(),
            slowdown,
            contention: Contention::default(),
        }
    }

    /// Runs `op` on the disk, then sleeps to stretch it to `slowdown`
    /// times its time. A write whose stretched time ends after the crash
    /// fails (its bytes are on disk, but the process never learnt it:
    /// only packs are big enough for that to matter, and an unreferenced
    /// pack is garbage a restore ignores).
    fn slow<T>(
        &self,
        write: Option<(&'static str, &str)>,
        op: impl FnOnce() -> ckpt::Result<T>,
    ) -> ckpt::Result<T> {
        if self.slowdown <= 1.0 {
            return self.contention.transfer(op);
        }
        let out = self.contention.transfer(|| {
            let t = Instant::now();
            let out = op();
            std::thread::sleep(t.elapsed().mul_f64(self.slowdown - 1.0));
            out
        })?;
        if let Some((name, key)) = write {
            self.alive(name, key)?;
        }
        Ok(out)
    }

    fn alive(&self, op: &'static str, key: &str) -> ckpt::Result<()> {
        if self.crash_at.passed(self.clock.now()) {
            return Err(ckpt::Error::storage(
                op,
                key,
                std::io::Error::other("simulated crash: the process is dead"),
            ));
        }
        Ok(())
    }
}

impl Storage for CrashGate {
    fn put(&self, key: &str, data: &[u8]) -> ckpt::Result<()> {
        self.alive("put", key)?;
        self.slow(Some(("put", key)), || self.inner.put(key, data))
    }
    fn get(&self, key: &str) -> ckpt::Result<Vec<u8>> {
        self.slow(None, || self.inner.get(key))
    }
    fn list(&self, prefix: &str) -> ckpt::Result<Vec<String>> {
        self.inner.list(prefix)
    }
    fn delete(&self, key: &str) -> ckpt::Result<()> {
        self.alive("delete", key)?;
        self.inner.delete(key)
    }
    fn get_range(&self, key: &str, range: Range<u64>) -> ckpt::Result<Vec<u8>> {
        self.slow(None, || self.inner.get_range(key, range))
    }
    // The fast paths of the store, so that a run costs what it would
    // without the gate.
    fn put_parts(&self, key: &str, parts: &[&[u8]]) -> ckpt::Result<()> {
        self.alive("put", key)?;
        self.slow(Some(("put", key)), || self.inner.put_parts(key, parts))
    }
    fn put_if_absent(&self, key: &str, data: &[u8]) -> ckpt::Result<bool> {
        self.alive("put_if_absent", key)?;
        self.slow(Some(("put_if_absent", key)), || {
            self.inner.put_if_absent(key, data)
        })
    }
    fn delete_many(&self, keys: &[String]) -> ckpt::Result<()> {
        let first = keys.first().map_or("", String::as_str);
        self.alive("delete", first)?;
        self.inner.delete_many(keys)
    }
}

/// Time per phase, counted up to the crash instant of the current
/// process.
pub(crate) struct Clock {
    pub(crate) clock: CpuClock,
    pub(crate) per_phase: Vec<Duration>,
    mark: Duration,
    crash_at: Duration,
    /// The current process's crash instant as its gates see it (a new one
    /// per process, so that a dead process's gates stay dead).
    deadline: Deadline,
    /// The phase time is charged to until a step says otherwise (a
    /// restart belongs to the phase the crash interrupted).
    pub(crate) phase: usize,
}

impl Clock {
    pub(crate) fn new(clock: CpuClock, phases: usize) -> Self {
        let now = clock.now();
        Clock {
            clock,
            per_phase: vec![Duration::ZERO; phases],
            mark: now,
            crash_at: now,
            deadline: Deadline::at(now),
            phase: 0,
        }
    }

    /// A new process starts now and dies `gap` from now.
    pub(crate) fn start_life(&mut self, gap: Duration) -> Duration {
        self.mark = self.clock.now();
        self.crash_at = self.mark.saturating_add(gap);
        self.deadline = Deadline::at(self.crash_at);
        self.crash_at
    }

    /// The current process's crash instant, for its gates.
    pub(crate) fn deadline(&self) -> Deadline {
        self.deadline.clone()
    }

    /// Charges the time since the last mark to `phase`.
    pub(crate) fn charge(&mut self, phase: usize) {
        self.phase = phase;
        let now = self.clock.now().min(self.crash_at);
        if let Some(slot) = self.per_phase.get_mut(phase) {
            *slot += now.saturating_sub(self.mark);
        }
        self.mark = now;
    }

    /// True once the clock is past the crash instant, or a gate found the
    /// process dead (see [`Deadline`]).
    pub(crate) fn crashed(&self) -> bool {
        self.clock.now() >= self.crash_at || self.deadline.tripped()
    }

    /// The current process's crash instant.
    pub(crate) fn crash_at(&self) -> Duration {
        self.crash_at
    }

    /// Moves the current process's crash instant.
    pub(crate) fn set_crash_at(&mut self, at: Duration) {
        self.crash_at = at;
        self.deadline.set(at);
    }

    /// Leaves the time since `from` (harness work inside a life, such as
    /// hashing a restored state) out of the count: nothing is charged for
    /// it and the crash instant moves on by as much. Returns the new crash
    /// instant.
    pub(crate) fn exclude_since(&mut self, from: Duration) -> Duration {
        let spent = self.clock.now().saturating_sub(from);
        self.mark = self.mark.saturating_add(spent);
        self.crash_at = self.crash_at.saturating_add(spent);
        self.deadline.set(self.crash_at);
        self.crash_at
    }

    pub(crate) fn total(&self) -> Duration {
        self.per_phase.iter().sum()
    }
}

/// Seeded exponential gaps with mean `mtbf`.
pub(crate) fn failure_gaps(mtbf: Duration, seed: u64) -> impl Iterator<Item = Duration> {
    let mut rng = StdRng::seed_from_u64(seed);
    std::iter::repeat_with(move || {
        let u: f64 = rng.random();
        mtbf.mul_f64(-(1.0 - u).ln())
    })
}
