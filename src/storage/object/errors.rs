//! `object_store` errors as `ckpt` errors.
//!
//! A missing object is [`Error::NotFound`]; everything else is
//! [`Error::Storage`] with an [`io::Error`] whose kind tells a transient
//! failure (connection refused or reset, timeout, server busy: retry or fail
//! over) from a permanent one (bad request, access denied: fix the
//! configuration), the same distinction
//! [`is_unavailable`](crate::storage::is_unavailable) draws.

use crate::error::Error;
use object_store::client::{HttpError, HttpErrorKind};
use std::error::Error as StdError;
use std::io;

/// Converts an `object_store` error from operation `op` on `key`.
pub(super) fn from_object_store(op: &'static str, key: &str, error: object_store::Error) -> Error {
    use object_store::Error as E;
    let kind = match &error {
        E::NotFound { .. } => {
            return Error::NotFound {
                key: key.to_owned(),
            };
        }
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => io::ErrorKind::PermissionDenied,
        E::InvalidPath { .. } | E::UnknownConfigurationKey { .. } => io::ErrorKind::InvalidInput,
        E::NotSupported { .. } | E::NotImplemented { .. } => io::ErrorKind::Unsupported,
        E::AlreadyExists { .. } | E::Precondition { .. } => io::ErrorKind::AlreadyExists,
        _ => transport_kind(&error),
    };
    Error::storage(op, key, io::Error::new(kind, error))
}

/// The kind of a failed request: from the HTTP transport error in its
/// source chain if there is one, else from the HTTP status in its message.
fn transport_kind(error: &object_store::Error) -> io::ErrorKind {
    let mut source: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(http) = e.downcast_ref::<HttpError>() {
            return match http.kind() {
                HttpErrorKind::Connect => io::ErrorKind::ConnectionRefused,
                HttpErrorKind::Timeout => io::ErrorKind::TimedOut,
                HttpErrorKind::Interrupted => io::ErrorKind::ConnectionAborted,
                HttpErrorKind::Request => io::ErrorKind::ConnectionReset,
                HttpErrorKind::Decode => io::ErrorKind::InvalidData,
                _ => io::ErrorKind::Other,
            };
        }
        source = e.source();
    }
    // `object_store` keeps the status in a private type; its message reads
    // "... status code: 503 Service Unavailable ...".
    match status_in(&error.to_string()) {
        Some(400 | 405 | 411 | 416) => io::ErrorKind::InvalidInput,
        Some(401 | 403) => io::ErrorKind::PermissionDenied,
        Some(413) => io::ErrorKind::FileTooLarge,
        Some(408) => io::ErrorKind::TimedOut,
        Some(429 | 500..=599) => io::ErrorKind::ResourceBusy,
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
        assert!(matches!(from_object_store("get", "k", e), Error::NotFound { key } if key == "k"));
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
            kind(from_object_store("put", "k", denied)),
            io::ErrorKind::PermissionDenied
        );
        let busy = object_store::Error::Generic {
            store: "S3",
            source: "Server returned non-2xx status code: 503 Service Unavailable".into(),
        };
        assert_eq!(
            kind(from_object_store("put", "k", busy)),
            io::ErrorKind::ResourceBusy
        );
        let bad = object_store::Error::Generic {
            store: "S3",
            source: "Server returned non-2xx status code: 400 Bad Request".into(),
        };
        let bad = from_object_store("put", "k", bad);
        assert!(!crate::storage::is_unavailable(&bad), "{bad}");
    }
}
