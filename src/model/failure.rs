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
//! Failure rates drift (a bad rack, ageing parts, a changed load), and
//! for a rare class a few failures are all the evidence there is: the
//! whole-history posterior above then follows a rise only after many
//! failures at the new rate. [`FailurePrior::recent`] is the same
//! posterior with every failure's evidence, and the prior's, discounted
//! by [`RECENT_DISCOUNT`] per newer failure of the class (a discounted,
//! "power prior" Gamma–Poisson): its memory is about two failures, so it
//! follows a fivefold rise within two or three failures and, at a steady
//! rate, stays centred where the whole-history one is, only wider.
//!
//! Without a configured MTBF the prior is flat (`α₀ = β₀ = 0`): the mean is
//! the maximum-likelihood `n/T`, and with no failure yet the upper bound is
//! taken from Gamma(1, T) (the "rule of three" at 95 %).
//!
//! Reference: Gelman et al., *Bayesian Data Analysis*, 3rd ed., §2.6.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};
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

/// The newest inter-failure gaps kept for the change test.
const GAPS_KEPT: usize = 4;

/// What each failure leaves of the evidence before it (and of the
/// prior's) in the recent posterior ([`FailurePrior::recent`]).
pub(crate) const RECENT_DISCOUNT: f64 = 0.5;

/// Below this probability, failures that came as quickly as the newest
/// did mean the rate rose (see [`FailureCounts::fail_and_test`]).
const RATE_CHANGE_ALPHA: f64 = 0.01;

/// Observed failures of one class and the running time they were observed
/// over: the sufficient statistics of the Poisson model, and the newest
/// gaps between failures, which tell a rise of the rate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct FailureCounts {
    /// Failures observed.
    pub failures: u64,
    /// Seconds of running (compute plus checkpoint time) observed.
    pub exposure_secs: f64,
    /// Seconds of running since the newest failure (or the start).
    pub since_failure: f64,
    /// Running time between the newest failures, newest last; the first
    /// `known` are valid.
    pub gaps: [f64; GAPS_KEPT],
    /// How many of `gaps` are valid.
    pub known: u8,
    /// Failures, each discounted by [`RECENT_DISCOUNT`] per newer one.
    pub recent_failures: f64,
    /// Seconds of running, the running before each failure discounted by
    /// [`RECENT_DISCOUNT`] per failure after it.
    pub recent_exposure_secs: f64,
}

impl FailureCounts {
    /// The share of the prior's weight the recent posterior keeps:
    /// `RECENT_DISCOUNTⁿ` after `n` failures, which is what
    /// `recent_failures = (1 − RECENT_DISCOUNTⁿ) / (1 − RECENT_DISCOUNT)`
    /// leaves of 1.
    pub(crate) fn prior_kept(&self) -> f64 {
        (1.0 - (1.0 - RECENT_DISCOUNT) * self.recent_failures).clamp(0.0, 1.0)
    }

    /// Records `secs` more seconds of running without failure.
    pub fn expose(&mut self, secs: f64) {
        if secs.is_finite() && secs > 0.0 {
            self.exposure_secs += secs;
            self.since_failure += secs;
            self.recent_exposure_secs += secs;
        }
    }

    /// Records one failure.
    pub fn fail(&mut self) {
        self.failures = self.failures.saturating_add(1);
        let gap = self.since_failure.max(0.0);
        let before_gap = (self.recent_exposure_secs - gap).max(0.0);
        self.recent_exposure_secs = RECENT_DISCOUNT * before_gap + gap;
        self.recent_failures = RECENT_DISCOUNT * self.recent_failures + 1.0;
        let known = usize::from(self.known).min(GAPS_KEPT);
        if known == GAPS_KEPT {
            self.gaps.rotate_left(1);
        }
        if let Some(slot) = self.gaps.get_mut(known.min(GAPS_KEPT - 1)) {
            *slot = self.since_failure.max(0.0);
        }
        self.known = (known + 1).min(GAPS_KEPT) as u8;
        self.since_failure = 0.0;
    }

    /// Records one failure, then tests whether the newest failures came
    /// too quickly for `rate` (failures per second, the estimate before
    /// this one): for the newest `m` gaps (`m` = 2, 3, 4), whose sum `s`
    /// is Gamma(`m`, `rate`) under an unchanged rate, the chance of a sum
    /// as small is `P(N(s) ≥ m)` for a Poisson count `N`, the regularized
    /// lower incomplete gamma function `P(m, rate·s)`. When the smallest
    /// of these is below 1 %, the rate rose: the counts restart from those
    /// `m` gaps of `s` seconds (the evidence since the change), so the
    /// estimate follows within a few failures instead of being held back
    /// by all the running before. They restart as `m − 1` failures in `s`
    /// seconds: `(m − 1)/s` is the unbiased estimate of a rate from the
    /// sum of `m` exponential gaps, and the window was picked for being
    /// short, so a false alarm at a steady rate (a few in a hundred
    /// failures) sets the estimate less far off. Returns whether it
    /// restarted.
    ///
    /// A fall of the rate is not tested: it shows as running without
    /// failures, which the posterior absorbs anyway, and erring towards a
    /// high rate errs towards safety.
    pub fn fail_and_test(&mut self, rate: f64) -> bool {
        self.fail();
        if !(rate > 0.0 && rate.is_finite()) {
            return false;
        }
        let known = usize::from(self.known).min(GAPS_KEPT);
        let mut most_unlikely: Option<(f64, usize, f64)> = None;
        for m in 2..=known {
            let sum: f64 = self.gaps.iter().take(known).rev().take(m).sum();
            let p = checked_gamma_lr(m as f64, rate * sum).unwrap_or(1.0);
            if p < RATE_CHANGE_ALPHA && most_unlikely.is_none_or(|(best, _, _)| p < best) {
                most_unlikely = Some((p, m, sum));
            }
        }
        let Some((_, m, sum)) = most_unlikely else {
            return false;
        };
        self.failures = m as u64 - 1;
        self.exposure_secs = sum;
        true
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

/// A Gamma distribution of a failure rate (per second): the posterior of
/// a class given its counts, whole ([`FailurePrior::whole`]) or recent
/// ([`FailurePrior::recent`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RatePosterior {
    shape: f64,
    rate: f64,
}

impl RatePosterior {
    /// The mean rate, per second (0 when nothing says failures happen).
    pub(crate) fn mean(&self) -> f64 {
        if self.rate > 0.0 {
            self.shape / self.rate
        } else {
            0.0
        }
    }

    /// The rates, per second, at the `probabilities` quantiles (empty
    /// without a proper distribution: no prior and no exposure, or no
    /// failure seen and none expected).
    ///
    /// A cost that is convex in the rate (losing a long cycle of work to a
    /// rare failure) is priced too low at the mean when little was
    /// observed; its mean over equal-probability quantiles approximates
    /// its expectation instead.
    pub(crate) fn quantiles(&self, probabilities: &[f64]) -> Vec<f64> {
        if !(self.shape > 0.0 && self.rate > 0.0) {
            return Vec::new();
        }
        probabilities
            .iter()
            .map(|&p| gamma_quantile(self.shape, p) / self.rate)
            .filter(|rate| rate.is_finite())
            .collect()
    }
}

impl FailurePrior {
    /// The posterior given every failure and all the running in `counts`.
    pub(crate) fn whole(&self, counts: &FailureCounts) -> RatePosterior {
        let (shape, rate) = self.shape_and_rate(counts);
        RatePosterior { shape, rate }
    }

    /// The posterior given the recent evidence in `counts`: every
    /// failure, the running before it and the prior's weight discounted
    /// by [`RECENT_DISCOUNT`] per newer failure (see the module docs). It
    /// prices what a rise of the rate would ruin (the drain ratio), where
    /// the whole-history posterior would still hold the old rate.
    pub(crate) fn recent(&self, counts: &FailureCounts) -> RatePosterior {
        let (shape, rate) = self.prior_evidence();
        let kept = counts.prior_kept();
        RatePosterior {
            shape: kept * shape + counts.recent_failures.max(0.0),
            rate: kept * rate + counts.recent_exposure_secs.max(0.0),
        }
    }

    /// The posterior mean rate given `counts`, per second: the
    /// [`posterior`](Self::posterior)'s `per_second` without its credible
    /// interval (whose quantiles take a bisection each), for callers that
    /// price at the mean.
    pub(crate) fn mean_rate(&self, counts: &FailureCounts) -> f64 {
        self.whole(counts).mean()
    }

    /// The posterior rate given the observed `counts`, with a credible
    /// interval at `level` (e.g. 0.95).
    pub fn posterior(&self, counts: &FailureCounts, level: f64) -> RateEstimate {
        let (alpha, beta) = self.shape_and_rate(counts);
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

    /// The Gamma posterior's shape and rate given `counts`: the prior's
    /// ([`prior_evidence`](Self::prior_evidence)) plus the failures and
    /// exposure observed.
    fn shape_and_rate(&self, counts: &FailureCounts) -> (f64, f64) {
        let (shape, rate) = self.prior_evidence();
        (
            shape + counts.failures as f64,
            rate + counts.exposure_secs.max(0.0),
        )
    }

    /// The prior's Gamma shape and rate: its weight in failures, and as
    /// many configured MTBFs of exposure (none without a configured MTBF).
    fn prior_evidence(&self) -> (f64, f64) {
        match self.mtbf {
            Some(m) if m.as_secs_f64() > 0.0 && self.weight > 0.0 => {
                (self.weight, self.weight * m.as_secs_f64())
            }
            _ => (0.0, 0.0),
        }
    }
}

/// Shapes above which [`gamma_quantile`] uses the Wilson–Hilferty
/// approximation: statrs's incomplete gamma function takes time growing
/// with √shape (a damaged stored state can claim any count of failures,
/// and 10³⁰⁰ would never return), and at such shapes the approximation
/// agrees with the exact quantile to better than 10⁻⁹.
const LARGE_SHAPE: f64 = 1e6;

/// The `p`-quantile of Gamma(`shape`, rate 1), by bisection on the
/// regularized incomplete gamma function to 1e-13 relative precision
/// (above [`LARGE_SHAPE`], by the Wilson–Hilferty approximation).
///
/// statrs's own `Gamma::inverse_cdf` stops after 8 bisection and 4 Newton
/// steps, which is not enough for the tails used here.
fn gamma_quantile(shape: f64, p: f64) -> f64 {
    let cdf = |x: f64| checked_gamma_lr(shape, x).unwrap_or(f64::NAN);
    if !(shape > 0.0 && p > 0.0 && p < 1.0) {
        return f64::NAN;
    }
    if shape > LARGE_SHAPE {
        let z = Normal::new(0.0, 1.0).map_or(f64::NAN, |n| n.inverse_cdf(p));
        let c = 1.0 / (9.0 * shape);
        return shape * (1.0 - c + z * c.sqrt()).powi(3);
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
    fn huge_shapes_are_quick_and_agree_with_the_exact_quantile() {
        // Just above the switch, both ways agree.
        let shape = LARGE_SHAPE * 1.000_001;
        for p in [0.025, 0.5, 0.975] {
            let approx = gamma_quantile(shape, p);
            let exact = {
                let (mut lo, mut hi) = (0.0, 2.0 * shape);
                for _ in 0..200 {
                    let mid = 0.5 * (lo + hi);
                    if checked_gamma_lr(shape, mid).unwrap() < p {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                0.5 * (lo + hi)
            };
            assert!(
                (approx / exact - 1.0).abs() < 1e-9,
                "{p}: {approx} vs {exact}"
            );
        }
        // A count no run could have (a damaged state) returns at once.
        let q = gamma_quantile(1e300, 0.5);
        assert!(q.is_finite() && (q / 1e300 - 1.0).abs() < 1e-6, "{q}");
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
            ..FailureCounts::default()
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
            ..FailureCounts::default()
        };
        assert!((flat.posterior(&counts, 0.95).per_second - 0.1).abs() < 1e-15);
        let none = flat.posterior(
            &FailureCounts {
                exposure_secs: 100.0,
                ..FailureCounts::default()
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

    /// Failures at exponential gaps of mean `mtbf`, each tested against
    /// the posterior of `prior` before it; returns the failure index of
    /// each detected change and the counts at the end.
    fn run_with_tests(
        rng: &mut StdRng,
        prior: &FailurePrior,
        counts: &mut FailureCounts,
        mtbf: f64,
        failures: usize,
    ) -> Vec<usize> {
        let mut detected = Vec::new();
        for i in 0..failures {
            let u: f64 = rng.random_range(f64::EPSILON..1.0);
            counts.expose(-u.ln() * mtbf);
            let rate = prior.posterior(counts, 0.95).per_second;
            if counts.fail_and_test(rate) {
                detected.push(i);
            }
        }
        detected
    }

    #[test]
    fn a_rate_five_times_higher_is_found_within_a_few_failures() {
        let p = prior(10.0, 1.0);
        let (mut found_within, mut followed) = (Vec::new(), 0);
        for seed in 0..50 {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut counts = FailureCounts::default();
            // Twenty failures at the configured rate, then five times as
            // many.
            run_with_tests(&mut rng, &p, &mut counts, 10.0 * HOUR, 20);
            let after = run_with_tests(&mut rng, &p, &mut counts, 2.0 * HOUR, 10);
            found_within.push(after.first().map_or(usize::MAX, |i| i + 1));
            let r = p.posterior(&counts, 0.95);
            followed += u32::from(r.mtbf_secs() < 4.0 * HOUR);
        }
        found_within.sort_unstable();
        let median = found_within.get(found_within.len() / 2).copied();
        assert!(median.is_some_and(|n| n <= 4), "{found_within:?}");
        // Without the test, ten failures at 2 h after twenty at 10 h leave
        // the estimate near 7 h.
        assert!(
            followed >= 40,
            "{followed} of 50 estimates below 4 h: {found_within:?}"
        );
    }

    #[test]
    fn a_steady_rate_rarely_restarts_the_counts() {
        let p = prior(10.0, 1.0);
        let mut false_alarms = 0;
        for seed in 0..50 {
            let mut rng = StdRng::seed_from_u64(100 + seed);
            let mut counts = FailureCounts::default();
            false_alarms += run_with_tests(&mut rng, &p, &mut counts, 10.0 * HOUR, 40).len();
        }
        // Three tests per failure at 1 % each, over 2000 failures.
        assert!(
            false_alarms <= 80,
            "{false_alarms} restarts in 2000 failures"
        );
    }

    /// A false alarm picks the shortest gaps of a steady rate: the
    /// estimate it restarts from is too high, and counting the window's
    /// failures as `m − 1` keeps it nearer the truth (a median of 5.2 h
    /// here; 3.6 h counting `m`).
    #[test]
    fn a_false_alarm_moves_the_estimate_less_than_its_window_suggests() {
        let p = prior(10.0, 1.0);
        let mut after = Vec::new();
        for seed in 0..200 {
            let mut rng = StdRng::seed_from_u64(900 + seed);
            let mut counts = FailureCounts::default();
            for _ in 0..40 {
                let u: f64 = rng.random_range(f64::EPSILON..1.0);
                counts.expose(-u.ln() * 10.0 * HOUR);
                let rate = p.posterior(&counts, 0.95).per_second;
                if counts.fail_and_test(rate) {
                    after.push(p.posterior(&counts, 0.95).mtbf_secs() / HOUR);
                }
            }
        }
        assert!(after.len() >= 20, "{} false alarms", after.len());
        after.sort_by(f64::total_cmp);
        let median = after[after.len() / 2];
        assert!(
            median >= 4.5,
            "median MTBF {median:.2} h after a false alarm at 10 h"
        );
    }

    #[test]
    fn posterior_quantiles_of_one_failures_worth_are_exponential() {
        // Gamma(1) is the exponential: the p-quantile is -ln(1 - p)/beta.
        let p = prior(10.0, 1.0);
        let rates = p
            .whole(&FailureCounts::default())
            .quantiles(&[0.1, 0.5, 0.9]);
        for (rate, q) in rates.iter().zip([0.1_f64, 0.5, 0.9]) {
            let want = -(1.0 - q).ln() / (10.0 * HOUR);
            assert!((rate / want - 1.0).abs() < 1e-9, "{rate} vs {want}");
        }
        let none = FailurePrior {
            mtbf: None,
            weight: 1.0,
        };
        assert!(
            none.whole(&FailureCounts::default())
                .quantiles(&[0.5])
                .is_empty()
        );
    }

    /// The median over 200 runs of the whole and the recent posterior's
    /// MTBF, in hours, after `before` failures at a 10 h MTBF (configured
    /// as such) and `after` at `after_mtbf` hours.
    fn medians(before: usize, after: usize, after_mtbf: f64) -> (f64, f64) {
        let p = prior(10.0, 1.0);
        let (mut whole, mut recent) = (Vec::new(), Vec::new());
        for seed in 0..200 {
            let mut rng = StdRng::seed_from_u64(5000 + seed);
            let mut counts = FailureCounts::default();
            for i in 0..before + after {
                let mtbf = if i < before { 10.0 } else { after_mtbf };
                let u: f64 = rng.random_range(f64::EPSILON..1.0);
                counts.expose(-u.ln() * mtbf * HOUR);
                counts.fail();
            }
            whole.push(1.0 / p.whole(&counts).mean() / HOUR);
            recent.push(1.0 / p.recent(&counts).mean() / HOUR);
        }
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        (median(whole), median(recent))
    }

    #[test]
    fn the_recent_posterior_follows_a_rise_within_a_few_failures() {
        // One failure at 10 h, then three at 2 h: the whole history still
        // reads about 5 h, the recent evidence near the new rate.
        let (whole, recent) = medians(1, 3, 2.0);
        assert!(whole > 4.0, "whole-history MTBF {whole:.2} h");
        assert!(recent < 3.0, "recent MTBF {recent:.2} h");
    }

    #[test]
    fn at_a_steady_rate_the_recent_posterior_stays_centred() {
        for (failures, low, high) in [(3, 6.5, 13.0), (40, 7.0, 13.0)] {
            let (whole, recent) = medians(failures, 0, 10.0);
            assert!(
                (7.5..12.5).contains(&whole),
                "{failures}: whole {whole:.2} h"
            );
            assert!(
                (low..high).contains(&recent),
                "{failures}: recent {recent:.2} h"
            );
        }
    }

    #[test]
    fn the_recent_evidence_halves_at_each_failure() {
        let mut c = FailureCounts::default();
        c.expose(4.0);
        c.fail();
        c.expose(2.0);
        c.fail();
        // Failures 0.5 + 1, running 4 s halved + 2 s, the prior kept 1/4.
        assert_eq!(
            (c.recent_failures, c.recent_exposure_secs, c.prior_kept()),
            (1.5, 4.0, 0.25)
        );
        let r = prior(1.0 / HOUR * 8.0, 2.0).recent(&c);
        // Shape 2·¼ + 1.5, rate 2·¼·8 s + 4 s.
        assert!((r.mean() - 2.0 / 8.0).abs() < 1e-12, "{}", r.mean());
    }

    #[test]
    fn gaps_keep_the_newest_four() {
        let mut c = FailureCounts::default();
        for gap in 1..=6 {
            c.expose(f64::from(gap));
            c.fail();
        }
        assert_eq!(c.known, 4);
        assert_eq!(c.gaps, [3.0, 4.0, 5.0, 6.0]);
        assert_eq!((c.failures, c.exposure_secs), (6, 21.0));
        assert!(!c.fail_and_test(0.0), "no rate, no test");
    }
}
