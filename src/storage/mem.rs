//! An in-memory backend, for tests and for state that only needs to survive
//! a scheme's own restore (not a process crash).

use super::{Storage, slice_range, validate_key};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};

/// A [`Storage`] held in memory. Cloning shares the same objects, so a test
/// can keep a handle while a checkpointer owns another.
///
/// ```
/// use ckpt::{MemStorage, Storage};
/// let store = MemStorage::new();
/// store.put("a/b", b"hello")?;
/// assert_eq!(store.get("a/b")?, b"hello");
/// # Ok::<(), ckpt::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemStorage {
    objects: Arc<Mutex<BTreeMap<String, Arc<Vec<u8>>>>>,
}

impl MemStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn objects(&self) -> MutexGuard<'_, BTreeMap<String, Arc<Vec<u8>>>> {
        // A panic while holding this lock cannot leave the map half-updated:
        // every critical section is a single map operation.
        self.objects
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn object(&self, key: &str) -> Result<Arc<Vec<u8>>> {
        validate_key(key)?;
        self.objects()
            .get(key)
            .cloned()
            .ok_or_else(|| Error::NotFound {
                key: key.to_owned(),
            })
    }
}

impl Storage for MemStorage {
    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        validate_key(key)?;
        self.objects()
            .insert(key.to_owned(), Arc::new(data.to_vec()));
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        Ok(self.object(key)?.as_ref().clone())
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        Ok(self
            .objects()
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect())
    }

    fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        self.objects().remove(key);
        Ok(())
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>> {
        let object = self.object(key)?;
        slice_range(key, &object, range).map(<[u8]>::to_vec)
    }

    fn put_if_absent(&self, key: &str, data: &[u8]) -> Result<bool> {
        validate_key(key)?;
        match self.objects().entry(key.to_owned()) {
            Entry::Occupied(_) => Ok(false),
            Entry::Vacant(slot) => {
                slot.insert(Arc::new(data.to_vec()));
                Ok(true)
            }
        }
    }
}
