//! How each [`Strategy`](crate::Strategy) implements the model component. Sealed: the traits
//! are public items of a private module (arc-swap's pattern), so code outside the crate can
//! neither name nor implement them.
//!
//! * [`lock_free::LockFreeBackend`]: every record in its own [`ArcCell`](crate::sync::arc_cell)
//!   (crossbeam-epoch reclamation), in an append-only `boxcar::Vec` indexed by `pk - 1`; a
//!   single-record write is one compare-and-swap; multi-record commits install under the
//!   store's escalation lock while a commit sequence is odd; bounded optimism, then escalation
//!   ([`crate::sync::escalate`]).
//! * [`blocking::BlockingBackend`]: a `Vec` indexed by `pk - 1` under the model type's class
//!   lock.

// Public items of a private module: visible to the `Strategy` bounds, nameable by no one
// outside the crate (arc-swap's sealing).
#![allow(unreachable_pub)]

use std::sync::Arc;

use super::record::{Model, Versioned};
use crate::sync::escalate::{Attempt, Exhausted, Progress};

pub(crate) mod blocking;
pub(crate) mod lock_free;

/// Selects the model back end of a strategy (implemented in `crate::strategy`, so this module
/// never names a strategy).
pub trait ModelStrategy {
    /// The back end that holds a store's records.
    type Backend<M: Model>: Backend<M>;
}

/// A record as stored.
pub type Record<M> = Arc<Versioned<M>>;

/// Why a multi-record replacement failed: the index of the first entry whose record was not
/// at the expected version, and that record as it is (committed), `None` if absent.
pub type ReplaceAllError<M> = (usize, Option<Record<M>>);

/// What one [`Backend::try_update`] attempt did (`C`: the back end's
/// [`Committed`](Backend::Committed)).
#[derive(Debug)]
pub enum TryUpdate<C, E> {
    /// Committed: the new record.
    Done(C),
    /// No record under the key.
    NotFound,
    /// `make` refused (its error).
    Failed(E),
    /// The record changed between the read and the swap.
    Conflict,
}

/// [`Backend::try_update`] from [`Backend::get`] and [`Backend::replace`], for a back end whose
/// committed record is a counted one.
pub(crate) fn try_update_by_replace<M, B: Backend<M>, E>(
    backend: &B,
    pk: u64,
    make: impl FnOnce(&Versioned<M>) -> Result<Record<M>, E>,
) -> TryUpdate<Record<M>, E> {
    let Some(current) = backend.get(pk) else {
        return TryUpdate::NotFound;
    };
    let new = match make(&current) {
        Ok(new) => new,
        Err(e) => return TryUpdate::Failed(e),
    };
    match backend.replace(pk, current.version, Some(new.clone())) {
        Ok(_) => TryUpdate::Done(new),
        Err(None) => TryUpdate::NotFound,
        Err(Some(_)) => TryUpdate::Conflict,
    }
}

/// The operations a store is built from. Every value a method returns is committed: no
/// method returns a record of a multi-record commit that is still being installed.
pub trait Backend<M>: Send + Sync + Sized {
    /// What [`pin`](Self::pin) returns: keeps records read through it alive.
    type Pin<'a>
    where
        Self: 'a;
    /// What [`try_update`](Self::try_update) hands back: the record it committed, borrowed
    /// from the store or counted.
    type Committed<'a>: std::ops::Deref<Target = Versioned<M>>
    where
        Self: 'a;

    /// An empty back end.
    fn new() -> Self;
    /// The record with key `pk`, with its own reference count.
    fn get(&self, pk: u64) -> Option<Record<M>>;
    /// Starts a series of borrowed reads.
    fn pin(&self) -> Self::Pin<'_>;
    /// The record with key `pk`, borrowed for as long as the pin.
    fn get_pinned<'p>(&'p self, pin: &'p Self::Pin<'_>, pk: u64) -> Option<&'p Versioned<M>>;
    /// Adds `value` under the next key, at version 1.
    fn insert(&self, value: M) -> Record<M>;
    /// How many records exist.
    fn live_count(&self) -> usize;
    /// Every record, in key order; a multi-record commit is wholly in it or wholly absent.
    fn snapshot(&self) -> Vec<Record<M>>;
    /// One attempt: replaces record `pk` by `new` (`None` deletes it) if it is at version
    /// `expected`: `Ok(replaced)`, or `Err(current)` (`None`: no such record).
    fn replace(
        &self,
        pk: u64,
        expected: u64,
        new: Option<Record<M>>,
    ) -> Result<Record<M>, Option<Record<M>>>;
    /// One attempt at a read-modify-write of record `pk`: `make` builds the new record from
    /// the current one, which is then replaced if it has not changed meanwhile.
    fn try_update<E>(
        &self,
        pk: u64,
        make: impl FnOnce(&Versioned<M>) -> Result<Record<M>, E>,
    ) -> TryUpdate<Self::Committed<'_>, E>;
    /// A counted reference to a record [`try_update`](Self::try_update) committed.
    fn committed_arc(committed: &Self::Committed<'_>) -> Record<M>;
    /// A new record `pk` at `version` holding `value`. The lock-free back end builds it in a
    /// spare record ([`crate::sync::recycle`]) when this thread has one.
    #[inline]
    fn record(&self, pk: u64, version: u64, value: M) -> Record<M> {
        Arc::new(Versioned { pk, version, value })
    }
    /// A new record `pk` at `version` whose value is a copy of `from` changed by `change`;
    /// `change`'s error if it fails (nothing built is kept). The lock-free back end builds it
    /// in a spare record ([`crate::sync::recycle`]) when this thread has one.
    #[inline]
    fn make_record<E, F: FnOnce(&mut M) -> Result<(), E>>(
        &self,
        pk: u64,
        version: u64,
        from: &M,
        change: F,
    ) -> Result<Record<M>, E>
    where
        M: Clone,
    {
        let mut value = from.clone();
        change(&mut value)?;
        Ok(Arc::new(Versioned { pk, version, value }))
    }
    /// One attempt: for each `(expected, record)`, replaces the stored record of
    /// `record.pk()` by `record` if it is at version `expected`: all of them, or none.
    fn replace_all(&self, records: &[(u64, Record<M>)]) -> Result<(), ReplaceAllError<M>>;
    /// Runs `attempt` until it is done: the write protocol of the strategy for the records
    /// `pks` (lock-free: optimism, then escalation; blocking: a plain loop). Fails only when
    /// `progress.budget` runs out.
    fn write<T>(
        &self,
        pks: &[u64],
        progress: Progress,
        attempt: impl FnMut() -> Attempt<T>,
    ) -> Result<T, Exhausted>;
    /// Runs `f` as one data-altering operation (under `Blocking`: holding the class lock).
    fn alters_data<R>(&self, f: impl FnOnce() -> R) -> R;
}
