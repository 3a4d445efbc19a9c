//! Stored records, expiry, the per-request change log and the versioned save.

use std::any::Any;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use serde_json::{Map, Value};
use time::{Duration, OffsetDateTime};

use super::error::{SaveError, UpdatePanicked};
use super::key::SessionKey;
use super::strategy::CasFailure;

/// Session data: JSON values under string keys (Django's JSON serializer).
pub type SessionData = Map<String, Value>;

/// When a session expires: what [`Session::set_expiry`](super::Session::set_expiry) takes.
///
/// Django keeps this inside the session data under `_session_expiry`; this crate keeps it in a
/// typed field of the record instead, so it never shows up among the data keys and cannot be
/// overwritten by accident. The `None` of Django's `set_expiry(None)` ("back to the default
/// age") is `Option::<Expiry>::None`.
///
/// ```
/// use unlocked::session::Expiry;
///
/// assert_eq!(Expiry::seconds(0), Expiry::AtBrowserClose); // Django's set_expiry(0)
/// assert_eq!(Expiry::seconds(300), Expiry::Seconds(300));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Expiry {
    /// Expires this many seconds after the last save (Django: a non-zero integer). May be
    /// negative (the cookie is then already expired), as in Django. `Seconds(0)` behaves as
    /// [`AtBrowserClose`](Expiry::AtBrowserClose).
    Seconds(i64),
    /// Expires at this instant (Django: a `datetime`; a `timedelta` becomes one, see
    /// [`Expiry::after`]).
    At(OffsetDateTime),
    /// The cookie expires when the browser closes (Django: `0`); the stored record keeps the
    /// store's default age.
    AtBrowserClose,
}

impl Expiry {
    /// Django's integer form: `0` means at browser close, anything else is seconds.
    pub const fn seconds(seconds: i64) -> Expiry {
        if seconds == 0 {
            Expiry::AtBrowserClose
        } else {
            Expiry::Seconds(seconds)
        }
    }

    /// Django's `timedelta` form: an instant `delta` from now (computed now, as Django does).
    /// Saturates at the largest (smallest) representable instant instead of overflowing.
    pub fn after(delta: Duration) -> Expiry {
        Expiry::At(OffsetDateTime::now_utc().saturating_add(delta))
    }

    /// `true` for [`AtBrowserClose`](Expiry::AtBrowserClose) and `Seconds(0)` (Django's
    /// `expiry == 0`).
    pub const fn is_at_browser_close(&self) -> bool {
        matches!(self, Expiry::AtBrowserClose | Expiry::Seconds(0))
    }
}

/// Django's `get_expiry_age`: whole seconds, rounded down as `timedelta.days * 86400 +
/// timedelta.seconds` does.
pub(crate) fn expiry_age(
    expiry: Option<Expiry>,
    modification: OffsetDateTime,
    default_age: i64,
) -> i64 {
    match expiry {
        None | Some(Expiry::AtBrowserClose) | Some(Expiry::Seconds(0)) => default_age,
        Some(Expiry::Seconds(s)) => s,
        Some(Expiry::At(at)) => {
            let delta = at - modification;
            let secs = delta.whole_seconds();
            if delta.subsec_nanoseconds() < 0 {
                secs - 1
            } else {
                secs
            }
        }
    }
}

/// Django's `get_expiry_date`. Saturates at the largest (smallest) representable instant, so an
/// extreme age (`Expiry::Seconds(i64::MAX)`, a huge default age) means "never" ("already")
/// instead of an overflow panic.
pub(crate) fn expiry_date(
    expiry: Option<Expiry>,
    modification: OffsetDateTime,
    default_age: i64,
) -> OffsetDateTime {
    match expiry {
        Some(Expiry::At(at)) => at,
        Some(Expiry::Seconds(s)) if s != 0 => modification.saturating_add(Duration::seconds(s)),
        _ => modification.saturating_add(Duration::seconds(default_age)),
    }
}

/// One stored version of a session. Immutable: a save publishes a new record with the next
/// version; readers holding the old one keep a consistent view.
#[derive(Clone, PartialEq)]
pub struct Record {
    pub(crate) key: SessionKey,
    pub(crate) data: SessionData,
    pub(crate) expiry: Option<Expiry>,
    pub(crate) expires_at: OffsetDateTime,
    pub(crate) version: u64,
}

impl Record {
    /// The session's key.
    pub fn key(&self) -> SessionKey {
        self.key
    }

    /// The session data.
    pub fn data(&self) -> &SessionData {
        &self.data
    }

    /// The custom expiry, if one was set.
    pub fn expiry(&self) -> Option<Expiry> {
        self.expiry
    }

    /// The instant after which the store treats the record as absent (Django's
    /// `expire_date`), computed at the save that wrote it.
    pub fn expires_at(&self) -> OffsetDateTime {
        self.expires_at
    }

    /// The version: 1 when created, one more at every save.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Whether the record has expired at `now`.
    pub fn is_expired_at(&self, now: OffsetDateTime) -> bool {
        self.expires_at <= now
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("key", &self.key)
            .field("version", &self.version)
            .field("expires_at", &self.expires_at)
            .field("expiry", &self.expiry)
            .field("data", &self.data)
            .finish()
    }
}

/// An update operation: computes a key's new value from its latest value. Replayed on the
/// latest record when a save meets a newer one, so it may run more than once.
pub(crate) type UpdateFn = Arc<dyn Fn(Option<&Value>) -> Value + Send + Sync>;

/// One change a request made, in order.
#[derive(Clone)]
pub(crate) enum Op {
    Set(String, Value),
    Remove(String),
    Update(String, UpdateFn),
    Clear,
    SetExpiry(Option<Expiry>),
}

impl Op {
    /// The data key this op is about, if it is about one key.
    pub(crate) fn key(&self) -> Option<&str> {
        match self {
            Op::Set(k, _) | Op::Remove(k) | Op::Update(k, _) => Some(k),
            Op::Clear | Op::SetExpiry(_) => None,
        }
    }
}

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
            Op::Set(k, v) => {
                data.insert(k.clone(), v.clone());
            }
            Op::Remove(k) => {
                data.remove(k);
            }
            Op::Update(k, f) => {
                let new = run_update(k, f, data.get(k))?;
                data.insert(k.clone(), new);
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
pub(crate) struct SaveInput<'a> {
    pub(crate) key: SessionKey,
    /// The record the handle loaded (or last saved).
    pub(crate) base: &'a Arc<Record>,
    /// The handle's data, or `None` when it is unchanged from `base`. Taken by a successful
    /// save; left (possibly as a copy of `base`'s) on failure.
    pub(crate) data: &'a mut Option<SessionData>,
    pub(crate) expiry: Option<Expiry>,
    pub(crate) log: &'a [Op],
    pub(crate) policy: ConflictPolicy,
    pub(crate) now: OffsetDateTime,
    pub(crate) default_age: i64,
}

/// A compare-and-swap's outcome; on failure: why,, and the record that was not stored (handed back).
pub(crate) type CasResult = Result<(), (CasFailure, Arc<Record>)>;

/// The versioned save: build the next record from the entry's current record and publish it
/// with a compare-and-swap on the entry; on a lost race, retry from the record that won.
///
/// `cas(expected, new)` must replace the entry's record with `new` only if it still is
/// `expected` (pointer identity: the caller holds `expected`, so its address cannot be reused
/// meanwhile — no ABA), and hand `new` back on failure.
pub(crate) fn versioned_save(
    input: SaveInput<'_>,
    mut cas: impl FnMut(&Arc<Record>, Arc<Record>) -> CasResult,
) -> Result<Arc<Record>, SaveError> {
    let SaveInput {
        key,
        base,
        data,
        expiry,
        log,
        policy,
        now,
        default_age,
    } = input;
    let mut current = Arc::clone(base);
    loop {
        if current.is_expired_at(now) {
            return Err(SaveError::Gone { key });
        }
        let mine = Arc::ptr_eq(&current, base) || policy == ConflictPolicy::LastWriterWins;
        let (new_data, new_expiry) = if mine {
            let d = match data.take() {
                Some(d) => d,
                None => base.data.clone(),
            };
            (d, expiry)
        } else if policy == ConflictPolicy::Reject {
            return Err(SaveError::Conflict {
                loaded_version: base.version,
                current,
            });
        } else {
            let mut d = current.data.clone();
            let mut e = current.expiry;
            replay(log, &mut d, &mut e)?;
            (d, e)
        };
        let record = Arc::new(Record {
            key,
            expires_at: expiry_date(new_expiry, now, default_age),
            data: new_data,
            expiry: new_expiry,
            version: current.version + 1,
        });
        let keep = Arc::clone(&record);
        match cas(&current, record) {
            Ok(()) => return Ok(keep),
            Err((failure, rejected)) => {
                drop(keep);
                if mine {
                    // Take our data back for the next attempt (we hold the only reference).
                    *data = Some(match Arc::try_unwrap(rejected) {
                        Ok(r) => r.data,
                        Err(shared) => shared.data.clone(),
                    });
                }
                match failure {
                    CasFailure::Changed(newer) => current = newer,
                    CasFailure::Absent => return Err(SaveError::Gone { key }),
                }
            }
        }
    }
}

#[cfg(all(test, unlocked_loom))]
mod loom_model {
    //! The versioned save on one map entry, modelled by the shim's `Snapshot` (the entry's
    //! pointer) with a compare-and-swap by identity, exactly the contract `versioned_save`
    //! asks of a backend.
    use super::*;
    use crate::sync::Snapshot;

    /// One map entry: `None` once the session is deleted.
    type Entry = Snapshot<Option<Arc<Record>>>;

    fn cas_on(entry: &Entry) -> impl FnMut(&Arc<Record>, Arc<Record>) -> CasResult + '_ {
        move |expected, new| {
            let seen = entry.load_full();
            match &*seen {
                Some(cur) if Arc::ptr_eq(cur, expected) => {}
                Some(cur) => return Err((CasFailure::Changed(Arc::clone(cur)), new)),
                None => return Err((CasFailure::Absent, new)),
            }
            let witness = entry.compare_and_swap(&seen, crate::sync::Arc::new(Some(new.clone())));
            if crate::sync::Arc::ptr_eq(&witness, &seen) {
                return Ok(());
            }
            match &*witness {
                Some(cur) => Err((CasFailure::Changed(Arc::clone(cur)), new)),
                None => Err((CasFailure::Absent, new)),
            }
        }
    }

    fn request(entry: &Entry, own_key: &str, policy: ConflictPolicy) -> Result<u64, SaveError> {
        let Some(base) = entry.load_full().as_ref().clone() else {
            // Loaded after the logout: the request has no session.
            return Ok(0);
        };
        let mut data = base.data.clone();
        let mut expiry = base.expiry;
        let inc: UpdateFn = Arc::new(|v| Value::from(v.and_then(Value::as_i64).unwrap_or(0) + 1));
        let log = vec![
            Op::Set(own_key.to_owned(), Value::Bool(true)),
            Op::Update("n".to_owned(), inc),
        ];
        replay(&log, &mut data, &mut expiry).unwrap();
        let saved = versioned_save(
            SaveInput {
                key: base.key,
                base: &base,
                data: &mut Some(data),
                expiry,
                log: &log,
                policy,
                now: OffsetDateTime::UNIX_EPOCH,
                default_age: 1_209_600,
            },
            cas_on(entry),
        )?;
        Ok(saved.version)
    }

    fn initial() -> Entry {
        Snapshot::new(Some(Arc::new(Record {
            key: SessionKey::parse("abcdefghijklmnopqrstuvwxyz012345").unwrap(),
            data: SessionData::new(),
            expiry: None,
            expires_at: OffsetDateTime::UNIX_EPOCH + Duration::days(1),
            version: 1,
        })))
    }

    #[test]
    fn merge_keeps_both_requests_changes() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(|| {
            let entry = crate::sync::Arc::new(initial());
            let e2 = crate::sync::Arc::clone(&entry);
            let t =
                loom::thread::spawn(move || request(&e2, "a", ConflictPolicy::MergeChangedKeys));
            let v1 = request(&entry, "b", ConflictPolicy::MergeChangedKeys).unwrap();
            let v2 = t.join().unwrap().unwrap();
            let last = entry.load_full().as_ref().clone().unwrap();
            assert_eq!(
                last.data.get("n"),
                Some(&Value::from(2)),
                "a lost increment"
            );
            assert!(last.data.contains_key("a") && last.data.contains_key("b"));
            assert_eq!(last.version, 3);
            assert_ne!(v1, v2, "two saves published the same version");
        });
    }

    #[test]
    fn reject_reports_exactly_the_lost_race() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(|| {
            let entry = crate::sync::Arc::new(initial());
            let e2 = crate::sync::Arc::clone(&entry);
            let t = loom::thread::spawn(move || request(&e2, "a", ConflictPolicy::Reject).is_ok());
            let mine = request(&entry, "b", ConflictPolicy::Reject).is_ok();
            let theirs = t.join().unwrap();
            let last = entry.load_full().as_ref().clone().unwrap();
            let n = last.data.get("n").and_then(Value::as_i64).unwrap();
            // Every successful save counted exactly once; a rejected one changed nothing.
            assert_eq!(n, i64::from(mine) + i64::from(theirs));
            assert_eq!(last.version, 1 + n as u64);
            assert!(mine || theirs, "both saves rejected");
        });
    }

    #[test]
    fn deleted_session_is_not_resurrected() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(|| {
            let entry = crate::sync::Arc::new(initial());
            let e2 = crate::sync::Arc::clone(&entry);
            // Logout: the entry is removed while a request that loaded it saves.
            let t = loom::thread::spawn(move || e2.store(crate::sync::Arc::new(None)));
            let saved = request(&entry, "a", ConflictPolicy::LastWriterWins);
            t.join().unwrap();
            assert!(
                entry.load_full().is_none(),
                "a save resurrected a deleted session"
            );
            if let Err(e) = saved {
                assert!(matches!(e, SaveError::Gone { .. }), "{e}");
            }
        });
    }
}
