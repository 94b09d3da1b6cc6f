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
//!
//! # Where it lives
//!
//! * [`LinearFit`] (in `linear`): the running co-moments, an observation's
//!   update, and solving them at a confidence level.
//! * [`Solved`] and [`Estimate`] (in `solved`): a solved fit's
//!   coefficients, slopes and predictions with their intervals; the
//!   [`Driver`] a cost scales with when the data cannot tell.
//! * [`t_multiplier`] and [`z_multiplier`] (in `quantile`): Student-t and
//!   normal quantiles.

mod linear;
mod quantile;
mod solved;
#[cfg(test)]
mod tests;

pub(crate) use linear::LinearFit;
#[cfg(test)]
use quantile::t_multiplier;
pub(crate) use quantile::z_multiplier;
pub(crate) use solved::{Driver, Estimate, Solved};
