//! Copy-on-write's background costs: full bases persisted beside the
//! computation, the captures that wait behind them, the retention pass on
//! the persisting thread, and a fresh state's first capture.

use super::*;

/// A copy-on-write checkpoint of a 1 GiB state that stored `stored`
/// bytes (a full base stores the whole state).
fn cow_event(
    compute: f64,
    stall: f64,
    persist: f64,
    dirty: f64,
    stored: f64,
    chain: u32,
) -> CheckpointEvent {
    let Event::Checkpoint(mut e) = event(
        Scheme::CopyOnWrite,
        compute,
        stall,
        persist,
        GIB,
        dirty,
        chain,
    ) else {
        unreachable!()
    };
    e.bytes_written = stored as u64;
    e
}

/// Constraints that allow copy-on-write alone.
fn cow_only() -> Constraints {
    Constraints {
        allowed: SchemeSet::of(&[Scheme::CopyOnWrite]),
        ..Constraints::default()
    }
}

#[test]
fn copy_on_write_full_bases_are_written_in_the_background_too() {
    let mut m = model(1);
    let mut rng = StdRng::seed_from_u64(12);
    feed_full(&mut m, &mut rng, 10, 60.0);
    for i in 0..12u32 {
        // Increments of 1 % and, every 4th, a full base: both stall
        // 2 ms, the base takes a full write to persist.
        let base = i % 4 == 0;
        let stored = if base { GIB } else { 0.01 * GIB };
        let persist = 0.01 + stored / 1e9;
        let chain = if base { 1 } else { 1 + i % 4 };
        let e = cow_event(60.0, 0.002, persist, 0.01 * GIB, stored, chain);
        m.observe(&e.into());
    }
    let constraints = cow_only();
    let eval = m
        .evaluate(
            Plan::with_full_every(Scheme::CopyOnWrite, 4),
            secs(60.0),
            &constraints,
        )
        .expect("observed");
    // Not a full checkpoint's 1 s stall every 4th time: still ~2 ms.
    let stall = eval.current.stall.as_secs_f64();
    assert!(stall < 0.01, "{stall}");
    // But the base's persist counts: (3 × ~20 ms + ~1 s) / 4.
    let persist = eval.current.persist.as_secs_f64();
    assert!((0.2..0.4).contains(&persist), "{persist}");
}

#[test]
fn a_background_full_base_holds_up_the_captures_that_follow_it() {
    // Copy-on-write increments of 1 % that persist in 5 ms and, every
    // 16th, a full base that persists in 0.4 s: on average the cycle's
    // persists take 30 ms, and at an MTBF of 2 s they alone would ask
    // for a checkpoint every ~0.1 s, where the base holds up the next
    // captures for 0.2 s.
    let feed = |m: &mut CostModel| {
        for i in 0..32u32 {
            let base = i % 16 == 0;
            let stored = if base { GIB } else { 0.01 * GIB };
            let persist = 0.001 + 0.4 * stored / GIB;
            let e = cow_event(0.1, 0.0005, persist, 0.01 * GIB, stored, 1 + i % 16);
            m.observe(&e.into());
        }
    };
    let constraints = cow_only();
    let plan = Plan::with_full_every(Scheme::CopyOnWrite, 16);
    let evaluate = |queue: Option<u32>| {
        // Persists on a spare core, barely slowing the computation.
        let mut config = ModelConfig::with_mtbf(Duration::from_secs(2));
        config.background_interference = 0.05;
        let mut m = CostModel::new(config);
        if let Some(q) = queue {
            m.set_persist_queue(q);
        }
        feed(&mut m);
        m.evaluate(plan, secs(0.1), &constraints).expect("observed")
    };
    // The checkpointer's default: the base persisting and one more
    // capture queued; the third capture after the base waits for it,
    // 0.2 s per cycle of 16.
    let short = evaluate(None);
    let waits_alone = (0.4 - 0.2) / 16.0 / 0.1;
    // With room for every capture of the cycle nothing waits: the same
    // plan at the same interval is cheaper by about those waits, and the
    // best interval is shorter.
    let roomy = evaluate(Some(64));
    let gap = short.current.overhead - roomy.current.overhead;
    assert!(gap >= 0.8 * waits_alone, "{gap} < {waits_alone}");
    let (tuned, tuned_roomy) = (
        short.current_tuned.interval.as_secs_f64(),
        roomy.current_tuned.interval.as_secs_f64(),
    );
    assert!(tuned > 1.2 * tuned_roomy, "{tuned} vs {tuned_roomy}");
}

#[test]
fn a_first_capture_teaches_no_dirtying_rate() {
    let mut m = model(1);
    // A fresh state's first capture: everything is new after 20 ms.
    let mut first = cow_event(0.02, 0.001, 0.4, GIB, GIB, 1);
    first.first_capture = true;
    m.observe(&first.into());
    let constraints = Constraints::default();
    let eval = m
        .evaluate(Plan::only(Scheme::CopyOnWrite), secs(1.0), &constraints)
        .expect("observed");
    assert!(!eval.dirtiness_measured);
    // Unmeasured, every interval is priced at the whole state.
    assert!(m.pricer().expect("observed").dirty_at(1.0) > 0.99 * GIB);
    // Then 1 % a second: that is the rate, not a mean with "everything
    // after 20 ms".
    m.observe(&event(
        Scheme::CopyOnWrite,
        1.0,
        0.001,
        0.02,
        GIB,
        0.01 * GIB,
        2,
    ));
    let eval = m
        .evaluate(Plan::only(Scheme::CopyOnWrite), secs(1.0), &constraints)
        .expect("observed");
    assert!(eval.dirtiness_measured);
    let d = m.pricer().expect("observed").dirty_at(1.0) / GIB;
    assert!((0.009..0.011).contains(&d), "{d}");
}

#[test]
fn copy_on_write_retention_counts_in_the_persisting_threads_time() {
    let evaluate = |retention: f64| {
        let mut m = model(1);
        for i in 0..8u32 {
            let dirty = 0.01 * GIB * (1.0 + f64::from(i % 3) * 0.1);
            let mut e = cow_event(1.0, 0.001, 0.01, dirty, dirty, 1 + i);
            e.retention = secs(retention);
            m.observe(&e.into());
        }
        m.evaluate(Plan::only(Scheme::CopyOnWrite), secs(1.0), &cow_only())
            .expect("observed")
            .current
            .persist
            .as_secs_f64()
    };
    // The next write starts only after the pass: 10 ms + 30 ms a checkpoint.
    let (without, with) = (evaluate(0.0), evaluate(0.03));
    assert!((0.035..0.045).contains(&with), "{with}");
    assert!((0.008..0.012).contains(&without), "{without}");
}
