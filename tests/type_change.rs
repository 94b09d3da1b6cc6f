//! Restoring with another type than the one that was checkpointed: the
//! type of a state changed between two versions of a program, or the wrong
//! type was asked for. Every pair here is written as `A` and restored as
//! `B`; the answer must be [`Error::StateMismatch`] or a value of `B` (the
//! encoding is not self-describing, so some bytes of `A` are also valid
//! bytes of `B`), never a panic or an abort. A length field read from
//! bytes of another type can claim terabytes: the decoder must not trust
//! it with an allocation.
//!
//! Each pair is tried with fixed values chosen to make the decoder read a
//! huge length, then with proptest-random values of `A`;
//! `CKPT_FUZZ_CASES` sets the number of random values per pair.

use ckpt::{Checkpointer, Error, MemStorage};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt::Debug;

const CASES_ENV: &str = "CKPT_FUZZ_CASES";
const DEFAULT_CASES: u32 = 256;

/// Checkpoints `value` as `A`, restores it as `B`.
fn restore_as<A: Serialize, B: Serialize + DeserializeOwned + Debug>(value: &A) -> ckpt::Result<B> {
    let store = MemStorage::new();
    let mut ck = Checkpointer::builder()
        .storage(store.clone())
        .threads(1)
        .build()?;
    ck.checkpoint(7, &mut Wrapped(value))?;
    ck.finish()?;
    let mut ck = Checkpointer::builder().storage(store).threads(1).build()?;
    let restored = ck.restore_latest::<B>()?.expect("a checkpoint was taken");
    assert_eq!(restored.step, 7);
    Ok(restored.state)
}

/// Captures a borrowed serde value under the default segment name, as the
/// blanket `State` impl of `A` would.
struct Wrapped<'a, A>(&'a A);

impl<A: Serialize> ckpt::State for Wrapped<'_, A> {
    fn capture(&mut self, capture: &mut ckpt::Capture) -> ckpt::Result<()> {
        capture.serde(ckpt::DEFAULT_SEGMENT, self.0)
    }

    fn restore(_: &mut ckpt::Restore) -> ckpt::Result<Self> {
        unreachable!("only captured")
    }
}

/// Asserts that restoring `value` as `B` is a mismatch or a value.
fn check<A: Serialize + Debug, B: Serialize + DeserializeOwned + Debug>(value: &A) {
    match restore_as::<A, B>(value) {
        Ok(_) | Err(Error::StateMismatch { .. }) => {}
        Err(e) => panic!("{value:?} as {}: {e}", std::any::type_name::<B>()),
    }
}

/// Checks the fixed `values`, then random values of `A`.
fn pair<A, B>(values: &[A], strategy: impl Strategy<Value = A>)
where
    A: Serialize + Debug,
    B: Serialize + DeserializeOwned + Debug,
{
    for value in values {
        check::<A, B>(value);
    }
    let cases = std::env::var(CASES_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&strategy, |value| {
            check::<A, B>(&value);
            Ok(())
        })
        .unwrap();
}

/// Lengths that a decoder must not allocate: 1 TiB, 2^62, and the largest.
const HUGE: [u64; 3] = [1 << 40, 1 << 62, u64::MAX];

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    id: u64,
    data: Vec<u8>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Named {
    name: String,
    data: Vec<u8>,
}

fn record() -> impl Strategy<Value = Record> {
    (any::<u64>(), prop::collection::vec(any::<u8>(), 0..64))
        .prop_map(|(id, data)| Record { id, data })
}

/// The case that aborted the process: an id read as a string's length.
#[test]
fn a_struct_whose_first_field_became_a_string() {
    let fixed: Vec<Record> = HUGE
        .iter()
        .map(|&id| Record {
            id,
            data: vec![1, 2, 3],
        })
        .collect();
    pair::<Record, Named>(&fixed, record());
}

#[test]
fn numbers_as_a_string() {
    let fixed = [vec![HUGE[0]], vec![u64::MAX, 1, 2], vec![]];
    pair::<Vec<u64>, String>(&fixed, prop::collection::vec(any::<u64>(), 0..16));
}

#[test]
fn a_string_as_a_list_of_strings() {
    // The outer length becomes the list's, each byte an inner length.
    let fixed = ["\u{7f}".repeat(3), "x".repeat(300), "\u{10ffff}".into()];
    pair::<String, Vec<String>>(&fixed, any::<String>());
}

#[test]
fn a_number_as_bytes() {
    pair::<u64, Vec<u8>>(&HUGE, any::<u64>());
}

#[test]
fn a_number_as_a_string() {
    pair::<u64, String>(&HUGE, any::<u64>());
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Wide {
    Idle,
    Count(u64),
    Label(String),
    Point { x: u32, y: u32 },
}

#[derive(Debug, Serialize, Deserialize)]
enum Narrow {
    Idle,
    Label(String),
}

fn wide() -> impl Strategy<Value = Wide> {
    prop_oneof![
        Just(Wide::Idle),
        any::<u64>().prop_map(Wide::Count),
        any::<String>().prop_map(Wide::Label),
        (any::<u32>(), any::<u32>()).prop_map(|(x, y)| Wide::Point { x, y }),
    ]
}

#[test]
fn an_enum_with_fewer_variants() {
    let fixed = [Wide::Count(HUGE[0]), Wide::Point { x: 3, y: 1 }, Wide::Idle];
    pair::<Wide, Narrow>(&fixed, wide());
}

#[test]
fn a_number_as_an_optional_string() {
    pair::<(u8, u64), Option<String>>(
        &[(1, HUGE[0]), (1, u64::MAX), (0, 0)],
        (0..3u8, any::<u64>()),
    );
}

#[test]
fn an_option_as_a_number() {
    pair::<Option<Vec<u64>>, u64>(
        &[Some(vec![HUGE[0]]), None],
        proptest::option::of(prop::collection::vec(any::<u64>(), 0..4)),
    );
}

#[test]
fn a_map_as_a_list_of_pairs() {
    let fixed: Vec<HashMap<String, u64>> = vec![
        [("a".to_owned(), HUGE[0])].into_iter().collect(),
        [("bb".to_owned(), u64::MAX), ("c".to_owned(), 1)]
            .into_iter()
            .collect(),
    ];
    pair::<HashMap<String, u64>, Vec<(u64, String)>>(
        &fixed,
        prop::collection::hash_map(any::<String>(), any::<u64>(), 0..8),
    );
}

#[derive(Debug, Serialize, Deserialize)]
struct Inner {
    a: u64,
    b: Vec<u16>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Outer {
    inner: Inner,
    tag: String,
    more: Vec<Inner>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Inner2 {
    b: Vec<String>,
    a: u8,
}

#[derive(Debug, Serialize, Deserialize)]
struct Outer2 {
    inner: Inner2,
    tag: u64,
    more: HashMap<String, Inner2>,
}

fn inner() -> impl Strategy<Value = Inner> {
    (any::<u64>(), prop::collection::vec(any::<u16>(), 0..8)).prop_map(|(a, b)| Inner { a, b })
}

#[test]
fn nested_structs_whose_fields_changed() {
    let fixed = [Outer {
        inner: Inner {
            a: 1,
            b: vec![253, 0xffff, 0xffff, 0xffff, 0xffff],
        },
        tag: "t".into(),
        more: vec![Inner {
            a: HUGE[0],
            b: vec![],
        }],
    }];
    let strategy = (
        inner(),
        any::<String>(),
        prop::collection::vec(inner(), 0..4),
    )
        .prop_map(|(inner, tag, more)| Outer { inner, tag, more });
    pair::<Outer, Outer2>(&fixed, strategy);
}

/// Same shape, another element type: every random value decodes or is a
/// mismatch, and when it decodes, it is a value of the new type.
#[test]
fn numbers_of_another_width() {
    pair::<Vec<u64>, Vec<u16>>(
        &[vec![HUGE[0]], vec![70_000]],
        prop::collection::vec(any::<u64>(), 0..16),
    );
}
