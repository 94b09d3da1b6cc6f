//! The journal's bytes: `journal/<n>` objects, each a batch of compact
//! records of what a checkpointer did and decided (checkpoints, restores,
//! restarts, storage errors, failovers, policy decisions), read back by
//! [`Reader::journal`](crate::Reader::journal) and `ckpt report`.
//!
//! ```text
//! object := magic:"CKPTJRNL" version:u8 count:u16 payload_len:u32
//!           payload:[u8; payload_len] crc32(everything before):u32
//! payload := bincode(Vec<Entry>)   (the pinned varint configuration)
//! ```
//!
//! Records hold timings, sizes and the policy's words, never state bytes
//! or anything from the storage configuration. The journal is a log for
//! people and tools, not for restores: a reader skips an object that does
//! not decode.

use super::{le_u16, le_u32};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Prefix of every journal object.
pub(crate) const JOURNAL: &str = "journal/";
/// The version this build writes and the newest it reads.
pub(crate) const JOURNAL_VERSION: u8 = 1;
/// Most records in one object.
pub(crate) const MAX_RECORDS_PER_OBJECT: usize = 256;
/// Most journal objects a store keeps: the writer deletes the oldest as it
/// starts a new one, so a store holds at most
/// `MAX_OBJECTS × MAX_RECORDS_PER_OBJECT` = 16 384 records.
pub(crate) const MAX_OBJECTS: u64 = 64;
/// Longest text (a decision's reason, a storage operation) a record keeps,
/// in bytes; longer text is cut at a character boundary. With it, an
/// object stays under [`MAX_PAYLOAD`]: 256 records of at most ~1.2 KiB.
pub(crate) const MAX_TEXT: usize = 1024;
/// Largest payload a reader decodes (and a writer writes).
pub(crate) const MAX_PAYLOAD: usize = 512 << 10;

const MAGIC: &[u8; 8] = b"CKPTJRNL";
/// Bytes before the payload.
const HEADER_LEN: usize = 15;
/// Bytes after the payload (the checksum).
const TRAILER_LEN: usize = 4;

/// The pinned bincode configuration of the payload, with a decode limit
/// so that a damaged length can never make the decoder allocate much.
const CODEC: bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<{ 4 * MAX_PAYLOAD }>,
> = bincode::config::standard()
    .with_little_endian()
    .with_variable_int_encoding()
    .with_limit::<{ 4 * MAX_PAYLOAD }>();

/// The key of journal object `n`: zero-padded, so keys sort as numbers.
pub(crate) fn journal_key(n: u64) -> String {
    format!("{JOURNAL}{n:020}")
}

/// The number of the journal object stored under `key`; `None` for a key
/// this layout did not write.
pub(crate) fn parse_journal_key(key: &str) -> Option<u64> {
    let rest = key.strip_prefix(JOURNAL)?;
    (rest.len() == 20 && rest.bytes().all(|b| b.is_ascii_digit()))
        .then(|| rest.parse().ok())
        .flatten()
}

/// One journal record: when, and what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// Wall-clock time it was recorded, milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// What happened.
    pub body: Body,
}

/// What a record says. Durations are nanoseconds; schemes, failure
/// classes and decision kinds are their codes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Body {
    /// A committed checkpoint.
    Checkpoint {
        step: u64,
        scheme: u8,
        full_base: bool,
        steps: u64,
        compute_ns: u64,
        stall_ns: u64,
        persist_ns: u64,
        /// The interval the checkpointer was running at.
        interval_ns: u64,
        logical_bytes: u64,
        dirty_bytes: u64,
        bytes_written: u64,
        chain_length: u32,
        tier: u8,
    },
    /// A completed restore.
    Restore {
        step: u64,
        duration_ns: u64,
        chain_length: u32,
        bytes_read: u64,
    },
    /// A restart after a failure.
    Restart { class: u8, downtime_ns: Option<u64> },
    /// A storage operation that failed.
    StorageError { op: String, transient: bool },
    /// Storage failed over to the standby.
    Failover { pause_ns: u64, retried: u64 },
    /// A policy decision.
    Decision {
        step: Option<u64>,
        /// 1 advise, 2 apply, 3 explore.
        kind: u8,
        scheme: u8,
        full_every: Option<u32>,
        interval_ns: u64,
        /// A trial's planned length (0 otherwise).
        checkpoints: u32,
        saving: Option<f64>,
        confidence: Option<f64>,
        reason: String,
    },
}

/// `text` cut to at most [`MAX_TEXT`] bytes, at a character boundary.
pub(crate) fn clip(text: &str) -> String {
    let mut end = text.len().min(MAX_TEXT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default().to_owned()
}

/// Encodes a batch of at most [`MAX_RECORDS_PER_OBJECT`] entries as one
/// journal object; an error (not a panic) for a batch its readers would
/// refuse.
pub(crate) fn encode(entries: &[Entry]) -> Result<Vec<u8>> {
    let refuse = |reason: String| Error::corrupt(JOURNAL, reason);
    let count = u16::try_from(entries.len())
        .ok()
        .filter(|n| usize::from(*n) <= MAX_RECORDS_PER_OBJECT)
        .ok_or_else(|| refuse(format!("{} records in one journal object", entries.len())))?;
    let payload = bincode::serde::encode_to_vec(entries, CODEC)
        .map_err(|e| refuse(format!("journal batch does not encode: {e}")))?;
    if payload.len() > MAX_PAYLOAD {
        return Err(refuse(format!(
            "journal batch of {} bytes, more than {MAX_PAYLOAD}",
            payload.len()
        )));
    }
    let payload_len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len() + TRAILER_LEN);
    out.extend_from_slice(MAGIC);
    out.push(JOURNAL_VERSION);
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&payload_len.to_le_bytes());
    out.extend_from_slice(&payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// Verifies and decodes the journal object stored under `key`: a
/// [`Error::Corrupt`] for damaged bytes, [`Error::UnsupportedVersion`]
/// for a newer writer's.
pub(crate) fn decode(key: &str, bytes: &[u8]) -> Result<Vec<Entry>> {
    let corrupt = |reason: &str| Error::corrupt(key, format!("journal object {reason}"));
    if bytes.len() < HEADER_LEN + TRAILER_LEN {
        return Err(corrupt("is truncated"));
    }
    let (body, crc) = bytes.split_at(bytes.len() - TRAILER_LEN);
    let (header, payload) = body.split_at(HEADER_LEN);
    if header.get(..8) != Some(MAGIC.as_slice()) {
        return Err(corrupt("has a bad magic"));
    }
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err(corrupt("checksum mismatch"));
    }
    let version = header.get(8).copied().unwrap_or(0);
    if version == 0 || version > JOURNAL_VERSION {
        return Err(Error::UnsupportedVersion {
            key: key.to_owned(),
            found: u16::from(version),
            supported: u16::from(JOURNAL_VERSION),
        });
    }
    let count = usize::from(le_u16(header, 9).unwrap_or(u16::MAX));
    let payload_len = le_u32(header, 11).unwrap_or(u32::MAX) as usize;
    if payload_len != payload.len() || payload_len > MAX_PAYLOAD {
        return Err(corrupt("length field does not match its size"));
    }
    if count > MAX_RECORDS_PER_OBJECT {
        return Err(corrupt("claims too many records"));
    }
    let (entries, used): (Vec<Entry>, usize) = bincode::serde::decode_from_slice(payload, CODEC)
        .map_err(|e| Error::corrupt(key, format!("journal object does not decode: {e}")))?;
    if used != payload.len() || entries.len() != count {
        return Err(corrupt("has trailing bytes or a wrong record count"));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Entry> {
        vec![
            Entry {
                at_ms: 1_700_000_000_000,
                body: Body::Checkpoint {
                    step: 9,
                    scheme: 2,
                    full_base: false,
                    steps: 10,
                    compute_ns: 5_000_000,
                    stall_ns: 300_000,
                    persist_ns: 2_000_000,
                    interval_ns: 5_000_000,
                    logical_bytes: 1 << 20,
                    dirty_bytes: 4096,
                    bytes_written: 8192,
                    chain_length: 3,
                    tier: 0,
                },
            },
            Entry {
                at_ms: 1_700_000_000_100,
                body: Body::Decision {
                    step: Some(9),
                    kind: 2,
                    scheme: 1,
                    full_every: Some(8),
                    interval_ns: 7_000_000,
                    checkpoints: 0,
                    saving: Some(0.031),
                    confidence: Some(0.97),
                    reason: "full costs 2.1 ms a checkpoint — é".to_owned(),
                },
            },
            Entry {
                at_ms: 1_700_000_000_200,
                body: Body::Restart {
                    class: 0,
                    downtime_ns: None,
                },
            },
            Entry {
                at_ms: 1_700_000_000_300,
                body: Body::StorageError {
                    op: "put".to_owned(),
                    transient: true,
                },
            },
        ]
    }

    #[test]
    fn a_batch_round_trips() {
        let entries = sample();
        let bytes = encode(&entries).unwrap();
        assert_eq!(decode("journal/x", &bytes).unwrap(), entries);
        assert_eq!(decode("journal/x", &encode(&[]).unwrap()).unwrap(), []);
    }

    #[test]
    fn damaged_bytes_are_an_error_never_a_panic() {
        let bytes = encode(&sample()).unwrap();
        for cut in 0..bytes.len() {
            assert!(decode("k", &bytes[..cut]).is_err(), "truncated at {cut}");
        }
        for at in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x41;
            assert!(decode("k", &flipped).is_err(), "flipped byte {at}");
        }
        // A payload that checks out but does not decode.
        let mut forged = bytes[..HEADER_LEN].to_vec();
        forged[11..15].copy_from_slice(&3u32.to_le_bytes());
        forged.extend_from_slice(&[0xff, 0xff, 0xff]);
        let crc = crc32fast::hash(&forged);
        forged.extend_from_slice(&crc.to_le_bytes());
        let error = decode("k", &forged).unwrap_err();
        assert!(error.is_damage(), "{error}");
    }

    #[test]
    fn a_newer_version_is_refused_as_such() {
        let mut bytes = encode(&sample()).unwrap();
        bytes[8] = JOURNAL_VERSION + 1;
        let body = bytes.len() - TRAILER_LEN;
        let crc = crc32fast::hash(&bytes[..body]);
        bytes[body..].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            decode("k", &bytes),
            Err(Error::UnsupportedVersion { found, .. }) if found == u16::from(JOURNAL_VERSION) + 1
        ));
    }

    #[test]
    fn oversized_batches_are_refused_when_written() {
        let one = sample().remove(0);
        let full = vec![one.clone(); MAX_RECORDS_PER_OBJECT];
        assert_eq!(decode("k", &encode(&full).unwrap()).unwrap().len(), 256);
        assert!(encode(&vec![one; MAX_RECORDS_PER_OBJECT + 1]).is_err());
        // The longest records the writer makes still fit.
        let long = Entry {
            at_ms: u64::MAX,
            body: Body::Decision {
                step: Some(u64::MAX),
                kind: 3,
                scheme: 2,
                full_every: Some(u32::MAX),
                interval_ns: u64::MAX,
                checkpoints: u32::MAX,
                saving: Some(f64::MAX),
                confidence: Some(1.0),
                reason: clip(&"é".repeat(MAX_TEXT)),
            },
        };
        assert!(encode(&vec![long; MAX_RECORDS_PER_OBJECT]).is_ok());
    }

    #[test]
    fn text_is_clipped_at_a_character_boundary() {
        let clipped = clip(&"é".repeat(MAX_TEXT));
        assert!(clipped.len() <= MAX_TEXT && clipped.len() >= MAX_TEXT - 1);
        assert_eq!(clip("short"), "short");
    }

    #[test]
    fn keys_round_trip_and_sort_as_numbers() {
        assert_eq!(parse_journal_key(&journal_key(7)), Some(7));
        assert!(journal_key(9) < journal_key(10));
        assert_eq!(parse_journal_key("journal/7"), None);
        assert_eq!(parse_journal_key("model/advisor"), None);
    }
}
