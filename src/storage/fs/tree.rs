//! The directory tree under the root: a key's parent directories made on
//! demand, the sweep of temporary files crashed writers left, and the walk
//! that lists keys.

use super::create::dir_builder;
use super::files::sync_dir;
use super::names::canonical_component;
use super::{FsStorage, TEMP_PREFIX, display};
use crate::error::{Error, Result};
use std::fs;
use std::io;
use std::path::Path;

impl FsStorage {
    /// Removes the temporary files that crashed writers left, in `dir` and
    /// below. Only regular files are removed and only real directories
    /// entered (`file_type` does not follow links): a symbolic link in the
    /// store, to a file or a directory anywhere, is never followed.
    pub(super) fn remove_stale_temps(&self, dir: &Path) -> Result<()> {
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
    pub(super) fn ensure_dir(&self, dir: &Path, key: &str) -> Result<()> {
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
    pub(super) fn is_plain_dir_path(&self, dir: &Path) -> io::Result<bool> {
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

    pub(super) fn collect_keys(
        &self,
        dir: &Path,
        prefix: &str,
        out: &mut Vec<String>,
    ) -> io::Result<()> {
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
