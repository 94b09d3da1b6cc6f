//! Time as the computation experiences it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Time as the computation experiences it: wall time minus the time the
/// main thread spent runnable but waiting for a CPU (Linux schedstat).
///
/// Other jobs on a shared machine preempt the computation at random;
/// without this correction their load, not the checkpoint scheme, decides
/// which run looks fastest. Waiting on the disk, on a lock or on a
/// background thread is not subtracted: only waiting for a CPU. (On a
/// machine without `/proc/<pid>/task/<tid>/schedstat` it is wall time.)
#[derive(Debug, Clone)]
pub(crate) struct CpuClock {
    origin: Instant,
    schedstat: Option<PathBuf>,
    /// The thread's total wait for a CPU when the clock was made.
    waited_before: Duration,
}

impl CpuClock {
    /// A clock for the calling thread.
    pub(crate) fn for_this_thread() -> Self {
        let schedstat = std::fs::read_link("/proc/thread-self")
            .ok()
            .map(|task| Path::new("/proc").join(task).join("schedstat"))
            .filter(|p| std::fs::read_to_string(p).is_ok());
        let mut clock = CpuClock {
            origin: Instant::now(),
            schedstat,
            waited_before: Duration::ZERO,
        };
        clock.waited_before = clock.total_wait();
        clock
    }

    /// The thread's total wait for a CPU since it started.
    fn total_wait(&self) -> Duration {
        let nanos = self
            .schedstat
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap_or(0);
        Duration::from_nanos(nanos)
    }

    /// Time since the clock was made, less the waits for a CPU.
    pub(crate) fn now(&self) -> Duration {
        let waited = self.total_wait().saturating_sub(self.waited_before);
        self.origin.elapsed().saturating_sub(waited)
    }

    pub(crate) fn corrects(&self) -> bool {
        self.schedstat.is_some()
    }
}
