//! The store: a concurrent map of versioned records, and its builder.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use time::Duration;

use super::backend::{Backend, SessionStrategy};
use super::codec::SessionCodec;
use super::data::SessionData;
use super::error::{CreateError, SaveError};
use super::key::SessionKey;
use super::record::{Expiry, Record, Stamp, expires_stamp};
use super::save::{ConflictPolicy, SaveInput, versioned_save};
use crate::sync::escalate::{DEFAULT_ESCALATE_AFTER, Progress};
use crate::sync::{AtomicU64, AtomicUsize, Ordering};
use crate::{LockFree, Strategy};

/// Django's `SESSION_COOKIE_AGE`: two weeks, in seconds.
pub const DEFAULT_AGE_SECS: i64 = 1_209_600;

/// A session store: versioned, immutable records in a concurrent map.
///
/// With [`LockFree`] (the default) the map is papaya's, each session in its own cell: loading
/// a session takes no lock and writes nothing shared but the record's reference count; a save
/// publishes a new record with one compare-and-swap on the session's cell, and a save that
/// keeps losing races escalates to a lock other savers of that session respect, so it always
/// finishes. With [`Blocking`](crate::Blocking) it is a `HashMap` under the module lock
/// `lock::module("unlocked::session")`. Same API, same semantics.
///
/// Share one store between request threads (`Arc<SessionStore>`, a `static`, or your
/// framework's state); each request [`load`](Self::load)s a [`Session`](crate::session::Session), works on it and
/// [`save`](crate::session::Session::save)s it.
///
/// ```
/// use serde_json::json;
/// use unlocked::session::SessionStore;
///
/// let store: SessionStore = SessionStore::new();
///
/// // Request 1: no cookie yet.
/// let mut session = store.load(None);
/// session.insert("user_id", json!(42));
/// session.save()?;
/// let cookie = session.session_key().unwrap().to_string();
///
/// // Request 2: the browser sends the cookie back.
/// let session = store.load(Some(&cookie));
/// assert_eq!(session.get("user_id"), Some(&json!(42)));
///
/// // A forged or unknown cookie gives a fresh, empty session, never one under the sent key.
/// let forged = store.load(Some("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
/// assert!(forged.is_empty() && forged.session_key().is_none());
/// # Ok::<(), unlocked::session::SaveError>(())
/// ```
pub struct SessionStore<S: Strategy = LockFree> {
    backend: <S as SessionStrategy>::Backend,
    /// Live records (expired ones included until swept): the bound's counter.
    live: AtomicUsize,
    /// At the bound: the earliest instant (nanoseconds since the epoch, truncated) at which a
    /// create may sweep again, so a flood of creates sweeps at most once per interval.
    next_full_sweep: AtomicU64,
    config: Config,
    _strategy: PhantomData<S>,
}

#[derive(Clone, Copy, Debug)]
struct Config {
    default_age: i64,
    max_sessions: Option<usize>,
    full_sweep_interval: Duration,
    policy: ConflictPolicy,
    expire_at_browser_close: bool,
    codec: SessionCodec,
    escalate_after: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            default_age: DEFAULT_AGE_SECS,
            max_sessions: None,
            full_sweep_interval: Duration::seconds(1),
            policy: ConflictPolicy::default(),
            expire_at_browser_close: false,
            codec: SessionCodec::new(),
            escalate_after: DEFAULT_ESCALATE_AFTER,
        }
    }
}

/// Configures a [`SessionStore`]. Every knob has Django's default.
///
/// ```
/// use time::Duration;
/// use unlocked::Blocking;
/// use unlocked::session::{ConflictPolicy, SessionStore};
///
/// let store = SessionStore::<Blocking>::builder()
///     .default_age(Duration::hours(1))
///     .max_sessions(10_000)
///     .conflict_policy(ConflictPolicy::LastWriterWins)
///     .build();
/// assert_eq!(store.max_sessions(), Some(10_000));
/// ```
#[must_use]
pub struct SessionStoreBuilder<S: Strategy = LockFree> {
    config: Config,
    _strategy: PhantomData<S>,
}

impl<S: Strategy> SessionStoreBuilder<S> {
    /// How long a session lives after its last save when it has no custom expiry (Django's
    /// `SESSION_COOKIE_AGE`, default two weeks). Whole seconds; fractions are dropped.
    pub fn default_age(mut self, age: Duration) -> Self {
        self.config.default_age = age.whole_seconds();
        self
    }

    /// Bounds the number of live sessions (default: unbounded). At the bound, creating a
    /// session first sweeps the expired ones (at most once per
    /// [`full_sweep_interval`](Self::full_sweep_interval), so a flood of creates at the bound
    /// costs one failed counter update each, not a sweep each); if that makes no room it fails
    /// with [`CreateError::Full`]: existing sessions are never evicted to make room, so a flood
    /// of anonymous requests cannot log real users out. Cycling a key never fails on the
    /// bound.
    pub fn max_sessions(mut self, max: usize) -> Self {
        self.config.max_sessions = Some(max);
        self
    }

    /// At the [`max_sessions`](Self::max_sessions) bound, how often a create may sweep for
    /// expired sessions (default one second). Shorter: expired sessions make room sooner;
    /// longer: less work under a flood of creates at the bound (each sweep looks at every
    /// session). [`SessionStore::clear_expired`] always sweeps.
    pub fn full_sweep_interval(mut self, interval: Duration) -> Self {
        self.config.full_sweep_interval = interval.max(Duration::ZERO);
        self
    }

    /// Under [`LockFree`]: how many lost races a save makes before it escalates (default 4):
    /// it then takes the store's escalation lock and flags the session, so other saves of it
    /// queue behind it, and it finishes after at most one more lost race per other thread.
    /// Lower hands a hot session to the lock sooner; `0` always locks. No effect under
    /// [`Blocking`](crate::Blocking), whose saves hold the module lock.
    pub fn escalate_after(mut self, attempts: u32) -> Self {
        self.config.escalate_after = attempts;
        self
    }

    /// What a save does when the session changed since it was loaded (default
    /// [`ConflictPolicy::MergeChangedKeys`]).
    pub fn conflict_policy(mut self, policy: ConflictPolicy) -> Self {
        self.config.policy = policy;
        self
    }

    /// Django's `SESSION_EXPIRE_AT_BROWSER_CLOSE` (default `false`): what
    /// [`Session::get_expire_at_browser_close`](crate::session::Session::get_expire_at_browser_close) answers for a session without custom expiry.
    pub fn expire_at_browser_close(mut self, yes: bool) -> Self {
        self.config.expire_at_browser_close = yes;
        self
    }

    /// The limit on encoded session data for [`SessionStore::codec`] and
    /// [`SessionStore::import`], in bytes (default
    /// [`DEFAULT_MAX_ENCODED_LEN`](super::DEFAULT_MAX_ENCODED_LEN), 1 MiB). Larger input is
    /// refused with a typed error before it is parsed.
    pub fn max_encoded_len(mut self, bytes: usize) -> Self {
        self.config.codec = self.config.codec.with_max_len(bytes);
        self
    }

    /// Builds the store.
    pub fn build(self) -> SessionStore<S> {
        SessionStore {
            backend: Backend::new(Progress {
                escalate_after: self.config.escalate_after,
                budget: None,
            }),
            live: AtomicUsize::new(0),
            next_full_sweep: AtomicU64::new(0),
            config: self.config,
            _strategy: PhantomData,
        }
    }
}

impl<S: Strategy> Default for SessionStore<S> {
    fn default() -> Self {
        SessionStore::<S>::builder().build()
    }
}

impl<S: Strategy> fmt::Debug for SessionStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionStore")
            .field("strategy", &S::KIND)
            .field("len", &self.len())
            .field("config", &self.config)
            .finish()
    }
}

impl<S: Strategy> SessionStore<S> {
    /// A store with Django's defaults.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder.
    pub fn builder() -> SessionStoreBuilder<S> {
        SessionStoreBuilder {
            config: Config::default(),
            _strategy: PhantomData,
        }
    }
}

impl<S: Strategy> SessionStore<S> {
    /// The codec for this store's session data, with its configured size limit
    /// ([`SessionStoreBuilder::max_encoded_len`]): encode a record's
    /// [`data`](Record::data) to persist it elsewhere.
    pub fn codec(&self) -> SessionCodec {
        self.config.codec
    }

    /// The stored record under `key`, unless absent, expired or `key` is malformed.
    ///
    /// Reads ([`load`](Self::load), this, [`exists`](Self::exists)) check expiry against the
    /// system's coarse clock where it has one (Linux): a session stays readable for at most one
    /// scheduler tick (4 ms by default) past its expiry, and the check costs a seventh of a
    /// precise clock read.
    pub fn record(&self, key: &str) -> Option<Arc<Record>> {
        let key = SessionKey::parse(key).ok()?;
        let record = self.backend.get(&key)?;
        (!record.expired(Stamp::now_coarse())).then_some(record)
    }

    /// Whether a live, unexpired session exists under `key`.
    pub fn exists(&self, key: &str) -> bool {
        self.record(key).is_some()
    }

    /// Deletes the session under `key`; `true` if there was one (expired or not). Saves of it
    /// that are in flight fail with [`SaveError::Gone`](super::SaveError::Gone).
    pub fn delete(&self, key: &str) -> bool {
        match SessionKey::parse(key) {
            Ok(key) => self.delete_key(&key),
            Err(_) => false,
        }
    }

    /// Removes every expired record; returns how many. Readers are never blocked: with
    /// [`LockFree`] the sweep iterates without a lock and removes each record with a
    /// conditional removal, so a record saved (and so extended) meanwhile is kept.
    pub fn clear_expired(&self) -> usize {
        let removed = self.backend.sweep(Stamp::now());
        self.release(removed);
        removed
    }

    /// The number of stored records, expired ones included until swept.
    pub fn len(&self) -> usize {
        // Relaxed: a statistic; nothing is published through this counter.
        self.live.load(Ordering::Relaxed)
    }

    /// Whether the store holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The configured conflict policy.
    pub fn conflict_policy(&self) -> ConflictPolicy {
        self.config.policy
    }

    /// The configured default age, in seconds.
    pub fn default_age_secs(&self) -> i64 {
        self.config.default_age
    }

    /// The configured bound on live sessions.
    pub fn max_sessions(&self) -> Option<usize> {
        self.config.max_sessions
    }

    pub(crate) fn expire_at_browser_close(&self) -> bool {
        self.config.expire_at_browser_close
    }

    /// The record under `key` as stored (expired or not).
    #[cfg(feature = "tower-sessions")]
    pub(crate) fn stored(&self, key: &SessionKey) -> Option<Arc<Record>> {
        self.backend.get(key)
    }

    /// The versioned save of a handle's (or an adapter's) changes: see [`versioned_save`].
    pub(crate) fn save_changes(&self, input: SaveInput<'_>) -> Result<Arc<Record>, SaveError> {
        versioned_save(input, &self.backend)
    }

    pub(crate) fn delete_key(&self, key: &SessionKey) -> bool {
        let removed = self.backend.remove(key);
        self.release(usize::from(removed));
        removed
    }

    fn release(&self, n: usize) {
        if n > 0 {
            // Relaxed: the counter only bounds the number of records; the map itself orders
            // the records' publication.
            self.live.fetch_sub(n, Ordering::Relaxed);
        }
    }

    /// Reserves room for one more record.
    fn reserve(&self, unbounded: bool) -> Result<(), CreateError> {
        let max = match self.config.max_sessions {
            Some(max) if !unbounded => max,
            _ => {
                // Relaxed: a count, see `release`.
                self.live.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
        };
        let try_reserve = || {
            // Relaxed: a count; `fetch_update` makes the check and the increment one step,
            // so concurrent creators never exceed `max` together.
            self.live
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    (n < max).then_some(n + 1)
                })
                .is_ok()
        };
        if try_reserve() {
            return Ok(());
        }
        // Full: make room from expired records only, then try once more. At most one create
        // per interval sweeps (the one that moves `next_full_sweep` on); the others fail at
        // once, so a flood at the bound costs O(1) per create, not O(sessions).
        let now = Stamp::now();
        let now_ns = now.as_u64();
        // Relaxed: the deadline only rations work; the sweep itself goes through the map.
        let due = self.next_full_sweep.load(Ordering::Relaxed);
        let interval =
            u64::try_from(self.config.full_sweep_interval.whole_nanoseconds()).unwrap_or(u64::MAX);
        if now_ns >= due
            && self
                .next_full_sweep
                // Relaxed: as above; the compare-and-swap elects one sweeper.
                .compare_exchange(
                    due,
                    now_ns.saturating_add(interval),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            let removed = self.backend.sweep(now);
            self.release(removed);
            if try_reserve() {
                return Ok(());
            }
        }
        Err(CreateError::Full { limit: max })
    }

    /// Inserts a new record under a fresh key (re-rolled on the astronomically unlikely
    /// collision): an atomic insert-if-absent, so two creators never share a key.
    pub(crate) fn insert_new(
        &self,
        data: SessionData,
        expiry: Option<Expiry>,
        now: Stamp,
        unbounded: bool,
    ) -> Result<Arc<Record>, CreateError> {
        self.insert_new_keyed(data, expiry, now, unbounded, SessionKey::generate)
    }

    /// [`insert_new`](Self::insert_new) with the keys drawn from `next_key` (integrations
    /// whose framework picks the session id).
    pub(crate) fn insert_new_keyed(
        &self,
        mut data: SessionData,
        expiry: Option<Expiry>,
        now: Stamp,
        unbounded: bool,
        mut next_key: impl FnMut() -> SessionKey,
    ) -> Result<Arc<Record>, CreateError> {
        self.reserve(unbounded)?;
        // Gives the reserved slot back unless the record is stored: also when the insert
        // panics (a refused lock under `Blocking`, a panicking key source), so the count
        // stays exact and the bound does not shrink.
        struct Reserved<'a, S: Strategy>(Option<&'a SessionStore<S>>);
        impl<S: Strategy> Drop for Reserved<'_, S> {
            fn drop(&mut self) {
                if let Some(store) = self.0 {
                    store.release(1);
                }
            }
        }
        let mut reserved = Reserved(Some(self));
        data.compact_for_storage();
        let mut record = Arc::new(Record {
            key: next_key(),
            expires_at: expires_stamp(expiry, now, self.config.default_age),
            data,
            expiry,
            version: 1,
        });
        loop {
            let keep = Arc::clone(&record);
            match self.backend.insert_if_absent(record) {
                Ok(()) => {
                    reserved.0 = None;
                    return Ok(keep);
                }
                Err(back) => {
                    drop(keep);
                    let mut r = Arc::unwrap_or_clone(back);
                    r.key = next_key();
                    record = Arc::new(r);
                }
            }
        }
    }
}
