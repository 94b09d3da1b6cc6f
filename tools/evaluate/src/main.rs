//! The evaluation harness of issue 4: does the adaptive policy earn its
//! keep?
//!
//! A workload simulator runs a real [`Checkpointer`](ckpt::Checkpointer) on a real
//! [`FsStorage`](ckpt::FsStorage) (in the system temp directory, or under `target/` when
//! that is a tmpfs) and injects failures. It prints the **goodput** (useful
//! work time / wall time) of every static scheme, of
//! [`Policy::adaptive`](ckpt::model::Policy::adaptive)
//! and of an oracle, for four workloads, then a table.
//!
//! Run it with `cargo run --release -p ckpt-evaluate` (5–6 minutes on 2
//! busy cores; `-- --help` lists the options).
//! Options: `--only a,d`, `--scale 3` (run lengths),
//! `--seeds 3` (repeat with more failure seeds; means are tabled),
//! `--mtbf 4` (seconds), `--seed 1`, `--verbose` (every evaluation of the
//! adaptive runs).
//!
//! # What one run is
//!
//! * **State**: a [`PagedVec<f64>`] (the big numeric part) plus a little
//!   serde metadata (step, RNG state, recent losses), one composite
//!   [`State`](ckpt::State). Float data barely compresses (DESIGN.md: ratio 1.05), so
//!   every run turns compression off, as `examples/paged.rs` does.
//! * **A step** does real work: it writes its share of the state (rows,
//!   a whole-grid stencil sweep, or scattered keys) and then runs a
//!   calibrated arithmetic kernel (not a sleep: copy-on-write persists on
//!   a background thread and must compete for the CPU as it would in a
//!   real job). The kernel's size is calibrated once per workload and is
//!   the same for every run. Its RNG lives in the state, so recomputed
//!   steps are the same steps.
//! * **Failures** arrive as a Poisson process: inter-failure gaps are
//!   drawn from an exponential distribution with the MTBF from a seeded
//!   RNG, and every run of a workload sees the same gaps (common random
//!   numbers). A failure is a crash: from its instant on nothing more
//!   reaches the store (a storage wrapper refuses every write, so a
//!   copy-on-write checkpoint whose manifest was not written yet is lost,
//!   as it would be), the in-memory state and the checkpointer are
//!   dropped, and a new checkpointer on the same store restores the newest
//!   checkpoint; the lost steps are recomputed. Time is counted up to the
//!   crash instant; the harness's cleanup after it (joining the dead
//!   process's persist thread) is not. Opening the new checkpointer and
//!   restoring are counted: that is the restart.
//! * **Time** is wall time less the time the computation's thread waited
//!   for a CPU (Linux schedstat). Other agents compile and benchmark on
//!   this 2-core machine; without the correction their load, not the
//!   scheme, decides which run looks fastest. Waiting for the disk, for a
//!   lock or for the persist thread is not subtracted. (Checkpointer
//!   timings, and with them the library's own intervals, are still real
//!   time.)
//! * **Goodput** = steps × reference step time / time. The reference step
//!   time is the median of short blocks of the same steps with no
//!   checkpointer at all, timed before and after each run, so page copies
//!   caused by copy-on-write and CPU taken by a background persist count
//!   as overhead, not as useful work. One reference, the median of the
//!   blocks around all four runs of a failure seed, values the work of
//!   all four, so that they compare by their times alone.
//!
//! # Static intervals: one rule for every scheme
//!
//! Each static scheme runs at a fixed interval chosen by the same rule:
//! a short probe without failures (a base checkpoint, then four more)
//! measures the median time a checkpoint takes to become durable, `P`, and
//! the interval is Young's `√(2·P·M)` in compute time, `every(τ)`. For the
//! synchronous schemes `P` is the time the computation is blocked; for
//! copy-on-write it is the background write that its page copies and CPU
//! use scale with, a conservative stand-in for a cost the computation does
//! not see directly. Incremental and copy-on-write are probed at full's
//! interval, so their dirty sizes are those of a realistic interval. For
//! the phase-changing workload a static run has one interval for the whole
//! run: the rule applied to the duration-weighted mean `P` of its phases
//! (what a user who profiled an earlier run would configure).
//!
//! The adaptive run starts as a user would: the default scheme (full) at
//! the interval the rule gives full, `Policy::adaptive()` with its default
//! settings, the MTBF configured, and a fresh store (nothing learnt). With
//! nothing learnt the policy begins with its first trial (copy-on-write,
//! first checkpoint after the first step: `Policy::first_trial`), so the
//! configured scheme and interval matter only if that trial does not end
//! in a switch.
//!
//! The **oracle** is the best static scheme per phase, chosen in hindsight
//! from the static runs (for a single-phase workload: the best static
//! scheme). It pays no switching cost and no learning.
//!
//! # Compressed time
//!
//! Real jobs have states of tens of GB, MTBFs of hours and runs of days;
//! here states are 32–128 MiB, the MTBF is 4 s, a single-phase run is 9 s
//! of work (about two MTBFs) and a phase 6 s. Sizes and times are scaled
//! down together: a full checkpoint here costs 0.1–0.6 s (fsync'ed writes
//! at 0.2–0.5 GB/s), 2–15 % of the MTBF — the range of large HPC systems
//! (a 10-minute dump against a 5–10 hour MTBF) and above it. What time
//! compression cannot keep is the number of checkpoints: a static run
//! takes 5–20, a real run of days thousands. The adaptive policy learns
//! from nothing in every run — a first trial of three or more checkpoints,
//! then trials of the other schemes — so here learning costs it a share
//! of the run that a real run would amortise; `--scale 3` shows the same
//! runs three times longer. Each run also sees only a
//! handful of failures, so goodputs carry a few percent of noise (more
//! when other jobs load the disk); read differences of 1–3 % as ties and
//! use `--seeds` for means.
//!
//! # The workloads
//!
//! * **(a) sparse — embedding-table training.** A recommender's embedding
//!   table (64 MiB of 1 KiB rows) is trained with sparse updates: each
//!   20 ms step (the dense tower's forward/backward) updates the 32 rows its
//!   batch looked up, 95 % of them among the 2 % most popular IDs (ID
//!   popularity is heavily skewed in click logs). Between checkpoints a
//!   few percent of the pages change, so **incremental** writes a small
//!   part of the state synchronously and wins clearly over **full**, which
//!   rewrites 64 MiB every time; **copy-on-write** writes the same pages as
//!   incremental but off the critical path, at the price of a background
//!   thread competing for 2 cores.
//! * **(b) dense — explicit PDE solver.** A 32 MiB grid is swept by a
//!   stencil every 50 ms step: everything is dirty at every checkpoint.
//!   **Incremental** degenerates to **full** (plus hashing), and
//!   **copy-on-write** hides the write but then copies every page it still
//!   shares with the snapshot on the next sweep while the persist thread
//!   takes CPU and memory bandwidth; on this machine's slow fsync it still
//!   tends to win, narrowly.
//! * **(c) large state, short steps — stream processor.** A 128 MiB keyed
//!   state (windowed aggregates) absorbs 2 ms micro-batches, each touching
//!   8 keys at random. A full checkpoint costs hundreds of steps; over an
//!   interval most pages get touched, so incremental saves little over
//!   full, and hiding the write behind the computation (**copy-on-write**)
//!   is the natural winner when a core is free to persist.
//! * **(d) phases — a training pipeline that changes regime**: (a)'s
//!   sparse embedding training, then (b)'s dense full-parameter pass, then
//!   (c)'s short online-update steps, on one 64 MiB state. The oracle
//!   picks the best scheme per phase in hindsight; the adaptive policy
//!   has to find out as it goes. If one scheme is best in every phase
//!   (as copy-on-write tends to be on this machine), no policy can beat
//!   the best static scheme by switching schemes; only by choosing better
//!   intervals.
//!
//! # The randomized evaluation
//!
//! `--random N` replaces the four workloads by `N` drawn from a wide
//! family by a seeded generator (`generate.rs`, issue 17 item 3): states
//! 64 MiB–1 GiB (`--max-state` scales the range down), 0.1–100 % of the
//! pages written per step in a uniform, Zipf or sequential-sweep pattern,
//! 2–500 ms steps on one core or every core, storage at 1/1–1/10 of the
//! disk's bandwidth, 1–3 phases changing at random times, and an MTBF per
//! workload that makes a full checkpoint 2–20 % of its Young interval.
//! The four workloads above stay the default: the regression cases.
//! After the usual table it reports per workload adaptive / best static,
//! adaptive / oracle and the adaptive run's scheme switches per phase,
//! then their distribution and issue 17's targets. `--ci` is a short
//! version (3 workloads, small states, short runs).
//!
//! ```text
//! cargo run --release -p ckpt-evaluate -- --random 24 --seeds 2
//! cargo run --release -p ckpt-evaluate -- --ci
//! ```
//!
//! # Multi-level checkpoints
//!
//! `--tiers` evaluates a local and a 6× slower remote tier under process
//! and node failures instead (issue 15 item 4; see `tiers/mod.rs`), the
//! remote's transfers slowing the steps beside them by half:
//! remote-only, local-only, `drain_every(k)` for k = 1…16 and the
//! adaptive policy, in a steady and a worsening scenario. `--tiers --ci`
//! is a short version that fails only on a wrong restore.
//!
//! ```text
//! cargo run --release -p ckpt-evaluate -- --tiers --seeds 3
//! ```
//!
//! [`PagedVec<f64>`]: ckpt::PagedVec

mod calibration;
mod clock;
mod crash;
mod generate;
mod report;
mod run;
mod state;
mod tiers;
mod workload;

use calibration::{Mtbf, burn_rate, calibrate, reference_step_times, static_intervals};
use ckpt::Scheme;
use clock::CpuClock;
use crash::failure_gaps;
use report::{Row, oracle, phase_schemes, print_outcome, print_random, print_table};
use run::{Mode, Outcome, RunSpec, run};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use workload::{Workload, workloads};

pub(crate) type BoxError = Box<dyn std::error::Error>;

pub(crate) const MIB: usize = 1 << 20;

const USAGE: &str = "\
The evaluation harness: goodput of every static scheme, of Policy::adaptive
and of an oracle, for four workloads under injected failures.

usage: cargo run --release -p ckpt-evaluate -- [options]

  --only a,d     run only these workloads (a sparse, b dense, c stream, d phases;
                 with --random, drawn ones by name: --only r05,r07)
  --scale X      run-length scale (default 1)
  --seeds N      failure seeds to run, means are tabled (default 1)
  --mtbf S       mean time between failures, seconds (default 4; with --tiers
                 the process MTBF M, otherwise set from a probe of the disk)
  --seed N       first failure seed (default 1)
  --verbose      every evaluation of the adaptive runs (with --tiers: every
                 change the policy applied)
  --random N     instead of the four fixed workloads, N drawn from the
                 randomized family (issue 17; see generate.rs); MTBF per
                 workload (a full checkpoint 2-20 % of Young's interval)
  --draw-seed S  the draw's seed (default 1)
  --max-state M  scale the family's states (64 MiB-1 GiB) so the largest
                 is M MiB (default 1024)
  --ci           short randomized run: --random 3 --max-state 32 --scale 0.35
                 (a minute or three on 2 cores); with --tiers: one seed, a
                 4 MiB state, a run of one M of work (under a minute)
  --tiers        multi-level checkpoints (issue 15): local + remote tiers under
                 process and node failures; workload c (default) or a via --only
  --remote-slowdown X
                 with --tiers: the remote store is X times slower (default 6)
  --drain-contention X
                 with --tiers: a step that overlaps a transfer to the remote
                 takes X times longer (default 0.5; 0: transfers only wait)
  --state M      with --tiers: the state, MiB (default 16; 4 with --ci)
  --help         this text

The randomized run (issue 17, item 3):
  cargo run --release -p ckpt-evaluate -- --random 24 --seeds 2
Multi-level checkpoints (issue 15, item 4):
  cargo run --release -p ckpt-evaluate -- --tiers --seeds 3
";

/// The default mode's MTBF, seconds, without `--mtbf`.
const DEFAULT_MTBF: f64 = 4.0;

struct Options {
    only: Option<Vec<String>>,
    scale: f64,
    /// `--mtbf`: the default mode takes [`DEFAULT_MTBF`] without it,
    /// `--tiers` sets `M` from a probe.
    mtbf: Option<f64>,
    seed: u64,
    seeds: u64,
    verbose: bool,
    random: Option<usize>,
    draw_seed: u64,
    max_state: usize,
    tiers: bool,
    ci: bool,
    remote_slowdown: f64,
    drain_contention: f64,
    state_mib: Option<usize>,
}

fn options() -> Result<Options, BoxError> {
    let mut o = Options {
        only: None,
        scale: 1.0,
        mtbf: None,
        seed: 1,
        seeds: 1,
        verbose: false,
        random: None,
        draw_seed: 1,
        max_state: 1024 * MIB,
        tiers: false,
        ci: false,
        remote_slowdown: 6.0,
        drain_contention: 0.5,
        state_mib: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--only" => o.only = Some(value()?.split(',').map(str::to_owned).collect()),
            "--scale" => o.scale = value()?.parse()?,
            "--mtbf" => {
                let secs: f64 = value()?.parse()?;
                if !(secs.is_finite() && secs > 0.0) {
                    return Err(
                        format!("--mtbf takes a positive number of seconds, not {secs}").into(),
                    );
                }
                o.mtbf = Some(secs);
            }
            "--seed" => o.seed = value()?.parse()?,
            "--seeds" => o.seeds = value()?.parse::<u64>()?.max(1),
            "--verbose" => o.verbose = true,
            "--random" => o.random = Some(value()?.parse()?),
            "--draw-seed" => o.draw_seed = value()?.parse()?,
            "--max-state" => o.max_state = value()?.parse::<usize>()?.max(1) * MIB,
            "--tiers" => o.tiers = true,
            "--remote-slowdown" => o.remote_slowdown = value()?.parse::<f64>()?.max(1.0),
            "--drain-contention" => o.drain_contention = value()?.parse::<f64>()?.max(0.0),
            "--state" => o.state_mib = Some(value()?.parse::<usize>()?.max(1)),
            "--ci" => {
                o.ci = true;
                o.random = Some(3);
                o.max_state = 32 * MIB;
                o.scale = 0.35;
            }
            "--help" | "-h" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    Ok(o)
}

/// The repository root (this package lives in `tools/evaluate/`), whose
/// `target/` the stores go under on a tmpfs temp dir.
fn workspace_root() -> PathBuf {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .unwrap_or(manifest)
        .to_path_buf()
}

/// Where the stores go: the temp dir unless it is a tmpfs (RAM would hide
/// the cost of writing), else `target/evaluate-stores`.
fn store_root() -> Result<PathBuf, BoxError> {
    let tmp = std::env::temp_dir();
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let fs_type = mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, mount, kind) = (f.next()?, f.next()?, f.next()?);
            tmp.starts_with(mount)
                .then(|| (mount.len(), kind.to_owned()))
        })
        .max()
        .map(|(_, kind)| kind)
        .unwrap_or_default();
    let root = if fs_type == "tmpfs" || fs_type == "ramfs" {
        workspace_root().join("target/evaluate-stores")
    } else {
        tmp.join("ckpt-evaluate")
    };
    std::fs::create_dir_all(&root)?;
    println!(
        "stores under {} (temp dir filesystem: {fs_type})",
        root.display()
    );
    Ok(root)
}

fn main() -> Result<(), BoxError> {
    let o = options()?;
    let root = store_root()?;
    let cpu = CpuClock::for_this_thread();
    println!(
        "time is wall time minus the main thread's waits for a CPU: {}",
        if cpu.corrects() {
            "schedstat available"
        } else {
            "NOT available, plain wall time"
        }
    );
    let rate = burn_rate(&cpu);
    let started = Instant::now();
    if o.tiers {
        return run_tiers(&o, &root, rate, &cpu, started);
    }
    let mut rows = Vec::new();
    if let Some(n) = o.random {
        println!(
            "{n} drawn workloads, draw seed {}, states scaled to at most {} MiB, run-length scale {}, \
             failure seeds {}..{}; {:.0} M multiply-adds/s, {} cores",
            o.draw_seed,
            o.max_state / MIB,
            o.scale,
            o.seed,
            o.seed + o.seeds - 1,
            rate / 1e6,
            std::thread::available_parallelism().map_or(1, usize::from),
        );
        let drawn = generate::draw(n, o.draw_seed, o.max_state, o.scale);
        println!("\nthe draw:");
        for d in &drawn {
            println!("  {}", d.workload.title);
        }
        for mut d in drawn {
            if o.only
                .as_ref()
                .is_some_and(|only| !only.contains(&d.workload.key))
            {
                continue;
            }
            let share = Mtbf::YoungShare {
                share: d.young_share,
                floor: generate::MTBF_FLOOR * o.scale,
            };
            let w = d.workload.clone();
            let row = evaluate(&o, &root, rate, &cpu, w, share, |w, mtbf| {
                d.set_length(generate::Drawn::length_for(mtbf, o.scale));
                w.phases.clone_from(&d.workload.phases);
            })?;
            println!(
                "  => {}: adaptive / best static {:.3}, adaptive / oracle {:.3}, most switches in a phase {}; {} ({:.0} s so far)",
                row.key,
                row.vs_static(),
                row.vs_oracle(),
                row.most_switches(),
                row.schemes.join(" ; "),
                started.elapsed().as_secs_f64()
            );
            rows.push(row);
        }
        print_table(&rows);
        print_random(&rows);
    } else {
        println!(
            "MTBF {:.1} s, run-length scale {}, failure seeds {}..{}; {:.0} M multiply-adds/s",
            o.mtbf.unwrap_or(DEFAULT_MTBF),
            o.scale,
            o.seed,
            o.seed + o.seeds - 1,
            rate / 1e6
        );
        for w in workloads(o.scale) {
            if o.only.as_ref().is_some_and(|only| !only.contains(&w.key)) {
                continue;
            }
            rows.push(evaluate(
                &o,
                &root,
                rate,
                &cpu,
                w,
                Mtbf::Seconds(o.mtbf.unwrap_or(DEFAULT_MTBF)),
                |_, _| {},
            )?);
        }
        print_table(&rows);
    }
    println!(
        "\n(whole evaluation: {:.0} s)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `--tiers`: exits non-zero when a restore was wrong (only then).
fn run_tiers(
    o: &Options,
    root: &std::path::Path,
    rate: f64,
    cpu: &CpuClock,
    started: Instant,
) -> Result<(), BoxError> {
    let options = tiers::TierOptions {
        workload: o
            .only
            .as_ref()
            .and_then(|only| only.first().cloned())
            .unwrap_or_else(|| "c".to_owned()),
        state_mib: o.state_mib,
        scale: if o.ci { 0.1 } else { o.scale },
        seed: o.seed,
        seeds: if o.ci { 1 } else { o.seeds },
        remote_slowdown: o.remote_slowdown,
        drain_contention: o.drain_contention,
        mtbf: o.mtbf,
        ci: o.ci,
        verbose: o.verbose,
    };
    let right = tiers::evaluate(&options, root, rate, cpu)?;
    println!(
        "\n(whole evaluation: {:.0} s)",
        started.elapsed().as_secs_f64()
    );
    if !right {
        return Err("a restore was wrong (see WRONG RESTORE above)".into());
    }
    Ok(())
}

/// Calibrates, probes and runs one workload under every mode and seed.
/// `lengthen` may set the phases' step counts once the MTBF is known.
fn evaluate(
    o: &Options,
    root: &std::path::Path,
    rate: f64,
    cpu: &CpuClock,
    mut w: Workload,
    mtbf: Mtbf,
    mut lengthen: impl FnMut(&mut Workload, f64),
) -> Result<Row, BoxError> {
    println!("\n{}", w.title);
    let kernels = calibrate(&w, rate, cpu);
    let intervals = static_intervals(&w, &kernels, mtbf, root)?;
    lengthen(&mut w, intervals.mtbf);
    let every = intervals.every;
    let work: f64 = w
        .phases
        .iter()
        .map(|p| p.steps as f64 * p.step_time.as_secs_f64())
        .sum();
    println!(
        "    full checkpoint {:.3} s to durable, MTBF {:.2} s (full = {:.1} % of Young's {:.2} s), \
         {work:.1} s of work in {} steps",
        intervals.full_cost,
        intervals.mtbf,
        100.0 * intervals.full_cost / (2.0 * intervals.full_cost * intervals.mtbf).sqrt(),
        (2.0 * intervals.full_cost * intervals.mtbf).sqrt(),
        w.total_steps(),
    );
    println!(
        "    static intervals (compute time): full {:.2} s, incremental {:.2} s, cow {:.2} s",
        every[0].as_secs_f64(),
        every[1].as_secs_f64(),
        every[2].as_secs_f64()
    );
    let mtbf = Duration::from_secs_f64(intervals.mtbf);
    let mut row = Row {
        key: w.key.clone(),
        title: w.title.clone(),
        seeds: Vec::new(),
        switches: Vec::new(),
        schemes: Vec::new(),
    };
    for n in 0..o.seeds {
        let seed = (o.seed + n).wrapping_mul(1_000).wrapping_add(w.salt);
        let first: Vec<String> = failure_gaps(mtbf, seed)
            .take(6)
            .map(|g| format!("{:.1}", g.as_secs_f64()))
            .collect();
        println!(
            "  seed {}: failure gaps (s) {} ...",
            o.seed + n,
            first.join(" ")
        );
        let modes = [
            Mode::Static(Scheme::Full),
            Mode::Static(Scheme::Incremental),
            Mode::Static(Scheme::CopyOnWrite),
            Mode::Adaptive,
        ];
        // Each seed runs the modes in another order, so that a slow
        // drift of the machine's load does not favour one of them.
        let mut outcomes: Vec<Option<Outcome>> = vec![None, None, None, None];
        for k in 0..modes.len() {
            let i = (k + n as usize) % modes.len();
            let spec = RunSpec {
                workload: &w,
                kernels: &kernels,
                mode: modes[i],
                interval: every.get(i).copied().unwrap_or(every[0]),
                mtbf,
                seed,
                root,
                verbose: o.verbose,
            };
            outcomes[i] = Some(run(&spec)?);
        }
        let mut outcomes: Vec<Outcome> = outcomes.into_iter().flatten().collect();
        // One reference for the seed's four runs (every block measured
        // around any of them): they did the same useful work, so their
        // goodputs then compare their times alone, not also the noise
        // of separate references (which moved by up to 10 % between
        // runs on a memory-bound sweep).
        let mut common = vec![Vec::new(); w.phases.len()];
        for out in &outcomes {
            for (all, blocks) in common.iter_mut().zip(&out.blocks) {
                all.extend_from_slice(blocks);
            }
        }
        let reference = reference_step_times(&common);
        for (mode, out) in modes.iter().zip(&mut outcomes) {
            out.rebase(&w, &reference);
            print_outcome(&w, *mode, out);
        }
        let oracle = oracle(&w, &outcomes[..3]);
        row.seeds.push([
            outcomes[0].goodput(),
            outcomes[1].goodput(),
            outcomes[2].goodput(),
            outcomes[3].goodput(),
            oracle,
        ]);
        row.switches.push(outcomes[3].switches.clone());
        row.schemes.push(phase_schemes(&w, &outcomes));
    }
    Ok(row)
}
