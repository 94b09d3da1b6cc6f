//! A [`PagedVec`](super::PagedVec)'s table of page groups, shared whole
//! with a snapshot at capture and taken back at the vector's next write.
//!
//! A capture that pinned every group one by one (an atomic increment
//! per group: 256 of them at 1 GiB) cost the caller a walk over memory
//! nothing else touches between captures: 0.1–1 ms of cache and TLB
//! misses at 1 GiB, however few pages had changed. Shared whole, the
//! table costs the capture one reference. The vector's first write
//! after it takes the table back: for nothing when the snapshot is gone
//! by then (its persist finished), or by pinning each group (the same
//! walk, on the computation's side, once per capture) while it is still
//! being persisted. Reads never pay for either.

use super::pool::Group;
use std::sync::Arc;

/// The groups of a vector, its own or shared with the snapshot of its
/// last capture.
#[derive(Debug)]
pub(crate) struct GroupTable<T> {
    /// The groups, while the vector has been written since its last
    /// capture (or never captured); empty while `shared`.
    own: Vec<Arc<Group<T>>>,
    /// The groups as captured, while the vector has not been written
    /// since.
    shared: Option<Arc<Vec<Arc<Group<T>>>>>,
}

impl<T> GroupTable<T> {
    /// A table of `groups`, not shared.
    pub(crate) fn new(groups: Vec<Arc<Group<T>>>) -> Self {
        GroupTable {
            own: groups,
            shared: None,
        }
    }

    /// The groups, in order.
    pub(crate) fn groups(&self) -> &[Arc<Group<T>>] {
        match &self.shared {
            Some(shared) => shared,
            None => &self.own,
        }
    }

    /// The groups for writing: the table is taken back from the snapshot
    /// it was shared with (whole when that is gone, else copied).
    pub(crate) fn groups_mut(&mut self) -> &mut Vec<Arc<Group<T>>> {
        if let Some(shared) = self.shared.take() {
            self.own = Arc::try_unwrap(shared).unwrap_or_else(|shared| shared.to_vec());
        }
        &mut self.own
    }

    /// The table for a snapshot: shared, not copied.
    pub(crate) fn share(&mut self) -> Arc<Vec<Arc<Group<T>>>> {
        let own = &mut self.own;
        let shared = self
            .shared
            .get_or_insert_with(|| Arc::new(std::mem::take(own)));
        Arc::clone(shared)
    }
}

impl<T> Clone for GroupTable<T> {
    fn clone(&self) -> Self {
        GroupTable {
            own: self.own.clone(),
            shared: self.shared.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(groups: usize) -> GroupTable<u8> {
        GroupTable::new(
            (0..groups)
                .map(|i| {
                    Arc::new(Group {
                        pages: vec![Arc::new(vec![i as u8])],
                    })
                })
                .collect(),
        )
    }

    #[test]
    fn a_capture_shares_the_table_and_the_next_write_takes_it_back() {
        let mut t = table(3);
        let snapshot = t.share();
        assert!(
            Arc::ptr_eq(&snapshot, &t.share()),
            "shared once per capture"
        );
        assert!(std::ptr::eq(t.groups(), snapshot.as_slice()));
        // Written while the snapshot lives: a copy of the table, the
        // groups themselves still shared until the write copies one.
        let groups = t.groups_mut();
        groups[1] = Arc::new(Group { pages: Vec::new() });
        assert_eq!(snapshot[1].pages.len(), 1, "the snapshot kept its group");
        assert!(Arc::ptr_eq(&t.groups()[0], &snapshot[0]));
        assert_eq!(Arc::strong_count(&snapshot[0]), 2);
    }

    #[test]
    fn a_table_whose_snapshot_is_gone_is_taken_back_without_a_copy() {
        let mut t = table(2);
        let first = Arc::as_ptr(&t.groups()[0]);
        let shared = t.share();
        let buffer = shared.as_ptr();
        drop(shared);
        let groups = t.groups_mut();
        assert_eq!(
            groups.as_ptr(),
            buffer,
            "the captured table itself, not a copy"
        );
        assert!(std::ptr::eq(Arc::as_ptr(&groups[0]), first));
        assert_eq!(Arc::strong_count(&groups[0]), 1, "pinned by no one else");
    }
}
