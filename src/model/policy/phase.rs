//! The switch budget of a phase: at most `max_switches` changes of the
//! scheme in use between two changes of the workload the model detects
//! (trials included: going to a trial's scheme and coming back are two),
//! and no random trial in the first checkpoints of a new phase, while the
//! model re-learns it.
//!
//! A workload that did not change gives the policy nothing new to learn by
//! switching again: once a phase spent its budget, the scheme in use stays
//! until the model detects a change (of step time, dirtiness or write
//! cost). Detections less than `min_dwell` checkpoints apart start one
//! phase, so a noisy signal cannot buy the policy a fresh budget every few
//! checkpoints.

use super::config::Policy;
use serde::{Deserialize, Serialize};

/// Switches spent in the current phase and where it began; stored with
/// the policy's memory so a restart after a crash does not refill it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct PhaseBudget {
    /// Scheme changes in this phase so far.
    switches: u32,
    /// Checkpoints observed when the phase began.
    since: u64,
    /// Changes the model had detected when the phase began (the detectors
    /// start again after a restart, and so does their count: a lower count
    /// is taken as the new reference, not as a change).
    changes: u64,
}

impl PhaseBudget {
    /// Starts a new phase if the model detected a change since this one
    /// began (at most once per `min_dwell` checkpoints).
    pub(super) fn update(&mut self, policy: &Policy, changes_detected: u64, seen: u64) {
        let dwelt = seen.saturating_sub(self.since) >= policy.min_dwell;
        if changes_detected > self.changes && dwelt {
            *self = PhaseBudget {
                switches: 0,
                since: seen,
                changes: changes_detected,
            };
        } else {
            // Fewer: the detectors restarted with the process. More, but
            // soon after the phase began: part of the same change.
            self.changes = changes_detected;
        }
    }

    /// True if `switches` more scheme changes fit in this phase.
    pub(super) fn allows(&self, policy: &Policy, switches: u32) -> bool {
        self.switches.saturating_add(switches) <= policy.max_switches_per_phase
    }

    /// True while the phase is too young for a random trial: the model has
    /// not re-learnt it yet.
    pub(super) fn settling(&self, policy: &Policy, seen: u64) -> bool {
        self.since > 0 && seen.saturating_sub(self.since) < u64::from(policy.patience)
    }

    /// Counts one change of the scheme in use.
    pub(super) fn spend(&mut self) {
        self.switches = self.switches.saturating_add(1);
    }

    /// Takes back a change counted for a trial's return that did not
    /// happen (the trial ended in a switch to its own scheme).
    pub(super) fn refund(&mut self) {
        self.switches = self.switches.saturating_sub(1);
    }
}
