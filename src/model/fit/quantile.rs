//! Two-sided confidence multipliers: Student's t ([`t_multiplier`]) and
//! the standard normal ([`z_multiplier`]), via statrs.
//!
//! Student's quantile takes statrs an inverse regularized incomplete beta
//! function (tens of microseconds), and the fits ask for it at every
//! commit, on the caller's thread, with a handful of (level, degrees of
//! freedom) pairs: each thread remembers the ones it computed.

use statrs::distribution::{ContinuousCDF, Normal, StudentsT};
use std::cell::RefCell;
use std::collections::HashMap;

/// Degrees of freedom beyond which Student's t is replaced by the normal
/// distribution (they differ by less than 10⁻⁶ there).
const NORMAL_DOF: f64 = 1e6;

/// Multipliers a thread remembers before it forgets them all (a fit's
/// degrees of freedom grow by one per sample, so old ones are not asked
/// for again).
const REMEMBERED: usize = 256;

thread_local! {
    static T_MULTIPLIERS: RefCell<HashMap<(u64, u64), f64>> = RefCell::new(HashMap::new());
}

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
    let key = (level.to_bits(), dof.to_bits());
    if let Some(known) = T_MULTIPLIERS.with_borrow(|known| known.get(&key).copied()) {
        return known;
    }
    let multiplier = StudentsT::new(0.0, 1.0, dof).map_or(f64::INFINITY, |t| t.inverse_cdf(p));
    T_MULTIPLIERS.with_borrow_mut(|known| {
        if known.len() >= REMEMBERED {
            known.clear();
        }
        known.insert(key, multiplier);
    });
    multiplier
}

/// Two-sided standard normal multiplier for a confidence `level`:
/// `z_{(1+level)/2}` (1.96 at 0.95). Infinite for a level outside (0, 1).
pub fn z_multiplier(level: f64) -> f64 {
    if !(level > 0.0 && level < 1.0) {
        return f64::INFINITY;
    }
    Normal::new(0.0, 1.0).map_or(f64::INFINITY, |n| n.inverse_cdf(0.5 * (1.0 + level)))
}
