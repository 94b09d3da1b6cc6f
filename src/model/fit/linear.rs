//! [`LinearFit`]: the running weighted means and co-moments of an online
//! least-squares fit, one observation's update, and solving them into a
//! [`Solved`] fit (see the [parent module](super) for the maths).

use super::quantile::t_multiplier;
use super::solved::{Active, Driver, Inverse2, Solved};
use serde::{Deserialize, Serialize};

/// Smallest spread of a size, as a share of its mean (coefficient of
/// variation), for its slope to be fitted.
pub const MIN_SPREAD: f64 = 0.01;

/// An online least-squares fit of a cost against two sizes, with
/// exponential forgetting; see the [module docs](super) for the maths.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearFit {
    forgetting: f64,
    pub(super) count: u64,
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

    #[cfg(test)]
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
