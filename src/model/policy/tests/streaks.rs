//! When a recommendation completes its streak: retunes of the plan in
//! force (with and without the dwell, sure in one evaluation) and
//! evaluations taken while a change of the workload is pending.

use super::*;

#[test]
fn a_retune_that_keeps_its_direction_waits_for_its_streak_but_not_the_dwell() {
    let policy = quiet().patience(3).min_dwell(10);
    let mut state = PolicyState::default();
    // A switch applied at evaluation 2 (its confirming trial at 0)...
    let rec = || vec![switch(Scheme::Incremental, 0.05, Basis::Observed)];
    for n in 0..3 {
        state.decide(&policy, &evaluation(n, rec()));
    }
    assert_eq!(state.changes_applied(), 1);
    // ...then the plan in force measures its interval wrong, each estimate
    // longer than the last: applied after three, not after the dwell, at
    // the latest estimate.
    assert_eq!(state.decide(&policy, &set_interval(3, 20)), Decision::Hold);
    assert_eq!(state.decide(&policy, &set_interval(4, 30)), Decision::Hold);
    let Decision::Apply(applied) = state.decide(&policy, &set_interval(5, 45)) else {
        panic!("the retune waited for the dwell");
    };
    assert_eq!(applied.interval().every, Duration::from_secs(45));
    // A retune neither waits for the dwell nor restarts it: a switch
    // still dwells from the last switch (evaluation 2).
    for n in 6..12 {
        let d = state.decide(&policy, &evaluation(n, rec()));
        assert!(!matches!(d, Decision::Apply(_)), "n={n}: {d:?}");
    }
    let mut applied_at = None;
    for n in 12..16 {
        if let Decision::Apply(_) = state.decide(&policy, &evaluation(n, rec())) {
            applied_at = Some(n);
            break;
        }
    }
    assert!(
        applied_at.is_some_and(|n| n >= 12),
        "the switch after the dwell: {applied_at:?}"
    );
}

/// A retune whose one evaluation is as sure as a whole streak (a large
/// saving at a confidence three passing evaluations would give) applies at
/// once; a smaller or less certain one still waits for its streak, and a
/// switch of scheme always does.
#[test]
fn a_retune_sure_in_one_evaluation_does_not_wait_for_the_streak() {
    let policy = quiet().patience(3);
    let sure = |n: u64, saving: f64, confidence: f64| {
        let mut eval = set_interval(n, 40);
        if let Some(Recommendation::SetInterval { advice }) = eval.recommendations.first_mut() {
            advice.saving = saving;
            advice.confidence = confidence;
        }
        eval
    };
    let mut state = PolicyState::default();
    let Decision::Apply(applied) = state.decide(&policy, &sure(0, 0.30, 0.9995)) else {
        panic!("a sure retune waited");
    };
    assert_eq!(applied.interval().every, Duration::from_secs(40));
    for (saving, confidence) in [(0.02, 0.9995), (0.30, 0.99)] {
        let mut state = PolicyState::default();
        assert_eq!(
            state.decide(&policy, &sure(0, saving, confidence)),
            Decision::Hold,
            "{saving} at {confidence}"
        );
    }
    let mut state = PolicyState::default();
    let mut switch = switch(Scheme::Incremental, 0.30, Basis::Observed);
    if let Recommendation::Switch { advice, .. } = &mut switch {
        advice.confidence = 0.9999;
    }
    assert!(
        !matches!(
            state.decide(&policy, &evaluation(0, vec![switch])),
            Decision::Apply(_)
        ),
        "a switch of scheme keeps its streak"
    );
}

/// An evaluation taken while a change of the workload is pending (one
/// checkpoint that looks like a new regime, priced with the old one's
/// means) applies nothing, however sure, and does not count towards a
/// streak: the same recommendation applies only after `patience`
/// evaluations after it.
#[test]
fn nothing_is_applied_while_a_change_of_the_workload_is_pending() {
    let policy = quiet().patience(3);
    let mut state = PolicyState::default();
    let rec = |n: u64, pending: bool| {
        let mut eval = set_interval(n, 40);
        if let Some(Recommendation::SetInterval { advice }) = eval.recommendations.first_mut() {
            advice.saving = 0.30;
            advice.confidence = 0.9999;
        }
        eval.change_pending = pending;
        eval
    };
    assert_eq!(state.decide(&policy, &rec(0, true)), Decision::Hold);
    assert!(matches!(
        state.decide(&policy, &rec(1, false)),
        Decision::Apply(_)
    ));
    let mut state = PolicyState::default();
    assert_eq!(state.decide(&policy, &set_interval(0, 40)), Decision::Hold);
    let mut pending = set_interval(1, 40);
    pending.change_pending = true;
    assert_eq!(state.decide(&policy, &pending), Decision::Hold);
    for n in [2, 3] {
        assert_eq!(
            state.decide(&policy, &set_interval(n, 40)),
            Decision::Hold,
            "the streak started again after the pending evaluation"
        );
    }
    assert!(matches!(
        state.decide(&policy, &set_interval(4, 40)),
        Decision::Apply(_)
    ));
}

/// A trial that ends on an evaluation with a change pending is over in
/// the saved state too: a restart from that state must not run it again.
#[test]
fn a_trial_ends_even_while_a_change_is_pending() {
    let policy = quiet().patience(3);
    let mut state = PolicyState::default();
    let rec = || vec![switch(Scheme::Incremental, 0.05, Basis::Observed)];
    assert!(matches!(
        state.decide(&policy, &evaluation(0, rec())),
        Decision::Explore { .. }
    ));
    assert!(state.trial(&policy).is_some());
    let mut later = evaluation(20, vec![]);
    later.change_pending = true;
    assert_eq!(state.decide(&policy, &later), Decision::Hold);
    assert_eq!(state.trial(&policy), None, "the trial ended");
}

/// A trial's interval follows the model's estimate for its scheme even on
/// an evaluation that acts on nothing because a change is pending: the
/// first trial begins at one step, and left there while a change is
/// confirmed it would run its checkpoints back to back.
#[test]
fn a_trial_is_retuned_even_while_a_change_is_pending() {
    let policy = quiet();
    let mut state = PolicyState::default();
    let begun = state.begin(&policy, 0, Plan::only(Scheme::Full));
    assert!(matches!(begun, Some(Decision::Explore { .. })), "{begun:?}");
    let (scheme, first) = state.trial(&policy).expect("the first trial runs");
    assert_eq!(scheme, Scheme::CopyOnWrite);
    let mut eval = evaluation(2, vec![]);
    let mut cow = estimate(Plan::only(Scheme::CopyOnWrite), 0.02);
    cow.interval = Duration::from_secs(2);
    eval.candidates.insert(0, cow);
    eval.change_pending = true;
    assert_eq!(state.decide(&policy, &eval), Decision::Hold);
    let retuned = state.trial(&policy).map(|(_, every)| every);
    assert_ne!(first, Duration::from_secs(2));
    assert_eq!(retuned, Some(Duration::from_secs(2)));
}
