//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses its own part

pub mod child;
pub mod gateway;
pub mod group;
pub mod paged_sim;
#[cfg(feature = "object-store")]
pub mod s3;
pub mod tiers;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

/// splitmix64's finalizer: a cheap, well-mixed pure function, for test
/// states that must be recomputable byte for byte from (rank, step, …).
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The seed in the environment variable `name`, or `default` when it is
/// unset or not a number (a test prints the one it used, so a failure can
/// be replayed).
pub fn seed(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Prints past the test harness's output capture, so a skip is visible in
/// a plain `cargo test`.
pub fn say(message: &str) {
    let _ = writeln!(std::io::stderr(), "{message}");
}

/// The state at `step`: a few chunks' worth of numbers.
pub fn state(step: u64) -> Vec<u64> {
    (0..3_000).map(|i| i * 31 + step * 1_000_003).collect()
}

/// The keys `store` lists under `prefix`.
pub fn keys(store: &dyn ckpt::Storage, prefix: &str) -> BTreeSet<String> {
    store.list(prefix).unwrap().into_iter().collect()
}

/// Copies the store in `from` into `to` (created), whole, without its
/// `.lock`: a copy a test may damage or open while the original stays.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_name() != ".lock" {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Copies the `packs/` and `manifests/` of the store in `from` into `to`
/// (both created): a copy to damage while the reference stays.
pub fn copy_store(from: &Path, to: &Path) {
    for sub in ["packs", "manifests"] {
        std::fs::create_dir_all(to.join(sub)).unwrap();
        for entry in std::fs::read_dir(from.join(sub)).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), to.join(sub).join(entry.file_name())).unwrap();
        }
    }
}
