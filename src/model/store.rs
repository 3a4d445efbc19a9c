//! [`ModelStore`]: optimistic versioned records of one model type.

use std::any::Any;
use std::collections::HashSet;
use std::fmt;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use super::backend::{Backend, ModelStrategy, TryUpdate};
use super::error::{CommitError, DeleteError, SaveError, UpdateError};
use super::record::{Draft, Model, Versioned};
use crate::sync::escalate::{Attempt, Progress};
use crate::{LockFree, Strategy};

/// The back end of a store of `M` under strategy `S`.
type BackendOf<M, S> = <S as ModelStrategy>::Backend<M>;

/// The records of one model type, each with a version, committed optimistically.
///
/// * Reads ([`get`](Self::get), [`snapshot`](Self::snapshot), [`filter`](Self::filter)) return
///   records as `Arc<`[`Versioned`]`<M>>`: the value with its primary key and version. Under
///   [`LockFree`] they take no lock (they wait only while a multi-record commit installs).
///   [`pin`](Self::pin) reads records borrowed for the pin's lifetime instead, without
///   touching a reference count.
/// * Writes are validated against the version read: [`save`](Self::save) commits a
///   [`Draft`] only if the record still has the version the draft was made from,
///   [`update`](Self::update) retries a closure until it commits, [`commit`](Self::commit) and
///   [`update_many`](Self::update_many) change several records all-or-nothing. Under
///   [`LockFree`] a write that keeps losing races escalates to a lock that other writers of
///   the same records respect, so it always finishes; contention never makes a write fail
///   unless you set a [retry budget](ModelStoreBuilder::retry_budget).
///
/// Each record sits in its own cell, replaced by one compare-and-swap per commit; a
/// multi-record commit is never seen half-done, neither by [`get`](Self::get) nor by a
/// [`snapshot`](Self::snapshot). See `docs/model.md`.
///
/// ```
/// use unlocked::model::{Model, ModelStore, SaveError};
///
/// #[derive(Clone, Debug)]
/// struct Account { owner: String, balance: i64 }
/// impl Model for Account {
///     const APP_LABEL: &'static str = "bank";
///     const NAME: &'static str = "Account";
/// }
///
/// let store: ModelStore<Account> = ModelStore::new();
/// let alice = store.insert(Account { owner: "alice".into(), balance: 100 });
/// assert_eq!((alice.pk(), alice.version()), (1, 1));
///
/// // Two copies read at the same time...
/// let mut first = alice.edit();
/// let mut second = alice.edit();
/// first.balance += 10;
/// second.balance -= 10;
/// // ...the first save wins, the second is refused instead of silently lost.
/// assert_eq!(store.save(first).unwrap().version(), 2);
/// match store.save(second) {
///     Err(SaveError::Conflict { rejected, current }) => {
///         assert_eq!(current.balance, 110);
///         assert_eq!(rejected.balance, 90); // handed back unchanged
///     }
///     other => panic!("expected a conflict, got {other:?}"),
/// }
///
/// // `update` re-reads and retries by itself.
/// let updated = store.update(alice.pk(), |a| a.balance += 1).unwrap();
/// assert_eq!((updated.balance, updated.version()), (111, 3));
/// ```
pub struct ModelStore<M: Model, S: Strategy = LockFree> {
    backend: BackendOf<M, S>,
    progress: Progress,
    _strategy: PhantomData<S>,
}

/// Configures a [`ModelStore`].
///
/// ```
/// use unlocked::model::{Model, ModelStore};
/// # #[derive(Clone, Debug)] struct Hit { n: u64 }
/// # impl Model for Hit { const APP_LABEL: &'static str = "app"; const NAME: &'static str = "Hit"; }
/// let store: ModelStore<Hit> = ModelStore::builder()
///     .escalate_after(2)    // take the record's lock after two lost races
///     .retry_budget(100)    // and give up after 100 attempts in all
///     .build();
/// assert_eq!(store.retry_budget(), Some(100));
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct ModelStoreBuilder<M: Model, S: Strategy = LockFree> {
    progress: Progress,
    _types: PhantomData<fn() -> (M, S)>,
}

impl<M: Model, S: Strategy> Default for ModelStoreBuilder<M, S> {
    fn default() -> Self {
        Self {
            progress: Progress::default(),
            _types: PhantomData,
        }
    }
}

impl<M: Model, S: Strategy> ModelStoreBuilder<M, S> {
    /// Makes [`update`](ModelStore::update) and [`update_many`](ModelStore::update_many) give
    /// up with [`UpdateError::RetriesExhausted`] after running their closure `attempts` times
    /// (at least 1). Default: no budget: they retry until they commit, which they always do
    /// (see [`escalate_after`](Self::escalate_after)).
    ///
    /// Only conflicts cost an attempt: a commit to *other* records never makes an update
    /// retry. Set a budget to surface contention to the caller instead of waiting it out.
    pub fn retry_budget(mut self, attempts: u32) -> Self {
        self.progress.budget = Some(attempts.max(1));
        self
    }

    /// Under [`LockFree`]: how many optimistic attempts a write makes before it *escalates*
    /// (default 4): it then takes the store's escalation lock and flags its records, so
    /// other writers of those records queue behind it instead of racing, and it finishes
    /// after losing at most one race per other thread. Readers are never affected.
    ///
    /// A write that escalated because it lost its races, or that waited for the lock, also
    /// marks its records' group (one of 64 stripes of keys) *hot*: writes of that group queue
    /// on the lock at once instead of racing, until 1 024 in a row found the lock free. A
    /// record that many threads write at once then costs what a lock costs, not a stream of
    /// lost races; records nobody contends never escalate and are never affected.
    ///
    /// Lower values hand hot records to the lock sooner (less work thrown away by lost
    /// races, more lock traffic); higher values stay optimistic longer (best when conflicts
    /// are rare and short). `0` always takes the lock: a per-record-group mutex. Under
    /// [`Blocking`](crate::Blocking) writers already hold the class lock and this has no
    /// effect.
    pub fn escalate_after(mut self, attempts: u32) -> Self {
        self.progress.escalate_after = attempts;
        self
    }

    /// Builds an empty store.
    pub fn build(self) -> ModelStore<M, S> {
        ModelStore {
            backend: Backend::new(),
            progress: self.progress,
            _strategy: PhantomData,
        }
    }
}

/// How a single-attempt write (`save`, `delete`, `commit`) proceeds: it queues behind an
/// escalated writer of its records, and otherwise runs once.
const ONCE: Progress = Progress {
    escalate_after: 1,
    budget: None,
};

impl<M: Model, S: Strategy> Default for ModelStore<M, S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M: Model, S: Strategy> fmt::Debug for ModelStore<M, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelStore")
            .field("model", &format_args!("{}.{}", M::APP_LABEL, M::NAME))
            .field("strategy", &S::KIND)
            .field("len", &self.len())
            .field("retry_budget", &self.progress.budget)
            .field("escalate_after", &self.progress.escalate_after)
            .finish()
    }
}

/// A panic payload as text.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}

/// Takes back the value of a record built for a commit that did not happen.
fn reclaim<M: Clone>(record: Arc<Versioned<M>>, read_version: u64) -> Draft<M> {
    let pk = record.pk;
    // A failed commit never leaves the record in a cell, so this is normally the only
    // reference; clone the value if not.
    let value = Arc::try_unwrap(record)
        .map(|v| v.value)
        .unwrap_or_else(|shared| shared.value.clone());
    Draft {
        pk,
        version: read_version,
        value,
    }
}

impl<M: Model, S: Strategy> ModelStore<M, S> {
    /// An empty store with the default configuration.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder to configure the store.
    pub fn builder() -> ModelStoreBuilder<M, S> {
        ModelStoreBuilder::default()
    }

    /// The retry budget of [`update`](Self::update), if one was set (see
    /// [`ModelStoreBuilder::retry_budget`]).
    pub fn retry_budget(&self) -> Option<u32> {
        self.progress.budget
    }

    /// After how many lost races a write escalates (see
    /// [`ModelStoreBuilder::escalate_after`]; default 4).
    pub fn escalate_after(&self) -> u32 {
        self.progress.escalate_after
    }

    /// The record with primary key `pk`, with its version.
    ///
    /// Under [`LockFree`]: no lock, no hashing (keys index an array): an epoch pin, one load
    /// of the record's cell bracketed by two loads of the store's commit sequence, and one
    /// reference count increment (use [`pin`](Self::pin) to read without it); it waits
    /// (spinning, then yielding) only while a multi-record commit is installing its records.
    /// Under [`Blocking`](crate::Blocking): takes the model's class lock for the lookup.
    pub fn get(&self, pk: u64) -> Option<Arc<Versioned<M>>> {
        self.backend.get(pk)
    }

    /// Starts a series of reads that borrow records instead of counting references to them
    /// (papaya's `pin()` style): [`Pinned::get`] returns `&Versioned<M>` valid as long as the
    /// pin.
    ///
    /// Under [`LockFree`] a read through the pin writes nothing shared at all: the pin is an
    /// epoch guard (records replaced meanwhile are freed only after it is dropped), so
    /// keep it short-lived: a long-lived pin holds back memory reclamation for every
    /// store. It is tied to its thread (`!Send`): do not hold it across an `.await`. Under
    /// [`Blocking`](crate::Blocking) the pin keeps a reference count of each record it
    /// returned.
    ///
    /// ```
    /// use unlocked::model::{Model, ModelStore};
    /// # #[derive(Clone, Debug)] struct Article { title: String, views: u64 }
    /// # impl Model for Article { const APP_LABEL: &'static str = "blog"; const NAME: &'static str = "Article"; }
    /// let store: ModelStore<Article> = ModelStore::new();
    /// let pk = store.insert(Article { title: "Hello".into(), views: 0 }).pk();
    /// let pin = store.pin();
    /// let article = pin.get(pk).unwrap();
    /// store.update(pk, |a| a.views += 1).unwrap(); // a writer does not disturb the pinned read
    /// assert_eq!((article.title.as_str(), article.views), ("Hello", 0));
    /// assert_eq!(pin.get(pk).unwrap().views, 1);
    /// ```
    ///
    /// ```compile_fail
    /// # use unlocked::model::{Model, ModelStore};
    /// # #[derive(Clone, Debug)] struct A;
    /// # impl Model for A { const APP_LABEL: &'static str = "a"; const NAME: &'static str = "A"; }
    /// let store: ModelStore<A> = ModelStore::new();
    /// let pin = store.pin();
    /// std::thread::scope(|s| { s.spawn(move || drop(pin)); }); // a pin is tied to its thread
    /// ```
    pub fn pin(&self) -> Pinned<'_, M, S> {
        Pinned {
            store: self,
            pin: self.backend.pin(),
            _not_send: PhantomData,
        }
    }

    /// Whether a record with primary key `pk` exists now.
    pub fn contains(&self, pk: u64) -> bool {
        self.backend.get(pk).is_some()
    }

    /// How many records the store holds now (inserted minus deleted; exact once concurrent
    /// inserts and deletes have returned).
    pub fn len(&self) -> usize {
        self.backend.live_count()
    }

    /// Whether the store holds no record now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A consistent, immutable view of every record at one instant, in primary-key order.
    ///
    /// Taking it is O(n): it copies one pointer per record (the records themselves are
    /// shared). Commits after it are not reflected; a multi-record commit is either wholly in
    /// it or wholly absent. Single-record commits that run while it is taken may be in it or
    /// not independently of each other (see "Consistency" in the [module docs](super)).
    pub fn snapshot(&self) -> ModelSnapshot<M> {
        ModelSnapshot {
            records: Arc::new(self.backend.snapshot()),
        }
    }

    /// The records for which `predicate` holds, in primary-key order, from one snapshot.
    pub fn filter(&self, mut predicate: impl FnMut(&M) -> bool) -> Vec<Arc<Versioned<M>>> {
        self.snapshot()
            .iter()
            .filter(|r| predicate(&r.value))
            .cloned()
            .collect()
    }

    /// Every record, in primary-key order, from one snapshot.
    pub fn all(&self) -> Vec<Arc<Versioned<M>>> {
        self.snapshot().iter().cloned().collect()
    }

    /// Adds a record with the next primary key, at version 1.
    ///
    /// Alters data. Primary keys are unique and increase with each call, but two concurrent
    /// inserts may become visible in either order.
    pub fn insert(&self, value: M) -> Arc<Versioned<M>> {
        self.backend.insert(value)
    }

    /// Commits `draft` if its record still has the version the draft was made from; the
    /// stored record then gets the next version.
    ///
    /// Alters data. Commits to other records meanwhile do not make it fail.
    ///
    /// # Errors
    ///
    /// [`SaveError::Conflict`] if the record changed since the draft was read,
    /// [`SaveError::NotFound`] if it was deleted; both hand the draft back.
    pub fn save(&self, draft: Draft<M>) -> Result<Arc<Versioned<M>>, SaveError<M>> {
        let read_version = draft.version;
        let pk = draft.pk;
        let record = self.backend.record(pk, read_version + 1, draft.value);
        let outcome = self.backend.write(&[pk], ONCE, || {
            Attempt::Done(self.backend.replace(pk, read_version, Some(record.clone())))
        });
        match outcome.unwrap_or_else(|_| unreachable!("no budget")) {
            Ok(_) => Ok(record),
            Err(Some(current)) => Err(SaveError::Conflict {
                rejected: reclaim(record, read_version),
                current,
            }),
            Err(None) => Err(SaveError::NotFound {
                rejected: reclaim(record, read_version),
            }),
        }
    }

    /// Applies `change` to a copy of the current value of record `pk` and commits it; if
    /// another commit changed the record meanwhile, runs `change` again on the newer value.
    ///
    /// Alters data. `change` may run several times: keep side effects out of it, and do not
    /// write to this or another store from inside it (under [`LockFree`] an escalated
    /// update runs it holding the store's escalation lock; under
    /// [`Blocking`](crate::Blocking) it runs holding the model's class lock).
    ///
    /// Under [`LockFree`], after a few lost races
    /// ([`ModelStoreBuilder::escalate_after`]) the update takes the store's escalation lock
    /// and flags the record, so other writers of it queue instead of racing: it commits after
    /// at most one more lost race per other thread. Reads never wait for it.
    ///
    /// # Errors
    ///
    /// [`UpdateError::NotFound`] if there is no such record, [`UpdateError::Panicked`] if
    /// `change` panicked (the panic is caught and the stored record is untouched), and
    /// [`UpdateError::RetriesExhausted`] only if a
    /// [retry budget](ModelStoreBuilder::retry_budget) is set and ran out.
    ///
    /// # The record returned
    ///
    /// The new record comes back as a [`Committed`]: it reads like `&Versioned<M>`, is tied
    /// to its thread, and under [`LockFree`] borrows the record under the update's own epoch
    /// pin, so committing moves no reference count. Take [`Committed::into_arc`] to keep the
    /// record past the statement, across an `.await`, or on another thread; while a
    /// `Committed` lives it holds back the reclamation of records replaced meanwhile, as a
    /// [`pin`](Self::pin) does.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use unlocked::model::{Model, ModelStore, Versioned};
    /// # #[derive(Clone, Debug)] struct Article { title: String, views: u64 }
    /// # impl Model for Article { const APP_LABEL: &'static str = "blog"; const NAME: &'static str = "Article"; }
    /// let store: ModelStore<Article> = ModelStore::new();
    /// let pk = store.insert(Article { title: "Hello".into(), views: 0 }).pk();
    /// let committed = store.update(pk, |a| a.views += 1).unwrap();
    /// assert_eq!((committed.version(), committed.views), (2, 1));
    /// let kept: Arc<Versioned<Article>> = committed.into_arc(); // `Send`, outlives the pin
    /// std::thread::spawn(move || assert_eq!(kept.views, 1)).join().unwrap();
    /// ```
    pub fn update(
        &self,
        pk: u64,
        mut change: impl FnMut(&mut M),
    ) -> Result<Committed<'_, M, S>, UpdateError<M>> {
        // `update_many` for one key, without its vectors.
        self.backend.alters_data(|| {
            let outcome = self.backend.write(&[pk], self.progress, || {
                let made = self.backend.try_update(pk, |current| {
                    // The closure works on a copy: if it panics, nothing stored has been
                    // touched.
                    self.backend
                        .make_record(pk, current.version + 1, &current.value, |value| {
                            catch_unwind(AssertUnwindSafe(|| change(value))).map_err(|payload| {
                                UpdateError::Panicked {
                                    pk,
                                    message: panic_message(&*payload),
                                }
                            })
                        })
                });
                match made {
                    TryUpdate::Done(record) => Attempt::Done(Ok(Committed {
                        record,
                        _not_send: PhantomData,
                    })),
                    TryUpdate::NotFound => Attempt::Done(Err(UpdateError::NotFound { pk })),
                    TryUpdate::Failed(e) => Attempt::Done(Err(e)),
                    // A conflict: another commit changed the record; read it again.
                    TryUpdate::Conflict => Attempt::Conflict,
                }
            });
            outcome.unwrap_or_else(|exhausted| match self.backend.get(pk) {
                Some(current) => Err(UpdateError::RetriesExhausted {
                    attempts: exhausted.attempts,
                    current,
                }),
                None => Err(UpdateError::NotFound { pk }),
            })
        })
    }

    /// As [`update`](Self::update) for several records at once: `change` gets copies of their
    /// values in the order of `pks`, and all of them are committed together or none is.
    ///
    /// Alters data. Readers never see some of the records changed and others not.
    ///
    /// ```
    /// use unlocked::model::{Model, ModelStore};
    /// # #[derive(Clone, Debug)] struct Account { balance: i64 }
    /// # impl Model for Account { const APP_LABEL: &'static str = "bank"; const NAME: &'static str = "Account"; }
    /// let store: ModelStore<Account> = ModelStore::new();
    /// let a = store.insert(Account { balance: 100 }).pk();
    /// let b = store.insert(Account { balance: 0 }).pk();
    /// store.update_many(&[a, b], |accounts| {
    ///     accounts[0].balance -= 30;
    ///     accounts[1].balance += 30;
    /// }).unwrap();
    /// let total: i64 = store.snapshot().iter().map(|r| r.balance).sum();
    /// assert_eq!(total, 100);
    /// ```
    ///
    /// # Errors
    ///
    /// As [`update`](Self::update), plus [`UpdateError::DuplicatePk`] if a key is listed
    /// twice.
    pub fn update_many(
        &self,
        pks: &[u64],
        mut change: impl FnMut(&mut [M]),
    ) -> Result<Vec<Arc<Versioned<M>>>, UpdateError<M>> {
        if pks.len() > 1 {
            let mut seen = HashSet::with_capacity(pks.len());
            if let Some(&pk) = pks.iter().find(|&&pk| !seen.insert(pk)) {
                return Err(UpdateError::DuplicatePk { pk });
            }
        }
        self.backend.alters_data(|| {
            let outcome = self.backend.write(pks, self.progress, || {
                let mut current = Vec::with_capacity(pks.len());
                for &pk in pks {
                    match self.backend.get(pk) {
                        Some(record) => current.push(record),
                        None => return Attempt::Done(Err(UpdateError::NotFound { pk })),
                    }
                }
                let mut values: Vec<M> = current.iter().map(|r| r.value.clone()).collect();
                // The closure works on copies: if it panics, nothing stored has been touched.
                if let Err(payload) = catch_unwind(AssertUnwindSafe(|| change(&mut values))) {
                    return Attempt::Done(Err(UpdateError::Panicked {
                        pk: pks[0],
                        message: panic_message(&*payload),
                    }));
                }
                let records: Vec<(u64, Arc<Versioned<M>>)> = values
                    .into_iter()
                    .zip(&current)
                    .map(|(value, old)| {
                        let record = self.backend.record(old.pk, old.version + 1, value);
                        (old.version, record)
                    })
                    .collect();
                let committed = match &records[..] {
                    [(read, record)] => self
                        .backend
                        .replace(record.pk, *read, Some(record.clone()))
                        .map(drop)
                        .map_err(|current| (0, current)),
                    _ => self.backend.replace_all(&records),
                };
                match committed {
                    Ok(()) => {
                        Attempt::Done(Ok(records.into_iter().map(|(_, record)| record).collect()))
                    }
                    // Deleted meanwhile: retrying cannot help.
                    Err((i, None)) => Attempt::Done(Err(UpdateError::NotFound { pk: pks[i] })),
                    // A conflict: another commit changed one of the records; read them again.
                    Err((_, Some(_))) => Attempt::Conflict,
                }
            });
            outcome.unwrap_or_else(|exhausted| match self.backend.get(pks[0]) {
                Some(current) => Err(UpdateError::RetriesExhausted {
                    attempts: exhausted.attempts,
                    current,
                }),
                None => Err(UpdateError::NotFound { pk: pks[0] }),
            })
        })
    }

    /// Commits several drafts together: each must still have the version it was read at, and
    /// either all are saved or none is.
    ///
    /// Alters data.
    ///
    /// ```
    /// use unlocked::model::{Model, ModelStore, CommitError};
    /// # #[derive(Clone, Debug)] struct Account { balance: i64 }
    /// # impl Model for Account { const APP_LABEL: &'static str = "bank"; const NAME: &'static str = "Account"; }
    /// let store: ModelStore<Account> = ModelStore::new();
    /// let a = store.insert(Account { balance: 100 });
    /// let b = store.insert(Account { balance: 0 });
    /// let (mut from, mut to) = (a.edit(), b.edit());
    /// from.balance -= 30;
    /// to.balance += 30;
    /// store.update(b.pk(), |acc| acc.balance += 5).unwrap(); // someone else wins on `b`
    /// let err = store.commit(vec![from, to]).unwrap_err();
    /// assert!(matches!(err, CommitError::Conflict { pk, .. } if pk == b.pk()));
    /// assert_eq!(store.get(a.pk()).unwrap().balance, 100); // nothing half-applied
    /// ```
    ///
    /// # Errors
    ///
    /// [`CommitError::Conflict`] naming the first record that changed or was deleted,
    /// [`CommitError::DuplicatePk`] if one record has two drafts; both hand every draft back.
    pub fn commit(&self, drafts: Vec<Draft<M>>) -> Result<Vec<Arc<Versioned<M>>>, CommitError<M>> {
        let mut seen = HashSet::with_capacity(drafts.len());
        if let Some(pk) = drafts.iter().map(|d| d.pk).find(|&pk| !seen.insert(pk)) {
            return Err(CommitError::DuplicatePk {
                pk,
                rejected: drafts,
            });
        }
        let read_versions: Vec<u64> = drafts.iter().map(|d| d.version).collect();
        let records: Vec<Arc<Versioned<M>>> = drafts
            .into_iter()
            .map(|d| self.backend.record(d.pk, d.version + 1, d.value))
            .collect();
        let entries: Vec<(u64, Arc<Versioned<M>>)> =
            read_versions.iter().copied().zip(records).collect();
        let pks: Vec<u64> = entries.iter().map(|(_, r)| r.pk).collect();
        let conflict = self
            .backend
            .write(&pks, ONCE, || {
                Attempt::Done(self.backend.replace_all(&entries))
            })
            .unwrap_or_else(|_| unreachable!("no budget"))
            .err();
        let records: Vec<Arc<Versioned<M>>> = entries.into_iter().map(|(_, r)| r).collect();
        match conflict {
            None => Ok(records),
            Some((index, current)) => Err(CommitError::Conflict {
                pk: records[index].pk,
                expected: read_versions[index],
                current,
                rejected: records
                    .into_iter()
                    .zip(read_versions)
                    .map(|(r, v)| reclaim(r, v))
                    .collect(),
            }),
        }
    }

    /// Deletes record `pk` if it still has version `version`; returns the deleted record.
    ///
    /// Alters data.
    ///
    /// # Errors
    ///
    /// [`DeleteError::NotFound`] if there is no such record (already deleted),
    /// [`DeleteError::Conflict`] if it changed since `version` was read.
    pub fn delete(&self, pk: u64, version: u64) -> Result<Arc<Versioned<M>>, DeleteError<M>> {
        let outcome = self
            .backend
            .write(&[pk], ONCE, || {
                Attempt::Done(self.backend.replace(pk, version, None))
            })
            .unwrap_or_else(|_| unreachable!("no budget"));
        match outcome {
            Ok(deleted) => Ok(deleted),
            Err(None) => Err(DeleteError::NotFound { pk }),
            Err(Some(current)) => Err(DeleteError::Conflict {
                expected: version,
                current,
            }),
        }
    }
}

/// Borrowed reads from a [`ModelStore`] (see [`ModelStore::pin`]). Tied to its thread.
pub struct Pinned<'s, M: Model, S: Strategy = LockFree> {
    store: &'s ModelStore<M, S>,
    pin: <BackendOf<M, S> as Backend<M>>::Pin<'s>,
    /// Epoch guards belong to the thread that pinned.
    _not_send: PhantomData<*const ()>,
}

impl<M: Model, S: Strategy> Pinned<'_, M, S> {
    /// The record with primary key `pk`, borrowed for as long as the pin lives.
    #[inline]
    pub fn get(&self, pk: u64) -> Option<&Versioned<M>> {
        self.store.backend.get_pinned(&self.pin, pk)
    }

    /// The store this pin reads.
    pub fn store(&self) -> &ModelStore<M, S> {
        self.store
    }
}

impl<M: Model, S: Strategy> fmt::Debug for Pinned<'_, M, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pinned")
            .field("store", self.store)
            .finish_non_exhaustive()
    }
}

/// A record [`ModelStore::update`] just committed.
///
/// It dereferences to the [`Versioned`] record (value, primary key, version). Under
/// [`LockFree`] it borrows the record under the epoch pin the update took, so returning it
/// moved no reference count; under [`Blocking`](crate::Blocking) it holds a counted reference.
/// Either way it is tied to its thread, like a [`Pinned`]: call [`into_arc`](Self::into_arc)
/// (one reference count) to keep the record longer, send it to another thread, or hold it
/// across an `.await`. While it lives, records replaced meanwhile wait to be reclaimed, so
/// drop it promptly.
///
/// ```compile_fail
/// # use unlocked::model::{Model, ModelStore};
/// # #[derive(Clone, Debug)] struct A;
/// # impl Model for A { const APP_LABEL: &'static str = "a"; const NAME: &'static str = "A"; }
/// let store: ModelStore<A> = ModelStore::new();
/// let pk = store.insert(A).pk();
/// let committed = store.update(pk, |_| ()).unwrap();
/// std::thread::scope(|s| { s.spawn(move || drop(committed)); }); // tied to its thread
/// ```
pub struct Committed<'s, M: Model, S: Strategy = LockFree> {
    record: <BackendOf<M, S> as Backend<M>>::Committed<'s>,
    /// Epoch guards belong to the thread that pinned.
    _not_send: PhantomData<*const ()>,
}

impl<M: Model, S: Strategy> Committed<'_, M, S> {
    /// The record with a reference count of its own: it outlives this `Committed` and may be
    /// sent to another thread.
    pub fn to_arc(&self) -> Arc<Versioned<M>> {
        BackendOf::<M, S>::committed_arc(&self.record)
    }

    /// As [`to_arc`](Self::to_arc), consuming `self` (which ends its pin).
    pub fn into_arc(self) -> Arc<Versioned<M>> {
        self.to_arc()
    }
}

impl<M: Model, S: Strategy> std::ops::Deref for Committed<'_, M, S> {
    type Target = Versioned<M>;
    #[inline]
    fn deref(&self) -> &Versioned<M> {
        &self.record
    }
}

impl<M: Model + fmt::Debug, S: Strategy> fmt::Debug for Committed<'_, M, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// An immutable view of a [`ModelStore`] (see
/// [`ModelStore::snapshot`]). Holding it keeps the records of that instant alive.
pub struct ModelSnapshot<M> {
    /// Every record, in key order.
    records: Arc<Vec<Arc<Versioned<M>>>>,
}

impl<M> Clone for ModelSnapshot<M> {
    fn clone(&self) -> Self {
        Self {
            records: self.records.clone(),
        }
    }
}

impl<M> fmt::Debug for ModelSnapshot<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelSnapshot")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl<M> ModelSnapshot<M> {
    /// The record with primary key `pk` in this snapshot (a binary search).
    pub fn get(&self, pk: u64) -> Option<&Arc<Versioned<M>>> {
        let index = self.records.binary_search_by_key(&pk, |r| r.pk).ok()?;
        Some(&self.records[index])
    }

    /// How many records the snapshot holds.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the snapshot holds no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Every record, in primary-key order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Versioned<M>>> + '_ {
        self.records.iter()
    }
}
