//! `ckpt report`: one self-contained HTML page (inline SVG and CSS, no
//! script, no network) of what the store's journal recorded and what its
//! cost model learnt: checkpoint costs per scheme, bytes written, the
//! interval in force, failures, restores and decisions over time, and the
//! fitted cost curves with their confidence bands.

mod page;

use crate::fail::{Failure, exit};
use crate::store::{self, Location};
use crate::svg::{Band, Chart, Mark, Markers, Series};
use ckpt::model::{Advisor, Plan, Policy};
use ckpt::{DecisionKind, JournalEvent, JournalRecord, Scheme};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// The normal quantile of a two-sided 95% interval.
const Z95: f64 = 1.959_964;
/// Intervals at which each fitted curve is priced.
const CURVE_POINTS: usize = 40;

/// Runs `ckpt report STORE -o OUT`; `mtbf` replaces the MTBF the writer
/// was configured with (stored with its model) for the fitted curves.
pub fn run(location: &Location, out: &Path, mtbf: Option<f64>, json: bool) -> Result<(), Failure> {
    let mtbf = match mtbf {
        Some(secs) if secs.is_finite() && secs > 0.0 => Some(Duration::from_secs_f64(secs)),
        Some(secs) => {
            return Err(Failure::usage(format!(
                "--mtbf {secs}: give the MTBF in seconds, a positive number (e.g. --mtbf 86400)"
            )));
        }
        None => None,
    };
    let storage = location.read()?;
    let reader = store::reader(&storage, None)?;
    let journal = reader.journal()?;
    // The model as its writer configured it, with the MTBF given here in
    // place of the writer's.
    let advisor = match (reader.advisor_as_written(Policy::adaptive())?, mtbf) {
        (Some(written), Some(mtbf)) => {
            let mut config = written.model().config().clone();
            config.mtbf = mtbf;
            Some(written.reconfigured(config)?)
        }
        (advisor, _) => advisor,
    };
    if journal.is_empty() && advisor.is_none() {
        return Err(Failure::damaged(format!(
            "{location} has no journal and no cost model to report on: a checkpointer records them as it commits checkpoints (`ckpt ls` shows what the store holds)"
        )));
    }
    let html = render(&location.to_string(), &journal, advisor.as_ref());
    std::fs::write(out, html).map_err(|e| Failure {
        message: format!(
            "could not write {}: {e}; choose another path with -o",
            out.display()
        ),
        code: exit::STORE,
    })?;
    if json {
        super::print_json(&serde_json::json!({
            "report": out.display().to_string(),
            "records": journal.len(),
        }))
    } else {
        println!(
            "wrote {} ({} journal records)",
            out.display(),
            journal.len()
        );
        Ok(())
    }
}

/// The whole page.
pub fn render(store: &str, journal: &[JournalRecord], advisor: Option<&Advisor>) -> String {
    let start = journal.first().map_or(SystemTime::UNIX_EPOCH, |r| r.at);
    let t = |r: &JournalRecord| r.at.duration_since(start).unwrap_or_default().as_secs_f64();
    let mut sections = vec![
        ("Checkpoint cost", cost_chart(journal, &t)),
        ("Bytes written", bytes_chart(journal, &t)),
        ("Interval in force", interval_chart(journal, &t)),
    ];
    let curves = advisor.and_then(curve_chart);
    if let Some(chart) = &curves {
        sections.push(("Fitted cost curves", chart.clone()));
    }
    page::html(&page::Page {
        store,
        journal,
        start,
        sections,
        advisor,
        t: &t,
    })
}

/// The schemes in the order they are drawn, with their colours.
const SCHEMES: [(Scheme, &str); 3] = [
    (Scheme::Full, "#1f77b4"),
    (Scheme::Incremental, "#2ca02c"),
    (Scheme::CopyOnWrite, "#d62728"),
];

/// A scheme's name as a `data-series` id part.
pub fn slug(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The failures, restores and decisions as markers (always present, so
/// that a reader of the page finds the groups even when empty).
fn markers(journal: &[JournalRecord], t: &dyn Fn(&JournalRecord) -> f64) -> Vec<Markers> {
    let mut restarts = Markers {
        id: "restarts".to_owned(),
        label: "restart after a failure".to_owned(),
        color: "#000000",
        at: Vec::new(),
    };
    let mut restores = Markers {
        id: "restores".to_owned(),
        label: "restore".to_owned(),
        color: "#9467bd",
        at: Vec::new(),
    };
    let mut storage = Markers {
        id: "storage-errors".to_owned(),
        label: "storage error / failover".to_owned(),
        color: "#ff7f0e",
        at: Vec::new(),
    };
    let mut decisions = Markers {
        id: "decisions".to_owned(),
        label: "policy decision".to_owned(),
        color: "#e6a700",
        at: Vec::new(),
    };
    for r in journal {
        let x = t(r);
        match &r.event {
            JournalEvent::Restart(e) => restarts
                .at
                .push((x, format!("restart after a {:?} failure", e.class))),
            JournalEvent::Restore(e) => restores.at.push((
                x,
                format!("restored step {} in {:.3}s", e.step, secs(e.duration)),
            )),
            JournalEvent::StorageError(e) => storage.at.push((x, format!("storage: {}", e.op))),
            JournalEvent::Failover(e) => storage
                .at
                .push((x, format!("failover, paused {:.3}s", secs(e.pause)))),
            JournalEvent::Decision(d) => decisions.at.push((
                x,
                format!(
                    "{}: {} every {:.3}s",
                    kind(d.kind),
                    d.plan,
                    secs(d.interval)
                ),
            )),
            _ => {}
        }
    }
    vec![restarts, restores, storage, decisions]
}

/// A decision kind in words.
pub fn kind(kind: DecisionKind) -> &'static str {
    match kind {
        DecisionKind::Advise => "advise",
        DecisionKind::Apply => "apply",
        DecisionKind::Explore => "trial",
        _ => "other",
    }
}

/// Checkpoint records by scheme: (scheme, colour, records).
fn by_scheme(journal: &[JournalRecord]) -> Vec<(Scheme, &'static str, Vec<&JournalRecord>)> {
    SCHEMES
        .iter()
        .map(|(scheme, color)| {
            let records = journal
                .iter()
                .filter(|r| {
                    matches!(&r.event, JournalEvent::Checkpoint { event, .. }
                        if event.scheme == *scheme)
                })
                .collect::<Vec<_>>();
            (*scheme, *color, records)
        })
        .filter(|(_, _, records)| !records.is_empty())
        .collect()
}

fn checkpoint(r: &JournalRecord) -> Option<(&ckpt::model::CheckpointEvent, Duration)> {
    match &r.event {
        JournalEvent::Checkpoint { event, interval } => Some((event, *interval)),
        _ => None,
    }
}

fn cost_chart(journal: &[JournalRecord], t: &dyn Fn(&JournalRecord) -> f64) -> Chart {
    let mut series = Vec::new();
    for (scheme, color, records) in by_scheme(journal) {
        let name = slug(&scheme.to_string());
        let point = |r: &&JournalRecord, d: fn(&ckpt::model::CheckpointEvent) -> Duration| {
            checkpoint(r).map(|(e, _)| {
                (
                    t(r),
                    secs(d(e)),
                    format!(
                        "step {} ({scheme}): stall {:.4}s, durable after {:.4}s",
                        e.step,
                        secs(e.stall),
                        secs(e.persist)
                    ),
                )
            })
        };
        series.push(Series {
            id: format!("stall-{name}"),
            label: format!("{scheme}: stall"),
            color,
            mark: Mark::Dots,
            points: records
                .iter()
                .filter_map(|r| point(r, |e| e.stall))
                .collect(),
        });
        series.push(Series {
            id: format!("durable-{name}"),
            label: format!("{scheme}: time to durable"),
            color,
            mark: Mark::Rings,
            points: records
                .iter()
                .filter_map(|r| point(r, |e| e.persist))
                .collect(),
        });
    }
    over_time("seconds", true, series, journal, t)
}

fn bytes_chart(journal: &[JournalRecord], t: &dyn Fn(&JournalRecord) -> f64) -> Chart {
    let series = by_scheme(journal)
        .into_iter()
        .map(|(scheme, color, records)| Series {
            id: format!("bytes-{}", slug(&scheme.to_string())),
            label: format!("{scheme}: bytes written"),
            color,
            mark: Mark::Dots,
            points: records
                .iter()
                .filter_map(|r| {
                    checkpoint(r).map(|(e, _)| {
                        (
                            t(r),
                            e.bytes_written as f64,
                            format!(
                                "step {}: {} bytes written of {} ({} dirty), chain {}",
                                e.step,
                                e.bytes_written,
                                e.logical_bytes,
                                e.dirty_bytes,
                                e.chain_length
                            ),
                        )
                    })
                })
                .collect(),
        })
        .collect();
    over_time("bytes per checkpoint", true, series, journal, t)
}

fn interval_chart(journal: &[JournalRecord], t: &dyn Fn(&JournalRecord) -> f64) -> Chart {
    let points = journal
        .iter()
        .filter_map(|r| {
            checkpoint(r).map(|(e, every)| {
                (
                    t(r),
                    secs(every),
                    format!("step {} ({}): every {:.4}s", e.step, e.scheme, secs(every)),
                )
            })
        })
        .collect();
    let series = vec![Series {
        id: "interval".to_owned(),
        label: "interval in force".to_owned(),
        color: "#17becf",
        mark: Mark::Step,
        points,
    }];
    over_time("interval (s of compute)", false, series, journal, t)
}

/// A chart over the journal's time, with its failure, restore and
/// decision markers.
fn over_time(
    y_label: &str,
    log_y: bool,
    series: Vec<Series>,
    journal: &[JournalRecord],
    t: &dyn Fn(&JournalRecord) -> f64,
) -> Chart {
    Chart {
        x_label: "time since the first record (s)".to_owned(),
        y_label: y_label.to_owned(),
        log_y,
        series,
        markers: markers(journal, t),
        ..Chart::default()
    }
}

/// Overhead against interval for the plan in force and every candidate
/// the model prices, with 95% bands; `None` before any cost is fitted.
fn curve_chart(advisor: &Advisor) -> Option<Chart> {
    let (plan, every) = advisor
        .in_force()
        .unwrap_or((Plan::only(Scheme::Full), Duration::from_secs(60)));
    let evaluation = advisor.evaluate(plan, every)?;
    // The plan in force, each scheme alone, and the model's best
    // candidate: at most five curves that differ.
    let mut plans = vec![plan];
    let others = SCHEMES.iter().map(|(s, _)| Plan::only(*s));
    for candidate in others.chain(evaluation.best().map(|b| b.plan)) {
        if !plans.contains(&candidate) {
            plans.push(candidate);
        }
    }
    // One range of intervals for all: a tenth of the shortest best
    // interval to ten times the longest.
    let bests: Vec<f64> = plans
        .iter()
        .filter_map(|p| advisor.evaluate(*p, every))
        .map(|e| e.current_tuned.interval.as_secs_f64().max(1e-3))
        .chain([every.as_secs_f64().max(1e-3)])
        .collect();
    let lo = bests.iter().copied().fold(f64::INFINITY, f64::min) / 10.0;
    let hi = bests.iter().copied().fold(0.0, f64::max) * 10.0;
    let colors = ["#e377c2", "#1f77b4", "#2ca02c", "#d62728", "#ff7f0e"];
    let (mut series, mut bands) = (Vec::new(), Vec::new());
    for (i, plan) in plans.iter().enumerate().take(colors.len()) {
        let color = colors[i];
        let (mut line, mut band) = (Vec::new(), Vec::new());
        for k in 0..CURVE_POINTS {
            let tau = lo * (hi / lo).powf(k as f64 / (CURVE_POINTS - 1) as f64);
            let Some(e) = advisor.evaluate(*plan, Duration::from_secs_f64(tau)) else {
                continue;
            };
            let (o, se) = (e.current.overhead * 100.0, e.current.std_error * 100.0);
            if !o.is_finite() {
                continue;
            }
            line.push((
                tau,
                o,
                format!("{plan} every {tau:.3}s: overhead {o:.2}% ± {:.2}", Z95 * se),
            ));
            band.push((tau, (o - Z95 * se).max(0.0), o + Z95 * se));
        }
        let id = slug(&plan.to_string());
        series.push(Series {
            id: format!("curve-{id}"),
            label: format!("{plan}{}", if i == 0 { " (in force)" } else { "" }),
            color,
            mark: Mark::Line,
            points: line,
        });
        bands.push(Band {
            id: format!("band-{id}"),
            color,
            points: band,
        });
    }
    let in_force = Markers {
        id: "interval-in-force".to_owned(),
        label: "interval in force".to_owned(),
        color: "#17becf",
        at: vec![(
            every.as_secs_f64(),
            format!("{plan} every {:.3}s", every.as_secs_f64()),
        )],
    };
    Some(Chart {
        x_label: "interval between checkpoints (s of compute, log)".to_owned(),
        y_label: "expected overhead (%)".to_owned(),
        log_x: true,
        log_y: true,
        series,
        bands,
        markers: vec![in_force],
    })
}
