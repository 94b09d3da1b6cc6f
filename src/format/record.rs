//! The framing shared by every small metadata object (manifests, group
//! records): a header naming the kind and version, a bincode payload in the
//! pinned configuration, and a CRC32 over both.
//!
//! ```text
//! record := magic:[u8; 8] version:u16 reserved:u16 payload_len:u32
//!           payload:[u8; payload_len] crc32(everything before):u32
//! ```

use super::{FORMAT_VERSION, MANIFEST_CODEC, le_u16, le_u32};
use crate::error::{Error, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Bytes before the payload.
const HEADER_LEN: usize = 16;
/// Bytes after the payload (the checksum).
const TRAILER_LEN: usize = 4;

/// Encodes `value` as a record of the kind `magic` names.
///
/// Records are plain data far below 4 GiB, so encoding cannot fail.
pub(crate) fn encode_record<T: Serialize>(magic: &[u8; 8], value: &T) -> Vec<u8> {
    let payload = bincode::serde::encode_to_vec(value, MANIFEST_CODEC)
        .expect("records are plain data and always encode");
    let payload_len = u32::try_from(payload.len()).expect("records are below 4 GiB");
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len() + TRAILER_LEN);
    out.extend_from_slice(magic);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&payload_len.to_le_bytes());
    out.extend_from_slice(&payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Verifies and decodes the record stored under `key`, of the kind `magic`
/// names (`what` says which, in errors), refusing a payload longer than
/// `max_payload` before decoding it.
pub(crate) fn decode_record<T: DeserializeOwned>(
    magic: &[u8; 8],
    what: &str,
    key: &str,
    bytes: &[u8],
    max_payload: usize,
) -> Result<T> {
    let corrupt = |reason: String| Error::corrupt(key, reason);
    if bytes.len() < HEADER_LEN + TRAILER_LEN {
        return Err(corrupt(format!("{what} is truncated")));
    }
    let (body, crc) = bytes.split_at(bytes.len() - TRAILER_LEN);
    let (header, payload) = body.split_at(HEADER_LEN);
    if header.get(..8) != Some(magic.as_slice()) {
        return Err(corrupt(format!("not a {what} (bad magic)")));
    }
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err(corrupt(format!("{what} checksum mismatch")));
    }
    let version = le_u16(header, 8).unwrap_or(0);
    if version == 0 || version > FORMAT_VERSION {
        return Err(Error::UnsupportedVersion {
            key: key.to_owned(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let payload_len = le_u32(header, 12).unwrap_or(u32::MAX);
    if payload_len as usize != payload.len() || payload.len() > max_payload {
        return Err(corrupt(format!(
            "{what} length field does not match its size"
        )));
    }
    let (value, used) = bincode::serde::decode_from_slice(payload, MANIFEST_CODEC)
        .map_err(|e| corrupt(format!("{what} does not decode: {e}")))?;
    if used != payload.len() {
        return Err(corrupt(format!("{what} has trailing bytes")));
    }
    Ok(value)
}
