//! The lock file: how a store takes its directory's lock, exclusive or
//! shared, without following a link planted in its place.

use super::create::{file_options, no_follow};
use super::{LOCK_FILE, display};
use crate::error::{Error, Result};
use std::fs::{self, File, TryLockError};
use std::io::{self, Read, Write};
use std::path::Path;

/// How a store holds its directory's lock file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LockMode {
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
pub(super) fn take_lock(root: &Path, mode: LockMode, private: bool) -> Result<File> {
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
pub(super) fn check_opened_lock_file(path: &Path, file: &File) -> io::Result<()> {
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
pub(super) fn check_opened_lock_file(_path: &Path, _file: &File) -> io::Result<()> {
    Ok(())
}
