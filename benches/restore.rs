//! Restore: the path users get (`Checkpointer::restore_latest` on a fresh
//! checkpointer) against baselines measured in the same run, printed as
//! markdown tables.
//!
//! * **full** — a full checkpoint of a `PagedVec<f64>` (default pages,
//!   compression off) restored, against `std::fs::read` of every file under
//!   the store's `packs/` (the same bytes, read whole), warm and cold page
//!   cache. Cold: `posix_fadvise(POSIX_FADV_DONTNEED)` on every file of the
//!   store before each timed run (the files are fsynced, so their pages are
//!   clean and really dropped; nothing else on the machine loses its cache).
//! * **rss** — peak RSS (`VmHWM`) of a fresh process that restores the
//!   1 GiB store, over the state's size, against a process that only
//!   `fs::read`s the packs; the bench re-executes itself in child mode.
//! * **chain** — restore of a 16-long incremental chain (a full base and 15
//!   increments, each rewriting 5–10 % of the pages at random) against a
//!   full checkpoint of the same final state in another store.
//! * **s3** — with `CKPT_S3_ENDPOINT` set (`eval "$(scripts/s3-server
//!   start)"`): restore through `ObjectStorage` against ranged GETs of the
//!   same packs by a plain `object_store` S3 client with the same settings.
//!
//! Every figure is the median of N repetitions; in each repetition the
//! ckpt case and its baseline run back to back, in alternating order, so
//! drift of a shared machine hits both. A restore is timed from opening the
//! store to `restore_latest` returning the state (dropping it is not timed);
//! the baseline from listing `packs/` to the last byte read. MB/s are 10^6
//! bytes per second: of the state for a restore, of the pack files for a
//! read (they differ by the headers, well under 1 %).
//!
//! ```text
//! cargo bench --bench restore -- [--quick] [--big] [--sizes 64,256,1024]
//!     [--reps N] [--only full|rss|chain|s3] [--dir PATH]
//! ```
//!
//! Sizes default to 64, 256 and 1024 MiB, plus 4096 with `--big` or when
//! `MemAvailable` is at least 32 GiB. Repetitions default to 5 (3 at 1 GiB,
//! 2 at 4 GiB, 3 for S3); `--reps` sets them for every case. `--quick` is a smoke run
//! (64 MiB everywhere, 2 repetitions). Stores live in a temporary directory
//! under `--dir` (default: cargo's target tmpdir), which should be on the
//! disk being measured, not a tmpfs; the header says which filesystem it is.

use ckpt::storage::ObjectStorageBuilder;
use ckpt::{Checkpointer, FsStorage, PagedVec, Scheme, Storage};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const MIB: usize = 1 << 20;
const CHAIN_LEN: u32 = 16;
const RSS_MIB: usize = 1024;
const CHAIN_MIB: usize = 256;
const S3_MIB: usize = 256;
/// The range of each request in the S3 reference row: a default page.
const PAGE_GET_BYTES: usize = ckpt::DEFAULT_PAGE_BYTES;
/// How many such requests are timed.
const PAGE_GETS_SAMPLED: usize = 256;
/// Below this much available memory, 4 GiB is measured only on request.
const BIG_MEM_BYTES: u64 = 32 << 30;

fn main() -> Res<()> {
    let args = Args::parse()?;
    if let Some(child) = &args.child {
        return child.run();
    }
    print_header(&args)?;
    let mut stores = Stores::new(&args.dir)?;
    if args.runs("full") {
        bench_full(&args, &mut stores)?;
    }
    if args.runs("rss") {
        bench_rss(&args, &mut stores)?;
    }
    if args.runs("chain") {
        bench_chain(&args, &stores)?;
    }
    if args.runs("s3") {
        bench_s3(&args)?;
    }
    println!("\nload average at the end: {}", load_average());
    Ok(())
}

// ---------------------------------------------------------------- options

struct Args {
    quick: bool,
    big: bool,
    sizes: Vec<usize>,
    /// Why 4 GiB is or is not among the sizes, when the user did not say.
    big_note: Option<String>,
    reps: Option<usize>,
    only: Option<String>,
    dir: PathBuf,
    child: Option<Child>,
}

impl Args {
    fn parse() -> Res<Self> {
        let mut args = std::env::args().skip(1);
        let (mut quick, mut big, mut sizes, mut reps, mut only, mut dir, mut child) =
            (false, false, None, None, None, None, None);
        while let Some(arg) = args.next() {
            let mut value = || args.next().ok_or(format!("{arg} needs a value"));
            match arg.as_str() {
                "--quick" => quick = true,
                "--big" => big = true,
                "--sizes" => {
                    let list = value()?;
                    let parsed: Result<Vec<usize>, _> =
                        list.split(',').map(|s| s.trim().parse()).collect();
                    sizes = Some(parsed.map_err(|e| format!("--sizes {list}: {e}"))?);
                }
                "--reps" => reps = Some(value()?.parse::<usize>()?.max(1)),
                "--only" => {
                    let section = value()?;
                    if !["full", "rss", "chain", "s3"].contains(&section.as_str()) {
                        return Err(format!("--only {section}: expected full|rss|chain|s3").into());
                    }
                    only = Some(section);
                }
                "--dir" => dir = Some(PathBuf::from(value()?)),
                "--child" => {
                    let mode = value()?;
                    child = Some(Child {
                        mode,
                        dir: PathBuf::from(value()?),
                    });
                }
                // What cargo passes to every bench target.
                "--bench" => {}
                other => return Err(format!("unknown argument {other:?}").into()),
            }
        }
        let mut big_note = None;
        let sizes = match sizes {
            Some(sizes) => sizes,
            None if quick => vec![64],
            None => {
                let available = mem_available();
                let mut sizes = vec![64, 256, 1024];
                if big || available >= BIG_MEM_BYTES {
                    sizes.push(4096);
                    big_note = Some(format!(
                        "4 GiB included ({})",
                        if big {
                            "--big"
                        } else {
                            "MemAvailable ≥ 32 GiB"
                        }
                    ));
                } else {
                    big_note = Some(format!(
                        "4 GiB skipped: MemAvailable {:.1} GiB < 32 GiB; pass --big to force it",
                        available as f64 / (1u64 << 30) as f64
                    ));
                }
                sizes
            }
        };
        let dir = dir.unwrap_or_else(|| {
            let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
            if target.is_dir() {
                target
            } else {
                std::env::temp_dir()
            }
        });
        Ok(Args {
            quick,
            big,
            sizes,
            big_note,
            reps,
            only,
            dir,
            child,
        })
    }

    fn runs(&self, section: &str) -> bool {
        self.only.as_deref().is_none_or(|only| only == section)
    }

    /// Repetitions at a state of `mib` MiB.
    fn reps_at(&self, mib: usize) -> usize {
        match (self.reps, self.quick) {
            (Some(n), _) => n,
            (None, true) => 2,
            (None, false) if mib >= 4096 => 2,
            (None, false) if mib >= 1024 => 3,
            (None, false) => 5,
        }
    }

    /// The state size of a section that measures one size.
    fn single_size(&self, default_mib: usize) -> usize {
        if self.quick { 64 } else { default_mib }
    }
}

// ---------------------------------------------------------------- stores

/// Stores written once per run, under a temporary directory removed at the
/// end.
struct Stores {
    root: tempfile::TempDir,
    /// Full checkpoints by size in MiB.
    full: BTreeMap<usize, PathBuf>,
}

impl Stores {
    fn new(base: &Path) -> Res<Self> {
        fs::create_dir_all(base)?;
        let root = tempfile::Builder::new()
            .prefix("ckpt-restore-")
            .tempdir_in(base)?;
        Ok(Stores {
            root,
            full: BTreeMap::new(),
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    /// The store holding one full checkpoint of `state_of(mib)`.
    fn full(&mut self, mib: usize) -> Res<PathBuf> {
        if let Some(dir) = self.full.get(&mib) {
            return Ok(dir.clone());
        }
        let dir = self.path(&format!("full-{mib}"));
        let start = Instant::now();
        let mut state = state_of(mib);
        write_full(&dir, &mut state)?;
        eprintln!(
            "wrote the {mib} MiB full store in {:.1} s",
            start.elapsed().as_secs_f64()
        );
        self.full.insert(mib, dir.clone());
        Ok(dir)
    }
}

/// Element `i` of every generated state (cheap to make and to check).
fn value(i: usize) -> f64 {
    i as f64 * 0.5 + 0.25
}

fn state_of(mib: usize) -> PagedVec<f64> {
    let len = mib * MIB / size_of::<f64>();
    let mut state = PagedVec::new();
    let mut block = Vec::with_capacity(1 << 16);
    let mut start = 0;
    while start < len {
        let end = (start + (1 << 16)).min(len);
        block.clear();
        block.extend((start..end).map(value));
        state.extend_from_slice(&block);
        start = end;
    }
    state
}

fn checkpointer(storage: impl Storage + 'static, scheme: Scheme) -> Res<Checkpointer> {
    Ok(Checkpointer::builder()
        .storage(storage)
        .scheme(scheme)
        .compression_level(0)
        .keep_last(1)
        .max_chain(CHAIN_LEN)
        .build()?)
}

fn write_full(dir: &Path, state: &mut PagedVec<f64>) -> Res<()> {
    let mut ck = checkpointer(FsStorage::open(dir)?, Scheme::Full)?;
    ck.checkpoint(1, state)?;
    ck.finish()?;
    Ok(())
}

// ---------------------------------------------------------------- the two paths

/// The user's path: a new checkpointer on the store, `restore_latest`.
fn restore(storage: impl Storage + 'static) -> Res<Restore> {
    let start = Instant::now();
    let mut ck = Checkpointer::builder().storage(storage).build()?;
    let restored = ck
        .restore_latest::<PagedVec<f64>>()?
        .ok_or("the store holds no checkpoint")?;
    let secs = start.elapsed().as_secs_f64();
    drop(ck);
    Ok(Restore {
        secs,
        chain_len: restored.info.chain_len,
        state: restored.state,
    })
}

struct Restore {
    secs: f64,
    chain_len: u32,
    state: PagedVec<f64>,
}

fn restore_fs(dir: &Path) -> Res<Restore> {
    restore(FsStorage::open(dir)?)
}

/// The baseline: every pack file read whole. Returns the time and the
/// bytes read; the buffers live until the clock stops, as a restored
/// state does.
fn read_packs(dir: &Path) -> Res<(f64, u64)> {
    let start = Instant::now();
    let buffers = files_under(&dir.join("packs"))?
        .iter()
        .map(fs::read)
        .collect::<Result<Vec<_>, _>>()?;
    let secs = start.elapsed().as_secs_f64();
    let bytes = buffers.iter().map(|b| b.len() as u64).sum();
    Ok((secs, bytes))
}

fn files_under(dir: &Path) -> Res<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                pending.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    Ok(files)
}

fn bytes_under(dir: &Path) -> Res<u64> {
    files_under(dir)?
        .iter()
        .map(|f| Ok(fs::metadata(f)?.len()))
        .sum()
}

/// Drops the page cache of every file in the store.
fn drop_cache(dir: &Path) -> Res<()> {
    for path in files_under(dir)? {
        let file = File::open(&path)?;
        // SAFETY: the descriptor is open for the whole call; fadvise only
        // reads its arguments.
        let err = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        if err != 0 {
            return Err(format!(
                "posix_fadvise({}): {}",
                path.display(),
                std::io::Error::from_raw_os_error(err)
            )
            .into());
        }
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum Cache {
    Warm,
    Cold,
}

impl Cache {
    fn name(self) -> &'static str {
        match self {
            Cache::Warm => "warm",
            Cache::Cold => "cold",
        }
    }

    fn prepare(self, dir: &Path) -> Res<()> {
        match self {
            Cache::Warm => Ok(()),
            Cache::Cold => drop_cache(dir),
        }
    }
}

fn check_state(state: &PagedVec<f64>, mib: usize) -> Res<()> {
    let len = mib * MIB / size_of::<f64>();
    if state.len() != len || !state.iter().enumerate().all(|(i, &x)| x == value(i)) {
        return Err(format!("the {mib} MiB restore does not match the state written").into());
    }
    Ok(())
}

// ---------------------------------------------------------------- 1. full

fn bench_full(args: &Args, stores: &mut Stores) -> Res<()> {
    println!("\n## Full restore vs `std::fs::read` of the packs\n");
    if let Some(note) = &args.big_note {
        println!("{note}.\n");
    }
    let mut rows = Vec::new();
    for &mib in &args.sizes {
        let dir = stores.full(mib)?;
        let reps = args.reps_at(mib);
        let pack_bytes = bytes_under(&dir.join("packs"))?;
        let mut checked = false;
        for cache in [Cache::Warm, Cache::Cold] {
            let (mut restores, mut reads) = (Vec::new(), Vec::new());
            for rep in 0..reps {
                let mut timed_restore = || -> Res<()> {
                    cache.prepare(&dir)?;
                    let restored = restore_fs(&dir)?;
                    restores.push(restored.secs);
                    if !checked {
                        check_state(&restored.state, mib)?;
                        checked = true;
                    }
                    Ok(())
                };
                let mut timed_read = || -> Res<()> {
                    cache.prepare(&dir)?;
                    reads.push(read_packs(&dir)?.0);
                    Ok(())
                };
                if rep % 2 == 0 {
                    timed_restore()?;
                    timed_read()?;
                } else {
                    timed_read()?;
                    timed_restore()?;
                }
            }
            rows.push(FullRow {
                mib,
                cache,
                reps,
                pack_bytes,
                restore: median(&mut restores),
                read: median(&mut reads),
            });
        }
    }
    println!(
        "| state | cache | reps | restore MB/s | fs::read MB/s | restore/read | restore ns/B | fs::read ns/B |"
    );
    println!("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for row in &rows {
        row.print();
    }
    Ok(())
}

struct FullRow {
    mib: usize,
    cache: Cache,
    reps: usize,
    pack_bytes: u64,
    restore: f64,
    read: f64,
}

impl FullRow {
    fn print(&self) {
        let state = (self.mib * MIB) as f64;
        let restore_bw = state / self.restore;
        let read_bw = self.pack_bytes as f64 / self.read;
        println!(
            "| {} MiB | {} | {} | {:.0} | {:.0} | {:.2} | {:.3} | {:.3} |",
            self.mib,
            self.cache.name(),
            self.reps,
            restore_bw / 1e6,
            read_bw / 1e6,
            restore_bw / read_bw,
            1e9 / restore_bw,
            1e9 / read_bw,
        );
    }
}

// ---------------------------------------------------------------- 2. rss

/// A child process: `--child restore|read|idle DIR`.
struct Child {
    mode: String,
    dir: PathBuf,
}

impl Child {
    fn run(&self) -> Res<()> {
        let start = Instant::now();
        let kept = match self.mode.as_str() {
            "restore" => restore_fs(&self.dir)?.state.len() * size_of::<f64>(),
            "read" => {
                let buffers = files_under(&self.dir.join("packs"))?
                    .iter()
                    .map(fs::read)
                    .collect::<Result<Vec<_>, _>>()?;
                buffers.iter().map(Vec::len).sum()
            }
            "idle" => 0,
            other => return Err(format!("unknown child mode {other:?}").into()),
        };
        println!(
            "vmhwm_kib {} bytes {kept} secs {:.3}",
            vm_hwm_kib()?,
            start.elapsed().as_secs_f64()
        );
        Ok(())
    }
}

fn vm_hwm_kib() -> Res<u64> {
    let status = fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .ok_or("no VmHWM in /proc/self/status")?;
    let kib = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kib)
}

/// Runs the bench binary in child mode; returns its VmHWM in bytes and
/// its own timing.
fn run_child(mode: &str, dir: &Path) -> Res<(u64, f64)> {
    let output = Command::new(std::env::current_exe()?)
        .arg("--child")
        .arg(mode)
        .arg(dir)
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "child {mode} failed ({}): {stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let fields: Vec<&str> = stdout.split_whitespace().collect();
    match fields.as_slice() {
        ["vmhwm_kib", kib, "bytes", _, "secs", secs] => {
            Ok((kib.parse::<u64>()? * 1024, secs.parse()?))
        }
        _ => Err(format!("child {mode} printed {stdout:?}").into()),
    }
}

fn bench_rss(args: &Args, stores: &mut Stores) -> Res<()> {
    let mib = args.single_size(RSS_MIB);
    println!("\n## Peak RSS of a fresh process, {mib} MiB state\n");
    let dir = stores.full(mib)?;
    let state = (mib * MIB) as f64;
    println!("| process | VmHWM MiB | VmHWM / state bytes | its time s |");
    println!("| --- | ---: | ---: | ---: |");
    for (mode, name) in [
        ("idle", "does nothing (the floor)"),
        ("read", "`fs::read` of every pack (baseline)"),
        ("restore", "`restore_latest` (ckpt)"),
    ] {
        let (hwm, secs) = run_child(mode, &dir)?;
        println!(
            "| {name} | {:.0} | {:.2}× | {secs:.2} |",
            hwm as f64 / MIB as f64,
            hwm as f64 / state
        );
    }
    Ok(())
}

// ---------------------------------------------------------------- 3. chain

fn bench_chain(args: &Args, stores: &Stores) -> Res<()> {
    let mib = args.single_size(CHAIN_MIB);
    let reps = args.reps_at(mib);
    println!("\n## A {CHAIN_LEN}-long incremental chain vs a full checkpoint, {mib} MiB state\n");
    let chain_dir = stores.path(&format!("chain-{mib}"));
    let full_dir = stores.path(&format!("chain-full-{mib}"));
    let mut state = state_of(mib);
    let written = write_chain(&chain_dir, &mut state)?;
    write_full(&full_dir, &mut state)?;
    println!(
        "Base plus {} increments rewriting {:.1}–{:.1} % of the pages each (seeded); `max_chain({CHAIN_LEN})`.\n",
        written.len(),
        written.iter().cloned().fold(f64::INFINITY, f64::min) * 100.0,
        written.iter().cloned().fold(0.0, f64::max) * 100.0,
    );
    let restored = restore_fs(&chain_dir)?;
    if restored.chain_len != CHAIN_LEN {
        return Err(format!("the chain restored has length {}", restored.chain_len).into());
    }
    let same = |a: &PagedVec<f64>| a.len() == state.len() && a.iter().eq(state.iter());
    if !same(&restored.state) || !same(&restore_fs(&full_dir)?.state) {
        return Err("a chain or full restore does not match the final state".into());
    }
    drop((restored, state));
    let chain_bytes = bytes_under(&chain_dir.join("packs"))?;
    let full_bytes = bytes_under(&full_dir.join("packs"))?;
    println!(
        "| cache | reps | chain MiB stored | full MiB stored | chain s | full s | chain MB/s | full MB/s | chain/full time |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for cache in [Cache::Warm, Cache::Cold] {
        let (mut chain, mut full) = (Vec::new(), Vec::new());
        for rep in 0..reps {
            let order = if rep % 2 == 0 {
                [true, false]
            } else {
                [false, true]
            };
            for is_chain in order {
                let dir = if is_chain { &chain_dir } else { &full_dir };
                cache.prepare(dir)?;
                let secs = restore_fs(dir)?.secs;
                if is_chain { &mut chain } else { &mut full }.push(secs);
            }
        }
        let (chain, full) = (median(&mut chain), median(&mut full));
        let state_bytes = (mib * MIB) as f64;
        println!(
            "| {} | {reps} | {:.0} | {:.0} | {chain:.3} | {full:.3} | {:.0} | {:.0} | {:.2}× |",
            cache.name(),
            chain_bytes as f64 / MIB as f64,
            full_bytes as f64 / MIB as f64,
            state_bytes / chain / 1e6,
            state_bytes / full / 1e6,
            chain / full
        );
    }
    Ok(())
}

/// A full base and `CHAIN_LEN - 1` increments; returns the fraction of
/// pages each increment rewrote.
fn write_chain(dir: &Path, state: &mut PagedVec<f64>) -> Res<Vec<f64>> {
    let mut ck = checkpointer(FsStorage::open(dir)?, Scheme::Incremental)?;
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let pages = state.page_count();
    let mut fractions = Vec::new();
    for step in 0..u64::from(CHAIN_LEN) {
        if step > 0 {
            let wanted = (pages as f64 * rng.random_range(0.05..0.10)).ceil() as usize;
            let mut dirty = std::collections::BTreeSet::new();
            while dirty.len() < wanted.min(pages) {
                dirty.insert(rng.random_range(0..pages));
            }
            for &page in &dirty {
                let fill = -(step as f64) - page as f64 * 1e-6;
                state.page_mut(page).ok_or("page out of range")?.fill(fill);
            }
            fractions.push(dirty.len() as f64 / pages as f64);
        }
        let committed = ck.checkpoint(step, state)?.ok_or("no checkpoint taken")?;
        if committed.full != (step == 0) {
            return Err(format!("step {step}: full = {}", committed.full).into());
        }
    }
    ck.finish()?;
    Ok(fractions)
}

// ---------------------------------------------------------------- 4. s3

fn bench_s3(args: &Args) -> Res<()> {
    let mib = args.single_size(S3_MIB);
    println!(
        "\n## Restore from S3 (`ObjectStorage`) vs ranged GETs of the packs, {mib} MiB state\n"
    );
    let Ok(endpoint) = std::env::var("CKPT_S3_ENDPOINT") else {
        println!(
            "Skipped: CKPT_S3_ENDPOINT is unset; run `eval \"$(scripts/s3-server start)\"` first."
        );
        return Ok(());
    };
    let bucket = std::env::var("CKPT_S3_BUCKET").unwrap_or_else(|_| "ckpt-test".to_owned());
    let prefix = format!("bench/restore-{}", std::process::id());
    let storage = || {
        ObjectStorageBuilder::from_env()
            .endpoint(&endpoint)
            .bucket(&bucket)
            .allow_http(true)
            .prefix(&prefix)
            .build()
    };
    let result = s3_rows(
        args,
        mib,
        &storage,
        &Getter::new(&endpoint, &bucket, &prefix)?,
    );
    let cleanup = storage()?;
    for key in cleanup.list("")? {
        cleanup.delete(&key)?;
    }
    result
}

fn s3_rows(
    args: &Args,
    mib: usize,
    storage: &dyn Fn() -> ckpt::Result<ckpt::ObjectStorage>,
    getter: &Getter,
) -> Res<()> {
    let mut state = state_of(mib);
    let mut ck = checkpointer(storage()?, Scheme::Full)?;
    ck.checkpoint(1, &mut state)?;
    ck.finish()?;
    drop(state);
    let mut checked = false;
    // A restore from S3 fetches page by page and takes tens of seconds.
    let reps = args.reps.unwrap_or(if args.quick { 2 } else { 3 });
    let (mut restores, mut gets, mut got) = (Vec::new(), Vec::new(), (0, 0));
    let mut reads = Vec::new();
    for rep in 0..reps {
        let mut timed_restore = || -> Res<()> {
            let restored = restore(storage()?)?;
            restores.push(restored.secs);
            if !checked {
                check_state(&restored.state, mib)?;
                checked = true;
            }
            Ok(())
        };
        let mut timed_get = || -> Res<()> {
            let start = Instant::now();
            got = getter.get_packs()?;
            gets.push(start.elapsed().as_secs_f64());
            Ok(())
        };
        if rep % 2 == 0 {
            timed_restore()?;
            timed_get()?;
        } else {
            timed_get()?;
            timed_restore()?;
        }
        let start = Instant::now();
        let read = ckpt::Reader::new(storage()?)
            .restore_latest::<PagedVec<f64>>()?
            .ok_or("the store holds no checkpoint")?;
        reads.push(start.elapsed().as_secs_f64());
        drop(read);
    }
    let start = Instant::now();
    let sampled = getter.get_pages(PAGE_GETS_SAMPLED)?;
    let per_page_get = start.elapsed().as_secs_f64() / sampled.max(1) as f64;
    let (restore, get) = (median(&mut restores), median(&mut gets));
    let read = median(&mut reads);
    let read_bw = (mib * MIB) as f64 / read;
    let restore_bw = (mib * MIB) as f64 / restore;
    let get_bw = got.1 as f64 / get;
    println!(
        "Baseline: one ranged GET per pack ({} packs, {:.1} MiB), whole pack, one after another, by `object_store`'s S3 client (same endpoint, bucket and credentials) on its own 2-thread tokio runtime.\n",
        got.0,
        got.1 as f64 / MIB as f64
    );
    println!("| case | runs | time s | MB/s | bandwidth / GET's |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    println!(
        "| ranged GET per pack (baseline) | {reps} | {get:.3} | {:.0} | 1.00 |",
        get_bw / 1e6
    );
    println!(
        "| `restore_latest` through `ObjectStorage` | {reps} | {restore:.3} | {:.0} | {:.2} |",
        restore_bw / 1e6,
        restore_bw / get_bw
    );
    println!(
        "| `Reader::restore_latest` (no checkpointer start) | {reps} | {read:.3} | {:.0} | {:.2} |",
        read_bw / 1e6,
        read_bw / get_bw
    );
    let pages = got.1.div_ceil(PAGE_GET_BYTES as u64);
    println!(
        "\nReference, same client: {sampled} ranged GETs of {} KiB one after another took {:.2} ms each; the {pages} such requests a 64 KiB page-by-page read of the packs makes would take {:.1} s.",
        PAGE_GET_BYTES >> 10,
        per_page_get * 1e3,
        per_page_get * pages as f64,
    );
    Ok(())
}

/// The S3 baseline: `object_store`'s own client, on its own runtime.
struct Getter {
    runtime: tokio::runtime::Runtime,
    store: object_store::aws::AmazonS3,
    packs: object_store::path::Path,
}

impl Getter {
    fn new(endpoint: &str, bucket: &str, prefix: &str) -> Res<Self> {
        let store = object_store::aws::AmazonS3Builder::from_env()
            .with_endpoint(endpoint)
            .with_bucket_name(bucket)
            .with_allow_http(true)
            .build()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        Ok(Getter {
            runtime,
            store,
            packs: object_store::path::Path::from(format!("{prefix}/packs")),
        })
    }

    /// GETs the packs in consecutive ranges of [`PAGE_GET_BYTES`], one
    /// request after another (the request pattern of a read page by page),
    /// at most `limit` requests; returns how many it made.
    fn get_pages(&self, limit: usize) -> Res<usize> {
        use object_store::{GetOptions, GetRange, ObjectStore};
        self.runtime.block_on(async {
            let listed = self.store.list_with_delimiter(Some(&self.packs)).await?;
            let mut requests = 0;
            for object in &listed.objects {
                let mut start = 0;
                while start < object.size && requests < limit {
                    let end = (start + PAGE_GET_BYTES as u64).min(object.size);
                    let options = GetOptions {
                        range: Some(GetRange::Bounded(start..end)),
                        ..GetOptions::default()
                    };
                    let result = self.store.get_opts(&object.location, options).await?;
                    result.bytes().await?;
                    requests += 1;
                    start = end;
                }
            }
            Ok(requests)
        })
    }

    /// Lists the packs and GETs each whole with a ranged request; returns
    /// how many packs and bytes.
    fn get_packs(&self) -> Res<(usize, u64)> {
        use object_store::{GetOptions, GetRange, ObjectStore};
        self.runtime.block_on(async {
            let listed = self.store.list_with_delimiter(Some(&self.packs)).await?;
            let mut buffers = Vec::new();
            for object in &listed.objects {
                let options = GetOptions {
                    range: Some(GetRange::Bounded(0..object.size)),
                    ..GetOptions::default()
                };
                let result = self.store.get_opts(&object.location, options).await?;
                buffers.push(result.bytes().await?);
            }
            let bytes = buffers.iter().map(|b| b.len() as u64).sum();
            Ok((buffers.len(), bytes))
        })
    }
}

// ---------------------------------------------------------------- header

fn print_header(args: &Args) -> Res<()> {
    let commit = std::env::var("CKPT_BENCH_COMMIT")
        .ok()
        .unwrap_or_else(git_commit);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    println!("# ckpt restore bench");
    println!();
    println!("* commit {commit}; nproc {cores} ({cpu})");
    println!(
        "* memory: MemTotal {:.1} GiB, MemAvailable {:.1} GiB; load average {}",
        mem_total() as f64 / (1u64 << 30) as f64,
        mem_available() as f64 / (1u64 << 30) as f64,
        load_average()
    );
    println!(
        "* stores under {} ({}); cold cache = posix_fadvise(POSIX_FADV_DONTNEED) on every file of the store before each timed run",
        args.dir.display(),
        filesystem_of(&args.dir)
    );
    println!(
        "* sizes {:?} MiB{}; reps {}; medians; `PagedVec<f64>` with default pages ({} KiB), `Scheme::Full`, compression off",
        args.sizes,
        if args.big { " (--big)" } else { "" },
        match (args.reps, args.quick) {
            (Some(n), _) => n.to_string(),
            (None, true) => "2 (--quick)".to_owned(),
            (None, false) => "5 (3 at 1 GiB, 2 at 4 GiB, 3 for S3)".to_owned(),
        },
        ckpt::DEFAULT_PAGE_BYTES >> 10,
    );
    Ok(())
}

fn git_commit() -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(commit) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            format!(
                "{commit}{}",
                if dirty {
                    " (+ uncommitted changes)"
                } else {
                    ""
                }
            )
        }
        None => "unknown (no git; set CKPT_BENCH_COMMIT)".to_owned(),
    }
}

fn meminfo(field: &str) -> u64 {
    fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

fn mem_available() -> u64 {
    meminfo("MemAvailable:")
}

fn mem_total() -> u64 {
    meminfo("MemTotal:")
}

fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// The type and device of the filesystem holding `dir` (longest mount
/// point that contains it).
fn filesystem_of(dir: &Path) -> String {
    let dir = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f.as_slice() {
                [device, point, kind, ..] if dir.starts_with(point) => {
                    Some((point.len(), format!("{kind} on {device}")))
                }
                _ => None,
            }
        })
        .max_by_key(|(len, _)| *len)
        .map_or_else(|| "unknown filesystem".to_owned(), |(_, s)| s)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}
