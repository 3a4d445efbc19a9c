//! The versioned save: a request's change log, its replay onto a newer record, the conflict
//! policies, and the compare-and-swap loop that publishes the next version.
//!
//! Written once for every store: the in-memory back ends give it their compare-and-swap
//! ([`Backend::compare_and_swap`]) and their write protocol ([`Backend::write`]: optimism
//! then escalation for the lock-free map, a plain loop under the module lock for the
//! blocking one).

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use compact_str::CompactString;
use serde_json::Value;
use smallvec::SmallVec;

use super::backend::{Backend, CasFailure};
use super::data::{Entry, SessionData};
use super::error::{SaveError, UpdatePanicked};
use super::key::SessionKey;
use super::record::{Expiry, Record, Stamp, expires_stamp};
use crate::sync::escalate::Attempt;

/// An update operation: computes a key's new value from its latest value. Replayed on the
/// latest record when a save meets a newer one, so it may run more than once. A closure that
/// captures nothing is boxed without an allocation.
pub(crate) type UpdateFn = Box<dyn Fn(Option<&Value>) -> Value + Send + Sync>;

/// One change a request made, in order.
pub(crate) enum Op {
    /// Set a key to a value: the very entry the request's data holds (shared, not copied).
    Set(Arc<Entry>),
    Remove(CompactString),
    Update(CompactString, UpdateFn),
    Clear,
    SetExpiry(Option<Expiry>),
}

impl Op {
    /// The data key this op is about, if it is about one key.
    pub(crate) fn key(&self) -> Option<&str> {
        match self {
            Op::Set(e) => Some(&e.key),
            Op::Remove(k) | Op::Update(k, _) => Some(k),
            Op::Clear | Op::SetExpiry(_) => None,
        }
    }
}

/// A request's change log. Most requests change one or two things: those stay inline.
pub(crate) type Log = SmallVec<[Op; 2]>;

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// Runs an update closure, turning a panic into a typed error.
pub(crate) fn run_update(
    key: &str,
    f: &UpdateFn,
    old: Option<&Value>,
) -> Result<Value, UpdatePanicked> {
    catch_unwind(AssertUnwindSafe(|| f(old))).map_err(|payload| UpdatePanicked {
        key: key.to_owned(),
        message: panic_message(&*payload),
    })
}

/// Replays a change log onto `data`/`expiry`.
pub(crate) fn replay(
    log: &[Op],
    data: &mut SessionData,
    expiry: &mut Option<Expiry>,
) -> Result<(), UpdatePanicked> {
    for op in log {
        match op {
            Op::Set(entry) => data.set_entry(Arc::clone(entry)),
            Op::Remove(k) => {
                data.discard(k);
            }
            Op::Update(k, f) => {
                data.apply(k, |old| run_update(k, f, old))?;
            }
            Op::Clear => data.clear(),
            Op::SetExpiry(e) => *expiry = *e,
        }
    }
    Ok(())
}

/// How a save that meets a record newer than the one it loaded proceeds.
///
/// ```
/// use unlocked::session::{ConflictPolicy, SessionStore};
///
/// let store: SessionStore = SessionStore::builder()
///     .conflict_policy(ConflictPolicy::Reject)
///     .build();
/// assert_eq!(store.conflict_policy(), ConflictPolicy::Reject);
/// assert_eq!(ConflictPolicy::default(), ConflictPolicy::MergeChangedKeys);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConflictPolicy {
    /// Django's behaviour: the request's whole view of the session replaces the stored record;
    /// changes saved meanwhile by other requests are lost. A deleted session is still not
    /// resurrected.
    LastWriterWins,
    /// Refuse the save with [`SaveError::Conflict`](super::SaveError::Conflict), carrying the
    /// current record (optimistic locking).
    Reject,
    /// The default: replay only this request's changes (sets, removes, update operations,
    /// clear, expiry) onto the latest record. Concurrent requests changing different keys both
    /// keep their writes; update operations are re-run on the latest value, so concurrent
    /// increments all count; two plain sets of one key: the later save wins for that key.
    #[default]
    MergeChangedKeys,
}

/// What a save brings: the handle's view and its change log.
#[allow(unreachable_pub)] // sealed: named by the web back-end traits, unreachable from outside
pub struct SaveInput<'a> {
    pub(crate) key: SessionKey,
    /// The record the handle loaded (or last saved).
    pub(crate) base: &'a Arc<Record>,
    /// The handle's data, or `None` when it is unchanged from `base`. Taken by a successful
    /// save; left (possibly as a copy of `base`'s) on failure.
    pub(crate) data: &'a mut Option<SessionData>,
    pub(crate) expiry: Option<Expiry>,
    pub(crate) log: &'a [Op],
    pub(crate) policy: ConflictPolicy,
    pub(crate) now: Stamp,
    pub(crate) default_age: i64,
}

/// The record a save publishes next, and whether it carries the handle's own data.
pub(crate) struct Next {
    pub(crate) record: Record,
    /// Built from the handle's data (taken from it): hand it back with
    /// [`SaveInput::give_back`] if the record is not published.
    mine: bool,
}

impl SaveInput<'_> {
    /// The one decision of every versioned save, for every store: the record to publish over
    /// the store's `current` record. `is_base`: `current` is the very record this handle
    /// loaded (no other save landed since), so the handle's view is written as it is;
    /// otherwise the conflict policy decides: `Reject` refuses, `MergeChangedKeys` replays the
    /// change log onto `current`, `LastWriterWins` writes the handle's view anyway.
    pub(crate) fn next(&mut self, current: &Arc<Record>, is_base: bool) -> Result<Next, SaveError> {
        if current.expired(self.now) {
            return Err(SaveError::Gone { key: self.key });
        }
        let mine = is_base || self.policy == ConflictPolicy::LastWriterWins;
        let (mut data, expiry) = if mine {
            let d = match self.data.take() {
                Some(d) => d,
                None => self.base.data.clone(),
            };
            (d, self.expiry)
        } else if self.policy == ConflictPolicy::Reject {
            return Err(SaveError::Conflict {
                loaded_version: self.base.version,
                current: Arc::clone(current),
            });
        } else {
            let mut d = current.data.clone();
            let mut e = current.expiry;
            replay(self.log, &mut d, &mut e)?;
            (d, e)
        };
        // Stored as a version: later requests copy it.
        data.compact_for_storage();
        Ok(Next {
            record: Record {
                key: self.key,
                expires_at: expires_stamp(expiry, self.now, self.default_age),
                data,
                expiry,
                version: current.version + 1,
            },
            mine,
        })
    }

    /// [`give_back`](Self::give_back) for a record never shared.
    #[cfg(feature = "redis")]
    pub(crate) fn give_back_owned(&mut self, next: Next) {
        if next.mine {
            *self.data = Some(next.record.data);
        }
    }

    /// A record built by [`next`](Self::next) was not published: the handle gets its data
    /// back (for the next attempt, or to keep after a failed save).
    pub(crate) fn give_back(&mut self, mine: bool, rejected: Arc<Record>) {
        if mine {
            // Normally the only reference: no copy.
            *self.data = Some(match Arc::try_unwrap(rejected) {
                Ok(r) => r.data,
                Err(shared) => shared.data.clone(),
            });
        }
    }
}

/// The versioned save on an in-memory back end: build the next record from the entry's
/// current record and publish it with a compare-and-swap on the entry; on a lost race, retry
/// from the record that won, following the back end's write protocol (so it never fails for
/// contention).
///
/// The back end's compare-and-swap compares by identity: the caller holds `expected`, so its
/// address cannot be reused meanwhile (no ABA).
pub(crate) fn versioned_save<B: Backend>(
    mut input: SaveInput<'_>,
    backend: &B,
) -> Result<Arc<Record>, SaveError> {
    let base = input.base;
    let key = input.key;
    // The record a save compares against: the handle's own until a race shows a newer one
    // (borrowed, not cloned: an `Arc` clone and drop are two atomic read-modify-writes, a
    // fifth of the save's count before, on the path every save takes).
    let mut newer: Option<Arc<Record>> = None;
    backend.write(&key, || {
        let current = newer.as_ref().unwrap_or(base);
        let next = match input.next(current, Arc::ptr_eq(current, base)) {
            Ok(next) => next,
            Err(e) => return Attempt::Done(Err(e)),
        };
        let mine = next.mine;
        match backend.compare_and_swap(current, Arc::new(next.record)) {
            Ok(saved) => Attempt::Done(Ok(saved)),
            Err((failure, rejected)) => {
                input.give_back(mine, rejected);
                match failure {
                    CasFailure::Changed(record) => {
                        newer = Some(record);
                        Attempt::Conflict
                    }
                    CasFailure::Absent => Attempt::Done(Err(SaveError::Gone { key })),
                }
            }
        }
    })
}
