//! [tower-sessions](https://docs.rs/tower-sessions) 0.15 on this crate's store (feature
//! `tower-sessions`).
//!
//! [`TowerStore`] implements tower-sessions' `SessionStore` and `ExpiredDeletion`, so an axum
//! app swaps its store in one line:
//!
//! ```
//! use tower_sessions::SessionManagerLayer;
//! use unlocked::{session::SessionStore, web::tower::TowerStore};
//!
//! // Instead of `SessionManagerLayer::new(MemoryStore::default())`:
//! let layer = SessionManagerLayer::new(TowerStore::<unlocked::LockFree>::new(SessionStore::new()));
//! ```
//!
//! # What is guaranteed through tower-sessions' `Session`
//!
//! tower-sessions loads a whole record at a request's first session access and, after the
//! response, hands the whole record back to [`save`](TowerStore) if the request modified it.
//! A plain store keeps the last record saved, so two overlapping requests of one user lose
//! each other's writes (`MemoryStore` documents it; `tests/http.rs` counts it).
//! [`TowerStore`] instead merges:
//!
//! * [`load`](TowerStore) adds one reserved entry to the record's data, under
//!   [`BASE_KEY`]: the version it loaded and a keyed 64-bit hash of every value. The entry
//!   round-trips through tower-sessions' `Session` like any other value.
//! * `save` diffs the record against that base: a key whose value hash differs (or that is
//!   new) was *set*, a base key that is missing was *removed*. Only those changes (and the
//!   record's expiry date) are applied onto the store's *current* record, with the store's
//!   compare-and-swap, re-applied onto the winner if another save lands in between.
//!
//! So, through tower-sessions' `Session`:
//!
//! * **Guaranteed**: concurrent requests that change *different* keys of one session all keep
//!   their changes; a removal removes only what this request removed; a session deleted
//!   meanwhile (logout, `cycle_id`, expiry) is not resurrected: the save fails and
//!   tower-sessions answers 500; an id collision at creation re-rolls the id.
//! * **Not guaranteed**: a read-modify-write of one key (`get` a counter, `insert` it plus
//!   one) from two overlapping requests: both read the same value, both set the same new
//!   value, the later save wins and one increment is lost. No store can fix that behind
//!   `Session`: it only ever sees the resulting value, not the operation. Use the native
//!   handle's [`Session::update`](crate::session::Session::update) (with `unlocked::web::axum`) for
//!   counters. Two requests setting one key: the later save wins for that key. Setting a key
//!   to the value it already had is not seen as a change (equal hashes), and a changed value
//!   whose hash collides with the old one's (probability 2⁻⁶⁴ per key, with a per-store random
//!   seed) is missed the same way. A second save in one request (the handler called
//!   `Session::save` itself) diffs against the same base, so it re-applies the first one's
//!   changes.
//! * **Whole-record cases**: a record without the reserved entry (the user called
//!   `Session::clear`, or removed the entry) replaces the stored data wholly, as a plain
//!   store would. With [`ConflictPolicy::LastWriterWins`](crate::session::ConflictPolicy) the store
//!   always does; with [`ConflictPolicy::Reject`](crate::session::ConflictPolicy) a save whose base
//!   version is not the current one fails (tower-sessions answers 500).
//!
//! Do not use [`BASE_KEY`] as a data key. Session ids map one-to-one onto this crate's
//! 32-character keys (the id's 128 bits in base 36), so the store can also be read natively.
//!
//! # Async
//!
//! Every call completes without awaiting: no I/O, and with [`LockFree`] no lock held across
//! other work. With [`Blocking`](crate::Blocking), each call takes the session module's lock
//! for one map operation (microseconds, like a `std::sync::Mutex` around a `HashMap`, which
//! tokio's documentation recommends for such short sections): it does not stall the executor
//! beyond that, but do not call the store while holding a lock of [`crate::lock`].

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::sync::Arc;

use async_trait::async_trait;

use serde_json::{Map, Value};
use tower_sessions_core::session::{Id, Record as TowerRecord};
use tower_sessions_core::session_store::{
    Error as StoreError, ExpiredDeletion, Result as StoreResult, SessionStore as TowerSessionStore,
};

use crate::session::SaveError;
use crate::session::SessionData;
use crate::session::SessionStore;
use crate::session::record::{Expiry, Record, Stamp};
use crate::session::save::{ConflictPolicy, Op, SaveInput, replay};
use crate::session::{KEY_CHARS, KEY_LEN, SessionKey};
#[cfg(feature = "redis")]
use crate::session::{RedisSessionStore, StoreError as RemoteError};
use crate::{LockFree, Strategy};

mod sealed {
    // Public items of a private module: nameable by no one outside the crate (sealed).
    #![allow(unreachable_pub)]

    use std::fmt;
    use std::future::Future;
    use std::sync::Arc;

    use crate::session::record::{Expiry, Record};
    use crate::session::save::{ConflictPolicy, SaveInput};
    use crate::session::{SaveError, SessionData, SessionKey};

    /// A store [`TowerStore`](super::TowerStore) can adapt: the in-memory store under a
    /// strategy, or Redis. Errors are messages for tower-sessions' `Error::Backend`.
    pub trait TowerBacking: Send + Sync + 'static {
        type Store: fmt::Debug + Send + Sync + 'static;
        fn policy(store: &Self::Store) -> ConflictPolicy;
        fn default_age(store: &Self::Store) -> i64;
        /// Stores a new record under the first free key `next_key` gives.
        fn create(
            store: &Self::Store,
            data: SessionData,
            expiry: Option<Expiry>,
            next_key: impl FnMut() -> SessionKey + Send,
        ) -> impl Future<Output = Result<Arc<Record>, String>> + Send;
        /// The record as stored, expired or not.
        fn stored(
            store: &Self::Store,
            key: SessionKey,
        ) -> impl Future<Output = Result<Option<Arc<Record>>, String>> + Send;
        /// The live record.
        fn live(
            store: &Self::Store,
            key: SessionKey,
        ) -> impl Future<Output = Result<Option<Arc<Record>>, String>> + Send;
        fn save(
            store: &Self::Store,
            input: SaveInput<'_>,
        ) -> impl Future<Output = Result<Arc<Record>, SaveError>> + Send;
        fn delete(
            store: &Self::Store,
            key: SessionKey,
        ) -> impl Future<Output = Result<(), String>> + Send;
        fn delete_expired(store: &Self::Store) -> impl Future<Output = Result<(), String>> + Send;
    }
}

use sealed::TowerBacking;

impl<S: Strategy> TowerBacking for S {
    type Store = SessionStore<S>;
    fn policy(store: &Self::Store) -> ConflictPolicy {
        store.conflict_policy()
    }
    fn default_age(store: &Self::Store) -> i64 {
        store.default_age_secs()
    }
    async fn create(
        store: &Self::Store,
        data: SessionData,
        expiry: Option<Expiry>,
        next_key: impl FnMut() -> SessionKey + Send,
    ) -> Result<Arc<Record>, String> {
        store
            .insert_new_keyed(data, expiry, Stamp::now(), false, next_key)
            .map_err(|e| e.to_string())
    }
    async fn stored(store: &Self::Store, key: SessionKey) -> Result<Option<Arc<Record>>, String> {
        Ok(store.stored(&key))
    }
    async fn live(store: &Self::Store, key: SessionKey) -> Result<Option<Arc<Record>>, String> {
        Ok(store.record(key.as_str()))
    }
    async fn save(store: &Self::Store, input: SaveInput<'_>) -> Result<Arc<Record>, SaveError> {
        store.save_changes(input)
    }
    async fn delete(store: &Self::Store, key: SessionKey) -> Result<(), String> {
        store.delete(key.as_str());
        Ok(())
    }
    async fn delete_expired(store: &Self::Store) -> Result<(), String> {
        store.clear_expired();
        Ok(())
    }
}

/// Selects [`RedisSessionStore`] for [`TowerStore`]: `TowerStore::<Redis>::new(store)`
/// (features `redis` and `tower-sessions`).
#[cfg(feature = "redis")]
#[derive(Debug)]
pub enum Redis {}

#[cfg(feature = "redis")]
impl TowerBacking for Redis {
    type Store = RedisSessionStore;
    fn policy(store: &Self::Store) -> ConflictPolicy {
        store.conflict_policy()
    }
    fn default_age(store: &Self::Store) -> i64 {
        store.default_age_secs()
    }
    async fn create(
        store: &Self::Store,
        data: SessionData,
        expiry: Option<Expiry>,
        next_key: impl FnMut() -> SessionKey + Send,
    ) -> Result<Arc<Record>, String> {
        store
            .insert_new_keyed(data, expiry, Stamp::now(), next_key)
            .await
            .map_err(|e| e.to_string())
    }
    async fn stored(store: &Self::Store, key: SessionKey) -> Result<Option<Arc<Record>>, String> {
        match store.fetch(key).await {
            Ok(record) => Ok(record.map(Arc::new)),
            Err(e) => Err(e.to_string()),
        }
    }
    async fn live(store: &Self::Store, key: SessionKey) -> Result<Option<Arc<Record>>, String> {
        match store.record(key.as_str()).await {
            Ok(r) => Ok(r),
            // As a plain store would: a record that does not decode is no session.
            Err(RemoteError::Corrupt { .. }) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
    async fn save(store: &Self::Store, input: SaveInput<'_>) -> Result<Arc<Record>, SaveError> {
        store.save_changes(input).await
    }
    async fn delete(store: &Self::Store, key: SessionKey) -> Result<(), String> {
        store
            .delete(key.as_str())
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
    /// Redis expires records itself (their TTL).
    async fn delete_expired(_store: &Self::Store) -> Result<(), String> {
        Ok(())
    }
}

/// The reserved data key under which [`TowerStore`] keeps the loaded version and value
/// hashes (see the [module documentation](self)).
pub const BASE_KEY: &str = "__unlocked_base";

/// tower-sessions' `SessionStore` on an [`Arc`]`<`[`SessionStore`]`>`, merging concurrent
/// saves of one session (see the [module documentation](self) for the exact guarantees).
///
/// ```
/// # tokio_test_block_on(async {
/// use tower_sessions_core::{session::{Id, Record}, SessionStore as _};
/// use unlocked::{session::SessionStore, web::tower::TowerStore};
///
/// let store: TowerStore = TowerStore::new(SessionStore::new());
/// let mut record = Record { id: Id(7), data: Default::default(), expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1) };
/// store.create(&mut record).await?;
///
/// // Two overlapping requests load the same version and change different keys.
/// let mut a = store.load(&record.id).await?.unwrap();
/// let mut b = store.load(&record.id).await?.unwrap();
/// a.data.insert("theme".into(), "dark".into());
/// b.data.insert("lang".into(), "fr".into());
/// store.save(&a).await?;
/// store.save(&b).await?; // merged onto a's record instead of overwriting it
///
/// let now = store.load(&record.id).await?.unwrap();
/// assert_eq!(now.data["theme"], "dark");
/// assert_eq!(now.data["lang"], "fr");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
pub struct TowerStore<S: TowerBacking = LockFree> {
    store: Arc<S::Store>,
    /// Seeds the value hashes (keyed, so values cannot be crafted to collide).
    hasher: foldhash::quality::RandomState,
}

impl<S: TowerBacking> Clone for TowerStore<S> {
    fn clone(&self) -> Self {
        TowerStore {
            store: Arc::clone(&self.store),
            hasher: self.hasher,
        }
    }
}

impl<S: TowerBacking> fmt::Debug for TowerStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TowerStore")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl<S: Strategy> TowerStore<S> {
    /// Wraps a store (use [`from_arc`](Self::from_arc) to share one with native handles).
    pub fn new(store: SessionStore<S>) -> Self {
        Self::from_arc(Arc::new(store))
    }

    /// Wraps a shared store.
    pub fn from_arc(store: Arc<SessionStore<S>>) -> Self {
        Self::with_store(store)
    }
}

#[cfg(feature = "redis")]
impl TowerStore<Redis> {
    /// tower-sessions' `SessionStore` on sessions in Redis (features `redis` and
    /// `tower-sessions`), with the same merging saves as in memory, between every process that
    /// shares the server. A load is one round trip, a save two (read the current record, then
    /// the versioned write).
    ///
    /// ```no_run
    /// use tower_sessions::SessionManagerLayer;
    /// use unlocked::{session::RedisSessionStore, web::tower::TowerStore};
    ///
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = RedisSessionStore::connect("redis://127.0.0.1:6379").await?;
    /// // Instead of `SessionManagerLayer::new(MemoryStore::default())`:
    /// let layer = SessionManagerLayer::new(TowerStore::redis(store));
    /// # Ok(()) }
    /// ```
    pub fn redis(store: RedisSessionStore) -> Self {
        Self::with_store(Arc::new(store))
    }
}

impl<S: TowerBacking> TowerStore<S> {
    fn with_store(store: Arc<S::Store>) -> Self {
        TowerStore {
            store,
            hasher: foldhash::quality::RandomState::default(),
        }
    }

    /// The wrapped store.
    pub fn store(&self) -> &Arc<S::Store> {
        &self.store
    }

    fn hash(&self, value: &Value) -> u64 {
        struct Feed<H>(H);
        impl<H: Hasher> io::Write for Feed<H> {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.0.write(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut feed = Feed(self.hasher.build_hasher());
        // Writing into a hasher cannot fail, and a `Value` always serializes.
        let _ = serde_json::to_writer(&mut feed, value);
        feed.0.finish()
    }

    /// The reserved entry describing `record` as loaded.
    fn base_entry(&self, record: &Record) -> Value {
        let hashes: Map<String, Value> = record
            .data
            .iter()
            .map(|(k, v)| (k.to_owned(), Value::from(self.hash(v))))
            .collect();
        let mut base = Map::new();
        base.insert("v".into(), Value::from(record.version));
        base.insert("h".into(), Value::Object(hashes));
        Value::Object(base)
    }

    fn to_tower(&self, id: Id, record: &Record) -> TowerRecord {
        let mut data: HashMap<String, Value> = record
            .data
            .iter()
            .map(|(k, v)| (k.to_owned(), v.clone()))
            .collect();
        data.insert(BASE_KEY.to_owned(), self.base_entry(record));
        TowerRecord {
            id,
            data,
            expiry_date: record.expires_at(),
        }
    }

    /// This request's changes: the diff of `record` against the base it loaded, or the whole
    /// record when it carries no base. Also returns the base version, when known.
    fn changes(&self, record: &TowerRecord, whole: bool) -> (Vec<Op>, Option<u64>) {
        // Each set goes into the log as a shared entry, built once.
        let set = |k: &str, v: &Value| {
            let mut one = SessionData::new();
            Op::Set(one.set_shared(k, v.clone()))
        };
        let base = record.data.get(BASE_KEY).and_then(Value::as_object);
        let version = base.and_then(|b| b.get("v")).and_then(Value::as_u64);
        let hashes = base.and_then(|b| b.get("h")).and_then(Value::as_object);
        let mut ops = Vec::new();
        match hashes {
            Some(hashes) if !whole => {
                for (k, v) in &record.data {
                    if k != BASE_KEY && hashes.get(k).and_then(Value::as_u64) != Some(self.hash(v))
                    {
                        ops.push(set(k, v));
                    }
                }
                for k in hashes.keys() {
                    if !record.data.contains_key(k) {
                        ops.push(Op::Remove(k.as_str().into()));
                    }
                }
            }
            _ => {
                ops.push(Op::Clear);
                for (k, v) in &record.data {
                    if k != BASE_KEY {
                        ops.push(set(k, v));
                    }
                }
            }
        }
        ops.push(Op::SetExpiry(Some(Expiry::At(record.expiry_date))));
        (ops, version)
    }
}

/// The store key a tower-sessions id maps to: the id's 128 bits in base 36, padded to 32
/// characters (one-to-one), so records saved through [`TowerStore`] can be read natively.
///
/// ```
/// use tower_sessions_core::session::Id;
/// use unlocked::web::tower::key_for;
///
/// assert_eq!(key_for(Id(0)).as_str(), "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
/// assert_ne!(key_for(Id(1)), key_for(Id(-1)));
/// ```
pub fn key_for(id: Id) -> SessionKey {
    // Reinterpret the bits: every `i128` maps to a distinct `u128`.
    let mut n = id.0 as u128;
    let mut out = [b'0'; KEY_LEN];
    for b in out.iter_mut().rev() {
        *b = KEY_CHARS[(n % 36) as usize];
        n /= 36;
    }
    // 36^32 > 2^128: the whole value fits; the result has the shape `parse` accepts.
    SessionKey::parse(std::str::from_utf8(&out).unwrap_or_default())
        .unwrap_or_else(|_| unreachable!("base-36 digits of KEY_LEN are a valid key"))
}

fn backend_error(e: impl fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

#[async_trait]
impl<S: TowerBacking> TowerSessionStore for TowerStore<S> {
    /// Inserts the record atomically under a fresh id: if the id is taken, draws another
    /// (tower-sessions' `Id` is random) and updates `record.id`.
    async fn create(&self, record: &mut TowerRecord) -> StoreResult<()> {
        let data: SessionData = record
            .data
            .iter()
            .filter(|(k, _)| *k != BASE_KEY)
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        let mut id = record.id;
        let mut first = true;
        let stored = S::create(
            &self.store,
            data,
            Some(Expiry::At(record.expiry_date)),
            || {
                if !first {
                    id = Id(rand::random::<i128>());
                }
                first = false;
                key_for(id)
            },
        )
        .await
        .map_err(StoreError::Backend)?;
        record.id = id;
        record
            .data
            .insert(BASE_KEY.to_owned(), self.base_entry(&stored));
        Ok(())
    }

    /// Applies this request's changes onto the current record (see the module documentation).
    async fn save(&self, record: &TowerRecord) -> StoreResult<()> {
        let key = key_for(record.id);
        let policy = S::policy(&self.store);
        let (log, base_version) = self.changes(record, policy == ConflictPolicy::LastWriterWins);
        let Some(current) = S::stored(&self.store, key)
            .await
            .map_err(StoreError::Backend)?
        else {
            return Err(backend_error(SaveError::Gone { key }));
        };
        if policy == ConflictPolicy::Reject && base_version.is_some_and(|v| v != current.version) {
            return Err(backend_error(SaveError::Conflict {
                loaded_version: base_version.unwrap_or_default(),
                current,
            }));
        }
        let mut data = current.data.clone();
        let mut expiry = current.expiry;
        replay(&log, &mut data, &mut expiry).map_err(backend_error)?;
        S::save(
            &self.store,
            SaveInput {
                key,
                base: &current,
                data: &mut Some(data),
                expiry,
                log: &log,
                // Conflicts past this point are other saves that landed after `current` was
                // read: `Reject` refuses them too (so it holds even when the race falls between
                // the check above and the swap); otherwise merge onto them (the log is this
                // request's changes, or the whole record under `LastWriterWins`).
                policy: if policy == ConflictPolicy::Reject {
                    policy
                } else {
                    ConflictPolicy::MergeChangedKeys
                },
                now: Stamp::now(),
                default_age: S::default_age(&self.store),
            },
        )
        .await
        .map(drop)
        .map_err(backend_error)
    }

    /// The record, unless absent or expired.
    async fn load(&self, id: &Id) -> StoreResult<Option<TowerRecord>> {
        let key = key_for(*id);
        Ok(S::live(&self.store, key)
            .await
            .map_err(StoreError::Backend)?
            .map(|r| self.to_tower(*id, &r)))
    }

    /// Deletes the record; saves in flight for it then fail instead of resurrecting it.
    async fn delete(&self, id: &Id) -> StoreResult<()> {
        S::delete(&self.store, key_for(*id))
            .await
            .map_err(StoreError::Backend)
    }
}

#[async_trait]
impl<S: TowerBacking> ExpiredDeletion for TowerStore<S> {
    /// [`SessionStore::clear_expired`]: removes every expired record without blocking readers.
    async fn delete_expired(&self) -> StoreResult<()> {
        S::delete_expired(&self.store)
            .await
            .map_err(StoreError::Backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_map_to_distinct_valid_keys() {
        for id in [0_i128, 1, -1, i128::MIN, i128::MAX, 36, 1 << 100] {
            let k = key_for(Id(id));
            assert_eq!(k.as_str().len(), KEY_LEN);
            assert_eq!(SessionKey::parse(k.as_str()), Ok(k));
        }
        assert_ne!(key_for(Id(-1)), key_for(Id(i128::MAX)));
        assert_ne!(key_for(Id(0)), key_for(Id(1)));
    }
}
