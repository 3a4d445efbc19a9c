//! Race-free lazy creation of keyed locks.
//!
//! The seed's `getattr_(func, "__lock", RLock)` lets two threads that race on the first call
//! each install their own lock, so both enter the "locked" section at once. Here creation is a
//! double-checked publish:
//!
//! 1. read the current snapshot (an arc-swap load: no lock, no shared write); a hit returns;
//! 2. otherwise take the creation mutex, and read the snapshot again: a thread that created
//!    the entry between steps 1 and 2 published it before releasing the mutex, so it is seen;
//! 3. still absent: create the value, copy the map with the new entry, publish it.
//!
//! Every thread therefore gets the one value that was published first for a key, and values
//! are never removed (they are leaked to `'static`, like the statics they stand for), so a
//! reference handed out stays valid for the life of the process. Creating costs a copy of the
//! map: registries hold a bounded set of keys (modules, types, call sites), not per-request
//! data.

use std::collections::HashMap;
use std::hash::Hash;

use crate::sync::{Arc, Mutex, Snapshot};

type Map<K, V> = HashMap<K, &'static V, foldhash::fast::RandomState>;

pub(crate) struct Registry<K, V: 'static> {
    snapshot: Snapshot<Map<K, V>>,
    creating: Mutex<()>,
}

impl<K: Eq + Hash + Clone, V: Sync + 'static> Registry<K, V> {
    pub(crate) fn new() -> Self {
        Self {
            snapshot: Snapshot::new(Map::default()),
            creating: Mutex::new(()),
        }
    }

    /// The value published for `key`, if any. Takes no lock.
    pub(crate) fn get(&self, key: &K) -> Option<&'static V> {
        self.snapshot.load().get(key).copied()
    }

    /// The value for `key`, created by `make` if no thread has published one yet. `make` runs
    /// at most once per key, under the creation mutex.
    pub(crate) fn get_or_create(&self, key: K, make: impl FnOnce() -> V) -> &'static V {
        if let Some(value) = self.get(&key) {
            return value;
        }
        let _creating = self.creating.lock();
        // Second check under the creation mutex: whoever created the entry while we waited
        // published it before releasing the mutex, and the mutex orders that publish before
        // this load.
        let current = self.snapshot.load_full();
        if let Some(value) = current.get(&key) {
            return value;
        }
        let value: &'static V = Box::leak(Box::new(make()));
        let mut next = Map::clone(&current);
        next.insert(key, value);
        self.snapshot.store(Arc::new(next));
        value
    }

    /// Every entry published so far, in no particular order.
    pub(crate) fn snapshot_entries(&self) -> Vec<(K, &'static V)> {
        self.snapshot.load().iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// Every value published so far, in no particular order.
    pub(crate) fn values(&self) -> Vec<&'static V> {
        self.snapshot.load().values().copied().collect()
    }
}

#[cfg(all(test, unlocked_loom))]
mod loom_model {
    use super::Registry;
    use crate::sync::{Arc, AtomicUsize, Ordering};

    /// Racing first lookups of one key (and a second key created alongside) end with every
    /// thread holding the same value, and `make` run once per key.
    #[test]
    fn lazy_creation_is_unique() {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(3);
        builder.check(|| {
            let registry = Arc::new(Registry::<u32, AtomicUsize>::new());
            let made = Arc::new(AtomicUsize::new(0));
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    let (registry, made) = (registry.clone(), made.clone());
                    loom::thread::spawn(move || {
                        let v = registry.get_or_create(7, || {
                            made.fetch_add(1, Ordering::Relaxed);
                            AtomicUsize::new(0)
                        });
                        v as *const AtomicUsize as usize
                    })
                })
                .collect();
            let other = registry.get_or_create(8, || AtomicUsize::new(1));
            let mine = registry.get_or_create(7, || {
                made.fetch_add(1, Ordering::Relaxed);
                AtomicUsize::new(0)
            }) as *const AtomicUsize as usize;
            for h in handles {
                assert_eq!(h.join().unwrap(), mine, "two threads got different values for one key");
            }
            assert_eq!(made.load(Ordering::Relaxed), 1, "the value for one key was made twice");
            assert_eq!(other.load(Ordering::Relaxed), 1);
            assert_eq!(registry.values().len(), 2);
        });
    }
}
