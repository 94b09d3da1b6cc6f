//! Creating files and directories: private modes, not following links,
//! and a durable creation of the store's root.

use super::display;
use super::files::sync_dir;
#[cfg(doc)]
use super::lock::check_opened_lock_file;
use crate::error::{Error, Result};
use std::fs::{self, DirBuilder, OpenOptions};
use std::io;
use std::path::Path;

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
pub(super) fn no_follow(options: &mut OpenOptions) {
    use std::os::unix::fs::OpenOptionsExt;
    options.custom_flags(O_NOFOLLOW);
}

#[cfg(not(unix))]
pub(super) fn no_follow(_options: &mut OpenOptions) {}

/// Options for creating a file: mode `0o600` for a private store.
pub(super) fn file_options(private: bool) -> OpenOptions {
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
pub(super) fn dir_builder(private: bool) -> DirBuilder {
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
pub(super) fn create_root(root: &Path, private: bool) -> Result<()> {
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
