//! [`Decision`]: what the policy tells the checkpointer to do, as plain
//! data. It sits below both the policy that makes decisions and the
//! events that report them ([`DecisionEvent`](super::DecisionEvent)), so
//! neither depends on the other.

use super::recommend::Recommendation;
use crate::scheme::Scheme;
use std::time::Duration;

/// What the checkpointer should do now.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Decision {
    /// Nothing.
    Hold,
    /// Tell the user (advise mode); change nothing.
    Advise(Recommendation),
    /// Change to [`Recommendation::plan`] and
    /// [`Recommendation::interval`].
    Apply(Recommendation),
    /// Take checkpoints with `scheme`, `interval` apart, while the trial
    /// lasts ([`PolicyState::exploring`](super::PolicyState::exploring)),
    /// then return to the current plan and interval — unless an
    /// [`Apply`](Decision::Apply) during the trial switches for good.
    Explore {
        /// The scheme to try.
        scheme: Scheme,
        /// How many checkpoints the trial is planned to last; the policy
        /// extends it while the scheme is winning, until the switch is
        /// decided.
        checkpoints: u32,
        /// Compute time between the trial's checkpoints: the model's best
        /// interval for the scheme.
        interval: Duration,
        /// Why, in words.
        reason: String,
    },
}
