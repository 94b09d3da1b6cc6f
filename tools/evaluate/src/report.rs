//! What the runs are worth: the oracle, each run's line and the table.

use crate::run::{Mode, Outcome};
use crate::workload::Workload;
use std::time::Duration;

/// Goodputs of one workload: full, incremental, cow, adaptive, oracle.
pub(crate) type Goodputs = [f64; 5];

pub(crate) struct Row {
    pub(crate) key: String,
    pub(crate) title: String,
    /// One entry per failure seed.
    pub(crate) seeds: Vec<Goodputs>,
    /// The adaptive run's scheme switches per phase, per seed.
    pub(crate) switches: Vec<Vec<u32>>,
    /// Per seed: each phase's best static scheme and the adaptive run's
    /// checkpoints under each scheme ([`phase_schemes`]).
    pub(crate) schemes: Vec<String>,
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

    /// Adaptive / best static, of the means over seeds.
    pub(crate) fn vs_static(&self) -> f64 {
        let g = self.mean();
        g[3] / g[..3].iter().copied().fold(0.0, f64::max)
    }

    /// Adaptive / oracle, of the means over seeds.
    pub(crate) fn vs_oracle(&self) -> f64 {
        let g = self.mean();
        g[3] / g[4]
    }

    /// The most scheme switches in one phase of one seed's adaptive run.
    pub(crate) fn most_switches(&self) -> u32 {
        self.switches.iter().flatten().copied().max().unwrap_or(0)
    }
}

/// Per phase: the best static scheme in hindsight, and the adaptive
/// run's checkpoints under full / incremental / cow plans; e.g.
/// `cow (f0 i0 c12)`.
pub(crate) fn phase_schemes(w: &Workload, outcomes: &[Outcome]) -> String {
    let names = ["full", "inc", "cow"];
    (0..w.phases.len())
        .map(|p| {
            let best = (0..3)
                .max_by(|&a, &b| {
                    let g = |i: usize| outcomes.get(i).map_or(0.0, |o| o.phase_goodput(p));
                    g(a).total_cmp(&g(b))
                })
                .unwrap_or(0);
            let share = outcomes
                .get(3)
                .and_then(|o| o.plan_share.get(p))
                .copied()
                .unwrap_or([0; 3]);
            format!(
                "{} (f{} i{} c{})",
                names[best], share[0], share[1], share[2]
            )
        })
        .collect::<Vec<_>>()
        .join(" / ")
}

/// The value at quantile `q` (0–1, linear between ranks) of `values`.
fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    let at = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
    let (a, b) = (sorted[lo], sorted[hi.min(sorted.len() - 1)]);
    a + (b - a) * (at - lo as f64)
}

/// The randomized run's report: per workload the ratios, switches and
/// schemes; then their distribution and the targets of issue 17.
pub(crate) fn print_random(rows: &[Row]) {
    println!(
        "\n| workload | adaptive / best static | adaptive / oracle | per seed (vs best static) | most switches in a phase | per phase: best static (adaptive ckpts under f/i/c), per seed |"
    );
    println!("|---|---|---|---|---|---|");
    for r in rows {
        let per_seed: Vec<String> = r
            .seeds
            .iter()
            .map(|g| format!("{:.3}", g[3] / g[..3].iter().copied().fold(0.0, f64::max)))
            .collect();
        println!(
            "| {} | {:.3} | {:.3} | {} | {} | {} |",
            r.key,
            r.vs_static(),
            r.vs_oracle(),
            per_seed.join(" "),
            r.most_switches(),
            r.schemes.join(" ; ")
        );
    }
    let vs_static: Vec<f64> = rows.iter().map(Row::vs_static).collect();
    let vs_oracle: Vec<f64> = rows.iter().map(Row::vs_oracle).collect();
    let pairs: Vec<f64> = rows
        .iter()
        .flat_map(|r| {
            r.seeds
                .iter()
                .map(|g| g[3] / g[..3].iter().copied().fold(0.0, f64::max))
        })
        .collect();
    let worst = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    println!(
        "\ndistribution over {} workloads (means over seeds):",
        rows.len()
    );
    for (name, v) in [
        ("adaptive / best static", &vs_static),
        ("adaptive / oracle", &vs_oracle),
        ("adaptive / best static, each seed", &pairs),
    ] {
        println!(
            "  {name:<34} median {:.3}  p10 {:.3}  worst {:.3}  best {:.3}",
            quantile(v, 0.5),
            quantile(v, 0.1),
            worst(v),
            quantile(v, 1.0)
        );
    }
    let most = rows.iter().map(Row::most_switches).max().unwrap_or(0);
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    println!("\ntargets (issue 17):");
    println!(
        "  median adaptive / best static >= 1.00: {:.3} {}",
        quantile(&vs_static, 0.5),
        verdict(quantile(&vs_static, 0.5) >= 1.0)
    );
    println!(
        "  worst adaptive / best static >= 0.95: {:.3} {}",
        worst(&vs_static),
        verdict(worst(&vs_static) >= 0.95)
    );
    println!(
        "  median adaptive / oracle >= 0.95: {:.3} {}",
        quantile(&vs_oracle, 0.5),
        verdict(quantile(&vs_oracle, 0.5) >= 0.95)
    );
    println!(
        "  at most 2 scheme switches in one phase: most {most} {}",
        verdict(most <= 2)
    );
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
