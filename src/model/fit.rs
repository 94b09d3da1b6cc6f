//! Online least squares of a cost (seconds) against two driving sizes, with
//! confidence intervals from Student's t.
//!
//! # The maths
//!
//! The fit is the weighted least-squares regression
//! `y = a + b₁·x₁ + b₂·x₂ + ε`, ε ~ N(0, σ²), kept as running weighted
//! means and co-moments (the weighted form of Welford's update), so that
//! no observation is stored and bytes (≈10⁹) squared never meet an
//! intercept column in one ill-conditioned matrix. With forgetting factor
//! λ ∈ (0, 1], every older observation's weight is multiplied by λ when a
//! new one arrives (weights λ⁰, λ¹, λ², …), so the fit follows a workload
//! whose costs drift; its memory is about `1/(1-λ)` observations. With
//! λ = 1 it is ordinary least squares, exactly.
//!
//! With `W = Σwᵢ`, means `x̄, ȳ` and co-moments `Sₓₓ = Σwᵢ(xᵢ-x̄)(xᵢ-x̄)ᵀ`,
//! `Sₓᵧ`, `Sᵧᵧ`:
//!
//! * slopes `b = Sₓₓ⁻¹·Sₓᵧ`, intercept `a = ȳ - bᵀx̄`;
//! * residual variance `s² = (Sᵧᵧ - bᵀSₓᵧ) / (W - p - 1)` with `p` the
//!   number of slopes actually fitted;
//! * the mean cost at `x₀` is `ŷ = ȳ + bᵀ(x₀-x̄)` with standard error
//!   `s·√(1/W + (x₀-x̄)ᵀSₓₓ⁻¹(x₀-x̄))`, and its two-sided interval at level
//!   `γ` is `ŷ ± t_{(1+γ)/2, W-p-1}·se` (Student's t, via statrs).
//!
//! With λ < 1 the weights are treated as frequency weights. That is
//! conservative: Kish's effective sample size `(Σw)²/Σw²` of exponential
//! weights is about `2W`, so the true intervals are somewhat narrower than
//! the ones reported.
//!
//! A size that did not vary in the window carries no information about its
//! slope. "Did not vary" means a spread (standard deviation) under
//! [`MIN_SPREAD`] of its mean: sizes that differ by a few bytes in
//! megabytes (a manifest's length, chunk boundaries) give a slope that is
//! pure noise, and extrapolating it even a little way predicts negative or
//! absurd costs. Such a size is then left out (its effect sits in the
//! intercept), and if the *driver* — the size the caller says the cost scales with — is among
//! the sizes that did not vary, a prediction at another size scales the
//! mean cost in proportion to it (`ŷ = ȳ·x₀/x̄`): the physical prior that
//! writing twice the bytes takes about twice the time.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

/// Which of the two sizes of a [`LinearFit`] a cost is assumed to scale
/// with when the data cannot tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Driver {
    /// The first size (e.g. dirty bytes).
    First,
    /// The second size (e.g. total bytes).
    Second,
}

/// Smallest spread of a size, as a share of its mean (coefficient of
/// variation), for its slope to be fitted.
pub const MIN_SPREAD: f64 = 0.01;

/// Degrees of freedom beyond which Student's t is replaced by the normal
/// distribution (they differ by less than 10⁻⁶ there).
const NORMAL_DOF: f64 = 1e6;

/// Two-sided quantile multiplier for a confidence `level` with `dof`
/// degrees of freedom: `t_{(1+level)/2, dof}`. Infinite when `dof <= 0`
/// (no residual information) and for a level outside (0, 1).
pub fn t_multiplier(level: f64, dof: f64) -> f64 {
    if !(level > 0.0 && level < 1.0) || dof.is_nan() || dof <= 0.0 {
        return f64::INFINITY;
    }
    let p = 0.5 * (1.0 + level);
    if dof >= NORMAL_DOF {
        return z_multiplier(level);
    }
    StudentsT::new(0.0, 1.0, dof).map_or(f64::INFINITY, |t| t.inverse_cdf(p))
}

/// Two-sided standard normal multiplier for a confidence `level`:
/// `z_{(1+level)/2}` (1.96 at 0.95). Infinite for a level outside (0, 1).
pub fn z_multiplier(level: f64) -> f64 {
    if !(level > 0.0 && level < 1.0) {
        return f64::INFINITY;
    }
    Normal::new(0.0, 1.0).map_or(f64::INFINITY, |n| n.inverse_cdf(0.5 * (1.0 + level)))
}

/// An online least-squares fit of a cost against two sizes, with
/// exponential forgetting; see the [module docs](self) for the maths.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearFit {
    forgetting: f64,
    count: u64,
    weight: f64,
    mean1: f64,
    mean2: f64,
    mean_y: f64,
    s11: f64,
    s12: f64,
    s22: f64,
    s1y: f64,
    s2y: f64,
    syy: f64,
}

impl LinearFit {
    /// An empty fit. `forgetting` is λ, clamped to [0.5, 1]: 1 keeps every
    /// observation at full weight (ordinary least squares), 0.95 remembers
    /// about the last 20.
    pub fn new(forgetting: f64) -> Self {
        let forgetting = if forgetting.is_nan() {
            1.0
        } else {
            forgetting.clamp(0.5, 1.0)
        };
        LinearFit {
            forgetting,
            count: 0,
            weight: 0.0,
            mean1: 0.0,
            mean2: 0.0,
            mean_y: 0.0,
            s11: 0.0,
            s12: 0.0,
            s22: 0.0,
            s1y: 0.0,
            s2y: 0.0,
            syy: 0.0,
        }
    }

    /// Adds one observation of cost `y` at sizes `(x1, x2)`. Non-finite
    /// values are ignored (returns false).
    pub fn observe(&mut self, x1: f64, x2: f64, y: f64) -> bool {
        if !(x1.is_finite() && x2.is_finite() && y.is_finite()) {
            return false;
        }
        let l = self.forgetting;
        for s in [
            &mut self.s11,
            &mut self.s12,
            &mut self.s22,
            &mut self.s1y,
            &mut self.s2y,
            &mut self.syy,
        ] {
            *s *= l;
        }
        let old_weight = self.weight * l;
        self.weight = old_weight + 1.0;
        let (d1, d2, dy) = (x1 - self.mean1, x2 - self.mean2, y - self.mean_y);
        let f = old_weight / self.weight;
        self.s11 += f * d1 * d1;
        self.s12 += f * d1 * d2;
        self.s22 += f * d2 * d2;
        self.s1y += f * d1 * dy;
        self.s2y += f * d2 * dy;
        self.syy += f * dy * dy;
        self.mean1 += d1 / self.weight;
        self.mean2 += d2 / self.weight;
        self.mean_y += dy / self.weight;
        self.count = self.count.saturating_add(1);
        true
    }

    /// Observations seen (not discounted by forgetting).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Sum of the current weights, `W`: the effective number of
    /// observations the fit rests on.
    pub fn weight(&self) -> f64 {
        self.weight
    }

    /// Weighted means of the two sizes and of the cost.
    pub fn means(&self) -> (f64, f64, f64) {
        (self.mean1, self.mean2, self.mean_y)
    }

    /// Solves the fit at confidence `level` (e.g. 0.95); `driver` says which
    /// size the cost scales with when the data cannot tell. `None` before
    /// the first observation.
    pub fn solve(&self, level: f64, driver: Driver) -> Option<Solved> {
        if self.count == 0 || self.weight <= 0.0 {
            return None;
        }
        let varies = |s: f64, mean: f64| {
            let var = s / self.weight;
            var > 1e-300 && var > MIN_SPREAD * MIN_SPREAD * mean * mean
        };
        let (v1, v2) = (varies(self.s11, self.mean1), varies(self.s22, self.mean2));
        let collinear = v1 && v2 && {
            let det = self.s11 * self.s22 - self.s12 * self.s12;
            det <= 1e-9 * self.s11 * self.s22
        };
        let inverse = if v1 && v2 && !collinear {
            self.inverse2()
        } else {
            None
        };
        let active = match (v1, v2) {
            (true, true) => match inverse {
                Some(inv) => Active::Both(inv),
                None if driver == Driver::First => Active::First,
                None => Active::Second,
            },
            (true, false) => Active::First,
            (false, true) => Active::Second,
            (false, false) => Active::None,
        };
        let (slope1, slope2, rss, slopes) = match active {
            Active::Both(inv) => {
                let b1 = inv.i11 * self.s1y + inv.i12 * self.s2y;
                let b2 = inv.i12 * self.s1y + inv.i22 * self.s2y;
                (b1, b2, self.syy - b1 * self.s1y - b2 * self.s2y, 2.0)
            }
            Active::First => {
                let b = self.s1y / self.s11;
                (b, 0.0, self.syy - b * self.s1y, 1.0)
            }
            Active::Second => {
                let b = self.s2y / self.s22;
                (0.0, b, self.syy - b * self.s2y, 1.0)
            }
            Active::None => (0.0, 0.0, self.syy, 0.0),
        };
        let dof = self.weight - slopes - 1.0;
        let variance = if dof > 0.0 {
            rss.max(0.0) / dof
        } else {
            f64::INFINITY
        };
        let scale_by = match (active, driver) {
            (Active::Second | Active::None, Driver::First) if !v1 => Some(self.mean1),
            (Active::First | Active::None, Driver::Second) if !v2 => Some(self.mean2),
            _ => None,
        }
        .filter(|m| *m > 0.0);
        Some(Solved {
            active,
            scale_by,
            driver,
            weight: self.weight,
            mean1: self.mean1,
            mean2: self.mean2,
            mean_y: self.mean_y,
            slope1,
            slope2,
            s11: self.s11,
            s22: self.s22,
            variance,
            dof,
            multiplier: t_multiplier(level, dof),
        })
    }

    fn inverse2(&self) -> Option<Inverse2> {
        let det = self.s11 * self.s22 - self.s12 * self.s12;
        (det > 0.0 && det.is_finite()).then(|| Inverse2 {
            i11: self.s22 / det,
            i12: -self.s12 / det,
            i22: self.s11 / det,
        })
    }
}

/// Inverse of the 2×2 co-moment matrix.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Inverse2 {
    i11: f64,
    i12: f64,
    i22: f64,
}

/// Which slopes a solved fit could estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Active {
    Both(Inverse2),
    First,
    Second,
    None,
}

/// A mean cost with the half-width of its confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The point estimate.
    pub mean: f64,
    /// Half the width of the two-sided interval at the fit's confidence
    /// level (infinite when the data cannot bound it).
    pub half_width: f64,
}

impl Estimate {
    /// An estimate known exactly.
    pub fn exact(mean: f64) -> Self {
        Estimate {
            mean,
            half_width: 0.0,
        }
    }

    /// Lower end of the interval.
    pub fn lower(&self) -> f64 {
        self.mean - self.half_width
    }

    /// Upper end of the interval.
    pub fn upper(&self) -> f64 {
        self.mean + self.half_width
    }

    /// True when `value` lies inside the interval.
    pub fn covers(&self, value: f64) -> bool {
        self.lower() <= value && value <= self.upper()
    }
}

/// A [`LinearFit`] solved at one confidence level: cheap to query many
/// times.
#[derive(Debug, Clone, PartialEq)]
pub struct Solved {
    active: Active,
    scale_by: Option<f64>,
    driver: Driver,
    weight: f64,
    mean1: f64,
    mean2: f64,
    mean_y: f64,
    slope1: f64,
    slope2: f64,
    s11: f64,
    s22: f64,
    variance: f64,
    dof: f64,
    multiplier: f64,
}

impl Solved {
    /// Intercept and slopes `(a, b₁, b₂)`; a slope the data could not
    /// estimate is 0.
    pub fn coefficients(&self) -> (f64, f64, f64) {
        let a = self.mean_y - self.slope1 * self.mean1 - self.slope2 * self.mean2;
        (a, self.slope1, self.slope2)
    }

    /// Which of the two slopes the data could estimate (the others are 0
    /// and their effect sits in the intercept).
    pub fn identified(&self) -> (bool, bool) {
        match self.active {
            Active::Both(_) => (true, true),
            Active::First => (true, false),
            Active::Second => (false, true),
            Active::None => (false, false),
        }
    }

    /// Residual degrees of freedom, `W - p - 1`.
    pub fn dof(&self) -> f64 {
        self.dof
    }

    /// Residual standard deviation `s` (infinite without residual
    /// degrees of freedom).
    pub fn residual_sd(&self) -> f64 {
        self.variance.sqrt()
    }

    /// Confidence intervals of the two slopes, `b ± t·s·√((Sₓₓ⁻¹)ⱼⱼ)`; a
    /// slope the data could not estimate has an infinite half-width.
    pub fn slopes(&self) -> (Estimate, Estimate) {
        let se = |diag: f64| (self.variance * diag).sqrt() * self.multiplier;
        let (h1, h2) = match self.active {
            Active::Both(inv) => (se(inv.i11), se(inv.i22)),
            Active::First => (se(1.0 / self.s11), f64::INFINITY),
            Active::Second => (f64::INFINITY, se(1.0 / self.s22)),
            Active::None => (f64::INFINITY, f64::INFINITY),
        };
        (
            Estimate {
                mean: self.slope1,
                half_width: h1,
            },
            Estimate {
                mean: self.slope2,
                half_width: h2,
            },
        )
    }

    /// Like [`predict`](Self::predict), but the slope on the first size is
    /// combined with `prior`, an estimate of the same slope from
    /// elsewhere (e.g. the time per byte written, from a fit over many
    /// sizes), weighting each by the inverse square of its half-width.
    ///
    /// A fit whose first size barely varied knows its cost well near the
    /// sizes it saw but its own slope badly, and extrapolating with that
    /// slope far from them (a different checkpoint interval changes the
    /// dirty bytes severalfold) gives huge or nonsensical costs; the prior
    /// slope then takes over, while a fit over a wide range keeps its own.
    /// The prediction is anchored at the fit's mean sizes and cost. Used
    /// only when the second size was not fitted (it did not vary); when it
    /// was, or when neither slope is bounded, this is `predict`.
    pub fn predict_with_slope_prior(&self, x1: f64, x2: f64, prior: Estimate) -> Estimate {
        let own = match self.active {
            Active::First => self.slopes().0,
            Active::None => Estimate {
                mean: 0.0,
                half_width: f64::INFINITY,
            },
            Active::Both(_) | Active::Second => return self.predict(x1, x2),
        };
        let precision = |e: &Estimate| {
            if e.half_width > 0.0 && e.half_width.is_finite() && e.mean.is_finite() {
                1.0 / (e.half_width * e.half_width)
            } else {
                0.0
            }
        };
        let (w_own, w_prior) = (precision(&own), precision(&prior));
        if w_own + w_prior <= 0.0 || !(w_own + w_prior).is_finite() {
            return self.predict(x1, x2);
        }
        let slope = (w_own * own.mean + w_prior * prior.mean) / (w_own + w_prior);
        let slope_half_width = (w_own + w_prior).sqrt().recip();
        let d1 = x1 - self.mean1;
        let center = (self.variance / self.weight).sqrt() * self.multiplier;
        Estimate {
            mean: self.mean_y + slope * d1,
            half_width: center.hypot(slope_half_width * d1),
        }
    }

    /// The mean cost at sizes `(x1, x2)` with its confidence interval.
    pub fn predict(&self, x1: f64, x2: f64) -> Estimate {
        let (d1, d2) = (x1 - self.mean1, x2 - self.mean2);
        let leverage = match self.active {
            Active::Both(inv) => inv.i11 * d1 * d1 + 2.0 * inv.i12 * d1 * d2 + inv.i22 * d2 * d2,
            Active::First => d1 * d1 / self.s11,
            Active::Second => d2 * d2 / self.s22,
            Active::None => 0.0,
        };
        let mean = self.mean_y + self.slope1 * d1 + self.slope2 * d2;
        let se = (self.variance * (1.0 / self.weight + leverage)).sqrt();
        let estimate = Estimate {
            mean,
            half_width: se * self.multiplier,
        };
        match self.scale_by {
            Some(driver_mean) => {
                let at = match self.driver {
                    Driver::First => x1,
                    Driver::Second => x2,
                };
                let ratio = (at / driver_mean).max(0.0);
                Estimate {
                    mean: estimate.mean * ratio,
                    half_width: estimate.half_width * ratio,
                }
            }
            None => estimate,
        }
    }
}

#[cfg(test)]
mod tests {
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
}
