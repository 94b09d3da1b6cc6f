//! The framing shared by every small metadata object (manifests, group
//! records): a header naming the kind and version, a bincode payload in the
//! pinned configuration, and a CRC32 over both.
//!
//! ```text
//! record := magic:[u8; 8] version:u16 reserved:u16 payload_len:u32
//!           payload:[u8; payload_len] crc32(everything before):u32
//! ```

use super::{FORMAT_VERSION, MANIFEST_CODEC, MAX_MANIFEST_BYTES, le_u16, le_u32};
use crate::error::{Error, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Bytes before the payload.
const HEADER_LEN: usize = 16;
/// Bytes after the payload (the checksum).
const TRAILER_LEN: usize = 4;

/// A record whose payload is longer than its readers accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooLarge {
    /// The payload's length.
    pub payload_len: usize,
    /// The most a reader accepts.
    pub max_payload: usize,
}

/// Decoded values claim at most this many bytes of the reader's limit per
/// encoded byte: a `u128` varint of one byte claims 16.
const MAX_CLAIM_PER_BYTE: usize = 16;

/// Encodes `value` as a record of the kind `magic` names, refusing one
/// that [`decode_record`] would refuse for its size: a payload longer than
/// `max_payload`, or one whose decoded values exceed the decoder's limit
/// ([`MANIFEST_CODEC`] counts in-memory sizes, so a payload of many small
/// varints can exceed it while shorter than `max_payload`).
///
/// Records are plain data, so bincode cannot fail on them.
pub(crate) fn encode_record<T: Serialize + DeserializeOwned>(
    magic: &[u8; 8],
    value: &T,
    max_payload: usize,
) -> Result<Vec<u8>, TooLarge> {
    let payload = bincode::serde::encode_to_vec(value, MANIFEST_CODEC)
        .expect("records are plain data and always encode");
    let too_large = TooLarge {
        payload_len: payload.len(),
        max_payload,
    };
    if payload.len() > max_payload {
        return Err(too_large);
    }
    if payload.len() > MAX_MANIFEST_BYTES / MAX_CLAIM_PER_BYTE
        && bincode::serde::decode_from_slice::<T, _>(&payload, MANIFEST_CODEC).is_err()
    {
        return Err(too_large);
    }
    let payload_len = u32::try_from(payload.len()).map_err(|_| too_large)?;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len() + TRAILER_LEN);
    out.extend_from_slice(magic);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&payload_len.to_le_bytes());
    out.extend_from_slice(&payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: &[u8; 8] = b"CKPTTEST";

    fn decode(bytes: &[u8], max_payload: usize) -> Result<Vec<u128>> {
        decode_record(MAGIC, "test record", "k", bytes, max_payload)
    }

    #[test]
    fn a_record_is_written_only_if_its_reader_accepts_it() {
        let value: Vec<u128> = (0..100).collect();
        let bytes = encode_record(MAGIC, &value, 1_000).unwrap();
        assert_eq!(decode(&bytes, 1_000).unwrap(), value);
        // The reader refuses a payload over its limit, so the writer does.
        assert_eq!(
            encode_record(MAGIC, &value, 100),
            Err(TooLarge {
                payload_len: 101,
                max_payload: 100
            })
        );
        assert!(decode(&bytes, 100).is_err());
    }

    /// 17 M zeros encode to 17 MB, but decode to 272 MB of `u128`s, more
    /// than the decoder's limit: the writer refuses them too.
    #[test]
    fn a_payload_whose_values_exceed_the_decoders_limit_is_refused() {
        let value = vec![0u128; 17_000_000];
        let payload = bincode::serde::encode_to_vec(&value, MANIFEST_CODEC).unwrap();
        assert!(payload.len() < MAX_MANIFEST_BYTES);
        let too_large = encode_record(MAGIC, &value, MAX_MANIFEST_BYTES).unwrap_err();
        assert_eq!(too_large.payload_len, payload.len());
        let fits = vec![0u128; 1_000_000];
        let bytes = encode_record(MAGIC, &fits, MAX_MANIFEST_BYTES).unwrap();
        assert_eq!(decode(&bytes, MAX_MANIFEST_BYTES).unwrap(), fits);
    }
}
