//! `ckpt model`: what the store's cost model learnt, priced now.

use super::print_json;
use crate::fail::Failure;
use crate::human::{self, Table};
use crate::store::{self, Location};
use ckpt::model::{Advisor, FailureClass, Plan, PlanEstimate, Policy};
use ckpt::{JournalEvent, JournalRecord, Scheme};
use serde::Serialize;
use std::time::Duration;

/// The normal quantile of a two-sided 95% interval (the model's default
/// confidence level).
const Z95: f64 = 1.959_964;

/// A plan as the model prices it, as `--json` writes it.
#[derive(Serialize)]
struct Priced {
    plan: String,
    interval_secs: f64,
    /// Expected fraction of time lost to checkpoints and failures.
    overhead: f64,
    overhead_low: f64,
    overhead_high: f64,
    stall_secs: f64,
    persist_secs: f64,
    restart_secs: f64,
    basis: String,
}

/// A failure class's rate, as `--json` writes it.
#[derive(Serialize)]
struct Rate {
    class: String,
    per_second: f64,
    lower: f64,
    upper: f64,
    mtbf_secs: f64,
}

/// The whole document.
#[derive(Serialize)]
struct Document {
    checkpoints: u64,
    restores: u64,
    restarts: u64,
    storage_errors: u64,
    observations: Vec<(String, u64)>,
    step_time_secs: Option<f64>,
    failure_rates: Vec<Rate>,
    changes_detected: u64,
    plan_in_force: Option<(String, f64)>,
    trial: Option<(String, f64)>,
    policy_changes_applied: u64,
    priced: Vec<Priced>,
    recommendations: Vec<String>,
    /// The newest decisions of the store's journal, oldest first.
    recent_decisions: Vec<Recent>,
}

/// A decision from the journal, as `--json` writes it.
#[derive(Serialize)]
struct Recent {
    step: Option<u64>,
    kind: String,
    plan: String,
    interval_secs: f64,
    saving: Option<f64>,
    reason: String,
}

/// Decisions `ckpt model` shows (`ckpt report` draws them all).
const RECENT: usize = 5;

/// Runs `ckpt model`.
pub fn run(location: &Location, json: bool) -> Result<(), Failure> {
    let storage = location.read()?;
    let reader = store::reader(&storage, None)?;
    let Some(advisor) = reader.advisor_as_written(Policy::adaptive())? else {
        return Err(Failure::damaged(format!(
            "{location} holds no cost model state: a checkpointer saves it (model/advisor) once it has committed checkpoints"
        )));
    };
    let mut document = document(&advisor);
    document.recent_decisions = recent(&reader.journal()?);
    if json {
        return print_json(&document);
    }
    print!("{}", text(&document));
    Ok(())
}

fn document(advisor: &Advisor) -> Document {
    let model = advisor.model();
    let summary = advisor.summary();
    let schemes = [Scheme::Full, Scheme::Incremental, Scheme::CopyOnWrite];
    let observations: Vec<(String, u64)> = schemes
        .iter()
        .map(|s| (s.to_string(), model.observations(*s)))
        .collect();
    let in_force = advisor.in_force();
    // Price the plan in force, or the most observed scheme at the mean
    // compute time between checkpoints seen.
    let current = in_force.unwrap_or_else(|| {
        let most = schemes
            .iter()
            .copied()
            .max_by_key(|s| model.observations(*s))
            .unwrap_or_default();
        let mean = summary
            .total_compute
            .checked_div(u32::try_from(summary.checkpoints).unwrap_or(u32::MAX))
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs(60));
        (Plan::only(most), mean)
    });
    let evaluation = advisor.evaluate(current.0, current.1);
    let mut priced = Vec::new();
    let mut recommendations = Vec::new();
    if let Some(e) = &evaluation {
        priced.push(price(&e.current));
        if e.current_tuned.interval != e.current.interval {
            priced.push(price(&e.current_tuned));
        }
        priced.extend(e.candidates.iter().map(price));
        recommendations = e.recommendations.iter().map(|r| r.to_string()).collect();
    }
    Document {
        checkpoints: summary.checkpoints,
        restores: summary.restores,
        restarts: summary.restarts,
        storage_errors: summary.storage_errors,
        observations,
        step_time_secs: model.step_time().map(|d| d.as_secs_f64()),
        failure_rates: FailureClass::ALL
            .iter()
            .map(|class| {
                let r = model.failure_rate(*class);
                Rate {
                    class: format!("{class:?}").to_lowercase(),
                    per_second: r.per_second,
                    lower: r.lower,
                    upper: r.upper,
                    mtbf_secs: r.mtbf_secs(),
                }
            })
            .collect(),
        changes_detected: model.changes_detected(),
        plan_in_force: in_force.map(|(p, d)| (p.to_string(), d.as_secs_f64())),
        trial: advisor
            .trial()
            .map(|(s, d)| (s.to_string(), d.as_secs_f64())),
        policy_changes_applied: advisor.policy_state().changes_applied(),
        priced,
        recommendations,
        recent_decisions: Vec::new(),
    }
}

/// The newest [`RECENT`] decisions of `journal`.
fn recent(journal: &[JournalRecord]) -> Vec<Recent> {
    let decisions: Vec<Recent> = journal
        .iter()
        .filter_map(|r| match &r.event {
            JournalEvent::Decision(d) => Some(Recent {
                step: d.step,
                kind: super::report::kind(d.kind).to_owned(),
                plan: d.plan.to_string(),
                interval_secs: d.interval.as_secs_f64(),
                saving: d.saving,
                reason: d.reason.clone(),
            }),
            _ => None,
        })
        .collect();
    let skip = decisions.len().saturating_sub(RECENT);
    decisions.into_iter().skip(skip).collect()
}

fn price(e: &PlanEstimate) -> Priced {
    Priced {
        plan: e.plan.to_string(),
        interval_secs: e.interval.as_secs_f64(),
        overhead: e.overhead,
        overhead_low: (e.overhead - Z95 * e.std_error).max(0.0),
        overhead_high: e.overhead + Z95 * e.std_error,
        stall_secs: e.stall.as_secs_f64(),
        persist_secs: e.persist.as_secs_f64(),
        restart_secs: e.restart.as_secs_f64(),
        basis: format!("{:?}", e.basis).to_lowercase(),
    }
}

fn text(d: &Document) -> String {
    let mut out = format!(
        "learnt from {} checkpoint(s), {} restore(s), {} restart(s), {} storage error(s)\n",
        d.checkpoints, d.restores, d.restarts, d.storage_errors
    );
    let observed: Vec<String> = d
        .observations
        .iter()
        .map(|(s, n)| format!("{s} {n}"))
        .collect();
    out.push_str(&format!(
        "observations per scheme: {}\n",
        observed.join(", ")
    ));
    if let Some(step) = d.step_time_secs {
        out.push_str(&format!("step time: {}\n", human::seconds(step)));
    }
    let rates: Vec<String> = d
        .failure_rates
        .iter()
        .map(|r| {
            format!(
                "{} MTBF {} (95%: {} .. {})",
                r.class,
                mtbf(r.per_second),
                mtbf(r.upper),
                mtbf(r.lower)
            )
        })
        .collect();
    out.push_str(&format!("failures: {}\n", rates.join("; ")));
    out.push_str(&format!(
        "plan in force: {}\n",
        d.plan_in_force.as_ref().map_or_else(
            || "none chosen by the policy (the writer's own settings)".to_owned(),
            |(p, i)| format!("{p}, every {}", human::seconds(*i))
        )
    ));
    if let Some((s, i)) = &d.trial {
        out.push_str(&format!(
            "trial running: {s} every {}\n",
            human::seconds(*i)
        ));
    }
    out.push_str(&format!(
        "policy changes applied: {}; cost changes detected: {}\n",
        d.policy_changes_applied, d.changes_detected
    ));
    if d.priced.is_empty() {
        out.push_str("no costs fitted yet (no checkpoint event learnt)\n");
    } else {
        let mut t = Table::new(&[
            "plan",
            "interval",
            "overhead",
            "95% interval",
            "stall",
            "persist",
            "restart",
            "basis",
        ]);
        for p in &d.priced {
            t.row(vec![
                p.plan.clone(),
                human::seconds(p.interval_secs),
                format!("{:.2}%", p.overhead * 100.0),
                format!(
                    "{:.2}% .. {:.2}%",
                    p.overhead_low * 100.0,
                    p.overhead_high * 100.0
                ),
                human::seconds(p.stall_secs),
                human::seconds(p.persist_secs),
                human::seconds(p.restart_secs),
                p.basis.clone(),
            ]);
        }
        out.push_str(&format!(
            "\nfitted costs (first row: the plan in force):\n{}",
            t.render()
        ));
    }
    for r in &d.recommendations {
        out.push_str(&format!("recommendation: {r}\n"));
    }
    if d.recent_decisions.is_empty() {
        out.push_str("recent decisions: none in the store's journal\n");
    }
    for r in &d.recent_decisions {
        out.push_str(&format!(
            "decision at {}: {} {} every {}{}: {}\n",
            r.step
                .map_or_else(|| "start".to_owned(), |s| format!("step {s}")),
            r.kind,
            r.plan,
            human::seconds(r.interval_secs),
            r.saving
                .map_or_else(String::new, |s| format!(" (saves {:.2}%)", s * 100.0)),
            r.reason
        ));
    }
    out
}

/// A rate per second as a mean time between failures.
fn mtbf(per_second: f64) -> String {
    if per_second > 0.0 && per_second.is_finite() {
        human::duration(Duration::from_secs_f64((1.0 / per_second).min(1e12)))
    } else {
        "unbounded".to_owned()
    }
}
