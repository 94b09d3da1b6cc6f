//! Full checkpoints of serde state to [`FsStorage`], against the baselines a
//! user would otherwise pay, measured in the same run:
//!
//! * **naive** — what a user writes by hand: bincode 2 serde encode, zstd at
//!   the same level (skipped when compression is off), write a temp file,
//!   fsync, rename over the target, fsync the directory;
//! * **raw** — write + fsync of as many bytes as the state serializes to,
//!   the floor for any durable checkpoint of it.
//!
//! The state is a simulation-like field of `f64` (smooth waves plus fine
//! noise, so mantissas are not all zeros) and a little metadata, at 64 MiB
//! and 512 MiB. Stores live under cargo's target tmpdir, on the same disk as
//! the repository rather than a tmpfs. ckpt runs with `keep_last(2)`, so
//! every measured checkpoint also expires an old one, as in a long run.
//!
//! Criterion measures each method on its own first. Then, because the
//! machines this runs on are shared and their load drifts, the bench runs
//! every method once per *round*, rounds interleaved, and prints a markdown
//! table of the medians: every ratio in it compares runs made under the same
//! conditions. `CKPT_BENCH_ROUNDS=n` sets the number of rounds (0 skips the
//! table); `--test` and `--list` skip it too.
//!
//! Run it with `cargo bench --bench full`.

use ckpt::model::Policy;
use ckpt::{Checkpointer, FsStorage, Scheme};
use criterion::{Criterion, SamplingMode, Throughput};
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::hint::black_box;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const MIB: usize = 1 << 20;
const SIZES_MIB: [usize; 2] = [64, 512];
/// Compression levels measured; 0 means off (the naive baseline then skips
/// zstd altogether, since zstd itself reads level 0 as "default level").
const LEVELS: [i32; 2] = [1, 0];

/// Simulation-like state: a 2-D field plus a little metadata.
#[derive(Serialize, Deserialize)]
struct SimState {
    step: u64,
    time: f64,
    label: String,
    grid: [u32; 2],
    viscosity: f64,
    field: Vec<f64>,
}

impl SimState {
    /// A temperature-like field (kelvin): large-scale waves, a finer ripple
    /// and low-amplitude noise, so every mantissa bit carries information as
    /// in real floating-point output.
    fn new(bytes: usize) -> Self {
        let len = bytes / std::mem::size_of::<f64>();
        let width = 4096;
        let height = len.div_ceil(width);
        let mut noise = 0x9e37_79b9_7f4a_7c15_u64;
        let field = (0..len)
            .map(|i| {
                let (x, y) = ((i % width) as f64, (i / width) as f64);
                noise ^= noise << 13;
                noise ^= noise >> 7;
                noise ^= noise << 17;
                let jitter = (noise >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
                let waves = (x * 0.0046).sin() * (y * 0.0031).cos();
                288.15 + 15.0 * waves + 0.5 * (0.37 * x + 0.11 * y).sin() + 1e-3 * jitter
            })
            .collect();
        SimState {
            step: 0,
            time: 0.0,
            label: "heat-2d / explicit Euler / run 17".to_owned(),
            grid: [width as u32, height as u32],
            viscosity: 1.5e-5,
            field,
        }
    }

    fn advance_clock(&mut self) {
        self.step += 1;
        self.time += 0.01;
    }
}

fn serialize(state: &SimState) -> Vec<u8> {
    bincode::serde::encode_to_vec(state, bincode::config::standard())
        .expect("the bench state serializes")
}

/// The baseline a user would write by hand. Returns the bytes written.
fn naive_checkpoint(state: &SimState, level: i32, dir: &Path) -> io::Result<u64> {
    let bytes = serialize(state);
    let bytes = match level {
        0 => bytes,
        level => zstd::bulk::compress(&bytes, level)?,
    };
    let temp = dir.join("state.ckpt.tmp");
    let mut file = File::create(&temp)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    fs::rename(&temp, dir.join("state.ckpt"))?;
    File::open(dir)?.sync_all()?;
    Ok(bytes.len() as u64)
}

fn raw_write_fsync(bytes: &[u8], path: &Path) -> io::Result<u64> {
    let mut file = File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(bytes.len() as u64)
}

fn level_name(level: i32) -> String {
    match level {
        0 => "off".to_owned(),
        level => format!("zstd{level}"),
    }
}

/// One way of making the state durable.
enum Method {
    Raw { path: PathBuf },
    Naive { level: i32, dir: PathBuf },
    Ckpt { ck: Box<Checkpointer> },
}

/// A method, primed on first use so that every measured run replaces or
/// expires an earlier checkpoint, as it would in a long run.
struct Runner {
    name: String,
    method: Method,
    primed: bool,
    /// Bytes the last run stored (pack + manifest for ckpt).
    stored: u64,
    /// Times of the interleaved rounds.
    rounds: Vec<Duration>,
}

impl Runner {
    fn raw(dir: &Path) -> Self {
        Self::new(
            "raw_write_fsync".to_owned(),
            Method::Raw {
                path: dir.join("raw.bin"),
            },
        )
    }

    fn naive(dir: &Path, level: i32) -> Self {
        let name = format!("naive_{}", level_name(level));
        let dir = dir.join(&name);
        fs::create_dir_all(&dir).expect("the naive dir is created");
        Self::new(name, Method::Naive { level, dir })
    }

    fn ckpt(dir: &Path, level: i32, threads: Option<usize>) -> Self {
        let name = match threads {
            Some(n) => format!("ckpt_{}_threads{n}", level_name(level)),
            None => format!("ckpt_{}", level_name(level)),
        };
        let mut builder = Checkpointer::builder()
            .storage(FsStorage::open(dir.join(&name)).expect("the bench store opens"))
            .scheme(Scheme::Full)
            .policy(Policy::fixed())
            .keep_last(2)
            .compression_level(level);
        if let Some(n) = threads {
            builder = builder.threads(n);
        }
        let ck = builder.build().expect("the bench checkpointer builds");
        Self::new(name, Method::Ckpt { ck: Box::new(ck) })
    }

    fn new(name: String, method: Method) -> Self {
        Runner {
            name,
            method,
            primed: false,
            stored: 0,
            rounds: Vec::new(),
        }
    }

    /// Runs the method once and returns how long it took.
    fn run(&mut self, state: &mut SimState, serialized: &[u8]) -> Duration {
        if !self.primed {
            self.primed = true;
            // Two unmeasured runs: from then on every measured checkpoint
            // expires one (keep_last(2)) and naive/raw replace a file.
            for _ in 0..2 {
                self.run(state, serialized);
            }
        }
        state.advance_clock();
        let start = Instant::now();
        let stored = match &mut self.method {
            Method::Raw { path } => raw_write_fsync(serialized, path).expect("raw write"),
            Method::Naive { level, dir } => {
                naive_checkpoint(state, *level, dir).expect("naive checkpoint")
            }
            Method::Ckpt { ck } => {
                let committed = ck.checkpoint(state.step, state).expect("checkpoint");
                let committed = committed.expect("a full checkpoint commits before it returns");
                black_box(committed.bytes_written)
            }
        };
        let elapsed = start.elapsed();
        self.stored = stored;
        elapsed
    }

    fn median(&self) -> Option<Duration> {
        let mut times = self.rounds.clone();
        times.sort();
        let mid = times.len() / 2;
        match times.len() {
            0 => None,
            n if n % 2 == 1 => times.get(mid).copied(),
            _ => Some((times[mid - 1] + times[mid]) / 2),
        }
    }
}

/// One benchmarked size and every method run on it.
struct Case {
    mib: usize,
    state: SimState,
    serialized: Vec<u8>,
    runners: Vec<Runner>,
}

impl Case {
    fn new(root: &Path, mib: usize) -> Self {
        let state = SimState::new(mib * MIB);
        let serialized = serialize(&state);
        let dir = root.join(format!("{mib}MiB"));
        fs::create_dir_all(&dir).expect("the case dir is created");
        let mut runners = vec![Runner::raw(&dir)];
        for level in LEVELS {
            runners.push(Runner::naive(&dir, level));
            runners.push(Runner::ckpt(&dir, level, None));
            if level != 0 {
                // The naive baseline compresses on one core; this shows what
                // ckpt's parallel chunk compression is worth.
                runners.push(Runner::ckpt(&dir, level, Some(1)));
            }
        }
        Case {
            mib,
            state,
            serialized,
            runners,
        }
    }

    fn group_name(&self) -> String {
        format!("full_{}MiB", self.mib)
    }

    fn bench(&mut self, c: &mut Criterion) {
        let mut group = c.benchmark_group(self.group_name());
        group
            .sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_millis(500))
            .throughput(Throughput::Bytes(self.serialized.len() as u64));
        // Large states take 1-4 s a run: one warm-up run and one run per
        // sample, whatever the target time.
        group.measurement_time(Duration::from_secs(if self.mib >= 256 { 5 } else { 3 }));
        let Case {
            state,
            serialized,
            runners,
            ..
        } = self;
        for runner in runners.iter_mut() {
            group.bench_function(runner.name.clone(), |b| {
                b.iter_custom(|iters| (0..iters).map(|_| runner.run(state, serialized)).sum());
            });
        }
        group.finish();
    }

    /// Runs every method once per round, starting each round one method
    /// further along so no method always follows the same neighbour.
    fn interleaved_rounds(&mut self, rounds: usize) {
        let n = self.runners.len();
        for round in 0..rounds {
            for i in 0..n {
                let runner = &mut self.runners[(round + i) % n];
                let elapsed = runner.run(&mut self.state, &self.serialized);
                runner.rounds.push(elapsed);
            }
        }
    }

    fn runner(&self, name: &str) -> Option<&Runner> {
        self.runners.iter().find(|r| r.name == name)
    }
}

fn fmt_time(t: Option<Duration>) -> String {
    match t {
        Some(t) if t >= Duration::from_secs(1) => format!("{:.3} s", t.as_secs_f64()),
        Some(t) => format!("{:.1} ms", t.as_secs_f64() * 1e3),
        None => "—".to_owned(),
    }
}

fn gb_per_s(bytes: usize, t: Duration) -> f64 {
    bytes as f64 / t.as_secs_f64() / 1e9
}

fn table_row(case: &Case, label: &str, ckpt: &str, naive: &str) -> String {
    let median = |name: &str| case.runner(name).and_then(Runner::median);
    let (ckpt_t, naive_t, raw_t) = (median(ckpt), median(naive), median("raw_write_fsync"));
    let ratio = match (ckpt_t, naive_t) {
        (Some(c), Some(n)) => format!("{:.2}×", c.as_secs_f64() / n.as_secs_f64()),
        _ => "—".to_owned(),
    };
    let bandwidth = match (ckpt_t, raw_t) {
        (Some(c), Some(r)) => format!(
            "{:.2} vs {:.2} GB/s ({:.2}×)",
            gb_per_s(case.serialized.len(), c),
            gb_per_s(case.serialized.len(), r),
            r.as_secs_f64() / c.as_secs_f64()
        ),
        _ => "—".to_owned(),
    };
    format!(
        "| {label} | {} | {} | {} | {ratio} | {bandwidth} |",
        fmt_time(ckpt_t),
        fmt_time(naive_t),
        fmt_time(raw_t)
    )
}

fn print_table(cases: &[Case], rounds: &str) {
    println!();
    println!("## ckpt full checkpoint vs baselines (medians of interleaved rounds: {rounds})");
    println!();
    println!(
        "| case | ckpt time | naive time | raw write+fsync time | ckpt/naive ratio | ckpt vs raw bandwidth |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for case in cases {
        for level in LEVELS {
            let l = level_name(level);
            let (ckpt, naive) = (format!("ckpt_{l}"), format!("naive_{l}"));
            let label = format!("{} MiB, {l}", case.mib);
            println!("{}", table_row(case, &label, &ckpt, &naive));
            if level != 0 {
                let label = format!("{} MiB, {l}, ckpt threads(1)", case.mib);
                let single = format!("ckpt_{l}_threads1");
                println!("{}", table_row(case, &label, &single, &naive));
            }
        }
    }
    println!();
    println!(
        "Bandwidth = serialized state bytes / median time; the factor is raw time / ckpt time (1.00× = as fast as a bare write+fsync)."
    );
    println!(
        "ckpt: keep_last(2), default chunking, {} compression thread(s) unless the row says threads(1); naive compresses on one thread.",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    for case in cases {
        let stored: Vec<String> = case
            .runners
            .iter()
            .filter(|r| r.name != "raw_write_fsync")
            .map(|r| {
                let ratio = case.serialized.len() as f64 / r.stored.max(1) as f64;
                format!("{} {} B ({ratio:.3}×)", r.name, r.stored)
            })
            .collect();
        println!(
            "{} MiB: serialized {} B; stored per checkpoint (compression ratio): {}",
            case.mib,
            case.serialized.len(),
            stored.join(", ")
        );
    }
}

/// Rounds for the summary table: `CKPT_BENCH_ROUNDS`, none under `--test`
/// or `--list`, else 9 for small states and 5 for large ones.
fn rounds_for(mib: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--test" || a == "--list") {
        return 0;
    }
    match std::env::var("CKPT_BENCH_ROUNDS") {
        Ok(n) => n.parse().expect("CKPT_BENCH_ROUNDS is a number"),
        Err(_) if mib >= 256 => 5,
        Err(_) => 9,
    }
}

fn main() {
    let mut c = Criterion::default().without_plots().configure_from_args();
    let root = tempfile::Builder::new()
        .prefix("ckpt-bench-full-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("a bench dir under the target dir");
    let mut cases: Vec<Case> = SIZES_MIB
        .into_iter()
        .map(|mib| Case::new(root.path(), mib))
        .collect();
    for case in &mut cases {
        case.bench(&mut c);
    }
    c.final_summary();
    let rounds: Vec<usize> = cases.iter().map(|case| rounds_for(case.mib)).collect();
    if rounds.iter().all(|&n| n == 0) {
        return;
    }
    for (case, &n) in cases.iter_mut().zip(&rounds) {
        eprintln!("interleaved rounds: {} MiB × {n}", case.mib);
        case.interleaved_rounds(n);
    }
    let shown: Vec<String> = cases
        .iter()
        .zip(&rounds)
        .map(|(case, n)| format!("{n} at {} MiB", case.mib))
        .collect();
    print_table(&cases, &shown.join(", "));
}
