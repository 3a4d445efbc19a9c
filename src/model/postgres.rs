//! [`PgModelStore`]: versioned models in PostgreSQL (feature `postgres`).

use std::fmt;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};

use super::error::{CommitError, DeleteError, SaveError, UpdateError};
use super::record::{Draft, Versioned};
use super::store::panic_message;
use super::store_error::StoreError;

/// How many times one operation reconnects after a broken connection before it reports
/// [`StoreError::Connection`] (on top of the pool's own connect retries).
const RECONNECTS: u32 = 8;

/// How many write tokens a record keeps (`ops`, newest first): a write whose connection broke
/// is settled exactly unless more than this many writes to the record followed it.
const OPS_KEPT: i64 = 16;

/// The records of one model type in one PostgreSQL table: the in-memory
/// [`ModelStore`](super::ModelStore)'s operations and error types, over a connection pool,
/// for several processes (or machines) sharing one database.
///
/// * The table holds `pk BIGINT` (an identity column: the database assigns keys),
///   `version BIGINT`, `ops BIGINT[]` (random tokens of the last 16 writes, to settle writes
///   whose connection broke) and `data JSONB` (the value through serde). Create it with
///   [`migrate`](Self::migrate).
/// * [`save`](Self::save) is one statement: `UPDATE … SET data = $3, version = version + 1
///   WHERE pk = $1 AND version = $2`, and when it matches no row the same round trip returns
///   the current record, for [`SaveError::Conflict`] (or [`SaveError::NotFound`]).
/// * [`update`](Self::update) runs a closure and saves optimistically; after
///   [`escalate_after`](PgModelStoreBuilder::escalate_after) lost races it locks the row
///   (`SELECT … FOR UPDATE` in a transaction), which always finishes: contention never makes
///   it fail unless a [retry budget](PgModelStoreBuilder::retry_budget) is set.
/// * [`commit`](Self::commit) changes several records in one transaction, all or none.
/// * Broken connections are replaced by the pool; an operation whose connection broke
///   retries on a new one when it can tell that nothing was written, settles a write in flight
///   by the token it wrote, and otherwise reports [`StoreError::InDoubt`]. Whatever returned
///   `Ok` is committed.
/// * Stored data that does not decode gives [`StoreError::Corrupt`] naming table and key,
///   never a panic.
///
/// Cloning is cheap and shares the pool.
///
/// ```no_run
/// use serde::{Deserialize, Serialize};
/// use unlocked::model::{PgModelStore, SaveError};
///
/// #[derive(Clone, Debug, Serialize, Deserialize)]
/// struct Account { owner: String, balance: i64 }
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store: PgModelStore<Account> =
///     PgModelStore::connect("postgres://root@127.0.0.1:5432/test", "bank_account").await?;
/// store.migrate().await?;
/// let alice = store.insert(Account { owner: "alice".into(), balance: 100 }).await?;
///
/// let (mut first, mut second) = (alice.edit(), alice.edit());
/// first.balance += 10;
/// second.balance -= 10;
/// store.save(first).await?;
/// match store.save(second).await {
///     Err(SaveError::Conflict { current, .. }) => assert_eq!(current.balance, 110),
///     other => panic!("expected a conflict, got {other:?}"),
/// }
/// // `update` re-reads and retries by itself.
/// let updated = store.update(alice.pk(), |a| a.balance += 1).await?;
/// assert_eq!(updated.balance, 111);
/// # Ok(()) }
/// ```
pub struct PgModelStore<M> {
    pool: PgPool,
    table: Arc<Table>,
    escalate_after: u32,
    budget: Option<u32>,
    _model: PhantomData<fn() -> M>,
}

impl<M> Clone for PgModelStore<M> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            table: self.table.clone(),
            escalate_after: self.escalate_after,
            budget: self.budget,
            _model: PhantomData,
        }
    }
}

impl<M> fmt::Debug for PgModelStore<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgModelStore")
            .field("table", &self.table.name)
            .field("model", &std::any::type_name::<M>())
            .field("connections", &self.pool.size())
            .field("escalate_after", &self.escalate_after)
            .field("retry_budget", &self.budget)
            .finish()
    }
}

/// Configures a [`PgModelStore`].
///
/// ```no_run
/// # use unlocked::model::PgModelStore;
/// # async fn run() -> Result<(), unlocked::model::StoreError> {
/// let store: PgModelStore<serde_json::Value> = PgModelStore::builder("blog_article")
///     .max_connections(20)
///     .retry_budget(50)      // fail with RetriesExhausted instead of waiting contention out
///     .connect("postgres://root@127.0.0.1:5432/test")
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct PgModelStoreBuilder<M> {
    table: String,
    max_connections: u32,
    acquire_timeout: Duration,
    application_name: Option<String>,
    escalate_after: u32,
    budget: Option<u32>,
    _model: PhantomData<fn() -> M>,
}

impl<M> PgModelStoreBuilder<M> {
    /// The most connections the store's pool opens (default 10).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// How long an operation waits for a connection (connecting included) before it reports
    /// [`StoreError::Connection`] (default 5 s).
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// The `application_name` the store's connections report to the server (shown in
    /// `pg_stat_activity`).
    pub fn application_name(mut self, name: &str) -> Self {
        self.application_name = Some(name.to_owned());
        self
    }

    /// How many optimistic attempts [`update`](PgModelStore::update) makes before it locks
    /// the row (default 4; `0` always locks).
    pub fn escalate_after(mut self, attempts: u32) -> Self {
        self.escalate_after = attempts;
        self
    }

    /// Makes [`update`](PgModelStore::update) give up with
    /// [`UpdateError::RetriesExhausted`] after running its closure `attempts` times (at
    /// least 1). Default: no budget, it always finishes.
    pub fn retry_budget(mut self, attempts: u32) -> Self {
        self.budget = Some(attempts.max(1));
        self
    }

    /// Opens the pool (one connection now, to report an unreachable server at once).
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidTableName`] before anything is sent, [`StoreError::Connection`]
    /// if the URL is invalid or the server cannot be reached.
    pub async fn connect(self, url: &str) -> Result<PgModelStore<M>, StoreError> {
        let table = Arc::new(Table::new(&self.table)?);
        let mut options = PgConnectOptions::from_str(url).map_err(|e| StoreError::Connection {
            message: format!("invalid database URL: {e}"),
        })?;
        if let Some(name) = &self.application_name {
            options = options.application_name(name);
        }
        let pool = PgPoolOptions::new()
            .max_connections(self.max_connections)
            .min_connections(0)
            .acquire_timeout(self.acquire_timeout)
            // A dead connection is found on first use and replaced; no ping per operation.
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Connection {
                message: e.to_string(),
            })?;
        Ok(PgModelStore {
            pool,
            table,
            escalate_after: self.escalate_after,
            budget: self.budget,
            _model: PhantomData,
        })
    }
}

/// A validated table name and the statements on it.
struct Table {
    name: String,
    create: String,
    insert: String,
    find_insert: String,
    get: String,
    save: String,
    lock: String,
    write_locked: String,
    delete: String,
    lock_many: String,
    write_many: String,
}

impl Table {
    fn new(name: &str) -> Result<Self, StoreError> {
        validate_table_name(name)?;
        let t = format!("\"{name}\"");
        Ok(Self {
            name: name.to_owned(),
            create: format!(
                "CREATE TABLE IF NOT EXISTS {t} (\
                 pk BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, \
                 version BIGINT NOT NULL DEFAULT 1, \
                 ops BIGINT[] NOT NULL DEFAULT '{{}}', \
                 data JSONB NOT NULL)"
            ),
            insert: format!(
                "INSERT INTO {t} (data, ops) VALUES ($1::jsonb, ARRAY[$2::bigint]) RETURNING pk"
            ),
            find_insert: format!("SELECT pk FROM {t} WHERE ops @> ARRAY[$1::bigint]"),
            get: format!("SELECT version, ops, data::text FROM {t} WHERE pk = $1"),
            // One round trip: the update, or (when it matched nothing) the current row.
            save: format!(
                "WITH w AS (UPDATE {t} SET data = $3::jsonb, version = version + 1, \
                 ops = (ARRAY[$4::bigint] || ops)[1:{OPS_KEPT}] \
                 WHERE pk = $1 AND version = $2 RETURNING version) \
                 SELECT true, w.version, ARRAY[]::bigint[], NULL::text FROM w \
                 UNION ALL \
                 SELECT false, c.version, c.ops, c.data::text FROM {t} c \
                 WHERE c.pk = $1 AND NOT EXISTS (SELECT 1 FROM w)"
            ),
            lock: format!("SELECT version, ops, data::text FROM {t} WHERE pk = $1 FOR UPDATE"),
            write_locked: format!(
                "UPDATE {t} SET data = $2::jsonb, version = version + 1, \
                 ops = (ARRAY[$3::bigint] || ops)[1:{OPS_KEPT}] \
                 WHERE pk = $1 RETURNING version"
            ),
            delete: format!(
                "WITH w AS (DELETE FROM {t} WHERE pk = $1 AND version = $2 \
                 RETURNING version, data) \
                 SELECT true, w.version, ARRAY[]::bigint[], w.data::text FROM w \
                 UNION ALL \
                 SELECT false, c.version, c.ops, c.data::text FROM {t} c \
                 WHERE c.pk = $1 AND NOT EXISTS (SELECT 1 FROM w)"
            ),
            lock_many: format!(
                "SELECT pk, version FROM {t} WHERE pk = ANY($1) ORDER BY pk FOR UPDATE"
            ),
            write_many: format!(
                "UPDATE {t} AS t SET data = v.data::jsonb, version = t.version + 1, \
                 ops = (ARRAY[$3::bigint] || t.ops)[1:{OPS_KEPT}] \
                 FROM unnest($1::bigint[], $2::text[]) AS v(pk, data) \
                 WHERE t.pk = v.pk RETURNING t.pk, t.version"
            ),
        })
    }
}

/// Table names: `[a-z_][a-z0-9_]*`, at most 63 bytes (PostgreSQL's identifier limit), so a
/// name is never truncated, never needs escaping and cannot inject SQL.
fn validate_table_name(name: &str) -> Result<(), StoreError> {
    let invalid = |reason| {
        Err(StoreError::InvalidTableName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("it is empty");
    }
    if name.len() > 63 {
        return invalid("it is longer than 63 bytes, PostgreSQL's identifier limit");
    }
    if name.as_bytes()[0].is_ascii_digit() {
        return invalid("it starts with a digit");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return invalid("only lower-case ASCII letters, digits and `_` are allowed");
    }
    if name.starts_with("pg_") {
        return invalid("the `pg_` prefix is reserved for PostgreSQL's catalogs");
    }
    Ok(())
}

/// A row as read: version, tokens of the last writes, data as JSON text.
struct Stored {
    version: i64,
    ops: Vec<i64>,
    data: Option<String>,
}

/// What a failed statement means for the caller.
enum Failure {
    /// The connection is gone (or could not be had): the statement may or may not have run.
    Connection(String),
    /// Anything else: the statement did not run or was rolled back.
    Store(StoreError),
}

impl Failure {
    fn into_store_error(self) -> StoreError {
        match self {
            Failure::Connection(message) => StoreError::Connection { message },
            Failure::Store(e) => e,
        }
    }
}

fn classify(error: sqlx::Error) -> Failure {
    match error {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned());
            match code.as_deref() {
                // Class 08: connection exception; 57P0x: the server is shutting the session
                // down (pg_terminate_backend, a restart).
                Some(c) if c.starts_with("08") || c.starts_with("57P") => {
                    Failure::Connection(db.message().to_owned())
                }
                _ => Failure::Store(StoreError::Database {
                    code,
                    message: db.message().to_owned(),
                }),
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => Failure::Connection(error.to_string()),
        other => Failure::Store(StoreError::Database {
            code: None,
            message: other.to_string(),
        }),
    }
}

/// Whether the pool already waited its acquire timeout for this failure: then reconnecting
/// again is pointless.
fn is_unreachable(message: &str) -> bool {
    message.contains("pool timed out") || message.contains("pool was closed")
}

/// The outcome of a write whose connection broke.
enum Settled {
    /// The write committed (the record carries its token).
    Committed,
    /// The write did not commit; the record as it is now.
    NotCommitted(Stored),
    /// Unknown.
    InDoubt(StoreError),
}

fn token() -> i64 {
    // Never 0 (the column's default).
    rand::random::<i64>() | 1
}

fn to_key(pk: u64) -> Option<i64> {
    i64::try_from(pk).ok().filter(|&k| k > 0)
}

fn encode<M: Serialize>(value: &M) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Encode {
        message: e.to_string(),
    })
}

async fn pause(attempt: u32) {
    tokio::time::sleep(Duration::from_millis(u64::from(5 * attempt.min(40)))).await;
}

impl<M> PgModelStore<M>
where
    M: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// Connects with the default configuration to the database at `url` (e.g.
    /// `postgres://user@host:5432/db`), for the records in `table`.
    ///
    /// # Errors
    ///
    /// As [`PgModelStoreBuilder::connect`].
    pub async fn connect(url: &str, table: &str) -> Result<Self, StoreError> {
        Self::builder(table).connect(url).await
    }

    /// A builder for a store of the records in `table`.
    pub fn builder(table: &str) -> PgModelStoreBuilder<M> {
        PgModelStoreBuilder {
            table: table.to_owned(),
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
            application_name: None,
            escalate_after: 4,
            budget: None,
            _model: PhantomData,
        }
    }

    /// A store of another model type in another table, sharing this store's pool and
    /// configuration.
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidTableName`].
    pub fn with_table<N>(&self, table: &str) -> Result<PgModelStore<N>, StoreError> {
        Ok(PgModelStore {
            pool: self.pool.clone(),
            table: Arc::new(Table::new(table)?),
            escalate_after: self.escalate_after,
            budget: self.budget,
            _model: PhantomData,
        })
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table.name
    }

    /// The retry budget of [`update`](Self::update), if one was set.
    pub fn retry_budget(&self) -> Option<u32> {
        self.budget
    }

    /// Creates the table if it does not exist (safe to run from several processes at once).
    ///
    /// # Errors
    ///
    /// [`StoreError::Connection`] or [`StoreError::Database`].
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut attempt = 0;
        loop {
            match self.try_migrate().await {
                Ok(()) => return Ok(()),
                Err(Failure::Connection(message)) if self.reconnect(&mut attempt, &message) => {
                    pause(attempt).await;
                }
                Err(e) => return Err(e.into_store_error()),
            }
        }
    }

    async fn try_migrate(&self) -> Result<(), Failure> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        // Concurrent `CREATE TABLE IF NOT EXISTS` can still collide in the catalog: serialise.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(format!("unlocked.model.{}", self.table.name))
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        sqlx::query(&self.table.create)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        tx.commit().await.map_err(classify)
    }

    /// Whether to try again after a broken connection (counts the attempt).
    fn reconnect(&self, attempt: &mut u32, message: &str) -> bool {
        *attempt += 1;
        *attempt <= RECONNECTS + 3 * self.pool.options().get_max_connections()
            && !is_unreachable(message)
    }

    fn decode(&self, pk: u64, stored: Stored) -> Result<Arc<Versioned<M>>, StoreError> {
        self.decode_value(pk, stored)
            .map(|(version, value)| Arc::new(Versioned { pk, version, value }))
    }

    /// The version and value of a stored row.
    fn decode_value(&self, pk: u64, stored: Stored) -> Result<(u64, M), StoreError> {
        let corrupt = |message: String| StoreError::Corrupt {
            table: self.table.name.clone(),
            pk,
            message,
        };
        let version = u64::try_from(stored.version)
            .ok()
            .filter(|&v| v > 0)
            .ok_or_else(|| corrupt(format!("version {} is not positive", stored.version)))?;
        let data = stored
            .data
            .ok_or_else(|| corrupt("the data column is NULL".to_owned()))?;
        let value = serde_json::from_str(&data).map_err(|e| corrupt(e.to_string()))?;
        Ok((version, value))
    }

    async fn fetch(&self, key: i64) -> Result<Option<Stored>, Failure> {
        let row = sqlx::query(&self.table.get)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        row.map(|row| stored(&row, 0)).transpose()
    }

    /// [`fetch`](Self::fetch), reconnecting after broken connections.
    async fn read(&self, key: i64) -> Result<Option<Stored>, StoreError> {
        let mut attempt = 0;
        loop {
            match self.fetch(key).await {
                Ok(row) => return Ok(row),
                Err(Failure::Connection(message)) if self.reconnect(&mut attempt, &message) => {
                    pause(attempt).await;
                }
                Err(e) => return Err(e.into_store_error()),
            }
        }
    }

    /// Settles a write of record `key` expected at `read_version` and tagged `token` whose
    /// connection broke.
    async fn settle(&self, pk: u64, read_version: i64, token: i64, cause: String) -> Settled {
        let in_doubt = |message: String| {
            Settled::InDoubt(StoreError::InDoubt {
                table: self.table.name.clone(),
                pk,
                message,
            })
        };
        match self.read(pk as i64).await {
            Ok(Some(row)) if row.ops.contains(&token) => Settled::Committed,
            // Had the write committed, its token would be among the last OPS_KEPT.
            Ok(Some(row)) if row.version - read_version <= OPS_KEPT => Settled::NotCommitted(row),
            Ok(Some(_)) => in_doubt(format!(
                "{cause}; more than {OPS_KEPT} writes to the record followed"
            )),
            Ok(None) => in_doubt(format!("{cause}; the record was deleted since")),
            Err(e) => in_doubt(format!("{cause}; then: {e}")),
        }
    }

    /// The record with primary key `pk`, with its version; `None` if there is none.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] if the stored data does not decode as `M`,
    /// [`StoreError::Connection`], [`StoreError::Database`] (e.g. before
    /// [`migrate`](Self::migrate)).
    pub async fn get(&self, pk: u64) -> Result<Option<Arc<Versioned<M>>>, StoreError> {
        let Some(key) = to_key(pk) else {
            return Ok(None);
        };
        match self.read(key).await? {
            Some(row) => self.decode(pk, row).map(Some),
            None => Ok(None),
        }
    }

    /// Adds a record at version 1 under a key the database assigns.
    ///
    /// Alters data.
    ///
    /// # Errors
    ///
    /// [`StoreError::Encode`] if `value` does not serialise, [`StoreError::InDoubt`] if the
    /// connection broke while the insert was in flight, [`StoreError::Connection`],
    /// [`StoreError::Database`].
    pub async fn insert(&self, value: M) -> Result<Arc<Versioned<M>>, StoreError> {
        let data = encode(&value)?;
        let mut attempt = 0;
        loop {
            let token = token();
            let result = sqlx::query(&self.table.insert)
                .bind(&data)
                .bind(token)
                .fetch_one(&self.pool)
                .await;
            let key = match result.map_err(classify) {
                Ok(row) => row.try_get::<i64, _>(0).map_err(column)?,
                Err(Failure::Store(error)) => return Err(error),
                Err(Failure::Connection(message)) => {
                    if is_unreachable(&message) {
                        return Err(StoreError::Connection { message });
                    }
                    // Look for the token (a scan: only after a broken connection).
                    match self.find_insert(token).await {
                        Ok(Some(key)) => key,
                        Ok(None) if self.reconnect(&mut attempt, &message) => {
                            pause(attempt).await;
                            continue;
                        }
                        Ok(None) => return Err(StoreError::Connection { message }),
                        Err(e) => {
                            return Err(StoreError::InDoubt {
                                table: self.table.name.clone(),
                                pk: 0,
                                message: format!("{message}; then: {e}"),
                            });
                        }
                    }
                }
            };
            return Ok(Arc::new(Versioned {
                pk: key as u64,
                version: 1,
                value,
            }));
        }
    }

    /// The key of the record an insert tagged `token` created, if it committed.
    async fn find_insert(&self, token: i64) -> Result<Option<i64>, StoreError> {
        let mut attempt = 0;
        loop {
            let row = sqlx::query(&self.table.find_insert)
                .bind(token)
                .fetch_optional(&self.pool)
                .await;
            match row.map_err(classify) {
                Ok(row) => return row.map(|r| r.try_get(0).map_err(column)).transpose(),
                Err(Failure::Connection(message)) if self.reconnect(&mut attempt, &message) => {
                    pause(attempt).await;
                }
                Err(e) => return Err(e.into_store_error()),
            }
        }
    }

    /// One versioned write: `Ok(Ok(new version))`, `Ok(Err(Some(current)))` on a conflict,
    /// `Ok(Err(None))` if there is no such record.
    async fn cas(
        &self,
        key: i64,
        read_version: i64,
        data: &str,
        token: i64,
    ) -> Result<Result<i64, Option<Stored>>, Failure> {
        let row = sqlx::query(&self.table.save)
            .bind(key)
            .bind(read_version)
            .bind(data)
            .bind(token)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        let Some(row) = row else {
            return Ok(Err(None));
        };
        let saved: bool = row.try_get(0).map_err(|e| Failure::Store(column(e)))?;
        let current = stored(&row, 1)?;
        if saved {
            return Ok(Ok(current.version));
        }
        if current.version > read_version {
            return Ok(Err(Some(current)));
        }
        // The statement's snapshot predates the commit that beat it: read the record anew.
        // A broken connection here is not a write in doubt: the write above did not match.
        let fresh = self
            .fetch(key)
            .await
            .map_err(|f| Failure::Store(f.into_store_error()))?;
        match fresh {
            Some(fresh) if fresh.version == read_version => Ok(Err(Some(fresh))),
            other => Ok(Err(other)),
        }
    }

    /// Commits `draft` if its record still has the version the draft was made from; the
    /// stored record then gets the next version.
    ///
    /// Alters data. One round trip, conflict or not.
    ///
    /// # Errors
    ///
    /// [`SaveError::Conflict`] with the current record, [`SaveError::NotFound`] if it was
    /// deleted, [`SaveError::Backend`] if the database failed (the current record does not
    /// decode: [`StoreError::Corrupt`]); all hand the draft back.
    pub async fn save(&self, draft: Draft<M>) -> Result<Arc<Versioned<M>>, SaveError<M>> {
        let pk = draft.pk;
        let (Some(key), Ok(read_version)) = (to_key(pk), i64::try_from(draft.version)) else {
            return Err(SaveError::NotFound { rejected: draft });
        };
        let data = match encode(&draft.value) {
            Ok(data) => data,
            Err(error) => {
                return Err(SaveError::Backend {
                    rejected: draft,
                    error,
                });
            }
        };
        let token = token();
        let mut attempt = 0;
        loop {
            let outcome = match self.cas(key, read_version, &data, token).await {
                Ok(outcome) => outcome,
                Err(Failure::Store(error)) => {
                    return Err(SaveError::Backend {
                        rejected: draft,
                        error,
                    });
                }
                Err(Failure::Connection(message)) => {
                    match self.settle(pk, read_version, token, message.clone()).await {
                        Settled::Committed => Ok(read_version + 1),
                        // Not written, and another write won meanwhile: a conflict.
                        Settled::NotCommitted(row) if row.version != read_version => Err(Some(row)),
                        Settled::NotCommitted(_) if self.reconnect(&mut attempt, &message) => {
                            pause(attempt).await;
                            continue;
                        }
                        Settled::NotCommitted(_) => {
                            return Err(SaveError::Backend {
                                rejected: draft,
                                error: StoreError::Connection { message },
                            });
                        }
                        Settled::InDoubt(error) => {
                            return Err(SaveError::Backend {
                                rejected: draft,
                                error,
                            });
                        }
                    }
                }
            };
            return match outcome {
                Ok(version) => Ok(Arc::new(Versioned {
                    pk,
                    version: version as u64,
                    value: draft.value,
                })),
                Err(Some(current)) => match self.decode(pk, current) {
                    Ok(current) => Err(SaveError::Conflict {
                        rejected: draft,
                        current,
                    }),
                    Err(error) => Err(SaveError::Backend {
                        rejected: draft,
                        error,
                    }),
                },
                Err(None) => Err(SaveError::NotFound { rejected: draft }),
            };
        }
    }

    /// Applies `change` to the current value of record `pk` and commits it; if another
    /// commit changed the record meanwhile, runs `change` again on the newer value.
    ///
    /// Alters data. `change` may run several times: keep side effects out of it. After
    /// [`escalate_after`](PgModelStoreBuilder::escalate_after) lost races the update locks
    /// the row for one last run (`SELECT … FOR UPDATE` in a transaction), so it always
    /// finishes.
    ///
    /// # Errors
    ///
    /// [`UpdateError::NotFound`], [`UpdateError::Panicked`] (nothing written),
    /// [`UpdateError::RetriesExhausted`] only with a
    /// [retry budget](PgModelStoreBuilder::retry_budget), [`UpdateError::Backend`] for
    /// database failures and corrupt data.
    pub async fn update(
        &self,
        pk: u64,
        mut change: impl FnMut(&mut M),
    ) -> Result<Arc<Versioned<M>>, UpdateError<M>> {
        let backend = |error| UpdateError::Backend { error };
        let Some(key) = to_key(pk) else {
            return Err(UpdateError::NotFound { pk });
        };
        let mut attempts: u32 = 0;
        let mut reconnects = 0;
        // The record to work on, when the last attempt already read it.
        let mut known: Option<Stored> = None;
        loop {
            if attempts >= self.escalate_after {
                return self.update_locked(pk, key, &mut change, attempts).await;
            }
            let current = match known.take() {
                Some(row) => row,
                None => match self.read(key).await.map_err(backend)? {
                    Some(row) => row,
                    None => return Err(UpdateError::NotFound { pk }),
                },
            };
            let read_version = current.version;
            let (_, mut value) = self.decode_value(pk, current).map_err(backend)?;
            attempts += 1;
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| change(&mut value))) {
                return Err(UpdateError::Panicked {
                    pk,
                    message: panic_message(&*payload),
                });
            }
            let data = encode(&value).map_err(backend)?;
            let token = token();
            let outcome = match self.cas(key, read_version, &data, token).await {
                Ok(outcome) => outcome,
                Err(Failure::Store(error)) => return Err(backend(error)),
                Err(Failure::Connection(message)) => {
                    match self.settle(pk, read_version, token, message.clone()).await {
                        Settled::Committed => Ok(read_version + 1),
                        // Not written, and another write won meanwhile: a lost race.
                        Settled::NotCommitted(row) if row.version != read_version => Err(Some(row)),
                        Settled::NotCommitted(row) if self.reconnect(&mut reconnects, &message) => {
                            // Not a lost race: run again on the same record.
                            attempts -= 1;
                            known = Some(row);
                            pause(reconnects).await;
                            continue;
                        }
                        Settled::NotCommitted(_) => {
                            return Err(backend(StoreError::Connection { message }));
                        }
                        Settled::InDoubt(error) => return Err(backend(error)),
                    }
                }
            };
            match outcome {
                Ok(version) => {
                    return Ok(Arc::new(Versioned {
                        pk,
                        version: version as u64,
                        value,
                    }));
                }
                Err(None) => return Err(UpdateError::NotFound { pk }),
                Err(Some(current)) => {
                    if self.budget.is_some_and(|budget| attempts >= budget) {
                        return Err(UpdateError::RetriesExhausted {
                            attempts,
                            current: self.decode(pk, current).map_err(backend)?,
                        });
                    }
                    known = Some(current);
                }
            }
        }
    }

    /// The escalated update: lock the row, change, write, commit.
    async fn update_locked(
        &self,
        pk: u64,
        key: i64,
        change: &mut impl FnMut(&mut M),
        attempts: u32,
    ) -> Result<Arc<Versioned<M>>, UpdateError<M>> {
        let backend = |error| UpdateError::Backend { error };
        if self.budget.is_some_and(|budget| attempts >= budget) {
            return match self.get(pk).await.map_err(backend)? {
                Some(current) => Err(UpdateError::RetriesExhausted { attempts, current }),
                None => Err(UpdateError::NotFound { pk }),
            };
        }
        let mut reconnects = 0;
        loop {
            let token = token();
            let mut read_version = None;
            // The value written, once computed.
            let mut pending: Option<M> = None;
            let result: Result<Result<i64, UpdateError<M>>, Failure> = async {
                let mut tx = self.pool.begin().await.map_err(classify)?;
                let row = sqlx::query(&self.table.lock)
                    .bind(key)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(classify)?;
                let Some(row) = row else {
                    return Ok(Err(UpdateError::NotFound { pk }));
                };
                let current = stored(&row, 0)?;
                read_version = Some(current.version);
                let mut value = match self.decode_value(pk, current) {
                    Ok((_, value)) => value,
                    Err(error) => return Ok(Err(backend(error))),
                };
                if let Err(payload) = catch_unwind(AssertUnwindSafe(|| change(&mut value))) {
                    return Ok(Err(UpdateError::Panicked {
                        pk,
                        message: panic_message(&*payload),
                    }));
                }
                let data = match encode(&value) {
                    Ok(data) => data,
                    Err(error) => return Ok(Err(backend(error))),
                };
                pending = Some(value);
                let row = sqlx::query(&self.table.write_locked)
                    .bind(key)
                    .bind(&data)
                    .bind(token)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(classify)?;
                let version: i64 = row.try_get(0).map_err(|e| Failure::Store(column(e)))?;
                tx.commit().await.map_err(classify)?;
                Ok(Ok(version))
            }
            .await;
            let written = |version: i64, pending: Option<M>| match pending {
                Some(value) => Ok(Arc::new(Versioned {
                    pk,
                    version: version as u64,
                    value,
                })),
                None => Err(backend(StoreError::Database {
                    code: None,
                    message: "the written value was lost (a bug)".to_owned(),
                })),
            };
            match result {
                Ok(Ok(version)) => return written(version, pending),
                Ok(Err(e)) => return Err(e),
                Err(Failure::Store(error)) => return Err(backend(error)),
                Err(Failure::Connection(message)) => {
                    let settled = match read_version {
                        // Broke before the row was read: nothing was written.
                        None => None,
                        Some(read) => Some(self.settle(pk, read, token, message.clone()).await),
                    };
                    match settled {
                        Some(Settled::Committed) => {
                            let read = read_version.unwrap_or_default();
                            return written(read + 1, pending);
                        }
                        Some(Settled::InDoubt(error)) => return Err(backend(error)),
                        None | Some(Settled::NotCommitted(_)) => {
                            if !self.reconnect(&mut reconnects, &message) {
                                return Err(backend(StoreError::Connection { message }));
                            }
                            pause(reconnects).await;
                        }
                    }
                }
            }
        }
    }

    /// Deletes record `pk` if it still has version `version`; returns the deleted record.
    ///
    /// Alters data.
    ///
    /// # Errors
    ///
    /// [`DeleteError::NotFound`], [`DeleteError::Conflict`] with the current record,
    /// [`DeleteError::Backend`].
    pub async fn delete(&self, pk: u64, version: u64) -> Result<Arc<Versioned<M>>, DeleteError<M>> {
        let backend = |error| DeleteError::Backend { error };
        let (Some(key), Ok(expected)) = (to_key(pk), i64::try_from(version)) else {
            return Err(DeleteError::NotFound { pk });
        };
        let mut attempt = 0;
        loop {
            let row = sqlx::query(&self.table.delete)
                .bind(key)
                .bind(expected)
                .fetch_optional(&self.pool)
                .await;
            let row = match row.map_err(classify) {
                Ok(row) => row,
                Err(Failure::Store(error)) => return Err(backend(error)),
                Err(Failure::Connection(message)) => {
                    // A delete leaves no token: only "still there at that version" is sure.
                    match self.read(key).await {
                        Ok(Some(row))
                            if row.version == expected
                                && self.reconnect(&mut attempt, &message) =>
                        {
                            pause(attempt).await;
                            continue;
                        }
                        Ok(Some(row)) if row.version == expected => {
                            return Err(backend(StoreError::Connection { message }));
                        }
                        _ => {
                            return Err(backend(StoreError::InDoubt {
                                table: self.table.name.clone(),
                                pk,
                                message,
                            }));
                        }
                    }
                }
            };
            let Some(row) = row else {
                return Err(DeleteError::NotFound { pk });
            };
            let deleted: bool = row.try_get(0).map_err(|e| backend(column(e)))?;
            let record = stored(&row, 1).map_err(|f| backend(f.into_store_error()))?;
            let record = self.decode(pk, record).map_err(backend)?;
            return if deleted {
                Ok(record)
            } else if record.version > version {
                Err(DeleteError::Conflict {
                    expected: version,
                    current: record,
                })
            } else {
                // The statement's snapshot predates the commit that beat it.
                match self.get(pk).await.map_err(backend)? {
                    Some(current) => Err(DeleteError::Conflict {
                        expected: version,
                        current,
                    }),
                    None => Err(DeleteError::NotFound { pk }),
                }
            };
        }
    }

    /// Commits several drafts in one transaction: each must still have the version it was
    /// read at, and either all are saved or none is.
    ///
    /// Alters data. Rows are locked in key order, so concurrent commits cannot deadlock.
    ///
    /// # Errors
    ///
    /// [`CommitError::Conflict`] naming the first record (in the order given) that changed
    /// or was deleted, [`CommitError::DuplicatePk`], [`CommitError::Backend`]; all hand every
    /// draft back.
    pub async fn commit(
        &self,
        drafts: Vec<Draft<M>>,
    ) -> Result<Vec<Arc<Versioned<M>>>, CommitError<M>> {
        let mut seen = std::collections::HashSet::with_capacity(drafts.len());
        if let Some(pk) = drafts.iter().map(|d| d.pk).find(|&pk| !seen.insert(pk)) {
            return Err(CommitError::DuplicatePk {
                pk,
                rejected: drafts,
            });
        }
        if drafts.is_empty() {
            return Ok(Vec::new());
        }
        let mut keys = Vec::with_capacity(drafts.len());
        let mut data = Vec::with_capacity(drafts.len());
        for draft in &drafts {
            match (to_key(draft.pk), i64::try_from(draft.version)) {
                (Some(key), Ok(_)) => keys.push(key),
                _ => {
                    return Err(CommitError::Conflict {
                        pk: draft.pk,
                        expected: draft.version,
                        current: None,
                        rejected: drafts,
                    });
                }
            }
            match encode(&draft.value) {
                Ok(json) => data.push(json),
                Err(error) => {
                    return Err(CommitError::Backend {
                        error,
                        rejected: drafts,
                    });
                }
            }
        }
        let token = token();
        let mut attempt = 0;
        loop {
            match self.try_commit(&drafts, &keys, &data, token).await {
                Ok(Ok(versions)) => {
                    return Ok(drafts
                        .into_iter()
                        .zip(versions)
                        .map(|(d, version)| {
                            Arc::new(Versioned {
                                pk: d.pk,
                                version,
                                value: d.value,
                            })
                        })
                        .collect());
                }
                Ok(Err(index)) => {
                    let draft = &drafts[index];
                    let current = match self.get(draft.pk).await {
                        Ok(current) => current,
                        Err(error) => {
                            return Err(CommitError::Backend {
                                error,
                                rejected: drafts,
                            });
                        }
                    };
                    return Err(CommitError::Conflict {
                        pk: draft.pk,
                        expected: draft.version,
                        current,
                        rejected: drafts,
                    });
                }
                Err(Failure::Store(error)) => {
                    return Err(CommitError::Backend {
                        error,
                        rejected: drafts,
                    });
                }
                Err(Failure::Connection(message)) => {
                    // All or none: the first record tells which.
                    let first = &drafts[0];
                    match self
                        .settle(first.pk, first.version as i64, token, message.clone())
                        .await
                    {
                        Settled::Committed => {
                            // All or none, and the first record carries the token: every
                            // record went from its read version to the next.
                            return Ok(drafts
                                .into_iter()
                                .map(|d| {
                                    Arc::new(Versioned {
                                        pk: d.pk,
                                        version: d.version + 1,
                                        value: d.value,
                                    })
                                })
                                .collect());
                        }
                        Settled::NotCommitted(_) if self.reconnect(&mut attempt, &message) => {
                            pause(attempt).await;
                        }
                        Settled::NotCommitted(_) => {
                            return Err(CommitError::Backend {
                                error: StoreError::Connection { message },
                                rejected: drafts,
                            });
                        }
                        Settled::InDoubt(error) => {
                            return Err(CommitError::Backend {
                                error,
                                rejected: drafts,
                            });
                        }
                    }
                }
            }
        }
    }

    /// One commit transaction: the new versions in draft order, or the index of the first
    /// draft whose record changed or is gone.
    async fn try_commit(
        &self,
        drafts: &[Draft<M>],
        keys: &[i64],
        data: &[String],
        token: i64,
    ) -> Result<Result<Vec<u64>, usize>, Failure> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let rows = sqlx::query(&self.table.lock_many)
            .bind(keys)
            .fetch_all(&mut *tx)
            .await
            .map_err(classify)?;
        let mut versions = std::collections::HashMap::with_capacity(rows.len());
        for row in &rows {
            let pk: i64 = row.try_get(0).map_err(|e| Failure::Store(column(e)))?;
            let version: i64 = row.try_get(1).map_err(|e| Failure::Store(column(e)))?;
            versions.insert(pk, version);
        }
        for (index, (draft, key)) in drafts.iter().zip(keys).enumerate() {
            if versions.get(key).copied() != Some(draft.version as i64) {
                // Dropping the transaction rolls it back.
                return Ok(Err(index));
            }
        }
        let rows = sqlx::query(&self.table.write_many)
            .bind(keys)
            .bind(data)
            .bind(token)
            .fetch_all(&mut *tx)
            .await
            .map_err(classify)?;
        if rows.len() != drafts.len() {
            return Err(Failure::Store(StoreError::Database {
                code: None,
                message: format!(
                    "the commit wrote {} of {} records; rolled back",
                    rows.len(),
                    drafts.len()
                ),
            }));
        }
        tx.commit().await.map_err(classify)?;
        Ok(Ok(drafts.iter().map(|d| d.version + 1).collect()))
    }
}

fn column(e: sqlx::Error) -> StoreError {
    StoreError::Database {
        code: None,
        message: format!("unexpected result shape: {e}"),
    }
}

/// Reads `(version, ops, data)` from `row`, starting at column `first`.
fn stored(row: &PgRow, first: usize) -> Result<Stored, Failure> {
    let get = |e| Failure::Store(column(e));
    Ok(Stored {
        version: row.try_get(first).map_err(get)?,
        ops: row.try_get(first + 1).map_err(get)?,
        data: row.try_get(first + 2).map_err(get)?,
    })
}
