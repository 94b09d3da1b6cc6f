//! Unit tests of the fit: exact and noisy data with known coefficients,
//! interval coverage, forgetting, and degenerate sizes.

use super::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[test]
fn a_narrow_fit_borrows_the_prior_slope_and_a_wide_one_keeps_its_own() {
    let mut rng = StdRng::seed_from_u64(11);
    // Cost 5 ms + 4 ns/byte, sizes within ±2 % of 10 MB, 3 % noise.
    let truth = |x: f64| 0.005 + 4e-9 * x;
    let mut narrow = LinearFit::new(0.97);
    for _ in 0..4 {
        let x = 1e7 * rng.random_range(0.98..1.02);
        narrow.observe(x, 1e9, truth(x) * (1.0 + 0.03 * normal(&mut rng)));
    }
    let solved = narrow.solve(0.95, Driver::First).expect("observed");
    let prior = Estimate {
        mean: 4.2e-9,
        half_width: 0.4e-9,
    };
    // A tenth of the sizes seen: the own slope extrapolates wildly, the
    // prior-backed prediction stays near the truth and says how sure it
    // is.
    let own = solved.predict(1e6, 1e9);
    let backed = solved.predict_with_slope_prior(1e6, 1e9, prior);
    assert!(backed.half_width < own.half_width, "{backed:?} vs {own:?}");
    assert!(
        (backed.mean - truth(1e6)).abs() < 0.01,
        "{backed:?} against {}",
        truth(1e6)
    );
    assert!(backed.covers(truth(1e6)), "{backed:?}");
    // Over a wide range the own slope is sharp and a wrong prior barely
    // moves it.
    let mut wide = LinearFit::new(0.97);
    for i in 0..40 {
        let x = 1e6 * f64::from(1 + i % 20);
        wide.observe(x, 1e9, truth(x) * (1.0 + 0.01 * normal(&mut rng)));
    }
    let solved = wide.solve(0.95, Driver::First).expect("observed");
    let wrong = Estimate {
        mean: 8e-9,
        half_width: 2e-9,
    };
    let p = solved.predict_with_slope_prior(5e7, 1e9, wrong);
    assert!((p.mean - truth(5e7)).abs() < 0.02 * truth(5e7), "{p:?}");
    // An unbounded prior adds nothing: the fit's own prediction.
    let unbounded = Estimate {
        mean: 1.0,
        half_width: f64::INFINITY,
    };
    let (with, plain) = (
        solved.predict_with_slope_prior(5e7, 1e9, unbounded),
        solved.predict(5e7, 1e9),
    );
    assert!((with.mean - plain.mean).abs() < 1e-12, "{with:?} {plain:?}");
    assert!((with.half_width - plain.half_width).abs() < 1e-12);
}

fn normal(rng: &mut StdRng) -> f64 {
    // Box–Muller: enough for test noise.
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[test]
fn quantiles_match_tables() {
    assert!((t_multiplier(0.95, 10.0) - 2.228_138_9).abs() < 1e-6);
    assert!((t_multiplier(0.95, 1.0) - 12.706_204_7).abs() < 1e-5);
    assert!((t_multiplier(0.90, 30.0) - 1.697_260_9).abs() < 1e-6);
    assert!((z_multiplier(0.95) - 1.959_964).abs() < 1e-6);
    assert!((t_multiplier(0.95, 2e6) - 1.959_964).abs() < 1e-6);
    assert!(t_multiplier(0.95, 0.0).is_infinite());
    assert!(t_multiplier(1.5, 10.0).is_infinite());
}

#[test]
fn exact_data_gives_exact_coefficients() {
    let mut fit = LinearFit::new(1.0);
    for i in 0..20 {
        let x1 = f64::from(i) * 1e6;
        let x2 = f64::from(i % 7) * 3e8 + 1e9;
        fit.observe(x1, x2, 0.01 + 2e-9 * x1 + 5e-10 * x2);
    }
    let solved = fit.solve(0.95, Driver::First).expect("observed");
    let (a, b1, b2) = solved.coefficients();
    assert!((a - 0.01).abs() < 1e-9, "{a}");
    assert!((b1 - 2e-9).abs() < 1e-15, "{b1}");
    assert!((b2 - 5e-10).abs() < 1e-16, "{b2}");
    let p = solved.predict(5e6, 2e9);
    assert!((p.mean - (0.01 + 1e-2 + 1.0)).abs() < 1e-9);
    assert!(p.half_width < 1e-6);
}

/// The textbook example: y on one x, intercept and slope with their
/// standard errors, checked against hand-computed values.
#[test]
fn one_predictor_matches_hand_computation() {
    let xs = [1.0, 2.0, 3.0, 4.0, 5.0];
    let ys = [2.0, 4.1, 5.9, 8.2, 9.8];
    let mut fit = LinearFit::new(1.0);
    for (x, y) in xs.iter().zip(ys) {
        fit.observe(*x, 7.0, y);
    }
    let solved = fit.solve(0.95, Driver::First).expect("observed");
    // Sxx = 10, Sxy = 19.7, slope 1.97, intercept 6 - 1.97*3 = 0.09.
    let (a, b, _) = solved.coefficients();
    assert!((b - 1.97).abs() < 1e-12);
    assert!((a - 0.09).abs() < 1e-12);
    // RSS = Syy - b*Sxy; Syy = 38.9 => RSS = 38.9 - 38.809 = 0.091.
    let s2 = 0.091 / 3.0;
    let (slope, _) = solved.slopes();
    let want = 3.182_446_3 * (s2 / 10.0_f64).sqrt();
    assert!(
        (slope.half_width - want).abs() < 1e-6,
        "{slope:?} vs {want}"
    );
}

#[test]
fn recovers_known_coefficients_with_covering_intervals() {
    let (a, b1, b2, sigma) = (0.02, 3e-9, 4e-10, 0.005);
    let (trials, mut covered, mut slope_covered) = (200, 0, 0);
    let x0 = (4e7, 1.5e9);
    let truth = a + b1 * x0.0 + b2 * x0.1;
    for seed in 0..trials {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut fit = LinearFit::new(1.0);
        for _ in 0..40 {
            let x1 = rng.random_range(1e6..1e8);
            let x2 = rng.random_range(5e8..3e9);
            fit.observe(x1, x2, a + b1 * x1 + b2 * x2 + sigma * normal(&mut rng));
        }
        let solved = fit.solve(0.95, Driver::First).expect("observed");
        let p = solved.predict(x0.0, x0.1);
        covered += u32::from(p.covers(truth));
        slope_covered += u32::from(solved.slopes().0.covers(b1));
        let (_, e1, e2) = solved.coefficients();
        assert!((e1 - b1).abs() < 0.2 * b1, "seed {seed}: b1 {e1}");
        assert!((e2 - b2).abs() < 0.5 * b2, "seed {seed}: b2 {e2}");
    }
    // Nominal 95 %: 190 of 200 expected; binomial sd ≈ 3.
    assert!(covered >= 180, "prediction interval covered {covered}/200");
    assert!(
        slope_covered >= 180,
        "slope interval covered {slope_covered}/200"
    );
}

#[test]
fn forgetting_follows_a_change() {
    let mut fit = LinearFit::new(0.9);
    for i in 0..100 {
        let x = 1e6 * f64::from(1 + i % 10);
        fit.observe(x, 1.0, 1e-8 * x);
    }
    for i in 0..100 {
        let x = 1e6 * f64::from(1 + i % 10);
        fit.observe(x, 1.0, 4e-8 * x);
    }
    let (_, b, _) = fit
        .solve(0.95, Driver::First)
        .expect("observed")
        .coefficients();
    assert!((b - 4e-8).abs() < 1e-10, "{b}");
    assert!(fit.weight() < 11.0);
}

#[test]
fn constant_driver_scales_in_proportion() {
    let mut fit = LinearFit::new(1.0);
    for y in [0.9, 1.0, 1.1] {
        fit.observe(1e6, 1e9, y);
    }
    let solved = fit.solve(0.95, Driver::First).expect("observed");
    let at_same = solved.predict(1e6, 1e9);
    assert!((at_same.mean - 1.0).abs() < 1e-12);
    let doubled = solved.predict(2e6, 1e9);
    assert!((doubled.mean - 2.0).abs() < 1e-12);
    assert!(doubled.half_width > at_same.half_width);
    // Driven by the second size, the first does not matter.
    let by_total = fit.solve(0.95, Driver::Second).expect("observed");
    assert!((by_total.predict(5e6, 1e9).mean - 1.0).abs() < 1e-12);
}

#[test]
fn sizes_a_few_bytes_apart_count_as_constant() {
    // Everything dirty at every checkpoint: the stored bytes differ
    // only by a manifest's length, and the times by noise.
    const MIB: f64 = 1_048_576.0;
    let mut fit = LinearFit::new(1.0);
    for (extra, y) in [(1_000.0, 0.042), (3_000.0, 0.038), (2_000.0, 0.046)] {
        fit.observe(32.0 * MIB + extra, 32.0 * MIB, y);
    }
    let solved = fit.solve(0.95, Driver::First).expect("observed");
    // A little below the sizes seen: about the mean time, scaled (a
    // slope fitted to 2 KB of spread would say 0.2 s).
    let near = solved.predict(31.8 * MIB, 32.0 * MIB).mean;
    assert!((near - 0.042 * 31.8 / 32.0).abs() < 1e-4, "{near}");
}

#[test]
fn collinear_sizes_fall_back_to_the_driver() {
    let mut fit = LinearFit::new(1.0);
    for i in 1..=10 {
        let x = f64::from(i) * 1e8;
        fit.observe(x, x, 0.1 + 1e-9 * x);
    }
    let solved = fit.solve(0.95, Driver::Second).expect("observed");
    let (a, b1, b2) = solved.coefficients();
    assert_eq!(b1, 0.0);
    assert!((b2 - 1e-9).abs() < 1e-15 && (a - 0.1).abs() < 1e-9);
}

#[test]
fn ignores_non_finite_and_handles_tiny_samples() {
    let mut fit = LinearFit::new(1.0);
    assert!(fit.solve(0.95, Driver::First).is_none());
    assert!(!fit.observe(f64::NAN, 1.0, 1.0));
    assert!(fit.observe(1.0, 1.0, 1.0));
    let solved = fit.solve(0.95, Driver::First).expect("observed");
    let p = solved.predict(1.0, 1.0);
    assert_eq!(p.mean, 1.0);
    assert!(p.half_width.is_infinite());
}

/// A stored fit may be damaged: a full count saturates.
#[test]
fn a_full_count_saturates() {
    let mut fit = LinearFit::new(0.95);
    fit.count = u64::MAX;
    fit.observe(1.0, 2.0, 3.0);
    assert_eq!(fit.count(), u64::MAX);
}
