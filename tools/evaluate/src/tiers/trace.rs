//! `CKPT_TIERS_TRACE`: what an adaptive `--tiers` run measured and
//! decided, on stderr, for reading when a decision looks wrong (see the
//! [parent module](super)). Level 1: every first-tier checkpoint as
//! measured, every drain with the bytes it copied, every restart with the
//! running it counted as unreported, and after each change the policy
//! applied the model's estimate of the plan in force and its six
//! cheapest candidates. Level 2 adds, after every commit, the policy's
//! memory, its decision, each recommendation with its saving and
//! confidence, the drain-ratio candidates of the plan in force and the
//! failure rates.

use crate::run::estimate_line;
use ckpt::Checkpointer;
use ckpt::model::{CheckpointEvent, Decision, FailureClass, RestartEvent};

/// How much to print; nothing for runs other than the adaptive one (the
/// listener serves every configuration).
#[derive(Debug, Clone, Copy)]
pub(super) struct Trace {
    level: u8,
}

impl Trace {
    /// The level `CKPT_TIERS_TRACE` asks for (any value but `2` is 1),
    /// for an adaptive run; 0 otherwise.
    pub(super) fn from_env(adaptive: bool) -> Self {
        let level = match std::env::var("CKPT_TIERS_TRACE").ok() {
            Some(_) if !adaptive => 0,
            Some(v) if v == "2" => 2,
            Some(_) => 1,
            None => 0,
        };
        Trace { level }
    }

    pub(super) fn checkpoint(&self, c: &CheckpointEvent) {
        if self.level == 0 {
            return;
        }
        eprintln!(
            "  ckpt {:?} step {} steps {} compute {:.1}ms stall {:.2}ms persist {:.1}ms dirty {} written {} full_base {}",
            c.scheme,
            c.step,
            c.steps,
            c.compute.as_secs_f64() * 1e3,
            c.stall.as_secs_f64() * 1e3,
            c.persist.as_secs_f64() * 1e3,
            c.dirty_bytes,
            c.bytes_written,
            c.full_base
        );
    }

    /// A drain to a lower tier: what it copied and how long it took.
    pub(super) fn drain(&self, c: &CheckpointEvent) {
        if self.level > 0 {
            eprintln!(
                "  drain to tier {} step {} copied {} of a {}-byte state in {:.1}ms",
                c.tier,
                c.step,
                c.bytes_written,
                c.logical_bytes,
                c.persist.as_secs_f64() * 1e3
            );
        }
    }

    pub(super) fn restart(&self, r: &RestartEvent) {
        if self.level > 0 {
            eprintln!("  restart {:?} unreported {:?}", r.class, r.unreported);
        }
    }

    /// A change the policy applied, `at` counted seconds, and the model's
    /// view right after it.
    pub(super) fn applied(&self, ck: &Checkpointer, decision: &str, at: f64) {
        if self.level == 0 {
            return;
        }
        eprintln!("{at:>6.2}s APPLY {decision}");
        let advisor = ck.advisor();
        if let Some(ev) = advisor
            .in_force()
            .and_then(|(plan, every)| advisor.evaluate(plan, every))
        {
            eprintln!(
                "    mtbf {:.2}s current {} tuned {}",
                ev.mtbf_secs,
                estimate_line(&ev.current),
                estimate_line(&ev.current_tuned)
            );
            for c in ev.candidates.iter().take(6) {
                eprintln!("    cand {}", estimate_line(c));
            }
        }
    }

    /// After a commit, `at` counted seconds (level 2).
    pub(super) fn committed(&self, ck: &Checkpointer, at: f64) {
        if self.level < 2 {
            return;
        }
        let advisor = ck.advisor();
        eprintln!(
            "{at:>6.2}s commit: plan {} decision {:?}\n    state {:?}",
            ck.plan(),
            ck.last_decision().map(|d| match d {
                Decision::Hold => "hold".to_owned(),
                Decision::Apply(rec) | Decision::Advise(rec) => rec.to_string(),
                other => format!("{other:?}"),
            }),
            advisor.policy_state()
        );
        let Some(ev) = advisor
            .in_force()
            .and_then(|(plan, every)| advisor.evaluate(plan, every))
        else {
            return;
        };
        eprintln!("    now {}", estimate_line(&ev.current));
        for r in &ev.recommendations {
            let a = r.advice();
            eprintln!(
                "    rec saving {:.3} confidence {:.3} {:?}: {}",
                a.saving,
                a.confidence,
                a.basis,
                r.plan()
            );
        }
        if let Some(best) = ev.candidates.first() {
            eprintln!("    best {}", estimate_line(best));
        }
        for c in ev.candidates.iter().filter(|c| {
            c.plan.base() == ev.current.plan.base()
                && c.plan.full_every() == ev.current.plan.full_every()
                && matches!(c.plan.drain_every(), Some(1 | 4 | 16))
        }) {
            eprintln!("    k {}", estimate_line(c));
        }
        let model = advisor.model();
        eprintln!(
            "    rates node {:?} process {:?}",
            model.failure_rate(FailureClass::Node),
            model.failure_rate(FailureClass::Process)
        );
    }
}
