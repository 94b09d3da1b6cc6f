//! How the model meets a constraint and a changed world: plans over the
//! memory budget, a workload that changes, storage that gets slower.

use super::*;

/// Copy-on-write whose background persist takes seconds while much of the
/// state changes every interval: it holds a good part of the state twice.
/// A budget below that removes it from the candidates; none, or a larger
/// one, keeps it.
#[test]
fn a_memory_budget_removes_plans_that_would_exceed_it() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut m = model(1);
    feed_full(&mut m, &mut rng, 6, 10.0);
    for _ in 0..6 {
        m.observe(&event(
            Scheme::CopyOnWrite,
            10.0,
            0.01,
            5.0,
            GIB,
            0.6 * GIB,
            1,
        ));
    }
    let full = Plan::only(Scheme::Full);
    let every = Duration::from_secs(10);
    let cow_in = |e: &Evaluation| {
        e.candidates
            .iter()
            .any(|c| c.plan.base() == Scheme::CopyOnWrite)
    };
    let open = m.evaluate(full, every, &Constraints::default()).unwrap();
    let cow = open
        .candidates
        .iter()
        .find(|c| c.plan.base() == Scheme::CopyOnWrite)
        .expect("copy-on-write is a candidate without a budget");
    assert!(
        cow.extra_memory > 0.05 * GIB && cow.extra_memory <= GIB,
        "{}",
        cow.extra_memory
    );
    assert!(
        open.candidates
            .iter()
            .filter(|c| c.plan.base() != Scheme::CopyOnWrite)
            .all(|c| c.extra_memory == 0.0)
    );
    let tight = Constraints {
        memory_budget: Some((0.01 * GIB) as u64),
        ..Constraints::default()
    };
    let limited = m.evaluate(full, every, &tight).unwrap();
    assert!(!cow_in(&limited));
    assert!(
        limited
            .recommendations
            .iter()
            .all(|r| r.advice().plan.base() != Scheme::CopyOnWrite)
    );
    let roomy = Constraints {
        memory_budget: Some(2 * GIB as u64),
        ..Constraints::default()
    };
    assert!(cow_in(&m.evaluate(full, every, &roomy).unwrap()));
    // A current plan over the budget is left for one that fits.
    let cow_plan = Plan::only(Scheme::CopyOnWrite);
    let leave = m.evaluate(cow_plan, every, &tight).unwrap();
    assert!(
        leave
            .recommendations
            .iter()
            .any(|r| r.advice().plan.base() != Scheme::CopyOnWrite),
        "{:?}",
        leave.recommendations
    );
}

/// `n` full checkpoints of 1 GiB after `compute` seconds of 10 steps,
/// each taking about `stall` seconds, with `dirty` of the state changed;
/// every measurement jitters by up to 5 %.
fn feed_steady(
    m: &mut CostModel,
    rng: &mut StdRng,
    n: usize,
    compute: f64,
    stall: f64,
    dirty: f64,
) {
    for _ in 0..n {
        let mut jitter = || 1.0 + 0.05 * rng.random_range(-1.0..1.0);
        let stall = stall * jitter();
        m.observe(&event(
            Scheme::Full,
            compute * jitter(),
            stall,
            stall,
            GIB,
            dirty * GIB,
            1,
        ));
    }
}

/// Full checkpoints of 1 GiB; the step time triples and the state gets
/// ten times dirtier half-way. The change is found within a few
/// checkpoints, and the workload means follow at once, while what a
/// byte costs to write (unchanged) stays learnt.
#[test]
fn a_changed_workload_is_recognised_and_relearnt_from_the_change() {
    let mut rng = StdRng::seed_from_u64(11);
    let mut m = model(1);
    feed_steady(&mut m, &mut rng, 30, 10.0, 1.0, 0.01);
    assert_eq!(m.changes_detected(), 0, "no change in a steady workload");
    let persist_fit_before = m.learned.schemes[0].persist.count();
    feed_steady(&mut m, &mut rng, 5, 30.0, 1.0, 0.1);
    assert!(m.changes_detected() >= 1, "found within five checkpoints");
    let step = m.learned.step_secs.get().unwrap();
    assert!((step - 3.0).abs() < 0.3, "step time relearnt: {step}");
    let fraction = m.learned.dirty_fraction.get().unwrap();
    assert!(
        (fraction - 0.1).abs() < 0.02,
        "dirtiness relearnt: {fraction}"
    );
    assert!(
        m.learned.schemes[0].persist.count() > persist_fit_before,
        "the write fit is kept across a workload change"
    );
}

/// The same workload on storage that becomes five times slower: the
/// write fits start again from the change.
#[test]
fn slower_storage_is_recognised_and_the_write_fits_start_again() {
    let mut rng = StdRng::seed_from_u64(12);
    let mut m = model(1);
    feed_steady(&mut m, &mut rng, 30, 10.0, 1.0, 0.01);
    assert_eq!(m.changes_detected(), 0);
    feed_steady(&mut m, &mut rng, 4, 10.0, 5.0, 0.01);
    assert!(m.changes_detected() >= 1);
    let fit = &m.learned.schemes[0].persist;
    assert!(
        fit.count() < 5,
        "the fit holds only the new regime: {}",
        fit.count()
    );
    let step = m.learned.step_secs.get().unwrap();
    assert!((step - 1.0).abs() < 0.1, "the workload is kept: {step}");
}

/// Three phases, the second only four checkpoints long (the detectors
/// warm up over eight): steps of 1 s, then 20 s, then 0.5 s. Each change
/// is found by its second checkpoint, so the step mean the model prices
/// with follows the third phase at once instead of mixing the last two.
#[test]
fn a_change_soon_after_another_is_found_within_two_checkpoints() {
    let mut rng = StdRng::seed_from_u64(13);
    let mut m = model(1);
    feed_steady(&mut m, &mut rng, 30, 10.0, 1.0, 0.01);
    assert!(!m.change_pending());
    feed_steady(&mut m, &mut rng, 1, 200.0, 1.0, 0.01);
    assert!(m.change_pending(), "one checkpoint of the new phase");
    assert_eq!(m.changes_detected(), 0);
    feed_steady(&mut m, &mut rng, 1, 200.0, 1.0, 0.01);
    assert_eq!(m.changes_detected(), 1, "the second phase, at once");
    assert!(!m.change_pending(), "confirmed");
    feed_steady(&mut m, &mut rng, 2, 200.0, 1.0, 0.01);
    feed_steady(&mut m, &mut rng, 2, 5.0, 1.0, 0.01);
    assert_eq!(m.changes_detected(), 2, "the third, within the warm-up");
    let step = m.learned.step_secs.get().unwrap();
    assert!((step - 0.5).abs() < 0.05, "third phase's steps: {step}");
}
