//! What one request's session handle holds, and Django's `SessionBase` operations on it that
//! touch no store: written once for every handle ([`Session`](super::Session) on the in-memory
//! stores, [`RedisSession`](super::RedisSession) on Redis), which add only the calls that reach
//! their store (`save`, `flush`, `cycle_key`).

use std::cell::Cell;
use std::sync::Arc;

use serde_json::Value;
use time::OffsetDateTime;

use super::data::{Entry, SessionData};
use super::error::UpdatePanicked;
use super::key::SessionKey;
use super::record::{Expiry, Record, expiry_age, expiry_date};
use super::save::{Log, Op, UpdateFn, run_update};

/// Overrides for [`Session::get_expiry_age`](super::Session::get_expiry_age) and
/// [`Session::get_expiry_date`](super::Session::get_expiry_date), Django's
/// `modification=` and `expiry=` keyword arguments.
///
/// Leaving `expiry` unset reads the session's own expiry (and marks the session accessed, as
/// Django does); setting it, even to `None` ("the default age"), does not read the session.
///
/// ```
/// use time::macros::datetime;
/// use unlocked::session::{Expiry, ExpiryArgs, SessionStore};
///
/// let store: SessionStore = SessionStore::new();
/// let session = store.load(None);
/// let args = ExpiryArgs::new()
///     .modification(datetime!(2024-01-01 0:00 UTC))
///     .expiry(Some(Expiry::At(datetime!(2024-01-01 0:10 UTC))));
/// assert_eq!(session.get_expiry_age(args), 600);
/// assert!(!session.accessed());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExpiryArgs {
    /// The instant the session was (or will be) saved; default: now.
    pub modification: Option<OffsetDateTime>,
    /// The expiry to compute with; default (`None`): the session's own.
    pub expiry: Option<Option<Expiry>>,
}

impl ExpiryArgs {
    /// No overrides: now, and the session's own expiry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Computes as if the session were saved at `at`.
    pub fn modification(mut self, at: OffsetDateTime) -> Self {
        self.modification = Some(at);
        self
    }

    /// Computes with this expiry instead of the session's own (`None`: the default age).
    pub fn expiry(mut self, expiry: Option<Expiry>) -> Self {
        self.expiry = Some(expiry);
        self
    }
}

/// A handle's state: the record it loaded, its copy-on-write data, its change log and flags.
pub(crate) struct State {
    /// The record loaded or last saved; `None` for a session without a key.
    pub(crate) base: Option<Arc<Record>>,
    /// The handle's data; `None` while it equals `base`'s (copy on first write).
    pub(crate) data: Option<SessionData>,
    pub(crate) expiry: Option<Expiry>,
    pub(crate) log: Log,
    pub(crate) modified: bool,
    pub(crate) accessed: Cell<bool>,
}

impl State {
    pub(crate) fn new(base: Option<Arc<Record>>) -> Self {
        let (data, expiry) = match &base {
            Some(r) => (None, r.expiry),
            None => (Some(SessionData::new()), None),
        };
        State {
            base,
            data,
            expiry,
            log: Log::new(),
            modified: false,
            accessed: Cell::new(false),
        }
    }

    #[inline]
    pub(crate) fn view(&self) -> &SessionData {
        match (&self.data, &self.base) {
            (Some(d), _) => d,
            (None, Some(b)) => &b.data,
            (None, None) => unreachable!("a session without a record owns its data"),
        }
    }

    #[inline]
    pub(crate) fn read(&self) -> &SessionData {
        self.accessed.set(true);
        self.view()
    }

    fn write(&mut self) -> &mut SessionData {
        self.accessed.set(true);
        Self::own(&mut self.data, self.base.as_deref())
    }

    /// The handle's own data, copied from `base`'s on first write (by field, so that a
    /// caller can borrow the data and the log at once).
    fn own<'a>(data: &'a mut Option<SessionData>, base: Option<&Record>) -> &'a mut SessionData {
        data.get_or_insert_with(|| base.map(|b| b.data.clone()).unwrap_or_default())
    }

    /// [`own`](Self::own), then sets `key` to `value`; returns the new entry. On the first
    /// write the copy is made with the new entry in place where it can be
    /// ([`SessionData::clone_setting`]).
    #[inline]
    fn own_set<'a>(
        data: &'a mut Option<SessionData>,
        base: Option<&Record>,
        key: &str,
        value: Value,
    ) -> &'a Arc<Entry> {
        let value = match (data.is_none(), base) {
            (true, Some(base)) => match base.data.clone_setting(key, value) {
                Ok((copy, i)) => return data.insert(copy).overlay_entry(i),
                Err(value) => value,
            },
            _ => value,
        };
        Self::own(data, base).set_ref(key, value)
    }

    /// Records a change that fully determines its key's value: earlier changes of that key
    /// are dropped from the log.
    fn log_overwrite(&mut self, op: Op) {
        if let Some(key) = op.key() {
            self.log.retain(|o| o.key() != Some(key));
        }
        self.log.push(op);
    }

    pub(crate) fn session_key(&self) -> Option<SessionKey> {
        self.base.as_ref().map(|r| r.key)
    }

    pub(crate) fn loaded_version(&self) -> Option<u64> {
        self.base.as_ref().map(|r| r.version)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.base.is_none() && self.view().is_empty()
    }

    pub(crate) fn insert(&mut self, key: &str, value: Value) {
        self.modified = true;
        self.accessed.set(true);
        let entry = Arc::clone(Self::own_set(
            &mut self.data,
            self.base.as_deref(),
            key,
            value,
        ));
        self.log_overwrite(Op::Set(entry));
    }

    pub(crate) fn remove(&mut self, key: &str) -> Option<Value> {
        if !self.read().contains_key(key) {
            return None;
        }
        self.modified = true;
        let entry = self.write().take_entry(key)?;
        self.log_overwrite(Op::Remove(entry.key.clone()));
        Some(Entry::into_value(entry))
    }

    pub(crate) fn setdefault(&mut self, key: &str, default: Value) -> &Value {
        if !self.read().contains_key(key) {
            self.modified = true;
            let entry = self.write().set_shared(key, default.clone());
            let f: UpdateFn = Box::new(move |old| old.cloned().unwrap_or_else(|| default.clone()));
            self.log.push(Op::Update(entry.key.clone(), f));
        }
        self.view()
            .get(key)
            .expect("present: found or just inserted")
    }

    pub(crate) fn update(&mut self, key: &str, f: UpdateFn) -> Result<&Value, UpdatePanicked> {
        // Computed before the copy-on-write, so a panic leaves the handle as it was.
        let new = run_update(key, &f, self.read().get(key))?;
        self.modified = true;
        self.accessed.set(true);
        // Borrowed, not through `set_shared`'s returned entry: no `Arc<Entry>` clone and
        // drop (two atomic read-modify-writes) and no second lookup.
        let entry = Self::own_set(&mut self.data, self.base.as_deref(), key, new);
        self.log.push(Op::Update(entry.key.clone(), f));
        Ok(&entry.value)
    }

    pub(crate) fn clear(&mut self) {
        self.modified = true;
        self.write().clear();
        self.log
            .retain(|o| o.key().is_none() && !matches!(o, Op::Clear));
        self.log.push(Op::Clear);
    }

    /// The local half of `flush`: forgets the key, the data and the log; returns the record
    /// the store must delete.
    pub(crate) fn flush(&mut self) -> Option<Arc<Record>> {
        self.modified = true;
        self.accessed.set(true);
        let base = self.base.take();
        self.data = Some(SessionData::new());
        self.expiry = None;
        self.log.clear();
        base
    }

    /// The local half of `cycle_key`, after the store inserted `record` under a new key:
    /// returns the old record, which the store must delete.
    pub(crate) fn cycled(&mut self, record: Arc<Record>) -> Option<Arc<Record>> {
        let old = self.base.replace(record);
        self.data = None;
        self.log.clear();
        self.modified = true;
        old
    }

    pub(crate) fn set_expiry(&mut self, expiry: Option<Expiry>) {
        self.accessed.set(true);
        if expiry.is_none() && self.expiry.is_none() {
            // Django: deleting an absent `_session_expiry` changes nothing.
            return;
        }
        self.modified = true;
        self.expiry = expiry;
        self.log.retain(|o| !matches!(o, Op::SetExpiry(_)));
        self.log.push(Op::SetExpiry(expiry));
    }

    pub(crate) fn expiry(&self) -> Option<Expiry> {
        self.accessed.set(true);
        self.expiry
    }

    /// After a successful save: the handle holds the stored record and an empty log.
    pub(crate) fn saved(&mut self, saved: Arc<Record>) {
        self.expiry = saved.expiry;
        self.base = Some(saved);
        self.data = None;
        self.log.clear();
    }

    fn expiry_for(&self, args: &ExpiryArgs) -> Option<Expiry> {
        match args.expiry {
            Some(e) => e,
            None => self.expiry(),
        }
    }

    /// Django's `get_expiry_age` with the store's default age.
    pub(crate) fn expiry_age(&self, args: ExpiryArgs, default_age: i64) -> i64 {
        let expiry = self.expiry_for(&args);
        let modification = args.modification.unwrap_or_else(OffsetDateTime::now_utc);
        expiry_age(expiry, modification, default_age)
    }

    /// Django's `get_expiry_date` with the store's default age.
    pub(crate) fn expiry_date(&self, args: ExpiryArgs, default_age: i64) -> OffsetDateTime {
        let expiry = self.expiry_for(&args);
        let modification = args.modification.unwrap_or_else(OffsetDateTime::now_utc);
        expiry_date(expiry, modification, default_age)
    }

    /// Django's `get_expire_at_browser_close` with the store's setting.
    pub(crate) fn expire_at_browser_close(&self, store_setting: bool) -> bool {
        match self.expiry() {
            None => store_setting,
            Some(e) => e.is_at_browser_close(),
        }
    }
}
