//! Helpers of the tier tests: checking that a tier holds only whole
//! checkpoints.

use ckpt::{Reader, Storage};
use std::sync::Arc;

/// Asserts that every manifest on `tier` verifies, with every pack it
/// references present and intact (a drain writes the manifest last), and
/// returns the steps it holds, oldest first.
pub fn assert_whole(name: &str, tier: Arc<dyn Storage>) -> Vec<u64> {
    let reader = Reader::new(tier);
    let listing = reader.list().unwrap();
    assert!(
        listing.unreadable.is_empty(),
        "tier {name}: unreadable manifests {:?}",
        listing.unreadable
    );
    for info in &listing.checkpoints {
        if let Err(e) = reader.verify(&info.key) {
            panic!("tier {name}: {} does not verify: {}", info.key, e.report());
        }
    }
    listing.checkpoints.iter().map(|c| c.step).collect()
}
