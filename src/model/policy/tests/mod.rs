//! Unit tests of the policy: hand-made evaluations, and the decisions,
//! hysteresis and exploration they must produce.

use super::*;
use crate::model::decision::Decision;
use crate::model::estimate::{Evaluation, PlanEstimate, SchemeStatus};
use crate::model::plan::Plan;
use crate::model::recommend::{Advice, Basis, IntervalAdvice, Recommendation};
use crate::scheme::Scheme;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

mod drains;
mod phase;
mod streaks;

fn estimate(plan: Plan, overhead: f64) -> PlanEstimate {
    PlanEstimate {
        plan,
        interval: Duration::from_secs(10),
        overhead,
        std_error: 0.001,
        stall: Duration::from_millis(100),
        persist: Duration::from_millis(100),
        restart: Duration::from_secs(1),
        dirty_bytes: 0.0,
        extra_memory: 0.0,
        basis: Basis::Observed,
    }
}

fn switch(to: Scheme, saving: f64, basis: Basis) -> Recommendation {
    Recommendation::Switch {
        from: Scheme::Full,
        to,
        advice: Advice {
            plan: Plan::only(to),
            interval: IntervalAdvice {
                every: Duration::from_secs(10),
                steps: None,
            },
            overhead_now: 0.05,
            overhead_after: 0.05 - saving,
            saving,
            confidence: 0.99,
            basis,
            reason: "test".into(),
        },
    }
}

fn evaluation(checkpoints: u64, recommendations: Vec<Recommendation>) -> Evaluation {
    let current = estimate(Plan::only(Scheme::Full), 0.05);
    let status = |scheme, since: Option<u64>| SchemeStatus {
        scheme,
        observations: if since.is_some() { 10 } else { 0 },
        since_seen: since,
        measured: since.is_some(),
    };
    Evaluation {
        current: current.clone(),
        current_tuned: current.clone(),
        candidates: vec![current],
        recommendations,
        mtbf_secs: 3_600.0,
        checkpoints,
        schemes: vec![
            status(Scheme::Full, Some(0)),
            status(Scheme::Incremental, Some(40)),
            status(Scheme::CopyOnWrite, None),
        ],
        changes_detected: 0,
        change_pending: false,
        dirtiness_measured: true,
    }
}

fn quiet() -> Policy {
    Policy::adaptive().exploration(0.0)
}

#[test]
fn applies_a_steady_recommendation_after_patience_then_dwells() {
    let policy = quiet().patience(3).min_dwell(10);
    let mut state = PolicyState::default();
    let rec = || vec![switch(Scheme::Incremental, 0.05, Basis::Observed)];
    let decisions: Vec<_> = (0..3)
        .map(|n| state.decide(&policy, &evaluation(n, rec())))
        .collect();
    // The first agreeing evaluation starts a trial of incremental to
    // confirm it; the streak goes on during the trial.
    assert!(
        matches!(
            &decisions[0],
            Decision::Explore { scheme: Scheme::Incremental, reason, .. } if reason.contains("confirming")
        ),
        "{:?}",
        decisions[0]
    );
    assert_eq!(decisions[1], Decision::Hold);
    assert!(matches!(decisions[2], Decision::Apply(_)));
    // The same advice again right away waits for the dwell time.
    for n in 3..12 {
        assert_eq!(
            state.decide(&policy, &evaluation(n, rec())),
            Decision::Hold,
            "n={n}"
        );
    }
    assert!(matches!(
        state.decide(&policy, &evaluation(12, rec())),
        Decision::Apply(_)
    ));
    assert_eq!(state.changes_applied(), 2);
}

/// A stored policy state may be damaged: full counters saturate.
#[test]
fn full_counters_saturate() {
    let policy = quiet().patience(3).min_dwell(0);
    let mut state = PolicyState::default();
    let rec = || vec![switch(Scheme::Incremental, 0.05, Basis::Observed)];
    state.decide(&policy, &evaluation(0, rec()));
    let streak = state.streak.as_mut().expect("a streak began");
    streak.count = u32::MAX;
    state.applied = u64::MAX;
    assert!(matches!(
        state.decide(&policy, &evaluation(1, rec())),
        Decision::Apply(_)
    ));
    assert_eq!(state.changes_applied(), u64::MAX);
}

#[test]
fn does_not_flap_when_the_best_alternates() {
    let policy = quiet().patience(2).min_dwell(0);
    let mut state = PolicyState::default();
    for n in 0..1_000 {
        let to = if n % 2 == 0 {
            Scheme::Incremental
        } else {
            Scheme::CopyOnWrite
        };
        let d = state.decide(
            &policy,
            &evaluation(n, vec![switch(to, 0.05, Basis::Observed)]),
        );
        assert!(!matches!(d, Decision::Apply(_)), "n={n}: {d:?}");
    }
}

#[test]
fn does_not_flap_when_the_saving_hovers_at_the_threshold() {
    let policy = quiet().min_saving(0.01).patience(3).min_dwell(20);
    let mut state = PolicyState::default();
    // Alternating just above and just below the threshold: never three
    // in a row.
    for n in 0..1_000 {
        let saving = if n % 2 == 0 { 0.0101 } else { 0.0099 };
        let d = state.decide(
            &policy,
            &evaluation(
                n,
                vec![switch(Scheme::Incremental, saving, Basis::Observed)],
            ),
        );
        assert!(!matches!(d, Decision::Apply(_)), "n={n}: {d:?}");
    }
    // Noisy around the threshold, with the target flipping too: applied
    // changes stay rare and never closer than the dwell time.
    let mut rng = StdRng::seed_from_u64(3);
    let mut applied = Vec::new();
    for n in 1_000..3_000 {
        let saving = 0.01 + rng.random_range(-0.002..0.002);
        let to = if rng.random_bool(0.5) {
            Scheme::Incremental
        } else {
            Scheme::CopyOnWrite
        };
        if let Decision::Apply(_) = state.decide(
            &policy,
            &evaluation(n, vec![switch(to, saving, Basis::Observed)]),
        ) {
            applied.push(n);
        }
    }
    assert!(applied.windows(2).all(|w| w[1] - w[0] >= 20), "{applied:?}");
    assert!(applied.len() <= 2_000 / 20);
}

#[test]
fn low_confidence_or_prior_estimates_are_not_applied() {
    let policy = quiet().patience(1);
    let mut state = PolicyState::default();
    let mut weak = switch(Scheme::Incremental, 0.05, Basis::Observed);
    if let Recommendation::Switch { advice, .. } = &mut weak {
        advice.confidence = 0.6;
    }
    assert_eq!(
        state.decide(&policy, &evaluation(0, vec![weak])),
        Decision::Hold
    );
    // A prior-based saving is explored instead (directed exploration),
    // even with random exploration off.
    let d = state.decide(
        &policy,
        &evaluation(1, vec![switch(Scheme::CopyOnWrite, 0.05, Basis::Prior)]),
    );
    assert!(
        matches!(
            d,
            Decision::Explore {
                scheme: Scheme::CopyOnWrite,
                checkpoints: 5,
                ..
            }
        ),
        "{d:?}"
    );
    // While the trial runs, nothing new is explored...
    for n in 2..4 {
        let d = state.decide(
            &policy,
            &evaluation(n, vec![switch(Scheme::Incremental, 0.05, Basis::Prior)]),
        );
        assert_eq!(d, Decision::Hold);
    }
    assert!(state.exploring(4));
    // ...and the trial ends when its time is up.
    assert!(!state.exploring(6));
}

#[test]
fn a_switch_counts_as_the_same_change_while_its_interval_estimate_moves() {
    let policy = quiet().patience(3);
    let mut state = PolicyState::default();
    let with_interval = |secs: u64| {
        let mut rec = switch(Scheme::CopyOnWrite, 0.05, Basis::Observed);
        if let Recommendation::Switch { advice, .. } = &mut rec {
            advice.interval.every = Duration::from_secs(secs);
        }
        vec![rec]
    };
    // 4 s, 6 s, 9 s: each 50 % off the last, the switch all the same
    // (the first starts a confirming trial).
    assert!(matches!(
        state.decide(&policy, &evaluation(0, with_interval(4))),
        Decision::Explore { .. }
    ));
    assert_eq!(
        state.decide(&policy, &evaluation(1, with_interval(6))),
        Decision::Hold
    );
    let Decision::Apply(rec) = state.decide(&policy, &evaluation(2, with_interval(9))) else {
        panic!("the switch was not applied");
    };
    assert_eq!(
        rec.interval().every,
        Duration::from_secs(9),
        "the latest interval"
    );
    // A change of interval alone (the plan in force runs at 10 s) that
    // goes one way, then neither (within ±25 %), then the other, never
    // settles.
    let mut state = PolicyState::default();
    for (n, secs) in [(10, 4), (11, 6), (12, 9), (13, 14), (14, 5), (15, 16)] {
        assert_eq!(
            state.decide(&policy, &set_interval(n, secs)),
            Decision::Hold,
            "{secs} s"
        );
    }
}

/// An evaluation at `checkpoints` whose one recommendation keeps the plan
/// in force (full, at 10 s) and checkpoints every `secs` seconds.
fn set_interval(checkpoints: u64, secs: u64) -> Evaluation {
    let mut eval = evaluation(checkpoints, vec![]);
    let mut rec = switch(Scheme::Full, 0.05, Basis::Observed);
    if let Recommendation::Switch { advice, .. } = &mut rec {
        advice.interval.every = Duration::from_secs(secs);
    }
    eval.recommendations = vec![Recommendation::SetInterval {
        advice: rec.advice().clone(),
    }];
    eval
}

#[test]
fn near_equal_cadences_of_one_switch_do_not_reset_the_streak() {
    let policy = quiet().patience(3);
    let mut state = PolicyState::default();
    let to = |k: u32| {
        let mut rec = switch(Scheme::Incremental, 0.05, Basis::Observed);
        if let Recommendation::Switch { advice, .. } = &mut rec {
            advice.plan = Plan::with_full_every(Scheme::Incremental, k);
        }
        vec![rec]
    };
    assert!(matches!(
        state.decide(&policy, &evaluation(0, to(32))),
        Decision::Explore { .. }
    ));
    assert_eq!(
        state.decide(&policy, &evaluation(1, to(48))),
        Decision::Hold
    );
    let Decision::Apply(rec) = state.decide(&policy, &evaluation(2, to(24))) else {
        panic!("not applied");
    };
    assert_eq!(rec.plan(), Plan::with_full_every(Scheme::Incremental, 24));
    // Switching to another scheme in between starts over.
    let mut state = PolicyState::default();
    let mut cow = to(32);
    if let Some(Recommendation::Switch { to, advice, .. }) = cow.first_mut() {
        *to = Scheme::CopyOnWrite;
        advice.plan = Plan::only(Scheme::CopyOnWrite);
    }
    assert!(matches!(
        state.decide(&policy, &evaluation(0, to(32))),
        Decision::Explore { .. }
    ));
    assert_eq!(state.decide(&policy, &evaluation(1, cow)), Decision::Hold);
    assert_eq!(
        state.decide(&policy, &evaluation(2, to(32))),
        Decision::Hold
    );
}

#[test]
fn a_trial_cut_short_by_a_restart_can_be_tried_again_at_once() {
    // Going to the trial and back spends two switches, the new trial two
    // more.
    let policy = quiet().max_switches_per_phase(4);
    let mut state = PolicyState::default();
    let prior = || vec![switch(Scheme::CopyOnWrite, 0.05, Basis::Prior)];
    assert!(matches!(
        state.decide(&policy, &evaluation(0, prior())),
        Decision::Explore { .. }
    ));
    // Without a restart, the scheme cools down after its trial.
    let mut cooled = state.clone();
    assert_eq!(
        cooled.decide(&policy, &evaluation(6, prior())),
        Decision::Hold
    );
    // A new process never ran the trial: it may start it again.
    state.abandon_trial();
    assert!(!state.exploring(1));
    assert!(matches!(
        state.decide(&policy, &evaluation(1, prior())),
        Decision::Explore {
            scheme: Scheme::CopyOnWrite,
            ..
        }
    ));
}

#[test]
fn a_trial_runs_at_the_schemes_best_interval_and_can_end_in_the_switch() {
    let policy = quiet().patience(3);
    let mut state = PolicyState::default();
    let mut eval = evaluation(0, vec![switch(Scheme::CopyOnWrite, 0.05, Basis::Prior)]);
    let mut cow = estimate(Plan::only(Scheme::CopyOnWrite), 0.02);
    cow.interval = Duration::from_secs(3);
    eval.candidates.insert(0, cow);
    let d = state.decide(&policy, &eval);
    let Decision::Explore {
        scheme, interval, ..
    } = d
    else {
        panic!("expected a trial, got {d:?}");
    };
    assert_eq!(
        (scheme, interval),
        (Scheme::CopyOnWrite, Duration::from_secs(3))
    );
    // Measured late in the trial and better: the trial runs on past
    // its planned end (5) until `patience` evaluations agree.
    let measured = || vec![switch(Scheme::CopyOnWrite, 0.05, Basis::Observed)];
    assert!(!state.exploring(5), "planned to end after 5");
    for n in [4, 5] {
        assert_eq!(
            state.decide(&policy, &evaluation(n, measured())),
            Decision::Hold
        );
        // The checkpointer asks after commit n whether the trial goes on.
        assert!(state.exploring(n), "extended past its planned end");
    }
    assert!(matches!(
        state.decide(&policy, &evaluation(6, measured())),
        Decision::Apply(_)
    ));
    assert!(!state.exploring(6), "the switch ended the trial");
    let (plan, _) = state.in_force(&policy).expect("applied");
    assert_eq!(plan, Plan::only(Scheme::CopyOnWrite));
}

#[test]
fn a_fresh_policy_begins_with_copy_on_write_and_may_leave_an_unmeasured_plan_on_its_saving() {
    let policy = quiet().patience(3);
    let full = Plan::only(Scheme::Full);
    let begins = |policy: &Policy, checkpoints, current| {
        PolicyState::default().begin(policy, checkpoints, current)
    };
    // Only a fresh automatic policy that may use copy-on-write, and
    // is not on it already, begins with a trial of it.
    assert_eq!(begins(&Policy::advise(), 0, full), None);
    assert_eq!(begins(&policy.clone().first_trial(false), 0, full), None);
    let no_cow = policy.clone().allow(&[Scheme::Full, Scheme::Incremental]);
    assert_eq!(begins(&no_cow, 0, full), None);
    assert_eq!(begins(&policy, 3, full), None);
    assert_eq!(begins(&policy, 0, Plan::only(Scheme::CopyOnWrite)), None);
    let mut state = PolicyState::default();
    let d = state.begin(&policy, 0, full).expect("a first trial");
    assert!(
        matches!(d, Decision::Explore { scheme: Scheme::CopyOnWrite, interval, .. } if interval == policy.constraints.min_interval),
        "{d:?}"
    );
    assert!(state.exploring(0));
    assert_eq!(state.begin(&policy, 0, full), None, "one first trial");
    // After the trial's checkpoints: copy-on-write measured, full
    // never; the switch can only rest on priors (confidence ≤ 0.5).
    let eval = |n: u64| {
        let mut rec = switch(Scheme::CopyOnWrite, 0.05, Basis::Prior);
        if let Recommendation::Switch { advice, .. } = &mut rec {
            advice.confidence = 0.5;
        }
        let mut e = evaluation(n, vec![rec]);
        let mut cow = estimate(Plan::only(Scheme::CopyOnWrite), 0.02);
        cow.interval = Duration::from_secs(2);
        e.candidates.insert(0, cow);
        for status in &mut e.schemes {
            let observations = if status.scheme == Scheme::CopyOnWrite {
                n
            } else {
                0
            };
            status.observations = observations;
            status.measured = observations >= 3;
            status.since_seen = (observations > 0).then_some(0);
        }
        e
    };
    assert_eq!(state.decide(&policy, &eval(1)), Decision::Hold);
    // The trial follows the model's interval for its scheme.
    assert_eq!(
        state.trial(&policy),
        Some((Scheme::CopyOnWrite, Duration::from_secs(2)))
    );
    assert_eq!(state.decide(&policy, &eval(2)), Decision::Hold);
    assert!(matches!(
        state.decide(&policy, &eval(3)),
        Decision::Apply(_)
    ));
    // Once the plan in force (full) is measured, the same saving
    // resting on priors moves nothing, though its target was measured
    // too.
    let mut measured = eval(3);
    measured.checkpoints = 20;
    for status in &mut measured.schemes {
        status.observations = 10;
        status.measured = true;
        status.since_seen = Some(0);
    }
    let mut state = PolicyState::default();
    for n in 0..5 {
        measured.checkpoints = 20 + n;
        assert!(!matches!(
            state.decide(&policy, &measured),
            Decision::Apply(_)
        ));
    }
}

#[test]
fn fixed_holds_and_advise_reports() {
    let rec = vec![switch(Scheme::Incremental, 0.05, Basis::Observed)];
    let mut state = PolicyState::default();
    assert_eq!(
        state.decide(&Policy::fixed(), &evaluation(0, rec.clone())),
        Decision::Hold
    );
    assert!(matches!(
        state.decide(&Policy::advise(), &evaluation(0, rec)),
        Decision::Advise(Recommendation::Switch {
            to: Scheme::Incremental,
            ..
        })
    ));
    assert_eq!(state.changes_applied(), 0);
}

#[test]
fn random_exploration_is_seeded_and_picks_the_stalest_scheme() {
    let run = |seed| {
        let policy = Policy::adaptive()
            .exploration(0.3)
            .explore_checkpoints(3)
            .min_dwell(5)
            .max_switches_per_phase(u32::MAX)
            .seed(seed);
        let mut state = PolicyState::default();
        (0..200)
            .map(|n| state.decide(&policy, &evaluation(n, vec![])))
            .collect::<Vec<_>>()
    };
    let (a, b, c) = (run(1), run(1), run(2));
    assert_eq!(a, b);
    assert_ne!(a, c);
    let explored: Vec<Scheme> = a
        .iter()
        .filter_map(|d| match d {
            Decision::Explore { scheme, .. } => Some(*scheme),
            _ => None,
        })
        .collect();
    assert!(explored.len() > 10, "{}", explored.len());
    // Never seen beats seen 40 checkpoints ago; the current scheme is
    // never "explored".
    assert_eq!(explored.first(), Some(&Scheme::CopyOnWrite));
    assert!(!explored.contains(&Scheme::Full));
    assert!(explored.contains(&Scheme::Incremental));
    let always = Policy::adaptive().exploration(1.0).explore_checkpoints(1);
    let mut state = PolicyState::default();
    assert!(matches!(
        state.decide(&always, &evaluation(0, vec![])),
        Decision::Explore { .. }
    ));
}

#[test]
fn random_trials_keep_their_share_of_time_and_skip_hopeless_schemes() {
    // Explored schemes: incremental (seen 40 ago), then copy-on-write
    // is never seen; only incremental may be tried, at `trial` apart.
    let trials_at = |trial: Duration, overhead: f64| {
        let policy = Policy::adaptive()
            .exploration(0.2)
            .explore_checkpoints(1)
            .min_dwell(1)
            .max_switches_per_phase(u32::MAX)
            .allow(&[Scheme::Full, Scheme::Incremental]);
        let mut state = PolicyState::default();
        (0..4_000)
            .filter(|n| {
                let mut eval = evaluation(*n, vec![]);
                let mut inc = estimate(Plan::only(Scheme::Incremental), overhead);
                inc.std_error = 0.01;
                inc.interval = trial;
                eval.candidates.push(inc);
                eval.schemes.retain(|st| st.scheme != Scheme::CopyOnWrite);
                matches!(state.decide(&policy, &eval), Decision::Explore { .. })
            })
            .count() as f64
    };
    let trials = |trial| trials_at(trial, 0.06);
    // The current plan checkpoints every 10 s, at an overhead of 0.05.
    let same = trials(Duration::from_secs(10));
    let five_times_longer = trials(Duration::from_secs(50));
    let shorter = trials(Duration::from_secs(2));
    // 0.2 per evaluation (a one-checkpoint trial ends before the next).
    assert!((650.0..950.0).contains(&same), "{same}");
    assert!(
        (3.5..7.0).contains(&(same / five_times_longer)),
        "{same} vs {five_times_longer}"
    );
    // A trial that checkpoints more often is not made more frequent.
    assert!(
        (0.8..1.25).contains(&(same / shorter)),
        "{same} vs {shorter}"
    );
}

#[test]
fn validation_names_the_bad_option() {
    assert!(Policy::adaptive().validate().is_ok());
    let err = Policy::adaptive()
        .allow(&[])
        .validate()
        .expect_err("empty set");
    assert!(err.to_string().contains("policy.allow"));
    assert!(Policy::adaptive().exploration(1.5).validate().is_err());
    assert!(Policy::adaptive().patience(0).validate().is_err());
    assert!(
        Policy::adaptive()
            .interval_bounds(Duration::from_secs(2), Duration::from_secs(1))
            .validate()
            .is_err()
    );
}

#[test]
fn under_a_memory_budget_the_first_trial_waits_for_measurements() {
    let policy = Policy::adaptive().memory_budget(1 << 20);
    let mut state = PolicyState::default();
    assert_eq!(state.begin(&policy, 0, Plan::only(Scheme::Full)), None);
    let mut state = PolicyState::default();
    assert!(
        state
            .begin(&Policy::adaptive(), 0, Plan::only(Scheme::Full))
            .is_some()
    );
}
