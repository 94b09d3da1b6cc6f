//! Unit tests of the cost model: synthetic workloads whose true costs are
//! known, and what the model must learn and recommend from them.

use super::cost_model::{idle_step_secs, secs, slowdown, steady_steps};
use super::*;
use crate::model::cost::daly_interval;
use crate::model::event::{CheckpointEvent, Event, RestartEvent, RestoreEvent};
use crate::model::failure::FailureClass;
use crate::model::plan::{Plan, SchemeSet};
use crate::model::recommend::{Addition, Basis, Recommendation};
use crate::scheme::Scheme;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

mod changes;
mod copy_on_write;
mod drains;
mod trust;

const GIB: f64 = (1u64 << 30) as f64;

/// A synthetic checkpoint: `stall`/`persist` seconds, `dirty` of
/// `logical` bytes after `compute` seconds of work.
fn event(
    scheme: Scheme,
    compute: f64,
    stall: f64,
    persist: f64,
    logical: f64,
    dirty: f64,
    chain: u32,
) -> Event {
    let mut e = CheckpointEvent::new(scheme, 0);
    e.steps = 10;
    e.compute = secs(compute);
    e.stall = secs(stall);
    e.persist = secs(persist);
    e.logical_bytes = logical as u64;
    e.dirty_bytes = dirty as u64;
    e.bytes_written = match scheme {
        Scheme::Full => logical as u64,
        _ => dirty as u64,
    };
    e.chain_length = chain;
    e.into()
}

fn model(mtbf_hours: u64) -> CostModel {
    CostModel::new(ModelConfig::with_mtbf(Duration::from_secs(
        mtbf_hours * 3_600,
    )))
}

/// Full checkpoints of 1 GiB at 1 GB/s; 1 % of the state dirty after a
/// 10 s interval.
fn feed_full(m: &mut CostModel, rng: &mut StdRng, n: usize, compute: f64) {
    for _ in 0..n {
        let stall = (0.02 + GIB / 1e9) * (1.0 + 0.02 * rng.random_range(-1.0..1.0));
        m.observe(&event(
            Scheme::Full,
            compute,
            stall,
            stall,
            GIB,
            0.01 * GIB * compute / 10.0,
            1,
        ));
    }
}

fn feed_incremental(m: &mut CostModel, rng: &mut StdRng, n: usize, compute: f64) {
    for i in 0..n {
        let dirty = 0.01 * GIB * compute / 10.0 * rng.random_range(0.5..1.5);
        let stall = 0.01 + dirty / 1e9 * (1.0 + 0.02 * rng.random_range(-1.0..1.0));
        m.observe(&event(
            Scheme::Incremental,
            compute,
            stall,
            stall,
            GIB,
            dirty,
            2 + (i % 8) as u32,
        ));
    }
}

#[test]
fn nothing_to_say_before_the_first_checkpoint() {
    let m = model(24);
    assert!(
        m.evaluate(
            Plan::only(Scheme::Full),
            Duration::from_secs(10),
            &Constraints::default()
        )
        .is_none()
    );
}

#[test]
fn tunes_a_constant_cost_to_daly_interval() {
    let mut m = model(1);
    let mut rng = StdRng::seed_from_u64(1);
    feed_full(&mut m, &mut rng, 30, 10.0);
    let constraints = Constraints {
        allowed: SchemeSet::of(&[Scheme::Full]),
        ..Constraints::default()
    };
    let eval = m
        .evaluate(
            Plan::only(Scheme::Full),
            Duration::from_secs(10),
            &constraints,
        )
        .expect("observed");
    let delta = eval.current_tuned.stall.as_secs_f64();
    // The posterior MTBF: 1 h configured, ~6 min run without failure.
    assert!(eval.mtbf_secs > 3_600.0 && eval.mtbf_secs < 4_000.0);
    let want = daly_interval(delta, eval.mtbf_secs);
    let got = eval.current_tuned.interval.as_secs_f64();
    assert!(
        (got - want).abs() < 0.01 * want,
        "tuned {got} s, Daly {want} s"
    );
    let Some(Recommendation::SetInterval { advice }) = eval.recommendations.first() else {
        panic!(
            "expected an interval change, got {:?}",
            eval.recommendations
        );
    };
    // Checkpointing 1 s of state every 10 s costs ~10 %; at ~85 s it is
    // about 2.4 %.
    assert!(
        advice.overhead_now > 0.1 && advice.overhead_after < 0.03,
        "{advice:?}"
    );
    assert!(advice.saving > 0.05 && advice.confidence > 0.99);
    assert_eq!(advice.interval.steps, Some((got / 1.0).round() as u64));
    assert!(
        eval.recommendations
            .first()
            .expect("one")
            .to_string()
            .contains("Young")
    );
}

#[test]
fn switches_when_one_scheme_is_clearly_cheaper() {
    let mut m = model(1);
    let mut rng = StdRng::seed_from_u64(2);
    feed_full(&mut m, &mut rng, 20, 60.0);
    feed_incremental(&mut m, &mut rng, 20, 60.0);
    // Copy-on-write, never measured, would be priced from priors.
    let measured = Constraints {
        allowed: SchemeSet::of(&[Scheme::Full, Scheme::Incremental]),
        ..Constraints::default()
    };
    let eval = m
        .evaluate(Plan::only(Scheme::Full), Duration::from_secs(60), &measured)
        .expect("observed");
    let best = eval.best().expect("candidates");
    assert_eq!(
        best.plan.base(),
        Scheme::Incremental,
        "{:#?}",
        eval.candidates
    );
    assert_eq!(best.basis, Basis::Observed);
    let Some(Recommendation::Switch { from, to, advice }) = eval.recommendations.first() else {
        panic!("expected a switch, got {:?}", eval.recommendations);
    };
    assert_eq!((*from, *to), (Scheme::Full, Scheme::Incremental));
    assert!(
        advice.plan.full_every().is_some(),
        "incremental keeps bounded chains"
    );
    assert!(
        advice.saving > 0.01 && advice.confidence > 0.99,
        "{advice:?}"
    );
    // Allowed schemes are respected.
    let only_full = Constraints {
        allowed: SchemeSet::of(&[Scheme::Full]),
        ..Constraints::default()
    };
    let eval = m
        .evaluate(
            Plan::only(Scheme::Full),
            Duration::from_secs(60),
            &only_full,
        )
        .expect("observed");
    assert!(
        eval.candidates
            .iter()
            .all(|c| c.plan.base() == Scheme::Full)
    );
}

#[test]
fn prices_an_unmeasured_scheme_from_priors() {
    let mut m = model(1);
    let mut rng = StdRng::seed_from_u64(3);
    feed_full(&mut m, &mut rng, 10, 60.0);
    let eval = m
        .evaluate(
            Plan::only(Scheme::Full),
            Duration::from_secs(60),
            &Constraints::default(),
        )
        .expect("observed");
    let inc = eval
        .candidates
        .iter()
        .find(|c| c.plan.base() == Scheme::Incremental)
        .expect("incremental priced");
    assert_eq!(inc.basis, Basis::Prior);
    // 6 % dirty after 60 s: an incremental write of ~64 MB at 1 GB/s.
    assert!(inc.stall.as_secs_f64() < 0.2, "{inc:?}");
    let rec = eval.recommendations.first().expect("a change");
    assert_eq!(rec.advice().basis, Basis::Prior);
    assert!(
        rec.advice().confidence <= 0.5,
        "priors are not trusted: {rec}"
    );
    assert!(rec.to_string().contains("estimated before measuring"));
}

#[test]
fn adds_a_full_base_when_chains_make_restores_slow() {
    let mut m = model(1);
    let mut rng = StdRng::seed_from_u64(4);
    feed_full(&mut m, &mut rng, 5, 60.0);
    // A long chain on the current plan, and restores that pay per link.
    for i in 0..40u32 {
        let dirty = 0.06 * GIB;
        let stall = 0.01 + dirty / 1e9;
        m.observe(&event(
            Scheme::Incremental,
            60.0,
            stall,
            stall,
            GIB,
            dirty,
            2 + i,
        ));
    }
    for chain in [1u32, 5, 10, 20, 40, 3, 7] {
        let mut r = RestoreEvent::new(0, secs(1.0 + 2.0 * f64::from(chain)), chain);
        r.bytes_read = GIB as u64;
        m.observe(&r.into());
    }
    let current = Plan::only(Scheme::Incremental);
    let constraints = Constraints {
        allowed: SchemeSet::of(&[Scheme::Incremental]),
        ..Constraints::default()
    };
    let eval = m
        .evaluate(current, Duration::from_secs(60), &constraints)
        .expect("observed");
    let Some(Recommendation::Add {
        addition: Addition::FullEvery(k),
        advice,
    }) = eval.recommendations.first()
    else {
        panic!("expected a full base, got {:?}", eval.recommendations);
    };
    assert!((2..=64).contains(k));
    assert!(advice.overhead_after < advice.overhead_now);
    assert!(eval.current_tuned.restart > eval.best().expect("best").restart);
}

#[test]
fn drops_full_bases_a_scheme_does_not_need() {
    let mut m = model(1);
    let mut rng = StdRng::seed_from_u64(5);
    feed_full(&mut m, &mut rng, 10, 60.0);
    for _ in 0..10 {
        let stall = 0.002 * rng.random_range(0.9..1.1);
        m.observe(&event(
            Scheme::CopyOnWrite,
            60.0,
            stall,
            1.0,
            GIB,
            0.06 * GIB,
            1,
        ));
    }
    let current = Plan::with_full_every(Scheme::CopyOnWrite, 4);
    let constraints = Constraints {
        allowed: SchemeSet::of(&[Scheme::CopyOnWrite]),
        ..Constraints::default()
    };
    let eval = m
        .evaluate(current, Duration::from_secs(60), &constraints)
        .expect("observed");
    let Some(Recommendation::Drop { dropped, advice }) = eval.recommendations.first() else {
        panic!("expected a drop, got {:?}", eval.recommendations);
    };
    assert_eq!(*dropped, Addition::FullEvery(4));
    assert_eq!(advice.plan, Plan::only(Scheme::CopyOnWrite));
}

#[test]
fn restarts_update_the_failure_rate() {
    let mut m = model(24);
    for _ in 0..360 {
        m.observe(&event(Scheme::Full, 99.0, 1.0, 1.0, GIB, GIB, 1));
    }
    for _ in 0..10 {
        m.observe(&RestartEvent::new(FailureClass::Process).into());
    }
    // (1 + 10) / (24 h + 10 h).
    let want = 34.0 * 3_600.0 / 11.0;
    assert!(
        (m.mtbf_secs() - want).abs() < 1e-6 * want,
        "{}",
        m.mtbf_secs()
    );
    let rate = m.failure_rate(FailureClass::Process);
    assert!(rate.lower < 1.0 / want && 1.0 / want < rate.upper);
    assert_eq!(m.failure_rate(FailureClass::Store).per_second, 0.0);
}

#[test]
fn a_restart_counts_the_unreported_running_as_exposure() {
    let mut m = model(24);
    for _ in 0..360 {
        m.observe(&event(Scheme::Full, 99.0, 1.0, 1.0, GIB, GIB, 1));
    }
    let mut restart = RestartEvent::new(FailureClass::Process);
    restart.unreported = Some(Duration::from_secs(3_600));
    m.observe(&restart.into());
    // (1 + 1) / (24 h + 10 h reported + 1 h unreported).
    let want = 35.0 * 3_600.0 / 2.0;
    assert!(
        (m.mtbf_secs() - want).abs() < 1e-6 * want,
        "{}",
        m.mtbf_secs()
    );
}

#[test]
fn slow_tier_copies_do_not_touch_fast_tier_fits() {
    let mut m = model(1);
    let mut rng = StdRng::seed_from_u64(7);
    feed_full(&mut m, &mut rng, 5, 10.0);
    let before = m.evaluate(
        Plan::only(Scheme::Full),
        secs(10.0),
        &Constraints::default(),
    );
    let Event::Checkpoint(mut drain) = event(Scheme::Full, 0.0, 0.0, 30.0, GIB, GIB, 1) else {
        unreachable!()
    };
    drain.tier = 1;
    m.observe(&drain.into());
    assert_eq!(m.drain_fit().count(), 1);
    assert_eq!((m.summary().checkpoints, m.summary().drains), (5, 1));
    let after = m.evaluate(
        Plan::only(Scheme::Full),
        secs(10.0),
        &Constraints::default(),
    );
    assert_eq!(before.map(|e| e.candidates), after.map(|e| e.candidates));
}

#[test]
fn dirty_bytes_grow_with_the_interval() {
    let mut m = model(1);
    let mut rng = StdRng::seed_from_u64(6);
    feed_full(&mut m, &mut rng, 10, 10.0);
    let pricer = m.pricer().expect("observed");
    // 1 % after 10 s: about 2 % after 20 s, and never more than all.
    let d10 = pricer.dirty_at(10.0) / GIB;
    let d20 = pricer.dirty_at(20.0) / GIB;
    assert!(
        (d10 - 0.01).abs() < 1e-3 && (d20 - 0.0199).abs() < 1e-3,
        "{d10} {d20}"
    );
    assert!(pricer.dirty_at(1e9) <= GIB * (1.0 + 1e-12));
}

#[test]
fn a_checkpoint_that_found_everything_dirty_does_not_pin_the_dirty_rate() {
    let mut m = model(1);
    // A dense phase: everything dirty at every checkpoint...
    for _ in 0..10 {
        m.observe(&event(Scheme::Full, 10.0, 1.0, 1.0, GIB, GIB, 1));
    }
    assert!(m.pricer().expect("observed").dirty_at(10.0) > 0.99 * GIB);
    // ...then a sparse one: 2 % per 10 s. Within a few checkpoints the
    // model follows; a mean of per-checkpoint rates would stay near
    // "everything" for a hundred (each dense checkpoint counted as a
    // rate of ln(10⁹)/10 s).
    for _ in 0..15 {
        m.observe(&event(Scheme::Full, 10.0, 1.0, 1.0, GIB, 0.02 * GIB, 1));
    }
    let d = m.pricer().expect("observed").dirty_at(10.0) / GIB;
    assert!(d < 0.1, "{d}");
}

#[test]
fn a_scheme_measured_once_can_be_left_for_a_measured_cheaper_one() {
    let mut m = model(1);
    let mut rng = StdRng::seed_from_u64(8);
    // One full checkpoint (1 s of a 1 GiB write), then a trial of
    // incremental at a tenth of the cost.
    feed_full(&mut m, &mut rng, 1, 60.0);
    feed_incremental(&mut m, &mut rng, 4, 60.0);
    let constraints = Constraints {
        allowed: SchemeSet::of(&[Scheme::Full, Scheme::Incremental]),
        ..Constraints::default()
    };
    let eval = m
        .evaluate(Plan::only(Scheme::Full), secs(60.0), &constraints)
        .expect("observed");
    assert_eq!(eval.current.basis, Basis::Observed, "measured once");
    let Some(Recommendation::Switch { advice, .. }) = eval.recommendations.first() else {
        panic!("expected a switch, got {:?}", eval.recommendations);
    };
    assert_eq!(advice.basis, Basis::Observed);
    assert!(advice.confidence > 0.9, "{advice:?}");
    // The configured uncertainty stands in for the spread one
    // checkpoint cannot show.
    assert!(eval.current.std_error > 0.0 && eval.current.std_error.is_finite());
}

#[test]
fn a_first_restore_does_not_make_every_estimate_uncertain() {
    let mut m = model(1);
    let mut rng = StdRng::seed_from_u64(9);
    feed_full(&mut m, &mut rng, 10, 60.0);
    feed_incremental(&mut m, &mut rng, 10, 60.0);
    let mut restore = RestoreEvent::new(0, secs(2.0), 1);
    restore.bytes_read = GIB as u64;
    m.observe(&restore.into());
    let eval = m
        .evaluate(
            Plan::only(Scheme::Full),
            secs(60.0),
            &Constraints::default(),
        )
        .expect("observed");
    assert!(
        eval.candidates.iter().all(|c| c.std_error.is_finite()),
        "{:#?}",
        eval.candidates
    );
    // The restore seen prices restarts: 2 s for the whole state.
    let full = eval.current_tuned.restart.as_secs_f64();
    assert!((full - 2.0).abs() < 0.1, "{full}");
}

#[test]
fn steps_all_beside_persists_are_compared_with_recent_idle_steps() {
    let interval = |steps: u64, beside: u64, beside_ms: u64, all_ms: u64| {
        let mut e = CheckpointEvent::new(Scheme::CopyOnWrite, 1);
        e.steps = steps;
        e.steps_beside_persist = beside;
        e.compute = Duration::from_millis(all_ms);
        e.compute_beside_persist = Duration::from_millis(beside_ms);
        e
    };
    // Half the steps beside a persist, 25 % slower than the rest.
    let mixed = interval(8, 4, 250, 450);
    assert_eq!(idle_step_secs(&mixed), Some(0.05));
    let s = slowdown(&mixed, idle_step_secs(&mixed)).expect("both kinds");
    assert!((s - 1.25_f64.ln()).abs() < 1e-9, "{s}");
    // Persists back to back: every step beside one, 60 % slower than
    // the idle steps seen before; unknown without them.
    let busy = interval(2, 2, 160, 160);
    assert_eq!(idle_step_secs(&busy), None);
    assert_eq!(slowdown(&busy, None), None);
    let s = slowdown(&busy, Some(0.05)).expect("against the recent idle steps");
    assert!((s - 1.6_f64.ln()).abs() < 1e-9, "{s}");
    // No step beside a persist: nothing to learn.
    assert_eq!(slowdown(&interval(4, 0, 0, 200), Some(0.05)), None);
}

/// An interval of `steps` steps of `idle_ms` beside nothing and `busy`
/// steps of `busy_ms` beside a persist.
fn stepped(first_capture: bool, steps: u64, idle_ms: u64, busy: u64, busy_ms: u64) -> Event {
    let mut e = CheckpointEvent::new(Scheme::CopyOnWrite, 0);
    e.first_capture = first_capture;
    e.steps = steps + busy;
    e.steps_beside_persist = busy;
    e.compute_beside_persist = Duration::from_millis(busy * busy_ms);
    e.compute = Duration::from_millis(steps * idle_ms) + e.compute_beside_persist;
    e.persist = secs(0.5);
    e.logical_bytes = GIB as u64;
    e.dirty_bytes = (0.1 * GIB) as u64;
    e.into()
}

fn learned_interference(m: &CostModel) -> f64 {
    pricing::priced_interference(&m.learned.interference, f64::NAN)
}

#[test]
fn a_warm_up_baseline_never_reads_a_persist_as_free() {
    let prior = ModelConfig::default().background_interference;
    // A fresh process: its first steps (warm-up) take 40 ms, the steps
    // after 20 ms alone. The first trial's steps all ran beside persists
    // at 25 ms: faster than the warm-up, a quarter slower than the
    // process really runs. Against the warm-up it would read as none.
    let mut m = CostModel::new(ModelConfig::default());
    m.observe(&stepped(true, 10, 40, 0, 0));
    m.observe(&stepped(false, 0, 0, 10, 25));
    let floor = learned_interference(&m);
    assert!(floor >= prior - 1e-9, "{floor} against the prior {prior}");
    // Beside persists at 100 ms: at least 2.5x the warm-up, so at least
    // that, above the prior.
    let mut m = CostModel::new(ModelConfig::default());
    m.observe(&stepped(true, 10, 40, 0, 0));
    m.observe(&stepped(false, 0, 0, 10, 100));
    let raised = learned_interference(&m);
    assert!((raised - 1.5).abs() < 1e-9, "{raised}");
    // Once the process's own idle steps are seen, they are the baseline:
    // 25 ms against 20 ms is a quarter slower, whatever the warm-up was.
    let mut m = CostModel::new(ModelConfig::default());
    m.observe(&stepped(true, 10, 40, 0, 0));
    m.observe(&stepped(false, 10, 20, 0, 0));
    m.observe(&stepped(false, 0, 0, 10, 25));
    let measured = learned_interference(&m);
    assert!((measured - 0.25).abs() < 1e-9, "{measured}");
}

#[test]
fn an_interval_that_spans_a_change_of_step_time_teaches_no_interference() {
    // 200 ms steps, then 4 ms ones: the steps beside the last persist were
    // the slow ones, which is the workload, not the persist.
    assert!(!steady_steps(Some(0.004), Some(0.2)));
    assert!(!steady_steps(Some(0.5), Some(0.2)));
    assert!(steady_steps(Some(0.25), Some(0.2)));
    assert!(
        steady_steps(Some(0.004), None),
        "nothing to compare with yet"
    );
    assert!(
        steady_steps(None, Some(0.2)),
        "no idle step: compared with the recent ones"
    );
}

#[test]
fn measured_interference_makes_background_persists_dearer() {
    let cow_events = |m: &mut CostModel, slowdown: f64| {
        for _ in 0..10 {
            let Event::Checkpoint(mut e) = event(Scheme::CopyOnWrite, 6.0, 0.001, 1.0, GIB, GIB, 1)
            else {
                unreachable!()
            };
            // 10 steps of 0.5 s, 2 of them beside the last persist.
            e.steps_beside_persist = 2;
            e.compute_beside_persist = secs(2.0 * 0.5 * (1.0 + slowdown));
            e.compute = secs(8.0 * 0.5) + e.compute_beside_persist;
            m.observe(&e.into());
        }
    };
    let overhead = |slowdown: f64| {
        let mut m = model(1);
        let mut rng = StdRng::seed_from_u64(10);
        feed_full(&mut m, &mut rng, 5, 6.0);
        cow_events(&mut m, slowdown);
        m.evaluate(
            Plan::only(Scheme::CopyOnWrite),
            secs(6.0),
            &Constraints::default(),
        )
        .expect("observed")
        .current
        .overhead
    };
    let (quiet, busy) = (overhead(0.0), overhead(0.5));
    // Half of a 1 s persist lost per 6 s: about 8 % more overhead.
    assert!(busy > quiet + 0.05, "{quiet} {busy}");
}

#[test]
fn a_measured_improvement_is_offered_while_a_cheaper_guess_is_unmeasured() {
    let mut m = model(1);
    let mut rng = StdRng::seed_from_u64(13);
    feed_full(&mut m, &mut rng, 10, 60.0);
    feed_incremental(&mut m, &mut rng, 10, 60.0);
    // Copy-on-write is unmeasured; its prior (a 2 % stall) looks best.
    let eval = m
        .evaluate(
            Plan::only(Scheme::Full),
            secs(60.0),
            &Constraints::default(),
        )
        .expect("observed");
    let kinds: Vec<(Scheme, Basis)> = eval
        .recommendations
        .iter()
        .filter_map(|r| match r {
            Recommendation::Switch { to, advice, .. } => Some((*to, advice.basis)),
            _ => None,
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (Scheme::CopyOnWrite, Basis::Prior),
            (Scheme::Incremental, Basis::Observed)
        ],
        "{:#?}",
        eval.recommendations
    );
}

#[test]
fn a_third_checkpoint_does_not_make_a_scheme_look_less_known() {
    let confidence = |incrementals: usize| {
        let mut m = model(1);
        let mut rng = StdRng::seed_from_u64(14);
        feed_full(&mut m, &mut rng, 1, 60.0);
        feed_incremental(&mut m, &mut rng, incrementals, 60.0);
        let constraints = Constraints {
            allowed: SchemeSet::of(&[Scheme::Full, Scheme::Incremental]),
            ..Constraints::default()
        };
        let eval = m
            .evaluate(Plan::only(Scheme::Full), secs(60.0), &constraints)
            .expect("observed");
        eval.recommendations
            .first()
            .map_or(0.0, |r| r.advice().confidence)
    };
    // Priced with the prior's uncertainty at 2, fitted from 3 on: the
    // fit's t multiplier (>10 at 3) must not undo what was learnt.
    for n in 2..6 {
        assert!(confidence(n) > 0.9, "{n} incrementals: {}", confidence(n));
    }
}
