//! The pair's shared state: its configuration, the backends and their
//! running calls, the gate, the in-flight records and the counters.

use super::{FailoverEvent, OpKind, Storage};
use crate::error::Error;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub(super) type Classifier = Arc<dyn Fn(&Error) -> bool + Send + Sync>;
pub(super) type Callback = Arc<dyn Fn(&FailoverEvent) + Send + Sync>;

pub(super) struct Config {
    pub(super) deadline: Option<Duration>,
    pub(super) deadline_per_mib: Duration,
    pub(super) admit_wait: Duration,
    pub(super) slow_store_patience: Option<Duration>,
    pub(super) unavailable: Classifier,
    pub(super) discard_standby_extras: bool,
}

pub(super) enum Subscriber {
    Channel(mpsc::Sender<FailoverEvent>),
    Callback(Callback),
}

/// A backend and the number of its calls still running (including calls
/// abandoned at a deadline).
pub(super) struct Backend {
    pub(super) name: String,
    pub(super) storage: Arc<dyn Storage>,
    pub(super) running: Arc<AtomicUsize>,
    /// Set when the pair fails over from this backend: calls still running
    /// on it are abandoned at once, and their operations retried on the
    /// new active, rather than each waiting out its own deadline.
    pub(super) set_aside: AtomicBool,
}

impl Backend {
    pub(super) fn new(name: String, storage: Arc<dyn Storage>) -> Arc<Self> {
        Arc::new(Backend {
            name,
            storage,
            running: Arc::new(AtomicUsize::new(0)),
            set_aside: AtomicBool::new(false),
        })
    }

    /// Marks the backend as one the pair failed over from.
    pub(super) fn set_aside(&self) {
        self.set_aside.store(true, Ordering::SeqCst);
    }

    /// Whether the pair failed over from this backend.
    pub(super) fn is_set_aside(&self) -> bool {
        self.set_aside.load(Ordering::SeqCst)
    }

    pub(super) fn is(&self, storage: &Arc<dyn Storage>) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.storage), Arc::as_ptr(storage))
    }

    pub(super) fn start_call(&self) -> CallGuard {
        self.running.fetch_add(1, Ordering::SeqCst);
        CallGuard(Arc::clone(&self.running))
    }
}

/// Counts one backend call as running until dropped.
pub(super) struct CallGuard(Arc<AtomicUsize>);

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

pub(super) enum Gate {
    Open,
    Relocating,
    Resyncing,
    Down { reason: String, holder: String },
}

pub(super) struct State {
    pub(super) gate: Gate,
    pub(super) epoch: u64,
    pub(super) active: Arc<Backend>,
    pub(super) standby: Option<Arc<Backend>>,
    pub(super) failed: Vec<Arc<Backend>>,
    pub(super) syncing: Option<Syncing>,
    pub(super) next_sync: u64,
    pub(super) ops: BTreeMap<u64, OpRecord>,
    pub(super) next_op: u64,
    /// Backend calls made by operations right now (not abandoned ones).
    pub(super) running: usize,
    /// Shared mode: when the store was last found slow on every path.
    pub(super) slow: Option<SlowVerdict>,
    pub(super) counters: Counters,
}

/// The store was found slow on every path at `at`, in `epoch`.
pub(super) struct SlowVerdict {
    pub(super) epoch: u64,
    pub(super) at: Instant,
}

pub(super) struct Syncing {
    pub(super) id: u64,
    pub(super) backend: Arc<Backend>,
    /// Keys written on the active since the re-sync started.
    pub(super) dirty: BTreeSet<String>,
}

pub(super) struct OpRecord {
    pub(super) op: OpKind,
    pub(super) key: String,
    pub(super) started: Instant,
    pub(super) attempts: u32,
    pub(super) state: RecordState,
}

pub(super) enum RecordState {
    AtGate,
    Running(Arc<Backend>),
    Retrying,
    SlowStore(Arc<Backend>),
}

#[derive(Default)]
pub(super) struct Counters {
    pub(super) operations: u64,
    pub(super) failovers: u64,
    pub(super) failbacks: u64,
    pub(super) standby_losses: u64,
    pub(super) paused_operations: u64,
    pub(super) slow_store_waits: u64,
    pub(super) slow_store_operations: u64,
    pub(super) total_pause: Duration,
    pub(super) max_pause: Duration,
    pub(super) total_relocation: Duration,
    pub(super) max_relocation: Duration,
}

impl State {
    pub(super) fn new(active: Arc<Backend>) -> Self {
        State {
            gate: Gate::Open,
            epoch: 0,
            active,
            standby: None,
            failed: Vec::new(),
            syncing: None,
            next_sync: 0,
            ops: BTreeMap::new(),
            next_op: 0,
            running: 0,
            slow: None,
            counters: Counters::default(),
        }
    }

    pub(super) fn down_error(&self) -> Option<Error> {
        match &self.gate {
            Gate::Down { reason, holder } => Some(Error::StorageDown {
                reason: reason.clone(),
                holder: holder.clone(),
            }),
            _ => None,
        }
    }

    pub(super) fn is_syncing(&self, id: u64) -> bool {
        self.syncing.as_ref().is_some_and(|s| s.id == id)
    }
}
