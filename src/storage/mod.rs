//! Where checkpoints live: a small object-store-shaped trait and its backends.
//!
//! Storage knows nothing of schemes, manifests or state: it stores opaque
//! objects under `/`-separated keys. Every backend must make [`Storage::put`]
//! atomic (a reader sees the old object, the new one, or nothing — never a
//! torn one) and durable when it returns.

mod failover;
#[cfg(feature = "test-suite")]
mod fault;
mod fs;
mod lease;
mod mem;
#[cfg(feature = "object-store")]
pub mod object;
mod pool;
mod prefix;
#[cfg(feature = "test-suite")]
pub mod suite;

pub use failover::{
    DEFAULT_ADMIT_WAIT, DEFAULT_DEADLINE, DEFAULT_DEADLINE_PER_MIB, FailoverBuilder, FailoverEvent,
    FailoverMode, FailoverStats, FailoverStorage, InFlightOp, OpKind, OpState, Resync,
    is_unavailable,
};
// Fault injection (a `Storage` wrapper that fails, hangs, slows down or
// tears operations on command), for tests: only with `test-suite`.
#[cfg(feature = "test-suite")]
pub use fault::{DEFAULT_HANG_LIMIT, Fault, FaultControl, FaultyStorage};
pub use fs::FsStorage;
pub(crate) use lease::hold as hold_writer_lease;
pub use lease::{DEFAULT_LEASE_TTL, MIN_LEASE_TTL};
pub use mem::MemStorage;
#[cfg(feature = "object-store")]
pub use object::{ObjectStorage, ObjectStorageBuilder};
pub use prefix::PrefixStorage;

use crate::error::{Error, Result};
use std::fmt::Debug;
use std::ops::Range;

/// An object store: the only thing `ckpt` asks of a storage backend.
///
/// Keys are non-empty, `/`-separated, relative paths (`packs/1f3a…`); a
/// component is never empty, `.` or `..`. Use [`validate_key`] to enforce
/// that in a new backend.
///
/// Implementations must be safe to share between threads.
pub trait Storage: Send + Sync + Debug {
    /// Stores `data` under `key`, replacing any previous object atomically.
    /// When this returns `Ok`, the object survives a crash of the process
    /// and (for durable backends) of the machine.
    fn put(&self, key: &str, data: &[u8]) -> Result<()>;

    /// Reads the whole object, or [`Error::NotFound`].
    fn get(&self, key: &str) -> Result<Vec<u8>>;

    /// Lists every key that starts with `prefix`, in ascending order.
    fn list(&self, prefix: &str) -> Result<Vec<String>>;

    /// Removes the object. Removing a missing object is not an error, so
    /// deletes can be retried.
    fn delete(&self, key: &str) -> Result<()>;

    /// Reads `range` of the object. Backends that can seek should override
    /// this; the default reads the whole object.
    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>> {
        let whole = self.get(key)?;
        slice_range(key, &whole, range).map(<[u8]>::to_vec)
    }

    /// Reads the bytes of the object from `offset` on into `bufs`, in
    /// order, filling each completely: the object's bytes
    /// `offset..offset + total` where `total` is the buffers' summed length.
    ///
    /// Restore reads packs this way, so that page bytes land in the
    /// restored state's own memory. The default reads the range with
    /// [`get_range`](Storage::get_range) and copies it out (one copy);
    /// backends that can scatter a read (`preadv`) should override it, and
    /// wrappers should forward it. An object shorter than the range is
    /// [`Error::Corrupt`] (or whatever `get_range` says of it).
    fn read_into(&self, key: &str, offset: u64, bufs: &mut [&mut [u8]]) -> Result<()> {
        let total: u64 = bufs.iter().map(|b| b.len() as u64).sum();
        let end = offset
            .checked_add(total)
            .ok_or_else(|| Error::corrupt(key, format!("invalid range {offset}+{total}")))?;
        let bytes = self.get_range(key, offset..end)?;
        scatter_into(key, offset, &bytes, bufs)
    }

    /// How many unwanted bytes between two wanted ranges of one object a
    /// reader should read through rather than skip with a second request.
    ///
    /// Restore joins the frames it needs into as few
    /// [`read_into`](Storage::read_into) calls as this allows. A local
    /// filesystem skips cheaply (a new read costs microseconds: the
    /// default, 64 KiB); a backend whose every request costs a round trip
    /// should return about the bytes it transfers in one (an object
    /// store: megabytes). Wrappers should forward it.
    fn read_gap_bytes(&self) -> u64 {
        DEFAULT_READ_GAP_BYTES
    }

    /// Removes every object in `keys`, like [`delete`](Storage::delete) on
    /// each (missing objects are not an error). When it returns `Ok`, every
    /// removal is durable; in between they may become durable in any
    /// order, so callers that need an order call it once per step.
    ///
    /// Retention removes a checkpoint's packs this way. The default deletes
    /// one by one; a backend that pays a sync per delete (a directory
    /// fsync) should override it to pay one per batch.
    fn delete_many(&self, keys: &[String]) -> Result<()> {
        keys.iter().try_for_each(|key| self.delete(key))
    }

    /// Stores the concatenation of `parts` under `key`, exactly like
    /// [`put`](Storage::put) (atomic, durable on return).
    ///
    /// Packs are written this way so that chunks go to storage straight
    /// from the state's memory. The default joins the parts (one copy) and
    /// calls `put`; backends that can write a sequence of buffers should
    /// override it, and wrappers should forward it.
    fn put_parts(&self, key: &str, parts: &[&[u8]]) -> Result<()> {
        self.put(key, &parts.concat())
    }

    /// True when this handle already keeps every other writer out of the
    /// whole store, as an exclusive [`FsStorage`] does with its lock file.
    ///
    /// A [`Checkpointer`](crate::Checkpointer) on any other store takes
    /// the store's *writer lease* (objects under `lease/`, created with
    /// [`put_if_absent`](Storage::put_if_absent) and renewed while it
    /// lives), so that a second writer is refused and a paused one that
    /// lost the lease writes nothing more. The default is `false`, which
    /// is always safe; wrappers should forward it.
    fn holds_writer_lock(&self) -> bool {
        false
    }

    /// Stores `data` under `key` only if no object is there yet, atomically:
    /// of any number of concurrent callers (threads, processes, machines
    /// sharing the store) exactly one gets `Ok(true)`; the others get
    /// `Ok(false)` and the object keeps the winner's bytes. Durable on
    /// return, like [`put`](Storage::put).
    ///
    /// This is the one primitive coordinated checkpoints build on (a step
    /// is globally committed by whoever creates its global manifest), so a
    /// backend must implement it with a guarantee of the store (an
    /// exclusive link, a conditional `If-None-Match: *` request, a lock
    /// the whole store honours), never as a read followed by a write. A
    /// retried request may find the object its own earlier attempt created
    /// and answer `Ok(false)`; callers write the same bytes on every
    /// attempt, so that answer is harmless.
    ///
    /// The default returns [`Error::Unsupported`].
    fn put_if_absent(&self, key: &str, data: &[u8]) -> Result<bool> {
        let _ = (key, data);
        Err(Error::Unsupported {
            // The type, never the backend's Debug: that may hold credentials.
            backend: short_type_name(std::any::type_name::<Self>()),
            operation: "conditional put (put_if_absent)",
            hint: "use MemStorage, FsStorage or ObjectStorage, or implement put_if_absent",
        })
    }
}

/// `type_name` without module paths (`FaultyStorage<MemStorage>`): short
/// enough for a message, never cut mid-word, and unchanged when a type
/// moves between modules.
pub(crate) fn short_type_name(full: &str) -> String {
    let mut out = String::with_capacity(full.len());
    let mut path = String::new();
    for c in full.chars().chain(std::iter::once(' ')) {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            path.push(c);
        } else {
            out.push_str(path.rsplit("::").next().unwrap_or_default());
            path.clear();
            out.push(c);
        }
    }
    out.pop(); // the space chained on above
    out
}

/// The default of [`Storage::read_gap_bytes`]: one 64 KiB page.
pub const DEFAULT_READ_GAP_BYTES: u64 = 64 << 10;

/// Returns `data[range]`, or [`Error::Corrupt`] naming `key` when the range
/// falls outside the object (a reference that outlived or misreads it).
pub fn slice_range<'a>(key: &str, data: &'a [u8], range: Range<u64>) -> Result<&'a [u8]> {
    let start = usize::try_from(range.start).ok();
    let end = usize::try_from(range.end).ok();
    match (start, end) {
        (Some(s), Some(e)) if s <= e => data.get(s..e).ok_or_else(|| {
            Error::corrupt(
                key,
                format!(
                    "range {s}..{e} is outside the object of {} bytes",
                    data.len()
                ),
            )
        }),
        _ => Err(Error::corrupt(
            key,
            format!("invalid range {}..{}", range.start, range.end),
        )),
    }
}

/// Copies `bytes`, read from `offset` of `key`, into `bufs` in order,
/// filling each; [`Error::Corrupt`] unless `bytes` is exactly as long as
/// the buffers together (a backend that returned a short read).
pub(crate) fn scatter_into(
    key: &str,
    offset: u64,
    bytes: &[u8],
    bufs: &mut [&mut [u8]],
) -> Result<()> {
    let total: u64 = bufs.iter().map(|b| b.len() as u64).sum();
    if bytes.len() as u64 != total {
        return Err(Error::corrupt(
            key,
            format!(
                "read {} bytes of the range {offset}..{}: the object is shorter",
                bytes.len(),
                offset.saturating_add(total)
            ),
        ));
    }
    let mut rest = bytes;
    for buf in bufs.iter_mut() {
        // Cannot panic: the buffers' lengths sum to `bytes.len()`.
        let (head, tail) = rest.split_at(buf.len());
        buf.copy_from_slice(head);
        rest = tail;
    }
    Ok(())
}

/// Checks that `key` is a well-formed storage key (see [`Storage`]).
pub fn validate_key(key: &str) -> Result<()> {
    let reason = if key.is_empty() {
        Some("a key must not be empty")
    } else if key.split('/').any(str::is_empty) {
        Some("a key must not start or end with '/' or contain '//'")
    } else if key.split('/').any(|c| c == "." || c == "..") {
        Some("a key component must not be '.' or '..'")
    } else if key.contains('\0') {
        Some("a key must not contain NUL")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidKey {
            key: key.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

impl<S: Storage + ?Sized> Storage for std::sync::Arc<S> {
    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        (**self).put(key, data)
    }
    fn get(&self, key: &str) -> Result<Vec<u8>> {
        (**self).get(key)
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        (**self).list(prefix)
    }
    fn delete(&self, key: &str) -> Result<()> {
        (**self).delete(key)
    }
    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>> {
        (**self).get_range(key, range)
    }
    fn put_if_absent(&self, key: &str, data: &[u8]) -> Result<bool> {
        (**self).put_if_absent(key, data)
    }
    fn put_parts(&self, key: &str, parts: &[&[u8]]) -> Result<()> {
        (**self).put_parts(key, parts)
    }
    fn delete_many(&self, keys: &[String]) -> Result<()> {
        (**self).delete_many(keys)
    }
    fn read_into(&self, key: &str, offset: u64, bufs: &mut [&mut [u8]]) -> Result<()> {
        (**self).read_into(key, offset, bufs)
    }
    fn read_gap_bytes(&self) -> u64 {
        (**self).read_gap_bytes()
    }
    fn holds_writer_lock(&self) -> bool {
        (**self).holds_writer_lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Plain;

    impl Storage for Plain {
        fn put(&self, _: &str, _: &[u8]) -> Result<()> {
            Ok(())
        }
        fn get(&self, key: &str) -> Result<Vec<u8>> {
            Err(Error::NotFound {
                key: key.to_owned(),
            })
        }
        fn list(&self, _: &str) -> Result<Vec<String>> {
            Ok(Vec::new())
        }
        fn delete(&self, _: &str) -> Result<()> {
            Ok(())
        }
    }

    #[test]
    fn unsupported_names_the_backend_by_its_short_type_name() {
        assert_eq!(
            short_type_name(
                "ckpt::storage::fault::FaultyStorage<alloc::sync::Arc<dyn ckpt::Storage>>"
            ),
            "FaultyStorage<Arc<dyn Storage>>"
        );
        match Plain.put_if_absent("k", b"v") {
            Err(Error::Unsupported { backend, .. }) => assert_eq!(backend, "Plain"),
            other => panic!("{other:?}"),
        }
    }
}
