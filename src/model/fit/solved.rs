//! A solved fit: [`Solved`] (coefficients, slopes, predictions with
//! their confidence intervals), the [`Estimate`]s it returns, and the
//! [`Driver`] a cost scales with when the data cannot tell.

use serde::{Deserialize, Serialize};

/// Which of the two sizes of a [`LinearFit`](super::LinearFit) a cost is assumed to scale
/// with when the data cannot tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Driver {
    /// The first size (e.g. dirty bytes).
    First,
    /// The second size (e.g. total bytes).
    Second,
}

/// Inverse of the 2×2 co-moment matrix.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Inverse2 {
    pub(super) i11: f64,
    pub(super) i12: f64,
    pub(super) i22: f64,
}

/// Which slopes a solved fit could estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Active {
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
    #[cfg(test)]
    /// Lower end of the interval.
    pub fn lower(&self) -> f64 {
        self.mean - self.half_width
    }

    #[cfg(test)]
    /// Upper end of the interval.
    pub fn upper(&self) -> f64 {
        self.mean + self.half_width
    }

    #[cfg(test)]
    /// True when `value` lies inside the interval.
    pub fn covers(&self, value: f64) -> bool {
        self.lower() <= value && value <= self.upper()
    }
}

/// A [`LinearFit`](super::LinearFit) solved at one confidence level: cheap to query many
/// times.
#[derive(Debug, Clone, PartialEq)]
pub struct Solved {
    pub(super) active: Active,
    pub(super) scale_by: Option<f64>,
    pub(super) driver: Driver,
    pub(super) weight: f64,
    pub(super) mean1: f64,
    pub(super) mean2: f64,
    pub(super) mean_y: f64,
    pub(super) slope1: f64,
    pub(super) slope2: f64,
    pub(super) s11: f64,
    pub(super) s22: f64,
    pub(super) variance: f64,
    pub(super) dof: f64,
    pub(super) multiplier: f64,
}

impl Solved {
    #[cfg(test)]
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

    /// [`predict`](Self::predict) for a cost that cannot fall as the first
    /// size grows (a copy-on-write snapshot, a full checkpoint, against
    /// dirty bytes): with a negative slope, which the data can show only
    /// by noise (a snapshot after a restart is cheap and finds everything
    /// dirty), the cost at the mean first size the fit saw, instead of the
    /// slope extrapolated to another interval's dirty bytes (1 ms
    /// snapshots were priced at 4 ms that way).
    pub fn predict_nondecreasing(&self, x1: f64, x2: f64) -> Estimate {
        if self.slope1 < 0.0 {
            self.predict(self.mean1, x2)
        } else {
            self.predict(x1, x2)
        }
    }

    /// `estimate`, a cost this fit predicted at first size `x1`, raised
    /// where it lies below the fit's mean cost scaled in proportion to
    /// `x1` (the line through the origin and the mean of what was
    /// measured). Below the sizes it saw, a fit with a negative intercept
    /// (noisy writes of similar sizes make one as often as not) predicts
    /// writes cheaper than their share of the bytes, down to nothing: a
    /// policy that believes it checkpoints every step, with persists
    /// back to back. A write has no negative fixed cost; with a positive
    /// one the fit is above this floor anyway.
    pub fn at_least_proportional(&self, x1: f64, estimate: Estimate) -> Estimate {
        let floor = if x1 >= 0.0 && x1 < self.mean1 && self.mean_y > 0.0 {
            self.mean_y * x1 / self.mean1
        } else {
            return estimate;
        };
        Estimate {
            mean: estimate.mean.max(floor),
            ..estimate
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
