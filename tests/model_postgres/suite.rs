//! The scenarios (compiled with feature `postgres`); see `tests/model_postgres.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgPool, PgPoolOptions};
use unlocked::model::{CommitError, DeleteError, PgModelStore, SaveError, StoreError, UpdateError};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Account {
    owner: String,
    balance: i64,
}

fn account(owner: &str, balance: i64) -> Account {
    Account {
        owner: owner.to_owned(),
        balance,
    }
}

fn url() -> String {
    std::env::var("UNLOCKED_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".to_owned())
}

/// Why the server was found unreachable, once (later tests skip at once).
static UNREACHABLE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// An admin pool for raw SQL, or `None` (after a notice) without a server; fails under CI.
async fn server() -> Option<PgPool> {
    let url = url();
    let ci = std::env::var("CI").as_deref() == Ok("true");
    if let Some(reason) = UNREACHABLE.get() {
        assert!(
            !ci,
            "CI=true and PostgreSQL at {url} is unreachable: {reason}"
        );
        return None;
    }
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(3))
        .connect(&url)
        .await;
    match pool {
        Ok(pool) => Some(pool),
        Err(e) => {
            assert!(!ci, "CI=true and PostgreSQL at {url} is unreachable: {e}");
            if UNREACHABLE.set(e.to_string()).is_ok() {
                // Straight to the stream: the test harness captures `eprintln!`.
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "notice: skipping the PostgreSQL tests, {url} is unreachable ({e}); \
                     set UNLOCKED_DATABASE_URL or run ci/postgres.sh"
                );
            }
            None
        }
    }
}

/// A table name unique to this test and run.
fn table(test: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() % 1_000_000_000)
        .unwrap_or(0);
    format!(
        "t_{test}_{}_{nanos}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

async fn store_in(name: &str) -> PgModelStore<Account> {
    let store = PgModelStore::connect(&url(), name).await.expect("connect");
    store.migrate().await.expect("migrate");
    store
}

async fn drop_table(admin: &PgPool, name: &str) {
    let _ = sqlx::query(&format!("DROP TABLE IF EXISTS \"{name}\""))
        .execute(admin)
        .await;
}

macro_rules! server_or_skip {
    () => {
        match server().await {
            Some(admin) => admin,
            None => return,
        }
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_get_save_roundtrip() {
    let admin = server_or_skip!();
    let name = table("roundtrip");
    let store = store_in(&name).await;
    store.migrate().await.expect("migrate is idempotent");
    let a = store.insert(account("alice", 100)).await.unwrap();
    let b = store.insert(account("bob", 5)).await.unwrap();
    assert_eq!(a.version(), 1);
    assert!(b.pk() > a.pk(), "the database assigns increasing keys");
    let got = store.get(a.pk()).await.unwrap().expect("inserted");
    assert_eq!(
        (got.pk(), got.version(), got.value()),
        (a.pk(), 1, &account("alice", 100))
    );
    let mut draft = got.edit();
    draft.balance += 50;
    let saved = store.save(draft).await.unwrap();
    assert_eq!((saved.version(), saved.balance), (2, 150));
    let again = store.get(a.pk()).await.unwrap().unwrap();
    assert_eq!((again.version(), again.balance), (2, 150));
    let updated = store.update(a.pk(), |acc| acc.balance *= 2).await.unwrap();
    assert_eq!((updated.version(), updated.balance), (3, 300));
    assert_eq!(
        store.get(b.pk()).await.unwrap().unwrap().version(),
        1,
        "b untouched"
    );
    drop_table(&admin, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_save_is_a_conflict_carrying_the_current_version() {
    let admin = server_or_skip!();
    let name = table("conflict");
    let store = store_in(&name).await;
    let rec = store.insert(account("a", 100)).await.unwrap();
    let (mut first, mut second) = (rec.edit(), rec.edit());
    first.balance += 10;
    second.balance -= 10;
    store.save(first).await.unwrap();
    match store.save(second).await {
        Err(SaveError::Conflict { rejected, current }) => {
            assert_eq!(
                (rejected.version(), rejected.balance),
                (1, 90),
                "handed back"
            );
            assert_eq!((current.version(), current.balance), (2, 110));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        store.get(rec.pk()).await.unwrap().unwrap().balance,
        110,
        "no lost update"
    );
    drop_table(&admin, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_records_are_not_found() {
    let admin = server_or_skip!();
    let name = table("notfound");
    let store = store_in(&name).await;
    assert!(store.get(12345).await.unwrap().is_none());
    assert!(
        store.get(u64::MAX).await.unwrap().is_none(),
        "beyond BIGINT"
    );
    assert!(matches!(
        store.update(12345, |a| a.balance += 1).await,
        Err(UpdateError::NotFound { pk: 12345 })
    ));
    assert!(matches!(
        store.delete(12345, 1).await,
        Err(DeleteError::NotFound { pk: 12345 })
    ));
    let rec = store.insert(account("a", 1)).await.unwrap();
    store.delete(rec.pk(), 1).await.unwrap();
    match store.save(rec.edit()).await {
        Err(SaveError::NotFound { rejected }) => assert_eq!(rejected.pk(), rec.pk()),
        other => panic!("expected NotFound, got {other:?}"),
    }
    drop_table(&admin, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_with_a_stale_version_is_refused() {
    let admin = server_or_skip!();
    let name = table("delete");
    let store = store_in(&name).await;
    let rec = store.insert(account("a", 1)).await.unwrap();
    store.update(rec.pk(), |a| a.balance = 2).await.unwrap();
    match store.delete(rec.pk(), 1).await {
        Err(DeleteError::Conflict { expected, current }) => {
            assert_eq!((expected, current.version(), current.balance), (1, 2, 2));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(store.get(rec.pk()).await.unwrap().is_some(), "still there");
    let deleted = store.delete(rec.pk(), 2).await.unwrap();
    assert_eq!((deleted.version(), deleted.balance), (2, 2));
    assert!(store.get(rec.pk()).await.unwrap().is_none());
    assert!(matches!(
        store.delete(rec.pk(), 2).await,
        Err(DeleteError::NotFound { .. })
    ));
    drop_table(&admin, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lost_update_storm_across_pools_counts_exactly() {
    let admin = server_or_skip!();
    let name = table("storm");
    let first = store_in(&name).await;
    let counters = [
        first.insert(account("x", 0)).await.unwrap().pk(),
        first.insert(account("y", 0)).await.unwrap().pk(),
    ];
    const POOLS: usize = 4;
    const TASKS_PER_POOL: usize = 6;
    const INCREMENTS: usize = 30;
    let mut stores = Vec::new();
    for p in 0..POOLS {
        // Half the pools lock at once (the escalated path), half stay optimistic first.
        let builder = PgModelStore::<Account>::builder(&name).max_connections(3);
        let builder = if p % 2 == 0 {
            builder.escalate_after(0)
        } else {
            builder
        };
        stores.push(builder.connect(&url()).await.unwrap());
    }
    let mut tasks = Vec::new();
    for store in &stores {
        for t in 0..TASKS_PER_POOL {
            let store = store.clone();
            let pk = counters[t % 2];
            tasks.push(tokio::spawn(async move {
                for _ in 0..INCREMENTS {
                    store
                        .update(pk, |a| a.balance += 1)
                        .await
                        .expect("update never fails");
                }
            }));
        }
    }
    for task in tasks {
        task.await.expect("no task panicked");
    }
    let total: i64 = {
        let mut sum = 0;
        for pk in counters {
            let rec = first.get(pk).await.unwrap().unwrap();
            assert_eq!(
                rec.version() as i64,
                rec.balance + 1,
                "one version per increment"
            );
            sum += rec.balance;
        }
        sum
    };
    assert_eq!(
        total,
        (POOLS * TASKS_PER_POOL * INCREMENTS) as i64,
        "no lost update"
    );
    drop_table(&admin, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_budget_surfaces_contention() {
    let admin = server_or_skip!();
    let name = table("budget");
    let store: PgModelStore<Account> = PgModelStore::builder(&name)
        .retry_budget(1)
        .escalate_after(10)
        .connect(&url())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let pk = store.insert(account("a", 0)).await.unwrap().pk();
    let other = store.clone();
    let mut runs = 0;
    let result = store
        .update(pk, |a| {
            runs += 1;
            // Another writer wins while the closure runs.
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current()
                    .block_on(other.update(pk, |a| a.balance += 100))
                    .unwrap();
            });
            a.balance += 1;
        })
        .await;
    match result {
        Err(UpdateError::RetriesExhausted { attempts, current }) => {
            assert_eq!((attempts, runs), (1, 1));
            assert_eq!((current.version(), current.balance), (2, 100));
        }
        other => panic!("expected RetriesExhausted, got {other:?}"),
    }
    drop_table(&admin, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_closure_changes_nothing() {
    let admin = server_or_skip!();
    let name = table("panic");
    let store = store_in(&name).await;
    let pk = store.insert(account("a", 7)).await.unwrap().pk();
    let result = store.update(pk, |_| panic!("boom")).await;
    assert!(
        matches!(&result, Err(UpdateError::Panicked { message, .. }) if message == "boom"),
        "{result:?}"
    );
    let rec = store.get(pk).await.unwrap().unwrap();
    assert_eq!((rec.version(), rec.balance), (1, 7));
    drop_table(&admin, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_is_all_or_none() {
    let admin = server_or_skip!();
    let name = table("commit");
    let store = store_in(&name).await;
    let a = store.insert(account("a", 100)).await.unwrap();
    let b = store.insert(account("b", 0)).await.unwrap();
    let (mut from, mut to) = (a.edit(), b.edit());
    from.balance -= 30;
    to.balance += 30;
    store.update(b.pk(), |acc| acc.balance += 5).await.unwrap();
    match store.commit(vec![from.clone(), to]).await {
        Err(CommitError::Conflict {
            pk,
            expected,
            current,
            rejected,
        }) => {
            assert_eq!((pk, expected), (b.pk(), 1), "names the record that changed");
            assert_eq!(current.map(|c| (c.version(), c.balance)), Some((2, 5)));
            assert_eq!(rejected.len(), 2);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let a_now = store.get(a.pk()).await.unwrap().unwrap();
    assert_eq!(
        (a_now.version(), a_now.balance),
        (1, 100),
        "nothing half-applied"
    );
    // Rebased on the current records, the transfer commits.
    let b_now = store.get(b.pk()).await.unwrap().unwrap();
    let mut to = b_now.edit();
    to.balance += 30;
    let saved = store.commit(vec![from.clone(), to]).await.unwrap();
    assert_eq!(
        saved
            .iter()
            .map(|r| (r.pk(), r.version()))
            .collect::<Vec<_>>(),
        vec![(a.pk(), 2), (b.pk(), 3)]
    );
    let total = store.get(a.pk()).await.unwrap().unwrap().balance
        + store.get(b.pk()).await.unwrap().unwrap().balance;
    assert_eq!(total, 105);
    // A deleted record fails the whole commit.
    let c = store.insert(account("c", 1)).await.unwrap();
    store.delete(c.pk(), 1).await.unwrap();
    let a2 = store.get(a.pk()).await.unwrap().unwrap();
    let result = store.commit(vec![a2.edit(), c.edit()]).await;
    assert!(
        matches!(&result, Err(CommitError::Conflict { pk, current: None, .. }) if *pk == c.pk()),
        "{result:?}"
    );
    assert_eq!(store.get(a.pk()).await.unwrap().unwrap().version(), 2);
    assert!(matches!(
        store.commit(vec![from.clone(), from]).await,
        Err(CommitError::DuplicatePk { .. })
    ));
    drop_table(&admin, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_rows_give_typed_errors() {
    let admin = server_or_skip!();
    let name = table("corrupt");
    let store = store_in(&name).await;
    let rec = store.insert(account("a", 1)).await.unwrap();
    let pk = rec.pk();
    let bad_version = store.insert(account("b", 1)).await.unwrap().pk();
    sqlx::query(&format!(
        "UPDATE \"{name}\" SET data = '{{\"owner\": 42}}', version = 2 WHERE pk = $1"
    ))
    .bind(pk as i64)
    .execute(&admin)
    .await
    .unwrap();
    sqlx::query(&format!("UPDATE \"{name}\" SET version = -3 WHERE pk = $1"))
        .bind(bad_version as i64)
        .execute(&admin)
        .await
        .unwrap();
    let is_corrupt = |e: &StoreError, at: u64| matches!(e, StoreError::Corrupt { table, pk, .. } if table == &name && *pk == at);
    let e = store.get(pk).await.unwrap_err();
    assert!(is_corrupt(&e, pk), "{e:?}");
    assert!(e.to_string().contains(&name), "{e}");
    let e = store.get(bad_version).await.unwrap_err();
    assert!(is_corrupt(&e, bad_version), "{e:?}");
    match store.update(pk, |a| a.balance += 1).await {
        Err(UpdateError::Backend { error }) => assert!(is_corrupt(&error, pk), "{error:?}"),
        other => panic!("expected a corrupt-data error, got {other:?}"),
    }
    // A stale draft meets the corrupt current record: typed, and the draft comes back.
    match store.save(rec.edit()).await {
        Err(SaveError::Backend { rejected, error }) => {
            assert!(is_corrupt(&error, pk), "{error:?}");
            assert_eq!(rejected.version(), 1);
        }
        other => panic!("expected a corrupt-data error, got {other:?}"),
    }
    // The record is left as it is, and a store of raw JSON can repair it.
    let raw = store.with_table::<serde_json::Value>(&name).unwrap();
    let mut fix = raw.get(pk).await.unwrap().unwrap().edit();
    assert_eq!((fix.version(), &fix["owner"]), (2, &serde_json::json!(42)));
    fix["owner"] = serde_json::json!("a");
    fix["balance"] = serde_json::json!(5);
    raw.save(fix).await.unwrap();
    let repaired = store.get(pk).await.unwrap().unwrap();
    assert_eq!((repaired.version(), repaired.balance), (3, 5));
    drop_table(&admin, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_the_store_cannot_write_give_typed_errors() {
    let admin = server_or_skip!();
    let name = table("encode");
    let maps: PgModelStore<BTreeMap<Vec<u8>, u8>> =
        PgModelStore::connect(&url(), &name).await.unwrap();
    maps.migrate().await.unwrap();
    let e = maps
        .insert(BTreeMap::from([(vec![1], 1)]))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Encode { .. }), "{e:?}");
    // PostgreSQL's JSONB refuses NUL in strings.
    let store = maps.with_table::<Account>(&name).unwrap();
    let e = store.insert(account("nul\0here", 1)).await.unwrap_err();
    assert!(
        matches!(&e, StoreError::Database { code: Some(code), .. } if code.starts_with("22")),
        "{e:?}"
    );
    // Before migrate: a database error naming the missing table, not a panic.
    let missing = maps.with_table::<Account>(&table("missing")).unwrap();
    let e = missing.get(1).await.unwrap_err();
    assert!(
        matches!(&e, StoreError::Database { code: Some(code), .. } if code == "42P01"),
        "{e:?}"
    );
    drop_table(&admin, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_table_names_are_refused_before_reaching_the_database() {
    let admin = server_or_skip!();
    for bad in [
        "",
        "Users",
        "users; DROP TABLE users",
        "a\"b",
        "1abc",
        "pg_class",
        "naïve",
        &"x".repeat(64),
    ] {
        let e = PgModelStore::<Account>::connect(&url(), bad)
            .await
            .unwrap_err();
        assert!(
            matches!(&e, StoreError::InvalidTableName { name, .. } if name == bad),
            "{bad:?}: {e:?}"
        );
    }
    let good = table("names");
    let store = store_in(&good).await;
    assert!(matches!(
        store.with_table::<Account>("drop table x"),
        Err(StoreError::InvalidTableName { .. })
    ));
    assert!(store.with_table::<Account>(&"y".repeat(63)).is_ok());
    drop_table(&admin, &good).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_a_connection_error() {
    let _admin = server_or_skip!();
    // Port 1 refuses connections.
    let e = PgModelStore::<Account>::builder("t")
        .acquire_timeout(Duration::from_millis(500))
        .connect("postgres://root@127.0.0.1:1/test")
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Connection { .. }), "{e:?}");
    assert!(e.is_connection());
    let e = PgModelStore::<Account>::connect("not a url", "t")
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Connection { .. }), "{e:?}");
}

/// Kills the store's connections (`pg_terminate_backend`) and returns how many it killed.
async fn kill(admin: &PgPool, application: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE application_name = $1 AND pid <> pg_backend_pid()",
    )
    .bind(application)
    .fetch_one(admin)
    .await
    .unwrap();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_killed_are_replaced_transparently() {
    let admin = server_or_skip!();
    let name = table("killidle");
    let app = name.clone();
    let store: PgModelStore<Account> = PgModelStore::builder(&name)
        .application_name(&app)
        .max_connections(3)
        .connect(&url())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let rec = store.insert(account("a", 0)).await.unwrap();
    for round in 0..3 {
        assert!(
            kill(&admin, &app).await >= 1,
            "round {round}: nothing to kill"
        );
        // Each operation reconnects by itself; none fails.
        assert!(store.get(rec.pk()).await.unwrap().is_some());
        kill(&admin, &app).await;
        store.update(rec.pk(), |a| a.balance += 1).await.unwrap();
        kill(&admin, &app).await;
        store.insert(account("b", 0)).await.unwrap();
        kill(&admin, &app).await;
        let current = store.get(rec.pk()).await.unwrap().unwrap();
        let mut draft = current.edit();
        draft.balance += 1;
        kill(&admin, &app).await;
        store.save(draft).await.unwrap();
    }
    assert_eq!(store.get(rec.pk()).await.unwrap().unwrap().balance, 6);
    drop_table(&admin, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_killed_mid_run_lose_nothing_acknowledged() {
    let admin = server_or_skip!();
    let name = table("killrun");
    let app = name.clone();
    let store: PgModelStore<Account> = PgModelStore::builder(&name)
        .application_name(&app)
        .max_connections(4)
        .connect(&url())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let pk = store.insert(account("counter", 0)).await.unwrap().pk();
    let acked = Arc::new(AtomicU64::new(0));
    let in_doubt = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_millis(2500);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, acked, in_doubt, failed) = (
            store.clone(),
            acked.clone(),
            in_doubt.clone(),
            failed.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                match store.update(pk, |a| a.balance += 1).await {
                    Ok(_) => acked.fetch_add(1, Ordering::Relaxed),
                    Err(UpdateError::Backend {
                        error: e @ StoreError::InDoubt { .. },
                    }) => {
                        if std::env::var("DEBUGK").is_ok() {
                            eprintln!("DOUBT {e}");
                        }
                        in_doubt.fetch_add(1, Ordering::Relaxed)
                    }
                    Err(UpdateError::Backend {
                        error: e @ StoreError::Connection { .. },
                    }) => {
                        if std::env::var("DEBUGK").is_ok() {
                            eprintln!("FAIL {e}");
                        }
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                    Err(other) => panic!("unexpected error: {other:?}"),
                };
            }
        }));
    }
    let mut killed = 0;
    while Instant::now() < deadline - Duration::from_millis(300) {
        tokio::time::sleep(Duration::from_millis(40)).await;
        killed += kill(&admin, &app).await;
    }
    for task in tasks {
        task.await.expect("no task panicked");
    }
    // The store reconnected by itself: it works after the storm of kills.
    let last = store.update(pk, |a| a.balance += 1).await.unwrap();
    let (acked, in_doubt, failed) = (
        acked.load(Ordering::Relaxed) + 1,
        in_doubt.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    let total = last.balance as u64;
    println!(
        "killed {killed} connections; {acked} updates acknowledged, {in_doubt} in doubt, \
         {failed} failed; stored total {total}"
    );
    assert!(
        killed >= 10,
        "the test must kill connections mid-run (killed {killed})"
    );
    assert!(acked > 0);
    assert!(
        total >= acked,
        "an acknowledged update was lost: {total} < {acked}"
    );
    assert!(
        total <= acked + in_doubt,
        "an update counted twice, or a failed one was applied: {total} > {acked} + {in_doubt}"
    );
    assert_eq!(last.version(), total + 1, "one version per increment");
    drop_table(&admin, &name).await;
}

#[cfg(feature = "axum")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_become_409_and_missing_records_404() {
    use axum::response::IntoResponse;
    use http_body_util::BodyExt;

    let admin = server_or_skip!();
    let name = table("http");
    let store = store_in(&name).await;
    let rec = store.insert(account("a", 1)).await.unwrap();
    store.update(rec.pk(), |a| a.balance += 1).await.unwrap();
    let response = store.save(rec.edit()).await.unwrap_err().into_response();
    assert_eq!(response.status(), 409);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["current_version"], 2, "{body}");
    assert_eq!(body["pk"], rec.pk(), "{body}");
    let response = store.delete(rec.pk(), 1).await.unwrap_err().into_response();
    assert_eq!(response.status(), 409);
    let response = store
        .update(rec.pk() + 1000, |_| ())
        .await
        .unwrap_err()
        .into_response();
    assert_eq!(response.status(), 404);
    drop_table(&admin, &name).await;
}
