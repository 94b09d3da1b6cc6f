//! Page buffers recycled between a [`PagedVec`](super::PagedVec) and its
//! snapshots.
//!
//! With copy-on-write, the computation's first write to a page a snapshot
//! still shares copies it, and the old page is freed when the snapshot is
//! dropped — on the persist thread. Freeing tens of thousands of pages
//! from that thread into the allocator arena of the caller's thread made
//! the caller's next allocation (inside the next `checkpoint()` or
//! `scope()`) pay for sorting them: milliseconds at 1 GiB (the pages'
//! small `Arc` headers alone, freed into the caller's arena, made its next
//! larger allocation consolidate them all). Instead, the dropped snapshot
//! hands its own pages back here, `Arc` and all, and the next copies reuse
//! them: no allocation and no free on either thread in a steady loop.
//!
//! Memory stays what copy-on-write holds at its peak anyway: pooled pages
//! plus pages only a snapshot holds never exceed the most pages copied
//! while one snapshot was shared (at most the whole state), and at each
//! capture the pool is trimmed to the most pages copied between two of the
//! last 8 captures (so it empties within 8 checkpoints once nothing is
//! copied, e.g. under a synchronous scheme). The trimmed buffers are freed
//! with the new snapshot, off the caller's thread when that snapshot is
//! persisted in the background.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Captures whose copies the pool remembers: it keeps as many buffers as
/// the most pages copied between two of the last this many captures.
const DEMAND_MEMORY: usize = 8;

/// Up to 64 pages: the unit a snapshot shares (one `Arc` per group).
#[derive(Debug, Clone)]
pub(crate) struct Group<T> {
    pub(crate) pages: Vec<Arc<Vec<T>>>,
}

/// Free pages and page tables of one vector.
pub(crate) struct PagePool<T> {
    page_len: usize,
    /// Unshared pages (`Arc`s nothing else holds) of capacity `page_len`.
    free: Mutex<Vec<Arc<Vec<T>>>>,
    /// Pages copied because a snapshot shared them, since the last capture.
    copied: AtomicUsize,
    /// Pages copied between consecutive captures, newest last.
    demand: Mutex<VecDeque<usize>>,
    /// Unshared, empty group tables (at most one per group of the state).
    tables: Mutex<Vec<Arc<Group<T>>>>,
}

impl<T> std::fmt::Debug for PagePool<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PagePool")
            .field("page_len", &self.page_len)
            .field("free", &self.lock().len())
            .finish()
    }
}

impl<T: Copy> PagePool<T> {
    /// An empty pool for pages of `page_len` elements.
    pub(crate) fn new(page_len: usize) -> Self {
        PagePool {
            page_len,
            free: Mutex::new(Vec::new()),
            copied: AtomicUsize::new(0),
            demand: Mutex::new(VecDeque::with_capacity(DEMAND_MEMORY + 1)),
            tables: Mutex::new(Vec::new()),
        }
    }

    /// An unshared copy of `page`, in a pooled page when there is one.
    pub(crate) fn copy_of(&self, page: &[T]) -> Arc<Vec<T>> {
        self.copied.fetch_add(1, Ordering::Relaxed);
        let spare = self.lock().pop();
        if let Some(mut spare) = spare
            && let Some(buffer) = Arc::get_mut(&mut spare)
        {
            buffer.clear();
            buffer.extend_from_slice(page);
            return spare;
        }
        let mut buffer = Vec::with_capacity(self.page_len.max(page.len()));
        buffer.extend_from_slice(page);
        Arc::new(buffer)
    }

    /// `group` for writing: a copy of its table (in a pooled one when
    /// there is one) while a snapshot still shares it.
    pub(crate) fn own_group<'a>(&self, group: &'a mut Arc<Group<T>>) -> &'a mut Group<T> {
        if Arc::get_mut(group).is_none() {
            let spare = relock(&self.tables).pop();
            if let Some(mut table) = spare
                && let Some(copy) = Arc::get_mut(&mut table)
            {
                copy.pages.clear();
                copy.pages.extend(group.pages.iter().cloned());
                *group = table;
            }
        }
        // Unique now, unless no pooled table was left: then cloned here.
        Arc::make_mut(group)
    }

    /// Takes back what a dropped snapshot held alone: its group tables
    /// (emptied, at most as many as the snapshot had) and their pages.
    /// Pages still shared, or of another capacity (a restored page, a
    /// grown last page), are only dropped.
    pub(crate) fn give_back(&self, groups: Vec<Arc<Group<T>>>) {
        let most_tables = groups.len();
        let mut tables = Vec::new();
        let mut pages = Vec::new();
        for mut group in groups {
            if let Some(unshared) = Arc::get_mut(&mut group) {
                pages.append(&mut unshared.pages);
                tables.push(group);
            }
        }
        {
            let mut pooled = relock(&self.tables);
            let room = most_tables.saturating_sub(pooled.len());
            tables.truncate(room);
            pooled.append(&mut tables);
        }
        let page_len = self.page_len;
        let (keep, other): (Vec<_>, Vec<_>) = pages
            .into_iter()
            .map(|mut page| {
                (
                    Arc::get_mut(&mut page).is_some_and(|v| v.capacity() == page_len),
                    page,
                )
            })
            .partition(|(unshared, _)| *unshared);
        self.lock().extend(keep.into_iter().map(|(_, page)| page));
        drop(other);
    }

    /// At a capture: keeps as many free buffers as the most pages copied
    /// between two of the last [`DEMAND_MEMORY`] captures (what the next
    /// persist is likely to need; a varying share of dirty pages does not
    /// free and reallocate buffers every time) and returns the rest, to be
    /// freed with the new snapshot.
    pub(crate) fn trim(&self) -> Vec<Arc<Vec<T>>> {
        let wanted = {
            let mut demand = relock(&self.demand);
            demand.push_back(self.copied.swap(0, Ordering::Relaxed));
            if demand.len() > DEMAND_MEMORY {
                demand.pop_front();
            }
            demand.iter().copied().max().unwrap_or(0)
        };
        let mut free = self.lock();
        let keep = free.len().min(wanted);
        free.split_off(keep)
    }

    /// Free buffers held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

impl<T> PagePool<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Vec<T>>>> {
        relock(&self.free)
    }
}

/// Locks a list; a panic while it was held leaves a valid list.
fn relock<V>(list: &Mutex<V>) -> std::sync::MutexGuard<'_, V> {
    list.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recycles_buffers_and_trims_to_the_last_demand() {
        let pool = PagePool::<u32>::new(4);
        let page = || Arc::new(Vec::with_capacity(4));
        let group = |pages: Vec<Arc<Vec<u32>>>| Arc::new(Group { pages });
        let first = pool.copy_of(&[1, 2, 3, 4]);
        assert_eq!(*first, vec![1, 2, 3, 4]);
        let address = first.as_ptr();
        let shared = page();
        let _holder = Arc::clone(&shared);
        let kept = group(vec![Arc::new(Vec::with_capacity(9)), shared]);
        let _table_holder = Arc::clone(&kept);
        pool.give_back(vec![group(vec![first]), kept]);
        assert_eq!(
            pool.len(),
            1,
            "only unshared pages of a page's capacity are kept"
        );
        let again = pool.copy_of(&[5, 6]);
        assert_eq!((again.as_slice(), again.as_ptr()), (&[5, 6][..], address));
        pool.give_back(vec![group(vec![again, page()]), group(vec![page()])]);
        // Two copies since the last trim: two buffers stay, one goes.
        assert_eq!(pool.trim().len(), 1);
        assert_eq!(pool.len(), 2);
        // Nothing copied since: the recent demand keeps them a while...
        pool.give_back(vec![group(vec![page()])]);
        assert_eq!(pool.trim().len(), 1);
        for _ in 2..DEMAND_MEMORY {
            assert!(pool.trim().is_empty());
        }
        // ...and once it is forgotten, everything goes.
        assert_eq!(pool.trim().len(), 2);
        assert_eq!(pool.len(), 0);
    }

    #[test]
    fn copies_shared_group_tables_into_pooled_ones() {
        let pool = PagePool::<u32>::new(4);
        let table = Arc::new(Group {
            pages: Vec::with_capacity(64),
        });
        let address = table.pages.as_ptr();
        pool.give_back(vec![table]);
        let page = Arc::new(vec![1, 2, 3, 4]);
        let snapshot = Arc::new(Group { pages: vec![page] });
        let mut live = Arc::clone(&snapshot);
        let owned = pool.own_group(&mut live);
        assert_eq!(owned.pages.as_ptr(), address, "the pooled table is reused");
        assert_eq!(*owned.pages[0], vec![1, 2, 3, 4]);
        assert_eq!(Arc::strong_count(&snapshot), 1);
        // Unshared now: no further copy.
        let again = pool.own_group(&mut live).pages.as_ptr();
        assert_eq!(again, address);
    }
}
