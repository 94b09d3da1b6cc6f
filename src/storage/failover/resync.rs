//! Admission of a standby (at build time and on failback) and the
//! re-sync that makes a mirrored standby a copy of the active.

use super::call::CallResult;
use super::op::{Op, Output};
use super::{
    Backend, FailoverEvent, FailoverMode, FailoverStorage, Gate, PROBE_PREFIX, Resync, Syncing,
};
use crate::error::{Error, Result};
use crate::storage::Storage;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

/// Threads that copy objects during a re-sync.
const RESYNC_THREADS: usize = 8;
/// Pre-copy rounds at most before the exclusive final pass of a re-sync.
const PRECOPY_ROUNDS: usize = 8;
/// Few enough written keys to copy with the gate closed.
const FINAL_PASS_KEYS: usize = 16;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Admission {
    Initial,
    Failback,
}

impl FailoverStorage {
    pub(super) fn admit(
        &self,
        name: String,
        storage: Arc<dyn Storage>,
        how: Admission,
    ) -> Result<Resync> {
        let _one_at_a_time = self
            .admission
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let started = Instant::now();
        let refuse = |reason: String| Error::AdmitRefused {
            backend: name.clone(),
            reason,
        };
        let (backend, active, epoch) = {
            let mut st = self.state();
            if matches!(st.gate, Gate::Down { .. }) {
                return Err(refuse(
                    "the pair is down; open a new FailoverStorage instead".to_owned(),
                ));
            }
            if let Some(standby) = &st.standby {
                return Err(refuse(format!(
                    "the pair already has a standby ({:?})",
                    standby.name
                )));
            }
            if st.active.is(&storage) {
                return Err(refuse("it is the active backend".to_owned()));
            }
            // A failed backend keeps its count of abandoned calls.
            let backend = match st.failed.iter().position(|b| b.is(&storage)) {
                Some(i) => {
                    let old = st.failed.remove(i);
                    Arc::new(Backend {
                        name: name.clone(),
                        storage: Arc::clone(&old.storage),
                        running: Arc::clone(&old.running),
                        set_aside: AtomicBool::new(false),
                    })
                }
                None => Backend::new(name.clone(), storage),
            };
            (backend, Arc::clone(&st.active), st.epoch)
        };
        let result = self
            .wait_for_abandoned_calls(&backend)
            .and_then(|()| self.health_check(&backend))
            .and_then(|()| match self.mode {
                FailoverMode::Shared => self
                    .check_same_store(&active, &backend)
                    .map(|()| Resync::default()),
                FailoverMode::Mirrored => self.resync(&active, &backend, epoch, how),
            });
        let mut st = self.state();
        if st.syncing.is_some() {
            st.syncing = None;
        }
        // The pair may have gone down while this waited (a relocation with
        // no standby leaves the epoch as it was): a standby then would
        // serve nothing, and stats would show one beside `down`.
        let went_down = matches!(st.gate, Gate::Down { .. });
        let outcome = match result {
            _ if went_down => Err(
                "the pair went down while it was being admitted; open a new FailoverStorage instead"
                    .to_owned(),
            ),
            Ok(mut resync) if st.epoch == epoch && st.standby.is_none() => {
                resync.duration = started.elapsed();
                st.standby = Some(Arc::clone(&backend));
                if how == Admission::Failback {
                    st.counters.failbacks += 1;
                }
                Ok(resync)
            }
            Ok(_) => Err("the active failed while it was being admitted".to_owned()),
            Err(reason) => Err(reason),
        };
        if outcome.is_err() {
            st.failed.push(backend);
        }
        if matches!(st.gate, Gate::Resyncing) {
            st.gate = Gate::Open;
            self.changed.notify_all();
        }
        drop(st);
        match outcome {
            Ok(resync) => {
                if how == Admission::Failback {
                    self.emit(vec![FailoverEvent::FailedBack {
                        standby: name.clone(),
                        resync,
                    }]);
                }
                Ok(resync)
            }
            Err(reason) => Err(refuse(reason)),
        }
    }

    fn wait_for_abandoned_calls(&self, backend: &Backend) -> std::result::Result<(), String> {
        let deadline = Instant::now() + self.config.admit_wait;
        loop {
            let running = backend.running.load(Ordering::SeqCst);
            if running == 0 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{running} operation(s) started before its failure are still running on it; wait for them to end (or restart the process)"
                ));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Makes `target` a copy of `active`: a first pass while operations go
    /// on, then a short exclusive pass for what they wrote meanwhile.
    fn resync(
        &self,
        active: &Arc<Backend>,
        target: &Arc<Backend>,
        epoch: u64,
        how: Admission,
    ) -> std::result::Result<Resync, String> {
        let id = {
            let mut st = self.state();
            st.next_sync += 1;
            let id = st.next_sync;
            st.syncing = Some(Syncing {
                id,
                backend: Arc::clone(target),
                dirty: BTreeSet::new(),
            });
            id
        };
        let mut report = Resync::default();
        let result = self
            .copy_everything(active, target, id, how, &mut report)
            .and_then(|()| self.copy_dirty_while_shrinking(active, target, id, &mut report))
            .and_then(|()| self.final_pass(active, target, id, epoch, &mut report));
        // On success the gate stays closed: `admit` installs the standby
        // and opens it in one step, so no write can slip between the two.
        result.map(|()| report)
    }

    fn still_syncing(&self, id: u64) -> std::result::Result<(), String> {
        if self.state().is_syncing(id) {
            Ok(())
        } else {
            Err("the active failed during the re-sync".to_owned())
        }
    }

    fn copy_everything(
        &self,
        active: &Arc<Backend>,
        target: &Arc<Backend>,
        id: u64,
        how: Admission,
        report: &mut Resync,
    ) -> std::result::Result<(), String> {
        let source = self.list_all(active)?;
        let existing = self.list_all(target)?;
        let mut extras = existing.difference(&source).peekable();
        if let (Admission::Initial, false, Some(first)) =
            (how, self.config.discard_standby_extras, extras.peek())
        {
            return Err(format!(
                "it holds {} object(s) the active lacks (e.g. {first:?}): it was probably the active after an earlier failover and holds newer commits; open the pair with it as the active, or set discard_standby_extras(true) to drop them",
                existing.difference(&source).count()
            ));
        }
        let tasks: Vec<Task<'_>> = source
            .iter()
            .map(|k| Task::Copy(k, existing.contains(k)))
            .chain(existing.difference(&source).map(|k| Task::Remove(k)))
            .collect();
        report.add(self.copy_many(active, target, &tasks, Some(id))?);
        Ok(())
    }

    /// Pre-copy rounds (as in live migration): copies what was written
    /// during the previous round while operations go on, until little is
    /// left for the exclusive pass or the writers outpace the copy.
    fn copy_dirty_while_shrinking(
        &self,
        active: &Arc<Backend>,
        target: &Arc<Backend>,
        id: u64,
        report: &mut Resync,
    ) -> std::result::Result<(), String> {
        let mut previous = usize::MAX;
        for _ in 0..PRECOPY_ROUNDS {
            let dirty = {
                let mut st = self.state();
                let Some(syncing) = st.syncing.as_mut().filter(|s| s.id == id) else {
                    return Err("the active failed during the re-sync".to_owned());
                };
                if syncing.dirty.len() <= FINAL_PASS_KEYS || syncing.dirty.len() >= previous {
                    return Ok(());
                }
                std::mem::take(&mut syncing.dirty)
            };
            previous = dirty.len();
            // Keys deleted since need no copy (the final pass removes them
            // from the target); a key written again meanwhile goes back into
            // the dirty set.
            let source = self.list_all(active)?;
            let tasks: Vec<Task<'_>> = dirty
                .iter()
                .filter(|k| source.contains(*k))
                .map(|k| Task::Copy(k, false))
                .collect();
            report.add(self.copy_many(active, target, &tasks, Some(id))?);
        }
        Ok(())
    }

    /// The exclusive pass: close the gate, wait for running operations,
    /// copy what was written during the first pass, compare listings.
    fn final_pass(
        &self,
        active: &Arc<Backend>,
        target: &Arc<Backend>,
        id: u64,
        epoch: u64,
        report: &mut Resync,
    ) -> std::result::Result<(), String> {
        let closed_at;
        let dirty = {
            let mut st = self.state();
            while matches!(st.gate, Gate::Relocating) {
                st = self.wait(st);
            }
            if !st.is_syncing(id) || st.epoch != epoch || !matches!(st.gate, Gate::Open) {
                return Err("the active failed during the re-sync".to_owned());
            }
            st.gate = Gate::Resyncing;
            closed_at = Instant::now();
            let drain_by = closed_at + self.config.admit_wait;
            while st.running > 0 {
                let left = drain_by.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(format!(
                        "{} operation(s) did not finish within {:?} for the final re-sync pass",
                        st.running, self.config.admit_wait
                    ));
                }
                st = self
                    .changed
                    .wait_timeout(st, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            st.syncing
                .as_mut()
                .map(|s| std::mem::take(&mut s.dirty))
                .unwrap_or_default()
        };
        let result = self.copy_keys(active, target, &dirty, report);
        report.exclusive_pause = closed_at.elapsed();
        result
    }

    fn copy_keys(
        &self,
        active: &Arc<Backend>,
        target: &Arc<Backend>,
        dirty: &BTreeSet<String>,
        report: &mut Resync,
    ) -> std::result::Result<(), String> {
        // Copy what was written (no need to compare: it is new) or is
        // missing, and remove what the active no longer has.
        let source = self.list_all(active)?;
        let existing = self.list_all(target)?;
        let tasks: Vec<Task<'_>> = source
            .iter()
            .filter(|k| dirty.contains(*k) || !existing.contains(*k))
            .map(|k| Task::Copy(k, false))
            .chain(existing.difference(&source).map(|k| Task::Remove(k)))
            .collect();
        report.add(self.copy_many(active, target, &tasks, None)?);
        Ok(())
    }

    /// Runs `tasks` on up to [`RESYNC_THREADS`] threads: backend calls are
    /// mostly waiting. With `sync`, stops as soon as that re-sync is void.
    fn copy_many(
        &self,
        active: &Arc<Backend>,
        target: &Arc<Backend>,
        tasks: &[Task<'_>],
        sync: Option<u64>,
    ) -> std::result::Result<Resync, String> {
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let work = || -> std::result::Result<Resync, String> {
            let mut part = Resync::default();
            while !stop.load(Ordering::Relaxed) {
                let Some(task) = tasks.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    break;
                };
                let copied = sync
                    .map_or(Ok(()), |id| self.still_syncing(id))
                    .and_then(|()| match *task {
                        Task::Copy(key, maybe_there) => {
                            self.copy_if_different(active, target, key, maybe_there, &mut part)
                        }
                        Task::Remove(key) => {
                            part.removed += 1;
                            self.call_ok(target, &Op::Delete(key)).map(drop)
                        }
                    });
                if let Err(e) = copied {
                    stop.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
            Ok(part)
        };
        std::thread::scope(|scope| {
            let helpers: Vec<_> = (1..RESYNC_THREADS.min(tasks.len()))
                .filter_map(|_| {
                    std::thread::Builder::new()
                        .name("ckpt-failover-resync".to_owned())
                        .spawn_scoped(scope, work)
                        .ok()
                })
                .collect();
            let mut total = work()?;
            for helper in helpers {
                match helper.join() {
                    Ok(part) => total.add(part?),
                    Err(_) => return Err("a re-sync thread panicked".to_owned()),
                }
            }
            Ok(total)
        })
    }

    fn list_all(&self, backend: &Arc<Backend>) -> std::result::Result<BTreeSet<String>, String> {
        match self.call_ok(backend, &Op::List(""))? {
            Output::Keys(keys) => Ok(keys
                .into_iter()
                .filter(|k| !k.starts_with(PROBE_PREFIX))
                .collect()),
            _ => Err(format!("{:?}: list returned no keys", backend.name)),
        }
    }

    /// Copies `key` from `active` to `target` unless `target` already holds
    /// the same bytes; removes it from `target` if `active` lacks it.
    fn copy_if_different(
        &self,
        active: &Arc<Backend>,
        target: &Arc<Backend>,
        key: &str,
        target_may_have_it: bool,
        report: &mut Resync,
    ) -> std::result::Result<(), String> {
        let data = match self.call(active, &Op::Get(key)) {
            CallResult::Ok(Output::Bytes(data)) => data,
            CallResult::NotFound => {
                // Deleted meanwhile: the target must not keep it either.
                self.call_ok(target, &Op::Delete(key))?;
                return Ok(());
            }
            CallResult::Ok(_) => return Err(format!("{:?}: get returned no bytes", active.name)),
            CallResult::Err(cause) => return Err(cause),
        };
        if target_may_have_it
            && let CallResult::Ok(Output::Bytes(existing)) = self.call(target, &Op::Get(key))
            && existing == data
        {
            return Ok(());
        }
        self.call_ok(target, &Op::Put(key, &data))?;
        report.copied += 1;
        report.bytes_copied += data.len() as u64;
        Ok(())
    }
}

/// One step of a re-sync.
enum Task<'a> {
    /// Copy the key from the active; `true` if the target may hold it
    /// already (then compare first).
    Copy(&'a str, bool),
    /// Remove the key from the target.
    Remove(&'a str),
}
