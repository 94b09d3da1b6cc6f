//! What the model compares: plans (a scheme, possibly with a periodic full
//! base, and with lower tiers the drain ratio) and sets of allowed schemes.

use crate::scheme::Scheme;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Serde for [`Scheme`] as its manifest code, so model state shares one
/// numbering with the on-disk format.
pub(crate) mod scheme_code {
    use crate::scheme::Scheme;
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(scheme: &Scheme, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(scheme.code())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Scheme, D::Error> {
        let code = u8::deserialize(d)?;
        Scheme::from_code(code)
            .ok_or_else(|| D::Error::custom(format!("unknown scheme code {code}")))
    }
}

/// A way of checkpointing: a base scheme for every checkpoint, and for a
/// scheme whose restores read a chain (incremental), optionally a full
/// checkpoint every `k`-th time to bound that chain; with lower tiers
/// (see [`CheckpointerBuilder::tier`](crate::CheckpointerBuilder::tier)),
/// also how often a checkpoint drains to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Plan {
    #[serde(with = "scheme_code")]
    base: Scheme,
    full_every: Option<u32>,
    drain_every: Option<u32>,
}

impl Plan {
    /// Every checkpoint by `scheme`, with whatever bases the scheme itself
    /// takes.
    pub fn only(scheme: Scheme) -> Self {
        Plan {
            base: scheme,
            full_every: None,
            drain_every: None,
        }
    }

    /// Checkpoints by `scheme`, with every `k`-th one a full checkpoint.
    /// `k < 2` and a full base scheme mean plain [`Plan::only`].
    pub fn with_full_every(scheme: Scheme, k: u32) -> Self {
        Plan {
            base: scheme,
            full_every: (k >= 2 && scheme != Scheme::Full).then_some(k),
            drain_every: None,
        }
    }

    /// This plan, with every `k`-th committed checkpoint drained to the
    /// lower tiers (`k = 0` counts as 1: every checkpoint).
    #[must_use]
    pub fn draining_every(self, k: u32) -> Self {
        Plan {
            drain_every: Some(k.max(1)),
            ..self
        }
    }

    /// This plan without a drain ratio (a checkpointer with one tier).
    #[must_use]
    pub fn without_drains(self) -> Self {
        Plan {
            drain_every: None,
            ..self
        }
    }

    /// The scheme that takes most checkpoints.
    pub fn base(&self) -> Scheme {
        self.base
    }

    /// `Some(k)` when every `k`-th checkpoint is a full one.
    pub fn full_every(&self) -> Option<u32> {
        self.full_every
    }

    /// `Some(k)` when every `k`-th checkpoint drains to the lower tiers;
    /// `None` for a checkpointer with one tier.
    pub fn drain_every(&self) -> Option<u32> {
        self.drain_every
    }

    /// The scheme of the `n`-th checkpoint of this plan (counting from 0,
    /// the first being a full base when the plan has one).
    pub fn scheme_of(&self, n: u64) -> Scheme {
        match self.full_every {
            Some(k) if n.is_multiple_of(u64::from(k)) => Scheme::Full,
            _ => self.base,
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.base)?;
        if let Some(k) = self.full_every {
            write!(f, " with a full base every {k}")?;
        }
        match self.drain_every {
            Some(1) => write!(f, ", draining every checkpoint"),
            Some(k) => write!(f, ", draining every {k}th"),
            None => Ok(()),
        }
    }
}

/// A set of schemes (e.g. those a policy may choose from).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SchemeSet(u8);

impl SchemeSet {
    /// No scheme.
    pub const fn empty() -> Self {
        SchemeSet(0)
    }

    /// Every scheme this build knows.
    pub fn all() -> Self {
        Self::of(&[Scheme::Full, Scheme::Incremental, Scheme::CopyOnWrite])
    }

    /// The schemes listed.
    pub fn of(schemes: &[Scheme]) -> Self {
        schemes.iter().fold(Self::empty(), |set, s| set.with(*s))
    }

    /// This set plus `scheme`.
    #[must_use]
    pub fn with(self, scheme: Scheme) -> Self {
        SchemeSet(self.0 | Self::bit(scheme))
    }

    /// True when `scheme` is in the set.
    pub fn contains(&self, scheme: Scheme) -> bool {
        self.0 & Self::bit(scheme) != 0
    }

    /// True when the set has no scheme.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// The schemes in the set, in code order.
    pub fn iter(&self) -> impl Iterator<Item = Scheme> + '_ {
        (0..8u8)
            .filter(|code| self.0 & (1 << code) != 0)
            .filter_map(Scheme::from_code)
    }

    fn bit(scheme: Scheme) -> u8 {
        1u8.checked_shl(u32::from(scheme.code())).unwrap_or(0)
    }
}

impl Default for SchemeSet {
    fn default() -> Self {
        Self::all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_normalize_and_cycle() {
        assert_eq!(
            Plan::with_full_every(Scheme::Full, 4),
            Plan::only(Scheme::Full)
        );
        assert_eq!(
            Plan::with_full_every(Scheme::Incremental, 1),
            Plan::only(Scheme::Incremental)
        );
        let p = Plan::with_full_every(Scheme::Incremental, 3);
        let seq: Vec<_> = (0..6).map(|n| p.scheme_of(n)).collect();
        assert_eq!(
            seq,
            [
                Scheme::Full,
                Scheme::Incremental,
                Scheme::Incremental,
                Scheme::Full,
                Scheme::Incremental,
                Scheme::Incremental
            ]
        );
        assert_eq!(p.to_string(), "incremental with a full base every 3");
        let drained = p.draining_every(4);
        assert_eq!(drained.drain_every(), Some(4));
        assert_eq!(drained.scheme_of(3), Scheme::Full);
        assert_eq!(
            drained.to_string(),
            "incremental with a full base every 3, draining every 4th"
        );
        assert_eq!(
            Plan::only(Scheme::Full).draining_every(0).drain_every(),
            Some(1)
        );
        assert_eq!(drained.without_drains(), p);
    }

    #[test]
    fn scheme_sets() {
        let set = SchemeSet::of(&[Scheme::Incremental, Scheme::CopyOnWrite]);
        assert!(set.contains(Scheme::Incremental) && !set.contains(Scheme::Full));
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            [Scheme::Incremental, Scheme::CopyOnWrite]
        );
        assert!(SchemeSet::empty().is_empty() && !SchemeSet::all().is_empty());
    }
}
