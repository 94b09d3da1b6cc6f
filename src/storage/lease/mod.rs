//! One writer per store, arbitrated by the store itself: a lease that a
//! checkpointer takes when it opens a store and renews while it lives.
//!
//! A store that cannot lock (an object store, a shared directory, memory)
//! is kept to one writer by *epochs*. A writer takes epoch `n + 1` by
//! creating `lease/<n + 1>` with [`Storage::put_if_absent`], so of any
//! number of contenders exactly one wins it, and proves it is alive by
//! rewriting `lease/<n + 1>.beat` every quarter of the lease's TTL. A
//! second writer is refused ([`Error::WriterActive`]) while the holder
//! lives: on the same machine (same kernel boot and pid namespace) it asks
//! the process table, so a restart after a crash takes over at once;
//! elsewhere it watches the beat for one TTL and takes over only if the
//! beat stood still (or the holder released it when it was dropped).
//!
//! **Fencing.** A holder that was paused or cut off while another took
//! over must write nothing more. Every write or delete through
//! [`LeasedStorage`] first checks that the lease is *valid*: renewed (beat
//! written, then `lease/` listed and no higher epoch seen) less than half
//! a TTL ago; otherwise it renews first, and on seeing a higher epoch fails
//! with [`Error::Fenced`] for good. A taker waits a whole TTL after the
//! holder's last beat, so a write that passed the check lands before the
//! takeover unless it takes longer than half a TTL. Retention lists what
//! it will delete *before* its deletes pass the check, so it never deletes
//! an object written after a takeover: everything it lists was written
//! while no newer epoch existed.
//!
//! A store whose handle already keeps every other writer out
//! ([`Storage::holds_writer_lock`]: an exclusive [`FsStorage`](super::FsStorage))
//! needs no lease, and gets none.

mod identity;
mod record;

use crate::error::{Error, Result};
use crate::storage::Storage;
use identity::Identity;
use record::{Beat, Claim, LEASE, beat_key, claim_key, epoch_of, is_claim};
use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a silent lease holder keeps a store by default: a writer that
/// died on another machine frees its store this long after its last
/// renewal.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);

/// The shortest lease TTL a checkpointer accepts.
pub const MIN_LEASE_TTL: Duration = Duration::from_millis(200);

/// Longest a watcher waits on a claim that asks for more (a claim is
/// read from the store, so its TTL is not trusted blindly).
const MAX_WATCH: Duration = Duration::from_secs(600);

/// Contenders this writer loses an epoch to before it gives up.
const MAX_CONTESTS: usize = 8;

/// Lease holders alive in this process, so that a second checkpointer of
/// this process on the same store is refused at once and a holder dropped
/// without releasing is known to be gone.
static LIVE_HOLDERS: Mutex<BTreeSet<u128>> = Mutex::new(BTreeSet::new());

fn live_holders() -> MutexGuard<'static, BTreeSet<u128>> {
    LIVE_HOLDERS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Takes the writer lease of `storage` for a checkpointer, or returns the
/// store unchanged when its handle already holds a writer lock.
///
/// Fails with [`Error::WriterActive`] while another writer holds the
/// lease, and with [`Error::Unsupported`] on a backend without
/// [`Storage::put_if_absent`].
pub(crate) fn hold(storage: Arc<dyn Storage>, ttl: Duration) -> Result<Arc<dyn Storage>> {
    if storage.holds_writer_lock() {
        return Ok(storage);
    }
    let lease = Lease::acquire(storage.clone(), ttl)?;
    Ok(Arc::new(LeasedStorage {
        inner: storage,
        lease: Arc::new(lease),
    }))
}

/// A store written under a lease: every write and delete first checks
/// that the lease is still this writer's (see the module docs).
#[derive(Debug)]
pub(crate) struct LeasedStorage {
    inner: Arc<dyn Storage>,
    lease: Arc<Lease>,
}

impl LeasedStorage {
    fn check(&self) -> Result<()> {
        self.lease.shared.ensure_valid()
    }
}

impl Storage for LeasedStorage {
    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        self.check()?;
        self.inner.put(key, data)
    }
    fn get(&self, key: &str) -> Result<Vec<u8>> {
        self.inner.get(key)
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.inner.list(prefix)
    }
    fn delete(&self, key: &str) -> Result<()> {
        self.check()?;
        self.inner.delete(key)
    }
    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>> {
        self.inner.get_range(key, range)
    }
    fn read_into(&self, key: &str, offset: u64, bufs: &mut [&mut [u8]]) -> Result<()> {
        self.inner.read_into(key, offset, bufs)
    }
    fn read_gap_bytes(&self) -> u64 {
        self.inner.read_gap_bytes()
    }
    fn delete_many(&self, keys: &[String]) -> Result<()> {
        self.check()?;
        self.inner.delete_many(keys)
    }
    fn put_parts(&self, key: &str, parts: &[&[u8]]) -> Result<()> {
        self.check()?;
        self.inner.put_parts(key, parts)
    }
    fn put_if_absent(&self, key: &str, data: &[u8]) -> Result<bool> {
        self.check()?;
        self.inner.put_if_absent(key, data)
    }
    fn holds_writer_lock(&self) -> bool {
        true
    }
}

/// A held lease: renewed by a thread until dropped, then released.
#[derive(Debug)]
struct Lease {
    shared: Arc<Shared>,
    stop: Option<Sender<()>>,
    renewer: Option<JoinHandle<()>>,
}

impl Lease {
    fn acquire(storage: Arc<dyn Storage>, ttl: Duration) -> Result<Lease> {
        let me = Identity::current();
        let claim = Claim {
            holder: rand::random(),
            identity: me.clone(),
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
        };
        for _ in 0..MAX_CONTESTS {
            let top = top_epoch(storage.as_ref())?;
            let held = match top {
                0 => None,
                _ => read_claim(storage.as_ref(), top)?,
            };
            // A retried create may find the claim its own first attempt
            // made: the epoch is then this writer's.
            let epoch = if held.as_ref().is_some_and(|c| c.holder == claim.holder) {
                top
            } else {
                if top > 0 {
                    wait_until_free(storage.as_ref(), top, held, &me, ttl)?;
                }
                if !storage.put_if_absent(&claim_key(top + 1), &claim.encode())? {
                    continue; // another contender won it; look again
                }
                top + 1
            };
            let shared = Arc::new(Shared {
                storage,
                epoch,
                holder: claim.holder,
                ttl,
                renewal: Mutex::new(Renewal::default()),
            });
            live_holders().insert(claim.holder);
            let lease = Lease::start(shared);
            lease.shared.ensure_valid()?;
            lease.shared.forget_older_epochs();
            return Ok(lease);
        }
        Err(Error::WriterActive {
            holder: "several writers are contending for it at once".to_owned(),
        })
    }

    fn start(shared: Arc<Shared>) -> Lease {
        let (stop, stopped) = mpsc::channel::<()>();
        let beating = shared.clone();
        let period = shared.ttl / 4;
        let renewer = std::thread::Builder::new()
            .name("ckpt-lease".to_owned())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(period) {
                    // A failed renewal lets the lease lapse: writes renew
                    // it themselves, or learn they were fenced.
                    if let Err(Error::Fenced { .. }) = beating.renew() {
                        break;
                    }
                }
            })
            .ok();
        Lease {
            shared,
            stop: Some(stop),
            renewer,
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(renewer) = self.renewer.take() {
            let _ = renewer.join();
        }
        self.shared.release();
        live_holders().remove(&self.shared.holder);
    }
}

/// What the writer and the renewing thread share.
#[derive(Debug)]
struct Shared {
    storage: Arc<dyn Storage>,
    epoch: u64,
    holder: u128,
    ttl: Duration,
    renewal: Mutex<Renewal>,
}

#[derive(Debug, Default)]
struct Renewal {
    beats: u64,
    /// Until when a write may go ahead without renewing.
    valid_until: Option<Instant>,
    /// Who took the store over, once this writer saw it.
    fenced_by: Option<String>,
}

impl Shared {
    fn renewal(&self) -> MutexGuard<'_, Renewal> {
        self.renewal.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ok when a write may go ahead now; renews first when the last
    /// renewal is more than half a TTL old.
    fn ensure_valid(&self) -> Result<()> {
        self.renew_unless(|renewal| {
            renewal
                .valid_until
                .is_some_and(|until| Instant::now() < until)
        })
    }

    /// Renews now (the beat watchers look for).
    fn renew(&self) -> Result<()> {
        self.renew_unless(|_| false)
    }

    /// [`Error::Fenced`] once fenced; otherwise renews unless `fresh`.
    fn renew_unless(&self, fresh: impl FnOnce(&Renewal) -> bool) -> Result<()> {
        let mut renewal = self.renewal();
        if let Some(by) = &renewal.fenced_by {
            return Err(Error::Fenced { holder: by.clone() });
        }
        if fresh(&renewal) {
            return Ok(());
        }
        self.renew_locked(&mut renewal)
    }

    /// Writes the next beat, then checks that no newer epoch exists; the
    /// lease is valid for half a TTL from when the beat was sent.
    fn renew_locked(&self, renewal: &mut Renewal) -> Result<()> {
        let sent = Instant::now();
        renewal.beats += 1;
        let beat = Beat {
            holder: self.holder,
            count: renewal.beats,
            released: false,
        };
        self.storage.put(&beat_key(self.epoch), &beat.encode())?;
        let top = top_epoch(self.storage.as_ref())?;
        if top > self.epoch {
            let claim = read_claim(self.storage.as_ref(), top).ok().flatten();
            let by = describe(claim.as_ref(), top);
            renewal.valid_until = None;
            renewal.fenced_by = Some(by.clone());
            return Err(Error::Fenced { holder: by });
        }
        renewal.valid_until = Some(sent + self.ttl / 2);
        Ok(())
    }

    /// Tells watchers the store is free (best effort: a holder that cannot
    /// reach its store is judged by its process, or waited out).
    fn release(&self) {
        let mut renewal = self.renewal();
        if renewal.fenced_by.is_some() {
            return;
        }
        renewal.valid_until = None;
        let beat = Beat {
            holder: self.holder,
            count: renewal.beats + 1,
            released: true,
        };
        let _ = self.storage.put(&beat_key(self.epoch), &beat.encode());
    }

    /// Deletes the claims and beats of older epochs (best effort: they
    /// only cost a listing entry each).
    fn forget_older_epochs(&self) {
        let Ok(keys) = self.storage.list(LEASE) else {
            return;
        };
        let old: Vec<String> = keys
            .into_iter()
            .filter(|k| epoch_of(k).is_some_and(|e| e < self.epoch))
            .collect();
        let _ = self.storage.delete_many(&old);
    }
}

/// The newest epoch claimed in the store (0: never leased).
fn top_epoch(storage: &dyn Storage) -> Result<u64> {
    Ok(storage
        .list(LEASE)?
        .iter()
        .filter(|k| is_claim(k))
        .filter_map(|k| epoch_of(k))
        .max()
        .unwrap_or(0))
}

/// The claim of `epoch`; `None` when it is gone or not one this version
/// wrote.
fn read_claim(storage: &dyn Storage, epoch: u64) -> Result<Option<Claim>> {
    read_record(storage, &claim_key(epoch), Claim::decode)
}

/// The beat of `epoch`, as [`read_claim`].
fn read_beat(storage: &dyn Storage, epoch: u64) -> Result<Option<Beat>> {
    read_record(storage, &beat_key(epoch), Beat::decode)
}

fn read_record<T>(
    storage: &dyn Storage,
    key: &str,
    decode: fn(&[u8]) -> Option<T>,
) -> Result<Option<T>> {
    match storage.get(key) {
        Ok(bytes) => Ok(decode(&bytes)),
        Err(Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The holder of epoch `epoch`, as messages name it.
fn describe(claim: Option<&Claim>, epoch: u64) -> String {
    claim.map_or_else(|| format!("lease epoch {epoch}"), |c| c.describe(epoch))
}

/// Returns once epoch `top`'s holder (who made `claim`, as read) is gone
/// (released, dead, or silent for its TTL); [`Error::WriterActive`] while
/// it lives.
fn wait_until_free(
    storage: &dyn Storage,
    top: u64,
    claim: Option<Claim>,
    me: &Identity,
    ttl: Duration,
) -> Result<()> {
    let first = read_beat(storage, top)?;
    let active = |claim: &Option<Claim>| Error::WriterActive {
        holder: describe(claim.as_ref(), top),
    };
    let released = |beat: &Option<Beat>| {
        beat.is_some_and(|b| b.released && claim.as_ref().is_none_or(|c| c.holder == b.holder))
    };
    if released(&first) {
        return Ok(());
    }
    if let Some(held) = &claim {
        if held.identity.is_this_process(me) {
            let live = live_holders().contains(&held.holder);
            return if live { Err(active(&claim)) } else { Ok(()) };
        }
        if me.shares_process_table(&held.identity) {
            return if held.identity.is_running() {
                Err(active(&claim))
            } else {
                Ok(())
            };
        }
    }
    // Another machine (or one whose processes this one cannot see): free
    // only if its beat stands still for the holder's whole TTL.
    let watch = claim
        .as_ref()
        .map_or(ttl, |c| Duration::from_millis(c.ttl_ms))
        .min(MAX_WATCH);
    let started = Instant::now();
    while started.elapsed() < watch {
        std::thread::sleep((watch / 8).min(Duration::from_millis(500)));
        let now = read_beat(storage, top)?;
        if now != first {
            return if released(&now) {
                Ok(())
            } else {
                Err(active(&claim))
            };
        }
    }
    Ok(())
}
