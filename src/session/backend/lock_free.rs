//! The lock-free session back end: papaya's map of per-session cells.
//!
//! Each session is a papaya entry whose value is an [`ArcCell`] pointing to the current
//! [`Record`]. papaya changes only when a session is created or removed; a save is one
//! compare-and-swap on the session's cell, and the replaced record is retired through the
//! map's own seize collector (so one guard protects both the entry and the record). Reads take
//! no lock: a guard, a hash lookup, one load, one reference count increment.
//!
//! Removal empties the cell first (a compare-and-swap to null), then removes the entry: a
//! save racing with it fails its compare-and-swap on the empty cell and reports the session
//! gone, so a deleted session is never resurrected; a reader that still finds the entry sees
//! the empty cell as absent. An emptied cell is never filled again.

use std::sync::Arc;

use super::{Backend, CasFailure};
use crate::session::key::SessionKey;
use crate::session::record::{Record, Stamp};
use crate::sync::arc_cell::ArcCell;
use crate::sync::escalate::{Attempt, Escalation, Progress};

type Cell = ArcCell<Record>;

#[cfg(not(unlocked_loom))]
mod map {
    //! papaya, behind the three calls the back end needs.
    use super::*;

    pub(super) type Guard<'a> = seize::LocalGuard<'a>;

    pub(super) struct Map(papaya::HashMap<SessionKey, Cell, foldhash::fast::RandomState>);

    impl Map {
        pub(super) fn new() -> Self {
            Map(papaya::HashMap::builder()
                .hasher(foldhash::fast::RandomState::default())
                .build())
        }

        #[inline]
        pub(super) fn guard(&self) -> Guard<'_> {
            self.0.guard()
        }

        #[inline]
        pub(super) fn get<'g>(
            &'g self,
            key: &SessionKey,
            guard: &'g Guard<'_>,
        ) -> Option<&'g Cell> {
            self.0.get(key, guard)
        }

        /// Inserts `cell` unless `key` is taken; hands it back if it was.
        pub(super) fn try_insert(
            &self,
            key: SessionKey,
            cell: Cell,
            guard: &Guard<'_>,
        ) -> Result<(), Cell> {
            self.0
                .try_insert(key, cell, guard)
                .map(drop)
                .map_err(|occupied| occupied.not_inserted)
        }

        /// Removes the entry of `key` if it still is `cell`.
        pub(super) fn remove_cell(&self, key: &SessionKey, cell: &Cell, guard: &Guard<'_>) {
            let _ = self.0.remove_if(key, |_, v| std::ptr::eq(v, cell), guard);
        }

        pub(super) fn for_each<'g>(
            &'g self,
            guard: &'g Guard<'_>,
            mut f: impl FnMut(&'g SessionKey, &'g Cell),
        ) {
            for (k, v) in self.0.iter(guard) {
                f(k, v);
            }
        }
    }
}

#[cfg(unlocked_loom)]
mod map {
    //! The model-checked stand-in for papaya (which loom cannot see into): a loom mutex around
    //! a list of shared cells in insertion order (deterministic across executions, as loom
    //! requires; keys are random). The cells and their protocol are the real ones; the cells
    //! are shared with loom's `Arc`, so loom sees the last owner's drop synchronise with every
    //! earlier access.
    use super::*;
    use crate::sync::Arc as LoomArc;
    use crate::sync::Mutex;
    use crate::sync::arc_cell::LeakGuard;

    /// Keeps every cell it handed out alive for as long as it lives, like papaya's guard.
    pub(super) struct Guard<'a> {
        held: boxcar::Vec<LoomArc<Cell>>,
        _map: std::marker::PhantomData<&'a Map>,
    }

    // SAFETY: nothing retired is ever released (as `LeakGuard`).
    unsafe impl crate::sync::arc_cell::Reclaim for Guard<'_> {
        unsafe fn retire<T: Send + Sync + 'static>(&self, ptr: *const T) {
            // SAFETY: forwarded contract.
            unsafe { LeakGuard.retire(ptr) }
        }
    }

    pub(super) struct Map(Mutex<Vec<(SessionKey, LoomArc<Cell>)>>);

    impl Map {
        pub(super) fn new() -> Self {
            Map(Mutex::new(Vec::new()))
        }

        pub(super) fn guard(&self) -> Guard<'_> {
            Guard {
                held: boxcar::Vec::new(),
                _map: std::marker::PhantomData,
            }
        }

        pub(super) fn get<'g>(
            &'g self,
            key: &SessionKey,
            guard: &'g Guard<'_>,
        ) -> Option<&'g Cell> {
            let cell = self
                .0
                .lock()
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, c)| c.clone())?;
            let i = guard.held.push(cell);
            Some(&guard.held[i])
        }

        pub(super) fn try_insert(
            &self,
            key: SessionKey,
            cell: Cell,
            _guard: &Guard<'_>,
        ) -> Result<(), Cell> {
            let mut map = self.0.lock();
            if map.iter().any(|(k, _)| *k == key) {
                return Err(cell);
            }
            map.push((key, LoomArc::new(cell)));
            Ok(())
        }

        pub(super) fn remove_cell(&self, key: &SessionKey, cell: &Cell, _guard: &Guard<'_>) {
            let mut map = self.0.lock();
            map.retain(|(k, c)| !(k == key && std::ptr::eq(&**c, cell)));
        }

        pub(super) fn for_each<'g>(
            &'g self,
            guard: &'g Guard<'_>,
            mut f: impl FnMut(&'g SessionKey, &'g Cell),
        ) {
            let entries: Vec<(SessionKey, LoomArc<Cell>)> = self.0.lock().clone();
            for (k, c) in entries {
                let i = guard.held.push(c);
                let key: &'g SessionKey = Box::leak(Box::new(k));
                f(key, &guard.held[i]);
            }
        }
    }
}

/// [`LockFree`](crate::LockFree): papaya's map of per-session cells (see the module docs).
pub struct LockFreeBackend {
    map: map::Map,
    escalation: Escalation,
    progress: Progress,
}

/// The stripe of a session key (its characters are uniformly random).
#[inline]
fn stripe(key: &SessionKey) -> usize {
    let b = key.as_bytes();
    Escalation::stripe(u64::from_le_bytes([
        b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
    ]))
}

impl Backend for LockFreeBackend {
    fn new(progress: Progress) -> Self {
        LockFreeBackend {
            map: map::Map::new(),
            escalation: Escalation::new(),
            progress,
        }
    }

    #[inline]
    fn get(&self, key: &SessionKey) -> Option<Arc<Record>> {
        let guard = self.map.guard();
        self.map.get(key, &guard)?.load_arc(&guard)
    }

    fn insert_if_absent(&self, record: Arc<Record>) -> Result<(), Arc<Record>> {
        let guard = self.map.guard();
        let key = record.key;
        self.map
            .try_insert(key, Cell::new(Some(record)), &guard)
            .map_err(|mut cell| cell.take().expect("the cell was made full"))
    }

    #[inline]
    fn compare_and_swap(
        &self,
        expected: &Arc<Record>,
        new: Arc<Record>,
    ) -> Result<Arc<Record>, (CasFailure, Arc<Record>)> {
        let guard = self.map.guard();
        let Some(cell) = self.map.get(&expected.key, &guard) else {
            return Err((CasFailure::Absent, new));
        };
        let keep = Arc::clone(&new);
        match cell.compare_exchange(Arc::as_ptr(expected), Some(new), &guard) {
            Ok(()) => Ok(keep),
            Err((back, found)) => {
                drop(back);
                let failure = match found {
                    Some(now) => CasFailure::Changed(now.to_arc()),
                    // Emptied: the session was deleted (its entry goes next).
                    None => CasFailure::Absent,
                };
                Err((failure, keep))
            }
        }
    }

    fn remove(&self, key: &SessionKey) -> bool {
        let guard = self.map.guard();
        let Some(cell) = self.map.get(key, &guard) else {
            return false;
        };
        let had = cell.swap(None, &guard);
        self.map.remove_cell(key, cell, &guard);
        had
    }

    fn sweep(&self, now: Stamp) -> usize {
        let guard = self.map.guard();
        let mut removed = 0;
        // Iteration takes no lock; each record is removed only if it is still the expired one
        // seen (a concurrent save may have replaced, and so extended, it).
        self.map.for_each(&guard, |key, cell| {
            let Some(record) = cell.load(&guard) else {
                return;
            };
            if record.expired(now) && cell.compare_exchange(record.as_ptr(), None, &guard).is_ok() {
                self.map.remove_cell(key, cell, &guard);
                removed += 1;
            }
        });
        removed
    }

    #[inline]
    fn write<T>(&self, key: &SessionKey, attempt: impl FnMut() -> Attempt<T>) -> T {
        // Not inside a guard here: if this thread's replaced records wait on a stalled
        // reservation (an active thread that is not running), let that thread run first.
        crate::sync::recycle::relieve();
        self.escalation
            .run(&[stripe(key)], self.progress, attempt)
            .unwrap_or_else(|_| unreachable!("session writes have no budget"))
    }
}

#[cfg(all(test, unlocked_loom))]
mod loom_model {
    //! The lock-free session store's protocol under loom: the real store, cells and save
    //! algorithm; papaya replaced by the loom stand-in map above.
    use serde_json::{Value, json};

    use crate::LockFree;
    use crate::session::{ConflictPolicy, SaveError, SessionStore};
    use crate::sync::Arc;

    fn builder() -> loom::model::Builder {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(2);
        b.max_branches = 100_000;
        b
    }

    fn store(policy: ConflictPolicy) -> (Arc<SessionStore<LockFree>>, String) {
        let store = Arc::new(
            SessionStore::<LockFree>::builder()
                .conflict_policy(policy)
                .escalate_after(1)
                .build(),
        );
        let mut s = store.load(None);
        s.insert("n", 0);
        s.save().unwrap();
        let cookie = s.session_key().unwrap().to_string();
        (store, cookie)
    }

    fn bump(v: Option<&Value>) -> Value {
        json!(v.and_then(Value::as_i64).unwrap_or(0) + 1)
    }

    /// One request: load, set its own key, increment `n`, save.
    fn request(store: &SessionStore<LockFree>, cookie: &str, own: &str) -> Result<u64, SaveError> {
        let mut s = store.load(Some(cookie));
        if s.session_key().is_none() {
            return Ok(0); // loaded after a logout
        }
        s.insert(own, true);
        s.update("n", bump).unwrap();
        s.save()?;
        Ok(s.loaded_version().unwrap())
    }

    /// Two overlapping requests merge: both keys and both increments survive, versions
    /// differ (one escalates after its first lost race: `escalate_after(1)`).
    #[test]
    fn merge_keeps_both_requests_changes() {
        builder().check(|| {
            let (store, cookie) = store(ConflictPolicy::MergeChangedKeys);
            let t = {
                let (store, cookie) = (store.clone(), cookie.clone());
                loom::thread::spawn(move || request(&store, &cookie, "a"))
            };
            let v1 = request(&store, &cookie, "b").unwrap();
            let v2 = t.join().unwrap().unwrap();
            let last = store.record(&cookie).unwrap();
            assert_eq!(last.data().get("n"), Some(&json!(2)), "a lost increment");
            assert!(last.data().contains_key("a") && last.data().contains_key("b"));
            assert_eq!(last.version(), 3);
            assert_ne!(v1, v2, "two saves published the same version");
        });
    }

    /// Under `Reject`, exactly the save that lost the race is refused, and it changed nothing.
    #[test]
    fn reject_reports_exactly_the_lost_race() {
        builder().check(|| {
            let (store, cookie) = store(ConflictPolicy::Reject);
            let t = {
                let (store, cookie) = (store.clone(), cookie.clone());
                loom::thread::spawn(move || request(&store, &cookie, "a").is_ok())
            };
            let mine = request(&store, &cookie, "b").is_ok();
            let theirs = t.join().unwrap();
            let last = store.record(&cookie).unwrap();
            let n = last.data().get("n").and_then(Value::as_i64).unwrap();
            assert_eq!(n, i64::from(mine) + i64::from(theirs));
            assert_eq!(last.version(), 1 + n as u64);
            assert!(mine || theirs, "both saves rejected");
        });
    }

    /// A logout (delete) races a save of the same session: the session stays deleted, the
    /// save either landed before the delete or reports `Gone`, and the count is exact.
    #[test]
    fn deleted_session_is_not_resurrected() {
        builder().check(|| {
            let (store, cookie) = store(ConflictPolicy::LastWriterWins);
            let t = {
                let (store, cookie) = (store.clone(), cookie.clone());
                loom::thread::spawn(move || assert!(store.delete(&cookie)))
            };
            let saved = request(&store, &cookie, "a");
            t.join().unwrap();
            assert!(
                !store.exists(&cookie),
                "a save resurrected a deleted session"
            );
            assert_eq!(store.len(), 0);
            if let Err(e) = saved {
                assert!(matches!(e, SaveError::Gone { .. }), "{e}");
            }
        });
    }

    /// A sweep races a save of a live session while another session has expired: the sweep
    /// removes exactly the expired one, the live one keeps its save, the count is exact.
    #[test]
    fn sweep_removes_only_expired_records() {
        builder().check(|| {
            let (store, live) = store(ConflictPolicy::MergeChangedKeys);
            let mut old = store.load(None);
            old.set_expiry(crate::session::Expiry::Seconds(-5));
            old.save().unwrap();
            assert_eq!(store.len(), 2);
            let t = {
                let store = store.clone();
                loom::thread::spawn(move || store.clear_expired())
            };
            request(&store, &live, "a").unwrap();
            assert_eq!(t.join().unwrap(), 1);
            assert_eq!(store.len(), 1);
            let rec = store.record(&live).unwrap();
            assert_eq!(rec.data().get("n"), Some(&json!(1)));
        });
    }
}
