//! How each [`Strategy`](crate::Strategy) implements the session component. Sealed: the
//! traits are public items of a private module, so code outside the crate can neither name
//! nor implement them.
//!
//! A back end is a concurrent map from [`SessionKey`] to an immutable, versioned [`Record`],
//! with one conditional primitive: replace (or remove) an entry only if it still holds a given
//! record (pointer identity). Everything else (versions, merging, expiry, the bound on live
//! sessions) lives in the store and in [`super::save`], once for every back end.
//!
//! * [`lock_free::LockFreeBackend`]: papaya's map of per-session [`ArcCell`]s: a save is one
//!   compare-and-swap on the session's cell (papaya itself changes only on create and delete),
//!   records are retired through the map's own seize collector.
//! * [`blocking::BlockingBackend`]: a `HashMap` under the session module's lock.
//!
//! [`ArcCell`]: crate::sync::arc_cell::ArcCell

// Public items of a private module: visible to the `Strategy` bounds, nameable by no one
// outside the crate (arc-swap's sealing).
#![allow(unreachable_pub)]

use std::sync::Arc;

use super::key::SessionKey;
use super::record::{Record, Stamp};
use crate::sync::escalate::{Attempt, Progress};

pub(crate) mod blocking;
pub(crate) mod lock_free;
#[cfg(feature = "redis")]
pub(crate) mod redis;

/// Why a compare-and-swap on one map entry failed.
#[derive(Debug)]
pub enum CasFailure {
    /// The entry holds another record (returned).
    Changed(Arc<Record>),
    /// The entry is gone.
    Absent,
}

/// Selects the session back end of a strategy (implemented in `crate::strategy`, so this
/// module never names a strategy).
pub trait SessionStrategy {
    /// The map.
    type Backend: Backend;
}

/// A session map.
pub trait Backend: Send + Sync + 'static {
    /// An empty map whose writers follow `progress`.
    fn new(progress: Progress) -> Self;
    /// The live record under `key`, expired or not.
    fn get(&self, key: &SessionKey) -> Option<Arc<Record>>;
    /// Inserts `record` under its key unless the key is taken; hands it back if it was.
    fn insert_if_absent(&self, record: Arc<Record>) -> Result<(), Arc<Record>>;
    /// Replaces the entry of `expected.key` by `new` only if it still holds `expected`:
    /// returns `new` as stored, or hands it back with the reason.
    fn compare_and_swap(
        &self,
        expected: &Arc<Record>,
        new: Arc<Record>,
    ) -> Result<Arc<Record>, (CasFailure, Arc<Record>)>;
    /// Removes the entry under `key`, whatever it holds; `true` if there was one.
    fn remove(&self, key: &SessionKey) -> bool;
    /// Removes every record expired at `now`; returns how many it removed.
    fn sweep(&self, now: Stamp) -> usize;
    /// Runs `attempt` until it is done, following the back end's write protocol for the
    /// session `key` (lock-free: optimism, then escalation; blocking: a plain loop).
    fn write<T>(&self, key: &SessionKey, attempt: impl FnMut() -> Attempt<T>) -> T;
}
