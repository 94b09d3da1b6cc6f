//! Policies: what to do with the model's recommendations.
//!
//! * [`PolicyMode::Fixed`]: the model only observes.
//! * [`PolicyMode::Advise`]: recommendations that clear the thresholds are
//!   reported (each once, until the advice changes); nothing changes.
//! * [`PolicyMode::Auto`]: recommendations are applied, with hysteresis so the
//!   configuration never flaps:
//!   1. a recommendation counts only if its predicted saving is at least
//!      `min_saving` of run time, its confidence at least
//!      `min_confidence`, and it rests on measurements ([`Basis::Observed`]);
//!   2. the *same* change (a switch to the same scheme, adding or dropping
//!      a full base, whatever cadence and interval the estimates settle on
//!      meanwhile; a drain ratio moved the same way; a retune of the plan
//!      in force that moves its full-base cadence and its interval the
//!      same way — longer, shorter, or within ±25 %) must count in
//!      `patience` consecutive evaluations — one miss starts over; what is
//!      applied is the latest of them. A retune of the plan in force whose
//!      one evaluation carries the evidence of the whole streak (a saving
//!      of `patience × min_saving` at a confidence of `1 − (1 −
//!      min_confidence)^patience`) needs no more;
//!   3. at least `min_dwell` checkpoints must pass between two applied
//!      changes — except for a retune of the plan in force (a new
//!      interval or full-base cadence, outside a trial), which rests on
//!      that plan's own measurements, costs nothing to apply, and neither
//!      waits for the dwell nor restarts it.
//!
//!   No evaluation counts while a change of the workload is pending
//!   ([`Evaluation::change_pending`](crate::model::Evaluation::change_pending):
//!   the newest checkpoint looks like the first of a new workload that
//!   this evaluation still prices as the old one): nothing is applied and
//!   the streak starts over.
//!
//!   A plan in force that was never measured is the exception to rule 1:
//!   leaving it for a plan whose schemes were measured needs only the
//!   saving (its confidence rests on priors for the old plan and cannot
//!   reach `min_confidence`). This happens after the first trial below.
//!
//!   **The first trial.** With nothing learnt, an automatic policy begins
//!   with a trial of copy-on-write ([`PolicyState::begin`]; turn it off
//!   with [`Policy::first_trial`]): its first checkpoint is taken after the
//!   first step, so the model has evidence at once, and it blocks the
//!   computation least of the schemes while writing the whole state, which
//!   prices a full checkpoint too. The configured plan resumes when the
//!   trial ends, unless the trial ends in a switch.
//!
//!   Exploration keeps the estimates of unused schemes fresh: when an
//!   estimate resting on priors ([`Basis::Prior`]) predicts a saving of at
//!   least `min_saving`, the scheme it lacks is tried (directed), and
//!   otherwise the allowed scheme the current plan does not use, that
//!   could still win (its cheapest plan's overhead less two standard
//!   errors is below the current plan's) and that was seen longest ago is
//!   tried at random (from a seeded RNG so runs are reproducible). A trial lasts `explore_checkpoints` checkpoints, at
//!   the interval `τ_t` the model finds best for the scheme; a random one
//!   starts with probability `exploration / explore_checkpoints · min(1,
//!   τ / τ_t)` per evaluation (`τ` the current interval), so that about
//!   `exploration` of the run's time, and at most that share of its
//!   checkpoints, goes to random trials when the policy is evaluated after
//!   every checkpoint. (Counting checkpoints alone would let a scheme that
//!   checkpoints five times less often spend five times the share of the
//!   run on trials.) A scheme is not tried again within `min_dwell`
//!   checkpoints. A trial's interval follows the model's best interval for
//!   its scheme as the trial measures it. During a trial the policy keeps
//!   judging the plan in force: if the trial shows its scheme is better,
//!   the switch builds its streak during the trial (which runs on until
//!   the streak decides) and is applied from it, instead of going back to
//!   the old plan first.
//!   Likewise, a measured switch to another scheme that starts a streak
//!   is confirmed on that scheme, in a trial, rather than on the old
//!   plan's checkpoints, which may be far apart.
//!
//!   **A switch budget per phase.** Between two changes of the workload
//!   the model detects (its change points on step time, dirtiness and
//!   write cost), the scheme in use changes at most
//!   `max_switches_per_phase` times (default 2), trials included: a trial
//!   that goes back spends two. Once a phase has spent its budget the
//!   scheme stays until the model sees the workload change; detections
//!   less than `min_dwell` checkpoints apart count as one, and random
//!   trials wait `patience` checkpoints into a new phase while the model
//!   re-learns it.
//!
//! # Where it lives
//!
//! * [`config`] — [`PolicyMode`] and the [`Policy`] builder: thresholds, bounds,
//!   exploration settings, and their validation.
//! * [`state`] — [`PolicyState`], the policy's memory (streaks, dwell,
//!   trials, the plan in force), and what it says about a restart.
//! * [`decide`] — the first trial and the decisions: advise once, or apply
//!   with patience and dwell.
//! * [`explore`] — trials: directed and random exploration, their
//!   interval, and the seeded draws.
//! * [`phase`] — the switch budget of a phase of the workload.

mod config;
mod decide;
mod explore;
mod phase;
mod state;
#[cfg(test)]
mod tests;

pub use config::{Policy, PolicyMode};
pub use state::PolicyState;
