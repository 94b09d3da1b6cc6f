//! What the runs are worth: the oracle, each run's line and the table.

use crate::run::{Mode, Outcome};
use crate::workload::Workload;
use std::time::Duration;

/// Goodputs of one workload: full, incremental, cow, adaptive, oracle.
pub(crate) type Goodputs = [f64; 5];

pub(crate) struct Row {
    pub(crate) title: String,
    /// One entry per failure seed.
    pub(crate) seeds: Vec<Goodputs>,
}

impl Row {
    pub(crate) fn mean(&self) -> Goodputs {
        let n = self.seeds.len().max(1) as f64;
        let mut mean = [0.0; 5];
        for g in &self.seeds {
            for (m, x) in mean.iter_mut().zip(g) {
                *m += x / n;
            }
        }
        mean
    }
}

/// Best static scheme per phase, in hindsight: total useful work over the
/// sum of each phase's smallest wall time per unit of useful work.
pub(crate) fn oracle(w: &Workload, statics: &[Outcome]) -> f64 {
    let mut useful = 0.0;
    let mut wall = 0.0;
    for phase in 0..w.phases.len() {
        let mean_useful = statics
            .iter()
            .map(|o| o.useful.get(phase).copied().unwrap_or(0.0))
            .sum::<f64>()
            / statics.len() as f64;
        let best = statics
            .iter()
            .map(|o| o.phase_goodput(phase))
            .fold(0.0, f64::max);
        useful += mean_useful;
        wall += mean_useful / best;
    }
    useful / wall
}

pub(crate) fn print_outcome(w: &Workload, mode: Mode, out: &Outcome) {
    let phases: Vec<String> = (0..w.phases.len())
        .map(|p| format!("{:.3}", out.phase_goodput(p)))
        .collect();
    let reference: Vec<String> = out
        .reference
        .iter()
        .map(|t| format!("{:.1}", t * 1e3))
        .collect();
    println!(
        "    {:<11} goodput {:.3} (phases {}), wall {:.1} s, {} failures, restore {:.2} s, \
         checkpoints full/inc/cow {:?}; step {:.1} ms in the run vs {} ms reference; {} steps run",
        mode.name(),
        out.goodput(),
        phases.join(" "),
        out.wall.iter().sum::<Duration>().as_secs_f64(),
        out.failures,
        out.restore.as_secs_f64(),
        out.checkpoints,
        out.step_time.as_secs_f64() * 1e3 / out.steps_run.max(1) as f64,
        reference.join("/"),
        out.steps_run,
    );
    if mode == Mode::Adaptive {
        println!(
            "      {} changes applied, {} explorations, final plan: {}; checkpoints per phase under full/inc/cow plans: {:?}",
            out.applied, out.explored, out.final_plan, out.plan_share
        );
        for line in &out.timeline {
            println!("      {line}");
        }
    }
}

pub(crate) fn print_table(rows: &[Row]) {
    let seeds = rows.first().map_or(1, |r| r.seeds.len());
    if seeds > 1 {
        println!("\nmeans over {seeds} failure seeds");
    }
    println!(
        "\n| workload | full | incremental | cow | adaptive | oracle | adaptive/best static | adaptive/oracle |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in rows {
        let g = r.mean();
        let best_static = g[..3].iter().copied().fold(0.0, f64::max);
        println!(
            "| {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
            r.title,
            g[0],
            g[1],
            g[2],
            g[3],
            g[4],
            g[3] / best_static,
            g[3] / g[4]
        );
    }
    if seeds > 1 {
        println!("\nadaptive/best static, seed by seed:");
        for r in rows {
            let ratios: Vec<String> = r
                .seeds
                .iter()
                .map(|g| format!("{:.3}", g[3] / g[..3].iter().copied().fold(0.0, f64::max)))
                .collect();
            println!("  {}: {}", r.title, ratios.join(" "));
        }
    }
}
