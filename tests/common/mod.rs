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
