//! `object_store` errors as `ckpt` errors.
//!
//! A missing object is [`Error::NotFound`]; everything else is
//! [`Error::Storage`] with an [`io::Error`] whose kind tells a transient
//! failure (connection refused or reset, timeout, server busy: retry or fail
//! over) from a permanent one (bad request, access denied: fix the
//! configuration), the same distinction
//! [`is_unavailable`](crate::storage::is_unavailable) and
//! [`Error::kind`] draw.
//!
//! The kind comes from structure, in this order:
//!
//! 1. the `object_store::Error` variant, which `object_store` chose from the
//!    HTTP status (404 `NotFound`, 401 `Unauthenticated`, 403
//!    `PermissionDenied`, 409 `AlreadyExists`, 412 `Precondition`) or from
//!    its own checks (`InvalidPath`, `NotSupported`...);
//! 2. for a `Generic` error, the [`HttpError`] in its source chain, whose
//!    [`HttpErrorKind`] tells a refused connection or a timeout;
//! 3. only for a `Generic` error that has neither, the HTTP status and S3
//!    error code in its text: `object_store` 0.14 keeps the status of a
//!    non-2xx answer in `client::retry::RetryError`, a type of a private
//!    module that cannot be named to downcast to (its `status()` accessor is
//!    unreachable), and wraps list and multipart answers (even 403s) into
//!    `Generic`.
//!
//! The `io::Error` carries the text of the whole `object_store` error chain
//! with every secret scrubbed (see [`Secrets`]), not the error itself: its
//! `Debug` would print the server's answer unfiltered, and an S3
//! `SignatureDoesNotMatch` answer can hold the session token.

use super::redact::Secrets;
use crate::error::Error;
use object_store::client::{HttpError, HttpErrorKind};
use std::error::Error as StdError;
use std::io;

/// S3 error codes that mean the credentials, not the request, are wrong.
const CREDENTIAL_CODES: [&str; 8] = [
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
    "InvalidToken",
    "ExpiredToken",
    "TokenRefreshRequired",
    "AuthorizationHeaderMalformed",
    "InvalidSecurity",
    "AccessDenied",
];

/// Converts an `object_store` error from operation `op` on `key` of the
/// store `store` (its bucket and prefix, for messages).
pub(super) fn from_object_store(
    op: &'static str,
    key: &str,
    store: &str,
    secrets: &Secrets,
    error: object_store::Error,
) -> Error {
    use object_store::Error as E;
    let detail = secrets.scrub(&chain_text(&error));
    let kind = match &error {
        E::NotFound { .. } => {
            return Error::NotFound {
                key: key.to_owned(),
            };
        }
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => {
            let status = if matches!(error, E::Unauthenticated { .. }) {
                401
            } else {
                403
            };
            let code = s3_code_in(&detail).filter(|code| CREDENTIAL_CODES.contains(code));
            return refused(op, key, store, Some(status), code, &detail);
        }
        E::InvalidPath { .. } | E::UnknownConfigurationKey { .. } => io::ErrorKind::InvalidInput,
        E::NotSupported { .. } | E::NotImplemented { .. } => io::ErrorKind::Unsupported,
        E::AlreadyExists { .. } | E::Precondition { .. } => io::ErrorKind::AlreadyExists,
        _ => match http_kind(&error) {
            Some(kind) => kind,
            None => {
                // No structure says more: read the status and the S3 code
                // from the text (see the module's doc).
                let status = status_in(&detail);
                let code = s3_code_in(&detail).filter(|code| CREDENTIAL_CODES.contains(code));
                if code.is_some() || matches!(status, Some(401 | 403)) {
                    return refused(op, key, store, status, code, &detail);
                }
                status.map_or(io::ErrorKind::Other, status_kind)
            }
        },
    };
    Error::storage(op, key, io::Error::new(kind, detail))
}

/// The store refused the credentials: a permanent
/// [`io::ErrorKind::PermissionDenied`] naming the store, the status and the
/// S3 error code.
fn refused(
    op: &'static str,
    key: &str,
    store: &str,
    status: Option<u16>,
    code: Option<&str>,
    detail: &str,
) -> Error {
    let reason = match (status, code) {
        (Some(status), Some(code)) => format!("{status} {code}"),
        (Some(status), None) => status.to_string(),
        (None, Some(code)) => code.to_owned(),
        (None, None) => "access denied".to_owned(),
    };
    let message = format!(
        "{store} refused the credentials ({reason}); this is permanent, retrying will not help: \
         check the access key id, secret key and session token, and that they may use this bucket ({detail})"
    );
    Error::storage(
        op,
        key,
        io::Error::new(io::ErrorKind::PermissionDenied, message),
    )
}

/// The text of `error` and of each source its text does not already hold.
fn chain_text(error: &object_store::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = e.source();
    }
    text
}

/// The S3 error code of an XML error body in `message` (`<Code>…</Code>`).
fn s3_code_in(message: &str) -> Option<&str> {
    let (_, rest) = message.split_once("<Code>")?;
    let (code, _) = rest.split_once("</Code>")?;
    Some(code)
}

/// The kind of a request that failed in transport, from the [`HttpError`]
/// in `error`'s source chain; `None` when there is none (the server
/// answered).
fn http_kind(error: &object_store::Error) -> Option<io::ErrorKind> {
    let mut source: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(http) = e.downcast_ref::<HttpError>() {
            return Some(match http.kind() {
                HttpErrorKind::Connect => io::ErrorKind::ConnectionRefused,
                HttpErrorKind::Timeout => io::ErrorKind::TimedOut,
                HttpErrorKind::Interrupted => io::ErrorKind::ConnectionAborted,
                HttpErrorKind::Request => io::ErrorKind::ConnectionReset,
                HttpErrorKind::Decode => io::ErrorKind::InvalidData,
                _ => io::ErrorKind::Other,
            });
        }
        source = e.source();
    }
    None
}

/// The kind of an answer with HTTP status `status`.
fn status_kind(status: u16) -> io::ErrorKind {
    match status {
        400 | 405 | 411 | 416 => io::ErrorKind::InvalidInput,
        401 | 403 => io::ErrorKind::PermissionDenied,
        413 => io::ErrorKind::FileTooLarge,
        408 => io::ErrorKind::TimedOut,
        429 | 500..=599 => io::ErrorKind::ResourceBusy,
        _ => io::ErrorKind::Other,
    }
}

/// The first HTTP status after "status code: " in `message`.
fn status_in(message: &str) -> Option<u16> {
    let (_, rest) = message.split_once("status code: ")?;
    rest.get(..3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_read_from_the_message() {
        assert_eq!(
            status_in(
                "Error performing PUT x: Server returned non-2xx status code: 503 Service Unavailable: slow down"
            ),
            Some(503)
        );
        assert_eq!(status_in("status code: 4"), None);
        assert_eq!(status_in("no status here"), None);
    }

    #[test]
    fn not_found_maps_to_not_found_under_the_callers_key() {
        let e = object_store::Error::NotFound {
            path: "root/k".into(),
            source: "404".into(),
        };
        assert!(
            matches!(from_object_store("get", "k", "s3://b/", &Secrets::default(), e), Error::NotFound { key } if key == "k")
        );
    }

    #[test]
    fn permission_errors_are_permanent_and_unknown_ones_transient() {
        let denied = object_store::Error::PermissionDenied {
            path: "k".into(),
            source: "403".into(),
        };
        let kind = |e: Error| match e {
            Error::Storage { source, .. } => source.kind(),
            other => panic!("expected a storage error, got {other}"),
        };
        assert_eq!(
            kind(from_object_store(
                "put",
                "k",
                "s3://b/",
                &Secrets::default(),
                denied
            )),
            io::ErrorKind::PermissionDenied
        );
        let busy = object_store::Error::Generic {
            store: "S3",
            source: "Server returned non-2xx status code: 503 Service Unavailable".into(),
        };
        assert_eq!(
            kind(from_object_store(
                "put",
                "k",
                "s3://b/",
                &Secrets::default(),
                busy
            )),
            io::ErrorKind::ResourceBusy
        );
        let bad = object_store::Error::Generic {
            store: "S3",
            source: "Server returned non-2xx status code: 400 Bad Request".into(),
        };
        let bad = from_object_store("put", "k", "s3://b/", &Secrets::default(), bad);
        assert!(!crate::storage::is_unavailable(&bad), "{bad}");
    }

    #[test]
    fn refused_credentials_are_permanent_name_the_store_and_hide_the_token() {
        let secrets = Secrets::new(
            [Some("TOKEN456".to_owned())],
            Some("AKIDEXAMPLE".to_owned()),
        );
        let refused = object_store::Error::PermissionDenied {
            path: "jobs/k".into(),
            source: "Error performing PUT http://h/b/jobs/k in 3ms - Server returned non-2xx status code: \
                403 Forbidden: <Error><Code>SignatureDoesNotMatch</Code><AWSAccessKeyId>AKIDEXAMPLE</AWSAccessKeyId>\
                <CanonicalRequest>PUT\n/b/jobs/k\nx-amz-security-token:TOKEN456\n</CanonicalRequest></Error>"
                .into(),
        };
        let error = from_object_store("put", "k", "s3://b/jobs/", &secrets, refused);
        let text = format!("{error} {error:?}");
        assert!(
            matches!(&error, Error::Storage { source, .. } if source.kind() == io::ErrorKind::PermissionDenied)
        );
        for shown in [
            "s3://b/jobs/",
            "403 SignatureDoesNotMatch",
            "check the access key id",
            "AKID…",
        ] {
            assert!(text.contains(shown), "{shown} not in {text}");
        }
        for hidden in ["TOKEN456", "AKIDEXAMPLE"] {
            assert!(!text.contains(hidden), "{hidden} in {text}");
        }
        // An invalid key id comes back as 403 InvalidAccessKeyId through the generic error.
        let unknown_key = object_store::Error::Generic {
            store: "S3",
            source: "<Error><Code>InvalidAccessKeyId</Code></Error>".into(),
        };
        let error = from_object_store("get", "k", "s3://b/", &secrets, unknown_key);
        assert!(
            error
                .report()
                .to_string()
                .contains("refused the credentials (InvalidAccessKeyId)"),
            "{error}"
        );
    }

    #[test]
    fn kinds_come_from_the_variant_and_the_transport_error_not_the_text() {
        let kind = |e: object_store::Error| match from_object_store(
            "get",
            "k",
            "s3://b/",
            &Secrets::default(),
            e,
        ) {
            Error::Storage { source, .. } => (source.kind(), source.to_string()),
            other => panic!("expected a storage error, got {other}"),
        };
        // A 401 with no body: the variant alone says it.
        let (k, text) = kind(object_store::Error::Unauthenticated {
            path: "k".into(),
            source: "no text here".into(),
        });
        assert_eq!(k, io::ErrorKind::PermissionDenied);
        assert!(text.contains("refused the credentials (401)"), "{text}");
        // A refused connection, whatever its text says.
        let refused = HttpError::new(
            HttpErrorKind::Connect,
            io::Error::other("status code: 400 (not a status)"),
        );
        let (k, _) = kind(object_store::Error::Generic {
            store: "S3",
            source: Box::new(refused),
        });
        assert_eq!(k, io::ErrorKind::ConnectionRefused);
        let timeout = HttpError::new(HttpErrorKind::Timeout, io::Error::other("slow"));
        let (k, _) = kind(object_store::Error::Generic {
            store: "S3",
            source: Box::new(timeout),
        });
        assert_eq!(k, io::ErrorKind::TimedOut);
        let (k, _) = kind(object_store::Error::Precondition {
            path: "k".into(),
            source: "412".into(),
        });
        assert_eq!(k, io::ErrorKind::AlreadyExists);
    }
}
