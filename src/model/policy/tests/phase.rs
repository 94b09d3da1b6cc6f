//! The switch budget of a phase: how many times the scheme in use may
//! change between two changes of the workload the model detects.

use super::*;

/// Trials started over `n` evaluations of a steady workload with nothing
/// to recommend, the model reporting `changes(n)` detections so far.
fn trials(
    policy: &Policy,
    state: &mut PolicyState,
    range: std::ops::Range<u64>,
    changes: impl Fn(u64) -> u64,
) -> Vec<u64> {
    range
        .filter(|n| {
            let mut eval = evaluation(*n, vec![]);
            eval.changes_detected = changes(*n);
            matches!(state.decide(policy, &eval), Decision::Explore { .. })
        })
        .collect()
}

fn eager() -> Policy {
    Policy::adaptive()
        .exploration(1.0)
        .explore_checkpoints(1)
        .min_dwell(5)
}

#[test]
fn a_steady_phase_spends_at_most_two_switches() {
    // Exploring as much as allowed, a steady workload gets one trial
    // (there and back) in a thousand checkpoints.
    let mut state = PolicyState::default();
    let started = trials(&eager(), &mut state, 0..1_000, |_| 0);
    assert_eq!(started, vec![0], "one trial, at once");
    // A larger budget lets exploration go on: the budget is what stops it.
    let mut state = PolicyState::default();
    let generous = eager().max_switches_per_phase(20);
    assert_eq!(trials(&generous, &mut state, 0..1_000, |_| 0).len(), 10);
}

#[test]
fn a_detected_change_starts_a_phase_and_random_trials_wait_for_it_to_settle() {
    let policy = eager().patience(3);
    let mut state = PolicyState::default();
    let changed_at = 500;
    let started = trials(&policy, &mut state, 0..1_000, |n| {
        u64::from(n >= changed_at)
    });
    // One trial per phase; the second waits `patience` checkpoints into
    // the new phase while the model re-learns it.
    assert_eq!(started, vec![0, changed_at + 3], "{started:?}");
}

#[test]
fn detections_soon_after_a_phase_began_belong_to_it() {
    let policy = eager().patience(1);
    let mut state = PolicyState::default();
    // Detections at 500 and 502 (within min_dwell 5): one new phase.
    let started = trials(&policy, &mut state, 0..1_000, |n| {
        u64::from(n >= 500) + u64::from(n >= 502)
    });
    assert_eq!(started, vec![0, 501], "{started:?}");
}

#[test]
fn a_restart_neither_refills_the_budget_nor_hides_a_later_change() {
    let policy = eager().patience(1);
    let mut state = PolicyState::default();
    // Three changes found before the crash; the last phase spent its
    // budget.
    let before = trials(&policy, &mut state, 0..100, |n| if n < 20 { 0 } else { 3 });
    assert_eq!(before, vec![0, 21], "{before:?}");
    // The new process's detectors count from zero again.
    let restored: PolicyState = {
        let bytes =
            bincode::serde::encode_to_vec(&state, bincode::config::standard()).expect("encodes");
        bincode::serde::decode_from_slice(&bytes, bincode::config::standard())
            .expect("decodes")
            .0
    };
    let mut state = restored;
    let after = trials(&policy, &mut state, 100..200, |n| u64::from(n >= 150));
    assert_eq!(after, vec![151], "{after:?}");
}

#[test]
fn a_switch_spends_one_and_a_trial_needs_two() {
    // A measured switch applied at once (patience 1): one switch spent,
    // one left: not enough for a trial that may have to come back.
    let policy = quiet().patience(1).min_dwell(0);
    let mut state = PolicyState::default();
    let mut measured = evaluation(0, vec![switch(Scheme::CopyOnWrite, 0.05, Basis::Observed)]);
    measured.schemes.iter_mut().for_each(|s| {
        s.measured = true;
        s.observations = 10;
    });
    assert!(matches!(
        state.decide(&policy, &measured),
        Decision::Apply(_)
    ));
    let prior = |n| evaluation(n, vec![switch(Scheme::CopyOnWrite, 0.05, Basis::Prior)]);
    assert!((1..50).all(|n| state.decide(&policy, &prior(n)) == Decision::Hold));
    // With a budget of three, the directed trial starts.
    let mut state = PolicyState::default();
    let policy = policy.max_switches_per_phase(3);
    assert!(matches!(
        state.decide(&policy, &measured),
        Decision::Apply(_)
    ));
    assert!(matches!(
        state.decide(&policy, &prior(1)),
        Decision::Explore { .. }
    ));
}
