//! Checkpoint interval and overhead formulas: Young, Daly, and a two-level
//! (fast tier + slow tier) first-order model.
//!
//! Notation, all in seconds: `τ` compute time between checkpoints, `δ`
//! time a checkpoint costs the computation, `R` time to restart (detect,
//! relaunch, restore), `M` mean time between failures, `λ = 1/M`.
//! "Overhead" is the expected extra wall-clock time per second of useful
//! work: wall time = (1 + overhead) × useful work.
//!
//! * **Young (1974)**, first order: overhead `≈ δ/τ + τ/(2M)`, minimal at
//!   `τ = √(2δM)`. J. W. Young, "A first order approximation to the
//!   optimum checkpoint interval", CACM 17(9):530–531, 1974.
//! * **Daly (2006)**, exponential failures, failures may strike during
//!   checkpoints and restarts: the expected wall time for `T_s` seconds of
//!   work is `T_w = M·e^{R/M}·(e^{(τ+δ)/M} − 1)·T_s/τ`, so
//!   overhead `= (M/τ)·e^{R/M}·(e^{(τ+δ)/M} − 1) − 1`; its higher-order
//!   optimum is `τ = √(2δM)·[1 + ⅓√(δ/2M) + ⅑(δ/2M)] − δ` for `δ < 2M`,
//!   and `τ = M` otherwise. J. T. Daly, "A higher order estimate of the
//!   optimum checkpoint interval for restart dumps", Future Generation
//!   Computer Systems 22(3):303–312, 2006.
//! * **Two levels** (in the spirit of Moody et al., "Design, modeling, and
//!   evaluation of a scalable multi-level checkpointing system", SC'10,
//!   but first order rather than their Markov model): see [`TwoLevel`].
//!
//! The cost model minimises the full Daly expression numerically
//! ([`minimize_interval`]), because its `δ` may depend on `τ` (an
//! incremental checkpoint writes more after a longer interval); for a
//! constant `δ` that optimum agrees with [`daly_interval`] to a fraction of
//! a percent (tested below).

/// Young's first-order optimal interval `√(2δM)`.
pub fn young_interval(checkpoint: f64, mtbf: f64) -> f64 {
    (2.0 * checkpoint * mtbf).sqrt()
}

/// Daly's higher-order optimal interval:
/// `√(2δM)·[1 + ⅓√(δ/2M) + ⅑(δ/2M)] − δ` when `δ < 2M`, else `M`.
pub fn daly_interval(checkpoint: f64, mtbf: f64) -> f64 {
    if checkpoint >= 2.0 * mtbf {
        return mtbf;
    }
    let x = checkpoint / (2.0 * mtbf);
    young_interval(checkpoint, mtbf) * (1.0 + x.sqrt() / 3.0 + x / 9.0) - checkpoint
}

/// Daly's expected overhead per unit of useful work at interval `tau`:
/// `(M/τ)·e^{R/M}·(e^{(τ+δ)/M} − 1) − 1`.
///
/// With no failures (`mtbf` infinite, zero or not a number) it is `δ/τ`.
/// A non-positive `tau` costs infinitely much.
pub fn daly_overhead(tau: f64, checkpoint: f64, restart: f64, mtbf: f64) -> f64 {
    if tau.is_nan() || tau <= 0.0 {
        return f64::INFINITY;
    }
    if !(mtbf.is_finite() && mtbf > 0.0) {
        return checkpoint / tau;
    }
    (mtbf / tau) * (restart / mtbf).exp() * ((tau + checkpoint) / mtbf).exp_m1() - 1.0
}

/// Young's first-order overhead `δ/τ + (τ/2 + R)/M` (with `R/M` for the
/// restart), for comparison with [`daly_overhead`].
// Not used by the policy yet (it prices one tier); kept, tested, for
// the two-tier model.
#[cfg_attr(not(test), allow(dead_code))]
pub fn young_overhead(tau: f64, checkpoint: f64, restart: f64, mtbf: f64) -> f64 {
    if tau.is_nan() || tau <= 0.0 {
        return f64::INFINITY;
    }
    let rate = if mtbf.is_finite() && mtbf > 0.0 {
        1.0 / mtbf
    } else {
        0.0
    };
    checkpoint / tau + rate * (tau / 2.0 + restart)
}

const GRID_POINTS: usize = 48;
const GOLDEN_STEPS: usize = 60;

/// Minimises `cost(τ)` over `lo ≤ τ ≤ hi` (both positive): a log-spaced
/// grid scan, then golden-section search on `ln τ` around the best grid
/// point. Returns `(τ, cost(τ))`. Robust to costs that are not convex, as
/// long as the grid resolves their dips.
pub fn minimize_interval(cost: impl Fn(f64) -> f64, lo: f64, hi: f64) -> (f64, f64) {
    let lo = if lo > 0.0 && lo.is_finite() { lo } else { 1e-6 };
    let hi = if hi.is_finite() && hi > lo { hi } else { lo };
    let (ln_lo, ln_hi) = (lo.ln(), hi.ln());
    let step = (ln_hi - ln_lo) / (GRID_POINTS - 1) as f64;
    let at = |i: usize| (ln_lo + step * i as f64).exp().clamp(lo, hi);
    let mut best = (0, f64::INFINITY);
    for i in 0..GRID_POINTS {
        let c = cost(at(i));
        if c < best.1 {
            best = (i, c);
        }
    }
    if step <= 0.0 {
        return (lo, cost(lo));
    }
    let (mut a, mut b) = (
        (ln_lo + step * best.0.saturating_sub(1) as f64).max(ln_lo),
        (ln_lo + step * (best.0 + 1) as f64).min(ln_hi),
    );
    let phi = 0.5 * (5.0_f64.sqrt() - 1.0);
    let f = |x: f64| cost(x.exp().clamp(lo, hi));
    let (mut x1, mut x2) = (b - phi * (b - a), a + phi * (b - a));
    let (mut f1, mut f2) = (f(x1), f(x2));
    for _ in 0..GOLDEN_STEPS {
        if f1 <= f2 {
            b = x2;
            (x2, f2) = (x1, f1);
            x1 = b - phi * (b - a);
            f1 = f(x1);
        } else {
            a = x1;
            (x1, f1) = (x2, f2);
            x2 = a + phi * (b - a);
            f2 = f(x2);
        }
    }
    let (x, fx) = if f1 <= f2 { (x1, f1) } else { (x2, f2) };
    if fx <= best.1 {
        (x.exp().clamp(lo, hi), fx)
    } else {
        (at(best.0), best.1)
    }
}

/// One checkpoint level: what writing to it costs and what restoring from
/// it costs, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
// Not used by the policy yet (it prices one tier); kept, tested, for
// the two-tier model.
#[cfg_attr(not(test), allow(dead_code))]
pub struct Level {
    /// Time a checkpoint at this level costs the computation (for the slow
    /// level: the cost *beyond* the fast checkpoint it drains).
    pub checkpoint: f64,
    /// Time to restart from this level.
    pub restart: f64,
    /// Rate (per second) of the failures that this level is the fastest
    /// one to survive.
    pub failure_rate: f64,
}

/// A fast tier written every `τ` and a slow tier written every `k`-th
/// checkpoint; a failure of the fast class restarts from the fast tier,
/// one of the slow class (the fast tier was lost with it) from the slow
/// tier.
///
/// First-order expected overhead per unit of useful work:
///
/// `O(τ, k) = (δ₁ + δ₂/k)/τ + λ₁(τ/2 + R₁) + λ₂(kτ/2 + R₂)`
///
/// For fixed `k` it is minimal at `τ*(k) = √(2(δ₁ + δ₂/k)/(λ₁ + kλ₂))`
/// with `O = √(2(δ₁ + δ₂/k)(λ₁ + kλ₂)) + λ₁R₁ + λ₂R₂`, and the product
/// under the root is minimal at `k* = √(δ₂λ₁/(δ₁λ₂))`. With `λ₂ = 0` and
/// no slow level it is Young's model. Moody et al. (SC'10) solve the same
/// trade-off exactly with a Markov model; this first-order form is the seam
/// where that refinement goes.
#[derive(Debug, Clone, Copy, PartialEq)]
// Not used by the policy yet (it prices one tier); kept, tested, for
// the two-tier model.
#[cfg_attr(not(test), allow(dead_code))]
pub struct TwoLevel {
    /// The fast tier (e.g. node-local storage).
    pub fast: Level,
    /// The slow tier (e.g. shared storage).
    pub slow: Level,
}

// Not used by the policy yet (it prices one tier); kept, tested, for
// the two-tier model.
#[cfg_attr(not(test), allow(dead_code))]
impl TwoLevel {
    /// `O(τ, k)` as above; `k = 0` is treated as 1.
    pub fn overhead(&self, tau: f64, k: u32) -> f64 {
        if tau.is_nan() || tau <= 0.0 {
            return f64::INFINITY;
        }
        let k = f64::from(k.max(1));
        let (f, s) = (&self.fast, &self.slow);
        (f.checkpoint + s.checkpoint / k) / tau
            + f.failure_rate * (tau / 2.0 + f.restart)
            + s.failure_rate * (k * tau / 2.0 + s.restart)
    }

    /// `τ*(k)`, the best fast interval for a given `k` (infinite when no
    /// failure is expected).
    pub fn best_interval(&self, k: u32) -> f64 {
        let k = f64::from(k.max(1));
        let cost = self.fast.checkpoint + self.slow.checkpoint / k;
        let rate = self.fast.failure_rate + k * self.slow.failure_rate;
        if rate > 0.0 {
            (2.0 * cost / rate).sqrt()
        } else {
            f64::INFINITY
        }
    }

    /// The best `(τ, k, overhead)` with `1 ≤ k ≤ max_k` and `τ` clamped to
    /// `[lo, hi]`: integer `k` around the continuous optimum `k*`, then
    /// `τ*(k)`.
    pub fn optimize(&self, max_k: u32, lo: f64, hi: f64) -> (f64, u32, f64) {
        let max_k = max_k.max(1);
        let (f, s) = (&self.fast, &self.slow);
        let k_star = if f.checkpoint > 0.0 && s.failure_rate > 0.0 {
            (s.checkpoint * f.failure_rate / (f.checkpoint * s.failure_rate)).sqrt()
        } else {
            f64::from(max_k)
        };
        let around = k_star.clamp(1.0, f64::from(max_k)).floor() as u32;
        let mut best = (hi, max_k, f64::INFINITY);
        for k in [around.saturating_sub(1), around, around + 1, max_k] {
            let k = k.clamp(1, max_k);
            let tau = self.best_interval(k).clamp(lo, hi);
            let o = self.overhead(tau, k);
            if o < best.2 {
                best = (tau, k, o);
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs()
    }

    #[test]
    fn young_known_values() {
        // √(2·60·86400) = √10 368 000.
        assert!(close(
            young_interval(60.0, 86_400.0),
            3_219.937_887_6,
            1e-10
        ));
        assert!(close(
            young_interval(300.0, 3_600.0),
            1_469.693_845_67,
            1e-10
        ));
        assert_eq!(young_interval(0.0, 3_600.0), 0.0);
    }

    #[test]
    fn daly_known_values() {
        // Values computed by hand from Daly's eq. (37).
        assert!(close(daly_interval(60.0, 86_400.0), 3_180.062_113_6, 1e-9));
        assert!(close(daly_interval(300.0, 3_600.0), 1_276.497_983_8, 1e-9));
        // δ = M/2: √(2δM) = M, bracket 1 + 1/6 + 1/36, minus δ.
        assert!(close(daly_interval(1_800.0, 3_600.0), 2_500.0, 1e-12));
        // δ ≥ 2M: τ = M.
        assert_eq!(daly_interval(5_000.0, 2_000.0), 2_000.0);
        // Daly tends to Young as δ/M → 0.
        let (d, y) = (daly_interval(1.0, 1e7), young_interval(1.0, 1e7));
        assert!(close(d, y, 1e-3));
    }

    #[test]
    fn daly_interval_is_near_the_exact_optimum_of_daly_model() {
        // The exact optimum solves e^{(τ+δ)/M}(1 − τ/M) = 1.
        for (c, m, exact) in [
            (60.0, 86_400.0, 3_180.062_732_3),
            (1_800.0, 3_600.0, 0.698_290_437_3 * 3_600.0),
        ] {
            let (tau, _) = minimize_interval(|t| daly_overhead(t, c, 0.0, m), 1.0, 1e6);
            assert!(close(tau, exact, 1e-4), "numeric {tau} vs exact {exact}");
            assert!(close(daly_interval(c, m), exact, 0.01));
        }
    }

    #[test]
    fn daly_overhead_known_values() {
        // (M/τ)·e^{R/M}·(e^{(τ+δ)/M} − 1) − 1, by hand.
        let o = daly_overhead(3_180.07, 60.0, 120.0, 86_400.0);
        assert!(close(o, 0.039_655_714_875, 1e-6), "{o}");
        assert!(close(
            daly_overhead(600.0, 10.0, 0.0, 3_600.0),
            0.107_879_189,
            1e-6
        ));
        assert_eq!(daly_overhead(100.0, 5.0, 10.0, f64::INFINITY), 0.05);
        assert!(daly_overhead(0.0, 5.0, 10.0, 100.0).is_infinite());
        // First order agrees when δ, τ ≪ M.
        let (d, y) = (
            daly_overhead(1_000.0, 1.0, 5.0, 1e7),
            young_overhead(1_000.0, 1.0, 5.0, 1e7),
        );
        assert!(close(d, y, 1e-3), "{d} vs {y}");
    }

    #[test]
    fn minimizer_respects_bounds() {
        let (tau, _) = minimize_interval(|t| daly_overhead(t, 60.0, 0.0, 86_400.0), 10.0, 100.0);
        assert!(close(tau, 100.0, 1e-9));
        let (tau, _) = minimize_interval(|t| daly_overhead(t, 60.0, 0.0, 86_400.0), 5e3, 1e5);
        assert!(close(tau, 5e3, 1e-9));
        let (tau, v) = minimize_interval(|t| (t.ln() - 3.0).powi(2), 7.0, 7.0);
        assert_eq!(tau, 7.0);
        assert!(v.is_finite());
    }

    #[test]
    fn two_level_reduces_to_young_with_one_failure_class() {
        let model = TwoLevel {
            fast: Level {
                checkpoint: 10.0,
                restart: 30.0,
                failure_rate: 1.0 / 3_600.0,
            },
            slow: Level {
                checkpoint: 100.0,
                restart: 300.0,
                failure_rate: 0.0,
            },
        };
        let (tau, k, o) = model.optimize(64, 1.0, 1e6);
        assert_eq!(k, 64, "no slow-class failures: drain as rarely as allowed");
        let young = young_interval(10.0 + 100.0 / 64.0, 3_600.0);
        assert!(close(tau, young, 1e-12));
        assert!(close(
            o,
            young_overhead(tau, 10.0 + 100.0 / 64.0, 30.0, 3_600.0),
            1e-12
        ));
    }

    #[test]
    fn two_level_picks_the_continuous_optimum_k() {
        // k* = √(δ₂λ₁/(δ₁λ₂)) = √(200·1e-4/(5·1e-6)) = √4000 ≈ 63.2.
        let model = TwoLevel {
            fast: Level {
                checkpoint: 5.0,
                restart: 10.0,
                failure_rate: 1e-4,
            },
            slow: Level {
                checkpoint: 200.0,
                restart: 400.0,
                failure_rate: 1e-6,
            },
        };
        let (tau, k, o) = model.optimize(1_000, 1.0, 1e7);
        assert!(k == 63 || k == 64, "{k}");
        assert!(close(tau, model.best_interval(k), 1e-12));
        for other in [1, 10, 30, 100, 500] {
            let t = model.best_interval(other);
            assert!(o <= model.overhead(t, other) + 1e-15, "k={other}");
        }
    }
}
