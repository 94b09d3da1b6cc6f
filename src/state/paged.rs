//! Paged state: a vector of plain-old-data cut into fixed-size pages, with a
//! dirty bit per page and copy-on-write sharing with snapshots.
//!
//! Pages live behind `Arc`, grouped 64 to a group that is itself behind an
//! `Arc`, in a table of groups ([`GroupTable`]). A snapshot shares the
//! whole table (one reference, whatever the state's size); the vector's
//! first write after it takes the table back, and the first write to a
//! group or page still shared with a snapshot copies that group's page
//! table or that page first (into a buffer recycled through the vector's
//! [`PagePool`]). Every mutable access path marks the pages it exposes
//! dirty; none bypasses it.

use super::pool::{Group, PagePool};
use super::table::GroupTable;
use std::ops::{Index, IndexMut};
use std::sync::Arc;

/// Pages per group: the unit a snapshot shares.
const PAGES_PER_GROUP: usize = 64;

/// Default page size in bytes.
pub const DEFAULT_PAGE_BYTES: usize = 64 << 10;

/// Largest page, in bytes: a page is stored as one chunk.
const MAX_PAGE_BYTES: usize = 64 << 20;

/// What a [`PagedVec`] holds: plain old data that may be shared between
/// threads.
///
/// Implemented for every [`bytemuck::Pod`] type that is `Send + Sync`:
/// the numeric primitives, arrays of them, and your own `#[repr(C)]`
/// structs with `#[derive(bytemuck::Pod, bytemuck::Zeroable)]` (add
/// `bytemuck` to your dependencies for those). Write `T: ckpt::Element`
/// in generic code over paged state; nothing else of `bytemuck` is part
/// of this crate's API.
///
/// ```
/// fn total<T: ckpt::Element + Into<f64>>(v: &ckpt::PagedVec<T>) -> f64 {
///     (0..v.len()).map(|i| v[i].into()).sum()
/// }
/// assert_eq!(total(&ckpt::PagedVec::from_vec(vec![1.0f32, 2.0])), 3.0);
/// ```
pub trait Element: bytemuck::Pod + Send + Sync {}

impl<T: bytemuck::Pod + Send + Sync> Element for T {}

/// A growable vector of plain-old-data ([`Element`]s: `f64`, `u32`,
/// `#[derive(bytemuck::Pod)]` structs...) that checkpoints incrementally.
///
/// Schemes read only the pages written since the last checkpoint, and a
/// copy-on-write checkpoint shares the pages instead of copying them.
///
/// ```
/// use ckpt::PagedVec;
/// let mut grid: PagedVec<f64> = PagedVec::from_vec(vec![0.0; 100_000]);
/// grid[42] = 1.5;                      // marks one page dirty
/// for x in grid.page_mut(3).unwrap() { // marks page 3 dirty
///     *x += 1.0;
/// }
/// assert_eq!(grid[42], 1.5);
/// assert_eq!(grid.len(), 100_000);
/// ```
#[derive(Debug)]
pub struct PagedVec<T> {
    groups: GroupTable<T>,
    dirty: Vec<bool>,
    len: usize,
    page_len: usize,
    /// The checkpoint the clean bits are relative to; `None` until captured
    /// or restored, so a new vector is written whole.
    base: Option<u128>,
    /// Buffers for the copies of pages a snapshot shares, handed back by
    /// the snapshots once dropped.
    pool: Arc<PagePool<T>>,
}

impl<T: Element> Clone for PagedVec<T> {
    /// Shares the pages (copied on the first write), not the pool.
    fn clone(&self) -> Self {
        PagedVec {
            groups: self.groups.clone(),
            dirty: self.dirty.clone(),
            len: self.len,
            page_len: self.page_len,
            base: self.base,
            pool: Arc::new(PagePool::new(self.page_len)),
        }
    }
}

impl<T: Element> Default for PagedVec<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Element> PagedVec<T> {
    /// An empty vector with pages of [`DEFAULT_PAGE_BYTES`].
    pub fn new() -> Self {
        Self::with_page_len(default_page_len::<T>())
    }

    /// An empty vector with `page_len` elements per page (at least 1, and
    /// at most 64 MiB worth of elements).
    pub fn with_page_len(page_len: usize) -> Self {
        let most = (MAX_PAGE_BYTES / std::mem::size_of::<T>().max(1)).max(1);
        let page_len = page_len.clamp(1, most);
        PagedVec {
            groups: GroupTable::new(Vec::new()),
            dirty: Vec::new(),
            len: 0,
            page_len,
            base: None,
            pool: Arc::new(PagePool::new(page_len)),
        }
    }

    /// A vector holding `values`, with default pages.
    pub fn from_vec(values: Vec<T>) -> Self {
        Self::from_slice_with_page_len(&values, default_page_len::<T>())
    }

    /// A vector holding a copy of `values`, `page_len` elements per page.
    pub fn from_slice_with_page_len(values: &[T], page_len: usize) -> Self {
        let mut vec = Self::with_page_len(page_len);
        vec.extend_from_slice(values);
        vec
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Elements per page.
    pub fn page_len(&self) -> usize {
        self.page_len
    }

    /// Number of pages (the last may be partly filled).
    pub fn page_count(&self) -> usize {
        self.dirty.len()
    }

    /// Number of pages written since the last checkpoint captured them.
    pub fn dirty_page_count(&self) -> usize {
        self.dirty.iter().filter(|d| **d).count()
    }

    /// The element at `index`.
    pub fn get(&self, index: usize) -> Option<&T> {
        self.page(index / self.page_len)?.get(index % self.page_len)
    }

    /// The element at `index`, for writing (marks its page dirty).
    pub fn get_mut(&mut self, index: usize) -> Option<&mut T> {
        let page_len = self.page_len;
        self.page_mut(index / page_len)?.get_mut(index % page_len)
    }

    /// Page `page` as a slice.
    pub fn page(&self, page: usize) -> Option<&[T]> {
        let group = self.groups.groups().get(page / PAGES_PER_GROUP)?;
        group
            .pages
            .get(page % PAGES_PER_GROUP)
            .map(|p| p.as_slice())
    }

    /// Page `page` for writing; marks it dirty (and copies it first if a
    /// snapshot still shares it).
    pub fn page_mut(&mut self, page: usize) -> Option<&mut [T]> {
        *self.dirty.get_mut(page)? = true;
        let group = self
            .pool
            .own_group(self.groups.groups_mut().get_mut(page / PAGES_PER_GROUP)?);
        let page = group.pages.get_mut(page % PAGES_PER_GROUP)?;
        Some(own(&self.pool, page).as_mut_slice())
    }

    /// Iterates over the pages.
    pub fn pages(&self) -> impl Iterator<Item = &[T]> + '_ {
        self.groups
            .groups()
            .iter()
            .flat_map(|g| g.pages.iter().map(|p| p.as_slice()))
    }

    /// Iterates over the pages for writing; each page is marked dirty when
    /// the iterator yields it.
    pub fn pages_mut(&mut self) -> impl Iterator<Item = &mut [T]> + '_ {
        let dirty = self.dirty.chunks_mut(PAGES_PER_GROUP);
        let pool = &self.pool;
        self.groups
            .groups_mut()
            .iter_mut()
            .zip(dirty)
            .flat_map(move |(group, dirty)| {
                let group = pool.own_group(group);
                group.pages.iter_mut().zip(dirty).map(move |(page, dirty)| {
                    *dirty = true;
                    own(pool, page).as_mut_slice()
                })
            })
    }

    /// Iterates over the elements.
    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.pages().flatten()
    }

    /// Iterates over the elements for writing (pages are marked dirty as
    /// the iterator reaches them).
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> + '_ {
        self.pages_mut().flatten()
    }

    /// Overwrites the elements starting at `start` with `values`, marking
    /// only the pages they fall in. Returns `false` (and writes nothing) if
    /// the range does not fit.
    pub fn write_at(&mut self, start: usize, values: &[T]) -> bool {
        let fits = start
            .checked_add(values.len())
            .is_some_and(|end| end <= self.len);
        if !fits {
            return false;
        }
        let mut at = start;
        let mut rest = values;
        while !rest.is_empty() {
            let page_len = self.page_len;
            let offset = at % page_len;
            let Some(page) = self.page_mut(at / page_len) else {
                return false;
            };
            let n = rest.len().min(page.len() - offset);
            let (head, tail) = rest.split_at(n);
            if let Some(target) = page.get_mut(offset..offset + n) {
                target.copy_from_slice(head);
            }
            rest = tail;
            at += n;
        }
        true
    }

    /// Appends an element.
    pub fn push(&mut self, value: T) {
        self.extend_from_slice(std::slice::from_ref(&value));
    }

    /// Appends copies of `values`.
    pub fn extend_from_slice(&mut self, mut values: &[T]) {
        while !values.is_empty() {
            let room = self.room_in_last_page();
            if room == 0 {
                self.add_page();
                continue;
            }
            let (head, tail) = values.split_at(room.min(values.len()));
            if let Some(page) = self.last_page_vec_mut() {
                page.extend_from_slice(head);
            }
            self.len += head.len();
            values = tail;
        }
    }

    /// Grows or shrinks to `new_len` elements, filling with `value`.
    pub fn resize(&mut self, new_len: usize, value: T) {
        if new_len >= self.len {
            let fill = vec![value; new_len - self.len];
            self.extend_from_slice(&fill);
            return;
        }
        let pages = new_len.div_ceil(self.page_len);
        self.dirty.truncate(pages);
        let groups = self.groups.groups_mut();
        groups.truncate(pages.div_ceil(PAGES_PER_GROUP));
        if let Some(last) = groups.last_mut() {
            Arc::make_mut(last)
                .pages
                .truncate((pages - 1) % PAGES_PER_GROUP + 1);
        }
        self.len = new_len;
        let tail = new_len - (pages.saturating_sub(1)) * self.page_len;
        if let Some(page) = self.last_page_vec_mut() {
            page.truncate(tail);
        }
    }

    /// Copies the elements into a plain `Vec`.
    pub fn to_vec(&self) -> Vec<T> {
        let mut out = Vec::with_capacity(self.len);
        for page in self.pages() {
            out.extend_from_slice(page);
        }
        out
    }

    fn room_in_last_page(&self) -> usize {
        match self.page_count() {
            0 => 0,
            n => n * self.page_len - self.len,
        }
    }

    fn add_page(&mut self) {
        let groups = self.groups.groups_mut();
        if groups
            .last()
            .is_none_or(|g| g.pages.len() == PAGES_PER_GROUP)
        {
            groups.push(Arc::new(Group { pages: Vec::new() }));
        }
        if let Some(group) = groups.last_mut() {
            let page = Vec::with_capacity(self.page_len);
            Arc::make_mut(group).pages.push(Arc::new(page));
            self.dirty.push(true);
        }
    }

    /// The last page as a `Vec`, marked dirty; for changes of length.
    fn last_page_vec_mut(&mut self) -> Option<&mut Vec<T>> {
        *self.dirty.last_mut()? = true;
        let group = self.pool.own_group(self.groups.groups_mut().last_mut()?);
        Some(own(&self.pool, group.pages.last_mut()?))
    }
}

/// `page` for writing: copied first (into a pooled buffer) while a
/// snapshot still shares it.
fn own<'a, T: Element>(pool: &PagePool<T>, page: &'a mut Arc<Vec<T>>) -> &'a mut Vec<T> {
    if Arc::get_mut(page).is_none() {
        *page = pool.copy_of(page);
    }
    // Unique now: either it was, or it is a fresh copy.
    Arc::make_mut(page)
}

impl<T: Element> PagedVec<T> {
    /// Captures the pages for checkpoint `checkpoint` and clears the dirty
    /// bits. When the vector's clean bits are not relative to `previous`
    /// (the checkpoint the scheme will diff against), every page is
    /// reported dirty.
    pub(crate) fn snapshot(&mut self, checkpoint: u128, previous: Option<u128>) -> PageSnapshot {
        let trusted = self.base.is_some() && self.base == previous;
        let dirty = if trusted {
            self.dirty.clone()
        } else {
            vec![true; self.dirty.len()]
        };
        self.dirty.fill(false);
        self.base = Some(checkpoint);
        PageSnapshot {
            elem_size: std::mem::size_of::<T>(),
            elem_type: std::any::type_name::<T>(),
            page_len: self.page_len,
            len: self.len,
            dirty,
            pages: Arc::new(SharedPages {
                groups: self.groups.share(),
                pool: Arc::clone(&self.pool),
                spare: self.pool.trim(),
            }),
        }
    }

    /// Builds a vector from its pages (already in their final memory),
    /// clean relative to the checkpoint `base`. `None` if the pages do not
    /// fit the layout: `len.div_ceil(page_len)` pages, each full but the
    /// last.
    pub(crate) fn from_page_vecs(
        pages: Vec<Vec<T>>,
        page_len: usize,
        len: usize,
        base: u128,
    ) -> Option<Self> {
        let empty = Self::with_page_len(page_len);
        if empty.page_len != page_len || pages.len() != len.div_ceil(page_len) {
            return None;
        }
        let mut remaining = len;
        for page in &pages {
            if page.len() != page_len.min(remaining) {
                return None;
            }
            remaining -= page.len();
        }
        let page_count = pages.len();
        let mut groups = Vec::with_capacity(page_count.div_ceil(PAGES_PER_GROUP));
        let mut pages = pages.into_iter().map(Arc::new).peekable();
        while pages.peek().is_some() {
            let group: Vec<_> = pages.by_ref().take(PAGES_PER_GROUP).collect();
            groups.push(Arc::new(Group { pages: group }));
        }
        Some(PagedVec {
            groups: GroupTable::new(groups),
            dirty: vec![false; page_count],
            len,
            base: Some(base),
            ..empty
        })
    }
}

impl<T: Element> Index<usize> for PagedVec<T> {
    type Output = T;

    fn index(&self, index: usize) -> &T {
        match self.get(index) {
            Some(value) => value,
            None => panic!(
                "index {index} out of range for a PagedVec of length {}",
                self.len
            ),
        }
    }
}

impl<T: Element> IndexMut<usize> for PagedVec<T> {
    fn index_mut(&mut self, index: usize) -> &mut T {
        let len = self.len;
        match self.get_mut(index) {
            Some(value) => value,
            None => panic!("index {index} out of range for a PagedVec of length {len}"),
        }
    }
}

impl<T: Element> PartialEq for PagedVec<T> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len
            && self
                .iter()
                .zip(other.iter())
                .all(|(a, b)| bytemuck::bytes_of(a) == bytemuck::bytes_of(b))
    }
}

fn default_page_len<T>() -> usize {
    (DEFAULT_PAGE_BYTES / std::mem::size_of::<T>().max(1)).max(1)
}

/// Pages as raw bytes, whatever their element type.
pub(crate) trait PageSource: Send + Sync {
    /// The bytes of page `page`.
    fn page_bytes(&self, page: usize) -> Option<&[u8]>;
}

impl std::fmt::Debug for dyn PageSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PageSource")
    }
}

/// A snapshot's pages. Dropped (on the persist thread, for copy-on-write),
/// it hands the pages only it still held back to the vector's pool, and
/// frees the buffers the pool no longer needed at its capture.
struct SharedPages<T: Copy> {
    /// The vector's table as captured, shared with the vector until its
    /// next write.
    groups: Arc<Vec<Arc<Group<T>>>>,
    pool: Arc<PagePool<T>>,
    /// Pooled pages beyond what the next copies are likely to need.
    spare: Vec<Arc<Vec<T>>>,
}

impl<T: Copy> Drop for SharedPages<T> {
    fn drop(&mut self) {
        // Shared with the vector still (not written since): nothing is
        // only the snapshot's.
        if let Some(groups) = Arc::get_mut(&mut self.groups) {
            self.pool.give_back(std::mem::take(groups));
        }
        drop(std::mem::take(&mut self.spare));
    }
}

impl<T: Element> PageSource for SharedPages<T> {
    fn page_bytes(&self, page: usize) -> Option<&[u8]> {
        let group = self.groups.get(page / PAGES_PER_GROUP)?;
        let page = group.pages.get(page % PAGES_PER_GROUP)?;
        Some(bytemuck::cast_slice(page.as_slice()))
    }
}

/// The pages of a [`PagedVec`] at one checkpoint, shared, not copied.
#[derive(Debug, Clone)]
pub(crate) struct PageSnapshot {
    pub elem_size: usize,
    /// The element type's name, recorded so a restore as another type is
    /// refused rather than reinterpreted.
    pub elem_type: &'static str,
    pub page_len: usize,
    pub len: usize,
    /// Per page: written since the checkpoint the scheme diffs against.
    pub dirty: Vec<bool>,
    pub pages: Arc<dyn PageSource>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(len: usize, page_len: usize) -> (PagedVec<u32>, Vec<u32>) {
        let plain: Vec<u32> = (0..len as u32).collect();
        (PagedVec::from_slice_with_page_len(&plain, page_len), plain)
    }

    #[test]
    fn behaves_like_a_vec() {
        let (mut paged, mut plain) = sample(1000, 7);
        assert_eq!(paged.to_vec(), plain);
        paged[500] = 9;
        plain[500] = 9;
        paged.push(4);
        plain.push(4);
        paged.resize(1500, 3);
        plain.resize(1500, 3);
        assert_eq!(paged.to_vec(), plain);
        paged.resize(10, 0);
        plain.resize(10, 0);
        assert_eq!(paged.to_vec(), plain);
        assert_eq!(paged.page_count(), 2);
        assert!(paged.write_at(5, &[1, 2, 3, 4]));
        plain[5..9].copy_from_slice(&[1, 2, 3, 4]);
        assert!(!paged.write_at(8, &[1, 2, 3]));
        assert_eq!(paged.to_vec(), plain);
        assert_eq!(paged.get(10), None);
    }

    #[test]
    fn every_mutable_path_marks_exactly_its_pages() {
        let (mut v, _) = sample(100, 10);
        let _ = v.snapshot(1, None);
        assert_eq!(v.dirty_page_count(), 0);
        v[15] = 0;
        *v.get_mut(95).unwrap() = 0;
        assert!(v.write_at(38, &[1, 1, 1, 1]));
        let marked: Vec<usize> = (0..10).filter(|p| v.dirty[*p]).collect();
        assert_eq!(marked, vec![1, 3, 4, 9]);
        let _ = v.snapshot(2, Some(1));
        v.iter_mut().take(25).for_each(|x| *x += 1);
        assert_eq!(v.dirty_page_count(), 3);
        let _ = v.snapshot(3, Some(2));
        v.pages_mut().for_each(|_| {});
        assert_eq!(v.dirty_page_count(), 10);
    }

    #[test]
    fn snapshots_keep_their_contents_while_the_vector_changes() {
        let (mut v, plain) = sample(1000, 16);
        let snap = v.snapshot(1, None);
        v.iter_mut().for_each(|x| *x = 0);
        v.push(77);
        let mut seen = Vec::new();
        for p in 0..snap.dirty.len() {
            seen.extend_from_slice(bytemuck::cast_slice::<u8, u32>(
                snap.pages.page_bytes(p).unwrap(),
            ));
        }
        assert_eq!(seen, plain);
        assert!(v.iter().take(1000).all(|x| *x == 0));
    }

    #[test]
    fn a_write_copies_a_page_only_while_a_snapshot_holds_it() {
        let (mut v, _) = sample(1000, 10);
        let page = |v: &PagedVec<u32>| v.page(0).unwrap().as_ptr();
        let first = page(&v);
        // Persisted and dropped before the next write: written in place.
        drop(v.snapshot(1, None));
        v[0] = 7;
        assert_eq!(page(&v), first);
        // Still held: the write goes to a copy, the snapshot keeps the old.
        let snap = v.snapshot(2, Some(1));
        v[0] = 8;
        assert_ne!(page(&v), first);
        assert_eq!(snap.pages.page_bytes(0).unwrap()[..4], 7u32.to_ne_bytes());
        assert_eq!(v[0], 8);
    }

    #[test]
    fn snapshots_trust_dirty_bits_only_against_their_own_base() {
        let (mut v, _) = sample(100, 10);
        assert!(v.snapshot(1, None).dirty.iter().all(|d| *d));
        v[0] = 5;
        let diff = v.snapshot(2, Some(1)).dirty;
        assert_eq!(diff.iter().filter(|d| **d).count(), 1);
        // Diffed against another checkpoint: everything must be written.
        assert!(v.snapshot(3, Some(99)).dirty.iter().all(|d| *d));
    }

    #[test]
    fn pages_round_trip_through_page_vectors() {
        let (mut v, plain) = sample(1003, 10);
        let snap = v.snapshot(1, None);
        let pages = |n: usize| -> Vec<Vec<u32>> {
            (0..n)
                .map(|p| bytemuck::cast_slice(snap.pages.page_bytes(p).unwrap()).to_vec())
                .collect()
        };
        let mut back =
            PagedVec::<u32>::from_page_vecs(pages(snap.dirty.len()), 10, 1003, 1).unwrap();
        assert_eq!(back.to_vec(), plain);
        assert_eq!(back.dirty_page_count(), 0);
        back.push(9);
        assert_eq!(back.len(), 1004);
        assert_eq!(back.dirty_page_count(), 1);
        assert!(PagedVec::<u32>::from_page_vecs(pages(snap.dirty.len()), 10, 1013, 1).is_none());
        assert!(PagedVec::<u32>::from_page_vecs(pages(snap.dirty.len()), 10, 1000, 1).is_none());
        assert!(PagedVec::<u32>::from_page_vecs(pages(3), 10, 1003, 1).is_none());
    }
}
