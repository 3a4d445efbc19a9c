//! Sessions in Redis (feature `redis`): the same guarantees as the in-memory
//! [`SessionStore`](super::SessionStore) between every process that shares one Redis.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, IntoConnectionInfo, Value as RedisValue};
use serde_json::Value;
use time::OffsetDateTime;

use super::backend::redis::{
    Failure, Fields, SaveReply, Scripts, TOKENS_KEPT, check_prefix, decode_record, has_token,
    lock_key, record_key, save_reply, token, token_field,
};
use super::codec::{DEFAULT_MAX_ENCODED_LEN, SessionCodec};
use super::data::SessionData;
use super::error::{SaveError, StoreError, UpdatePanicked};
use super::key::SessionKey;
use super::record::{Expiry, Record, Stamp, expires_stamp};
use super::save::{ConflictPolicy, SaveInput};
use super::state::{ExpiryArgs, State};
use super::store::DEFAULT_AGE_SECS;

/// The default key prefix: records live under `unlocked:session:{<key>}`.
pub const DEFAULT_PREFIX: &str = "unlocked:session:";

/// Sessions in Redis, shared by every process (and machine) that connects to the same server:
/// Django's session API, CSPRNG keys, atomic creation, expiry as the record's TTL, and a
/// **versioned save in one round trip**: one Lua script compares the record's version and
/// writes the next one, or answers with the current record, which this request's changes are
/// replayed onto, exactly as in memory ([`ConflictPolicy`]).
///
/// Cheap to clone (one shared connection, multiplexed, reconnecting by itself). Every call is
/// `async` and needs a tokio runtime with its time driver (`#[tokio::main]` has it).
///
/// ```no_run
/// use serde_json::json;
/// use unlocked::session::RedisSessionStore;
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisSessionStore::connect("redis://127.0.0.1:6379").await?;
/// let mut session = store.load(None).await?;
/// session.update("hits", |v| json!(v.and_then(|v| v.as_i64()).unwrap_or(0) + 1))?;
/// session.save().await?; // a fresh session: created under a new key
/// let cookie = session.session_key().unwrap();
///
/// let again = store.load(Some(cookie.as_str())).await?;
/// assert_eq!(again.get("hits"), Some(&json!(1)));
/// # Ok(()) }
/// ```
///
/// See `docs/scale-out.md` for the record layout, how each guarantee is kept and what happens
/// when the connection breaks.
#[derive(Clone)]
pub struct RedisSessionStore {
    inner: Arc<Inner>,
}

struct Inner {
    conn: ConnectionManager,
    scripts: Scripts,
    prefix: String,
    codec: SessionCodec,
    default_age: i64,
    policy: ConflictPolicy,
    expire_at_browser_close: bool,
    escalate_after: u32,
    lock_lease: Duration,
    lock_wait: Duration,
    retries: u32,
    counters: Counters,
}

#[derive(Default)]
struct Counters {
    saves: AtomicU64,
    conflicts: AtomicU64,
    escalations: AtomicU64,
    landed: AtomicU64,
    not_landed: AtomicU64,
}

/// What a [`RedisSessionStore`] (and its clones) did since it connected: see
/// [`RedisSessionStore::stats`]. Counters only grow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisStats {
    /// Saves that landed (creates included).
    pub saves: u64,
    /// Save attempts that met a newer record (each replayed and sent again).
    pub conflicts: u64,
    /// Saves that took the session's escalation lock.
    pub escalations: u64,
    /// Writes whose connection broke and that the record's token showed had landed.
    pub settled_landed: u64,
    /// Writes whose connection broke and that were shown not to have landed (sent again, or
    /// replayed onto the newer record).
    pub settled_not_landed: u64,
}

impl fmt::Debug for RedisSessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSessionStore")
            .field("prefix", &self.inner.prefix)
            .field("default_age_secs", &self.inner.default_age)
            .field("conflict_policy", &self.inner.policy)
            .finish_non_exhaustive()
    }
}

/// Configures a [`RedisSessionStore`]; from [`RedisSessionStore::builder`].
#[derive(Clone, Debug)]
#[must_use]
pub struct RedisSessionStoreBuilder {
    prefix: String,
    max_encoded_len: usize,
    default_age: i64,
    policy: ConflictPolicy,
    expire_at_browser_close: bool,
    escalate_after: u32,
    lock_lease: Duration,
    lock_wait: Duration,
    retries: u32,
    connection_timeout: Duration,
    response_timeout: Duration,
}

impl Default for RedisSessionStoreBuilder {
    fn default() -> Self {
        RedisSessionStoreBuilder {
            prefix: DEFAULT_PREFIX.to_owned(),
            max_encoded_len: DEFAULT_MAX_ENCODED_LEN,
            default_age: DEFAULT_AGE_SECS,
            policy: ConflictPolicy::default(),
            expire_at_browser_close: false,
            escalate_after: 4,
            lock_lease: Duration::from_secs(2),
            lock_wait: Duration::from_secs(10),
            retries: 3,
            connection_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(2),
        }
    }
}

impl RedisSessionStoreBuilder {
    /// The prefix of every key the store writes (default [`DEFAULT_PREFIX`]). Give each
    /// application sharing a server its own. Printable ASCII without `{`, `}` or spaces.
    pub fn prefix(mut self, prefix: &str) -> Self {
        prefix.clone_into(&mut self.prefix);
        self
    }

    /// Django's `SESSION_COOKIE_AGE`: the default age of a session, in whole seconds (default
    /// two weeks).
    pub fn default_age(mut self, age: Duration) -> Self {
        self.default_age = i64::try_from(age.as_secs()).unwrap_or(i64::MAX);
        self
    }

    /// What a save that meets a newer record does (default
    /// [`MergeChangedKeys`](ConflictPolicy::MergeChangedKeys)).
    pub fn conflict_policy(mut self, policy: ConflictPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Django's `SESSION_EXPIRE_AT_BROWSER_CLOSE` (default `false`).
    pub fn expire_at_browser_close(mut self, yes: bool) -> Self {
        self.expire_at_browser_close = yes;
        self
    }

    /// The longest encoded session data accepted, in bytes (default 1 MiB): a save beyond it
    /// is [`StoreError::Encode`], a stored record beyond it [`StoreError::Corrupt`].
    pub fn max_encoded_len(mut self, bytes: usize) -> Self {
        self.max_encoded_len = bytes;
        self
    }

    /// How many times in a row a save may meet a newer record before it takes the session's
    /// escalation lock (default 4, at least 1). Lower: fewer wasted round trips on a hot
    /// session; higher: fewer lock round trips when conflicts are rare but bursty.
    pub fn escalate_after(mut self, attempts: u32) -> Self {
        self.escalate_after = attempts.max(1);
        self
    }

    /// How long an escalation lock lives if its holder dies without releasing it (default
    /// 2 s). Must exceed one save's round trip by far; a shorter lease lets a crashed
    /// worker's lock go sooner.
    pub fn lock_lease(mut self, lease: Duration) -> Self {
        self.lock_lease = lease.max(Duration::from_millis(10));
        self
    }

    /// How long a save waits for another writer's escalation lock before it gives up with
    /// [`StoreError::Busy`] (default 10 s).
    pub fn lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    /// How many times a command whose connection broke is sent again after the connection
    /// manager reconnected (default 3). Writes are first settled (see `docs/scale-out.md`),
    /// so a retry never applies a save twice.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Time limit for connecting (default 2 s) and for each reply (default 2 s).
    pub fn timeouts(mut self, connect: Duration, response: Duration) -> Self {
        self.connection_timeout = connect;
        self.response_timeout = response;
        self
    }

    /// Connects to `url` (`redis://host:port/db`, `rediss://…` is not compiled in).
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidSetting`], or [`StoreError::Connection`] if the server cannot be
    /// reached.
    pub async fn connect(self, url: &str) -> Result<RedisSessionStore, StoreError> {
        check_prefix(&self.prefix)?;
        let invalid_url = |e: redis::RedisError| StoreError::Connection {
            message: format!("invalid Redis URL: {e}"),
        };
        let info = url.into_connection_info().map_err(invalid_url)?;
        let client = redis::Client::open(info).map_err(invalid_url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connection_timeout))
            .set_response_timeout(Some(self.response_timeout))
            .set_number_of_retries(4)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| Failure::of(&e).into_error())?;
        Ok(RedisSessionStore {
            inner: Arc::new(Inner {
                conn,
                scripts: Scripts::new(),
                prefix: self.prefix,
                codec: SessionCodec::new().with_max_len(self.max_encoded_len),
                default_age: self.default_age,
                policy: self.policy,
                expire_at_browser_close: self.expire_at_browser_close,
                escalate_after: self.escalate_after,
                lock_lease: self.lock_lease,
                lock_wait: self.lock_wait,
                retries: self.retries,
                counters: Counters::default(),
            }),
        })
    }
}

/// What settling a write whose connection broke found.
enum Settled {
    /// The write landed.
    Landed,
    /// It did not; the record now stored (`None`: the session is gone).
    NotLanded(Option<Record>),
}

impl RedisSessionStore {
    /// Connects with the default settings.
    ///
    /// # Errors
    ///
    /// [`StoreError::Connection`] if the server cannot be reached.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::builder().connect(url).await
    }

    /// A builder, to set the prefix, ages, policy and retry knobs.
    pub fn builder() -> RedisSessionStoreBuilder {
        RedisSessionStoreBuilder::default()
    }

    /// Counters of saves, conflicts, escalations and settled writes, over every clone of this
    /// store (relaxed loads: a snapshot good for monitoring, not a consistent cut).
    pub fn stats(&self) -> RedisStats {
        let c = &self.inner.counters;
        // Relaxed: independent monotonic counters, read for reporting only.
        RedisStats {
            saves: c.saves.load(Ordering::Relaxed),
            conflicts: c.conflicts.load(Ordering::Relaxed),
            escalations: c.escalations.load(Ordering::Relaxed),
            settled_landed: c.landed.load(Ordering::Relaxed),
            settled_not_landed: c.not_landed.load(Ordering::Relaxed),
        }
    }

    fn count(&self, counter: impl Fn(&Counters) -> &AtomicU64) {
        // Relaxed: a statistic; nothing is ordered by it.
        counter(&self.inner.counters).fetch_add(1, Ordering::Relaxed);
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The conflict policy.
    pub fn conflict_policy(&self) -> ConflictPolicy {
        self.inner.policy
    }

    /// The default age, in seconds.
    pub fn default_age_secs(&self) -> i64 {
        self.inner.default_age
    }

    /// The codec for the stored data.
    pub fn codec(&self) -> SessionCodec {
        self.inner.codec
    }

    fn conn(&self) -> ConnectionManager {
        self.inner.conn.clone()
    }

    /// Runs an idempotent command, sending it again (after the manager reconnected) when the
    /// connection broke.
    async fn idempotent<T, F, Fut>(&self, mut command: F) -> Result<T, StoreError>
    where
        F: FnMut(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let mut tries = 0;
        loop {
            match command(self.conn()).await {
                Ok(v) => return Ok(v),
                Err(e) => match Failure::of(&e) {
                    Failure::Connection(_) if tries < self.inner.retries => {
                        tries += 1;
                        tokio::time::sleep(Duration::from_millis(20 << tries.min(4))).await;
                    }
                    f => return Err(f.into_error()),
                },
            }
        }
    }

    /// The record under `key` as stored (expired or not).
    pub(crate) async fn fetch(&self, key: SessionKey) -> Result<Option<Record>, StoreError> {
        Ok(self.fetch_fields(key, None).await?.0)
    }

    /// The record under `key` as stored, and the token field of the write that made
    /// `version` (it holds that write's token until 16 later writes reuse the slot).
    async fn fetch_token(
        &self,
        key: SessionKey,
        version: u64,
    ) -> Result<(Option<Record>, RedisValue), StoreError> {
        self.fetch_fields(key, Some(token_field(version))).await
    }

    async fn fetch_fields(
        &self,
        key: SessionKey,
        extra: Option<String>,
    ) -> Result<(Option<Record>, RedisValue), StoreError> {
        let rkey = record_key(&self.inner.prefix, &key);
        let fields: Vec<RedisValue> = self
            .idempotent(|mut c| {
                let (rkey, extra) = (rkey.clone(), extra.clone());
                async move {
                    redis::cmd("HMGET")
                        .arg(&rkey)
                        .arg(&["v", "t", "x", "d"])
                        .arg(extra.as_slice())
                        .query_async(&mut c)
                        .await
                }
            })
            .await?;
        let token = fields.get(4).cloned().unwrap_or(RedisValue::Nil);
        Ok((decode_record(key, &fields, &self.inner.codec)?, token))
    }

    /// The stored record of `key`, if it exists. A malformed key is `Ok(None)`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] for a record that does not decode, [`StoreError::Connection`]
    /// or [`StoreError::Server`].
    pub async fn record(&self, key: &str) -> Result<Option<Arc<Record>>, StoreError> {
        let Ok(key) = SessionKey::parse(key) else {
            return Ok(None);
        };
        let record = self.fetch(key).await?;
        // Redis drops a record at its expiry; a clock ahead of the server's must not show it.
        Ok(record.filter(|r| !r.expired(Stamp::now())).map(Arc::new))
    }

    /// Whether a live session has this key (Django's `exists`).
    ///
    /// # Errors
    ///
    /// As [`record`](Self::record).
    pub async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.record(key).await?.is_some())
    }

    /// Deletes a session; `true` if it existed. A concurrent save of it then fails with
    /// [`SaveError::Gone`].
    ///
    /// # Errors
    ///
    /// [`StoreError::Connection`] or [`StoreError::Server`].
    pub async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let Ok(key) = SessionKey::parse(key) else {
            return Ok(false);
        };
        self.delete_key(key).await
    }

    async fn delete_key(&self, key: SessionKey) -> Result<bool, StoreError> {
        let rkey = record_key(&self.inner.prefix, &key);
        let n: u64 = self
            .idempotent(|mut c| {
                let rkey = rkey.clone();
                async move { c.del(&rkey).await }
            })
            .await?;
        Ok(n > 0)
    }

    /// Loads the session a client's cookie names. A missing, malformed, unknown or expired key
    /// gives a fresh, empty session with no key (the client never chooses its key).
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] if the stored record does not decode (it is left as it is:
    /// answer the request without a session, or [`delete`](Self::delete) it);
    /// [`StoreError::Connection`] or [`StoreError::Server`].
    pub async fn load(&self, key: Option<&str>) -> Result<RedisSession, StoreError> {
        let Some(key) = key else {
            return Ok(self.fresh());
        };
        let record = self.record(key).await?;
        Ok(RedisSession {
            store: self.clone(),
            state: State::new(record),
        })
    }

    /// A handle without a session (what `load(None)` gives), without a round trip.
    pub(crate) fn fresh(&self) -> RedisSession {
        RedisSession {
            store: self.clone(),
            state: State::new(None),
        }
    }

    /// Creates an empty session under a new key right away (Django's `create()`).
    ///
    /// # Errors
    ///
    /// [`StoreError::Connection`] or [`StoreError::Server`].
    pub async fn create(&self) -> Result<RedisSession, StoreError> {
        let record = self
            .insert_new(SessionData::new(), None, Stamp::now())
            .await?;
        let mut session = RedisSession {
            store: self.clone(),
            state: State::new(Some(record)),
        };
        session.set_modified(true);
        Ok(session)
    }

    /// Stores `data` under a fresh key (atomic: a key that exists is never overwritten, a new
    /// one is drawn).
    async fn insert_new(
        &self,
        data: SessionData,
        expiry: Option<Expiry>,
        now: Stamp,
    ) -> Result<Arc<Record>, StoreError> {
        self.insert_new_keyed(data, expiry, now, SessionKey::generate)
            .await
    }

    /// [`insert_new`](Self::insert_new) with the keys drawn from `next_key` (integrations
    /// whose framework picks the session id).
    pub(crate) async fn insert_new_keyed(
        &self,
        mut data: SessionData,
        expiry: Option<Expiry>,
        now: Stamp,
        mut next_key: impl FnMut() -> SessionKey + Send,
    ) -> Result<Arc<Record>, StoreError> {
        data.compact_for_storage();
        let mut record = Record {
            key: next_key(),
            expires_at: expires_stamp(expiry, now, self.inner.default_age),
            data,
            expiry,
            version: 1,
        };
        let fields = Fields::of(&record, &self.inner.codec)?;
        let mut broken = 0;
        loop {
            let tok = token();
            let rkey = record_key(&self.inner.prefix, &record.key);
            let created: Result<i64, _> = self
                .inner
                .scripts
                .create
                .key(&rkey)
                .arg(&fields.data[..])
                .arg(&fields.expires)
                .arg(&fields.expiry)
                .arg(fields.pexpire_at)
                .arg(&tok)
                .invoke_async(&mut self.conn())
                .await;
            match created {
                Ok(1) => {
                    self.count(|c| &c.saves);
                    return Ok(Arc::new(record));
                }
                // The key exists (a 166-bit collision, or a record planted under a guessed
                // key): draw another.
                Ok(_) => record.key = next_key(),
                Err(e) => match Failure::of(&e) {
                    Failure::Connection(message) => {
                        broken += 1;
                        if broken > self.inner.retries {
                            return Err(StoreError::Connection { message });
                        }
                        match self.settle(record.key, &tok, 1).await? {
                            Settled::Landed => {
                                self.count(|c| &c.saves);
                                return Ok(Arc::new(record));
                            }
                            // Nothing there: create again under the same key. Someone
                            // else's record there: draw another key.
                            Settled::NotLanded(None) => {}
                            Settled::NotLanded(Some(_)) => record.key = next_key(),
                        }
                    }
                    f => return Err(f.into_error()),
                },
            }
        }
    }

    /// After a write whose connection broke: reads the record back and looks for the write's
    /// token.
    async fn settle(
        &self,
        key: SessionKey,
        tok: &str,
        version: u64,
    ) -> Result<Settled, StoreError> {
        let (record, token) = self.fetch_token(key, version).await?;
        if has_token(&token, tok) && record.as_ref().is_some_and(|r| r.version >= version) {
            self.count(|c| &c.landed);
            Ok(Settled::Landed)
        } else {
            self.count(|c| &c.not_landed);
            Ok(Settled::NotLanded(record))
        }
    }

    /// Takes the session's escalation lock, waiting (up to `lock_wait`) while another writer
    /// holds it. Returns the lock's token.
    async fn lock(&self, key: SessionKey) -> Result<String, StoreError> {
        let lkey = lock_key(&self.inner.prefix, &key);
        let tok = token();
        let lease = u64::try_from(self.inner.lock_lease.as_millis()).unwrap_or(u64::MAX);
        let deadline = tokio::time::Instant::now() + self.inner.lock_wait;
        let mut pause = Duration::from_micros(500);
        loop {
            // SET NX is idempotent for our own token: a retry after a broken connection
            // either takes the lock or finds it already ours.
            let taken: Option<String> = self
                .idempotent(|mut c| {
                    let (lkey, tok) = (lkey.clone(), tok.clone());
                    async move {
                        let set: Option<String> = redis::cmd("SET")
                            .arg(&lkey)
                            .arg(&tok)
                            .arg("NX")
                            .arg("PX")
                            .arg(lease)
                            .query_async(&mut c)
                            .await?;
                        if set.is_some() {
                            return Ok(Some(tok));
                        }
                        let holder: Option<String> = c.get(&lkey).await?;
                        Ok(holder.filter(|h| *h == tok))
                    }
                })
                .await?;
            if let Some(tok) = taken {
                return Ok(tok);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StoreError::Busy { key });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    async fn unlock(&self, key: SessionKey, tok: &str) {
        let lkey = lock_key(&self.inner.prefix, &key);
        // Best effort: a lock we cannot release expires with its lease.
        let _: Result<i64, _> = self
            .inner
            .scripts
            .unlock
            .key(&lkey)
            .arg(tok)
            .invoke_async(&mut self.conn())
            .await;
    }

    /// The versioned save on Redis: the same decisions as in memory ([`SaveInput::next`]), each
    /// attempt one script round trip; after `escalate_after` conflicts in a row (or on meeting
    /// another writer's lock) the save takes the session's lock, so it finishes.
    pub(crate) async fn save_changes(
        &self,
        mut input: SaveInput<'_>,
    ) -> Result<Arc<Record>, SaveError> {
        let key = input.key;
        let mut current = Arc::clone(input.base);
        let mut is_base = true;
        let mut conflicts = 0u32;
        let mut broken = 0u32;
        let mut lock: Option<String> = None;
        let rkey = record_key(&self.inner.prefix, &key);
        let lkey = lock_key(&self.inner.prefix, &key);
        let result = loop {
            let next = match input.next(&current, is_base) {
                Ok(next) => next,
                Err(e) => break Err(e),
            };
            let outcome = match Fields::of(&next.record, &self.inner.codec) {
                Err(e) => Outcome::Fail(e.into()),
                Ok(fields) => {
                    let tok = token();
                    let reply: Result<RedisValue, _> = self
                        .inner
                        .scripts
                        .save
                        .key(&rkey)
                        .key(&lkey)
                        .arg(current.version)
                        .arg(next.record.version)
                        .arg(&fields.data[..])
                        .arg(&fields.expires)
                        .arg(&fields.expiry)
                        .arg(fields.pexpire_at)
                        .arg(&tok)
                        .arg(lock.as_deref().unwrap_or(""))
                        .arg(token_field(next.record.version))
                        .invoke_async(&mut self.conn())
                        .await;
                    match reply {
                        Ok(reply) => self.outcome(key, reply),
                        Err(e) => match Failure::of(&e) {
                            Failure::Connection(message) => {
                                broken += 1;
                                self.settle_save(key, &tok, &current, &next.record, message, broken)
                                    .await
                            }
                            f => Outcome::Fail(f.into_error().into()),
                        },
                    }
                }
            };
            if let Outcome::Saved = outcome {
                self.count(|c| &c.saves);
                break Ok(Arc::new(next.record));
            }
            input.give_back_owned(next);
            match outcome {
                Outcome::Saved => unreachable!("handled above"),
                Outcome::Gone => break Err(SaveError::Gone { key }),
                Outcome::Fail(e) => break Err(e),
                Outcome::Retry => {}
                Outcome::Busy => {
                    // Another writer holds the session's lock (if we held it, our lease ran
                    // out and it was taken over): wait for it, then write under our own.
                    self.count(|c| &c.escalations);
                    match self.lock(key).await {
                        Ok(tok) => lock = Some(tok),
                        Err(e) => break Err(e.into()),
                    }
                }
                Outcome::Newer(now) => {
                    current = Arc::new(now);
                    is_base = false;
                    conflicts += 1;
                    self.count(|c| &c.conflicts);
                    if conflicts >= self.inner.escalate_after && lock.is_none() {
                        self.count(|c| &c.escalations);
                        match self.lock(key).await {
                            Ok(tok) => lock = Some(tok),
                            Err(e) => break Err(e.into()),
                        }
                    }
                }
            }
        };
        if let Some(tok) = lock {
            self.unlock(key, &tok).await;
        }
        result
    }

    fn outcome(&self, key: SessionKey, reply: RedisValue) -> Outcome {
        match save_reply(key, reply) {
            Err(e) => Outcome::Fail(e.into()),
            Ok(SaveReply::Saved) => Outcome::Saved,
            Ok(SaveReply::Gone) => Outcome::Gone,
            Ok(SaveReply::Busy) => Outcome::Busy,
            Ok(SaveReply::Conflict(fields)) => match decode_record(key, &fields, &self.inner.codec)
            {
                Ok(Some(now)) => Outcome::Newer(now),
                Ok(None) => Outcome::Gone,
                Err(e) => Outcome::Fail(e.into()),
            },
        }
    }

    /// A save whose connection broke: did it land? Read the record back and look for its
    /// token. Never applies a save twice: only a save known not to have landed is sent again.
    async fn settle_save(
        &self,
        key: SessionKey,
        tok: &str,
        current: &Record,
        next: &Record,
        message: String,
        broken: u32,
    ) -> Outcome {
        match self.settle(key, tok, next.version).await {
            Ok(Settled::Landed) => Outcome::Saved,
            Ok(Settled::NotLanded(None)) => Outcome::Gone,
            Ok(Settled::NotLanded(Some(now))) => {
                if now.version == current.version {
                    // Not applied and nothing else landed.
                    if broken > self.inner.retries {
                        Outcome::Fail(StoreError::Connection { message }.into())
                    } else {
                        Outcome::Retry
                    }
                } else if now.version >= next.version + TOKENS_KEPT as u64 - 1 {
                    // So many writes since that ours may have left the token list.
                    Outcome::Fail(StoreError::InDoubt { key, message }.into())
                } else {
                    // Not applied; another save landed meanwhile.
                    Outcome::Newer(now)
                }
            }
            Err(StoreError::Connection { .. }) => {
                Outcome::Fail(StoreError::InDoubt { key, message }.into())
            }
            Err(e) => Outcome::Fail(e.into()),
        }
    }
}

/// What one attempt of a Redis save came to.
enum Outcome {
    Saved,
    Gone,
    /// Another writer holds the session's escalation lock.
    Busy,
    /// A newer record is stored: replay onto it.
    Newer(Record),
    /// The attempt did not land and nothing changed: send it again.
    Retry,
    Fail(SaveError),
}

/// One request's session on a [`RedisSessionStore`]: the same operations and semantics as the
/// in-memory [`Session`](super::Session) (each method below behaves as the one of the same
/// name there), with `async` [`save`](Self::save), [`flush`](Self::flush) and
/// [`cycle_key`](Self::cycle_key), the calls that reach the server. Reads and changes work on
/// the handle's copy and cost no round trip.
///
/// `Send` (keep it across `.await`), not `Sync`.
pub struct RedisSession {
    store: RedisSessionStore,
    state: State,
}

impl fmt::Debug for RedisSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSession")
            .field("key", &self.session_key())
            .field("version", &self.loaded_version())
            .field("modified", &self.state.modified)
            .field("accessed", &self.state.accessed.get())
            .field("data", self.state.view())
            .finish_non_exhaustive()
    }
}

impl RedisSession {
    /// The store this session belongs to.
    pub fn store(&self) -> &RedisSessionStore {
        &self.store
    }

    /// [`Session::session_key`](super::Session::session_key).
    pub fn session_key(&self) -> Option<SessionKey> {
        self.state.session_key()
    }

    /// [`Session::loaded_version`](super::Session::loaded_version).
    pub fn loaded_version(&self) -> Option<u64> {
        self.state.loaded_version()
    }

    /// [`Session::modified`](super::Session::modified).
    pub fn modified(&self) -> bool {
        self.state.modified
    }

    /// [`Session::set_modified`](super::Session::set_modified).
    pub fn set_modified(&mut self, modified: bool) {
        self.state.modified = modified;
    }

    /// [`Session::accessed`](super::Session::accessed).
    pub fn accessed(&self) -> bool {
        self.state.accessed.get()
    }

    /// [`Session::get`](super::Session::get).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.state.read().get(key)
    }

    /// [`Session::contains`](super::Session::contains).
    pub fn contains(&self, key: &str) -> bool {
        self.state.read().contains_key(key)
    }

    /// [`Session::keys`](super::Session::keys).
    pub fn keys(&self) -> impl Iterator<Item = &str> + '_ {
        self.state.read().keys()
    }

    /// [`Session::is_empty`](super::Session::is_empty).
    pub fn is_empty(&self) -> bool {
        self.state.is_empty()
    }

    /// [`Session::insert`](super::Session::insert).
    pub fn insert(&mut self, key: impl AsRef<str>, value: impl Into<Value>) {
        self.state.insert(key.as_ref(), value.into());
    }

    /// [`Session::remove`](super::Session::remove).
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.state.remove(key)
    }

    /// [`Session::setdefault`](super::Session::setdefault).
    pub fn setdefault(&mut self, key: impl AsRef<str>, default: impl Into<Value>) -> &Value {
        self.state.setdefault(key.as_ref(), default.into())
    }

    /// [`Session::update`](super::Session::update): recorded as an operation and replayed on
    /// the latest stored value if the save meets a newer record, so concurrent increments from
    /// every process all count.
    ///
    /// # Errors
    ///
    /// [`UpdatePanicked`] if `f` panicked; the handle is unchanged.
    pub fn update<F>(&mut self, key: impl AsRef<str>, f: F) -> Result<&Value, UpdatePanicked>
    where
        F: Fn(Option<&Value>) -> Value + Send + Sync + 'static,
    {
        self.state.update(key.as_ref(), Box::new(f))
    }

    /// [`Session::clear`](super::Session::clear).
    pub fn clear(&mut self) {
        self.state.clear();
    }

    /// [`Session::set_expiry`](super::Session::set_expiry).
    pub fn set_expiry(&mut self, expiry: impl Into<Option<Expiry>>) {
        self.state.set_expiry(expiry.into());
    }

    /// [`Session::expiry`](super::Session::expiry).
    pub fn expiry(&self) -> Option<Expiry> {
        self.state.expiry()
    }

    /// [`Session::get_expiry_age`](super::Session::get_expiry_age).
    pub fn get_expiry_age(&self, args: ExpiryArgs) -> i64 {
        self.state.expiry_age(args, self.store.inner.default_age)
    }

    /// [`Session::get_expiry_date`](super::Session::get_expiry_date).
    pub fn get_expiry_date(&self, args: ExpiryArgs) -> OffsetDateTime {
        self.state.expiry_date(args, self.store.inner.default_age)
    }

    /// [`Session::get_expire_at_browser_close`](super::Session::get_expire_at_browser_close).
    pub fn get_expire_at_browser_close(&self) -> bool {
        self.state
            .expire_at_browser_close(self.store.inner.expire_at_browser_close)
    }

    /// [`Session::flush`](super::Session::flush) (logout): the record is deleted from Redis
    /// now; a concurrent save of it in any process then fails with [`SaveError::Gone`].
    ///
    /// # Errors
    ///
    /// [`StoreError::Connection`] or [`StoreError::Server`]: the handle is already empty and
    /// without a key, but the record may still be stored (it expires with its TTL); retry with
    /// [`RedisSessionStore::delete`] if that matters.
    pub async fn flush(&mut self) -> Result<(), StoreError> {
        if let Some(base) = self.state.flush() {
            self.store.delete_key(base.key).await?;
        }
        Ok(())
    }

    /// [`Session::cycle_key`](super::Session::cycle_key) (call it at login): the data is
    /// stored under a new key, then the old key is deleted.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the new record could not be created (the handle is unchanged) or the
    /// old one could not be deleted (the handle already has the new key; the old record
    /// expires with its TTL).
    pub async fn cycle_key(&mut self) -> Result<(), StoreError> {
        let data = self.state.read().clone();
        let record = self
            .store
            .insert_new(data, self.state.expiry, Stamp::now())
            .await?;
        if let Some(old) = self.state.cycled(record) {
            self.store.delete_key(old.key).await?;
        }
        Ok(())
    }

    /// [`Session::save`](super::Session::save), in one round trip when no other request saved
    /// the session meanwhile: a session without a key is created under a fresh one; otherwise
    /// one script compares the version and writes the next record, or returns the current
    /// one, onto which this request's changes are replayed under the store's
    /// [`ConflictPolicy`].
    ///
    /// # Errors
    ///
    /// As in memory ([`SaveError::Gone`], [`SaveError::Conflict`],
    /// [`SaveError::UpdatePanicked`]), plus [`SaveError::Store`] when the server failed; on any
    /// error the handle keeps its data and change log, and the save did not land (an
    /// [`StoreError::InDoubt`] says it cannot be known).
    ///
    /// # Cancellation
    ///
    /// Dropping the future before it finishes (a request timeout) is safe: the save either
    /// landed or did not, as one script; the handle may then have lost its unsaved data. A save
    /// dropped while it held the session's escalation lock leaves that lock until its lease
    /// (default 2 s) runs out; other saves of the session wait for it meanwhile.
    pub async fn save(&mut self) -> Result<(), SaveError> {
        let now = Stamp::now();
        let state = &mut self.state;
        let saved = match &state.base {
            None => {
                let data = state.data.clone().unwrap_or_default();
                self.store.insert_new(data, state.expiry, now).await?
            }
            Some(base) => {
                self.store
                    .save_changes(SaveInput {
                        key: base.key,
                        base,
                        data: &mut state.data,
                        expiry: state.expiry,
                        log: &state.log,
                        policy: self.store.inner.policy,
                        now,
                        default_age: self.store.inner.default_age,
                    })
                    .await?
            }
        };
        state.saved(saved);
        Ok(())
    }
}
