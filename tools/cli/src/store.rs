//! Naming a store on the command line: a directory, or (with the `s3`
//! feature) `s3://bucket/prefix`, and opening it to read or as its writer.

use crate::fail::Failure;
use ckpt::{FsStorage, Maintenance, PrefixStorage, Reader, Storage};
use std::path::PathBuf;
use std::sync::Arc;

/// A store as the user named it.
#[derive(Debug, Clone)]
pub enum Location {
    /// A directory.
    Dir(PathBuf),
    /// An S3 (or S3-compatible) bucket and key prefix.
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix inside it (may be empty).
        prefix: String,
    },
}

impl Location {
    /// Parses `s3://bucket/prefix` or a directory path.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.strip_prefix("s3://") {
            Some(rest) => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(format!(
                        "{text:?} names no bucket; write s3://BUCKET or s3://BUCKET/PREFIX"
                    ));
                }
                Ok(Location::S3 {
                    bucket: bucket.to_owned(),
                    prefix: prefix.trim_matches('/').to_owned(),
                })
            }
            None if text.is_empty() => Err("the store path is empty".to_owned()),
            None => Ok(Location::Dir(PathBuf::from(text))),
        }
    }

    /// Opens the store to read, taking no lock (it works beside a live
    /// writer and on a read-only mount).
    pub fn read(&self) -> Result<Arc<dyn Storage>, Failure> {
        match self {
            Location::Dir(dir) => Ok(Arc::new(FsStorage::open_read_only(dir)?)),
            Location::S3 { bucket, prefix } => s3(bucket, prefix),
        }
    }

    /// Opens the store as its one writer (its lock, or its lease), failing
    /// while a checkpointer holds it. A directory is created only when
    /// `create` is set.
    pub fn write(&self, create: bool) -> Result<Maintenance, Failure> {
        let storage: Arc<dyn Storage> = match self {
            Location::Dir(dir) => {
                if !create && !dir.is_dir() {
                    return Err(Failure::usage(format!(
                        "{} is not a directory holding a store; check the path",
                        dir.display()
                    )));
                }
                Arc::new(FsStorage::open(dir)?)
            }
            Location::S3 { bucket, prefix } => s3(bucket, prefix)?,
        };
        Ok(Maintenance::open(storage)?)
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Dir(dir) => write!(f, "{}", dir.display()),
            Location::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// A reader over `storage`, or over `storage`'s namespace `prefix`.
pub fn reader(storage: &Arc<dyn Storage>, prefix: Option<&str>) -> Result<Reader, Failure> {
    Ok(match prefix {
        Some(prefix) => Reader::new(PrefixStorage::new(storage.clone(), prefix)?),
        None => Reader::new(storage.clone()),
    })
}

/// The ranks whose namespaces `shards/<rank>/` hold objects, ascending.
pub fn ranks(storage: &Arc<dyn Storage>) -> Result<Vec<u32>, Failure> {
    let mut ranks: Vec<u32> = storage
        .list("shards/")?
        .iter()
        .filter_map(|key| key.strip_prefix("shards/")?.split('/').next()?.parse().ok())
        .collect();
    ranks.sort_unstable();
    ranks.dedup();
    Ok(ranks)
}

#[cfg(feature = "s3")]
fn s3(bucket: &str, prefix: &str) -> Result<Arc<dyn Storage>, Failure> {
    let store = ckpt::ObjectStorageBuilder::from_env()
        .bucket(bucket)
        .prefix(prefix)
        .build()?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "s3"))]
fn s3(_bucket: &str, _prefix: &str) -> Result<Arc<dyn Storage>, Failure> {
    Err(Failure::usage(
        "this ckpt was built without S3 support; rebuild it with `cargo install --path tools/cli --features s3` (or `cargo build -p ckpt-cli --features s3`)"
            .to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_names_split_into_bucket_and_prefix() {
        match Location::parse("s3://b/runs/a/").expect("valid") {
            Location::S3 { bucket, prefix } => {
                assert_eq!((bucket, prefix), ("b".into(), "runs/a".into()))
            }
            other => panic!("parsed as {other:?}"),
        }
        assert!(Location::parse("s3:///x").is_err());
        assert!(matches!(Location::parse("./store"), Ok(Location::Dir(_))));
    }
}
