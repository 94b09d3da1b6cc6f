//! Reading and writing objects: the [`Storage`] impl, and the vectored,
//! durable file I/O it rests on.

use super::create::file_options;
use super::{FsStorage, TEMP_PREFIX};
use crate::error::{Error, Result};
use crate::storage::Storage;
use std::fs::{self, File};
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::ops::Range;
use std::path::Path;

impl Storage for FsStorage {
    fn holds_writer_lock(&self) -> bool {
        self.exclusive
    }

    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        self.check_writable("put", key)?;
        self.put_parts(key, &[data])
    }

    /// Writes the parts one after another into a temporary file (gathered
    /// into `writev` calls, so nothing is copied), fsyncs it, renames it
    /// over `key` and fsyncs the directory.
    fn put_parts(&self, key: &str, parts: &[&[u8]]) -> Result<()> {
        self.check_writable("put_parts", key)?;
        let path = self.path_of(key)?;
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        self.ensure_dir(&dir, key)?;
        let temp = dir.join(format!("{TEMP_PREFIX}{:016x}", rand::random::<u64>()));
        let written =
            write_durably(&temp, parts, self.private).and_then(|()| fs::rename(&temp, &path));
        if let Err(e) = written {
            let _ = fs::remove_file(&temp);
            return Err(Error::storage("put", key, e));
        }
        sync_dir(&dir).map_err(|e| Error::storage("put", key, e))
    }

    fn put_if_absent(&self, key: &str, data: &[u8]) -> Result<bool> {
        self.check_writable("put_if_absent", key)?;
        let path = self.path_of(key)?;
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        self.ensure_dir(&dir, key)?;
        let temp = dir.join(format!("{TEMP_PREFIX}{:016x}", rand::random::<u64>()));
        // link(2) fails if the target exists, atomically: the durable temp
        // file becomes the object only if nobody else's did first.
        let linked =
            write_durably(&temp, &[data], self.private).and_then(|()| fs::hard_link(&temp, &path));
        let _ = fs::remove_file(&temp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(Error::storage("put", key, e)),
        }
        sync_dir(&dir).map_err(|e| Error::storage("put", key, e))?;
        Ok(true)
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        let path = self.path_of(key)?;
        fs::read(&path).map_err(|e| self.not_found_or(e, "get", key))
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        // Walk only the directory that the prefix's complete components name.
        let (dir_part, start) = match prefix.rfind('/') {
            Some(i) => (prefix.get(..i).unwrap_or(""), self.path_of(&prefix[..i])),
            None => ("", Ok(self.root.clone())),
        };
        let Ok(start) = start else {
            return Ok(Vec::new()); // no valid key can begin with this prefix
        };
        if !self.root.is_dir() {
            return Err(self.vanished("list", prefix));
        }
        let plain = self
            .is_plain_dir_path(&start)
            .map_err(|e| Error::storage("list", prefix, e))?;
        if !plain {
            return Ok(Vec::new()); // missing, or through a link: nothing of ours
        }
        let mut keys = Vec::new();
        self.collect_keys(&start, dir_part, &mut keys)
            .map_err(|e| Error::storage("list", prefix, e))?;
        keys.retain(|k| k.starts_with(prefix));
        keys.sort();
        Ok(keys)
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.check_writable("delete", key)?;
        let path = self.path_of(key)?;
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::storage("delete", key, e)),
        }
        let dir = path.parent().unwrap_or(&self.root);
        sync_dir(dir).map_err(|e| Error::storage("delete", key, e))
    }

    /// Removes the files, then fsyncs each directory they were in once.
    fn delete_many(&self, keys: &[String]) -> Result<()> {
        self.check_writable("delete_many", keys.first().map_or("", String::as_str))?;
        let mut dirs = std::collections::BTreeMap::new();
        for key in keys {
            let path = self.path_of(key)?;
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::storage("delete", key, e)),
            }
            let dir = path.parent().unwrap_or(&self.root).to_path_buf();
            dirs.entry(dir).or_insert(key);
        }
        for (dir, key) in dirs {
            sync_dir(&dir).map_err(|e| Error::storage("delete", key, e))?;
        }
        Ok(())
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>> {
        let invalid = || Error::corrupt(key, format!("invalid range {range:?}"));
        let len = range.end.checked_sub(range.start).ok_or_else(invalid)?;
        let buf_len = usize::try_from(len).map_err(|_| invalid())?;
        // Checks the size before allocating: a bad range must not allocate.
        let mut file = self.open_at(key, range.start, len)?;
        let mut buf = vec![0; buf_len];
        read_all_vectored(&mut file, &mut [buf.as_mut_slice()])
            .map_err(|e| read_error(key, range.start, len, e))?;
        Ok(buf)
    }

    /// Checks the object's size covers the range, then reads it straight
    /// into `bufs` with `readv` calls (no intermediate copy).
    fn read_into(&self, key: &str, offset: u64, bufs: &mut [&mut [u8]]) -> Result<()> {
        let total: u64 = bufs.iter().map(|b| b.len() as u64).sum();
        let mut file = self.open_at(key, offset, total)?;
        read_all_vectored(&mut file, bufs).map_err(|e| read_error(key, offset, total, e))
    }
}

/// The error of a read of `len` bytes from `offset` of `key`: an early end
/// of file (the object shrank after its size was checked) is damage.
fn read_error(key: &str, offset: u64, len: u64, e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        Error::corrupt(
            key,
            format!(
                "the object ended before {}, the end of the range read",
                offset.saturating_add(len)
            ),
        )
    } else {
        Error::storage("get", key, e)
    }
}

/// Fills every buffer of `bufs` completely from `file`, in order, with as
/// few `readv` calls as the kernel allows (std caps each at `IOV_MAX`).
/// An early end of file is `UnexpectedEof`.
fn read_all_vectored(file: &mut File, bufs: &mut [&mut [u8]]) -> io::Result<()> {
    let mut slices: Vec<IoSliceMut<'_>> = bufs
        .iter_mut()
        .filter(|b| !b.is_empty())
        .map(|b| IoSliceMut::new(b))
        .collect();
    let mut rest = slices.as_mut_slice();
    while !rest.is_empty() {
        match file.read_vectored(rest) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => IoSliceMut::advance_slices(&mut rest, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

pub(super) fn write_durably(path: &Path, parts: &[&[u8]], private: bool) -> io::Result<()> {
    let mut file = file_options(private)
        .write(true)
        .create_new(true)
        .open(path)?;
    write_all_vectored(&mut file, parts)?;
    file.sync_all()
}

/// Most buffers one `writev` takes (Linux's `IOV_MAX`).
const MAX_IO_SLICES: usize = 1024;

/// Writes every byte of `parts`, in order, with as few `writev` calls as
/// the kernel allows.
fn write_all_vectored(file: &mut File, parts: &[&[u8]]) -> io::Result<()> {
    let mut rest: Vec<IoSlice<'_>> = parts
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| IoSlice::new(p))
        .collect();
    let mut slices = rest.as_mut_slice();
    while !slices.is_empty() {
        let batch = slices.len().min(MAX_IO_SLICES);
        let written = match file.write_vectored(slices.get(..batch).unwrap_or_default()) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        IoSlice::advance_slices(&mut slices, written);
    }
    Ok(())
}

pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
