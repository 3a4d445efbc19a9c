//! How each [`Strategy`](crate::Strategy) implements the model component (hidden, sealed).
//!
//! * [`LockFreeBackend`]: every record lives in its own cell (an arc-swap pointer to an
//!   immutable `Versioned<M>`, `None` once deleted), in an append-only `boxcar::Vec` indexed
//!   by `pk - 1` (keys are dense). A single-record write is one compare-and-swap on its cell.
//!   A multi-record commit installs its cells one by one under a commit mutex while a
//!   store-wide sequence number is odd, and undoes them if one compare-and-swap fails; reads
//!   bracket their loads with that sequence (seqlock-style, but every load is an atomic pointer
//!   load of immutable data) so they never return a value of an unfinished commit. The
//!   protocol and its proof are in `docs/model.md` ("How it works").
//! * [`BlockingBackend`]: a `Vec` indexed by `pk - 1` in a [`Guarded`] under the model
//!   type's class lock.

use std::sync::Arc;

use crossbeam::utils::Backoff;

use super::{Model, Versioned};
use crate::lock::{self, Guarded};
use crate::sync::{AtomicU64, AtomicUsize, Mutex, OptionCell, Ordering};

/// Selects the model back end of a strategy. Implemented for both strategies; not for use
/// outside this crate.
pub trait ModelStrategy {
    /// The back end that holds a store's records.
    #[doc(hidden)]
    type Backend<M: Model>: Backend<M>;
}

impl ModelStrategy for crate::LockFree {
    type Backend<M: Model> = LockFreeBackend<M>;
}

impl ModelStrategy for crate::Blocking {
    type Backend<M: Model> = BlockingBackend<M>;
}

/// A record as stored.
type Record<M> = Arc<Versioned<M>>;

/// Why a multi-record replacement failed: the index of the first entry whose record was not
/// at the expected version, and that record as it is (committed), `None` if absent.
#[doc(hidden)]
pub type ReplaceAllError<M> = (usize, Option<Record<M>>);

/// The operations a store is built from. Every value a method returns is committed: no
/// method returns a record of a multi-record commit that is still being installed.
#[doc(hidden)]
pub trait Backend<M>: Send + Sync + Sized {
    /// An empty back end.
    fn new() -> Self;
    /// The record with key `pk`.
    fn get(&self, pk: u64) -> Option<Record<M>>;
    /// Adds `value` under the next key, at version 1.
    fn insert(&self, value: M) -> Record<M>;
    /// How many records exist.
    fn live_count(&self) -> usize;
    /// Every record, in key order; a multi-record commit is wholly in it or wholly absent.
    fn snapshot(&self) -> Vec<Record<M>>;
    /// Replaces record `pk` by `new` (`None` deletes it) if it is at version `expected`:
    /// `Ok(replaced)`, or `Err(current)` (`None`: no such record).
    fn replace(
        &self,
        pk: u64,
        expected: u64,
        new: Option<Record<M>>,
    ) -> Result<Record<M>, Option<Record<M>>>;
    /// For each `(expected, record)`, replaces the stored record of `record.pk()` by
    /// `record` if it is at version `expected`: all of them, or none.
    fn replace_all(&self, records: &[(u64, Record<M>)]) -> Result<(), ReplaceAllError<M>>;
    /// Runs `f` as one data-altering operation (under `Blocking`: holding the class lock).
    fn alters_data<R>(&self, f: impl FnOnce() -> R) -> R;
}

/// One step of a wait for a multi-record commit to finish installing. Under loom, a loom
/// yield, so the model can schedule the committing thread.
#[inline]
fn pause(backoff: &Backoff) {
    #[cfg(unlocked_loom)]
    {
        let _ = backoff;
        crate::sync::yield_now();
    }
    #[cfg(not(unlocked_loom))]
    backoff.snooze();
}

/// The lock-free back end: per-record cells, a commit sequence and a commit mutex.
#[doc(hidden)]
pub struct LockFreeBackend<M> {
    /// Cell `i` holds the record with key `i + 1`; `None` once deleted (the cell stays).
    cells: boxcar::Vec<OptionCell<Versioned<M>>>,
    /// Even when no multi-record commit is installing, odd while one is. Only written under
    /// `commit_lock`.
    seq: AtomicU64,
    /// Serialises multi-record commits. Held only while installing (no user code runs under
    /// it, and nothing is dropped under it).
    commit_lock: Mutex<()>,
    /// Live records (inserted minus deleted).
    live: AtomicUsize,
}

impl<M> LockFreeBackend<M> {
    fn cell(&self, pk: u64) -> Option<&OptionCell<Versioned<M>>> {
        let index = usize::try_from(pk.checked_sub(1)?).ok()?;
        self.cells.get(index)
    }

    /// The sequence number once it is even (no multi-record commit installing).
    #[inline]
    fn stable_seq(&self) -> u64 {
        let backoff = Backoff::new();
        loop {
            // Acquire: pairs with the Release increment that ended the last commit, so the
            // loads that follow see every cell it installed (or rolled back).
            let seq = self.seq.load(Ordering::Acquire);
            if seq & 1 == 0 {
                return seq;
            }
            pause(&backoff);
        }
    }

    /// Whether no multi-record commit started since `seq` was read.
    #[inline]
    fn unchanged_since(&self, seq: u64) -> bool {
        // Acquire, after the Acquire cell loads it validates (an Acquire load is not
        // reordered before them): if one of those loads saw a value installed by a commit,
        // it synchronised with that commit's compare-and-swap, which comes after the commit
        // made `seq` odd, so this load sees the odd value or a later one, never `seq`.
        self.seq.load(Ordering::Acquire) == seq
    }

    /// The committed value of `cell`: loaded while no multi-record commit was installing.
    #[inline]
    fn read(&self, cell: &OptionCell<Versioned<M>>) -> Option<Record<M>> {
        loop {
            let seq = self.stable_seq();
            let value = cell.load();
            if self.unchanged_since(seq) {
                return value;
            }
        }
    }
}

impl<M: Model> Backend<M> for LockFreeBackend<M> {
    fn new() -> Self {
        Self {
            cells: boxcar::Vec::new(),
            seq: AtomicU64::new(0),
            commit_lock: Mutex::new(()),
            live: AtomicUsize::new(0),
        }
    }

    #[inline]
    fn get(&self, pk: u64) -> Option<Record<M>> {
        self.read(self.cell(pk)?)
    }

    fn insert(&self, value: M) -> Record<M> {
        let mut inserted = None;
        // The key is the slot boxcar hands out: unique, dense, and the record is in its cell
        // from the start (a reader finds the slot empty until the push completes).
        self.cells.push_with(|index| {
            let record = Arc::new(Versioned {
                pk: index as u64 + 1,
                version: 1,
                value,
            });
            inserted = Some(record.clone());
            OptionCell::new(Some(record))
        });
        // Relaxed: a statistic; the record itself was published by boxcar's push.
        self.live.fetch_add(1, Ordering::Relaxed);
        inserted.expect("push_with runs its closure")
    }

    fn live_count(&self) -> usize {
        // Relaxed: a statistic (exact once writers are done).
        self.live.load(Ordering::Relaxed)
    }

    fn snapshot(&self) -> Vec<Record<M>> {
        loop {
            let seq = self.stable_seq();
            // boxcar iterates in index order, that is, key order.
            let records: Vec<Record<M>> = self
                .cells
                .iter()
                .filter_map(|(_, cell)| cell.load())
                .collect();
            if self.unchanged_since(seq) {
                return records;
            }
        }
    }

    fn replace(
        &self,
        pk: u64,
        expected: u64,
        new: Option<Record<M>>,
    ) -> Result<Record<M>, Option<Record<M>>> {
        let Some(cell) = self.cell(pk) else {
            return Err(None);
        };
        let deletes = new.is_none();
        loop {
            // A committed value: if a multi-record commit installed a value here and has not
            // finished, `read` does not return it, so this thread never compares against (and
            // so never replaces) a value that commit may still have to roll back.
            let current = self.read(cell);
            match &current {
                Some(record) if record.version == expected => {}
                _ => return Err(current),
            }
            match cell.compare_and_swap(&current, new.clone()) {
                Ok(replaced) => {
                    if deletes {
                        // Relaxed: a statistic.
                        self.live.fetch_sub(1, Ordering::Relaxed);
                    }
                    return Ok(replaced.expect("compared against a record"));
                }
                // The cell changed since the read: read again; the version check reports it.
                Err(_) => continue,
            }
        }
    }

    fn replace_all(&self, records: &[(u64, Record<M>)]) -> Result<(), ReplaceAllError<M>> {
        let guard = self.commit_lock.lock();
        // Relaxed is enough for the increment itself: the compare-and-swaps below are AcqRel,
        // so whoever loads a value they install also sees this odd value (see
        // `unchanged_since`); the mutex orders it with other commits.
        self.seq.fetch_add(1, Ordering::Relaxed);
        // Everything replaced or rolled back is dropped after the mutex is released (a
        // value's `Drop` may use this store).
        let mut previous: Vec<Option<Record<M>>> = Vec::with_capacity(records.len());
        let mut outcome = Ok(());
        // Validate first: no other multi-record commit runs, so every value loaded here is
        // committed.
        for (i, (expected, record)) in records.iter().enumerate() {
            let current = self.cell(record.pk).and_then(OptionCell::load);
            match &current {
                Some(c) if c.version == *expected => previous.push(current),
                _ => {
                    outcome = Err((i, current));
                    break;
                }
            }
        }
        let mut installed = 0;
        if outcome.is_ok() {
            for (i, (_, record)) in records.iter().enumerate() {
                let cell = self.cell(record.pk).expect("validated above");
                match cell.compare_and_swap(&previous[i], Some(record.clone())) {
                    Ok(_) => installed += 1,
                    // A single-record writer replaced it after the validation.
                    Err(found) => {
                        outcome = Err((i, found));
                        break;
                    }
                }
            }
        }
        if outcome.is_err() {
            // Roll back in reverse. Nobody else replaced a value this commit installed: a
            // writer only replaces a value it read through `read`, which refuses values
            // loaded while `seq` is odd, and `seq` stays odd until after this loop.
            for (i, (_, record)) in records.iter().enumerate().take(installed).rev() {
                let cell = self.cell(record.pk).expect("validated above");
                let undone = cell.compare_and_swap(&Some(record.clone()), previous[i].clone());
                debug_assert!(
                    undone.is_ok(),
                    "a value of an unfinished commit was replaced"
                );
            }
        }
        // Release: publishes the installed (or rolled back) cells to readers that see the
        // even value (`stable_seq`).
        self.seq.fetch_add(1, Ordering::Release);
        drop(guard);
        drop(previous);
        outcome
    }

    fn alters_data<R>(&self, f: impl FnOnce() -> R) -> R {
        f()
    }
}

/// The records of a blocking store, under the class lock.
#[doc(hidden)]
pub struct BlockingTable<M> {
    /// Slot `i` holds the record with key `i + 1`; `None` once deleted.
    records: Vec<Option<Record<M>>>,
    live: usize,
}

/// The blocking back end: the records under the model type's class lock.
#[doc(hidden)]
pub struct BlockingBackend<M> {
    data: Guarded<BlockingTable<M>>,
}

fn slot(pk: u64) -> Option<usize> {
    usize::try_from(pk.checked_sub(1)?).ok()
}

impl<M: Model> Backend<M> for BlockingBackend<M> {
    fn new() -> Self {
        Self {
            data: Guarded::new(
                lock::class::<M>(),
                BlockingTable {
                    records: Vec::new(),
                    live: 0,
                },
            ),
        }
    }

    fn get(&self, pk: u64) -> Option<Record<M>> {
        let index = slot(pk)?;
        self.data.with(|t| t.records.get(index).cloned().flatten())
    }

    fn insert(&self, value: M) -> Record<M> {
        self.data.with(|t| {
            let record = Arc::new(Versioned {
                pk: t.records.len() as u64 + 1,
                version: 1,
                value,
            });
            t.records.push(Some(record.clone()));
            t.live += 1;
            record
        })
    }

    fn live_count(&self) -> usize {
        self.data.with(|t| t.live)
    }

    fn snapshot(&self) -> Vec<Record<M>> {
        self.data
            .with(|t| t.records.iter().flatten().cloned().collect())
    }

    fn replace(
        &self,
        pk: u64,
        expected: u64,
        new: Option<Record<M>>,
    ) -> Result<Record<M>, Option<Record<M>>> {
        let index = slot(pk).ok_or(None)?;
        // The replaced record is returned, so it is dropped after the lock is released.
        self.data.with(|t| {
            let Some(entry) = t.records.get_mut(index) else {
                return Err(None);
            };
            match entry {
                Some(current) if current.version == expected => {}
                _ => return Err(entry.clone()),
            }
            if new.is_none() {
                t.live -= 1;
            }
            Ok(std::mem::replace(entry, new).expect("checked above"))
        })
    }

    fn replace_all(&self, records: &[(u64, Record<M>)]) -> Result<(), ReplaceAllError<M>> {
        let previous = self.data.with(|t| {
            for (i, (expected, record)) in records.iter().enumerate() {
                let current = slot(record.pk)
                    .and_then(|index| t.records.get(index))
                    .cloned()
                    .flatten();
                match &current {
                    Some(c) if c.version == *expected => {}
                    _ => return Err((i, current)),
                }
            }
            Ok(records
                .iter()
                .map(|(_, record)| {
                    let index = slot(record.pk).expect("validated above");
                    t.records[index].replace(record.clone())
                })
                .collect::<Vec<_>>())
        });
        // The replaced records are dropped here, after the lock is released.
        previous.map(drop)
    }

    fn alters_data<R>(&self, f: impl FnOnce() -> R) -> R {
        // Hold the class lock for the whole operation (the `alters_data` rule); the table
        // itself is borrowed only briefly inside, since `f` may run user code that reads
        // this store again.
        let _guard = self.data.guarding_lock().lock();
        f()
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
        builder.preemption_bound = Some(2);
        builder.max_branches = 100_000;
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

    /// Two multi-record commits (an `update_many`, and a snapshot + `commit`) race: the
    /// snapshot shows the same total, and the final balances reflect exactly the
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
            // This thread reads a snapshot while the transfer commits, then commits its own.
            let snap = store.snapshot();
            let sum: i64 = snap.iter().map(|r| r.n).sum();
            assert_eq!(sum, 20, "a snapshot saw half a transfer");
            let (mut from, mut to) = (snap.get(b).unwrap().edit(), snap.get(a).unwrap().edit());
            from.n -= 3;
            to.n += 3;
            let committed = store.commit(vec![from, to]).is_ok();
            mover.join().unwrap();
            let (fa, fb) = (store.get(a).unwrap().n, store.get(b).unwrap().n);
            let back = if committed { 3 } else { 0 };
            assert_eq!((fa, fb), (5 + back, 15 - back));
        });
    }

    /// A thread saves `b`, then reads `a` and saves it, while a two-record `commit` moves 10
    /// from `a` to `b`: the commit either wholly happens or not at all (no half-applied state,
    /// even when its compare-and-swap on `b` fails and it rolls `a` back), no increment is
    /// lost, and the thread never reads a value the commit later undoes.
    #[test]
    fn single_writer_races_a_multi_record_commit() {
        builder().check(|| {
            let store: Arc<ModelStore<Cell, LockFree>> = Arc::new(ModelStore::new());
            let a = store.insert(Cell { n: 100 }).pk();
            let b = store.insert(Cell { n: 100 }).pk();
            let (from, to) = (store.get(a).unwrap().edit(), store.get(b).unwrap().edit());
            let writer = {
                let store = store.clone();
                loom::thread::spawn(move || {
                    let mut saved = [false; 2];
                    let mut read = [0; 2];
                    for (i, pk) in [b, a].into_iter().enumerate() {
                        let rec = store.get(pk).unwrap();
                        read[i] = rec.n;
                        let mut draft = rec.edit();
                        draft.n += 1;
                        saved[i] = store.save(draft).is_ok();
                    }
                    (saved, read)
                })
            };
            let (mut from, mut to) = (from, to);
            from.n -= 10;
            to.n += 10;
            let moved = store.commit(vec![from, to]).is_ok();
            let ([saved_b, saved_a], [read_b, read_a]) = writer.join().unwrap();
            // Only committed values are read: the transfer's credit or debit only if it
            // committed.
            assert!(
                moved || (read_a == 100 && matches!(read_b, 100 | 101)),
                "read {read_a}, {read_b} of an undone transfer"
            );
            let (fa, fb) = (store.get(a).unwrap(), store.get(b).unwrap());
            let shift = if moved { 10 } else { 0 };
            assert_eq!(
                (fa.n, fb.n),
                (
                    100 - shift + i64::from(saved_a),
                    100 + shift + i64::from(saved_b)
                ),
                "moved: {moved}, saved a: {saved_a}, saved b: {saved_b}"
            );
            assert_eq!(fa.version(), 1 + u64::from(moved) + u64::from(saved_a));
            assert_eq!(fb.version(), 1 + u64::from(moved) + u64::from(saved_b));
        });
    }
}
