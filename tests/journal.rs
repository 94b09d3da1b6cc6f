//! The store's journal: what an adaptive checkpointer records across a
//! crash, a restore and retention, read back with `Reader::journal`; its
//! bound; and damaged journal objects.

use ckpt::model::{Event, Policy};
use ckpt::storage::Storage;
use ckpt::{
    Checkpointer, FsStorage, JOURNAL_MAX_RECORDS, JournalEvent, JournalRecord, Maintenance,
    MemStorage, PagedVec, Reader, Scheme,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Seen = Arc<Mutex<Vec<Event>>>;

/// An adaptive checkpointer over full and copy-on-write on `dir`, keeping
/// 3 checkpoints, whose events are appended to `seen`.
fn open(dir: &std::path::Path, seen: &Seen) -> Checkpointer {
    let seen = seen.clone();
    Checkpointer::builder()
        .storage(FsStorage::open(dir).expect("store"))
        .policy(Policy::adaptive().allow(&[Scheme::Full, Scheme::CopyOnWrite]))
        .keep_last(3)
        .on_event(move |e| seen.lock().unwrap().push(e.clone()))
        .build()
        .expect("valid")
}

/// Runs `n` steps of a little computation on `grid`, checkpointing each,
/// from `first`.
fn steps(ck: &mut Checkpointer, grid: &mut PagedVec<u64>, first: u64, n: u64) {
    for step in first..first + n {
        for page in 0..4 {
            grid[page * 1024 + step as usize % 1024] += step;
        }
        std::thread::sleep(Duration::from_millis(1));
        ck.checkpoint(step, grid).expect("checkpoint");
    }
}

/// Whether a journal record says what `event` says (the journal keeps
/// timings, sizes, plans and reasons).
fn same(record: &JournalRecord, event: &Event) -> bool {
    match (&record.event, event) {
        (JournalEvent::Checkpoint { event: r, .. }, Event::Checkpoint(e)) => {
            (
                r.step,
                r.scheme,
                r.stall,
                r.persist,
                r.bytes_written,
                r.chain_length,
            ) == (
                e.step,
                e.scheme,
                e.stall,
                e.persist,
                e.bytes_written,
                e.chain_length,
            )
        }
        (JournalEvent::Restore(r), Event::Restore(e)) => {
            (r.step, r.duration, r.chain_length) == (e.step, e.duration, e.chain_length)
        }
        (JournalEvent::Restart(r), Event::Restart(e)) => r.class == e.class,
        (JournalEvent::StorageError(r), Event::StorageError(e)) => r.op == e.op,
        (JournalEvent::Failover(r), Event::Failover(e)) => r.pause == e.pause,
        (JournalEvent::Decision(r), Event::Decision(e)) => r.step == e.step,
        _ => false,
    }
}

#[test]
fn the_journal_holds_every_event_across_a_crash_a_restore_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let seen: Seen = Arc::default();
    let mut grid: PagedVec<u64> = PagedVec::from_slice_with_page_len(&vec![0; 64 * 1024], 1024);
    let mut ck = open(dir.path(), &seen);
    steps(&mut ck, &mut grid, 0, 40);
    ck.flush().expect("flush");
    let flushed = seen.lock().unwrap().len();
    drop(ck); // a crash: no finish()

    let mut ck = open(dir.path(), &seen);
    let restored = ck
        .restore_latest::<PagedVec<u64>>()
        .expect("restore")
        .expect("a checkpoint");
    let mut grid = restored.state;
    steps(&mut ck, &mut grid, restored.step + 1, 30);
    ck.finish().expect("finish");

    // Retention ran (keep 3) and left the journal alone.
    let reader = Reader::open_dir(dir.path()).unwrap();
    assert_eq!(reader.list().unwrap().checkpoints.len(), 3);
    let journal = reader.journal().expect("journal");
    assert!(
        journal
            .windows(2)
            .all(|w| w[0].seq < w[1].seq && w[0].at <= w[1].at),
        "records are in order"
    );
    // Every event of the first run up to its flush, and every event of
    // the second (which finished), is in the journal, in order; what the
    // first run did after its flush died with it (or was saved with the
    // model).
    let seen: Vec<Event> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|e| !matches!(e, Event::RestoreProgress(_)))
        .cloned()
        .collect();
    let restart = seen
        .iter()
        .position(|e| matches!(e, Event::Restart(_)))
        .expect("the crash is seen at start-up");
    let expected: Vec<&Event> = seen[..flushed].iter().chain(&seen[restart..]).collect();
    let mut records = journal.iter();
    for event in &expected {
        assert!(
            records.any(|r| same(r, event)),
            "{event:?} is not in the journal (in order)"
        );
    }
    assert!(journal.len() <= seen.len());
    let count = |f: fn(&JournalEvent) -> bool| journal.iter().filter(|r| f(&r.event)).count();
    assert!(count(|e| matches!(e, JournalEvent::Restart(_))) == 1);
    assert!(count(|e| matches!(e, JournalEvent::Restore(_))) == 1);
    assert!(count(|e| matches!(e, JournalEvent::Checkpoint { .. })) >= 70);
    // With nothing learnt the policy begins with a trial of copy-on-write
    // (the scheme that blocks least): a decision, and its checkpoints.
    assert!(count(|e| matches!(e, JournalEvent::Decision(_))) >= 1);
    assert!(
        count(|e| matches!(e,
        JournalEvent::Checkpoint { event, .. } if event.scheme == Scheme::CopyOnWrite))
            >= 1
    );
    // Decisions carry the plan, interval and reason the policy gave.
    for record in &journal {
        if let JournalEvent::Decision(d) = &record.event {
            assert!(!d.reason.is_empty(), "{d:?}");
            assert!(d.interval > Duration::ZERO, "{d:?}");
        }
        if let JournalEvent::Checkpoint { interval, event } = &record.event {
            assert!(*interval > Duration::ZERO && event.persist >= event.stall);
        }
    }
    // Retention by hand (`ckpt gc`) leaves it alone too.
    let collected = Maintenance::open(FsStorage::open(dir.path()).unwrap())
        .unwrap()
        .keep_last(1)
        .unwrap();
    assert!(collected.deleted.iter().all(|k| !k.starts_with("journal/")));
    assert_eq!(reader.journal().unwrap(), journal);
    // The journal holds no state bytes: each record is small.
    let stored: usize = FsStorage::open_read_only(dir.path())
        .unwrap()
        .list("journal/")
        .unwrap()
        .iter()
        .map(|k| {
            FsStorage::open_read_only(dir.path())
                .unwrap()
                .get(k)
                .unwrap()
                .len()
        })
        .sum();
    assert!(stored < 200 * journal.len(), "{stored} bytes");
}

#[test]
fn the_journal_is_bounded_and_keeps_the_newest_records() {
    let store = MemStorage::new();
    let mut ck = Checkpointer::builder()
        .storage(store.clone())
        .policy(Policy::fixed())
        .keep_last(1)
        .build()
        .expect("valid");
    let total = JOURNAL_MAX_RECORDS as u64 + 600;
    let mut state = vec![0u8; 16];
    for step in 0..total {
        state[0] = step as u8;
        ck.checkpoint(step, &mut state).expect("checkpoint");
    }
    ck.finish().expect("finish");
    let objects = store.list("journal/").unwrap();
    assert!(objects.len() <= 64, "{} journal objects", objects.len());
    let journal = Reader::new(store.clone()).journal().unwrap();
    assert!(journal.len() <= JOURNAL_MAX_RECORDS);
    assert!(
        journal.len() >= JOURNAL_MAX_RECORDS - 256,
        "{}",
        journal.len()
    );
    let steps: Vec<u64> = journal
        .iter()
        .filter_map(|r| match &r.event {
            JournalEvent::Checkpoint { event, .. } => Some(event.step),
            _ => None,
        })
        .collect();
    assert_eq!(steps.last(), Some(&(total - 1)), "the newest is kept");
    assert!(steps[0] >= 600, "the oldest were deleted: {}", steps[0]);
    assert!(steps.windows(2).all(|w| w[1] == w[0] + 1), "no gaps");
}

#[test]
fn a_damaged_journal_object_is_skipped_by_readers_and_writers() {
    let store = MemStorage::new();
    let run = |first: u64| {
        let mut ck = Checkpointer::builder()
            .storage(store.clone())
            .build()
            .expect("a damaged journal never stops a checkpointer");
        let mut state = vec![1u32; 100];
        for step in first..first + 5 {
            ck.checkpoint(step, &mut state).expect("checkpoint");
        }
        ck.finish().expect("finish");
    };
    run(0);
    let objects = store.list("journal/").unwrap();
    assert_eq!(objects.len(), 1);
    let before = Reader::new(store.clone()).journal().unwrap().len();
    assert!(before >= 5);
    // Garbage, a truncation and a foreign key.
    let good = store.get(&objects[0]).unwrap();
    store.put(&objects[0], &good[..good.len() / 2]).unwrap();
    store
        .put("journal/00000000000000000005", b"garbage")
        .unwrap();
    store.put("journal/notes.txt", b"not ours").unwrap();
    assert!(Reader::new(store.clone()).journal().unwrap().is_empty());
    run(5);
    let journal = Reader::new(store.clone()).journal().unwrap();
    assert!(journal.len() >= 5, "the new run's records are read");
    assert!(
        journal.iter().any(|r| matches!(&r.event,
            JournalEvent::Checkpoint { event, .. } if event.step == 9)),
        "{journal:?}"
    );
}
