//! How each [`Strategy`](crate::Strategy) implements the model component (hidden, sealed).
//!
//! A store's whole table is one immutable persistent map (`rpds`'s hash array mapped trie,
//! sharing structure between versions) behind a *root*. Every data-altering operation is a *plan*: a
//! function from the current table to either a new table (commit) or an outcome (abort). The
//! strategies differ only in how a plan's table is published:
//!
//! * [`LockFreeRoot`]: the root is a `sync::Snapshot` (arc-swap); commit is
//!   a compare-and-swap of the root against the table the plan read. If another commit won in
//!   between, the plan runs again on the new table (and re-validates only the records it
//!   touches, so unrelated commits cost a rebuild, not a conflict).
//! * [`BlockingRoot`]: the root lives in a [`Guarded`](crate::lock::Guarded) under the model
//!   type's class lock; plans run while holding it.

use std::sync::Arc as StdArc;

use crossbeam::utils::Backoff;
use rpds::HashTrieMapSync;

use super::{Model, Versioned};
use crate::lock::{self, Guarded};
use crate::sync::{Arc, Snapshot};

/// Selects the model back end of a strategy. Implemented for both strategies; not for use
/// outside this crate.
pub trait ModelStrategy {
    /// The root that publishes a store's table.
    #[doc(hidden)]
    type Root<M: Model>: Root<M>;
}

impl ModelStrategy for crate::LockFree {
    type Root<M: Model> = LockFreeRoot<M>;
}

impl ModelStrategy for crate::Blocking {
    type Root<M: Model> = BlockingRoot<M>;
}

/// Children per trie node: 16 keeps the tree three levels deep at 4,096 records while a path
/// copy touches at most 16 pointers per level.
const TRIE_DEGREE: u8 = 16;

/// One immutable version of a store's table: primary key → record, in key order.
#[doc(hidden)]
pub struct Table<M> {
    pub(crate) records: HashTrieMapSync<u64, StdArc<Versioned<M>>, foldhash::fast::FixedState>,
}

impl<M> Clone for Table<M> {
    fn clone(&self) -> Self {
        // O(1): the persistent map shares its nodes.
        Self {
            records: self.records.clone(),
        }
    }
}

impl<M> Table<M> {
    pub(crate) fn new() -> Self {
        Self {
            records: rpds::HashTrieMap::new_with_hasher_and_degree_and_ptr_kind(
                foldhash::fast::FixedState::with_seed(0x6d6f_6465_6c73),
                TRIE_DEGREE,
            ),
        }
    }
}

/// What a plan decided for the table it was given.
#[doc(hidden)]
pub enum Plan<M, R> {
    /// Publish this table (if the root still holds the table the plan read), then return `R`.
    Commit(Table<M>, R),
    /// Publish nothing; return `R`.
    Abort(R),
}

/// A store's root: where its current table is published.
#[doc(hidden)]
pub trait Root<M>: Send + Sync + Sized {
    /// A root holding `table`.
    fn new(table: Table<M>) -> Self;
    /// The current table.
    fn load(&self) -> Arc<Table<M>>;
    /// One record of the current table.
    fn get(&self, pk: u64) -> Option<StdArc<Versioned<M>>>;
    /// Runs `plan` on the current table until its outcome is an abort or its table is
    /// published atomically in place of the table it read.
    fn commit<R>(&self, plan: impl FnMut(&Table<M>) -> Plan<M, R>) -> R;
}

/// The lock-free root: an arc-swap snapshot, published by compare-and-swap.
#[doc(hidden)]
pub struct LockFreeRoot<M> {
    cell: Snapshot<Table<M>>,
}

impl<M: Model> Root<M> for LockFreeRoot<M> {
    fn new(table: Table<M>) -> Self {
        Self {
            cell: Snapshot::new(table),
        }
    }

    fn load(&self) -> Arc<Table<M>> {
        self.cell.load_full()
    }

    #[inline]
    fn get(&self, pk: u64) -> Option<StdArc<Versioned<M>>> {
        // A short-lived guard: no reference count on the table, one on the record.
        let table = self.cell.load();
        table.records.get(&pk).cloned()
    }

    fn commit<R>(&self, mut plan: impl FnMut(&Table<M>) -> Plan<M, R>) -> R {
        let backoff = Backoff::new();
        loop {
            let current = self.cell.load();
            let current: &Arc<Table<M>> = &current;
            match plan(current) {
                Plan::Abort(outcome) => return outcome,
                Plan::Commit(next, outcome) => {
                    // The linearisation point: the new table replaces the one the plan read,
                    // or nothing happens (arc-swap's compare-and-swap is SeqCst on the root
                    // pointer, so a reader that loads the new root sees every write that
                    // built it).
                    let found = self.cell.compare_and_swap(current, Arc::new(next));
                    if Arc::ptr_eq(&found, current) {
                        return outcome;
                    }
                    // Another commit won: run the plan again on its table.
                    backoff.spin();
                }
            }
        }
    }
}

/// The blocking root: the table under the model type's class lock.
#[doc(hidden)]
pub struct BlockingRoot<M> {
    data: Guarded<Arc<Table<M>>>,
}

impl<M: Model> BlockingRoot<M> {
    fn current(&self) -> Arc<Table<M>> {
        self.data.with(|t| t.clone())
    }
}

impl<M: Model> Root<M> for BlockingRoot<M> {
    fn new(table: Table<M>) -> Self {
        Self {
            data: Guarded::new(lock::class::<M>(), Arc::new(table)),
        }
    }

    fn load(&self) -> Arc<Table<M>> {
        self.current()
    }

    fn get(&self, pk: u64) -> Option<StdArc<Versioned<M>>> {
        self.data.with(|t| t.records.get(&pk).cloned())
    }

    fn commit<R>(&self, mut plan: impl FnMut(&Table<M>) -> Plan<M, R>) -> R {
        // Hold the class lock for the whole plan (the `alters_data` rule), but borrow the
        // table only briefly: a plan may run user code that reads this store again.
        let _guard = self.data.guarding_lock().lock();
        loop {
            let current = self.current();
            match plan(&current) {
                Plan::Abort(outcome) => return outcome,
                Plan::Commit(next, outcome) => {
                    // Only this thread can have changed the table meanwhile: a reentrant
                    // commit from user code inside the plan. Then run the plan again rather
                    // than overwrite that commit.
                    let published = self.data.with(|t| {
                        if Arc::ptr_eq(t, &current) {
                            *t = Arc::new(next);
                            true
                        } else {
                            false
                        }
                    });
                    if published {
                        return outcome;
                    }
                }
            }
        }
    }
}

#[cfg(all(test, unlocked_loom))]
mod loom_model {
    use crate::LockFree;
    use crate::model::{Model, ModelStore};
    use crate::sync::Arc;

    #[derive(Clone, Debug)]
    struct Cell {
        n: i64,
    }

    impl Model for Cell {
        const APP_LABEL: &'static str = "loom";
        const NAME: &'static str = "Cell";
    }

    fn builder() -> loom::model::Builder {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(3);
        builder
    }

    /// An `update` and a read + `save` of one record race: the version compare-and-swap lets
    /// the save commit only if the update did not commit in between, so no increment is lost
    /// and the version counts the commits.
    #[test]
    fn version_cas_loses_no_update() {
        builder().check(|| {
            let store: Arc<ModelStore<Cell, LockFree>> = Arc::new(ModelStore::new());
            let pk = store.insert(Cell { n: 0 }).pk();
            let updater = {
                let store = store.clone();
                loom::thread::spawn(move || {
                    store.update(pk, |c| c.n += 1).expect("update commits");
                })
            };
            let mut draft = store.get(pk).unwrap().edit();
            draft.n += 10;
            let saved = store.save(draft).is_ok();
            updater.join().unwrap();
            let rec = store.get(pk).unwrap();
            let expected = 1 + if saved { 10 } else { 0 };
            assert_eq!(rec.n, expected, "lost update (save committed: {saved})");
            assert_eq!(rec.version(), 2 + u64::from(saved));
        });
    }

    /// Two multi-record commits (an `update_many` and a read + `commit`) race with a reader:
    /// every snapshot shows the same total, and the final balances reflect exactly the
    /// commits that succeeded.
    #[test]
    fn transfers_are_atomic_for_readers() {
        builder().check(|| {
            let store: Arc<ModelStore<Cell, LockFree>> = Arc::new(ModelStore::new());
            let a = store.insert(Cell { n: 10 }).pk();
            let b = store.insert(Cell { n: 10 }).pk();
            let mover = {
                let store = store.clone();
                loom::thread::spawn(move || {
                    store
                        .update_many(&[a, b], |v| {
                            v[0].n -= 5;
                            v[1].n += 5;
                        })
                        .expect("update_many commits");
                })
            };
            let reader = {
                let store = store.clone();
                loom::thread::spawn(move || {
                    let sum: i64 = store.snapshot().iter().map(|r| r.n).sum();
                    assert_eq!(sum, 20, "a snapshot saw half a transfer");
                })
            };
            let snap = store.snapshot();
            let (mut from, mut to) = (snap.get(b).unwrap().edit(), snap.get(a).unwrap().edit());
            from.n -= 3;
            to.n += 3;
            let committed = store.commit(vec![from, to]).is_ok();
            mover.join().unwrap();
            reader.join().unwrap();
            let (fa, fb) = (store.get(a).unwrap().n, store.get(b).unwrap().n);
            let back = if committed { 3 } else { 0 };
            assert_eq!((fa, fb), (5 + back, 15 - back));
        });
    }
}
