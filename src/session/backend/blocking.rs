//! The blocking session back end: a `HashMap` under the session module's lock.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Backend, CasFailure};
use crate::lock::{self, Guarded};
use crate::session::key::SessionKey;
use crate::session::record::{Record, Stamp};
use crate::sync::escalate::{Attempt, Progress};

type Hasher = foldhash::fast::RandomState;

/// The path of the module whose lock guards the map: the session component's
/// (`unlocked::session`, Django's `django.contrib.sessions`), not this file's.
const LOCK_MODULE: &str = "unlocked::session";

/// [`Blocking`](crate::Blocking): a `HashMap` under the session module's lock
/// (`lock::module("unlocked::session")`), the Django threading spec's choice for sessions.
pub struct BlockingBackend {
    map: Guarded<HashMap<SessionKey, Arc<Record>, Hasher>>,
}

impl Backend for BlockingBackend {
    fn new(_progress: Progress) -> Self {
        Self {
            map: Guarded::new(lock::module(LOCK_MODULE), HashMap::default()),
        }
    }

    fn get(&self, key: &SessionKey) -> Option<Arc<Record>> {
        self.map.with(|m| m.get(key).cloned())
    }

    fn insert_if_absent(&self, record: Arc<Record>) -> Result<(), Arc<Record>> {
        self.map.with(|m| match m.entry(record.key) {
            std::collections::hash_map::Entry::Occupied(_) => Err(record),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(record);
                Ok(())
            }
        })
    }

    fn compare_and_swap(
        &self,
        expected: &Arc<Record>,
        new: Arc<Record>,
    ) -> Result<Arc<Record>, (CasFailure, Arc<Record>)> {
        // The replaced record is dropped after the lock is released.
        let replaced = self.map.with(|m| match m.get_mut(&expected.key) {
            Some(cur) if Arc::ptr_eq(cur, expected) => Ok(std::mem::replace(cur, Arc::clone(&new))),
            Some(cur) => Err(CasFailure::Changed(Arc::clone(cur))),
            None => Err(CasFailure::Absent),
        });
        match replaced {
            Ok(old) => {
                drop(old);
                Ok(new)
            }
            Err(failure) => Err((failure, new)),
        }
    }

    fn remove(&self, key: &SessionKey) -> bool {
        let removed = self.map.with(|m| m.remove(key));
        removed.is_some()
    }

    fn sweep(&self, now: Stamp) -> usize {
        let expired: Vec<Arc<Record>> = self.map.with(|m| {
            let expired: Vec<SessionKey> = m
                .iter()
                .filter(|(_, r)| r.expired(now))
                .map(|(k, _)| *k)
                .collect();
            expired.iter().filter_map(|k| m.remove(k)).collect()
        });
        // Dropped after the lock is released.
        expired.len()
    }

    fn write<T>(&self, _key: &SessionKey, mut attempt: impl FnMut() -> Attempt<T>) -> T {
        // Hold the module lock (reentrant) across the attempts: no other writer can get in
        // between, so the second attempt (after meeting a record saved before the lock was
        // taken) always commits.
        let _guard = self.map.guarding_lock().lock();
        loop {
            if let Attempt::Done(t) = attempt() {
                return t;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn lock_module_is_the_session_module() {
        assert_eq!(
            Some(super::LOCK_MODULE),
            module_path!().strip_suffix("::backend::blocking::tests")
        );
    }
}
