//! A namespace inside another store, so several checkpointers can share it.

use super::{Storage, validate_key};
use crate::error::Result;
use std::ops::Range;

/// A [`Storage`] that keeps every key under `prefix/` of an inner store.
///
/// Several checkpointers (threads, processes, jobs) can share one backend —
/// including one [`FailoverStorage`](super::FailoverStorage) — each in its own
/// namespace: a checkpointer on `PrefixStorage::new(store, "job-7")` sees
/// only `job-7/...`, and its retention never touches another job's objects.
///
/// ```
/// use ckpt::{MemStorage, Storage};
/// use ckpt::storage::PrefixStorage;
/// let shared = MemStorage::new();
/// let job = PrefixStorage::new(shared.clone(), "jobs/7")?;
/// job.put("packs/p1", b"bytes")?;
/// assert_eq!(shared.get("jobs/7/packs/p1")?, b"bytes");
/// assert_eq!(job.list("")?, vec!["packs/p1".to_string()]);
/// # Ok::<(), ckpt::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct PrefixStorage<S> {
    inner: S,
    /// The prefix with its trailing `/`.
    root: String,
}

impl<S: Storage> PrefixStorage<S> {
    /// Wraps `inner` so that every key lives under `prefix/`.
    ///
    /// `prefix` must itself be a valid key (one or more components, see
    /// [`Storage`]); otherwise this is [`Error::InvalidKey`](crate::Error::InvalidKey).
    pub fn new(inner: S, prefix: &str) -> Result<Self> {
        validate_key(prefix)?;
        Ok(PrefixStorage {
            inner,
            root: format!("{prefix}/"),
        })
    }

    /// The namespace, without its trailing `/`.
    pub fn prefix(&self) -> &str {
        self.root.strip_suffix('/').unwrap_or(&self.root)
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn full_key(&self, key: &str) -> Result<String> {
        // Validate the caller's key first, so an error names the key they gave.
        validate_key(key)?;
        Ok(format!("{}{key}", self.root))
    }
}

impl<S: Storage> Storage for PrefixStorage<S> {
    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        self.inner.put(&self.full_key(key)?, data)
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        self.inner
            .get(&self.full_key(key)?)
            .map_err(|e| self.unprefix(e))
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let keys = self.inner.list(&format!("{}{prefix}", self.root))?;
        Ok(keys
            .into_iter()
            .filter_map(|k| k.strip_prefix(&self.root).map(str::to_owned))
            .collect())
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(&self.full_key(key)?)
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>> {
        self.inner
            .get_range(&self.full_key(key)?, range)
            .map_err(|e| self.unprefix(e))
    }

    fn read_into(&self, key: &str, offset: u64, bufs: &mut [&mut [u8]]) -> Result<()> {
        self.inner
            .read_into(&self.full_key(key)?, offset, bufs)
            .map_err(|e| self.unprefix(e))
    }

    fn read_gap_bytes(&self) -> u64 {
        self.inner.read_gap_bytes()
    }

    fn holds_writer_lock(&self) -> bool {
        self.inner.holds_writer_lock()
    }

    fn put_if_absent(&self, key: &str, data: &[u8]) -> Result<bool> {
        self.inner.put_if_absent(&self.full_key(key)?, data)
    }

    fn put_parts(&self, key: &str, parts: &[&[u8]]) -> Result<()> {
        self.inner.put_parts(&self.full_key(key)?, parts)
    }

    fn delete_many(&self, keys: &[String]) -> Result<()> {
        let full: Vec<String> = keys
            .iter()
            .map(|k| self.full_key(k))
            .collect::<Result<_>>()?;
        self.inner.delete_many(&full)
    }
}

impl<S> PrefixStorage<S> {
    /// Reports "not found" under the key the caller knows.
    fn unprefix(&self, error: crate::Error) -> crate::Error {
        match error {
            crate::Error::NotFound { key } => crate::Error::NotFound {
                key: key
                    .strip_prefix(&self.root)
                    .map_or(key.clone(), str::to_owned),
            },
            other => other,
        }
    }
}
