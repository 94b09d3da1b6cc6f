//! A storage operation as a value: borrowed on the caller's thread or
//! owned for a deadline thread, and what it puts, reads and returns.

use super::OpKind;
use crate::error::{Error, Result};
use crate::storage::{Storage, scatter_into};
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// A storage operation, borrowed ([`BorrowedOp`]) on the caller's thread
/// or owned ([`OwnedOp`]) for a deadline thread. `T` is where a
/// [`Storage::read_into`] puts its bytes, `P` what a
/// [`Storage::put_parts`] writes, `L` the keys of a
/// [`Storage::delete_many`].
#[derive(Clone)]
pub(super) enum Op<K, D, T, P, L> {
    Put(K, D),
    /// [`Storage::put_if_absent`]; a mirror gets a plain put of the bytes
    /// once the active created the object.
    PutIfAbsent(K, D),
    PutParts(K, P),
    Get(K),
    GetRange(K, Range<u64>),
    /// [`Storage::read_into`] from this offset into the target.
    ReadInto(K, u64, T),
    List(K),
    Delete(K),
    /// One batched call per backend; the key `K` is the first of them (or
    /// empty), for records and events.
    DeleteMany(K, L),
}

pub(super) type BorrowedOp<'a> =
    Op<&'a str, &'a [u8], &'a (dyn ReadTarget + 'a), &'a [&'a [u8]], &'a [String]>;
/// A deadline thread may outlive the call, so it cannot borrow the
/// caller's buffers: parts are joined into one buffer (one copy, made once
/// per operation) and written with a plain put.
pub(super) type OwnedOp = Op<String, Arc<[u8]>, u64, Arc<[u8]>, Vec<String>>;

pub(super) enum Output {
    Done,
    Bytes(Vec<u8>),
    Keys(Vec<String>),
    /// What a conditional put answered.
    Created(bool),
}

/// What a [`Op::PutParts`] writes.
pub(super) trait Parts {
    /// Bytes in all.
    fn len(&self) -> u64;
    /// Writes them under `key` on `storage`.
    fn put(&self, storage: &dyn Storage, key: &str) -> Result<()>;
}

/// The caller's parts, passed on unjoined (no deadline).
impl Parts for &[&[u8]] {
    fn len(&self) -> u64 {
        self.iter().map(|p| p.len() as u64).sum()
    }

    fn put(&self, storage: &dyn Storage, key: &str) -> Result<()> {
        storage.put_parts(key, self)
    }
}

/// Parts joined for a deadline thread.
impl Parts for Arc<[u8]> {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }

    fn put(&self, storage: &dyn Storage, key: &str) -> Result<()> {
        storage.put(key, self)
    }
}

/// Where a [`Op::ReadInto`] puts the bytes it reads.
pub(super) trait ReadTarget {
    /// How many bytes it takes.
    fn len(&self) -> u64;
    /// Reads them from `key` at `offset` on `storage`: `Output::Done` when
    /// they are in place, `Output::Bytes` when the caller must copy them
    /// into its buffers.
    fn read(&self, storage: &dyn Storage, key: &str, offset: u64) -> Result<Output>;
}

/// The caller's buffers, read into in place on the caller's thread (an
/// attempt without a deadline). A retried attempt rewrites them whole, so
/// what a failed one left in them does no harm.
pub(super) struct Scatter<'b, 'c> {
    bufs: Mutex<&'b mut [&'c mut [u8]]>,
    len: u64,
}

impl<'b, 'c> Scatter<'b, 'c> {
    pub(super) fn new(bufs: &'b mut [&'c mut [u8]]) -> Self {
        let len = bufs.iter().map(|b| b.len() as u64).sum();
        Scatter {
            bufs: Mutex::new(bufs),
            len,
        }
    }

    fn bufs(&self) -> MutexGuard<'_, &'b mut [&'c mut [u8]]> {
        // Only the caller's thread ever locks it, one attempt at a time.
        self.bufs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Copies `bytes`, read on a deadline thread from `offset` of `key`,
    /// into the buffers.
    pub(super) fn fill(&self, key: &str, offset: u64, bytes: &[u8]) -> Result<()> {
        scatter_into(key, offset, bytes, &mut self.bufs())
    }
}

impl ReadTarget for Scatter<'_, '_> {
    fn len(&self) -> u64 {
        self.len
    }

    fn read(&self, storage: &dyn Storage, key: &str, offset: u64) -> Result<Output> {
        storage.read_into(key, offset, &mut self.bufs())?;
        Ok(Output::Done)
    }
}

impl<T: ReadTarget + ?Sized> ReadTarget for &T {
    fn len(&self) -> u64 {
        (**self).len()
    }

    fn read(&self, storage: &dyn Storage, key: &str, offset: u64) -> Result<Output> {
        (**self).read(storage, key, offset)
    }
}

/// A deadline thread may outlive the call (abandoned at the deadline), so
/// it cannot hold the caller's buffers: it reads into its own, and the
/// caller copies the bytes out (one copy, like the default `read_into`).
impl ReadTarget for u64 {
    fn len(&self) -> u64 {
        *self
    }

    fn read(&self, storage: &dyn Storage, key: &str, offset: u64) -> Result<Output> {
        let len = usize::try_from(*self)
            .map_err(|_| Error::corrupt(key, format!("invalid range {offset}+{self}")))?;
        let mut buf = vec![0; len];
        storage.read_into(key, offset, &mut [buf.as_mut_slice()])?;
        Ok(Output::Bytes(buf))
    }
}

impl<K: AsRef<str>, D: AsRef<[u8]>, T: ReadTarget, P: Parts, L: AsRef<[String]>> Op<K, D, T, P, L> {
    pub(super) fn kind(&self) -> OpKind {
        match self {
            Op::Put(..) | Op::PutIfAbsent(..) | Op::PutParts(..) => OpKind::Put,
            Op::Get(_) => OpKind::Get,
            // A ranged read, whichever way its bytes are delivered.
            Op::GetRange(..) | Op::ReadInto(..) => OpKind::GetRange,
            Op::List(_) => OpKind::List,
            Op::Delete(_) | Op::DeleteMany(..) => OpKind::Delete,
        }
    }

    pub(super) fn key(&self) -> &str {
        match self {
            Op::Put(k, _)
            | Op::PutIfAbsent(k, _)
            | Op::PutParts(k, _)
            | Op::DeleteMany(k, _)
            | Op::Get(k)
            | Op::GetRange(k, _)
            | Op::ReadInto(k, ..)
            | Op::List(k)
            | Op::Delete(k) => k.as_ref(),
        }
    }

    /// Bytes the operation moves, when known in advance.
    pub(super) fn bytes(&self) -> u64 {
        match self {
            Op::Put(_, data) | Op::PutIfAbsent(_, data) => data.as_ref().len() as u64,
            Op::PutParts(_, parts) => parts.len(),
            Op::GetRange(_, range) => range.end.saturating_sub(range.start),
            Op::ReadInto(_, _, target) => target.len(),
            _ => 0,
        }
    }

    pub(super) fn is_write(&self) -> bool {
        matches!(
            self,
            Op::Put(..)
                | Op::PutIfAbsent(..)
                | Op::PutParts(..)
                | Op::Delete(_)
                | Op::DeleteMany(..)
        )
    }

    /// Every key the operation touches.
    pub(super) fn keys(&self) -> Vec<&str> {
        match self {
            Op::DeleteMany(_, keys) => keys.as_ref().iter().map(String::as_str).collect(),
            _ => vec![self.key()],
        }
    }

    pub(super) fn apply(&self, storage: &dyn Storage) -> Result<Output> {
        match self {
            Op::Put(key, data) => storage
                .put(key.as_ref(), data.as_ref())
                .map(|()| Output::Done),
            Op::PutIfAbsent(key, data) => storage
                .put_if_absent(key.as_ref(), data.as_ref())
                .map(Output::Created),
            Op::PutParts(key, parts) => parts.put(storage, key.as_ref()).map(|()| Output::Done),
            Op::Get(key) => storage.get(key.as_ref()).map(Output::Bytes),
            Op::GetRange(key, range) => storage
                .get_range(key.as_ref(), range.clone())
                .map(Output::Bytes),
            Op::ReadInto(key, offset, target) => target.read(storage, key.as_ref(), *offset),
            Op::List(prefix) => storage.list(prefix.as_ref()).map(Output::Keys),
            Op::Delete(key) => storage.delete(key.as_ref()).map(|()| Output::Done),
            Op::DeleteMany(_, keys) => storage.delete_many(keys.as_ref()).map(|()| Output::Done),
        }
    }
}

impl BorrowedOp<'_> {
    pub(super) fn to_owned_op(&self) -> OwnedOp {
        match self {
            Op::Put(k, d) => Op::Put((*k).to_owned(), Arc::from(*d)),
            Op::PutIfAbsent(k, d) => Op::PutIfAbsent((*k).to_owned(), Arc::from(*d)),
            Op::PutParts(k, parts) => Op::PutParts((*k).to_owned(), Arc::from(parts.concat())),
            Op::Get(k) => Op::Get((*k).to_owned()),
            Op::GetRange(k, r) => Op::GetRange((*k).to_owned(), r.clone()),
            Op::ReadInto(k, offset, target) => Op::ReadInto((*k).to_owned(), *offset, target.len()),
            Op::List(k) => Op::List((*k).to_owned()),
            Op::Delete(k) => Op::Delete((*k).to_owned()),
            Op::DeleteMany(k, keys) => Op::DeleteMany((*k).to_owned(), keys.to_vec()),
        }
    }
}
