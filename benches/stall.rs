//! Issue 17 stall benchmark: how long every `scope()` and `checkpoint()`
//! call blocks the caller with copy-on-write, as a share of a memcpy of the
//! state measured in the same run.
//!
//! For each state size (64 MiB and 1 GiB of `f64` in a [`PagedVec`]) and
//! dirty share (1, 10, 100 % of the pages per checkpoint), a checkpointer
//! with copy-on-write and `every_steps(4)` runs cycles of four scopes; the
//! scope bodies write the cycle's dirty pages (a quarter each, so the
//! first writes after a capture copy shared pages). Cycles rotate among
//! three shapes so that every kind of call is timed:
//!
//! * scope, scope, scope, *wait*, scope (collects the previous commit and
//!   captures);
//! * scope, scope, *wait*, scope (collects), scope (captures);
//! * scope, scope, scope, *wait*, writes, `checkpoint()` (collects and
//!   captures).
//!
//! *wait* is the computation going on until the previous snapshot is
//! written (watched through the storage): the next capture then does not
//! fight its own persist for the cores, as in a steady loop with a sensible
//! interval. The scopes before it run beside the persist.
//!
//! Every call is timed from outside; for a scope the body's own time
//! (measured inside the body) is subtracted. The table gives median, p90
//! and max of the blocked time over all calls, and over the calls that
//! collected a commit or captured, as a percentage of the memcpy (a copy of
//! the state's bytes into a warm buffer, median of 5).
//!
//! On a machine with fewer cores than busy threads (the caller, the
//! persist thread, its pack writers) a call can be preempted: its
//! blocked time then includes the time the caller's thread sat runnable
//! waiting for a CPU, which is the scheduler's, not the library's code.
//! Where Linux reports it (`/proc/thread-self/schedstat`), the last
//! columns give the blocked time less that wait, measured around the same
//! calls (less the body's own wait for a scope), so both readings come
//! from one run, and split the worst call into its time on a CPU, its
//! waits for one, and the rest (asleep: a lock, I/O, the memory map).
//!
//! Run with `cargo bench --bench stall`. Environment: `CKPT_STALL_MIB`
//! (sizes, comma separated, default `64,1024`), `CKPT_STALL_CYCLES`
//! (cycles per case, default 30), `CKPT_STALL_SLOW_US` (print to stderr
//! the `CLOCK_MONOTONIC` window of every call that blocked at least this
//! long, to find its samples in a profile taken with
//! `perf record -k CLOCK_MONOTONIC`). Under `cargo test --benches` it runs
//! 4 MiB with 3 cycles. Stores live under `target/tmp/stall-bench`.

mod common;

use ckpt::model::Event;
use ckpt::{Checkpointer, PagedVec, Scheme};
use common::{Watched, make_state, spread_pages, write_pages};
use std::fs;
use std::hint::black_box;
use std::path::Path;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

const FRACTIONS: [f64; 3] = [0.01, 0.10, 1.0];
const SCOPES_PER_CYCLE: usize = 4;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let benchmarking =
        args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test" || a == "--list");
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("stall-bench");
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(&root).expect("create the bench directory");
    let (sizes, cycles) = if benchmarking {
        let sizes = std::env::var("CKPT_STALL_MIB").unwrap_or_else(|_| "64,1024".to_owned());
        let sizes: Vec<usize> = sizes
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect();
        let cycles = std::env::var("CKPT_STALL_CYCLES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(30);
        (sizes, cycles)
    } else {
        (vec![4], 3)
    };
    println!("stores under {}", root.display());
    println!(
        "| state | dirty | calls | median | p90 | max | collect/capture calls | their median | their max | memcpy | p90 less CPU waits | max less CPU waits | worst call: on CPU / waiting / asleep |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    let mut worst: f64 = 0.0;
    let mut worst_less_waits: Option<f64> = None;
    let mut worst_median: f64 = 0.0;
    for mib in sizes {
        let mut state = make_state(mib);
        let copy = memcpy_time(&state);
        for fraction in FRACTIONS {
            let calls = run_case(&root, &mut state, fraction, cycles);
            let pct = |d: Duration| 100.0 * d.as_secs_f64() / copy.as_secs_f64();
            let all: Vec<Duration> = calls.iter().map(|c| c.blocked).collect();
            let heavy: Vec<Duration> = calls
                .iter()
                .filter(|c| c.collected || c.captured)
                .map(|c| c.blocked)
                .collect();
            let max = all.iter().copied().max().unwrap_or_default();
            worst = worst.max(pct(max));
            worst_median = worst_median.max(pct(quantile(&heavy, 0.5)));
            let less_waits: Option<Vec<Duration>> = calls
                .iter()
                .map(|c| c.times.map(|t| c.blocked.saturating_sub(t.wait)))
                .collect();
            let less_waits = match &less_waits {
                Some(less_waits) => {
                    let max = less_waits.iter().copied().max().unwrap_or_default();
                    worst_less_waits = Some(worst_less_waits.unwrap_or(0.0).max(pct(max)));
                    let p90 = quantile(less_waits, 0.9);
                    format!(
                        "{} ({:.3} %) | {} ({:.3} %)",
                        ms(p90),
                        pct(p90),
                        ms(max),
                        pct(max)
                    )
                }
                None => "- | -".to_owned(),
            };
            let worst_split = calls
                .iter()
                .max_by_key(|c| c.blocked)
                .and_then(|c| Some((c.blocked, c.times?)))
                .map_or("-".to_owned(), |(blocked, t)| {
                    let asleep = blocked.saturating_sub(t.cpu).saturating_sub(t.wait);
                    format!("{} / {} / {}", ms(t.cpu), ms(t.wait), ms(asleep))
                });
            println!(
                "| {mib} MiB | {} % | {} | {} ({:.3} %) | {} ({:.3} %) | {} ({:.3} %) | {} | {} ({:.3} %) | {} ({:.3} %) | {} | {less_waits} | {worst_split} |",
                (fraction * 100.0).round(),
                all.len(),
                ms(quantile(&all, 0.5)),
                pct(quantile(&all, 0.5)),
                ms(quantile(&all, 0.9)),
                pct(quantile(&all, 0.9)),
                ms(max),
                pct(max),
                heavy.len(),
                ms(quantile(&heavy, 0.5)),
                pct(quantile(&heavy, 0.5)),
                ms(heavy.iter().copied().max().unwrap_or_default()),
                pct(heavy.iter().copied().max().unwrap_or_default()),
                ms(copy),
            );
        }
    }
    println!(
        "target (every call <= 0.1 % of a memcpy): worst call {worst:.3} %, worst median of \
         collect/capture calls {worst_median:.3} % -> {}",
        if worst <= 0.1 { "met" } else { "NOT met" }
    );
    if let Some(worst) = worst_less_waits {
        println!(
            "every call less its waits for a CPU: worst {worst:.3} % -> {} (the scheduler's \
             share, not the target's reading: the target counts wall time)",
            if worst <= 0.1 { "<= 0.1 %" } else { "> 0.1 %" }
        );
    }
    let _ = fs::remove_dir_all(&root);
}

/// One timed call.
struct Call {
    blocked: Duration,
    /// The caller thread's time on a CPU and waiting for one during the
    /// call (less a scope body's own).
    times: Option<Times>,
    collected: bool,
    captured: bool,
}

/// Runs `cycles` cycles at `fraction` dirty on a fresh store; returns every
/// call's blocked time.
fn run_case(root: &Path, state: &mut PagedVec<f64>, fraction: f64, cycles: usize) -> Vec<Call> {
    let dir = root.join(format!("cow-{}", (fraction * 1000.0) as usize));
    let _ = fs::remove_dir_all(&dir);
    let storage = Watched::open(&dir);
    let mut ck = Checkpointer::builder()
        .storage(Arc::clone(&storage))
        .scheme(Scheme::CopyOnWrite)
        .every_steps(SCOPES_PER_CYCLE as u64)
        .max_chain(1_000_000)
        .keep_last(2)
        .build()
        .expect("build the checkpointer");
    let events = ck.subscribe();
    let pages = spread_pages(state.page_count(), fraction);
    let quarters: Vec<&[usize]> = pages
        .chunks(pages.len().div_ceil(SCOPES_PER_CYCLE))
        .collect();
    let mut step = 0u64;
    let mut round = 0usize;
    // The base: every page, untimed.
    step += 1;
    ck.checkpoint(step, state).expect("base checkpoint");
    ck.flush().expect("flush the base");
    let _ = events.try_iter().count();
    let first = storage.manifests();
    let mut calls = Vec::new();
    for cycle in 0..cycles {
        // The previous cycle's checkpoint must be written before the wait.
        let manifests = first + cycle as u64;
        let shape = cycle % 3;
        let wait_before = if shape == 1 { 2 } else { 3 };
        for scope in 0..SCOPES_PER_CYCLE {
            if scope == wait_before {
                storage.wait_idle(manifests);
            }
            let quarter = quarters.get(scope).copied().unwrap_or(&[]);
            step += 1;
            if shape == 2 && scope == SCOPES_PER_CYCLE - 1 {
                write_pages(state, quarter, &mut round);
                let before = thread_times();
                let from = monotonic();
                let started = Instant::now();
                ck.checkpoint(step, state).expect("checkpoint succeeds");
                let blocked = started.elapsed();
                let window = (from, monotonic());
                let waits = times_since(before, Some(Times::default()));
                calls.push(observe(blocked, waits, &events, true));
                report_slow("checkpoint", blocked, window);
            } else {
                let mut body = Duration::ZERO;
                let mut body_times = None;
                let outer = thread_times();
                let from = monotonic();
                let started = Instant::now();
                ck.scope(step, state, |s| {
                    // The body's own wait readings count as the body.
                    let t = Instant::now();
                    let before = thread_times();
                    write_pages(s, quarter, &mut round);
                    body_times = times_since(before, Some(Times::default()));
                    body = t.elapsed();
                })
                .expect("scope succeeds");
                let blocked = started.elapsed().saturating_sub(body);
                let window = (from, monotonic());
                let waits = times_since(outer, body_times);
                let captured = scope == SCOPES_PER_CYCLE - 1;
                calls.push(observe(blocked, waits, &events, captured));
                report_slow("scope", blocked, window);
            }
        }
    }
    ck.flush().expect("flush succeeds");
    ck.finish().expect("finish succeeds");
    let _ = fs::remove_dir_all(&dir);
    calls
}

fn observe(
    blocked: Duration,
    times: Option<Times>,
    events: &Receiver<Event>,
    captured: bool,
) -> Call {
    let collected = events.try_iter().any(|e| matches!(e, Event::Checkpoint(_)));
    Call {
        blocked,
        times,
        collected,
        captured,
    }
}

/// A thread's time on a CPU (its CPU clock) and runnable but waiting for
/// one (Linux schedstat's `run_delay`).
#[derive(Debug, Clone, Copy, Default)]
struct Times {
    cpu: Duration,
    wait: Duration,
}

/// This thread's [`Times`] since it started, if the kernel reports them.
/// (schedstat's own CPU time is only brought up to date at scheduler
/// events, a tick late for a running thread; the thread CPU clock is
/// exact.)
fn thread_times() -> Option<Times> {
    let text = fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let wait = text.split_whitespace().nth(1)?.parse().ok()?;
    Some(Times {
        cpu: clock_time(libc::CLOCK_THREAD_CPUTIME_ID)?,
        wait: Duration::from_nanos(wait),
    })
}

/// The thread's [`Times`] since `before` was read, less `inner` (a scope
/// body's own, which is not the call's).
fn times_since(before: Option<Times>, inner: Option<Times>) -> Option<Times> {
    let (now, before, inner) = (thread_times()?, before?, inner?);
    let since = |now: Duration, then: Duration, inner: Duration| {
        now.checked_sub(then).map(|d| d.saturating_sub(inner))
    };
    Some(Times {
        cpu: since(now.cpu, before.cpu, inner.cpu)?,
        wait: since(now.wait, before.wait, inner.wait)?,
    })
}

/// The time of clock `id` (`clock_gettime`), if the kernel reports it.
fn clock_time(id: libc::clockid_t) -> Option<Duration> {
    let mut clock = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock` is a valid, writable timespec for the call.
    if unsafe { libc::clock_gettime(id, &mut clock) } != 0 {
        return None;
    }
    Some(Duration::new(
        u64::try_from(clock.tv_sec).ok()?,
        u32::try_from(clock.tv_nsec).ok()?,
    ))
}

/// `CLOCK_MONOTONIC` now (the clock `perf record -k CLOCK_MONOTONIC`
/// stamps its samples with).
fn monotonic() -> Duration {
    clock_time(libc::CLOCK_MONOTONIC).unwrap_or_default()
}

/// Prints the `CLOCK_MONOTONIC` window of a call that blocked at least
/// `CKPT_STALL_SLOW_US` (a scope's window includes its body).
fn report_slow(kind: &str, blocked: Duration, (from, to): (Duration, Duration)) {
    static THRESHOLD: OnceLock<Option<Duration>> = OnceLock::new();
    let threshold = THRESHOLD.get_or_init(|| {
        std::env::var("CKPT_STALL_SLOW_US")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_micros)
    });
    if threshold.is_some_and(|t| blocked >= t) {
        eprintln!(
            "slow {kind}: blocked {} monotonic {}.{:09}..{}.{:09}",
            ms(blocked),
            from.as_secs(),
            from.subsec_nanos(),
            to.as_secs(),
            to.subsec_nanos()
        );
    }
}

/// A memcpy of the state's bytes into a warm buffer: median of 5.
fn memcpy_time(state: &PagedVec<f64>) -> Duration {
    let from = state.to_vec();
    let mut to = vec![0.0f64; from.len()];
    to.copy_from_slice(&from); // warm the target
    let mut times: Vec<Duration> = (0..5)
        .map(|_| {
            let started = Instant::now();
            to.copy_from_slice(black_box(&from));
            black_box(&mut to);
            started.elapsed()
        })
        .collect();
    times.sort();
    times[2]
}

fn quantile(values: &[Duration], q: f64) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    let at = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(at).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 1.0 {
        format!("{:.0} µs", ms * 1e3)
    } else {
        format!("{ms:.2} ms")
    }
}
