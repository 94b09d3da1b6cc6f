//! What the table-printing benches share: the paged state they checkpoint,
//! how they dirty it, and a store that tells when the background writer
//! is done.

use ckpt::{FsStorage, PagedVec, Storage};
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const MIB: usize = 1 << 20;

/// A paged vector of `mib` MiB of `f64` with non-trivial values.
pub fn make_state(mib: usize) -> PagedVec<f64> {
    let values: Vec<f64> = (0..mib * MIB / 8)
        .map(|i| (i as f64 * 1e-3).sin())
        .collect();
    PagedVec::from_vec(values)
}

/// `fraction` of the pages, spread evenly over the vector.
pub fn spread_pages(page_count: usize, fraction: f64) -> Vec<usize> {
    let count = ((page_count as f64 * fraction).round() as usize).clamp(1, page_count);
    (0..count).map(|k| k * page_count / count).collect()
}

/// Writes one element of each page in `pages`, to a value the page has
/// never held (so incremental capture cannot find it in the store; the
/// first write after a copy-on-write capture copies the page).
pub fn write_pages(state: &mut PagedVec<f64>, pages: &[usize], round: &mut usize) {
    *round += 1;
    for &page in pages {
        let page = state.page_mut(page).expect("page in range");
        let at = round.wrapping_mul(7919) % page.len();
        page[at] += 1.0;
    }
}

/// An [`FsStorage`] that lets the bench tell when the background writer
/// has finished: manifests stored, and no operation for a while.
#[derive(Debug)]
pub struct Watched {
    inner: FsStorage,
    manifests: AtomicU64,
    active: AtomicUsize,
    last_done: Mutex<Instant>,
}

impl Watched {
    /// A fresh store in `dir`.
    pub fn open(dir: &Path) -> Arc<Self> {
        Arc::new(Watched {
            inner: FsStorage::open(dir).expect("open the bench store"),
            manifests: AtomicU64::new(0),
            active: AtomicUsize::new(0),
            last_done: Mutex::new(Instant::now()),
        })
    }

    /// Manifests stored so far.
    pub fn manifests(&self) -> u64 {
        self.manifests.load(Ordering::SeqCst)
    }

    fn op<T>(&self, f: impl FnOnce(&FsStorage) -> ckpt::Result<T>) -> ckpt::Result<T> {
        self.active.fetch_add(1, Ordering::SeqCst);
        let result = f(&self.inner);
        *self.last_done.lock().expect("not poisoned") = Instant::now();
        self.active.fetch_sub(1, Ordering::SeqCst);
        result
    }

    /// Waits until `manifests` manifests were stored and nothing touched
    /// the store for 50 ms (retention runs right after the manifest).
    pub fn wait_idle(&self, manifests: u64) {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let quiet = self.last_done.lock().expect("not poisoned").elapsed();
            if self.manifests() >= manifests
                && self.active.load(Ordering::SeqCst) == 0
                && quiet >= Duration::from_millis(50)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the background writer never finished"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Storage for Watched {
    fn put(&self, key: &str, data: &[u8]) -> ckpt::Result<()> {
        self.op(|s| {
            let put = s.put(key, data);
            if put.is_ok() && key.starts_with("manifests/") {
                self.manifests.fetch_add(1, Ordering::SeqCst);
            }
            put
        })
    }
    fn put_parts(&self, key: &str, parts: &[&[u8]]) -> ckpt::Result<()> {
        self.op(|s| s.put_parts(key, parts))
    }
    fn holds_writer_lock(&self) -> bool {
        self.inner.holds_writer_lock()
    }
    fn delete_many(&self, keys: &[String]) -> ckpt::Result<()> {
        self.op(|s| s.delete_many(keys))
    }
    fn get(&self, key: &str) -> ckpt::Result<Vec<u8>> {
        self.op(|s| s.get(key))
    }
    fn list(&self, prefix: &str) -> ckpt::Result<Vec<String>> {
        self.op(|s| s.list(prefix))
    }
    fn delete(&self, key: &str) -> ckpt::Result<()> {
        self.op(|s| s.delete(key))
    }
    fn get_range(&self, key: &str, range: Range<u64>) -> ckpt::Result<Vec<u8>> {
        self.op(|s| s.get_range(key, range))
    }
}
