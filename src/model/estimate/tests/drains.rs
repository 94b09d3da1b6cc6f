//! The drain ratio with lower tiers: what the model recommends as node
//! failures (the first tier lost) grow rarer or more frequent, and that one
//! tier prices as before.

use super::*;
use crate::model::estimate::pricing::priced_interference;
use statrs::distribution::{ContinuousCDF, Normal};

/// A drain of `bytes` to the first lower tier that took `secs`.
fn drain(bytes: f64, secs_taken: f64) -> Event {
    let mut e = CheckpointEvent::new(Scheme::Full, 0);
    e.tier = 1;
    e.persist = secs(secs_taken);
    e.bytes_written = bytes as u64;
    e.dirty_bytes = bytes as u64;
    e.logical_bytes = GIB as u64;
    e.into()
}

/// Process MTBF 1 h, node MTBF as given (`None`: the default assumption);
/// ten full checkpoints of 1 GiB at 1 GB/s, 60 s apart, and six drains of
/// the whole state, each ten times slower than a local write.
fn learned(node_mtbf_hours: Option<f64>) -> CostModel {
    let mut config = ModelConfig::with_mtbf(Duration::from_secs(3_600));
    config.node_mtbf = node_mtbf_hours.map(|h| Duration::from_secs_f64(h * 3_600.0));
    let mut m = CostModel::new(config);
    let mut rng = StdRng::seed_from_u64(11);
    feed_full(&mut m, &mut rng, 10, 60.0);
    for i in 0..6 {
        m.observe(&drain(GIB, 10.0 + 0.1 * f64::from(i)));
    }
    m
}

fn full_only() -> Constraints {
    Constraints {
        allowed: SchemeSet::of(&[Scheme::Full]),
        ..Constraints::default()
    }
}

/// `m`'s evaluation of full checkpoints `every` seconds apart, drained
/// every `k`-th (`None`: one tier).
fn evaluate(m: &CostModel, k: Option<u32>, every: f64, constraints: &Constraints) -> Evaluation {
    let plan = Plan::only(Scheme::Full);
    let plan = k.map_or(plan, |k| plan.draining_every(k));
    m.evaluate(plan, secs(every), constraints)
        .expect("observed")
}

/// The drain ratio of the cheapest candidate, evaluated from a drain of
/// every checkpoint.
fn best_ratio(m: &CostModel) -> u32 {
    let eval = evaluate(m, Some(1), 60.0, &full_only());
    eval.candidates
        .first()
        .and_then(|c| c.plan.drain_every())
        .expect("candidates carry the drain ratio")
}

/// The recommendation of a new drain ratio in `eval`, if any.
fn drain_ratio_change(eval: &Evaluation) -> Option<&Recommendation> {
    eval.recommendations.iter().find(|r| {
        matches!(
            r,
            Recommendation::Add {
                addition: Addition::DrainEvery(_),
                ..
            }
        )
    })
}

#[test]
fn rare_node_failures_drain_less_often_and_frequent_ones_every_time() {
    let rare = best_ratio(&learned(Some(100.0)));
    let frequent = best_ratio(&learned(Some(1.5)));
    assert!(rare >= 4, "node MTBF 100 h: drain every {rare}");
    assert!(frequent <= 2, "node MTBF 1.5 h: drain every {frequent}");
    // The recommendation to get there names the ratio and its reason.
    let m = learned(Some(100.0));
    let eval = evaluate(&m, Some(1), 90.0, &full_only());
    let rec = drain_ratio_change(&eval).expect("a new drain ratio is recommended");
    assert_eq!(rec.plan().drain_every(), Some(rare));
    assert_eq!(rec.advice().basis, Basis::Observed);
    assert!(rec.advice().reason.contains("node failures"), "{rec}");
}

#[test]
fn observed_node_failures_drain_more_often() {
    let mut m = learned(None);
    let before = best_ratio(&m);
    let mut rng = StdRng::seed_from_u64(12);
    for _ in 0..4 {
        feed_full(&mut m, &mut rng, 5, 60.0);
        m.observe(&RestartEvent::new(FailureClass::Node).into());
    }
    let after = best_ratio(&m);
    assert!(
        after < before,
        "four node failures in ~20 min: every {before} before, every {after} after"
    );
}

#[test]
fn one_tier_prices_as_before_and_unmeasured_drains_rest_on_priors() {
    let m = learned(Some(100.0));
    let eval = evaluate(&m, None, 60.0, &Constraints::default());
    assert!(
        eval.candidates
            .iter()
            .all(|c| c.plan.drain_every().is_none())
    );
    let mut fresh = model(1);
    let mut rng = StdRng::seed_from_u64(13);
    feed_full(&mut fresh, &mut rng, 10, 60.0);
    let eval = evaluate(&fresh, Some(1), 60.0, &full_only());
    assert!(eval.candidates.iter().all(|c| c.basis == Basis::Prior));
    assert!(
        eval.recommendations
            .iter()
            .all(|r| r.advice().basis == Basis::Prior)
    );
}

#[test]
fn the_drain_ratio_stays_within_its_bound() {
    let m = learned(Some(10_000.0));
    let bounded = Constraints {
        max_drain_every: 3,
        ..full_only()
    };
    let eval = evaluate(&m, Some(1), 60.0, &bounded);
    assert!(
        eval.candidates.iter().all(
            |c| c.plan.drain_every().is_some_and(|k| k <= 3) || c.plan.drain_every() == Some(1)
        )
    );
    assert_eq!(
        eval.candidates.first().and_then(|c| c.plan.drain_every()),
        Some(3)
    );
}

/// Ten checkpoints of 100 steps, 60 s of compute each: half the steps ran
/// beside a drain, `slower` times as slow as the other half.
fn feed_steps_beside_drains(m: &mut CostModel, slower: f64) {
    for _ in 0..10 {
        let mut e = CheckpointEvent::new(Scheme::Full, 0);
        let idle = 60.0 / (1.0 + slower);
        e.steps = 100;
        e.compute = secs(60.0);
        e.steps_beside_drain = 50;
        e.compute_beside_drain = secs(60.0 - idle);
        e.stall = secs(1.02);
        e.persist = secs(1.02);
        e.logical_bytes = GIB as u64;
        e.bytes_written = GIB as u64;
        e.dirty_bytes = (0.06 * GIB) as u64;
        m.observe(&e.into());
    }
}

#[test]
fn measured_drain_interference_sets_the_ratio() {
    let prior_only = best_ratio(&learned(Some(10.0)));
    let mut slowed = learned(Some(10.0));
    feed_steps_beside_drains(&mut slowed, 1.5);
    let mut unhindered = learned(Some(10.0));
    feed_steps_beside_drains(&mut unhindered, 1.0);
    let (slowed, unhindered) = (best_ratio(&slowed), best_ratio(&unhindered));
    // Drains that slow the steps by half cost ten times the prior's 5 %:
    // drain less often. Drains that cost the steps nothing: every time.
    assert!(
        slowed > prior_only && prior_only > unhindered,
        "drain every {slowed} (steps 1.5x slower beside a drain), {prior_only} (prior), \
         {unhindered} (no slowdown)"
    );
    assert_eq!(unhindered, 1);
}

/// Ten checkpoints of 100 steps of 0.5 s beside nothing: `persist_only`
/// of them beside a persist alone (`persist` times as slow), `both` beside
/// a persist and a drain (`persist · drain` times as slow), and
/// `drain_only` beside a drain alone.
fn feed_overlapping(
    m: &mut CostModel,
    (persist_only, both, drain_only): (u64, u64, u64),
    persist: f64,
    drain: f64,
) {
    for _ in 0..10 {
        let mut e = CheckpointEvent::new(Scheme::CopyOnWrite, 0);
        let step = 0.5;
        let idle = 100 - persist_only - both - drain_only;
        e.steps = 100;
        e.steps_beside_persist = persist_only;
        e.compute_beside_persist = secs(persist_only as f64 * step * persist);
        e.steps_beside_both = both;
        e.compute_beside_both = secs(both as f64 * step * persist * drain);
        e.steps_beside_drain = drain_only;
        e.compute_beside_drain = secs(drain_only as f64 * step * drain);
        e.compute = secs(idle as f64 * step)
            + e.compute_beside_persist
            + e.compute_beside_both
            + e.compute_beside_drain;
        e.stall = secs(0.01);
        e.persist = secs(1.0);
        e.logical_bytes = GIB as u64;
        e.bytes_written = (0.06 * GIB) as u64;
        e.dirty_bytes = (0.06 * GIB) as u64;
        m.observe(&e.into());
    }
}

fn slowdowns(m: &CostModel) -> (f64, f64) {
    let l = &m.learned;
    (
        priced_interference(&l.interference, f64::NAN),
        priced_interference(&l.drain_interference, f64::NAN),
    )
}

#[test]
fn steps_beside_a_persist_and_a_drain_tell_the_drains_share() {
    // Persists slow the steps by half, drains by a fifth; every step a
    // drain overlaps also overlaps a persist (short intervals), so no
    // step runs beside a drain alone.
    let mut m = CostModel::new(ModelConfig::with_mtbf(Duration::from_secs(3_600)));
    feed_overlapping(&mut m, (40, 30, 0), 1.5, 1.2);
    let (persist, drain) = slowdowns(&m);
    assert!((persist - 0.5).abs() < 0.01, "persist slowdown {persist}");
    assert!((drain - 0.2).abs() < 0.01, "drain slowdown {drain}");
    // Persists back to back, some steps beside a drain alone: the
    // persist's share comes out of the steps beside both.
    let mut m = CostModel::new(ModelConfig::with_mtbf(Duration::from_secs(3_600)));
    feed_overlapping(&mut m, (0, 60, 20), 1.5, 1.2);
    let (persist, drain) = slowdowns(&m);
    assert!((persist - 0.5).abs() < 0.01, "persist slowdown {persist}");
    assert!((drain - 0.2).abs() < 0.01, "drain slowdown {drain}");
}

#[test]
fn steps_only_beside_both_teach_neither_share() {
    // The sum of two unknowns: both stay at their priors.
    let mut m = CostModel::new(ModelConfig::with_mtbf(Duration::from_secs(3_600)));
    feed_overlapping(&mut m, (0, 60, 0), 1.5, 1.2);
    let (persist, drain) = slowdowns(&m);
    assert!(persist.is_nan() && drain.is_nan(), "{persist} {drain}");
}

#[test]
fn a_node_rate_seen_little_prices_long_drain_cycles_higher_than_its_mean() {
    use crate::model::cost::daly_overhead;
    use crate::model::estimate::drains::DrainCosts;
    // Node MTBF assumed 10 h (one failure's worth), none seen yet.
    let m = learned(Some(10.0));
    let drains = DrainCosts::new(&m);
    let at_mean = |cycle: f64| daly_overhead(cycle, 0.0, 60.0, 1.0 / drains.node_rate);
    // A cycle of seconds: linear in the rate, the mean's price.
    let short = drains.node_overhead(10.0, 60.0);
    assert!(
        (short / at_mean(10.0) - 1.0).abs() < 0.01,
        "{short} vs {}",
        at_mean(10.0)
    );
    // A cycle of 10 h at a 10 h MTBF: a rate twice the mean (one chance
    // in seven) costs far more than half the rate saves.
    let long = drains.node_overhead(10.0 * 3_600.0, 60.0);
    let mean = at_mean(10.0 * 3_600.0);
    assert!(long > 1.3 * mean, "{long} vs {mean}");
}

#[test]
fn node_failures_growing_frequent_lower_the_ratio_within_three() {
    use crate::model::{FailureClass, RestartEvent};
    let mut m = learned(Some(100.0));
    let before = best_ratio(&m);
    assert!(before >= 4, "node MTBF 100 h: drain every {before}");
    // Three node failures 1.5 h of running apart: 67 times the rate.
    for _ in 0..3 {
        let mut restart = RestartEvent::new(FailureClass::Node);
        restart.unreported = Some(Duration::from_secs(5_400));
        m.observe(&restart.into());
    }
    let after = best_ratio(&m);
    let configured = best_ratio(&learned(Some(1.5)));
    assert!(
        after <= configured.max(2),
        "drain every {before} before, {after} after (every {configured} at a known 1.5 h)"
    );
    // The whole history alone still reads a node MTBF of more than a day:
    // priced on it, the ratio would stay where it was.
    let whole = m.failure_rate(FailureClass::Node).mtbf_secs() / 3_600.0;
    assert!(whole > 25.0, "whole-history node MTBF {whole:.1} h");
}

#[test]
fn a_drain_that_falls_behind_is_priced_with_what_changed_while_it_was_behind() {
    use crate::model::estimate::drains::DrainCosts;
    use crate::model::estimate::pricing::Bound;
    // Drains copy at 0.1 GiB/s (a whole GiB in 10 s); copy-on-write
    // checkpoints every second dirty 0.2 GiB each: a drain of every
    // checkpoint takes two periods, the next one then copies two
    // intervals' changes, and so on until the whole state is copied.
    let m = learned(Some(100.0));
    let costs = DrainCosts::new(&m);
    let dirty_at = |t: f64| (0.2 * GIB * t).min(GIB);
    let drain_secs = |bytes: f64| 10.0 * bytes / GIB;
    let terms = costs.terms(
        Plan::only(Scheme::CopyOnWrite).draining_every(1),
        1,
        1.0,
        0.0,
        GIB,
        1.0,
        dirty_at,
        |bytes| bytes / 1e9,
        Bound::Mean,
    );
    let copied = dirty_at(terms.cycle);
    assert!(
        terms.cycle >= 0.99 * drain_secs(copied),
        "a drain every {} s, which copies {copied} bytes in {} s",
        terms.cycle,
        drain_secs(copied)
    );
}

#[test]
fn a_drain_ratio_change_is_judged_on_the_difference_not_on_each_plans_error() {
    // Drains whose times scatter from 3 to 30 s (a busy remote): each
    // plan's overhead is uncertain, but the same drain fit prices every
    // ratio, so which ratio is cheaper is not.
    let mut config = ModelConfig::with_mtbf(Duration::from_secs(3_600));
    config.node_mtbf = Some(Duration::from_secs(5 * 3_600));
    let mut m = CostModel::new(config);
    let mut rng = StdRng::seed_from_u64(21);
    feed_full(&mut m, &mut rng, 10, 60.0);
    for i in 0..6 {
        m.observe(&drain(GIB, [3.0, 30.0, 8.0, 25.0, 4.0, 20.0][i]));
    }
    let eval = evaluate(&m, Some(4), 60.0, &full_only());
    let rec = drain_ratio_change(&eval)
        .expect("node failures every 5 h want drains more often than every 4th");
    let to = rec.plan();
    let after = eval
        .candidates
        .iter()
        .find(|c| c.plan == to)
        .expect("the recommended plan is a candidate");
    let independent = {
        let se = eval.current_tuned.std_error.hypot(after.std_error);
        Normal::new(0.0, 1.0)
            .expect("standard")
            .cdf((eval.current_tuned.overhead - after.overhead) / se)
    };
    assert!(
        rec.advice().confidence >= 0.9 && independent < 0.9,
        "confidence {} (independent errors would give {independent}): {rec}",
        rec.advice().confidence
    );
}

#[test]
fn a_drain_copies_every_pack_with_a_live_page_not_only_what_changed() {
    use crate::model::estimate::drains::chained_copy;
    let copy = |every: f64, full_every: Option<f64>, fraction: f64| {
        chained_copy(every, full_every, fraction * GIB, GIB, 1.0) / GIB
    };
    // Half the pages rewritten per interval: a pack of 8192 pages keeps a
    // live page for about a dozen intervals, so a drain every 16th copies
    // about that many packs of half a state each — not the one state that
    // changed over the window.
    let mid = copy(16.0, None, 0.5);
    assert!((6.0..8.0).contains(&mid), "{mid} states");
    // Every pack is needed while pages survive: the window's sum.
    let sparse = copy(16.0, None, 0.01);
    assert!((sparse - 0.16).abs() < 1e-3, "{sparse} states");
    // A drain of every checkpoint copies its own pack only.
    assert!((copy(1.0, None, 0.5) - 0.5).abs() < 1e-9);
    // Every page rewritten each interval: only the newest pack is live.
    assert!((copy(16.0, None, 1.0) - 1.0).abs() < 1e-9);
    // A full base every 2: the base (always in a window of 16) and, on
    // average, half an increment after it.
    let based = copy(16.0, Some(2.0), 0.5);
    assert!((based - 1.25).abs() < 1e-9, "{based} states");
    // Fractional windows (a drain that fell behind) weigh the last pack
    // in part, so the price grows smoothly with the window.
    let (a, b, c) = (
        copy(2.0, None, 0.5),
        copy(2.5, None, 0.5),
        copy(3.0, None, 0.5),
    );
    assert!(a < b && b < c, "{a} {b} {c}");
}
