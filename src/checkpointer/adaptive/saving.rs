//! Keeping what the model learnt: when the learned state is saved (to
//! the first tier, and to each lower tier, which a restart that finds the
//! first tier lost resumes from), each encoding done once for every tier
//! it goes to; and what a restart can tell of the running the failed
//! process did after its last save.

use super::super::saver::{POLL, Saver};
use super::Adaptive;
use crate::model::StorageErrorEvent;
use crate::scheme::Scheme;
use std::time::{Duration, Instant, SystemTime};

/// Most commits between two saves of the learned state.
const SAVE_EVERY: u32 = 10;
/// The learned state is saved after every commit whose persist took at
/// least this many times as long as the last save: what a crash would
/// make the model forget then costs a few checkpoints of re-learning,
/// and saving adds at most a few percent to a checkpoint.
const SAVE_COST_RATIO: u32 = 20;
/// The learned state is also saved after any commit once this share of
/// the estimated MTBF has passed since the last save. A restarted model
/// never hears of the failed process's running after its last save; it
/// counts what the save rule bounds of it
/// ([`RestartEvent::unreported`](crate::model::RestartEvent::unreported)),
/// and where failures come every few
/// checkpoints saving this often keeps that bound to a few percent of the
/// time between failures (at an MTBF of hours, the every-`SAVE_EVERY`
/// rule saves more often anyway).
const SAVE_SHARE_OF_MTBF: f64 = 0.02;

impl Adaptive {
    /// Saves after a commit of `scheme` whose persist took `persist`, if
    /// the save rule says so: when the policy `acts` (then on every tier),
    /// while the scheme is still being learnt, when saving is cheap next
    /// to the persist, once [`SAVE_SHARE_OF_MTBF`] of the MTBF passed, or
    /// every [`SAVE_EVERY`] commits.
    pub(super) fn save_after_commit(&mut self, scheme: Scheme, persist: Duration, acts: bool) {
        let model = self.advisor.model();
        let learning = model.observations(scheme) <= model.config().min_observations
            || self
                .advisor
                .policy_state()
                .exploring(model.summary().checkpoints);
        let cheap = self.saver.last_duration().saturating_mul(SAVE_COST_RATIO) <= persist;
        let stale =
            self.last_save.elapsed().as_secs_f64() >= SAVE_SHARE_OF_MTBF * model.mtbf_secs();
        let first = acts || learning || cheap || stale || self.commits_since_save >= SAVE_EVERY;
        self.save_to(first, acts, acts);
    }

    /// Stores the learned state on the first tier and on every lower one,
    /// from one encoding. A failure is reported as an event, not an error:
    /// losing what the model learned costs a few checkpoints of
    /// re-learning, never a checkpoint.
    pub(super) fn save_everywhere(&mut self) {
        self.save_to(true, true, true);
    }

    /// Queues the learned state for every lower tier, which a restart that
    /// finds the first tier lost resumes from: after each drain, each
    /// decision that changed what the checkpointer does, each failure
    /// counted, and a clean stop. A restart that resumed an older copy
    /// would go back to the plan in force then (with rare drains, a drain
    /// ratio the policy had left because node failures grew frequent).
    /// Not after every commit: a lower tier may bill by the request.
    pub(super) fn save_below(&mut self) {
        self.save_to(false, true, false);
    }

    /// Encodes the learned state once and queues it for the first tier
    /// (`first`, with the journal's batch) and for every lower tier
    /// (`below`); `urgent` wakes the saving threads to write it now (a
    /// change the policy applied: an apply lost to a crash within the
    /// threads' [`POLL`] sent a restarted run back to the old plan, to
    /// earn the change again). The puts run on the saving threads; the
    /// caller only encodes.
    fn save_to(&mut self, first: bool, below: bool, urgent: bool) {
        let below = below && !self.lower_savers.is_empty();
        if !(first || below) {
            return;
        }
        if first {
            self.commits_since_save = 0;
            self.last_save = Instant::now();
            self.flush_journal();
        }
        let bytes = match self.advisor.to_bytes() {
            Ok(bytes) => bytes,
            Err(_) => return self.storage_failed("encode model/advisor"),
        };
        let save = |saver: &Saver, bytes: Vec<u8>| {
            if urgent {
                saver.save_now(bytes);
            } else {
                saver.save(bytes);
            }
        };
        if below {
            for saver in &self.lower_savers {
                save(saver, bytes.clone());
            }
        }
        if first {
            save(&self.saver, bytes);
        }
    }

    /// How long the previous process ran past what its saved learned
    /// state reports ([`Advisor::reported_until`]: the capture of its
    /// newest checkpoint then), as far as it can be told: the wall time
    /// since, which also holds the downtime (a relaunch may take minutes),
    /// so no more than the most running that can go unreported under the
    /// save rule: a checkpoint's persist after its capture, the longest
    /// gap between two saves, and the saving thread's poll (before any
    /// checkpoint, the MTBF). `None` without a stored time.
    ///
    /// The bound, not half of it: where failures come every few
    /// checkpoints the running past the newest report is most of a period
    /// and a persist, which half the bound undercounts.
    ///
    /// `drain_every_below`: the state was loaded from a lower tier (the
    /// first was lost), where it is saved after each drain rather than
    /// under the save rule, with this drain ratio in force. The bound is
    /// then the longer of the two gaps, a drain cycle being the other: `k`
    /// periods (or the checkpoints per drain seen so far, if more) and a
    /// drain's time. Without it a lost first tier took the running since
    /// the last drain with it while the failures (saved on every tier at
    /// each restart) stayed, and every node failure undercounted the
    /// running before it.
    ///
    /// [`Advisor::reported_until`]: crate::model::Advisor::reported_until
    pub(super) fn unreported_running(&self, drain_every_below: Option<u32>) -> Option<Duration> {
        let since_report = SystemTime::now()
            .duration_since(self.advisor.reported_until()?)
            .ok()?
            .as_secs_f64();
        let summary = self.advisor.summary();
        if summary.checkpoints == 0 {
            // No period to bound it by: a process that failed before its
            // first checkpoint ran at most the time since the restart
            // before it, and counting nothing made every such failure one
            // of zero running (three of them in the first second of an
            // evaluation at an MTBF of 0.8 s). The MTBF bounds what a
            // slow relaunch adds.
            let most = self.advisor.model().mtbf_secs();
            return Duration::try_from_secs_f64(since_report.min(most)).ok();
        }
        let count = summary.checkpoints as f64;
        let period = (summary.total_compute + summary.total_stall).as_secs_f64() / count;
        let persist = summary
            .total_persist
            .saturating_sub(summary.total_stall)
            .as_secs_f64()
            / count;
        let mut between_saves = (f64::from(SAVE_EVERY) * period)
            .min(SAVE_SHARE_OF_MTBF * self.advisor.model().mtbf_secs() + period);
        if let Some(k) = drain_every_below {
            let drains = summary.drains.max(1) as f64;
            let per_drain = f64::from(k).max(count / drains);
            let cycle = per_drain * period + summary.total_drain.as_secs_f64() / drains;
            between_saves = between_saves.max(cycle);
        }
        let most = persist + between_saves + POLL.as_secs_f64();
        Duration::try_from_secs_f64(since_report.min(most)).ok()
    }

    /// Queues the journal's records not written yet, and waits until
    /// they and every save of the learned state queued so far are written.
    pub(crate) fn wait_saved(&mut self) {
        self.flush_journal();
        self.saver.wait_idle();
        for saver in &self.lower_savers {
            saver.wait_idle();
        }
    }

    fn flush_journal(&mut self) {
        if let Some(journal) = &mut self.journal {
            journal.flush(&self.saver);
        }
    }

    /// Reports the saves and journal writes that failed on the saving
    /// threads since the last call, as storage errors.
    pub(super) fn report_save_failures(&mut self) {
        for _ in 0..self.saver.take_failures() {
            self.storage_failed("put model/advisor");
        }
        for _ in 0..self.saver.take_journal_failures() {
            self.storage_failed("put journal");
        }
        let below: u32 = self.lower_savers.iter().map(Saver::take_failures).sum();
        for _ in 0..below {
            // A lower tier that fails only delays: the next save retries.
            self.emit(StorageErrorEvent::new("put model/advisor on a lower tier", true).into());
        }
    }
}
