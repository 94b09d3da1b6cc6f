//! The report's HTML around its charts: a summary, the decisions table,
//! the failures and restores, and the style sheet — all inline.

use super::{kind, secs};
use crate::human;
use crate::svg::{Chart, escape};
use ckpt::model::Advisor;
use ckpt::{JournalEvent, JournalRecord, Scheme};
use std::fmt::Write;
use std::time::SystemTime;

/// What the page shows.
pub struct Page<'a> {
    /// The store, as the user named it.
    pub store: &'a str,
    /// The journal, oldest first.
    pub journal: &'a [JournalRecord],
    /// The time of its first record (x = 0 in the charts).
    pub start: SystemTime,
    /// The charts, titled.
    pub sections: Vec<(&'static str, Chart)>,
    /// The learnt model, if the store holds one.
    pub advisor: Option<&'a Advisor>,
    /// A record's x: seconds since `start`.
    pub t: &'a dyn Fn(&JournalRecord) -> f64,
}

const STYLE: &str = "
body{font:14px/1.4 system-ui,sans-serif;margin:24px auto;max-width:1040px;color:#222;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 6px;border-bottom:1px solid #ddd}
.chart{width:100%;height:auto;display:block}
.legend span{margin-right:16px;white-space:nowrap;font-size:12px}
.legend i{display:inline-block;width:14px;height:10px;margin-right:5px;vertical-align:middle}
.legend i.dot{background:var(--c);border-radius:50%;width:10px}
.legend i.ring{border:2px solid var(--c);border-radius:50%;width:6px;height:6px}
.legend i.line{border-top:3px solid var(--c);height:0}
.legend i.mark{border-left:2px dashed var(--c);width:0}
table{border-collapse:collapse;width:100%;font-size:12px}
th,td{border-bottom:1px solid #eee;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f6f6f6}td.n{text-align:right;white-space:nowrap}
.muted{color:#777}dl{display:grid;grid-template-columns:max-content auto;gap:2px 14px}dt{color:#555}dd{margin:0}
";

/// The page.
pub fn html(page: &Page<'_>) -> String {
    let mut out = String::from("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    let _ = write!(
        out,
        "<title>ckpt report: {}</title><style>{STYLE}</style></head><body>",
        escape(page.store)
    );
    let _ = write!(
        out,
        "<h1>ckpt report</h1><p class=\"muted\">{} — {} journal record(s){}</p>",
        escape(page.store),
        page.journal.len(),
        match page.journal.first() {
            Some(_) => format!(", from {} (x = 0 in the charts)", utc(page.start)),
            None => String::new(),
        }
    );
    summary(&mut out, page);
    if page.journal.is_empty() {
        out.push_str("<p>The store has no journal yet (a checkpointer of this version records one as it commits), so the charts over time are empty.</p>");
    }
    for (title, chart) in &page.sections {
        let _ = write!(out, "<h2>{title}</h2>{}", chart.render());
        if *title == "Fitted cost curves" {
            out.push_str("<p class=\"muted\">Expected share of time lost to checkpoints and failures against the interval, for the plan in force and each candidate the model priced, with 95% bands from the fits' confidence intervals.</p>");
        }
    }
    decisions(&mut out, page);
    incidents(&mut out, page);
    out.push_str("</body></html>\n");
    out
}

/// ISO-like UTC time of `at`.
fn utc(at: SystemTime) -> String {
    let secs = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn summary(out: &mut String, page: &Page<'_>) {
    let mut checkpoints = [0u64; 3];
    let (mut stall, mut persist, mut written) = (0.0, 0.0, 0u64);
    let (mut restarts, mut restores, mut errors, mut decisions) = (0, 0, 0, 0);
    for r in page.journal {
        match &r.event {
            JournalEvent::Checkpoint { event, .. } => {
                let i = match event.scheme {
                    Scheme::Full => 0,
                    Scheme::Incremental => 1,
                    _ => 2,
                };
                checkpoints[i] += 1;
                stall += secs(event.stall);
                persist += secs(event.persist);
                written += event.bytes_written;
            }
            JournalEvent::Restart(_) => restarts += 1,
            JournalEvent::Restore(_) => restores += 1,
            JournalEvent::StorageError(_) | JournalEvent::Failover(_) => errors += 1,
            JournalEvent::Decision(_) => decisions += 1,
            _ => {}
        }
    }
    let _ = write!(
        out,
        "<dl><dt>checkpoints</dt><dd>{} (full {}, incremental {}, copy-on-write {})</dd>\
         <dt>stall, total</dt><dd>{}</dd><dt>time to durable, total</dt><dd>{}</dd>\
         <dt>bytes written</dt><dd>{}</dd><dt>restarts after failures</dt><dd>{restarts}</dd>\
         <dt>restores</dt><dd>{restores}</dd><dt>storage errors and failovers</dt><dd>{errors}</dd>\
         <dt>policy decisions</dt><dd>{decisions}</dd>",
        checkpoints.iter().sum::<u64>(),
        checkpoints[0],
        checkpoints[1],
        checkpoints[2],
        human::seconds(stall),
        human::seconds(persist),
        human::bytes(written),
    );
    if let Some(advisor) = page.advisor {
        let plan = advisor.in_force().map_or_else(
            || "none chosen by the policy (the writer's own settings)".to_owned(),
            |(p, every)| format!("{p}, every {}", human::seconds(secs(every))),
        );
        let _ = write!(
            out,
            "<dt>plan in force</dt><dd>{}</dd><dt>model learnt from</dt><dd>{} checkpoint(s)</dd>",
            escape(&plan),
            advisor.summary().checkpoints
        );
    }
    out.push_str("</dl>");
}

fn decisions(out: &mut String, page: &Page<'_>) {
    out.push_str("<h2>Policy decisions</h2>");
    let rows: Vec<String> = page
        .journal
        .iter()
        .filter_map(|r| match &r.event {
            JournalEvent::Decision(d) => Some(format!(
                "<tr><td class=\"n\">{:.2}s</td><td class=\"n\">{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
                (page.t)(r),
                d.step.map_or_else(|| "start".to_owned(), |s| s.to_string()),
                kind(d.kind),
                escape(&d.plan.to_string()),
                human::seconds(secs(d.interval)),
                d.saving.map_or_else(|| "-".to_owned(), |s| format!("{:.2}%", s * 100.0)),
                d.confidence.map_or_else(|| "-".to_owned(), |c| format!("{:.0}%", c * 100.0)),
                escape(&d.reason),
            )),
            _ => None,
        })
        .collect();
    if rows.is_empty() {
        out.push_str("<p class=\"muted\">No decision recorded (a fixed policy decides nothing; an adaptive one holds until a change pays).</p>");
        return;
    }
    out.push_str("<table data-table=\"decisions\"><tr><th>time</th><th>step</th><th>decision</th><th>plan</th><th>interval</th><th>predicted saving</th><th>confidence</th><th>reason</th></tr>");
    out.push_str(&rows.concat());
    out.push_str("</table>");
}

fn incidents(out: &mut String, page: &Page<'_>) {
    let rows: Vec<String> = page
        .journal
        .iter()
        .filter_map(|r| {
            let what = match &r.event {
                JournalEvent::Restart(e) => {
                    format!("restart after a {:?} failure", e.class).to_lowercase()
                }
                JournalEvent::Restore(e) => format!(
                    "restored step {} (chain {}, {}) in {}",
                    e.step,
                    e.chain_length,
                    human::bytes(e.bytes_read),
                    human::seconds(secs(e.duration))
                ),
                JournalEvent::StorageError(e) => format!(
                    "storage error: {}{}",
                    e.op,
                    if e.transient { " (transient)" } else { "" }
                ),
                JournalEvent::Failover(e) => format!(
                    "failover: paused {}, {} operation(s) retried",
                    human::seconds(secs(e.pause)),
                    e.retried
                ),
                _ => return None,
            };
            Some(format!(
                "<tr><td class=\"n\">{:.2}s</td><td>{}</td></tr>",
                (page.t)(r),
                escape(&what)
            ))
        })
        .collect();
    out.push_str("<h2>Failures, restores and storage errors</h2>");
    if rows.is_empty() {
        out.push_str("<p class=\"muted\">None recorded.</p>");
    } else {
        out.push_str("<table data-table=\"incidents\"><tr><th>time</th><th>what</th></tr>");
        out.push_str(&rows.concat());
        out.push_str("</table>");
    }
}

#[cfg(test)]
mod tests {
    use super::utc;
    use std::time::{Duration, SystemTime};

    #[test]
    fn times_print_as_utc_dates() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_772_323_200 + 3_723);
        assert_eq!(utc(at), "2026-03-01 01:02:03 UTC");
    }
}
