//! Round trips through the public API: many serde shapes and a composite
//! state, on memory and filesystem storage, at several compression levels
//! with small chunks; type mismatches; builder validation; and a reopen of
//! a filesystem store by a new checkpointer.

use ckpt::{Capture, Checkpointer, Error, FsStorage, MemStorage, Restore, Scheme, State};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::time::Duration;
use tempfile::TempDir;

const CHUNK_SIZE: usize = 4096;
const LEVELS: [i32; 4] = [0, 1, 19, -5];

#[derive(Debug, Clone, Copy)]
enum Backend {
    Mem,
    Fs,
}

/// A checkpointer on a fresh store; the `TempDir` (if any) must outlive it.
fn open(backend: Backend, level: i32) -> (Checkpointer, Option<TempDir>) {
    let builder = Checkpointer::builder()
        .compression_level(level)
        .chunk_size(CHUNK_SIZE)
        .keep_last(2);
    match backend {
        Backend::Mem => (builder.storage(MemStorage::new()).build().unwrap(), None),
        Backend::Fs => {
            let dir = tempfile::tempdir().unwrap();
            let ck = builder
                .storage(FsStorage::open(dir.path()).unwrap())
                .build()
                .unwrap();
            (ck, Some(dir))
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Plain {
    id: u64,
    name: String,
    ratio: f64,
    flags: Vec<bool>,
    tuple: (i8, u16, i32, i128),
    unit: (),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Shape {
    Empty,
    Circle(f64),
    Labelled(u8, String),
    Tree {
        weight: f32,
        children: Vec<Shape>,
        parent: Option<Box<Shape>>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct UnitStruct;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
struct Empty {
    text: String,
    bytes: Vec<u8>,
    map: BTreeMap<String, u8>,
    maybe: Option<u64>,
}

fn shapes() -> Vec<Shape> {
    vec![
        Shape::Empty,
        Shape::Circle(-0.0),
        Shape::Circle(f64::MAX),
        Shape::Labelled(255, "label ✓".to_owned()),
        Shape::Tree {
            weight: 1.5,
            children: vec![Shape::Empty, Shape::Circle(f64::MIN_POSITIVE)],
            parent: Some(Box::new(Shape::Tree {
                weight: -2.0,
                children: vec![],
                parent: None,
            })),
        },
    ]
}

fn unicode() -> Vec<String> {
    [
        "héllo wörld",
        "日本語のテキスト",
        "emoji 🦀🔥👩‍👩‍👧",
        "עברית mixed with English",
        "combining e\u{301} and NUL \u{0} inside",
        "",
        "\u{10FFFF}\u{FEFF}",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}

fn nested() -> Option<Vec<Option<Vec<i16>>>> {
    Some(vec![
        None,
        Some(vec![]),
        Some(vec![i16::MIN, -1, 0, 1, i16::MAX]),
        Some((0..3000).map(|i| (i * 7 - 9000) as i16).collect()),
    ])
}

fn btree() -> BTreeMap<String, Vec<u32>> {
    (0..500)
        .map(|i| (format!("key-{i:04}-ключ"), (0..i % 17).collect()))
        .collect()
}

fn hash_map() -> HashMap<u64, String> {
    (0..2000u64)
        .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15), format!("v{i}")))
        .collect()
}

/// About 20 MB of floats: half smooth (compressible), half noisy.
fn big_floats() -> Vec<f64> {
    const LEN: usize = 20 << 20 >> 3;
    (0..LEN)
        .map(|i| {
            if (i / 4096) % 2 == 0 {
                (i / 64) as f64 * 0.25
            } else {
                (i as f64 * 0.001).sin() * 1e3
            }
        })
        .collect()
}

/// Checkpoints `value` at `step`, restores it in the same checkpointer and
/// checks both the value and what the commit reported.
fn check<T>(ck: &mut Checkpointer, step: u64, value: &T, what: &str) -> ckpt::CheckpointInfo
where
    T: Serialize + DeserializeOwned + PartialEq + Debug + Clone,
{
    let mut state = value.clone();
    let committed = ck
        .checkpoint(step, &mut state)
        .unwrap()
        .expect("a synchronous scheme commits")
        .clone();
    assert_eq!(committed.info.step, step, "{what}");
    assert_eq!(committed.info.chain_len, 1, "{what}");
    assert_eq!(committed.info.scheme, Some(Scheme::Full), "{what}");
    assert!(
        committed.bytes_written >= committed.info.stored_bytes,
        "{what}: {committed:?}"
    );
    let restored = ck
        .restore_latest::<T>()
        .unwrap()
        .unwrap_or_else(|| panic!("{what}: nothing restored"));
    assert_eq!(restored.step, step, "{what}");
    assert_eq!(restored.info, committed.info, "{what}");
    assert!(
        restored.skipped.is_empty(),
        "{what}: {:?}",
        restored.skipped
    );
    assert!(restored.state == *value, "{what}: restored value differs");
    committed.info
}

fn all_shapes(backend: Backend, level: i32, big: &[f64]) {
    let (mut ck, _dir) = open(backend, level);
    let what = |name: &str| format!("{name} on {backend:?} at level {level}");
    let mut step = 0;
    let mut next = || {
        step += 1;
        step
    };
    let plain = Plain {
        id: u64::MAX,
        name: "plain".to_owned(),
        ratio: std::f64::consts::PI,
        flags: vec![true, false, true],
        tuple: (i8::MIN, u16::MAX, -7, i128::MIN),
        unit: (),
    };
    check(&mut ck, next(), &plain, &what("struct"));
    check(&mut ck, next(), &shapes(), &what("enums with data"));
    check(&mut ck, next(), &btree(), &what("BTreeMap"));
    check(&mut ck, next(), &hash_map(), &what("HashMap"));
    check(&mut ck, next(), &nested(), &what("nested Option/Vec"));
    check(&mut ck, next(), &unicode(), &what("unicode strings"));
    // Empty values: some encode to zero bytes, so a checkpoint may have
    // no chunk at all.
    let info = check(&mut ck, next(), &(), &what("unit"));
    assert_eq!(info.logical_bytes, 0, "{}", what("unit"));
    check(&mut ck, next(), &UnitStruct, &what("unit struct"));
    check(&mut ck, next(), &Empty::default(), &what("empty fields"));
    check(&mut ck, next(), &Vec::<u64>::new(), &what("empty Vec"));
    check(&mut ck, next(), &String::new(), &what("empty String"));
    check(&mut ck, next(), &None::<Vec<u8>>, &what("None"));
    check(
        &mut ck,
        next(),
        &HashMap::<String, String>::new(),
        &what("empty HashMap"),
    );

    let info = check(&mut ck, next(), &big.to_vec(), &what("20 MB Vec<f64>"));
    let logical = big.len() as u64 * 8;
    assert!(info.logical_bytes >= logical, "{info:?}");
    if level == 0 {
        assert!(info.stored_bytes >= info.logical_bytes, "{info:?}");
    } else {
        // Half of the data is highly compressible.
        assert!(info.stored_bytes < info.logical_bytes * 3 / 4, "{info:?}");
    }
    // keep_last(2): only the last two checkpoints remain listed.
    let listing = ck.list().unwrap();
    assert_eq!(listing.checkpoints.len(), 2, "{}", what("listing"));
    assert!(listing.unreadable.is_empty());
    assert_eq!(listing.checkpoints[1], info);
    ck.finish().unwrap();
}

#[test]
fn serde_shapes_round_trip_on_every_backend_and_level() {
    let big = big_floats();
    for backend in [Backend::Mem, Backend::Fs] {
        for level in LEVELS {
            all_shapes(backend, level, &big);
        }
    }
}

/// An application state stored as several segments.
#[derive(Debug, Clone, PartialEq)]
struct Model {
    meta: Plain,
    weights: Vec<f32>,
    vocabulary: BTreeMap<String, u32>,
    history: Vec<Shape>,
    scratch: Vec<u8>,
}

impl State for Model {
    fn capture(&mut self, capture: &mut Capture) -> ckpt::Result<()> {
        capture.serde("meta", &self.meta)?;
        capture.serde("weights ⚖", &self.weights)?;
        capture.serde("vocabulary", &self.vocabulary)?;
        capture.serde("history", &self.history)?;
        capture.serde("scratch", &self.scratch)
    }

    fn restore(restore: &mut Restore) -> ckpt::Result<Self> {
        Ok(Model {
            meta: restore.serde("meta")?,
            weights: restore.serde("weights ⚖")?,
            vocabulary: restore.serde("vocabulary")?,
            history: restore.serde("history")?,
            scratch: restore.serde("scratch")?,
        })
    }
}

fn model(step: u64) -> Model {
    Model {
        meta: Plain {
            id: step,
            name: format!("model at step {step} — ok"),
            ratio: step as f64 / 3.0,
            flags: vec![step.is_multiple_of(2); (step % 5) as usize],
            tuple: (1, 2, 3, i128::from(step)),
            unit: (),
        },
        weights: (0..100_000)
            .map(|i| (i as f32 * 0.01 + step as f32).cos())
            .collect(),
        vocabulary: (0..300)
            .map(|i| (format!("w{i}"), i * step as u32))
            .collect(),
        history: shapes(),
        scratch: Vec::new(),
    }
}

#[test]
fn composite_state_round_trips_as_one_checkpoint() {
    for backend in [Backend::Mem, Backend::Fs] {
        for level in LEVELS {
            let (mut ck, _dir) = open(backend, level);
            for step in [10, 20, 30] {
                let mut state = model(step);
                ck.checkpoint(step, &mut state).unwrap();
            }
            let restored = ck.restore_latest::<Model>().unwrap().unwrap();
            assert_eq!(restored.step, 30);
            assert!(restored.state == model(30), "{backend:?} level {level}");
            assert!(restored.info.logical_bytes > 400_000);
        }
    }
}

fn expect_mismatch<T: State>(ck: &mut Checkpointer, step: u64, segment: &str) {
    match ck.restore_latest::<T>() {
        Err(Error::StateMismatch {
            step: s,
            segment: seg,
            reason,
            ..
        }) => {
            assert_eq!(s, step);
            assert_eq!(seg, segment);
            assert!(!reason.is_empty());
        }
        other => panic!(
            "restoring as {} gave {:?}, not StateMismatch",
            std::any::type_name::<T>(),
            other.map(|r| r.map(|r| r.step))
        ),
    }
}

#[test]
fn restoring_into_the_wrong_type_is_a_state_mismatch() {
    let (mut ck, _dir) = open(Backend::Mem, 1);
    // An invalid bool byte.
    ck.checkpoint(1, &mut "not a bool".to_owned()).unwrap();
    expect_mismatch::<bool>(&mut ck, 1, ckpt::DEFAULT_SEGMENT);
    // Bytes left over.
    ck.checkpoint(2, &mut (7u64, 8u64, 9u64)).unwrap();
    expect_mismatch::<u64>(&mut ck, 2, ckpt::DEFAULT_SEGMENT);
    // Too few bytes.
    ck.checkpoint(3, &mut 5u8).unwrap();
    expect_mismatch::<Plain>(&mut ck, 3, ckpt::DEFAULT_SEGMENT);
    // A serde state where a composite one is expected, and the reverse.
    expect_mismatch::<Model>(&mut ck, 3, "meta");
    ck.checkpoint(4, &mut model(4)).unwrap();
    expect_mismatch::<Plain>(&mut ck, 4, ckpt::DEFAULT_SEGMENT);
    // The right type still restores: a mismatch damages nothing.
    let restored = ck.restore_latest::<Model>().unwrap().unwrap();
    assert!(restored.state == model(4));
}

/// Two segments under one name are refused at capture, and the refusal
/// does not poison the checkpointer.
#[test]
fn duplicate_segment_names_are_refused_without_poisoning() {
    struct Twice;
    impl State for Twice {
        fn capture(&mut self, capture: &mut Capture) -> ckpt::Result<()> {
            capture.serde("same", &1u8)?;
            capture.serde("same", &2u8)
        }
        fn restore(_: &mut Restore) -> ckpt::Result<Self> {
            Ok(Twice)
        }
    }
    let (mut ck, _dir) = open(Backend::Mem, 1);
    match ck.checkpoint(1, &mut Twice) {
        Err(Error::Serialize { segment, .. }) => assert_eq!(segment, "same"),
        other => panic!("expected a Serialize error, got {other:?}"),
    }
    assert!(ck.list().unwrap().checkpoints.is_empty());
    ck.checkpoint(2, &mut 42u32).unwrap();
    assert_eq!(ck.restore_latest::<u32>().unwrap().unwrap().state, 42);
}

fn expect_invalid(result: ckpt::Result<Checkpointer>, option: &str) {
    match result {
        Err(Error::InvalidConfig { option: o, reason }) => {
            assert_eq!(o, option, "reason: {reason}");
            assert!(!reason.is_empty());
            let message = Error::InvalidConfig { option: o, reason }.to_string();
            assert!(message.contains(option), "{message}");
        }
        Err(other) => panic!("{option}: expected InvalidConfig, got {other}"),
        Ok(_) => panic!("{option}: an invalid option was accepted"),
    }
}

#[test]
fn invalid_builder_options_name_the_option() {
    let with_store = || Checkpointer::builder().storage(MemStorage::new());
    expect_invalid(with_store().keep_last(0).build(), "keep_last");
    expect_invalid(with_store().every_steps(0).build(), "every_steps");
    expect_invalid(with_store().every(Duration::ZERO).build(), "every");
    expect_invalid(
        with_store().compression_level(99).build(),
        "compression_level",
    );
    expect_invalid(
        with_store().compression_level(-1_000_000).build(),
        "compression_level",
    );
    expect_invalid(with_store().chunk_size(1).build(), "chunk_size");
    expect_invalid(with_store().chunk_size(4095).build(), "chunk_size");
    expect_invalid(with_store().chunk_size(usize::MAX).build(), "chunk_size");
    expect_invalid(with_store().threads(0).build(), "threads");
    expect_invalid(Checkpointer::builder().build(), "storage");
    expect_invalid(Checkpointer::builder().keep_last(0).build(), "storage");
    // The edges of the ranges are accepted.
    with_store()
        .keep_last(1)
        .every_steps(1)
        .compression_level(22)
        .chunk_size(4096)
        .threads(1)
        .build()
        .unwrap();
    with_store()
        .compression_level(-5)
        .chunk_size(256 << 20)
        .build()
        .unwrap();
}

#[test]
fn a_new_checkpointer_on_the_same_directory_restores() {
    let dir = tempfile::tempdir().unwrap();
    let build = || {
        Checkpointer::builder()
            .storage(FsStorage::open(dir.path())?)
            .chunk_size(CHUNK_SIZE)
            .compression_level(3)
            .keep_last(2)
            .build()
    };
    let mut first = build().unwrap();
    assert!(first.restore_latest::<Model>().unwrap().is_none());
    let mut seqs = Vec::new();
    for step in 1..=3 {
        seqs.push(
            first
                .checkpoint(step, &mut model(step))
                .unwrap()
                .expect("a synchronous scheme commits")
                .info
                .seq,
        );
    }
    // The directory is locked while the first one lives.
    assert!(matches!(build(), Err(Error::Locked { .. })));
    first.finish().unwrap();

    let mut second = build().unwrap();
    let restored = second.restore_latest::<Model>().unwrap().unwrap();
    assert_eq!(restored.step, 3);
    assert!(restored.state == model(3));
    assert_eq!(restored.info.seq, seqs[2]);
    // The second one continues the sequence.
    let committed = second
        .checkpoint(4, &mut model(4))
        .unwrap()
        .expect("a synchronous scheme commits")
        .clone();
    assert!(committed.info.seq > seqs[2], "{committed:?}");
    assert_eq!(committed.retention.manifests_deleted, 1);
    drop(second);

    let mut third = build().unwrap();
    let restored = third.restore_latest::<Model>().unwrap().unwrap();
    assert_eq!(restored.step, 4);
    assert!(restored.state == model(4));
    let steps: Vec<u64> = third
        .list()
        .unwrap()
        .checkpoints
        .iter()
        .map(|c| c.step)
        .collect();
    assert_eq!(steps, [3, 4]);
}

/// "Newest" is the checkpoint committed last, even when the application
/// restarts its step numbers.
#[test]
fn newest_means_committed_last_even_when_steps_go_back() {
    let (mut ck, _dir) = open(Backend::Fs, 1);
    ck.checkpoint(1_000, &mut "late".to_owned()).unwrap();
    ck.checkpoint(3, &mut "restarted".to_owned()).unwrap();
    let restored = ck.restore_latest::<String>().unwrap().unwrap();
    assert_eq!((restored.step, restored.state.as_str()), (3, "restarted"));
    // keep_last(2) retains both; a third commit expires the step-1000 one.
    ck.checkpoint(4, &mut "again".to_owned()).unwrap();
    let steps: Vec<u64> = ck
        .list()
        .unwrap()
        .checkpoints
        .iter()
        .map(|c| c.step)
        .collect();
    assert_eq!(steps, [3, 4]);
}
