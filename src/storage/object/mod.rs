//! Checkpoints in S3 and S3-compatible object stores (feature `object-store`).
//!
//! Built on the `object_store` crate. Every [`Storage`] call is one or a few
//! HTTP requests run on a small tokio runtime the backend owns, so callers
//! stay synchronous and never see tokio.

mod builder;
mod errors;
mod redact;
mod runtime;

pub use builder::ObjectStorageBuilder;

use super::{Storage, validate_key};
use crate::error::{Error, Result};
use bytes::Bytes;
use errors::from_object_store;
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    WriteMultipart,
};
use redact::Secrets;
use runtime::BlockingRuntime;
use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

/// What the backend needs of an `object_store` store: the usual operations
/// plus listing by a raw key prefix (one that may end inside a component).
/// S3, GCS and Azure stores all qualify.
pub trait Backend: ObjectStore + PaginatedListStore {}

impl<T: ObjectStore + PaginatedListStore> Backend for T {}

/// How large objects are uploaded.
#[derive(Debug, Clone, Copy)]
struct Tuning {
    multipart_threshold: usize,
    part_size: usize,
    max_concurrency: usize,
    /// Objects per list request; `None` lets the store decide (1000 on S3).
    list_page_size: Option<usize>,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            multipart_threshold: 16 << 20,
            part_size: 8 << 20,
            max_concurrency: 8,
            list_page_size: None,
        }
    }
}

/// A [`Storage`] in an object store: S3 or any S3-compatible store (MinIO,
/// SeaweedFS, Ceph, R2, …), or any other `object_store` store that lists by
/// raw prefix (GCS, Azure) through [`ObjectStorage::new`].
///
/// * `put` is one PUT, or a multipart upload for large objects; either way
///   the object appears whole or not at all.
/// * `put_if_absent` is a PUT with `If-None-Match: *`, which the store
///   decides atomically (the store must honour it: AWS S3, MinIO and
///   SeaweedFS do; a store that ignores the header silently overwrites).
/// * `list` is sorted and follows every page; `delete` of a missing object
///   succeeds; `get_range` reads only the range, and a range outside the
///   object is [`Error::Corrupt`].
/// * Errors: a missing object is [`Error::NotFound`]; a failed request is
///   [`Error::Storage`] whose `io::ErrorKind` tells transient
///   (`ConnectionRefused`, `TimedOut`, `ResourceBusy` for 5xx/429, …) from
///   permanent (`InvalidInput`, `PermissionDenied`). Requests are retried
///   with backoff by `object_store` before an error is returned.
///
/// Calls block the calling thread. Calling from inside a tokio runtime
/// works (the backend runs requests on its own runtime), but blocks that
/// runtime's worker: use `spawn_blocking` there.
///
/// ```no_run
/// use ckpt::{Checkpointer, ObjectStorage};
///
/// let store = ObjectStorage::builder()
///     .endpoint("http://127.0.0.1:9000") // a local MinIO; omit for AWS S3
///     .bucket("checkpoints")
///     .prefix("jobs/7")
///     .credentials("minioadmin", "minioadmin")
///     .allow_http(true)
///     .build()?;
/// let mut ck = Checkpointer::builder().storage(store).every_steps(100).build()?;
/// # Ok::<(), ckpt::Error>(())
/// ```
pub struct ObjectStorage {
    store: Arc<dyn Backend>,
    /// The prefix with its trailing `/`, or empty.
    root: String,
    tuning: Tuning,
    runtime: BlockingRuntime,
    /// Where the objects live (`s3://bucket/prefix/`), for messages.
    description: String,
    /// Where requests go and as whom, with no secret in it, for `Debug`.
    identity: String,
    /// What every message is scrubbed of.
    secrets: Secrets,
}

/// Prints where the store is (endpoint, bucket, prefix, region) and the
/// start of the access key id; never a secret.
impl fmt::Debug for ObjectStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectStorage({}", self.description)?;
        if !self.identity.is_empty() {
            write!(f, ", {}", self.identity)?;
        }
        f.write_str(")")
    }
}

/// How an [`ObjectStorage`] shows itself and what it hides.
struct Presentation {
    description: String,
    identity: String,
    secrets: Secrets,
}

impl ObjectStorage {
    /// Configures a store on S3 or an S3-compatible server; see
    /// [`ObjectStorageBuilder`].
    pub fn builder() -> ObjectStorageBuilder {
        ObjectStorageBuilder::new()
    }

    /// Opens the store the environment describes: the standard `AWS_*`
    /// variables plus `CKPT_S3_ENDPOINT`, `CKPT_S3_BUCKET` and
    /// `CKPT_S3_PREFIX` (see [`ObjectStorageBuilder::from_env`]).
    ///
    /// ```no_run
    /// // AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… AWS_REGION=eu-west-1
    /// // CKPT_S3_BUCKET=checkpoints CKPT_S3_PREFIX=jobs/7
    /// let store = ckpt::ObjectStorage::from_env()?;
    /// # Ok::<(), ckpt::Error>(())
    /// ```
    pub fn from_env() -> Result<Self> {
        ObjectStorageBuilder::from_env().build()
    }

    /// Wraps any `object_store` store that can list by raw prefix (for
    /// example a `GoogleCloudStorage` or `MicrosoftAzure` built with
    /// `object_store`'s own builders), keeping every object under
    /// `prefix/` (or at the top when `prefix` is empty).
    pub fn new(store: Arc<dyn Backend>, prefix: &str) -> Result<Self> {
        let root = if prefix.is_empty() {
            String::new()
        } else {
            validate_key(prefix)?;
            format!("{prefix}/")
        };
        let shown = Presentation {
            description: format!("{store}/{root}"),
            identity: String::new(),
            secrets: Secrets::default(),
        };
        Self::open(store, root, Tuning::default(), shown)
    }

    fn open(
        store: Arc<dyn Backend>,
        root: String,
        tuning: Tuning,
        shown: Presentation,
    ) -> Result<Self> {
        Ok(ObjectStorage {
            store,
            root,
            tuning,
            runtime: BlockingRuntime::new()?,
            description: shown.description,
            identity: shown.identity,
            secrets: shown.secrets,
        })
    }

    /// The prefix every key lives under, without its trailing `/` (empty
    /// when there is none).
    pub fn prefix(&self) -> &str {
        self.root.strip_suffix('/').unwrap_or(&self.root)
    }

    /// The location of `key` in the store.
    fn path(&self, key: &str) -> Result<Path> {
        validate_key(key)?;
        Path::parse(format!("{}{}", self.root, encode_key(key))).map_err(|_| Error::InvalidKey {
            key: key.to_owned(),
            reason: "object store keys must not contain control characters",
        })
    }

    /// Runs one request for `op` on `key`, mapping its error.
    fn run<T, F>(&self, op: &'static str, key: &str, request: F) -> Result<T>
    where
        F: Future<Output = object_store::Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        self.runtime
            .run(op, key, request)?
            .map_err(|e| from_object_store(op, key, &self.description, &self.secrets, e))
    }

    /// The size of the object, or [`Error::NotFound`].
    fn size(&self, key: &str, path: Path) -> Result<u64> {
        let store = self.store.clone();
        self.run("head", key, async move { store.head(&path).await })
            .map(|meta| meta.size)
    }

    /// The bytes of `range` of the object, in one ranged GET (none for an
    /// empty range); [`Error::Corrupt`] for a range outside the object.
    fn fetch_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        let path = self.path(key)?;
        if range.start >= range.end {
            // Nothing to fetch (S3 cannot ask for zero bytes); check the
            // object exists and is long enough.
            let size = self.size(key, path)?;
            return if range.start == range.end && range.end <= size {
                Ok(Bytes::new())
            } else {
                Err(Self::out_of_range(key, &range, size))
            };
        }
        let store = self.store.clone();
        let request = path.clone();
        let wanted = range.clone();
        let answer = self.run("get_range", key, async move {
            let options = GetOptions {
                range: Some(GetRange::Bounded(wanted)),
                ..GetOptions::default()
            };
            let result = store.get_opts(&request, options).await?;
            let (got, size) = (result.range.clone(), result.meta.size);
            Ok((got, size, result.bytes().await?))
        });
        match answer {
            // The store clips a range that runs past the end.
            Ok((got, _, bytes))
                if got == range && bytes.len() as u64 == range.end - range.start =>
            {
                Ok(bytes)
            }
            Ok((_, size, _)) => Err(Self::out_of_range(key, &range, size)),
            Err(Error::NotFound { key }) => Err(Error::NotFound { key }),
            // A range starting past the end is refused (416); find out
            // whether that was the reason.
            // If that check fails too, the first error is the one to report.
            Err(error) => match self.size(key, path) {
                Ok(size) if range.end > size => Err(Self::out_of_range(key, &range, size)),
                Err(Error::NotFound { key }) => Err(Error::NotFound { key }),
                _ => Err(error),
            },
        }
    }

    /// [`Error::Corrupt`] for a range outside an object of `size` bytes.
    fn out_of_range(key: &str, range: &Range<u64>, size: u64) -> Error {
        Error::corrupt(
            key,
            format!(
                "range {}..{} is outside the object of {size} bytes",
                range.start, range.end
            ),
        )
    }
}

impl Storage for ObjectStorage {
    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        self.put_parts(key, &[data])
    }

    /// Copies the parts once, into the buffer the request owns (the
    /// runtime's tasks cannot borrow the caller's memory), and uploads it
    /// in one request or, from the multipart threshold on, in parts.
    fn put_parts(&self, key: &str, parts: &[&[u8]]) -> Result<()> {
        let path = self.path(key)?;
        let store = self.store.clone();
        let mut joined = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
        parts.iter().for_each(|p| joined.extend_from_slice(p));
        let data = Bytes::from(joined);
        let tuning = self.tuning;
        self.run("put", key, async move {
            if data.len() < tuning.multipart_threshold {
                store.put(&path, PutPayload::from(data)).await.map(drop)
            } else {
                put_multipart(store.as_ref(), &path, data, tuning).await
            }
        })
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        let path = self.path(key)?;
        let store = self.store.clone();
        let bytes = self.run(
            "get",
            key,
            async move { store.get(&path).await?.bytes().await },
        )?;
        Ok(Vec::from(bytes))
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let store = self.store.clone();
        let full = format!("{}{}", self.root, encode_key(prefix));
        let max_keys = self.tuning.list_page_size;
        let keys = self.run("list", prefix, async move {
            let mut keys = Vec::new();
            let mut page_token = None;
            loop {
                let options = PaginatedListOptions {
                    page_token,
                    max_keys,
                    ..PaginatedListOptions::default()
                };
                let page = store
                    .list_paginated((!full.is_empty()).then_some(full.as_str()), options)
                    .await?;
                keys.extend(
                    page.result
                        .objects
                        .into_iter()
                        .map(|o| String::from(o.location)),
                );
                match page.page_token {
                    Some(token) => page_token = Some(token),
                    None => return Ok(keys),
                }
            }
        })?;
        let root = &self.root;
        // Objects under the prefix that this backend did not write (their
        // names are not valid encodings) are left out.
        let mut keys: Vec<String> = keys
            .into_iter()
            .filter_map(|k| k.strip_prefix(root.as_str()).and_then(decode_key))
            .filter(|k| k.starts_with(prefix))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
    }

    fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        let store = self.store.clone();
        match self.run("delete", key, async move { store.delete(&path).await }) {
            Err(Error::NotFound { .. }) => Ok(()),
            other => other,
        }
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>> {
        self.fetch_range(key, range).map(Vec::from)
    }

    /// One ranged GET, whose bytes are copied straight into `bufs` (the
    /// runtime's tasks cannot borrow the caller's memory, so one copy).
    fn read_into(&self, key: &str, offset: u64, bufs: &mut [&mut [u8]]) -> Result<()> {
        let total: u64 = bufs.iter().map(|b| b.len() as u64).sum();
        let end = offset
            .checked_add(total)
            .ok_or_else(|| Error::corrupt(key, format!("invalid range {offset}+{total}")))?;
        let bytes = self.fetch_range(key, offset..end)?;
        super::scatter_into(key, offset, &bytes, bufs)
    }

    /// A request costs milliseconds; in that time megabytes arrive.
    fn read_gap_bytes(&self) -> u64 {
        8 << 20
    }

    fn put_if_absent(&self, key: &str, data: &[u8]) -> Result<bool> {
        let path = self.path(key)?;
        let store = self.store.clone();
        let payload = PutPayload::from(Bytes::copy_from_slice(data));
        let created = self.run("put_if_absent", key, async move {
            let options = PutOptions {
                mode: PutMode::Create,
                ..PutOptions::default()
            };
            match store.put_opts(&path, payload, options).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
                // Some stores answer 412 through the generic precondition error.
                Err(object_store::Error::Precondition { .. }) => Ok(false),
                Err(e) => Err(e),
            }
        })?;
        Ok(created)
    }
}

/// The object name of `key` under the root: `key` itself, except that `%`
/// and `\` are stored as `%25` and `%5C`. Some S3-compatible stores
/// (SeaweedFS among them) turn `\` into `/`; escaping keeps every valid key
/// intact, and, one character at a time, keeps prefixes prefixes.
fn encode_key(key: &str) -> Cow<'_, str> {
    if !key.contains(['%', '\\']) {
        return Cow::Borrowed(key);
    }
    let mut out = String::with_capacity(key.len() + 8);
    for c in key.chars() {
        match c {
            '%' => out.push_str("%25"),
            '\\' => out.push_str("%5C"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The key of an object name [`encode_key`] produced, or `None` for a name
/// it cannot have produced.
fn decode_key(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('%') {
        let (plain, escape) = rest.split_at(at);
        out.push_str(plain);
        let c = match escape.get(..3)? {
            "%25" => '%',
            "%5C" => '\\',
            _ => return None,
        };
        out.push(c);
        rest = escape.get(3..)?;
    }
    out.push_str(rest);
    Some(out)
}

/// Uploads `data` in parts of `tuning.part_size`, up to
/// `tuning.max_concurrency` at once; the object appears when the upload
/// completes, and a failed upload is aborted.
async fn put_multipart(
    store: &dyn Backend,
    path: &Path,
    data: Bytes,
    tuning: Tuning,
) -> object_store::Result<()> {
    let upload = store.put_multipart(path).await?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, tuning.part_size);
    let mut offset = 0;
    while offset < data.len() {
        if let Err(e) = writer.wait_for_capacity(tuning.max_concurrency).await {
            // Best effort: the parts of an upload never completed are
            // invisible, and a bucket lifecycle rule reaps them anyway.
            let _ = writer.abort().await;
            return Err(e);
        }
        let end = data.len().min(offset + tuning.part_size);
        writer.put(data.slice(offset..end));
        offset = end;
    }
    writer.finish().await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_encode_reversibly_and_keep_prefixes() {
        let keys = [
            "packs/0af3",
            "100%",
            "%41",
            "a%2Fb",
            "x\\y",
            "\\",
            "%",
            "ünï/%\\%",
        ];
        for key in keys {
            let name = encode_key(key);
            assert!(!name.contains('\\'), "{name}");
            assert_eq!(decode_key(&name).as_deref(), Some(key));
            for end in (0..=key.len()).filter(|&i| key.is_char_boundary(i)) {
                let prefix = key.get(..end).unwrap_or_default();
                assert!(
                    name.starts_with(encode_key(prefix).as_ref()),
                    "{key} / {prefix}"
                );
            }
        }
        assert_eq!(encode_key("packs/0af3"), "packs/0af3");
        assert_eq!(encode_key("a%b\\c"), "a%25b%5Cc");
        assert_eq!(decode_key("100%"), None);
        assert_eq!(decode_key("%41"), None);
        assert_eq!(decode_key("%5"), None);
    }
}
