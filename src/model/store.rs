//! [`ModelStore`]: optimistic versioned records of one model type.

use std::any::Any;
use std::collections::HashSet;
use std::fmt;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use crossbeam::utils::Backoff;

use super::error::{CommitError, DeleteError, SaveError, UpdateError};
use super::strategy::{Backend, ModelStrategy};
use super::{Draft, Model, Versioned};
use crate::{LockFree, Strategy};

/// How many times [`ModelStore::update`] runs its closure by default before giving up.
pub const DEFAULT_RETRY_BUDGET: u32 = 1024;

/// The records of one model type, each with a version, committed optimistically.
///
/// * Reads ([`get`](Self::get), [`snapshot`](Self::snapshot), [`filter`](Self::filter)) return
///   records as `Arc<`[`Versioned`]`<M>>`: the value with its primary key and version. Under
///   [`LockFree`] they take no lock (they wait only while a multi-record commit installs).
/// * Writes are validated against the version read: [`save`](Self::save) commits a
///   [`Draft`] only if the record still has the version the draft was made from,
///   [`update`](Self::update) retries a closure until it commits, [`commit`](Self::commit) and
///   [`update_many`](Self::update_many) change several records all-or-nothing.
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
    backend: <S as ModelStrategy>::Backend<M>,
    retry_budget: u32,
    _strategy: PhantomData<S>,
}

/// Configures a [`ModelStore`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ModelStoreBuilder<M: Model, S: Strategy = LockFree> {
    retry_budget: u32,
    _types: PhantomData<fn() -> (M, S)>,
}

impl<M: Model, S: Strategy> Default for ModelStoreBuilder<M, S> {
    fn default() -> Self {
        Self {
            retry_budget: DEFAULT_RETRY_BUDGET,
            _types: PhantomData,
        }
    }
}

impl<M: Model, S: Strategy> ModelStoreBuilder<M, S> {
    /// How many times [`update`](ModelStore::update) and
    /// [`update_many`](ModelStore::update_many) may run their closure before they give up with
    /// [`UpdateError::RetriesExhausted`] (default [`DEFAULT_RETRY_BUDGET`]; at least 1).
    ///
    /// Only conflicts cost an attempt: a commit to *other* records never makes an update
    /// retry. A small budget surfaces contention early (the
    /// caller decides what to do); a large one makes hot records slow but rarely fails.
    pub fn retry_budget(mut self, attempts: u32) -> Self {
        self.retry_budget = attempts.max(1);
        self
    }

    /// Builds an empty store.
    pub fn build(self) -> ModelStore<M, S> {
        ModelStore {
            backend: Backend::new(),
            retry_budget: self.retry_budget,
            _strategy: PhantomData,
        }
    }
}

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
            .field("retry_budget", &self.retry_budget)
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

    /// The retry budget of [`update`](Self::update) (see
    /// [`ModelStoreBuilder::retry_budget`]).
    pub fn retry_budget(&self) -> u32 {
        self.retry_budget
    }

    /// The record with primary key `pk`, with its version.
    ///
    /// Under [`LockFree`]: no lock, no hashing (keys index an array): one load of the record's
    /// cell, bracketed by two loads of the store's commit sequence; it waits (spinning, then
    /// yielding) only while a multi-record commit is installing its records. Under
    /// [`Blocking`](crate::Blocking): takes the model's class lock for the lookup.
    pub fn get(&self, pk: u64) -> Option<Arc<Versioned<M>>> {
        self.backend.get(pk)
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
        let record = Arc::new(Versioned {
            pk,
            version: read_version + 1,
            value: draft.value,
        });
        match self.backend.replace(pk, read_version, Some(record.clone())) {
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
    /// another commit changed the record meanwhile, backs off (crossbeam's `Backoff`) and runs
    /// `change` again on the newer value, up to the store's retry budget.
    ///
    /// Alters data. `change` may run several times: keep side effects out of it. Under
    /// [`Blocking`](crate::Blocking) it runs while holding the model's class lock.
    ///
    /// # Errors
    ///
    /// [`UpdateError::NotFound`] if there is no such record, [`UpdateError::RetriesExhausted`]
    /// if the budget ran out, [`UpdateError::Panicked`] if `change` panicked (the panic is
    /// caught and the stored record is untouched).
    pub fn update(
        &self,
        pk: u64,
        mut change: impl FnMut(&mut M),
    ) -> Result<Arc<Versioned<M>>, UpdateError<M>> {
        // `update_many` for one key, without its vectors.
        let budget = self.retry_budget;
        self.backend.alters_data(|| {
            let backoff = Backoff::new();
            let mut attempts = 0_u32;
            loop {
                let Some(current) = self.backend.get(pk) else {
                    return Err(UpdateError::NotFound { pk });
                };
                if attempts >= budget {
                    return Err(UpdateError::RetriesExhausted { attempts, current });
                }
                if attempts > 0 {
                    backoff.snooze();
                }
                attempts += 1;
                let mut value = current.value.clone();
                // The closure works on a copy: if it panics, nothing stored has been touched.
                if let Err(payload) = catch_unwind(AssertUnwindSafe(|| change(&mut value))) {
                    return Err(UpdateError::Panicked {
                        pk,
                        message: panic_message(&*payload),
                    });
                }
                let record = Arc::new(Versioned {
                    pk,
                    version: current.version + 1,
                    value,
                });
                if self
                    .backend
                    .replace(pk, current.version, Some(record.clone()))
                    .is_ok()
                {
                    return Ok(record);
                }
                // A conflict: another commit changed the record; read it again.
            }
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
        let budget = self.retry_budget;
        self.backend.alters_data(|| {
            let backoff = Backoff::new();
            let mut attempts = 0_u32;
            loop {
                let mut current = Vec::with_capacity(pks.len());
                for &pk in pks {
                    match self.backend.get(pk) {
                        Some(record) => current.push(record),
                        None => return Err(UpdateError::NotFound { pk }),
                    }
                }
                if attempts >= budget {
                    return Err(UpdateError::RetriesExhausted {
                        attempts,
                        current: current.swap_remove(0),
                    });
                }
                if attempts > 0 {
                    backoff.snooze();
                }
                attempts += 1;
                let mut values: Vec<M> = current.iter().map(|r| r.value.clone()).collect();
                // The closure works on copies: if it panics, nothing stored has been touched.
                if let Err(payload) = catch_unwind(AssertUnwindSafe(|| change(&mut values))) {
                    return Err(UpdateError::Panicked {
                        pk: pks[0],
                        message: panic_message(&*payload),
                    });
                }
                let records: Vec<(u64, Arc<Versioned<M>>)> = values
                    .into_iter()
                    .zip(&current)
                    .map(|(value, old)| {
                        let record = Arc::new(Versioned {
                            pk: old.pk,
                            version: old.version + 1,
                            value,
                        });
                        (old.version, record)
                    })
                    .collect();
                let committed = match &records[..] {
                    [(read, record)] => self
                        .backend
                        .replace(record.pk, *read, Some(record.clone()))
                        .is_ok(),
                    _ => self.backend.replace_all(&records).is_ok(),
                };
                if committed {
                    return Ok(records.into_iter().map(|(_, record)| record).collect());
                }
                // A conflict: another commit changed one of the records; read them again.
            }
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
            .map(|d| {
                Arc::new(Versioned {
                    pk: d.pk,
                    version: d.version + 1,
                    value: d.value,
                })
            })
            .collect();
        let entries: Vec<(u64, Arc<Versioned<M>>)> =
            read_versions.iter().copied().zip(records).collect();
        let conflict = self.backend.replace_all(&entries).err();
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
        match self.backend.replace(pk, version, None) {
            Ok(deleted) => Ok(deleted),
            Err(None) => Err(DeleteError::NotFound { pk }),
            Err(Some(current)) => Err(DeleteError::Conflict {
                expected: version,
                current,
            }),
        }
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
