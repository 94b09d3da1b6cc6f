//! The two objects of a writer lease, as text a person can read with `cat`:
//! the *claim* `lease/<epoch>` (who took the epoch; written once, with
//! `put_if_absent`) and the *beat* `lease/<epoch>.beat` (how often the
//! holder has renewed, and whether it let go; overwritten by the holder).

use super::identity::Identity;

/// Prefix of every lease object.
pub(crate) const LEASE: &str = "lease/";
const CLAIM_MAGIC: &str = "ckpt-lease-claim 1";
const BEAT_MAGIC: &str = "ckpt-lease-beat 1";

/// The key of epoch `epoch`'s claim.
pub(crate) fn claim_key(epoch: u64) -> String {
    format!("{LEASE}{epoch:020}")
}

/// The key of epoch `epoch`'s beat.
pub(crate) fn beat_key(epoch: u64) -> String {
    format!("{}.beat", claim_key(epoch))
}

/// The epoch a lease key belongs to, claim or beat; `None` for any other
/// key.
pub(crate) fn epoch_of(key: &str) -> Option<u64> {
    let rest = key.strip_prefix(LEASE)?;
    let digits = rest.strip_suffix(".beat").unwrap_or(rest);
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// Whether `key` is a claim (not a beat).
pub(crate) fn is_claim(key: &str) -> bool {
    epoch_of(key).is_some() && !key.ends_with(".beat")
}

/// Who took an epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claim {
    /// Random id of the holding checkpointer.
    pub holder: u128,
    /// Where it runs.
    pub identity: Identity,
    /// How long a silent holder keeps the lease.
    pub ttl_ms: u64,
}

impl Claim {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let id = &self.identity;
        format!(
            "{CLAIM_MAGIC}\nholder {:032x}\nhost {}\nboot {}\npidns {}\npid {}\nstart {}\nttl_ms {}\n",
            self.holder,
            field(&id.host),
            field(&id.boot),
            field(&id.pid_namespace),
            id.pid,
            id.start_ticks,
            self.ttl_ms
        )
        .into_bytes()
    }

    /// Parses a claim; `None` for anything this version did not write.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Claim> {
        let mut fields = Fields::parse(bytes, CLAIM_MAGIC)?;
        Some(Claim {
            holder: u128::from_str_radix(fields.take("holder")?, 16).ok()?,
            identity: Identity {
                host: fields.take("host")?.to_owned(),
                boot: fields.take("boot")?.to_owned(),
                pid_namespace: fields.take("pidns")?.to_owned(),
                pid: fields.take("pid")?.parse().ok()?,
                start_ticks: fields.take("start")?.parse().ok()?,
            },
            ttl_ms: fields.take("ttl_ms")?.parse().ok()?,
        })
    }

    /// The holder, as an error message names it.
    pub(crate) fn describe(&self, epoch: u64) -> String {
        let id = &self.identity;
        let host = if id.host.is_empty() { "?" } else { &id.host };
        format!("pid {} on host {host}, lease epoch {epoch}", id.pid)
    }
}

/// The holder's latest renewal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Beat {
    /// The holder that wrote it (a beat of another holder is ignored).
    pub holder: u128,
    /// Renewals so far: a change tells a watcher the holder is alive.
    pub count: u64,
    /// True once the holder let go (its checkpointer was dropped).
    pub released: bool,
}

impl Beat {
    pub(crate) fn encode(&self) -> Vec<u8> {
        format!(
            "{BEAT_MAGIC}\nholder {:032x}\ncount {}\nreleased {}\n",
            self.holder, self.count, self.released as u8
        )
        .into_bytes()
    }

    /// Parses a beat; `None` for anything this version did not write.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Beat> {
        let mut fields = Fields::parse(bytes, BEAT_MAGIC)?;
        Some(Beat {
            holder: u128::from_str_radix(fields.take("holder")?, 16).ok()?,
            count: fields.take("count")?.parse().ok()?,
            released: match fields.take("released")? {
                "0" => false,
                "1" => true,
                _ => return None,
            },
        })
    }
}

/// A value on one line, never empty (so a line always splits in two).
fn field(value: &str) -> String {
    let clean: String = value
        .chars()
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .collect();
    if clean.is_empty() {
        "-".to_owned()
    } else {
        clean
    }
}

/// The `name value` lines of a record, in the order written.
struct Fields<'a> {
    lines: std::str::Lines<'a>,
}

impl<'a> Fields<'a> {
    fn parse(bytes: &'a [u8], magic: &str) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut lines = text.lines();
        (lines.next()? == magic).then_some(Fields { lines })
    }

    fn take(&mut self, name: &str) -> Option<&'a str> {
        let (key, value) = self.lines.next()?.split_once(' ')?;
        (key == name)
            .then_some(value)
            .map(|v| if v == "-" { "" } else { v })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_refuse_foreign_bytes() {
        let claim = Claim {
            holder: 0xfeed,
            identity: Identity {
                host: "node 7".to_owned(),
                boot: String::new(),
                pid_namespace: "pid:[4026531836]".to_owned(),
                pid: 42,
                start_ticks: 99,
            },
            ttl_ms: 10_000,
        };
        let decoded = Claim::decode(&claim.encode()).expect("a claim decodes");
        assert_eq!(
            decoded.identity.host, "node_7",
            "whitespace never splits a line"
        );
        assert_eq!(decoded.identity.boot, "");
        assert_eq!((decoded.holder, decoded.ttl_ms), (0xfeed, 10_000));
        let beat = Beat {
            holder: 1,
            count: 7,
            released: true,
        };
        assert_eq!(Beat::decode(&beat.encode()), Some(beat));
        assert_eq!(Beat::decode(&claim.encode()), None);
        assert_eq!(Claim::decode(b"garbage"), None);
        assert_eq!(Claim::decode(&[0xff, 0xfe]), None);
    }

    #[test]
    fn keys_name_their_epoch() {
        assert_eq!(epoch_of(&claim_key(7)), Some(7));
        assert_eq!(epoch_of(&beat_key(7)), Some(7));
        assert!(is_claim(&claim_key(7)) && !is_claim(&beat_key(7)));
        assert_eq!(epoch_of("lease/7"), None);
        assert_eq!(epoch_of("lease/0000000000000000000x"), None);
        assert_eq!(epoch_of("packs/00000000000000000007"), None);
    }
}
