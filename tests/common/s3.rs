//! The S3 test server (`scripts/s3-server`): whether a test has one, and
//! builders for it under prefixes of the test's own.

use super::say;
use ckpt::storage::ObjectStorageBuilder;
use std::time::{SystemTime, UNIX_EPOCH};

/// Whether any of `vars` (`CKPT_S3_ENDPOINT`, …) is unset, after saying
/// that `test` is skipped (naming the one variable asked about, or the
/// list of those missing). With `CKPT_S3_REQUIRED` set (CI), a missing
/// variable fails the test instead, so a server that failed to start
/// cannot pass as a skip.
pub fn unavailable(test: &str, vars: &[&str]) -> bool {
    let missing: Vec<&str> = vars
        .iter()
        .copied()
        .filter(|v| std::env::var_os(v).is_none())
        .collect();
    if missing.is_empty() {
        return false;
    }
    match vars {
        [one] => {
            assert!(
                std::env::var_os("CKPT_S3_REQUIRED").is_none(),
                "CKPT_S3_REQUIRED is set but {one} is not: start scripts/s3-server"
            );
            say(&format!(
                "skipped {test}: {one} unset; run `eval \"$(scripts/s3-server start)\"`"
            ));
        }
        _ => {
            assert!(
                std::env::var_os("CKPT_S3_REQUIRED").is_none(),
                "CKPT_S3_REQUIRED is set but {missing:?} are not: start scripts/s3-server"
            );
            say(&format!(
                "skipped {test}: {missing:?} unset; run `eval \"$(scripts/s3-server start)\"`"
            ));
        }
    }
    true
}

/// A prefix for `test` that no other run uses: `ckpt-tests/{test}-{pid}-{nanos}`.
pub fn fresh_prefix(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("ckpt-tests/{test}-{}-{nanos}", std::process::id())
}

/// The server's builder (from the environment, over plain HTTP) under
/// `prefix`, with the test server's credentials unless the environment
/// has its own.
pub fn builder(prefix: &str) -> ObjectStorageBuilder {
    let builder = ObjectStorageBuilder::from_env()
        .allow_http(true)
        .prefix(prefix);
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        return builder.credentials("ckpt-test", "ckpt-test-secret");
    }
    builder
}
