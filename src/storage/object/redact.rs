//! Keeps credentials out of everything the backend prints.
//!
//! The store knows its secrets (secret key, session token, SSE-C key); any
//! text it shows — an error from a failed request, a configuration error —
//! has them replaced, and has signing material an S3 server may echo
//! (presigned-URL query values, `<CanonicalRequest>` in a
//! `SignatureDoesNotMatch` body, which holds the session token) cut out
//! whatever store it came from. The access key id is not a secret, but only
//! its start is shown: enough to tell which key was used.

use std::fmt;

/// What replaces a secret.
pub(super) const REDACTED: &str = "<redacted>";

/// The secrets a store holds, for scrubbing text it prints.
#[derive(Default, Clone)]
pub(super) struct Secrets {
    /// Values never shown (secret key, session token, SSE-C key).
    hidden: Vec<String>,
    /// The access key id, shown only by its start.
    access_key_id: Option<String>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Secrets {
    /// The secrets to scrub: `hidden` values (empty ones ignored) and the
    /// access key id.
    pub(super) fn new(
        hidden: impl IntoIterator<Item = Option<String>>,
        access_key_id: Option<String>,
    ) -> Self {
        let mut hidden: Vec<String> = hidden
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .collect();
        // Longest first, so a secret that contains another is replaced whole.
        hidden.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Secrets {
            hidden,
            access_key_id: access_key_id.filter(|s| !s.is_empty()),
        }
    }

    /// `text` with every known secret and any signing material replaced.
    pub(super) fn scrub(&self, text: &str) -> String {
        let mut out = scrub_signing(text);
        for secret in &self.hidden {
            out = out.replace(secret.as_str(), REDACTED);
        }
        if let Some(id) = &self.access_key_id {
            out = out.replace(id.as_str(), &partial(id));
        }
        out
    }
}

/// The first four characters of `id` and an ellipsis (all of a shorter id
/// is hidden).
pub(super) fn partial(id: &str) -> String {
    match id.char_indices().nth(4) {
        Some((end, _)) => format!("{}…", id.get(..end).unwrap_or_default()),
        None => "…".to_owned(),
    }
}

/// An endpoint URL without any `user:password@` in it.
pub(super) fn endpoint_without_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest.get(..authority_end).and_then(|a| a.rfind('@')) {
        Some(at) => format!(
            "{scheme}://{REDACTED}@{}",
            rest.get(at + 1..).unwrap_or_default()
        ),
        None => url.to_owned(),
    }
}

/// Markers after which a value is signing material (matched ignoring case).
const SIGNING_VALUES: [&str; 6] = [
    "x-amz-signature=",
    "x-amz-credential=",
    "x-amz-security-token=",
    "x-amz-security-token:",
    "signature=",
    "x-amz-server-side-encryption-customer-key:",
];

/// XML elements of an S3 error body whose content is signing material.
const SIGNING_ELEMENTS: [&str; 4] = [
    "CanonicalRequest",
    "CanonicalRequestBytes",
    "StringToSign",
    "StringToSignBytes",
];

/// `text` with the values after [`SIGNING_VALUES`] and the content of
/// [`SIGNING_ELEMENTS`] replaced.
fn scrub_signing(text: &str) -> String {
    let mut out = text.to_owned();
    for element in SIGNING_ELEMENTS {
        out = replace_element(&out, element);
    }
    for marker in SIGNING_VALUES {
        out = replace_values_after(&out, marker);
    }
    out
}

/// `text` with the content of every `<name>…</name>` replaced (an
/// unclosed one up to the end).
fn replace_element(text: &str, name: &str) -> String {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(&open) {
        let (before, from) = rest.split_at(at + open.len());
        out.push_str(before);
        out.push_str(REDACTED);
        rest = from
            .find(&close)
            .map_or("", |end| from.get(end..).unwrap_or_default());
    }
    out.push_str(rest);
    out
}

/// `text` with the value after every `marker` (ASCII, any case) replaced;
/// a value ends at `&`, whitespace, a quote, `<`, `,` or `;`.
fn replace_values_after(text: &str, marker: &str) -> String {
    // ASCII lowercasing keeps byte offsets, so positions carry over.
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut done = 0;
    let mut search = 0;
    while let Some(found) = lower.get(search..).and_then(|l| l.find(marker)) {
        let value_start = search + found + marker.len();
        let value_len = text
            .get(value_start..)
            .unwrap_or_default()
            .find(|c: char| c.is_whitespace() || "&\"'<,;".contains(c))
            .unwrap_or(text.len() - value_start);
        if value_len > 0 {
            out.push_str(text.get(done..value_start).unwrap_or_default());
            out.push_str(REDACTED);
            done = value_start + value_len;
        }
        search = value_start + value_len.max(1);
        if search >= text.len() {
            break;
        }
    }
    out.push_str(text.get(done..).unwrap_or_default());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_secrets_and_signing_material_are_replaced() {
        let secrets = Secrets::new(
            [
                Some("SECRET123".to_owned()),
                Some("TOKEN456".to_owned()),
                None,
            ],
            Some("AKIDEXAMPLE".to_owned()),
        );
        // What AWS answers a request signed with the wrong secret.
        let body = "Error performing PUT http://h/b/k?X-Amz-Credential=AKIDEXAMPLE%2F2026&X-Amz-Signature=abcdef&x=1 - \
            Server returned non-2xx status code: 403 Forbidden: <Error><Code>SignatureDoesNotMatch</Code>\
            <AWSAccessKeyId>AKIDEXAMPLE</AWSAccessKeyId><StringToSign>AWS4-HMAC-SHA256\n2026</StringToSign>\
            <CanonicalRequest>PUT\n/b/k\n\nhost:h\nx-amz-security-token:OTHERTOKEN\n</CanonicalRequest></Error> \
            token SECRET123 TOKEN456";
        let out = secrets.scrub(body);
        for gone in [
            "SECRET123",
            "TOKEN456",
            "OTHERTOKEN",
            "AKIDEXAMPLE",
            "abcdef",
            "AWS4-HMAC",
        ] {
            assert!(!out.contains(gone), "{gone} in {out}");
        }
        for kept in [
            "SignatureDoesNotMatch",
            "403 Forbidden",
            "AKID…",
            "&x=1",
            "http://h/b/k",
        ] {
            assert!(out.contains(kept), "{kept} not in {out}");
        }
    }

    #[test]
    fn plain_text_is_unchanged() {
        let text = "Error performing GET http://127.0.0.1:9/b/k in 2ms - connection refused";
        assert_eq!(Secrets::default().scrub(text), text);
        assert_eq!(
            replace_values_after("signature=", "signature="),
            "signature="
        );
    }

    #[test]
    fn partial_ids_and_endpoints() {
        assert_eq!(partial("AKIAIOSFODNN7EXAMPLE"), "AKIA…");
        assert_eq!(partial("abc"), "…");
        assert_eq!(
            endpoint_without_userinfo("http://u:p@host:9000/x@y"),
            "http://<redacted>@host:9000/x@y"
        );
        assert_eq!(
            endpoint_without_userinfo("http://host:9000"),
            "http://host:9000"
        );
    }
}
