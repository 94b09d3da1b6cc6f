//! A durable local-filesystem backend.
//!
//! `put` writes a temporary file beside the target, fsyncs it, renames it
//! over the target and fsyncs the directory, so an object is either wholly
//! there or not there after a crash. A lock file keeps a second process (or
//! a second `FsStorage` in this one) from writing the same directory; a
//! read-only handle takes no lock and writes nothing.
//!
//! This file holds the store handle, its opening modes and the mapping of
//! a key to its path; `files` the reads and writes (the [`Storage`] impl),
//! `tree` the directories under the root (creation, the sweep of stale
//! temporary files, the listing walk), `lock` the lock file, `create` how
//! files and directories are created, `names` the encoding of key
//! components as file names.

mod create;
mod files;
mod lock;
mod names;
mod tree;

use create::create_root;
use lock::{LockMode, take_lock};
use names::encode_component;

#[cfg(doc)]
use super::Storage;
use super::validate_key;
use crate::error::{Error, Result};
use std::fs::{self, File};
use std::io::{self, Seek, SeekFrom};
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
    /// True when `lock` is held exclusively ([`FsStorage::open`]): no
    /// other writer can open the store, so a checkpointer needs no lease.
    exclusive: bool,
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
            exclusive: true,
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
            exclusive: false,
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
                exclusive: false,
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
}

fn display(path: &Path) -> String {
    path.display().to_string()
}
