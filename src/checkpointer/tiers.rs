//! The checkpointer's side of multi-level checkpoints: which committed
//! checkpoints drain to the lower tiers (every k-th: the drain ratio, a
//! knob a policy may turn), waiting for drains, their status and events,
//! and restore across tiers.

use super::Checkpointer;
use crate::catalog::Pins;
use crate::error::{Error, Result};
use crate::format::layout::ManifestName;
use crate::recover::{self, RestoredTier};
use crate::state::State;
use crate::storage::Storage;
use crate::tier::{
    DrainEvent, Drainer, TierRecovered, TierStatus, find_step_across, promote, restore_across,
};
use crate::{Restored, catalog};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

const DEFAULT_DRAIN_RETRY: Duration = Duration::from_secs(1);

/// The builder's tier options (see
/// [`CheckpointerBuilder::tier`](crate::CheckpointerBuilder::tier)).
#[derive(Debug)]
pub(crate) struct TierOptions {
    /// Named tiers, fastest first.
    pub tiers: Vec<(String, Arc<dyn Storage>)>,
    /// `keep_last` of named tiers.
    pub keep_last: Vec<(String, usize)>,
    pub drain_every: u32,
    pub drain_retry: Duration,
}

impl Default for TierOptions {
    fn default() -> Self {
        TierOptions {
            tiers: Vec::new(),
            keep_last: Vec::new(),
            drain_every: 1,
            drain_retry: DEFAULT_DRAIN_RETRY,
        }
    }
}

impl TierOptions {
    /// Checks the tier options: unique non-empty names, not both
    /// `storage` and tiers, keep_last of named tiers, drain ratio, and no
    /// lower tier for a rank of a group.
    pub(crate) fn validate(&self, has_storage: bool, in_group: bool) -> Result<()> {
        let invalid = |option, reason: String| Err(Error::InvalidConfig { option, reason });
        if self.tiers.is_empty() {
            return Ok(());
        }
        if has_storage {
            return invalid(
                "tier",
                "give either .storage(s) or .tier(name, s) (the first tier is the storage), not both".to_owned(),
            );
        }
        for (i, (name, _)) in self.tiers.iter().enumerate() {
            if name.is_empty() {
                return invalid("tier", "a tier's name must not be empty".to_owned());
            }
            if self.tiers.iter().take(i).any(|(other, _)| other == name) {
                return invalid("tier", format!("two tiers are named {name:?}"));
            }
        }
        for (name, n) in &self.keep_last {
            if !self.tiers.iter().any(|(tier, _)| tier == name) {
                return invalid("tier_keep_last", format!("no tier is named {name:?}"));
            }
            if *n == 0 {
                return invalid(
                    "tier_keep_last",
                    format!("tier {name:?} must keep at least 1 checkpoint"),
                );
            }
        }
        if self.drain_every == 0 {
            return invalid(
                "drain_every",
                "must be at least 1 (1 drains every checkpoint)".to_owned(),
            );
        }
        if in_group && self.tiers.len() > 1 {
            return invalid(
                "tier",
                "a rank of a group takes one storage (lower tiers for groups are not supported yet)".to_owned(),
            );
        }
        Ok(())
    }

    /// Retention's `keep_last` on tier `index` (`default` unless named).
    pub(crate) fn keep_last_of(&self, index: usize, default: usize) -> usize {
        self.tiers
            .get(index)
            .and_then(|(name, _)| self.keep_last.iter().rev().find(|(tier, _)| tier == name))
            .map_or(default, |&(_, n)| n)
    }

    /// Starts one drain thread per lower tier, reading from `first`, the
    /// first tier, whose retention honours `pins`; `undrained` commits on
    /// the first tier are newer than what every lower tier holds (`None`:
    /// a lower tier holds nothing). `None` with fewer than two tiers.
    pub(crate) fn start_drains(
        &self,
        first: &Arc<dyn Storage>,
        pins: &Pins,
        default_keep_last: usize,
        undrained: Option<usize>,
    ) -> Result<Option<Tiers>> {
        let Some(((first_name, _), rest)) = self.tiers.split_first() else {
            return Ok(None);
        };
        if rest.is_empty() {
            return Ok(None);
        }
        let mut lower = Vec::new();
        for (offset, (name, storage)) in rest.iter().enumerate() {
            let drainer = Drainer::start(
                name,
                Arc::clone(first),
                Arc::clone(storage),
                self.keep_last_of(offset + 1, default_keep_last),
                self.drain_retry,
                pins.clone(),
            )?;
            lower.push(LowerTier {
                name: name.clone(),
                storage: Arc::clone(storage),
                drainer,
            });
        }
        Ok(Some(Tiers::new(
            first_name.clone(),
            lower,
            self.drain_every,
            undrained,
        )))
    }
}

/// The tiers of a checkpointer given more than one.
#[derive(Debug)]
pub(crate) struct Tiers {
    /// The first tier's name (its storage is the checkpointer's).
    first: String,
    lower: Vec<LowerTier>,
    /// Drain every k-th committed checkpoint.
    drain_every: u32,
    /// Checkpoints committed since the last one queued for a drain.
    since_drain: u32,
    /// Every drain's event, for the cost model.
    events: Receiver<DrainEvent>,
}

/// One lower tier and its drain.
#[derive(Debug)]
pub(crate) struct LowerTier {
    pub name: String,
    pub storage: Arc<dyn Storage>,
    pub drainer: Drainer,
}

impl Tiers {
    /// Tiers below the `first`, draining every `drain_every`-th commit,
    /// counted on from `undrained` commits not drained yet (`None`: the
    /// lower tiers hold nothing, and the first commit drains at once).
    pub(crate) fn new(
        first: String,
        lower: Vec<LowerTier>,
        drain_every: u32,
        undrained: Option<usize>,
    ) -> Self {
        let (sender, events) = channel();
        for tier in &lower {
            tier.drainer.subscribe(sender.clone());
        }
        Tiers {
            first,
            lower,
            drain_every,
            since_drain: undrained
                .map_or(u32::MAX, |n| u32::try_from(n).unwrap_or(u32::MAX))
                .min(drain_every.saturating_sub(1)),
            events,
        }
    }

    /// The drain ratio in force.
    pub(crate) fn drain_every(&self) -> u32 {
        self.drain_every
    }

    /// Drains every `k`-th commit from now on (`k ≥ 1`).
    pub(crate) fn set_drain_every(&mut self, k: u32) {
        self.drain_every = k.max(1);
    }

    /// The drains finished or failed since the last call, each with its
    /// tier's index (1 for the first lower tier).
    pub(crate) fn take_events(&self) -> Vec<(u8, DrainEvent)> {
        self.events
            .try_iter()
            .map(|event| {
                let name = match &event {
                    DrainEvent::Drained { tier, .. }
                    | DrainEvent::Failed { tier, .. }
                    | DrainEvent::Superseded { tier, .. } => tier.as_str(),
                };
                let index = self.lower.iter().position(|t| t.name == name).unwrap_or(0) + 1;
                (u8::try_from(index).unwrap_or(u8::MAX), event)
            })
            .collect()
    }

    /// True while a drain to any lower tier runs.
    pub(crate) fn draining(&self) -> bool {
        self.lower.iter().any(|t| t.drainer.busy())
    }

    /// The lower tiers' storages, in order.
    pub(crate) fn lower_storages(&self) -> Vec<Arc<dyn Storage>> {
        self.lower.iter().map(|t| Arc::clone(&t.storage)).collect()
    }

    /// Counts a commit; queues it for every lower tier when it is the
    /// k-th. Returns whether it was queued.
    pub(crate) fn committed(&mut self, name: ManifestName) -> bool {
        self.since_drain += 1;
        if self.since_drain < self.drain_every {
            return false;
        }
        self.since_drain = 0;
        for tier in &self.lower {
            tier.drainer.queue(name);
        }
        true
    }

    /// Waits for every tier's queued drain (one attempt on a failing one).
    pub(crate) fn wait(&self) {
        for tier in &self.lower {
            tier.drainer.wait();
        }
    }

    /// Every tier with its storage, first tier first.
    fn all<'a>(&'a self, first: &'a dyn Storage) -> Vec<(String, &'a dyn Storage)> {
        std::iter::once((self.first.clone(), first))
            .chain(
                self.lower
                    .iter()
                    .map(|t| (t.name.clone(), t.storage.as_ref())),
            )
            .collect()
    }
}

impl Checkpointer {
    /// Drains every `k`-th committed checkpoint to the lower tiers from
    /// now on (see [`CheckpointerBuilder::tier`](crate::CheckpointerBuilder::tier));
    /// the next commit drains when `k` or more have passed since the last
    /// drained one. This is the drain ratio: fewer drains cost less
    /// remote bandwidth, more lose less work when the first tier is lost.
    ///
    /// [`Error::InvalidConfig`] for `k == 0`, or without lower tiers.
    pub fn set_drain_every(&mut self, k: u32) -> Result<()> {
        let tiers = self.tiers.as_mut().ok_or_else(|| Error::InvalidConfig {
            option: "drain_every",
            reason: "this checkpointer has no lower tier; add one with .tier(name, storage)"
                .to_owned(),
        })?;
        if k == 0 {
            return Err(Error::InvalidConfig {
                option: "drain_every",
                reason: "must be at least 1 (1 drains every checkpoint)".to_owned(),
            });
        }
        tiers.set_drain_every(k);
        if self.plan.drain_every().is_some() {
            self.plan = self.plan.draining_every(k);
        }
        Ok(())
    }

    /// The drain ratio in force: every k-th checkpoint drains. `None`
    /// without lower tiers.
    pub fn drain_every(&self) -> Option<u32> {
        self.tiers.as_ref().map(Tiers::drain_every)
    }

    /// Where each lower tier's drains stand (empty without lower tiers).
    pub fn tiers(&self) -> Vec<TierStatus> {
        self.tiers.as_ref().map_or_else(Vec::new, |tiers| {
            tiers.lower.iter().map(|t| t.drainer.status()).collect()
        })
    }

    /// Lists the checkpoints on the tier `name` (as [`list`](Self::list)
    /// does for the first tier). [`Error::InvalidConfig`] when no tier has
    /// that name.
    pub fn list_tier(&self, name: &str) -> Result<catalog::Listing> {
        let tiers = self.tiers.as_ref();
        if tiers.is_some_and(|t| t.first == name) {
            return self.list();
        }
        let tier = tiers
            .and_then(|t| t.lower.iter().find(|tier| tier.name == name))
            .ok_or_else(|| Error::InvalidConfig {
                option: "tier",
                reason: format!("this checkpointer has no lower tier named {name:?}"),
            })?;
        catalog::list(tier.storage.as_ref())
    }

    /// A channel that receives every [`DrainEvent`] of every lower tier
    /// from now on (drains done, failed and retried, superseded).
    pub fn subscribe_drains(&mut self) -> Receiver<DrainEvent> {
        let (sender, receiver) = channel();
        if let Some(tiers) = &self.tiers {
            for tier in &tiers.lower {
                tier.drainer.subscribe(sender.clone());
            }
        }
        receiver
    }

    /// Reports the drains finished or failed since the last call to the
    /// cost model: each one done as a checkpoint event of its tier (its
    /// copy time against the bytes copied), each failure as a storage
    /// error.
    pub(super) fn report_drains(&mut self, logical_bytes: u64) {
        let Some(tiers) = &self.tiers else {
            return;
        };
        for (index, event) in tiers.take_events() {
            self.adaptive.drained(index, &event, logical_bytes);
        }
    }

    /// Queues the commit `name` for the lower tiers when it is due.
    pub(super) fn drain_committed(&mut self, name: ManifestName) -> bool {
        self.tiers.as_mut().is_some_and(|t| t.committed(name))
    }

    /// Waits for queued drains (see [`flush`](Self::flush)).
    pub(super) fn wait_drains(&self) {
        if let Some(tiers) = &self.tiers {
            tiers.wait();
        }
    }

    /// [`restore_latest`](Self::restore_latest) with lower tiers.
    pub(super) fn restore_tiers<S: State>(&mut self) -> Result<Option<Restored<S>>> {
        let started = Instant::now();
        let Some(tiers) = &self.tiers else {
            return Ok(None);
        };
        let first = Arc::clone(&self.storage);
        let all = tiers.all(first.as_ref());
        let found = {
            let mut progress = super::restore::progress_events(&mut self.adaptive);
            restore_across::<S>(&all, &mut progress)?
        };
        let Some(TierRecovered {
            recovered,
            tier,
            damaged_first,
        }) = found
        else {
            return Ok(None);
        };
        self.next_seq = self.next_seq.max(recovered.manifest.seq + 1);
        let index = tier.index;
        let mut restored = self.resumed(recovered, started, None, Some(damaged_first), index)?;
        restored.tier = Some(tier);
        Ok(Some(restored))
    }

    /// [`restore_at`](Self::restore_at) with lower tiers: the newest
    /// checkpoint of `step` on any tier, copied into the first tier when
    /// it came from a lower one.
    pub(super) fn restore_tiers_at<S: State>(&mut self, step: u64) -> Result<Option<Restored<S>>> {
        let started = Instant::now();
        let Some(tiers) = &self.tiers else {
            return Ok(None);
        };
        let first = Arc::clone(&self.storage);
        let all = tiers.all(first.as_ref());
        let Some((name, index)) = find_step_across(&all, step)? else {
            return Ok(None);
        };
        let Some((tier_name, storage)) = all.get(index).map(|(n, s)| (n.clone(), *s)) else {
            return Ok(None);
        };
        let recovered = {
            let mut progress = super::restore::progress_events(&mut self.adaptive);
            recover::restore_named::<S>(storage, &name, &mut progress)?
        };
        let first_tier_lost = catalog::scan(first.as_ref())?.0.is_empty();
        if index > 0 {
            promote(storage, first.as_ref(), &name)?;
        }
        self.next_seq = self.next_seq.max(recovered.manifest.seq + 1);
        let mut restored = self.resumed(recovered, started, None, None, index)?;
        restored.tier = Some(RestoredTier {
            name: tier_name,
            index,
            first_tier_lost: first_tier_lost && index > 0,
            promoted: index > 0,
            unreachable: Vec::new(),
        });
        Ok(Some(restored))
    }
}
