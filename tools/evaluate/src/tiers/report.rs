//! What the tiers runs are worth: each run's line, a table per scenario,
//! and issue 15's targets.

use super::CONFIGS;
use super::run::{Config, TierOutcome};
use crate::workload::Workload;

/// Adaptive over remote-only, at least.
const VS_REMOTE: f64 = 1.2;
/// Adaptive over the best static k in hindsight, at least.
const VS_BEST_K: f64 = 0.97;
/// Seeds a target must hold on.
const SEEDS_NEEDED: usize = 3;
/// Node failures after the change within which the adaptive run should
/// change k ("a few").
const FEW: usize = 3;

/// One seed's runs of every configuration, valued at one reference.
pub(crate) struct SeedResult {
    pub(crate) seed: u64,
    /// Goodput of each configuration, in [`CONFIGS`]' order.
    pub(crate) goodput: Vec<f64>,
    /// With a change of the node rate at a step: each configuration's
    /// overhead (counted time over work, less one) from the change on.
    after_change: Vec<Option<f64>>,
    pub(crate) outcomes: Vec<TierOutcome>,
}

impl SeedResult {
    /// `change_at`: the step from which the node rate changed, if it did.
    pub(crate) fn new(
        seed: u64,
        w: &Workload,
        reference: f64,
        outcomes: Vec<TierOutcome>,
        change_at: Option<u64>,
    ) -> Self {
        let steps = w.total_steps();
        let goodput = outcomes
            .iter()
            .map(|o| o.goodput(steps, reference))
            .collect();
        let after_change = outcomes
            .iter()
            .map(|o| {
                let (at, changed) = (change_at?, o.rate_changed_at?);
                let work = steps.checked_sub(at)? as f64 * reference;
                let wall = o.wall.as_secs_f64() - changed;
                (o.cut.is_none() && work > 0.0).then(|| wall / work - 1.0)
            })
            .collect();
        SeedResult {
            seed,
            goodput,
            after_change,
            outcomes,
        }
    }

    fn of(&self, config: Config) -> f64 {
        goodput_of(&self.goodput, config)
    }

    fn adaptive(&self) -> Option<&TierOutcome> {
        let i = CONFIGS.iter().position(|&c| c == Config::Adaptive)?;
        self.outcomes.get(i)
    }

    fn best_static_k(&self) -> (f64, String) {
        best_static_k(&self.goodput)
    }

    fn vs_remote(&self) -> f64 {
        self.of(Config::Adaptive) / self.of(Config::RemoteOnly)
    }

    fn vs_best_k(&self) -> f64 {
        self.of(Config::Adaptive) / self.best_static_k().0
    }

    /// Node failures after the rate changed before the adaptive run's
    /// first change of k after it (`None`: k never changed after it; or
    /// the rate never changed).
    fn node_failures_to_react(&self) -> Option<usize> {
        let out = self.adaptive()?;
        let changed = out.rate_changed_at?;
        let reacted = out
            .k_timeline
            .iter()
            .skip(1)
            .map(|&(t, _)| t)
            .find(|&t| t >= changed)?;
        Some(
            out.node_failures_at
                .iter()
                .filter(|&&t| t >= changed && t <= reacted)
                .count(),
        )
    }
}

/// The k in force over time, e.g. `1→4@t=3.2s→2@t=9.0s`.
fn k_over_time(out: &TierOutcome) -> String {
    let mut text = String::new();
    for (i, &(t, k)) in out.k_timeline.iter().enumerate() {
        if i == 0 {
            text.push_str(&k.to_string());
        } else {
            text.push_str(&format!("→{k}@t={t:.1}s"));
        }
    }
    if text.is_empty() {
        "-".to_owned()
    } else {
        text
    }
}

/// The goodput of `config` among `goodput` (one per configuration, in
/// [`CONFIGS`]' order); NaN if missing.
fn goodput_of(goodput: &[f64], config: Config) -> f64 {
    CONFIGS
        .iter()
        .position(|&c| c == config)
        .and_then(|i| goodput.get(i))
        .copied()
        .unwrap_or(f64::NAN)
}

/// The best goodput of a static k among `goodput` (in [`CONFIGS`]'
/// order), and that k's name.
fn best_static_k(goodput: &[f64]) -> (f64, String) {
    CONFIGS
        .iter()
        .zip(goodput)
        .filter(|(c, _)| matches!(c, Config::Static(_)))
        .map(|(c, &g)| (g, c.name()))
        .fold(
            (0.0, String::new()),
            |best, x| if x.0 > best.0 { x } else { best },
        )
}

/// Goodput of each configuration, mean over `seeds`, in [`CONFIGS`]'
/// order.
fn mean_goodputs(seeds: &[SeedResult]) -> Vec<f64> {
    let n = seeds.len().max(1) as f64;
    (0..CONFIGS.len())
        .map(|i| seeds.iter().filter_map(|s| s.goodput.get(i)).sum::<f64>() / n)
        .collect()
}

/// Over the seeds, as the randomized evaluation compares schemes: the
/// adaptive run's mean goodput against remote-only's mean and against
/// the static k whose mean is best (the one k a user would have fixed in
/// hindsight). A best k picked per seed is the best of five noisy runs,
/// biased upwards by the noise alone; this comparison is not.
struct OverSeeds {
    vs_remote: f64,
    vs_best_k: f64,
    best_k: String,
}

impl OverSeeds {
    fn of(seeds: &[SeedResult]) -> Self {
        let mean = mean_goodputs(seeds);
        let (best, best_k) = best_static_k(&mean);
        let adaptive = goodput_of(&mean, Config::Adaptive);
        OverSeeds {
            vs_remote: adaptive / goodput_of(&mean, Config::RemoteOnly),
            vs_best_k: adaptive / best,
            best_k,
        }
    }
}

/// One line per run of a seed.
pub(crate) fn print_seed(s: &SeedResult, verbose: bool) {
    println!("  seed {}:", s.seed);
    for ((config, out), g) in CONFIGS.iter().zip(&s.outcomes).zip(&s.goodput) {
        let [process, node] = out.restores;
        println!(
            "    {:<11} goodput {g:.3}, {:.1} s, failures process {} node {}; restores after process \
             local/remote/scratch {}/{}/{}, after node {}/{}/{}; restore {:.2} s; {} checkpoints, {} drains{}{}",
            config.name(),
            out.wall.as_secs_f64(),
            out.failures[0],
            out.failures[1],
            process[0],
            process[1],
            process[2],
            node[0],
            node[1],
            node[2],
            out.restore_time.as_secs_f64(),
            out.checkpoints,
            out.drains,
            out.cut.map_or(String::new(), |step| format!(
                "; CUT at the cap, step {step}"
            )),
            if *config == Config::Adaptive {
                format!("; k {}", k_over_time(out))
            } else {
                String::new()
            }
        );
        if verbose {
            for decision in &out.decisions {
                println!("        {decision}");
            }
        }
    }
}

/// The calibration check: for every configuration and seed, the
/// overhead measured (counted time over the work, less one) beside the
/// overhead the model prices the run's plan at, at its interval, from
/// what that run's own checkpointer learnt (the adaptive run: the plan
/// and interval it ended on, against a run that also paid for
/// learning); and the parts of the price (per checkpoint, per failure,
/// the MTBF of both classes), means over the seeds. With a
/// change of the node rate, the overhead measured from the change on is
/// shown too: the model prices the recent node rate.
fn print_calibration(seeds: &[SeedResult]) {
    println!(
        "\ncalibration: overhead measured / priced by the run's own model at its end \
         (± standard error), per seed; then the price's parts (means over seeds)\n"
    );
    println!(
        "| configuration | measured / priced per seed | interval | stall | persist | restart | MTBF priced (both classes) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (i, config) in CONFIGS.iter().enumerate() {
        let runs: Vec<(f64, Option<f64>, &TierOutcome)> = seeds
            .iter()
            .filter_map(|s| {
                Some((
                    *s.goodput.get(i)?,
                    *s.after_change.get(i)?,
                    s.outcomes.get(i)?,
                ))
            })
            .collect();
        let cells: Vec<String> = runs
            .iter()
            .map(|(g, after, o)| {
                let measured = match after {
                    Some(after) => format!("{:.2} (after the change {after:.2})", 1.0 / g - 1.0),
                    None => format!("{:.2}", 1.0 / g - 1.0),
                };
                match (o.cut, o.priced) {
                    (Some(_), _) => "cut".to_owned(),
                    (None, Some(p)) => {
                        format!("{measured} / {:.2} ± {:.2}", p.overhead, p.std_error)
                    }
                    (None, None) => format!("{measured} / -"),
                }
            })
            .collect();
        let priced: Vec<_> = runs.iter().filter_map(|(_, _, o)| o.priced).collect();
        let mean = |f: &dyn Fn(&super::run::Priced) -> f64| {
            priced.iter().map(f).sum::<f64>() / priced.len().max(1) as f64
        };
        println!(
            "| {} | {} | {:.3} s | {:.3} s | {:.3} s | {:.3} s | {:.2} s |",
            config.name(),
            cells.join("; "),
            mean(&|p| p.interval),
            mean(&|p| p.stall),
            mean(&|p| p.persist),
            mean(&|p| p.restart),
            mean(&|p| p.mtbf),
        );
    }
}

/// The scenario's table and its targets.
pub(crate) fn print_scenario(name: &str, worsening: bool, seeds: &[SeedResult]) {
    println!("\n## scenario {name}\n");
    let names: Vec<String> = CONFIGS.iter().map(|c| c.name()).collect();
    println!(
        "| seed | {} | adaptive/remote-only | adaptive/best k | adaptive k over time |",
        names.join(" | ")
    );
    println!("|---|{}---|---|---|", "---|".repeat(CONFIGS.len()));
    for s in seeds {
        let g: Vec<String> = s
            .goodput
            .iter()
            .zip(&s.outcomes)
            .map(|(g, o)| match o.cut {
                Some(_) => format!("{g:.3} cut"),
                None => format!("{g:.3}"),
            })
            .collect();
        println!(
            "| {} | {} | {:.3} | {:.3} ({}) | {} |",
            s.seed,
            g.join(" | "),
            s.vs_remote(),
            s.vs_best_k(),
            s.best_static_k().1,
            s.adaptive().map_or("-".to_owned(), k_over_time)
        );
    }
    let mean: Vec<String> = mean_goodputs(seeds)
        .iter()
        .map(|g| format!("{g:.3}"))
        .collect();
    let pooled = OverSeeds::of(seeds);
    println!(
        "| mean | {} | {:.3} | {:.3} ({}) | |",
        mean.join(" | "),
        pooled.vs_remote,
        pooled.vs_best_k,
        pooled.best_k
    );
    let (mut process, mut node) = ([0u32; 3], [0u32; 3]);
    for out in seeds.iter().flat_map(|s| &s.outcomes) {
        for (total, n) in process.iter_mut().zip(out.restores[0]) {
            *total += n;
        }
        for (total, n) in node.iter_mut().zip(out.restores[1]) {
            *total += n;
        }
    }
    print_calibration(seeds);
    println!(
        "\nrestarts, all runs: after a process failure local/remote/scratch {process:?}, \
         after a node failure {node:?}"
    );
    let verdict = |n: usize| {
        if n >= SEEDS_NEEDED { "met" } else { "NOT met" }
    };
    let count = |f: &dyn Fn(&SeedResult) -> bool| seeds.iter().filter(|s| f(s)).count();
    println!(
        "targets ({name}, on >= {SEEDS_NEEDED} seeds of {}):",
        seeds.len()
    );
    let n = count(&|s| s.vs_remote() >= VS_REMOTE);
    println!(
        "  adaptive >= {VS_REMOTE}x remote-only: {n} seeds, {}",
        verdict(n)
    );
    let n = count(&|s| s.vs_best_k() >= VS_BEST_K);
    println!(
        "  adaptive >= {VS_BEST_K}x the best static k: {n} seeds, {}",
        verdict(n)
    );
    if worsening {
        let reactions: Vec<String> = seeds
            .iter()
            .map(|s| {
                s.node_failures_to_react()
                    .map_or("never".to_owned(), |n| format!("after {n}"))
            })
            .collect();
        let n = count(&|s| s.node_failures_to_react().is_some_and(|n| n <= FEW));
        println!(
            "  adaptive changes k within {FEW} node failures after the change: {n} seeds ({}), {}",
            reactions.join(", "),
            verdict(n)
        );
        let n = count(&|s| s.vs_best_k() > 1.0);
        println!("  adaptive beats every static k: {n} seeds, {}", verdict(n));
    }
    let met = |ok: bool| if ok { "met" } else { "NOT met" };
    let enough = seeds.len() >= SEEDS_NEEDED;
    println!(
        "over the {} seeds (means; the best k by its mean, as issue 17's evaluation compares):",
        seeds.len()
    );
    println!(
        "  adaptive >= {VS_REMOTE}x remote-only: {:.3}, {}",
        pooled.vs_remote,
        met(enough && pooled.vs_remote >= VS_REMOTE)
    );
    println!(
        "  adaptive >= {VS_BEST_K}x the best static k ({}): {:.3}, {}",
        pooled.best_k,
        pooled.vs_best_k,
        met(enough && pooled.vs_best_k >= VS_BEST_K)
    );
    if worsening {
        println!(
            "  adaptive beats every static k: {:.3}, {}",
            pooled.vs_best_k,
            met(enough && pooled.vs_best_k > 1.0)
        );
    }
}
