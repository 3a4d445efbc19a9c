//! The per-request session handle, with Django's `SessionBase` semantics.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

use serde_json::Value;
use time::OffsetDateTime;

use super::data::SessionData;
use super::error::{CreateError, ImportError, SaveError, UpdatePanicked};
use super::key::SessionKey;
use super::record::{Expiry, Record, Stamp};
use super::save::SaveInput;
use super::state::{ExpiryArgs, State};
use super::store::SessionStore;
use crate::{LockFree, Strategy};

/// One request's view of a session (Django's `request.session`).
///
/// Reads and writes work on the handle; nothing reaches the store until [`save`](Self::save)
/// (except [`flush`](Self::flush) and [`cycle_key`](Self::cycle_key), which act on the store
/// at once, as Django's do). The handle remembers the record version it loaded and every
/// change it made, in order, so that a save meeting a newer record can apply exactly this
/// request's changes ([`ConflictPolicy`](super::ConflictPolicy)).
///
/// Flags follow Django: [`accessed`](Self::accessed) is set by every read or write of the
/// data; [`modified`](Self::modified) by insert, update, remove (of a present key),
/// setdefault (when it inserts), clear, flush, cycle_key and set_expiry (except resetting an
/// expiry that was not set).
///
/// The handle borrows its store (or holds an `Arc` of it: [`OwnedSession`]) and is `Send` but
/// not `Sync`: it belongs to one request. An async handler may hold it across `.await` (it
/// holds no lock and no epoch guard).
///
/// ```
/// use serde_json::json;
/// use unlocked::session::SessionStore;
///
/// let store: SessionStore = SessionStore::new();
/// let mut s = store.load(None);
/// s.insert("cart", json!([]));
/// s.update("visits", |v| json!(v.and_then(|v| v.as_i64()).unwrap_or(0) + 1))?;
/// assert_eq!(s.get("visits"), Some(&json!(1)));
/// assert!(s.modified() && s.accessed());
/// s.save()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// The third type parameter is how the handle reaches its store: a borrow
/// (`&'a SessionStore`, from [`SessionStore::load`]) or an `Arc` ([`OwnedSession`], from
/// [`SessionStore::load_owned`], for frameworks that need a `'static` handle).
pub struct Session<'a, S: Strategy = LockFree, R = &'a SessionStore<S>> {
    store: R,
    _borrow: Marker<'a, S>,
    state: State,
}

/// Ties the handle to `'a` (the borrowed store's lifetime, when `R` is a borrow) and to `S`,
/// without owning either (`fn() -> _`: always `Send + Sync`, covariant).
type Marker<'a, S> = PhantomData<(&'a (), fn() -> S)>;

/// A [`Session`] that owns a reference count on its store instead of borrowing it: `'static`,
/// so it can live in a request's extensions (see [`SessionStore::load_owned`]).
///
/// ```
/// use std::sync::Arc;
/// use unlocked::session::{OwnedSession, SessionStore};
///
/// let store: Arc<SessionStore> = Arc::new(SessionStore::new());
/// let mut s: OwnedSession = store.load_owned(None);
/// s.insert("k", 1);
/// s.save()?;
/// let key = s.session_key().unwrap();
/// assert_eq!(store.load(Some(key.as_str())).get("k"), Some(&1.into()));
/// # Ok::<(), unlocked::session::SaveError>(())
/// ```
pub type OwnedSession<S = LockFree> = Session<'static, S, Arc<SessionStore<S>>>;

impl<S: Strategy> SessionStore<S> {
    /// Loads the session a client's cookie names.
    ///
    /// A missing, malformed (shorter than 8 characters, characters outside `[a-z0-9]`, not 32
    /// long), unknown or expired key gives a fresh, empty session with no key; it gets a new
    /// key from the store when first saved. The client never chooses its key.
    ///
    /// Under [`LockFree`] this takes no lock and allocates nothing: a guard, a hash lookup
    /// and one reference count of the stored record, which the handle shares until it
    /// changes something.
    pub fn load(&self, key: Option<&str>) -> Session<'_, S> {
        let record = key.and_then(|k| self.record(k));
        Session::new(self, record)
    }

    /// [`load`](Self::load) for a store shared by `Arc`: the handle keeps the store alive
    /// instead of borrowing it, so it is `'static` (an [`OwnedSession`]) and can be kept in a
    /// request's extensions.
    pub fn load_owned(self: &Arc<Self>, key: Option<&str>) -> OwnedSession<S> {
        Self::load_into(Arc::clone(self), key)
    }

    /// [`load_owned`](Self::load_owned) taking the reference count it keeps.
    pub(crate) fn load_into(store: Arc<Self>, key: Option<&str>) -> OwnedSession<S> {
        let record = key.and_then(|k| store.record(k));
        Session::new(store, record)
    }

    /// Creates an empty session under a new key right away (Django's `create()`).
    ///
    /// # Errors
    ///
    /// [`CreateError::Full`] at the [`max_sessions`](super::SessionStoreBuilder::max_sessions)
    /// bound.
    pub fn create(&self) -> Result<Session<'_, S>, CreateError> {
        let record = self.insert_new(SessionData::new(), None, Stamp::now(), false)?;
        let mut session = Session::new(self, Some(record));
        session.set_modified(true);
        Ok(session)
    }

    /// Creates a session under a new key from encoded data (made by
    /// [`SessionCodec::encode`](super::SessionCodec::encode), or any JSON object): a migration
    /// from another session backend, or data restored from a database. The key is always
    /// fresh: the input never chooses one.
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
    /// [`ImportError::Create`] at the [`max_sessions`](super::SessionStoreBuilder::max_sessions)
    /// bound; nothing is stored either way.
    pub fn import(&self, bytes: &[u8]) -> Result<Session<'_, S>, ImportError> {
        let data = self.codec().decode(bytes).map_err(ImportError::Decode)?;
        let record = self
            .insert_new(data, None, Stamp::now(), false)
            .map_err(ImportError::Create)?;
        Ok(Session::new(self, Some(record)))
    }
}

impl<S: Strategy, R: Deref<Target = SessionStore<S>>> fmt::Debug for Session<'_, S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("key", &self.session_key())
            .field("version", &self.loaded_version())
            .field("modified", &self.state.modified)
            .field("accessed", &self.state.accessed.get())
            .field("data", self.state.view())
            .finish_non_exhaustive()
    }
}

impl<S: Strategy, R: Deref<Target = SessionStore<S>>> Session<'_, S, R> {
    pub(crate) fn new(store: R, base: Option<Arc<Record>>) -> Self {
        Session {
            store,
            _borrow: PhantomData,
            state: State::new(base),
        }
    }

    /// A handle of the same store without a session, as `load(None)` gives (no lookup).
    #[cfg(feature = "axum")]
    pub(crate) fn emptied(&self) -> Self
    where
        R: Clone,
    {
        Session::new(self.store.clone(), None)
    }

    /// The session's key; `None` until a fresh session is first saved.
    pub fn session_key(&self) -> Option<SessionKey> {
        self.state.session_key()
    }

    /// The version of the record this handle loaded or last saved.
    pub fn loaded_version(&self) -> Option<u64> {
        self.state.loaded_version()
    }

    /// Whether the data was changed (Django's `modified`).
    pub fn modified(&self) -> bool {
        self.state.modified
    }

    /// Sets `modified` (Django's `request.session.modified = True`, to save a session whose
    /// nested value you changed in place).
    pub fn set_modified(&mut self, modified: bool) {
        self.state.modified = modified;
    }

    /// Whether the data was read or written (Django's `accessed`; the middleware then adds
    /// `Vary: Cookie`).
    pub fn accessed(&self) -> bool {
        self.state.accessed.get()
    }

    /// The value under `key` (Django's `get`).
    #[inline]
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.state.read().get(key)
    }

    /// Whether `key` is present (Django's `key in session`).
    pub fn contains(&self, key: &str) -> bool {
        self.state.read().contains_key(key)
    }

    /// The data keys (Django's `keys()`; the expiry is not among them, see
    /// [`Expiry`]).
    pub fn keys(&self) -> impl Iterator<Item = &str> + '_ {
        self.state.read().keys()
    }

    /// Django's `is_empty`: no key and no data. Does not mark the session accessed.
    pub fn is_empty(&self) -> bool {
        self.state.is_empty()
    }

    /// Sets `key` to `value` (Django's `session[key] = value`). Under
    /// [`MergeChangedKeys`](super::ConflictPolicy::MergeChangedKeys), the later save wins for
    /// a key two requests both set.
    ///
    /// The value is stored once and shared by the handle, its change log and the saved
    /// record: nothing is copied.
    pub fn insert(&mut self, key: impl AsRef<str>, value: impl Into<Value>) {
        self.state.insert(key.as_ref(), value.into());
    }

    /// Removes `key` and returns its value (Django's `pop`); marks the session modified only if
    /// the key was present.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.state.remove(key)
    }

    /// Django's `setdefault`: the value under `key`, inserting `default` first if absent
    /// (only then is the session modified). On a merge it is replayed as "insert if absent",
    /// so it never overwrites a value another request saved meanwhile.
    pub fn setdefault(&mut self, key: impl AsRef<str>, default: impl Into<Value>) -> &Value {
        self.state.setdefault(key.as_ref(), default.into())
    }

    /// Records an update *operation* on `key`: `f` computes the new value from the current one
    /// (`None` if absent). It runs now on this handle's value, and again on the latest stored
    /// value if the save meets a newer record (so concurrent increments all count). It may run
    /// several times: keep it a pure function of its argument. A closure that captures nothing
    /// is stored without an allocation.
    ///
    /// A panic in `f` is caught: the key keeps its value, nothing is recorded, and the panic
    /// comes back as [`UpdatePanicked`].
    pub fn update<F>(&mut self, key: impl AsRef<str>, f: F) -> Result<&Value, UpdatePanicked>
    where
        F: Fn(Option<&Value>) -> Value + Send + Sync + 'static,
    {
        self.state.update(key.as_ref(), Box::new(f))
    }

    /// Removes all data (Django's `clear`). On a merge it clears the latest record too, then
    /// applies this request's later changes.
    pub fn clear(&mut self) {
        self.state.clear();
    }

    /// Django's `flush` (logout): clears the data, deletes the session from the store now and
    /// forgets the key. A concurrent request's save of this session then fails with
    /// [`SaveError::Gone`] instead of resurrecting it (Django #21608).
    pub fn flush(&mut self) {
        if let Some(base) = self.state.flush() {
            self.store.delete_key(&base.key);
        }
    }

    /// Django's `cycle_key` (call it at login): stores this handle's data under a new key and
    /// deletes the old key, so a key an attacker planted before login is worthless after it.
    ///
    /// The new record is inserted before the old one is removed: a reader of the new key sees
    /// the data as soon as this starts; a reader of the old key sees the old record until the
    /// removal, then nothing; no reader ever finds neither. A concurrent save to the old key
    /// after the removal fails with [`SaveError::Gone`]. Fails only for a session without a key
    /// at the [`max_sessions`](super::SessionStoreBuilder::max_sessions) bound.
    pub fn cycle_key(&mut self) -> Result<(), CreateError> {
        let data = self.state.read().clone();
        let had_key = self.state.base.is_some();
        let record = self
            .store
            .insert_new(data, self.state.expiry, Stamp::now(), had_key)?;
        if let Some(old) = self.state.cycled(record) {
            self.store.delete_key(&old.key);
        }
        Ok(())
    }

    /// Django's `set_expiry`: [`Expiry::Seconds`], [`Expiry::At`],
    /// [`Expiry::AtBrowserClose`], or `None` to go back to the store's default age.
    pub fn set_expiry(&mut self, expiry: impl Into<Option<Expiry>>) {
        self.state.set_expiry(expiry.into());
    }

    /// The custom expiry, if any (reads the session).
    pub fn expiry(&self) -> Option<Expiry> {
        self.state.expiry()
    }

    /// Django's `get_expiry_age`: seconds from `modification` (default now) until the session
    /// expires; the default age for no custom expiry or at-browser-close.
    pub fn get_expiry_age(&self, args: ExpiryArgs) -> i64 {
        self.state.expiry_age(args, self.store.default_age_secs())
    }

    /// Django's `get_expiry_date`: the instant the session expires if saved at `modification`
    /// (default now).
    pub fn get_expiry_date(&self, args: ExpiryArgs) -> OffsetDateTime {
        self.state.expiry_date(args, self.store.default_age_secs())
    }

    /// Django's `get_expire_at_browser_close`: the store's setting when no custom expiry is
    /// set, otherwise whether the expiry is [`Expiry::AtBrowserClose`].
    pub fn get_expire_at_browser_close(&self) -> bool {
        self.state
            .expire_at_browser_close(self.store.expire_at_browser_close())
    }

    /// Writes the session to the store (Django's `save`).
    ///
    /// A session without a key is created under a fresh key. Otherwise the next version is
    /// published with a compare-and-swap; if another request saved meanwhile, the store's
    /// [`ConflictPolicy`](super::ConflictPolicy) decides. On success the handle holds the
    /// stored record (with other requests' merged changes) and an empty change log.
    ///
    /// # Errors
    ///
    /// [`SaveError::Gone`] if the session was deleted or expired meanwhile (it is not
    /// resurrected), [`SaveError::Conflict`] under `Reject`, [`SaveError::UpdatePanicked`] if
    /// an update operation panicked on the latest value, [`SaveError::Create`] at the bound.
    /// On error the store is unchanged and the handle keeps its data and log.
    pub fn save(&mut self) -> Result<(), SaveError> {
        // The coarse clock, as reads use: a stamp up to one tick early moves the next expiry
        // as much (a save stamps `now + age`), and a record that expired within the last tick
        // may still be saved over, as it may still be read. The precise clock cost about 30 ns
        // more per save on the VM measured (`docs/session.md`).
        let now = Stamp::now_coarse();
        let state = &mut self.state;
        let saved = match &state.base {
            None => {
                let data = state.data.clone().unwrap_or_default();
                self.store.insert_new(data, state.expiry, now, false)?
            }
            Some(base) => self.store.save_changes(SaveInput {
                key: base.key,
                base,
                data: &mut state.data,
                expiry: state.expiry,
                log: &state.log,
                policy: self.store.conflict_policy(),
                now,
                default_age: self.store.default_age_secs(),
            })?,
        };
        state.saved(saved);
        Ok(())
    }
}
