//! Failure rates: a configured MTBF updated with observed failures.
//!
//! # The maths (Gamma–Poisson)
//!
//! Failures of one class arrive as a Poisson process of unknown rate λ
//! (failures per second), which is what exponential inter-failure times
//! mean. The configured MTBF `M₀` becomes a conjugate Gamma prior on λ with
//! shape `α₀ = w` and rate `β₀ = w·M₀`, where the prior weight `w` is the
//! number of failures' worth of evidence the configuration is worth (its
//! mean is `α₀/β₀ = 1/M₀`). After `n` failures in an exposure of `T`
//! seconds of running, the posterior is Gamma(`α₀ + n`, `β₀ + T`):
//!
//! * posterior mean rate `λ̂ = (w + n) / (w·M₀ + T)`, so the effective MTBF
//!   `1/λ̂` moves from `M₀` towards the observed `T/n` as evidence grows;
//! * a credible interval from the Gamma quantiles (statrs).
//!
//! Without a configured MTBF the prior is flat (`α₀ = β₀ = 0`): the mean is
//! the maximum-likelihood `n/T`, and with no failure yet the upper bound is
//! taken from Gamma(1, T) (the "rule of three" at 95 %).
//!
//! Reference: Gelman et al., *Bayesian Data Analysis*, 3rd ed., §2.6.

use serde::{Deserialize, Serialize};
use statrs::function::gamma::checked_gamma_lr;
use std::time::Duration;

/// What a failure takes away, so that each class gets its own rate and,
/// later, its own checkpoint level (in the manner of Moody et al., SC'10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum FailureClass {
    /// The process died; node-local and shared storage both survive.
    Process,
    /// The node (and its fast, node-local tier) was lost; a slower shared
    /// tier survives.
    Node,
    /// The store itself was lost or unreachable.
    Store,
}

impl FailureClass {
    /// Every class, in order of growing damage.
    pub const ALL: [FailureClass; 3] = [
        FailureClass::Process,
        FailureClass::Node,
        FailureClass::Store,
    ];
}

/// Observed failures of one class and the running time they were observed
/// over: the sufficient statistics of the Poisson model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct FailureCounts {
    /// Failures observed.
    pub failures: u64,
    /// Seconds of running (compute plus checkpoint time) observed.
    pub exposure_secs: f64,
}

impl FailureCounts {
    /// Records `secs` more seconds of running without failure.
    pub fn expose(&mut self, secs: f64) {
        if secs.is_finite() && secs > 0.0 {
            self.exposure_secs += secs;
        }
    }

    /// Records one failure.
    pub fn fail(&mut self) {
        self.failures = self.failures.saturating_add(1);
    }
}

/// A prior belief about a failure class's MTBF.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FailurePrior {
    /// Configured mean time between failures; `None` for no prior belief.
    pub mtbf: Option<Duration>,
    /// How many failures' worth of evidence the configured MTBF is worth
    /// (the Gamma prior's shape `w`).
    pub weight: f64,
}

/// The estimated failure rate of one class.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct RateEstimate {
    /// Posterior mean rate, failures per second (0 when nothing says
    /// failures happen).
    pub per_second: f64,
    /// Lower end of the credible interval, per second.
    pub lower: f64,
    /// Upper end of the credible interval, per second.
    pub upper: f64,
}

impl RateEstimate {
    /// Mean time between failures, `1/λ̂` (infinite for a zero rate).
    pub fn mtbf_secs(&self) -> f64 {
        if self.per_second > 0.0 {
            1.0 / self.per_second
        } else {
            f64::INFINITY
        }
    }
}

impl FailurePrior {
    /// The posterior rate given the observed `counts`, with a credible
    /// interval at `level` (e.g. 0.95).
    pub fn posterior(&self, counts: &FailureCounts, level: f64) -> RateEstimate {
        let (alpha0, beta0) = match self.mtbf {
            Some(m) if m.as_secs_f64() > 0.0 && self.weight > 0.0 => {
                (self.weight, self.weight * m.as_secs_f64())
            }
            _ => (0.0, 0.0),
        };
        let alpha = alpha0 + counts.failures as f64;
        let beta = beta0 + counts.exposure_secs.max(0.0);
        if beta <= 0.0 {
            return RateEstimate {
                per_second: 0.0,
                lower: 0.0,
                upper: f64::INFINITY,
            };
        }
        let per_second = alpha / beta;
        let tail = if level > 0.0 && level < 1.0 {
            0.5 * (1.0 - level)
        } else {
            0.025
        };
        let quantile = |shape: f64, p: f64| gamma_quantile(shape, p) / beta;
        if alpha > 0.0 {
            RateEstimate {
                per_second,
                lower: quantile(alpha, tail),
                upper: quantile(alpha, 1.0 - tail),
            }
        } else {
            RateEstimate {
                per_second,
                lower: 0.0,
                upper: quantile(1.0, 1.0 - tail),
            }
        }
    }
}

/// The `p`-quantile of Gamma(`shape`, rate 1), by bisection on the
/// regularized incomplete gamma function to 1e-13 relative precision.
///
/// statrs's own `Gamma::inverse_cdf` stops after 8 bisection and 4 Newton
/// steps, which is not enough for the tails used here.
fn gamma_quantile(shape: f64, p: f64) -> f64 {
    let cdf = |x: f64| checked_gamma_lr(shape, x).unwrap_or(f64::NAN);
    if !(shape > 0.0 && p > 0.0 && p < 1.0) {
        return f64::NAN;
    }
    let (mut lo, mut hi) = (0.0, shape.max(1.0));
    while cdf(hi) < p {
        hi *= 2.0;
        if hi > 1e300 {
            return f64::INFINITY;
        }
    }
    for _ in 0..300 {
        let mid = 0.5 * (lo + hi);
        match cdf(mid) {
            c if c < p => lo = mid,
            c if c >= p => hi = mid,
            _ => return f64::NAN,
        }
        if hi - lo <= 1e-13 * hi {
            break;
        }
    }
    0.5 * (lo + hi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const HOUR: f64 = 3600.0;

    fn prior(hours: f64, weight: f64) -> FailurePrior {
        FailurePrior {
            mtbf: Some(Duration::from_secs_f64(hours * HOUR)),
            weight,
        }
    }

    #[test]
    fn gamma_quantiles_match_tables() {
        // Gamma(1) is exponential; Gamma(k/2, 1/2) is chi-square with k
        // degrees of freedom: χ²₀.₉₇₅(10) = 20.483 177, χ²₀.₀₂₅(10) = 3.246 973.
        assert!((gamma_quantile(1.0, 0.5) - 2.0_f64.ln()).abs() < 1e-12);
        assert!((2.0 * gamma_quantile(5.0, 0.975) - 20.483_177).abs() < 1e-5);
        assert!((2.0 * gamma_quantile(5.0, 0.025) - 3.246_973).abs() < 1e-5);
        assert!(gamma_quantile(0.0, 0.5).is_nan());
    }

    #[test]
    fn prior_alone_gives_the_configured_mtbf() {
        let r = prior(24.0, 1.0).posterior(&FailureCounts::default(), 0.95);
        assert!((r.mtbf_secs() - 24.0 * HOUR).abs() < 1e-6);
        // Gamma(1, β) is exponential: quantiles -ln(1-p)/β.
        let beta = 24.0 * HOUR;
        assert!((r.upper - (-(0.025_f64).ln()) / beta).abs() < 1e-12);
        assert!((r.lower - (-(0.975_f64).ln()) / beta).abs() < 1e-12);
    }

    #[test]
    fn conjugate_update_matches_hand_computation() {
        // Prior 100 h worth one failure; 5 failures in 50 h:
        // (1 + 5) / (100 h + 50 h) = 0.04 per hour, MTBF 25 h.
        let counts = FailureCounts {
            failures: 5,
            exposure_secs: 50.0 * HOUR,
        };
        let r = prior(100.0, 1.0).posterior(&counts, 0.95);
        assert!((r.mtbf_secs() - 25.0 * HOUR).abs() < 1e-6);
        assert!(r.lower < r.per_second && r.per_second < r.upper);
    }

    #[test]
    fn no_prior_is_the_maximum_likelihood() {
        let flat = FailurePrior {
            mtbf: None,
            weight: 1.0,
        };
        let counts = FailureCounts {
            failures: 4,
            exposure_secs: 40.0,
        };
        assert!((flat.posterior(&counts, 0.95).per_second - 0.1).abs() < 1e-15);
        let none = flat.posterior(
            &FailureCounts {
                failures: 0,
                exposure_secs: 100.0,
            },
            0.95,
        );
        assert_eq!(none.per_second, 0.0);
        assert!((none.upper - 3.688_879 / 100.0).abs() < 1e-6);
        assert!(
            flat.posterior(&FailureCounts::default(), 0.95)
                .upper
                .is_infinite()
        );
    }

    #[test]
    fn credible_interval_covers_the_true_rate_in_most_trials() {
        // True MTBF 10 h, configured (wrongly) as 30 h with weight 1;
        // 500 h observed per trial.
        let truth = 1.0 / (10.0 * HOUR);
        let mut covered = 0;
        for seed in 0..200 {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut counts = FailureCounts::default();
            let mut t = 0.0;
            loop {
                let u: f64 = rng.random_range(f64::EPSILON..1.0);
                t += -u.ln() / truth;
                if t > 500.0 * HOUR {
                    break;
                }
                counts.fail();
            }
            counts.expose(500.0 * HOUR);
            let r = prior(30.0, 1.0).posterior(&counts, 0.95);
            covered += u32::from(r.lower <= truth && truth <= r.upper);
        }
        assert!(covered >= 180, "covered {covered}/200");
    }
}
