//! The `tracing` feature: a collecting subscriber records every span and
//! event the library reports while it checkpoints (full and
//! copy-on-write), restores (past a damaged checkpoint), drains to a lower
//! tier, fails over, and lets its policy decide; the expected spans and
//! events are there with their fields, and no field holds the state's
//! bytes.

use ckpt::model::Policy;
use ckpt::storage::{FailoverMode, FailoverStorage, Fault, FaultyStorage};
use ckpt::{Capture, Checkpointer, MemStorage, PagedVec, Reader, Restore, Scheme, State, Storage};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io::ErrorKind;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// Written into the state, as a serde string and as the bytes of a paged
/// vector: no span or event may ever show it.
const MARKER: &str = "SECRET-STATE-MARKER";

/// A span or an event as the subscriber saw it.
#[derive(Debug, Clone)]
struct Seen {
    span: bool,
    name: String,
    level: Level,
    /// The message, for an event.
    message: String,
    fields: BTreeMap<String, String>,
    /// The name of the span it was created in (or given as its parent).
    parent: Option<String>,
    thread: Option<String>,
}

impl Seen {
    fn field(&self, name: &str) -> &str {
        self.fields
            .get(name)
            .unwrap_or_else(|| panic!("{} has no field {name}: {self:?}", self.name))
    }

    fn number(&self, name: &str) -> u64 {
        self.field(name)
            .parse()
            .unwrap_or_else(|_| panic!("{name} of {} is not a number: {self:?}", self.name))
    }
}

/// Every span and event, in order; spans are updated by `record`.
#[derive(Default)]
struct Log {
    seen: Vec<Seen>,
    /// Span id to its index in `seen`.
    spans: BTreeMap<u64, usize>,
}

static LOG: Mutex<Log> = Mutex::new(Log {
    seen: Vec::new(),
    spans: BTreeMap::new(),
});

fn log() -> MutexGuard<'static, Log> {
    LOG.lock().unwrap_or_else(PoisonError::into_inner)
}

thread_local! {
    /// Spans entered on this thread, innermost last.
    static ENTERED: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

/// The collecting subscriber: enabled at every level.
struct Collector {
    next_id: AtomicU64,
}

impl Collector {
    fn parent_of(&self, explicit: Option<&Id>, contextual: bool) -> Option<String> {
        let id = match explicit {
            Some(id) => Some(id.into_u64()),
            None if contextual => ENTERED.with(|e| e.borrow().last().copied()),
            None => None,
        }?;
        let log = log();
        let index = *log.spans.get(&id)?;
        Some(log.seen[index].name.clone())
    }

    fn seen(metadata: &Metadata<'_>, span: bool, parent: Option<String>) -> Seen {
        Seen {
            span,
            name: metadata.name().to_owned(),
            level: *metadata.level(),
            message: String::new(),
            fields: BTreeMap::new(),
            parent,
            thread: std::thread::current().name().map(str::to_owned),
        }
    }
}

impl Subscriber for Collector {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let parent = self.parent_of(span.parent(), span.is_contextual());
        let mut seen = Self::seen(span.metadata(), true, parent);
        span.record(&mut Fields(&mut seen.fields));
        let mut log = log();
        let index = log.seen.len();
        log.seen.push(seen);
        log.spans.insert(id, index);
        Id::from_u64(id)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut log = log();
        if let Some(&index) = log.spans.get(&span.into_u64()) {
            values.record(&mut Fields(&mut log.seen[index].fields));
        }
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let parent = self.parent_of(event.parent(), event.is_contextual());
        let mut seen = Self::seen(event.metadata(), false, parent);
        event.record(&mut Fields(&mut seen.fields));
        seen.message = seen.fields.remove("message").unwrap_or_default();
        log().seen.push(seen);
    }

    fn enter(&self, span: &Id) {
        ENTERED.with(|e| e.borrow_mut().push(span.into_u64()));
    }

    fn exit(&self, span: &Id) {
        ENTERED.with(|e| {
            let mut entered = e.borrow_mut();
            if let Some(at) = entered.iter().rposition(|id| *id == span.into_u64()) {
                entered.remove(at);
            }
        });
    }
}

/// Installs the collector (once: the library's threads need a global one)
/// and serialises the tests of this file, each starting with an empty log.
fn collecting() -> MutexGuard<'static, ()> {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    INSTALLED.get_or_init(|| {
        tracing::subscriber::set_global_default(Collector {
            next_id: AtomicU64::new(1),
        })
        .expect("no other subscriber in this test binary");
    });
    let guard = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    *log() = Log::default();
    guard
}

/// What was seen so far; fails if any field or message shows the marker.
fn seen() -> Vec<Seen> {
    let seen = log().seen.clone();
    for s in &seen {
        for (name, value) in s.fields.iter().chain([(&"message".to_owned(), &s.message)]) {
            assert!(
                !value.contains(MARKER) && !value.contains("SECRET"),
                "{} {name} shows the state: {value}",
                s.name
            );
        }
    }
    seen
}

fn spans<'a>(seen: &'a [Seen], name: &str) -> Vec<&'a Seen> {
    seen.iter().filter(|s| s.span && s.name == name).collect()
}

fn events<'a>(seen: &'a [Seen], message: &str) -> Vec<&'a Seen> {
    seen.iter()
        .filter(|s| !s.span && s.message == message)
        .collect()
}

/// A state with the marker in a serde segment and in a paged one.
struct Sim {
    note: String,
    field: PagedVec<u8>,
}

impl Sim {
    fn new() -> Self {
        let bytes: Vec<u8> = MARKER.bytes().cycle().take(64 << 10).collect();
        Sim {
            note: format!("{MARKER} in a string"),
            field: PagedVec::from_slice_with_page_len(&bytes, 4096),
        }
    }

    fn advance(&mut self) {
        if let Some(page) = self.field.page_mut(0) {
            page[0] = page[0].wrapping_add(1);
        }
    }
}

impl State for Sim {
    fn capture(&mut self, capture: &mut Capture) -> ckpt::Result<()> {
        capture.serde("note", &self.note)?;
        capture.paged("field", &mut self.field)
    }

    fn restore(restore: &mut Restore) -> ckpt::Result<Self> {
        Ok(Sim {
            note: restore.serde("note")?,
            field: restore.paged("field")?,
        })
    }
}

fn run(ck: &mut Checkpointer, steps: std::ops::Range<u64>) {
    let mut sim = Sim::new();
    for step in steps {
        ck.scope(step, &mut sim, Sim::advance).unwrap();
    }
}

#[test]
fn a_full_checkpoint_is_a_checkpoint_span_with_capture_and_persist_inside() {
    let _log = collecting();
    let mut ck = Checkpointer::builder()
        .storage(MemStorage::new())
        .scheme(Scheme::Full)
        .every_steps(1)
        .build()
        .unwrap();
    run(&mut ck, 0..3);
    ck.finish().unwrap();

    let seen = seen();
    let checkpoints = spans(&seen, "checkpoint");
    assert_eq!(checkpoints.len(), 3, "{seen:#?}");
    let last = checkpoints[2];
    assert_eq!(last.level, Level::INFO);
    assert_eq!(
        (
            last.number("step"),
            last.number("seq"),
            last.field("scheme")
        ),
        (2, 3, "full")
    );
    assert!(last.number("bytes_written") > 0, "{last:?}");
    assert_eq!(last.number("dirty_bytes"), 4096, "{last:?}");
    assert!(last.field("stall").ends_with('s'), "{last:?}");
    assert!(last.field("persist").ends_with('s'), "{last:?}");

    let capture = spans(&seen, "capture")[2];
    assert_eq!(capture.level, Level::DEBUG);
    assert_eq!(capture.parent.as_deref(), Some("checkpoint"));
    assert_eq!(
        (
            capture.number("segments"),
            capture.number("pages"),
            capture.number("dirty_pages")
        ),
        (2, 16, 1)
    );

    let persist = spans(&seen, "persist")[2];
    assert_eq!(persist.level, Level::DEBUG);
    assert_eq!(persist.parent.as_deref(), Some("checkpoint"));
    assert_eq!(persist.number("step"), 2);
    assert!(persist.number("packs") >= 1, "{persist:?}");
    assert_eq!(persist.number("bytes"), last.number("bytes_written"));
    assert!(persist.field("took").ends_with('s'), "{persist:?}");

    let committed = events(&seen, "checkpoint committed");
    assert_eq!(committed.len(), 3);
    assert_eq!(committed[2].level, Level::INFO);
    assert_eq!(committed[2].field("scheme"), "full");
    assert_eq!(committed[2].parent.as_deref(), Some("checkpoint"));
}

#[test]
fn a_copy_on_write_checkpoint_persists_on_its_thread_under_its_checkpoint() {
    let _log = collecting();
    let mut ck = Checkpointer::builder()
        .storage(MemStorage::new())
        .scheme(Scheme::CopyOnWrite)
        .every_steps(1)
        // Room for every capture: a scope defers a due checkpoint while
        // the persist queue is full.
        .max_in_flight(3)
        .build()
        .unwrap();
    run(&mut ck, 0..3);
    ck.finish().unwrap();

    let seen = seen();
    let checkpoints = spans(&seen, "checkpoint");
    assert_eq!(checkpoints.len(), 3);
    assert_eq!(checkpoints[0].field("scheme"), "copy-on-write");
    let persists = spans(&seen, "persist");
    assert_eq!(persists.len(), 3);
    for persist in persists {
        assert_eq!(persist.thread.as_deref(), Some("ckpt-persist"));
        assert_eq!(persist.parent.as_deref(), Some("checkpoint"));
        assert!(persist.number("bytes") > 0);
    }
    let committed = events(&seen, "checkpoint committed");
    assert_eq!(committed.len(), 3);
    assert_eq!(committed[0].field("scheme"), "copy-on-write");
    assert!(committed.iter().all(|c| c.number("bytes_written") > 0));
}

#[test]
fn a_restore_is_a_span_and_a_damaged_checkpoint_a_warning() {
    let _log = collecting();
    let store = MemStorage::new();
    let mut ck = Checkpointer::builder()
        .storage(store.clone())
        .scheme(Scheme::Incremental)
        .every_steps(1)
        .build()
        .unwrap();
    run(&mut ck, 0..3);
    ck.finish().unwrap();
    let newest = store.list("manifests/").unwrap().into_iter().max().unwrap();
    store.put(&newest, b"not a manifest").unwrap();
    *log() = Log::default();

    let mut ck = Checkpointer::builder()
        .storage(store.clone())
        .build()
        .unwrap();
    let restored = ck.restore_latest::<Sim>().unwrap().unwrap();
    assert_eq!((restored.step, restored.skipped.len()), (1, 1));
    assert!(restored.state.note.contains(MARKER));
    drop(ck);
    Reader::new(store).restore_latest::<Sim>().unwrap();

    let seen = seen();
    let restores = spans(&seen, "restore");
    assert_eq!(restores.len(), 2, "{seen:#?}");
    for restore in restores {
        assert_eq!(restore.level, Level::INFO);
        assert_eq!(restore.number("step"), 1);
        assert_eq!(restore.number("chain_len"), 2);
        assert!(restore.number("bytes_read") > 0, "{restore:?}");
        assert!(restore.field("took").ends_with('s'), "{restore:?}");
    }
    let skipped = events(&seen, "skipped a damaged checkpoint");
    assert_eq!(skipped.len(), 2, "{seen:#?}");
    assert_eq!(skipped[0].level, Level::WARN);
    assert_eq!(skipped[0].number("step"), 2);
    assert!(!skipped[0].field("error").is_empty());
}

#[test]
fn a_failover_is_a_warning_and_both_paths_down_an_error() {
    let _log = collecting();
    let a = Arc::new(FaultyStorage::new(MemStorage::new()));
    let b = Arc::new(FaultyStorage::new(MemStorage::new()));
    let store = FailoverStorage::builder(FailoverMode::Mirrored)
        .active("path-a", a.clone())
        .standby("path-b", b.clone())
        .build()
        .unwrap();
    let mut ck = Checkpointer::builder()
        .storage(store)
        .every_steps(1)
        .build()
        .unwrap();
    let mut sim = Sim::new();
    ck.scope(0, &mut sim, Sim::advance).unwrap();
    a.control()
        .fail_now(Fault::Error(ErrorKind::ConnectionReset));
    ck.scope(1, &mut sim, Sim::advance).unwrap();
    b.control()
        .fail_now(Fault::Error(ErrorKind::ConnectionRefused));
    assert!(ck.scope(2, &mut sim, Sim::advance).is_err());
    drop(ck);

    let seen = seen();
    let failover = events(&seen, "failover");
    assert_eq!(failover.len(), 1, "{seen:#?}");
    assert_eq!(failover[0].level, Level::WARN);
    assert_eq!(
        (failover[0].field("from"), failover[0].field("to")),
        ("path-a", "path-b")
    );
    assert!(failover[0].field("relocation").ends_with('s'));
    let down = events(&seen, "failover: both paths are down");
    assert_eq!(down.len(), 1, "{seen:#?}");
    assert_eq!(down[0].level, Level::ERROR);
    let poisoned = events(&seen, "checkpoint failed; the checkpointer is poisoned");
    assert_eq!(poisoned.len(), 1, "{seen:#?}");
    assert_eq!(poisoned[0].level, Level::WARN);
    assert!(
        events(&seen, "storage error")
            .iter()
            .all(|e| e.level == Level::WARN)
    );
}

#[test]
fn a_drain_to_a_lower_tier_is_a_span_with_what_it_copied() {
    let _log = collecting();
    let remote = MemStorage::new();
    let mut ck = Checkpointer::builder()
        .tier("local", MemStorage::new())
        .tier("remote", remote.clone())
        .drain_every(1)
        .every_steps(1)
        .build()
        .unwrap();
    run(&mut ck, 0..2);
    ck.flush().unwrap();
    ck.finish().unwrap();

    let seen = seen();
    let drains = spans(&seen, "drain");
    assert!(!drains.is_empty(), "{seen:#?}");
    assert_eq!(drains[0].level, Level::INFO);
    assert_eq!(drains[0].field("tier"), "remote");
    let drained = events(&seen, "drained");
    assert!(!drained.is_empty(), "{seen:#?}");
    assert_eq!(drained[0].parent.as_deref(), Some("drain"));
    assert!(drained[0].number("bytes_copied") > 0);
    assert!(drained[0].number("packs_copied") >= 1);
    assert!(!remote.list("manifests/").unwrap().is_empty());
}

#[test]
fn the_policy_s_decisions_are_info_events_with_their_reasons() {
    let _log = collecting();
    let mut ck = Checkpointer::builder()
        .storage(MemStorage::new())
        .scheme(Scheme::Incremental)
        .every_steps(1)
        .policy(Policy::adaptive().allow(&[Scheme::Full, Scheme::Incremental]))
        .build()
        .unwrap();
    run(&mut ck, 0..20);
    ck.finish().unwrap();

    let seen = seen();
    let decisions = events(&seen, "decision");
    assert!(!decisions.is_empty(), "{seen:#?}");
    for decision in decisions {
        assert_eq!(decision.level, Level::INFO);
        assert!(
            ["apply", "advise", "explore"].contains(&decision.field("kind")),
            "{decision:?}"
        );
        assert!(!decision.field("reason").is_empty());
        assert!(!decision.field("scheme").is_empty());
        assert!(decision.field("interval").ends_with('s'));
    }
}
