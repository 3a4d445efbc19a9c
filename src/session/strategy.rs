//! How each [`Strategy`](crate::Strategy) implements the session component (hidden, sealed).
//!
//! A back end is a concurrent map from [`SessionKey`] to an immutable, versioned
//! [`Record`], with one conditional primitive: replace (or remove) an entry only if it still
//! holds a given record (pointer identity). Everything else — versions, merging, expiry, the
//! bound on live sessions — lives in the store, once for both strategies.

use std::collections::HashMap;
use std::sync::Arc;

use time::OffsetDateTime;

use super::key::SessionKey;
use super::record::Record;
use crate::lock::{self, Guarded};

type Hasher = foldhash::fast::RandomState;

/// Why a compare-and-swap on one map entry failed.
#[derive(Debug)]
pub enum CasFailure {
    /// The entry holds another record (returned).
    Changed(Arc<Record>),
    /// The entry is gone.
    Absent,
}

/// A session map. Not for use outside this crate.
pub trait Backend: Default + Send + Sync + 'static {
    /// The live record under `key`, expired or not.
    fn get(&self, key: &SessionKey) -> Option<Arc<Record>>;
    /// Inserts `record` under its key unless the key is taken; `false` if it was.
    fn insert_if_absent(&self, record: Arc<Record>) -> bool;
    /// Replaces the entry of `expected.key` by `new` only if it still holds `expected`;
    /// hands `new` back on failure.
    fn compare_and_swap(
        &self,
        expected: &Arc<Record>,
        new: Arc<Record>,
    ) -> Result<(), (CasFailure, Arc<Record>)>;
    /// Removes the entry under `key`, whatever it holds.
    fn remove(&self, key: &SessionKey) -> Option<Arc<Record>>;
    /// Removes the entry of `expected.key` only if it still holds `expected`.
    fn remove_if(&self, expected: &Arc<Record>) -> bool;
    /// Removes every record expired at `now`; returns how many it removed.
    fn sweep(&self, now: OffsetDateTime) -> usize;
}

/// Selects the session back end of a strategy. Implemented for both strategies; not for use
/// outside this crate.
pub trait SessionStrategy {
    /// The map.
    type Backend: Backend;
}

impl SessionStrategy for crate::LockFree {
    type Backend = FlurryBackend;
}
impl SessionStrategy for crate::Blocking {
    type Backend = BlockingBackend;
}

/// [`LockFree`](crate::LockFree): flurry's concurrent map. Reads take no lock (a seize guard
/// and atomic loads); writes lock one bin; replaced records are reclaimed by seize once no
/// reader can hold them.
pub struct FlurryBackend {
    map: flurry::HashMap<SessionKey, Arc<Record>, Hasher>,
}

impl Default for FlurryBackend {
    fn default() -> Self {
        Self {
            map: flurry::HashMap::with_hasher(Hasher::default()),
        }
    }
}

impl Backend for FlurryBackend {
    fn get(&self, key: &SessionKey) -> Option<Arc<Record>> {
        self.map.pin().get(key).cloned()
    }

    fn insert_if_absent(&self, record: Arc<Record>) -> bool {
        let key = record.key;
        self.map.pin().try_insert(key, record).is_ok()
    }

    fn compare_and_swap(
        &self,
        expected: &Arc<Record>,
        new: Arc<Record>,
    ) -> Result<(), (CasFailure, Arc<Record>)> {
        let mut new = Some(new);
        let mut seen = None;
        let map = self.map.pin();
        // `compute_if_present` runs the closure under the entry's bin lock: the check and the
        // replacement are one atomic step. On a mismatch we must return *some* value (`None`
        // would remove the entry), so we put the same record back.
        let stored = map.compute_if_present(&expected.key, |_, cur| {
            if Arc::ptr_eq(cur, expected) {
                new.take()
            } else {
                seen = Some(Arc::clone(cur));
                Some(Arc::clone(cur))
            }
        });
        match (stored, new, seen) {
            (Some(_), None, _) => Ok(()),
            (_, Some(n), Some(cur)) => Err((CasFailure::Changed(cur), n)),
            (_, Some(n), None) => Err((CasFailure::Absent, n)),
            // The closure returned `Some`, so the entry cannot have been removed.
            (None, None, _) => Ok(()),
        }
    }

    fn remove(&self, key: &SessionKey) -> Option<Arc<Record>> {
        self.map.pin().remove(key).cloned()
    }

    fn remove_if(&self, expected: &Arc<Record>) -> bool {
        let mut removed = false;
        self.map.pin().compute_if_present(&expected.key, |_, cur| {
            if Arc::ptr_eq(cur, expected) {
                removed = true;
                None
            } else {
                Some(Arc::clone(cur))
            }
        });
        removed
    }

    fn sweep(&self, now: OffsetDateTime) -> usize {
        let map = self.map.pin();
        // Iteration takes no lock; each removal locks one bin and only if the record is still
        // the expired one we saw (a concurrent save may have replaced it).
        let expired: Vec<Arc<Record>> = map
            .values()
            .filter(|r| r.is_expired_at(now))
            .cloned()
            .collect();
        drop(map);
        expired.iter().filter(|r| self.remove_if(r)).count()
    }
}

/// [`Blocking`](crate::Blocking): a `HashMap` under the session module's lock
/// (`lock::module("unlocked::session")`), the Django threading spec's choice for sessions.
pub struct BlockingBackend {
    map: Guarded<HashMap<SessionKey, Arc<Record>, Hasher>>,
}

impl Default for BlockingBackend {
    fn default() -> Self {
        Self {
            map: Guarded::new(lock::module(super::LOCK_MODULE), HashMap::default()),
        }
    }
}

impl Backend for BlockingBackend {
    fn get(&self, key: &SessionKey) -> Option<Arc<Record>> {
        self.map.with(|m| m.get(key).cloned())
    }

    fn insert_if_absent(&self, record: Arc<Record>) -> bool {
        self.map.with(|m| match m.entry(record.key) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(record);
                true
            }
        })
    }

    fn compare_and_swap(
        &self,
        expected: &Arc<Record>,
        new: Arc<Record>,
    ) -> Result<(), (CasFailure, Arc<Record>)> {
        self.map.with(|m| match m.get_mut(&expected.key) {
            Some(cur) if Arc::ptr_eq(cur, expected) => {
                *cur = new;
                Ok(())
            }
            Some(cur) => Err((CasFailure::Changed(Arc::clone(cur)), new)),
            None => Err((CasFailure::Absent, new)),
        })
    }

    fn remove(&self, key: &SessionKey) -> Option<Arc<Record>> {
        self.map.with(|m| m.remove(key))
    }

    fn remove_if(&self, expected: &Arc<Record>) -> bool {
        self.map.with(|m| match m.get(&expected.key) {
            Some(cur) if Arc::ptr_eq(cur, expected) => {
                m.remove(&expected.key);
                true
            }
            _ => false,
        })
    }

    fn sweep(&self, now: OffsetDateTime) -> usize {
        self.map.with(|m| {
            let before = m.len();
            m.retain(|_, r| !r.is_expired_at(now));
            before - m.len()
        })
    }
}
