//! Object names in a store: `packs/<id>` and `manifests/<seq>-<step>-<id>`.
//!
//! `seq` orders manifests by when they were written, so "newest" means
//! "committed last" even if an application restarts its step numbers.

/// Prefix of every pack object.
pub(crate) const PACKS: &str = "packs/";
/// Prefix of every manifest object.
pub(crate) const MANIFESTS: &str = "manifests/";
/// Where an adaptive checkpointer keeps its cost model and policy state
/// (written by the checkpointer, read by the `Reader`).
pub(crate) const MODEL_KEY: &str = "model/advisor";

/// The key of pack `id`.
pub(crate) fn pack_key(id: u128) -> String {
    format!("{PACKS}{id:032x}")
}

/// Sequence numbers stay below this bound (see [`ManifestName::parse`]).
pub(crate) const MAX_SEQ: u64 = 1 << 62;

/// What a manifest's key says about it, before its bytes are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ManifestName {
    /// Commit order within the store (1, 2, 3, ...).
    pub seq: u64,
    /// The application's step number.
    pub step: u64,
    /// Random id, unique per checkpoint.
    pub id: u128,
}

impl ManifestName {
    /// The object key of this manifest.
    pub(crate) fn key(&self) -> String {
        format!(
            "{MANIFESTS}{:020}-{:020}-{:032x}",
            self.seq, self.step, self.id
        )
    }

    /// Parses a manifest key; `None` for a key this layout did not write.
    ///
    /// Sequence numbers at or above [`MAX_SEQ`] are never written (a store
    /// would need centuries of checkpoints to reach them), so such a name
    /// is foreign and cannot stop the sequence from advancing.
    pub(crate) fn parse(key: &str) -> Option<Self> {
        let rest = key.strip_prefix(MANIFESTS)?;
        let mut parts = rest.split('-');
        let seq: u64 = parts.next().filter(|p| p.len() == 20)?.parse().ok()?;
        if seq >= MAX_SEQ {
            return None;
        }
        let step = parts.next().filter(|p| p.len() == 20)?.parse().ok()?;
        let id = parts.next().filter(|p| p.len() == 32)?;
        let id = u128::from_str_radix(id, 16).ok()?;
        if parts.next().is_some() {
            return None;
        }
        Some(ManifestName { seq, step, id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_names_round_trip_and_sort_by_sequence() {
        let a = ManifestName {
            seq: 2,
            step: 900,
            id: 7,
        };
        let b = ManifestName {
            seq: 10,
            step: 5,
            id: u128::MAX,
        };
        assert_eq!(ManifestName::parse(&a.key()), Some(a));
        assert_eq!(ManifestName::parse(&b.key()), Some(b));
        assert!(a.key() < b.key(), "key order must follow commit order");
        assert_eq!(ManifestName::parse("manifests/garbage"), None);
        let huge = ManifestName {
            seq: MAX_SEQ,
            step: 1,
            id: 1,
        };
        assert_eq!(ManifestName::parse(&huge.key()), None);
        assert_eq!(ManifestName::parse(&format!("{}-x", a.key())), None);
    }
}
