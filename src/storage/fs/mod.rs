//! A durable local-filesystem backend.
//!
//! `put` writes a temporary file beside the target, fsyncs it, renames it
//! over the target and fsyncs the directory, so an object is either wholly
//! there or not there after a crash. A lock file keeps a second process (or
//! a second `FsStorage` in this one) from writing the same directory; a
//! read-only handle takes no lock and writes nothing.

use super::{Storage, validate_key};
use crate::error::{Error, Result};
use std::fs::{self, DirBuilder, File, OpenOptions, TryLockError};
use std::io::{self, IoSlice, IoSliceMut, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

const LOCK_FILE: &str = ".lock";
const TEMP_PREFIX: &str = ".tmp-";

/// A [`Storage`] in a directory of the local filesystem.
///
/// Every key component becomes a path component; bytes outside
/// `[A-Za-z0-9_.-]` (and a leading `.`) are written as `%XX`, so any valid
/// key is a safe file name and names starting with `.` stay free for the
/// lock and temporary files.
///
/// ```
/// use ckpt::{FsStorage, Storage};
/// let dir = tempfile::tempdir()?;
/// let store = FsStorage::open(dir.path())?;
/// store.put("packs/p1", b"bytes")?;
/// assert_eq!(store.list("packs/")?, vec!["packs/p1".to_string()]);
/// // A second handle on the same directory is refused while this one lives.
/// assert!(matches!(FsStorage::open(dir.path()), Err(ckpt::Error::Locked { .. })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Only names that are the encoding of a valid key are objects: [`list`]
/// skips any other file (`%41` for `A`, lower-case hex, a name starting
/// with `.`), so whatever deletes what it lists (retention) never touches
/// a file this store could not have written. Nor does the store follow a
/// symbolic link of its own: a `.lock` that is a link is refused, and the
/// sweep of temporary files at open and [`list`] neither enter a linked
/// directory nor remove or return a link.
///
/// [`list`]: Storage::list
///
/// Four ways in:
///
/// * [`FsStorage::open`]: the one writer, holding the directory's
///   exclusive lock;
/// * [`FsStorage::open_private`]: as `open`, creating files `0o600` and
///   directories `0o700`;
/// * [`FsStorage::open_shared`]: cooperating writers (the ranks of a
///   group), each holding a shared lock;
/// * [`FsStorage::open_read_only`]: restore and inspection, taking no
///   lock and writing nothing, so it works beside a live writer, on a
///   read-only mount and on a full disk; its write methods return
///   [`Error::ReadOnly`].
#[derive(Debug)]
pub struct FsStorage {
    root: PathBuf,
    /// Held for the life of the store; the OS releases the lock when the
    /// process dies, so a crash never leaves the store locked. Shared
    /// (not exclusive) for a store opened with [`FsStorage::open_shared`];
    /// `None` for one opened with [`FsStorage::open_read_only`], which
    /// refuses every write.
    lock: Option<File>,
    /// Files created `0o600` and directories `0o700`
    /// ([`FsStorage::open_private`]).
    private: bool,
}

impl FsStorage {
    /// Opens (creating if needed) the store in `dir` and takes its lock.
    ///
    /// Fails with [`Error::Locked`] while another live `FsStorage` holds the
    /// directory, and with [`Error::Storage`] if its `.lock` is a symbolic
    /// link or not a regular file. Temporary files left by a crashed writer
    /// are removed. A store directory (and parents) it creates is made
    /// durable before it returns.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_exclusive(dir.as_ref(), false)
    }

    /// As [`FsStorage::open`], but private to the user running it: the
    /// files it creates (objects and the lock file) get mode `0o600` and
    /// the directories it creates (the store directory and missing
    /// parents included) `0o700`, whatever the umask allows beyond that.
    ///
    /// Files and directories that already exist keep their modes: to make
    /// an existing store private, `chmod -R go-rwx` it once.
    ///
    /// ```
    /// # #[cfg(unix)] {
    /// use ckpt::{FsStorage, Storage};
    /// use std::os::unix::fs::PermissionsExt;
    /// let dir = tempfile::tempdir()?;
    /// let store = FsStorage::open_private(dir.path().join("store"))?;
    /// store.put("packs/p1", b"secret")?;
    /// let mode = std::fs::metadata(dir.path().join("store/packs/p1"))?.permissions().mode();
    /// assert_eq!(mode & 0o077, 0);
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_private(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_exclusive(dir.as_ref(), true)
    }

    fn open_exclusive(root: &Path, private: bool) -> Result<Self> {
        let root = root.to_path_buf();
        create_root(&root, private)?;
        let lock = take_lock(&root, LockMode::Exclusive, private)?;
        let store = FsStorage {
            root,
            lock: Some(lock),
            private,
        };
        store.remove_stale_temps(&store.root)?;
        Ok(store)
    }

    /// Opens (creating if needed) the store in `dir` without taking its
    /// lock, for cooperating processes that share one directory: the
    /// ranks of a [`Group`](crate::Group), each writing only its own keys
    /// and committing together through [`Storage::put_if_absent`] (a
    /// `link(2)`, atomic across processes on a local or POSIX-compliant
    /// shared filesystem).
    ///
    /// Nothing stops two such handles from writing the same key; only use
    /// it where the keys written are disjoint, as a group's are. Temporary
    /// files of crashed writers are not removed (another process's may be
    /// in use); they are hidden from [`list`](Storage::list) and cost only
    /// space. Shared handles hold a shared lock: a directory opened with
    /// [`FsStorage::open`] is refused with [`Error::Locked`], and so is
    /// `open` while shared handles are open.
    pub fn open_shared(dir: impl AsRef<Path>) -> Result<Self> {
        let root = dir.as_ref().to_path_buf();
        create_root(&root, false)?;
        let lock = take_lock(&root, LockMode::Shared, false)?;
        Ok(FsStorage {
            root,
            lock: Some(lock),
            private: false,
        })
    }

    /// Opens the existing store in `dir` for reading only: for restore and
    /// inspection beside (or without) the writer.
    ///
    /// Takes no lock, so it works while another process (or another
    /// `FsStorage` in this one) holds the directory with
    /// [`FsStorage::open`] or [`FsStorage::open_shared`]; creates nothing,
    /// removes nothing (not even a crashed writer's temporary files) and
    /// writes nothing, so it also works on a read-only mount or a full
    /// disk. Every write method ([`put`](Storage::put),
    /// [`put_parts`](Storage::put_parts),
    /// [`put_if_absent`](Storage::put_if_absent),
    /// [`delete`](Storage::delete), [`delete_many`](Storage::delete_many))
    /// returns [`Error::ReadOnly`].
    ///
    /// A reader beside a live writer sees each object whole or not at all
    /// (puts are renames), but may list an object that is deleted before
    /// it reads it ([`Error::NotFound`]).
    ///
    /// Fails with [`Error::Storage`] (kind `NotFound`) if `dir` does not
    /// exist, and with kind `NotADirectory` if it is not a directory.
    ///
    /// ```
    /// use ckpt::{FsStorage, Storage};
    /// let dir = tempfile::tempdir()?;
    /// let writer = FsStorage::open(dir.path())?; // holds the exclusive lock
    /// writer.put("packs/p1", b"bytes")?;
    ///
    /// let reader = FsStorage::open_read_only(dir.path())?;
    /// assert_eq!(reader.get("packs/p1")?, b"bytes");
    /// assert_eq!(reader.list("packs/")?, vec!["packs/p1".to_string()]);
    /// assert!(matches!(reader.put("x", b"y"), Err(ckpt::Error::ReadOnly { .. })));
    /// // The writer goes on writing meanwhile.
    /// writer.put("packs/p2", b"more")?;
    /// assert_eq!(reader.get("packs/p2")?, b"more");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<Self> {
        let root = dir.as_ref().to_path_buf();
        let shown = display(&root);
        let refused = |kind: io::ErrorKind, why: &str| {
            let message = format!(
                "{shown} {why}; open_read_only opens an existing store and creates nothing: check the path, or create the store with FsStorage::open"
            );
            Error::storage("open", &shown, io::Error::new(kind, message))
        };
        match fs::metadata(&root) {
            Ok(metadata) if metadata.is_dir() => Ok(FsStorage {
                root,
                lock: None,
                private: false,
            }),
            Ok(_) => Err(refused(io::ErrorKind::NotADirectory, "is not a directory")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(refused(io::ErrorKind::NotFound, "does not exist"))
            }
            Err(e) => Err(Error::storage("open", &shown, e)),
        }
    }

    /// True for a store opened with [`FsStorage::open_read_only`], whose
    /// write methods return [`Error::ReadOnly`].
    pub fn is_read_only(&self) -> bool {
        self.lock.is_none()
    }

    /// [`Error::ReadOnly`] for a write `op` of `key` on a read-only store.
    fn check_writable(&self, op: &'static str, key: &str) -> Result<()> {
        if self.is_read_only() {
            return Err(Error::ReadOnly {
                op,
                key: key.to_owned(),
            });
        }
        Ok(())
    }

    /// Opens `key` positioned at `offset`, after checking that the object
    /// holds `offset + len` bytes ([`Error::Corrupt`] if not).
    fn open_at(&self, key: &str, offset: u64, len: u64) -> Result<File> {
        let path = self.path_of(key)?;
        let end = offset
            .checked_add(len)
            .ok_or_else(|| Error::corrupt(key, format!("invalid range {offset}+{len}")))?;
        let mut file = File::open(&path).map_err(|e| self.not_found_or(e, "get", key))?;
        let metadata = file.metadata().map_err(|e| Error::storage("get", key, e))?;
        if metadata.is_dir() {
            let e = io::Error::from(io::ErrorKind::IsADirectory);
            return Err(self.not_found_or(e, "get", key));
        }
        let size = metadata.len();
        if end > size {
            return Err(Error::corrupt(
                key,
                format!("range {offset}..{end} is outside the object of {size} bytes"),
            ));
        }
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| Error::storage("get", key, e))?;
        Ok(file)
    }

    /// The directory this store lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, key: &str) -> Result<PathBuf> {
        validate_key(key)?;
        let mut path = self.root.clone();
        for component in key.split('/') {
            path.push(encode_component(component));
        }
        Ok(path)
    }

    /// `NotFound` for a missing object, but a storage failure when the whole
    /// store directory has vanished: an empty answer from a store that is
    /// gone must not pass for "this object does not exist".
    fn not_found_or(&self, e: io::Error, op: &'static str, key: &str) -> Error {
        // A directory, or a path through a file, is not an object either.
        let missing = matches!(
            e.kind(),
            io::ErrorKind::NotFound | io::ErrorKind::IsADirectory | io::ErrorKind::NotADirectory
        );
        if !missing {
            Error::storage(op, key, e)
        } else if self.root.is_dir() {
            Error::NotFound {
                key: key.to_owned(),
            }
        } else {
            self.vanished(op, key)
        }
    }

    fn vanished(&self, op: &'static str, key: &str) -> Error {
        let message = format!(
            "the store directory {} no longer exists",
            self.root.display()
        );
        Error::storage(op, key, io::Error::new(io::ErrorKind::NotFound, message))
    }

    /// Removes the temporary files that crashed writers left, in `dir` and
    /// below. Only regular files are removed and only real directories
    /// entered (`file_type` does not follow links): a symbolic link in the
    /// store, to a file or a directory anywhere, is never followed.
    fn remove_stale_temps(&self, dir: &Path) -> Result<()> {
        let entries = fs::read_dir(dir).map_err(|e| Error::storage("open", display(dir), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::storage("open", display(dir), e))?;
            let path = entry.path();
            let file_type = entry
                .file_type()
                .map_err(|e| Error::storage("open", display(&path), e))?;
            if file_type.is_dir() {
                self.remove_stale_temps(&path)?;
            } else if file_type.is_file()
                && entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX)
            {
                fs::remove_file(&path).map_err(|e| Error::storage("open", display(&path), e))?;
            }
        }
        Ok(())
    }

    /// Creates every missing directory from the root down to `dir`, making
    /// each new entry durable in its parent.
    fn ensure_dir(&self, dir: &Path, key: &str) -> Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        if let Some(parent) = dir.parent() {
            if parent != self.root {
                self.ensure_dir(parent, key)?;
            }
            match dir_builder(self.private).create(dir) {
                Ok(()) => sync_dir(parent).map_err(|e| Error::storage("put", key, e))?,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::storage("put", key, e)),
            }
        }
        Ok(())
    }

    /// Whether `dir` (the root or below it) is reached through real
    /// directories only, no symbolic link on the way; `false` where it is
    /// missing.
    fn is_plain_dir_path(&self, dir: &Path) -> io::Result<bool> {
        let Ok(below) = dir.strip_prefix(&self.root) else {
            return Ok(false);
        };
        let mut path = self.root.clone();
        for component in below.components() {
            path.push(component);
            match fs::symlink_metadata(&path) {
                Ok(metadata) if metadata.is_dir() => {}
                Ok(_) => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    fn collect_keys(&self, dir: &Path, prefix: &str, out: &mut Vec<String>) -> io::Result<()> {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let Some(decoded) = name.to_str().and_then(canonical_component) else {
                continue; // not written by us
            };
            let key = if prefix.is_empty() {
                decoded
            } else {
                format!("{prefix}/{decoded}")
            };
            // Another process sharing the directory may delete the entry
            // between readdir and this (l)stat: then it is simply gone.
            let file_type = match entry.file_type() {
                Ok(file_type) => file_type,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            // A symbolic link is neither entered nor listed: `put` never
            // makes one, and what is listed may be deleted (retention).
            if file_type.is_dir() {
                self.collect_keys(&entry.path(), &key, out)?;
            } else if file_type.is_file() {
                out.push(key);
            }
        }
        Ok(())
    }
}

impl Storage for FsStorage {
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

/// How a store holds its directory's lock file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LockMode {
    /// One writer: [`FsStorage::open`].
    Exclusive,
    /// Cooperating processes: [`FsStorage::open_shared`]; excludes (and is
    /// excluded by) an exclusive holder.
    Shared,
}

/// Takes `root`'s lock, or [`Error::Locked`] naming the holder while a
/// conflicting lock is held. An exclusive holder writes its pid into the
/// file for the next one's error message.
///
/// The lock file is never followed through a symbolic link and never
/// truncated on open (only cleared once held): a link planted in its place
/// is refused rather than having whatever it points at overwritten.
fn take_lock(root: &Path, mode: LockMode, private: bool) -> Result<File> {
    let path = root.join(LOCK_FILE);
    let shown = display(root);
    let fail = |e: io::Error| Error::storage("open", &shown, e);
    match fs::symlink_metadata(&path) {
        Ok(found) => check_lock_file_type(&path, &found).map_err(fail)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(e)),
    }
    let mut options = file_options(private);
    options.read(true).write(true).create(true).truncate(false);
    no_follow(&mut options);
    let mut file = options.open(&path).map_err(fail)?;
    check_opened_lock_file(&path, &file).map_err(fail)?;
    let taken = match mode {
        LockMode::Exclusive => file.try_lock(),
        LockMode::Shared => file.try_lock_shared(),
    };
    match taken {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => "holder unknown".to_owned(),
                h => h.to_owned(),
            };
            return Err(Error::Locked {
                path: shown,
                holder,
            });
        }
        Err(TryLockError::Error(e)) => return Err(Error::storage("open", &shown, e)),
    }
    if mode == LockMode::Exclusive {
        file.set_len(0)
            .and_then(|()| write!(file, "pid {}", std::process::id()))
            .map_err(|e| Error::storage("open", &shown, e))?;
    }
    Ok(file)
}

/// Refuses a lock file that is a symbolic link or not a regular file.
fn check_lock_file_type(path: &Path, found: &fs::Metadata) -> io::Result<()> {
    let why = if found.file_type().is_symlink() {
        "is a symbolic link; ckpt never follows a link for its lock file (writing the holder into it would overwrite whatever the link points at)"
    } else if !found.is_file() {
        "is not a regular file"
    } else {
        return Ok(());
    };
    let message = format!(
        "the lock file {} {why}: remove it and open the store again",
        path.display()
    );
    Err(io::Error::new(io::ErrorKind::InvalidInput, message))
}

/// Checks that `file`, just opened at `path`, is the regular file that is
/// at `path` now (same device and inode), not one reached through a link
/// swapped in after the first check.
#[cfg(unix)]
fn check_opened_lock_file(path: &Path, file: &File) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let opened = file.metadata()?;
    let there = fs::symlink_metadata(path)?;
    check_lock_file_type(path, &there)?;
    if (opened.dev(), opened.ino()) != (there.dev(), there.ino()) {
        let message = format!(
            "the lock file {} changed while it was being opened: open the store again",
            path.display()
        );
        return Err(io::Error::other(message));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_opened_lock_file(_path: &Path, _file: &File) -> io::Result<()> {
    Ok(())
}

/// `O_NOFOLLOW` where its value is known (it differs between
/// architectures); elsewhere [`check_opened_lock_file`] alone refuses a
/// lock file reached through a link.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
const O_NOFOLLOW: i32 = 0o400_000;
#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
const O_NOFOLLOW: i32 = 0o100_000;
#[cfg(all(
    unix,
    not(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))
))]
const O_NOFOLLOW: i32 = 0;

#[cfg(unix)]
fn no_follow(options: &mut OpenOptions) {
    use std::os::unix::fs::OpenOptionsExt;
    options.custom_flags(O_NOFOLLOW);
}

#[cfg(not(unix))]
fn no_follow(_options: &mut OpenOptions) {}

/// Options for creating a file: mode `0o600` for a private store.
fn file_options(private: bool) -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    options
}

/// A builder of directories: mode `0o700` for a private store.
fn dir_builder(private: bool) -> DirBuilder {
    let mut builder = DirBuilder::new();
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    #[cfg(not(unix))]
    let _ = private;
    builder
}

/// Creates the store directory `root` and its missing parents, making each
/// new directory durable in its parent (and the new root itself), so a
/// store created just before a crash is still there after it.
fn create_root(root: &Path, private: bool) -> Result<()> {
    let shown = display(root);
    let fail = |e: io::Error| Error::storage("open", &shown, e);
    // The missing directories, innermost first.
    let mut missing = Vec::new();
    let mut dir = root;
    loop {
        match fs::metadata(dir) {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::NotFound => missing.push(dir),
            Err(e) => return Err(fail(e)),
        }
        match dir.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => dir = parent,
            _ => break,
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    for &dir in missing.iter().rev() {
        match dir_builder(private).create(dir) {
            Ok(()) => {}
            // Created meanwhile by another opener: sync it all the same.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {}
            Err(e) => return Err(fail(e)),
        }
        let parent = match dir.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        sync_dir(parent).map_err(fail)?;
    }
    sync_dir(root).map_err(fail)
}

fn write_durably(path: &Path, parts: &[&[u8]], private: bool) -> io::Result<()> {
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

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

fn is_plain(byte: u8, first: bool) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' || (byte == b'.' && !first)
}

fn encode_component(component: &str) -> String {
    let mut out = String::with_capacity(component.len());
    for (i, byte) in component.bytes().enumerate() {
        if is_plain(byte, i == 0) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The key component that `name` is the encoding of, if `put` could have
/// written it: decoding and encoding again give `name` back (so `%41` for
/// `A`, lower-case hex and raw non-ASCII bytes are not ours, and no two
/// names list as one key), and the component is a valid one (not `.`,
/// `..`, nor holding `/` or NUL). A leading `.` (the lock, temporary
/// files) is never an encoding.
fn canonical_component(name: &str) -> Option<String> {
    let decoded = decode_component(name)?;
    let valid = !matches!(decoded.as_str(), "" | "." | "..")
        && !decoded.contains(['/', '\0'])
        && encode_component(&decoded) == name;
    valid.then_some(decoded)
}

fn decode_component(name: &str) -> Option<String> {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if byte == b'%' {
            let hex = name.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(byte);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_encoding_round_trips_awkward_names() {
        for name in ["plain", ".hidden", "a b", "ü%/x", "..x", "-", "100%"] {
            let encoded = encode_component(name);
            assert!(!encoded.starts_with('.'), "{encoded}");
            assert!(!encoded.contains('/'), "{encoded}");
            assert_eq!(decode_component(&encoded).as_deref(), Some(name));
            // A '/' encodes, but a component never holds one.
            let valid = (!name.contains('/')).then_some(name);
            assert_eq!(canonical_component(&encoded).as_deref(), valid);
        }
    }

    #[test]
    fn only_canonical_encodings_of_valid_components_decode() {
        for name in [
            "%41",
            "a%2fb",
            "%2e",
            "%2E",
            "%2E%2E",
            "x%2Fy",
            "%00",
            "%zz",
            "%4",
            ".lock",
            ".tmp-1",
            "caf\u{e9}",
            "",
        ] {
            assert_eq!(canonical_component(name), None, "{name}");
        }
        assert_eq!(canonical_component("a%2Fb"), None);
        assert_eq!(canonical_component("%2Ehidden").as_deref(), Some(".hidden"));
        assert_eq!(canonical_component("a.b").as_deref(), Some("a.b"));
    }
}
