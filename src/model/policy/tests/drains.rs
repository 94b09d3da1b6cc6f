//! The drain ratio under the policy: applied after `patience` agreeing
//! evaluations like any change, near-equal ratios count as one change,
//! and no scheme switch is spent on it.

use super::*;
use crate::model::recommend::Addition;

/// An evaluation of full draining every checkpoint that recommends
/// draining every `k`-th instead.
fn drain_every(checkpoints: u64, k: u32) -> Evaluation {
    let current = Plan::only(Scheme::Full).draining_every(1);
    let rec = Recommendation::Add {
        addition: Addition::DrainEvery(k),
        advice: Advice {
            plan: current.draining_every(k),
            interval: IntervalAdvice {
                every: Duration::from_secs(10),
                steps: None,
            },
            overhead_now: 0.05,
            overhead_after: 0.03,
            saving: 0.02,
            confidence: 0.99,
            basis: Basis::Observed,
            reason: "test".into(),
        },
    };
    let mut eval = evaluation(checkpoints, vec![rec]);
    eval.current.plan = current;
    eval.current_tuned.plan = current;
    eval
}

#[test]
fn a_new_drain_ratio_is_applied_after_patience_even_as_near_ratios_trade_places() {
    let policy = quiet().patience(3);
    let mut state = PolicyState::default();
    assert_eq!(state.decide(&policy, &drain_every(0, 6)), Decision::Hold);
    assert_eq!(state.decide(&policy, &drain_every(1, 8)), Decision::Hold);
    let Decision::Apply(rec) = state.decide(&policy, &drain_every(2, 6)) else {
        panic!("not applied");
    };
    assert_eq!(rec.plan().drain_every(), Some(6));
    assert_eq!(rec.plan().base(), Scheme::Full);
    assert_eq!(state.in_force(&policy).map(|(p, _)| p), Some(rec.plan()));
    // No switch of scheme was spent: the phase's budget is whole.
    assert!(state.phase.allows(&policy, 2));
}

#[test]
fn a_ratio_that_turns_back_starts_over() {
    let policy = quiet().patience(3);
    let mut state = PolicyState::default();
    assert_eq!(state.decide(&policy, &drain_every(0, 6)), Decision::Hold);
    // Still draining every checkpoint is now the best: no recommendation.
    assert_eq!(
        state.decide(&policy, &evaluation(1, vec![])),
        Decision::Hold
    );
    assert_eq!(state.decide(&policy, &drain_every(2, 4)), Decision::Hold);
    assert_eq!(state.decide(&policy, &drain_every(3, 4)), Decision::Hold);
    assert!(matches!(
        state.decide(&policy, &drain_every(4, 4)),
        Decision::Apply(_)
    ));
    // A ratio above the policy's bound is not resumed after a restart.
    let bounded = quiet().max_drain_every(2);
    assert_eq!(state.in_force(&bounded), None);
}

#[test]
fn an_advising_policy_reports_the_ratio_and_applies_nothing() {
    let policy = Policy::advise();
    let mut state = PolicyState::default();
    let Decision::Advise(rec) = state.decide(&policy, &drain_every(0, 8)) else {
        panic!("not advised");
    };
    assert_eq!(rec.plan().drain_every(), Some(8));
    assert!(
        rec.to_string()
            .contains("a drain to the lower tiers every 8 checkpoints"),
        "{rec}"
    );
    assert_eq!(
        state.decide(&policy, &drain_every(1, 8)),
        Decision::Hold,
        "said once"
    );
    assert_eq!(state.changes_applied(), 0);
    assert_eq!(state.in_force(&policy), None);
}
