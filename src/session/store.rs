//! The store: a concurrent map of versioned records, and its builder.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use time::{Duration, OffsetDateTime};

use super::codec::SessionCodec;
use super::error::{CreateError, ImportError};
use super::handle::Session;
use super::key::SessionKey;
use super::record::{ConflictPolicy, Expiry, Record, SessionData, expiry_date};
use super::strategy::{Backend, SessionStrategy};
use crate::sync::{AtomicUsize, Ordering};
use crate::{LockFree, Strategy};

/// Django's `SESSION_COOKIE_AGE`: two weeks, in seconds.
pub const DEFAULT_AGE_SECS: i64 = 1_209_600;

/// A session store: versioned, immutable records in a concurrent map.
///
/// With [`LockFree`] (the default) the map is flurry's: loading a session takes no lock and
/// writes nothing shared but the record's reference count; a save publishes a new record with
/// a compare-and-swap on its entry. With [`Blocking`](crate::Blocking) it is a `HashMap`
/// under the module lock `lock::module("unlocked::session")`. Same API, same semantics.
///
/// Share one store between request threads (`Arc<SessionStore>`, a `static`, or your
/// framework's state); each request [`load`](Self::load)s a [`Session`], works on it and
/// [`save`](Session::save)s it.
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
///
/// The second type parameter is hidden plumbing (the map back end, chosen by `S`): leave it
/// at its default.
pub struct SessionStore<S: Strategy = LockFree, B: Backend = <S as SessionStrategy>::Backend> {
    backend: B,
    /// Live records (expired ones included until swept): the bound's counter.
    live: AtomicUsize,
    config: Config,
    _strategy: PhantomData<S>,
}

#[derive(Clone, Copy, Debug)]
struct Config {
    default_age: i64,
    max_sessions: Option<usize>,
    policy: ConflictPolicy,
    expire_at_browser_close: bool,
    codec: SessionCodec,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            default_age: DEFAULT_AGE_SECS,
            max_sessions: None,
            policy: ConflictPolicy::default(),
            expire_at_browser_close: false,
            codec: SessionCodec::new(),
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
    /// session first sweeps the expired ones; if none were expired it fails with
    /// [`CreateError::Full`]: existing sessions are never evicted to make room, so a flood of
    /// anonymous requests cannot log real users out. Cycling a key never fails on the bound.
    pub fn max_sessions(mut self, max: usize) -> Self {
        self.config.max_sessions = Some(max);
        self
    }

    /// What a save does when the session changed since it was loaded (default
    /// [`ConflictPolicy::MergeChangedKeys`]).
    pub fn conflict_policy(mut self, policy: ConflictPolicy) -> Self {
        self.config.policy = policy;
        self
    }

    /// Django's `SESSION_EXPIRE_AT_BROWSER_CLOSE` (default `false`): what
    /// [`Session::get_expire_at_browser_close`] answers for a session without custom expiry.
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
        self.build_with_backend()
    }

    /// Builds the store on another map back end (benchmarks of alternative maps).
    #[doc(hidden)]
    pub fn build_with_backend<B: Backend>(self) -> SessionStore<S, B> {
        SessionStore {
            backend: Default::default(),
            live: AtomicUsize::new(0),
            config: self.config,
            _strategy: PhantomData,
        }
    }
}

impl<S: Strategy, B: Backend> Default for SessionStore<S, B> {
    fn default() -> Self {
        SessionStore::<S>::builder().build_with_backend()
    }
}

impl<S: Strategy, B: Backend> fmt::Debug for SessionStore<S, B> {
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

impl<S: Strategy, B: Backend> SessionStore<S, B> {
    /// Loads the session a client's cookie names.
    ///
    /// A missing, malformed (shorter than 8 characters, characters outside `[a-z0-9]`, not 32
    /// long), unknown or expired key gives a fresh, empty session with no key; it gets a new
    /// key from the store when first saved. The client never chooses its key.
    pub fn load(&self, key: Option<&str>) -> Session<'_, S, B> {
        let record = key.and_then(|k| self.record(k));
        Session::new(self, record)
    }

    /// [`load`](Self::load) for a store shared by `Arc`: the handle keeps the store alive
    /// instead of borrowing it, so it is `'static` (an [`OwnedSession`](super::OwnedSession)
    /// for the default back end) and can be kept in a request's extensions.
    pub fn load_owned(self: &Arc<Self>, key: Option<&str>) -> Session<'static, S, B, Arc<Self>> {
        let record = key.and_then(|k| self.record(k));
        Session::new(Arc::clone(self), record)
    }

    /// Creates an empty session under a new key right away (Django's `create()`).
    pub fn create(&self) -> Result<Session<'_, S, B>, CreateError> {
        let now = OffsetDateTime::now_utc();
        let record = self.insert_new(SessionData::new(), None, now, false)?;
        let mut session = Session::new(self, Some(record));
        session.set_modified(true);
        Ok(session)
    }

    /// The codec for this store's session data, with its configured size limit
    /// ([`SessionStoreBuilder::max_encoded_len`]): encode a record's
    /// [`data`](Record::data) to persist it elsewhere.
    pub fn codec(&self) -> SessionCodec {
        self.config.codec
    }

    /// Creates a session under a new key from encoded data (made by
    /// [`SessionCodec::encode`], or any JSON object): a migration from another session
    /// backend, or data restored from a database. The key is always fresh: the input never
    /// chooses one.
    ///
    /// ```
    /// use serde_json::json;
    /// use unlocked::session::{ImportError, SessionStore};
    ///
    /// let store: SessionStore = SessionStore::new();
    /// let session = store.import(br#"{"cart": [1, 2]}"#)?;
    /// assert_eq!(session.get("cart"), Some(&json!([1, 2])));
    /// assert!(matches!(store.import(b"{not json"), Err(ImportError::Decode(_))));
    /// assert_eq!(store.len(), 1);
    /// # Ok::<(), ImportError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ImportError::Decode`] if the bytes are oversized or corrupt,
    /// [`ImportError::Create`] at the [`max_sessions`](SessionStoreBuilder::max_sessions)
    /// bound; nothing is stored either way.
    pub fn import(&self, bytes: &[u8]) -> Result<Session<'_, S, B>, ImportError> {
        let data = self
            .config
            .codec
            .decode(bytes)
            .map_err(ImportError::Decode)?;
        let now = OffsetDateTime::now_utc();
        let record = self
            .insert_new(data, None, now, false)
            .map_err(ImportError::Create)?;
        Ok(Session::new(self, Some(record)))
    }

    /// The stored record under `key`, unless absent, expired or `key` is malformed.
    pub fn record(&self, key: &str) -> Option<Arc<Record>> {
        let key = SessionKey::parse(key).ok()?;
        let record = self.backend.get(&key)?;
        (!record.is_expired_at(OffsetDateTime::now_utc())).then_some(record)
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
        let removed = self.backend.sweep(OffsetDateTime::now_utc());
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

    pub(crate) fn backend(&self) -> &B {
        &self.backend
    }

    pub(crate) fn delete_key(&self, key: &SessionKey) -> bool {
        let removed = self.backend.remove(key).is_some();
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
        // Full: make room from expired records only, then try once more.
        self.clear_expired();
        if try_reserve() {
            Ok(())
        } else {
            Err(CreateError::Full { limit: max })
        }
    }

    /// Inserts a new record under a fresh key (re-rolled on the astronomically unlikely
    /// collision): an atomic insert-if-absent, so two creators never share a key.
    pub(crate) fn insert_new(
        &self,
        data: SessionData,
        expiry: Option<Expiry>,
        now: OffsetDateTime,
        unbounded: bool,
    ) -> Result<Arc<Record>, CreateError> {
        self.insert_new_keyed(data, expiry, now, unbounded, SessionKey::generate)
    }

    /// [`insert_new`](Self::insert_new) with the keys drawn from `next_key` (integrations
    /// whose framework picks the session id).
    pub(crate) fn insert_new_keyed(
        &self,
        data: SessionData,
        expiry: Option<Expiry>,
        now: OffsetDateTime,
        unbounded: bool,
        mut next_key: impl FnMut() -> SessionKey,
    ) -> Result<Arc<Record>, CreateError> {
        self.reserve(unbounded)?;
        let mut record = Record {
            key: next_key(),
            expires_at: expiry_date(expiry, now, self.config.default_age),
            data,
            expiry,
            version: 1,
        };
        loop {
            let new = Arc::new(record);
            let keep = Arc::clone(&new);
            if self.backend.insert_if_absent(new) {
                return Ok(keep);
            }
            record = Arc::unwrap_or_clone(keep);
            record.key = next_key();
        }
    }
}
