//! Issue 6 benchmark: full and incremental checkpoints to an S3 server
//! against a plain multipart upload of the same bytes with the same client
//! (`object_store`'s S3 client, same endpoint, part size and parallelism),
//! all in one run.
//!
//! * State: a `PagedVec<f64>` of `sin(i·1e-3)` (64 KiB pages), the same
//!   bytes the baseline uploads.
//! * Baseline: `object_store` multipart upload of the state's bytes (8 MiB
//!   parts, 8 in flight, `WriteMultipart`). For reference, one
//!   `ObjectStorage::put` of them (multipart, as packs of 16 MiB and more
//!   are), and one with multipart off (a single PUT request).
//! * Cases: full checkpoints with compression off and zstd 1; incremental
//!   checkpoints (compression off) after 1 % and 10 % of the pages changed,
//!   spread evenly, each to a value it never held.
//! * Each case runs `CKPT_BENCH_RUNS` times (default 5), interleaved with
//!   the baseline upload so drift of the shared machine hits both; the
//!   table shows medians.
//!
//! Run: `eval "$(scripts/s3-server start)"; cargo bench --bench object_store`.
//! `CKPT_BENCH_MIB` sets the state size (default 128). Without
//! `CKPT_S3_ENDPOINT` it prints why and does nothing.

use ckpt::storage::ObjectStorageBuilder;
use ckpt::{Checkpointer, ObjectStorage, PagedVec, Scheme, Storage};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStoreExt, WriteMultipart};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MIB: usize = 1 << 20;
const PAGE_LEN: usize = 8192;
const PART: usize = 8 * MIB;
const PARTS_IN_FLIGHT: usize = 8;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not.
    let benching = std::env::args().any(|a| a == "--bench");
    let Ok(endpoint) = std::env::var("CKPT_S3_ENDPOINT") else {
        eprintln!("skipped: CKPT_S3_ENDPOINT unset; run `eval \"$(scripts/s3-server start)\"`");
        return;
    };
    let mib = if benching {
        env_usize("CKPT_BENCH_MIB", 128)
    } else {
        16
    };
    let runs = if benching {
        env_usize("CKPT_BENCH_RUNS", 5).max(1)
    } else {
        1
    };
    let bucket = std::env::var("CKPT_S3_BUCKET").unwrap_or_else(|_| "ckpt-test".to_owned());
    let root = format!("bench/object-store-{}", std::process::id());

    let values: Vec<f64> = (0..mib * MIB / 8)
        .map(|i| (i as f64 * 1e-3).sin())
        .collect();
    let bytes: Vec<u8> = bytemuck::cast_slice(&values).to_vec();
    let builder = || {
        ObjectStorageBuilder::from_env()
            .endpoint(&endpoint)
            .bucket(&bucket)
            .allow_http(true)
            .part_size(PART)
            .max_concurrency(PARTS_IN_FLIGHT)
    };
    let uploader = Uploader::new(&endpoint, &bucket, &format!("{root}/raw"));
    let single = builder().prefix(format!("{root}/put")).build().unwrap();
    let one_request = builder()
        .prefix(format!("{root}/put1"))
        .multipart_threshold(usize::MAX)
        .build()
        .unwrap();

    println!("state {mib} MiB, {runs} runs per case, medians; endpoint {endpoint}");
    let mut table = Vec::new();
    let mut baseline = Vec::new();
    let (mut put, mut put1) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        baseline.push(uploader.upload(&bytes));
        let start = Instant::now();
        single.put("object", &bytes).unwrap();
        put.push(start.elapsed());
        let start = Instant::now();
        one_request.put("object", &bytes).unwrap();
        put1.push(start.elapsed());
    }
    let base = median(&mut baseline);
    table.push(Row::new(
        "object_store multipart upload (baseline)",
        bytes.len() as u64,
        base,
        base,
    ));
    table.push(Row::new(
        "ObjectStorage::put, one object (multipart)",
        bytes.len() as u64,
        median(&mut put),
        base,
    ));
    table.push(Row::new(
        "ObjectStorage::put, one object, one PUT request",
        bytes.len() as u64,
        median(&mut put1),
        base,
    ));

    for (name, level) in [("full, compression off", 0), ("full, zstd 1", 1)] {
        let store = builder().prefix(format!("{root}/{level}")).build().unwrap();
        let mut ck = checkpointer(store, Scheme::Full, level);
        let mut state = PagedVec::from_slice_with_page_len(&values, PAGE_LEN);
        let (mut times, mut ups, mut written) = (Vec::new(), Vec::new(), 0);
        for step in 0..runs as u64 {
            ups.push(uploader.upload(&bytes));
            let start = Instant::now();
            let committed = ck.checkpoint(step, &mut state).unwrap().unwrap();
            times.push(start.elapsed());
            written = committed.bytes_written;
        }
        ck.finish().unwrap();
        let up = median(&mut ups);
        table.push(Row::new(name, written, median(&mut times), up));
    }

    for percent in [1usize, 10] {
        let store = builder()
            .prefix(format!("{root}/inc{percent}"))
            .build()
            .unwrap();
        let mut ck = checkpointer(store, Scheme::Incremental, 0);
        let mut state = PagedVec::from_slice_with_page_len(&values, PAGE_LEN);
        ck.checkpoint(0, &mut state).unwrap();
        let pages = state.page_count();
        let dirty = (pages * percent / 100).max(1);
        let (mut times, mut ups, mut written) = (Vec::new(), Vec::new(), 0);
        for step in 1..=runs as u64 {
            for k in 0..dirty {
                let page = k * pages / dirty;
                let fill = -(step as f64) - page as f64 * 1e-6;
                if let Some(values) = state.page_mut(page) {
                    values.fill(fill);
                }
            }
            ups.push(uploader.upload(&bytes));
            let start = Instant::now();
            let committed = ck.checkpoint(step, &mut state).unwrap().unwrap();
            times.push(start.elapsed());
            assert!(!committed.full, "an increment was expected");
            written = committed.bytes_written;
        }
        ck.finish().unwrap();
        let up = median(&mut ups);
        let name = format!("incremental, {percent}% of pages changed");
        table.push(Row::new(&name, written, median(&mut times), up));
    }

    println!();
    println!("| case | MiB written | median time | MiB/s written | state MiB/s | time vs upload |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for row in &table {
        row.print(bytes.len());
    }
    cleanup(&builder, &root);
}

fn checkpointer(store: ObjectStorage, scheme: Scheme, level: i32) -> Checkpointer {
    Checkpointer::builder()
        .storage(store)
        .scheme(scheme)
        .compression_level(level)
        .keep_last(2)
        .max_chain(1000)
        .build()
        .unwrap()
}

/// Removes every object the run wrote.
fn cleanup(builder: &dyn Fn() -> ObjectStorageBuilder, root: &str) {
    let store = builder().prefix(root).build().unwrap();
    for key in store.list("").unwrap() {
        store.delete(&key).unwrap();
    }
}

/// The baseline: `object_store`'s own multipart upload on its own runtime.
struct Uploader {
    runtime: tokio::runtime::Runtime,
    store: Arc<dyn object_store::ObjectStore>,
    path: Path,
}

impl Uploader {
    fn new(endpoint: &str, bucket: &str, key: &str) -> Self {
        let store = AmazonS3Builder::from_env()
            .with_endpoint(endpoint)
            .with_bucket_name(bucket)
            .with_allow_http(true)
            .build()
            .unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        Uploader {
            runtime,
            store: Arc::new(store),
            path: Path::from(key),
        }
    }

    /// Uploads `bytes` as one object, returns the time taken.
    fn upload(&self, bytes: &[u8]) -> Duration {
        let data = bytes::Bytes::copy_from_slice(bytes);
        let start = Instant::now();
        self.runtime.block_on(async {
            let upload = self.store.put_multipart(&self.path).await.unwrap();
            let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
            for part in data.chunks(PART) {
                writer.wait_for_capacity(PARTS_IN_FLIGHT).await.unwrap();
                writer.put(data.slice_ref(part));
            }
            writer.finish().await.unwrap();
        });
        start.elapsed()
    }
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort_unstable();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

struct Row {
    name: String,
    written: u64,
    time: Duration,
    upload: Duration,
}

impl Row {
    fn new(name: &str, written: u64, time: Duration, upload: Duration) -> Self {
        Row {
            name: name.to_owned(),
            written,
            time,
            upload,
        }
    }

    fn print(&self, state_bytes: usize) {
        let secs = self.time.as_secs_f64().max(1e-9);
        let mib = self.written as f64 / MIB as f64;
        println!(
            "| {} | {:.1} | {:.3} s | {:.0} | {:.0} | {:.2}× |",
            self.name,
            mib,
            secs,
            mib / secs,
            state_bytes as f64 / MIB as f64 / secs,
            secs / self.upload.as_secs_f64().max(1e-9),
        );
    }
}
