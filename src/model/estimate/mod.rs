//! The cost model: learns from events, prices every candidate plan at its
//! best interval, and says what to change.
//!
//! # From fits to overhead
//!
//! For a plan at compute interval `τ` (seconds of useful work between
//! checkpoints):
//!
//! 1. **Dirty bytes** grow with `τ` as if pages were dirtied independently
//!    at a constant rate `r`: `d(τ) = S·(1 − e^{−rτ})` for a state of `S`
//!    bytes, with `r = −ln(1 − f̄)/τ̄` from the running means of the dirty
//!    fraction `fᵢ = dᵢ/S` and of the interval `τᵢ` of the observed
//!    checkpoints. (Averaging fractions, not per-checkpoint rates, keeps a
//!    checkpoint that found everything dirty from counting as an infinite
//!    rate.) `dᵢ` is what changed since the previous checkpoint, whatever
//!    the scheme stored, so every scheme's checkpoints teach it. These
//!    workload descriptors (sizes, dirty fraction, step time) follow the
//!    application's phases with a short memory
//!    ([`ModelConfig::workload_forgetting`]); the cost fits, which describe
//!    the machine, keep a long one. (A workload that rewrites one hot set
//!    makes this pessimistic about long intervals for incremental
//!    schemes.)
//! 2. **Per-checkpoint cost** from the scheme's fits at `(d(τ), S)`:
//!    stall `s` and time-to-durable `p ≥ s`. The fits regress each cost on
//!    the bytes the checkpoint stored (uncompressed) and the state size;
//!    for a write time (incremental, copy-on-write persist) the slope on
//!    the stored bytes is combined with the time per byte of the pooled
//!    fit over all writes ([`Solved::predict_with_slope_prior`]), so that a
//!    scheme measured at one interval is not extrapolated to another with
//!    a slope its narrow range of sizes could not pin down. The
//!    computation loses `δ = s + β·(p − s)` per checkpoint, where `β` is
//!    the share of a background persist's time the computation loses: how
//!    much slower steps run beside a persist than without one (CPU and
//!    memory bandwidth taken, copy-on-write page copies), measured from
//!    the events and configured until it is. The checkpoint becomes
//!    durable `ℓ = p − s`
//!    after the computation resumes. A plan with a full base every `k`
//!    averages over its cycle: `δ = ((k−1)·δ_base + δ_full)/k`, likewise
//!    `ℓ`; copy-on-write writes its full bases in the background too, so
//!    they are priced with its own fits at the whole state.
//! 3. **Restart cost** `R = restore(S, L̄) + relaunch + ℓ`, where `L̄` is the
//!    mean restore chain length a failure meets (`(k+1)/2` for a full base
//!    every `k`, 1 for a scheme that does not chain, the observed mean
//!    otherwise), and `ℓ` counts the work lost because the newest
//!    checkpoint was not durable yet (first order).
//! 4. If the previous background persist is still running when the next
//!    checkpoint is due (`ℓ > τ`), the computation waits: `δ += ℓ − τ`.
//! 5. **Overhead** is Daly's expected overhead per unit of useful work,
//!    `(M/τ)·e^{R/M}·(e^{(τ+δ)/M} − 1) − 1` ([`daly_overhead`]) with `M`
//!    the posterior MTBF of the failures the checkpoint store survives
//!    (process and node classes), minimised over `τ` within the bounds.
//!
//! **Uncertainty.** The overhead is also computed with every fitted cost
//! moved up, and then down, by a tenth of its confidence half-width `h`;
//! the difference of the two overheads over `2·h/10`, divided by
//! `z_{(1+γ)/2}`, is the overhead's standard error (the delta method: the
//! overhead's local slope times the costs' standard error). Pricing at the
//! interval's very ends instead would send Daly's exponential formula to
//! absurd values whenever a fit rests on a few checkpoints (its `t`
//! multiplier is then 4 to 13), and no comparison would ever be
//! confident.
//! The confidence that plan B beats plan A is
//! `Φ((O_A − O_B)/√(se_A² + se_B²))`, treating their errors as independent
//! (conservative when they share fits), except for two plans that differ
//! only in the drain ratio (and interval): the same fits price both, so
//! the standard error is that of the difference `O_A − O_B` under the same
//! move of every cost (with a noisy drain fit the independent comparison
//! made every ratio change a coin flip). The failure rate's uncertainty is
//! left out: it moves every plan the same way.
//!
//! **Schemes not yet measured** are priced from a pooled fit of persist
//! time against bytes written over all checkpoints: a full checkpoint
//! writes `S/c`, an incremental one `d/c` (`c` the compression ratio);
//! copy-on-write stalls a configured fraction of a full write and persists
//! `d/c` in the background. Such estimates carry a wide, configured
//! uncertainty and [`Basis::Prior`], and a comparison that involves one
//! claims a confidence of at most 0.5; the policy explores on them instead
//! of acting on them. The same relative uncertainty is combined (inverse
//! variance) with a measured scheme's fitted intervals, so that a third
//! checkpoint, whose fit has a Student-t multiplier above 10, does not
//! make a scheme look less known than two did. A scheme measured fewer than
//! [`ModelConfig::min_observations`] times is priced from its own
//! measurements (time per byte from the pooled fit), but with the same
//! configured uncertainty, since so few points cannot estimate their own
//! spread: it counts as measured ([`Basis::Observed`]), so that the scheme
//! a run started with can be left after one or two of its checkpoints if
//! another is clearly cheaper.
//!
//! # Where it lives
//!
//! * [`config`] — [`ModelConfig`] (priors, forgetting, confidence level)
//!   and the [`Constraints`] a search stays within.
//! * [`learned`] — the evidence, kept as running fits and means — the part
//!   of the model that is stored with the checkpoints.
//! * [`cost_model`] — [`CostModel`] itself: learning from [`Event`]s, the
//!   failure rate, and its other read-outs.
//! * [`pricing`] — a per-evaluation snapshot that prices one plan at one
//!   interval (steps 1–5 above, and the uncertainty).
//! * [`drains`] — with lower tiers, the drain ratio's terms: what drains
//!   cost and what a node failure (the first tier lost) costs.
//! * [`evaluation`] — what an evaluation returns ([`Evaluation`],
//!   [`PlanEstimate`], [`SchemeStatus`]).
//! * [`evaluate`] — [`CostModel::evaluate`]; the candidate plans, their
//!   best intervals, and the [`Recommendation`]s worth making.
//!
//! [`Event`]: super::Event
//! [`Recommendation`]: super::Recommendation
//! [`Solved::predict_with_slope_prior`]: super::fit::Solved::predict_with_slope_prior
//! [`daly_overhead`]: super::cost::daly_overhead
//! [`Basis::Prior`]: super::Basis::Prior
//! [`Basis::Observed`]: super::Basis::Observed

mod change;
mod config;
mod cost_model;
mod drains;
mod evaluate;
mod evaluation;
mod learned;
mod pricing;
#[cfg(test)]
mod tests;

pub use config::{Constraints, ModelConfig};
pub use cost_model::CostModel;
pub use evaluation::{Evaluation, PlanEstimate, SchemeStatus};
pub(crate) use learned::Learned;
