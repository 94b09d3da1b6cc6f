//! Configuration of an [`ObjectStorage`] on S3 or an S3-compatible store.

use super::redact::{REDACTED, Secrets, endpoint_without_userinfo, partial};
use super::{Backend, ObjectStorage, Presentation, Tuning};
use crate::error::{Error, Result};
use crate::storage::validate_key;
use object_store::RetryConfig;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The smallest part S3 accepts in a multipart upload (all but the last).
const MIN_PART_BYTES: usize = 5 << 20;

/// Configures an [`ObjectStorage`] on S3 or an S3-compatible store (MinIO,
/// SeaweedFS, Ceph, R2, …); see [`ObjectStorage::builder`].
///
/// Every option is checked once, in [`build`](Self::build), which names the
/// option it rejects.
///
/// Its `Debug` shows where the store is and the start of the access key
/// id, never a secret key, session token or option value.
#[must_use = "a builder does nothing until build() is called"]
pub struct ObjectStorageBuilder {
    s3: AmazonS3Builder,
    bucket: Option<String>,
    prefix: Option<String>,
    options: Vec<(String, String)>,
    bulk_delete: bool,
    tuning: Tuning,
}

impl Default for ObjectStorageBuilder {
    fn default() -> Self {
        ObjectStorageBuilder {
            s3: AmazonS3Builder::new(),
            bucket: None,
            prefix: None,
            options: Vec::new(),
            bulk_delete: false,
            tuning: Tuning::default(),
        }
    }
}

impl fmt::Debug for ObjectStorageBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = |key| self.s3.get_config_value(&key);
        // Option values may be secrets (`aws_secret_access_key`): names only.
        let options: Vec<&str> = self.options.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("ObjectStorageBuilder")
            .field(
                "endpoint",
                &value(AmazonS3ConfigKey::Endpoint).map(|e| endpoint_without_userinfo(&e)),
            )
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("region", &value(AmazonS3ConfigKey::Region))
            .field(
                "access_key_id",
                &value(AmazonS3ConfigKey::AccessKeyId).map(|id| partial(&id)),
            )
            .field(
                "secret_access_key",
                &value(AmazonS3ConfigKey::SecretAccessKey).map(|_| REDACTED),
            )
            .field(
                "session_token",
                &value(AmazonS3ConfigKey::Token).map(|_| REDACTED),
            )
            .field("options", &options)
            .field("bulk_delete", &self.bulk_delete)
            .field("tuning", &self.tuning)
            .finish_non_exhaustive()
    }
}

impl ObjectStorageBuilder {
    /// A builder with nothing set (no credentials, no bucket).
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder that starts from the environment.
    ///
    /// Reads every `AWS_*` variable `object_store` knows — among them
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
    /// `AWS_REGION` / `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL` /
    /// `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`, `AWS_BUCKET` — then `ckpt`'s own
    /// `CKPT_S3_ENDPOINT`, `CKPT_S3_BUCKET` and `CKPT_S3_PREFIX`, which win
    /// over the AWS ones. Without static keys, credentials come from the
    /// usual AWS chain (web identity, container or instance metadata).
    /// Later builder calls override all of it.
    pub fn from_env() -> Self {
        let mut builder = ObjectStorageBuilder {
            s3: AmazonS3Builder::from_env(),
            ..Self::default()
        };
        let var = |name| std::env::var(name).ok().filter(|v| !v.is_empty());
        if let Some(endpoint) = var("CKPT_S3_ENDPOINT") {
            builder = builder.endpoint(endpoint);
        }
        if let Some(bucket) = var("CKPT_S3_BUCKET") {
            builder = builder.bucket(bucket);
        }
        if let Some(prefix) = var("CKPT_S3_PREFIX") {
            builder = builder.prefix(prefix);
        }
        builder
    }

    /// The endpoint URL of an S3-compatible store, e.g.
    /// `http://127.0.0.1:9000` for a local MinIO. Leave unset for AWS S3.
    /// Requests use path-style URLs (`endpoint/bucket/key`).
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.s3 = self.s3.with_endpoint(url);
        self
    }

    /// The bucket that holds the checkpoints (required; it must exist).
    pub fn bucket(mut self, bucket: impl Into<String>) -> Self {
        self.bucket = Some(bucket.into());
        self
    }

    /// Keeps every object under `prefix/` in the bucket, so several jobs can
    /// share one bucket. Must be a valid key (see [`Storage`](crate::Storage)).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// The region (default `us-east-1`; S3-compatible stores mostly ignore it).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.s3 = self.s3.with_region(region);
        self
    }

    /// Allows `http://` endpoints (default: only `https://`).
    pub fn allow_http(mut self, allow: bool) -> Self {
        self.s3 = self.s3.with_allow_http(allow);
        self
    }

    /// Static credentials: an access key id and its secret.
    pub fn credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> Self {
        self.s3 = self
            .s3
            .with_access_key_id(access_key_id)
            .with_secret_access_key(secret_access_key);
        self
    }

    /// A session token, for temporary credentials.
    pub fn session_token(mut self, token: impl Into<String>) -> Self {
        self.s3 = self.s3.with_token(token);
        self
    }

    /// Any other `object_store` S3 option by its name (e.g.
    /// `("aws_unsigned_payload", "true")` or `("aws_virtual_hosted_style_request", "true")`);
    /// unknown names are rejected by [`build`](Self::build).
    pub fn option(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.options.push((name.into(), value.into()));
        self
    }

    /// How long a failing request is retried (with exponential backoff)
    /// before its error is returned: at most `max_retries` retries, and
    /// none started after `timeout` (default: 10 retries within 3
    /// minutes). Lower it under a
    /// [`FailoverStorage`](crate::storage::FailoverStorage), so a dead
    /// store fails over quickly.
    pub fn retries(mut self, max_retries: usize, timeout: Duration) -> Self {
        self.s3 = self.s3.with_retry(RetryConfig {
            max_retries,
            retry_timeout: timeout,
            ..RetryConfig::default()
        });
        self
    }

    /// Deletes several objects in one `POST ?delete` request (S3's
    /// `DeleteObjects`) instead of one `DELETE` per object (default: off).
    ///
    /// Off by default because `object_store` sends the bulk request even
    /// for a single key, and SeaweedFS serves it under a per-object filer
    /// lock with a 15 s lease: when a gateway dies mid-request the lock
    /// outlives it, and the delete retried through another gateway waits
    /// those 15 s. Single-object deletes take no such lock and are part of
    /// the core S3 API every compatible store implements.
    pub fn bulk_delete(mut self, enabled: bool) -> Self {
        self.bulk_delete = enabled;
        self
    }

    /// Objects of at least this many bytes are uploaded in parts, several
    /// at once (default 16 MiB). The object still appears atomically, when
    /// the upload completes.
    pub fn multipart_threshold(mut self, bytes: usize) -> Self {
        self.tuning.multipart_threshold = bytes;
        self
    }

    /// The size of each part of a multipart upload (default 8 MiB; S3
    /// requires at least 5 MiB).
    pub fn part_size(mut self, bytes: usize) -> Self {
        self.tuning.part_size = bytes;
        self
    }

    /// How many parts of one object are uploaded at once (default 8).
    pub fn max_concurrency(mut self, parts: usize) -> Self {
        self.tuning.max_concurrency = parts;
        self
    }

    /// How many objects one list request asks for (default: as many as
    /// the store returns, 1000 on S3). `list` follows every page whatever
    /// the size; a small size only costs requests.
    pub fn list_page_size(mut self, objects: usize) -> Self {
        self.tuning.list_page_size = Some(objects);
        self
    }

    /// Checks every option and opens the store. Nothing is sent to the
    /// store yet: a wrong endpoint or credentials show on the first request.
    pub fn build(self) -> Result<ObjectStorage> {
        let invalid = |option, reason: String| Error::InvalidConfig { option, reason };
        let bucket = self.bucket.ok_or_else(|| {
            invalid(
                "bucket",
                "no bucket given; call .bucket(name) or set CKPT_S3_BUCKET".to_owned(),
            )
        })?;
        let root = match self.prefix.as_deref() {
            None | Some("") => String::new(),
            Some(prefix) => {
                validate_key(prefix).map_err(|e| invalid("prefix", e.to_string()))?;
                format!("{prefix}/")
            }
        };
        let tuning = self.tuning;
        if tuning.part_size < MIN_PART_BYTES {
            return Err(invalid(
                "part_size",
                format!(
                    "{} bytes is below S3's minimum part of 5 MiB",
                    tuning.part_size
                ),
            ));
        }
        if tuning.list_page_size == Some(0) {
            return Err(invalid("list_page_size", "must be at least 1".to_owned()));
        }
        if tuning.max_concurrency == 0 {
            return Err(invalid("max_concurrency", "must be at least 1".to_owned()));
        }
        let mut s3 = self
            .s3
            .with_bucket_name(&bucket)
            .with_disable_bulk_delete(!self.bulk_delete);
        for (name, value) in self.options {
            let key: AmazonS3ConfigKey = name.parse().map_err(|_| {
                invalid(
                    "option",
                    format!("{name:?} is not an object_store S3 option (see AmazonS3ConfigKey)"),
                )
            })?;
            s3 = s3.with_config(key, value);
        }
        let shown = presentation(&s3, &bucket, &root);
        let store = s3
            .build()
            .map_err(|e| invalid("endpoint/credentials", shown.secrets.scrub(&e.to_string())))?;
        ObjectStorage::open(Arc::new(store) as Arc<dyn Backend>, root, tuning, shown)
    }
}

/// How the store built from `s3` shows itself, and the secrets it hides:
/// the secret key, session token and SSE-C key, whether given to the
/// builder, as options or in the environment.
fn presentation(s3: &AmazonS3Builder, bucket: &str, root: &str) -> Presentation {
    let value = |key| s3.get_config_value(&key);
    let customer_key = "aws_sse_customer_key_base64"
        .parse()
        .ok()
        .and_then(|key: AmazonS3ConfigKey| s3.get_config_value(&key));
    let access_key_id = value(AmazonS3ConfigKey::AccessKeyId);
    let secrets = Secrets::new(
        [
            value(AmazonS3ConfigKey::SecretAccessKey),
            value(AmazonS3ConfigKey::Token),
            customer_key,
        ],
        access_key_id.clone(),
    );
    let mut identity = Vec::new();
    if let Some(endpoint) = value(AmazonS3ConfigKey::Endpoint) {
        identity.push(format!("endpoint {}", endpoint_without_userinfo(&endpoint)));
    }
    if let Some(region) = value(AmazonS3ConfigKey::Region) {
        identity.push(format!("region {region}"));
    }
    if let Some(id) = access_key_id {
        identity.push(format!("access key {}", partial(&id)));
    }
    Presentation {
        description: format!("s3://{bucket}/{root}"),
        identity: identity.join(", "),
        secrets,
    }
}
