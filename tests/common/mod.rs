//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses its own part

pub mod gateway;
pub mod paged_sim;

/// splitmix64's finalizer: a cheap, well-mixed pure function, for test
/// states that must be recomputable byte for byte from (rank, step, …).
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Copies the store in `from` into `to` (created), whole, without its
/// `.lock`: a copy a test may damage or open while the original stays.
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
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
