//! One scenario suite for every model storage tier: the in-memory `ModelStore` under each
//! strategy (`LockFree`, `Blocking`) and, with feature `postgres`, `PgModelStore`. Each scenario
//! is written once against the `Tier` trait below and instantiated per tier by `tiers!`.
//!
//! The PostgreSQL tier reads `UNLOCKED_DATABASE_URL` (default
//! `postgres://root@127.0.0.1:5432/test`); without a reachable server its tests print a notice
//! and pass, unless `CI=true`, where they fail. Each test works in a table of its own (dropped
//! at the end). What only PostgreSQL has (corrupt rows, killed connections) is in
//! `tests/model_postgres.rs`.

use std::future::Future;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use unlocked::model::{
    CommitError, Committed, DeleteError, Draft, Model, SaveError, UpdateError, Versioned,
};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Account {
    owner: String,
    balance: i64,
}

impl Model for Account {
    const APP_LABEL: &'static str = "bank";
    const NAME: &'static str = "Account";
}

fn account(owner: &str, balance: i64) -> Account {
    Account {
        owner: owner.to_owned(),
        balance,
    }
}

type Change = Box<dyn FnMut(&mut Account) + Send>;

/// A model store under test, seen through the calls every tier shares.
trait Tier: Clone + Send + Sync + 'static {
    /// A fresh, empty store, or `None` when the tier's server is unreachable (skip).
    fn open(test: &str) -> impl Future<Output = Option<Self>> + Send;
    fn insert(&self, value: Account) -> impl Future<Output = Arc<Versioned<Account>>> + Send;
    fn get(&self, pk: u64) -> impl Future<Output = Option<Arc<Versioned<Account>>>> + Send;
    fn save(
        &self,
        draft: Draft<Account>,
    ) -> impl Future<Output = Result<Arc<Versioned<Account>>, SaveError<Account>>> + Send;
    fn update(
        &self,
        pk: u64,
        change: Change,
    ) -> impl Future<Output = Result<Arc<Versioned<Account>>, UpdateError<Account>>> + Send;
    fn delete(
        &self,
        pk: u64,
        version: u64,
    ) -> impl Future<Output = Result<Arc<Versioned<Account>>, DeleteError<Account>>> + Send;
    fn commit(
        &self,
        drafts: Vec<Draft<Account>>,
    ) -> impl Future<Output = Result<Vec<Arc<Versioned<Account>>>, CommitError<Account>>> + Send;
    /// Drops what the test created (a table); nothing for in-memory stores.
    fn close(self) -> impl Future<Output = ()> + Send;
}

mod memory {
    use super::*;
    use unlocked::Strategy;
    use unlocked::model::ModelStore;

    pub(super) struct Memory<S: Strategy>(Arc<ModelStore<Account, S>>);

    impl<S: Strategy> Clone for Memory<S> {
        fn clone(&self) -> Self {
            Memory(Arc::clone(&self.0))
        }
    }

    impl<S: Strategy> Tier for Memory<S> {
        async fn open(_test: &str) -> Option<Self> {
            Some(Memory(Arc::new(ModelStore::new())))
        }
        async fn insert(&self, value: Account) -> Arc<Versioned<Account>> {
            self.0.insert(value)
        }
        async fn get(&self, pk: u64) -> Option<Arc<Versioned<Account>>> {
            self.0.get(pk)
        }
        async fn save(
            &self,
            draft: Draft<Account>,
        ) -> Result<Arc<Versioned<Account>>, SaveError<Account>> {
            self.0.save(draft)
        }
        async fn update(
            &self,
            pk: u64,
            mut change: Change,
        ) -> Result<Arc<Versioned<Account>>, UpdateError<Account>> {
            self.0.update(pk, |a| change(a)).map(Committed::into_arc)
        }
        async fn delete(
            &self,
            pk: u64,
            version: u64,
        ) -> Result<Arc<Versioned<Account>>, DeleteError<Account>> {
            self.0.delete(pk, version)
        }
        async fn commit(
            &self,
            drafts: Vec<Draft<Account>>,
        ) -> Result<Vec<Arc<Versioned<Account>>>, CommitError<Account>> {
            self.0.commit(drafts)
        }
        async fn close(self) {}
    }
}

#[cfg(feature = "postgres")]
mod remote {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use unlocked::model::PgModelStore;

    #[derive(Clone)]
    pub(super) struct Postgres(PgModelStore<Account>);

    fn url() -> String {
        std::env::var("UNLOCKED_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".to_owned())
    }

    fn table(test: &str) -> String {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() % 1_000_000_000)
            .unwrap_or(0);
        format!(
            "s_{test}_{}_{nanos}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )
    }

    impl Tier for Postgres {
        async fn open(test: &str) -> Option<Self> {
            let url = url();
            match PgModelStore::connect(&url, &table(test)).await {
                Ok(store) => {
                    store.migrate().await.expect("migrate");
                    Some(Postgres(store))
                }
                Err(e) => {
                    assert!(
                        std::env::var("CI").as_deref() != Ok("true"),
                        "CI=true and PostgreSQL at {url} is unreachable: {e}"
                    );
                    use std::io::Write;
                    let _ = writeln!(
                        std::io::stderr(),
                        "notice: skipping a PostgreSQL model test, {url} is unreachable ({e}); \
                         run ci/postgres.sh"
                    );
                    None
                }
            }
        }
        async fn insert(&self, value: Account) -> Arc<Versioned<Account>> {
            self.0.insert(value).await.expect("insert")
        }
        async fn get(&self, pk: u64) -> Option<Arc<Versioned<Account>>> {
            self.0.get(pk).await.expect("get")
        }
        async fn save(
            &self,
            draft: Draft<Account>,
        ) -> Result<Arc<Versioned<Account>>, SaveError<Account>> {
            self.0.save(draft).await
        }
        async fn update(
            &self,
            pk: u64,
            mut change: Change,
        ) -> Result<Arc<Versioned<Account>>, UpdateError<Account>> {
            self.0.update(pk, |a| change(a)).await
        }
        async fn delete(
            &self,
            pk: u64,
            version: u64,
        ) -> Result<Arc<Versioned<Account>>, DeleteError<Account>> {
            self.0.delete(pk, version).await
        }
        async fn commit(
            &self,
            drafts: Vec<Draft<Account>>,
        ) -> Result<Vec<Arc<Versioned<Account>>>, CommitError<Account>> {
            self.0.commit(drafts).await
        }
        async fn close(self) {
            use sqlx::Executor;
            if let Ok(pool) = sqlx::PgPool::connect(&url()).await {
                let _ = pool
                    .execute(format!("DROP TABLE IF EXISTS {}", self.0.table()).as_str())
                    .await;
            }
        }
    }
}

/// Instantiates each scenario for each tier, on a multi-threaded runtime.
macro_rules! tiers {
    ($($name:ident),* $(,)?) => {
        mod lock_free {
            $(#[test] fn $name() { super::run(super::$name::<super::memory::Memory<unlocked::LockFree>>); })*
        }
        mod blocking {
            $(#[test] fn $name() { super::run(super::$name::<super::memory::Memory<unlocked::Blocking>>); })*
        }
        #[cfg(feature = "postgres")]
        mod postgres {
            $(#[test] fn $name() { super::run(super::$name::<super::remote::Postgres>); })*
        }
    };
}

fn run<F: Future<Output = ()>>(scenario: fn() -> F) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(scenario());
}

tiers!(
    lost_update_storm,
    a_conflict_carries_the_current_record,
    deleted_records_are_not_resurrected,
    commit_is_all_or_none,
    a_panicking_update_changes_nothing,
    hostile_keys_find_nothing,
);

/// 8 tasks × 25 increments of one balance through `update`: every one counts, none fails.
async fn lost_update_storm<T: Tier>() {
    let Some(store) = T::open("storm").await else {
        return;
    };
    let pk = store.insert(account("alice", 0)).await.pk();
    const TASKS: i64 = 8;
    const EACH: i64 = 25;
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..EACH {
                    store
                        .update(pk, Box::new(|a| a.balance += 1))
                        .await
                        .expect("update never fails for contention");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    let now = store.get(pk).await.expect("present");
    assert_eq!(now.value().balance, TASKS * EACH, "lost increments");
    assert_eq!(now.version(), 1 + (TASKS * EACH) as u64);
    store.close().await;
}

async fn a_conflict_carries_the_current_record<T: Tier>() {
    let Some(store) = T::open("conflict").await else {
        return;
    };
    let first = store.insert(account("bob", 10)).await;
    let mut a = first.edit();
    let mut b = first.edit();
    a.value_mut().balance = 20;
    b.value_mut().balance = 30;
    store.save(a).await.expect("first save");
    match store.save(b).await {
        Err(SaveError::Conflict { rejected, current }) => {
            assert_eq!(current.version(), 2);
            assert_eq!(current.value().balance, 20);
            assert_eq!(rejected.value().balance, 30, "the draft is handed back");
            assert_eq!(rejected.version(), 1);
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(
        store
            .get(first.pk())
            .await
            .expect("present")
            .value()
            .balance,
        20
    );
    // A delete at a stale version is a conflict too.
    match store.delete(first.pk(), 1).await {
        Err(DeleteError::Conflict { expected, current }) => {
            assert_eq!(expected, 1);
            assert_eq!(current.version(), 2);
        }
        other => panic!("expected a delete conflict, got {other:?}"),
    }
    store.close().await;
}

async fn deleted_records_are_not_resurrected<T: Tier>() {
    let Some(store) = T::open("resurrect").await else {
        return;
    };
    let rec = store.insert(account("carol", 5)).await;
    let stale = rec.edit();
    store.delete(rec.pk(), rec.version()).await.expect("delete");
    assert!(store.get(rec.pk()).await.is_none());
    assert!(matches!(
        store.save(stale).await,
        Err(SaveError::NotFound { .. })
    ));
    assert!(matches!(
        store.update(rec.pk(), Box::new(|a| a.balance += 1)).await,
        Err(UpdateError::NotFound { .. })
    ));
    assert!(matches!(
        store.delete(rec.pk(), 2).await,
        Err(DeleteError::NotFound { .. })
    ));
    assert!(store.get(rec.pk()).await.is_none(), "resurrected");
    store.close().await;
}

async fn commit_is_all_or_none<T: Tier>() {
    let Some(store) = T::open("commit").await else {
        return;
    };
    let from = store.insert(account("dave", 100)).await;
    let to = store.insert(account("erin", 0)).await;
    let (mut d_from, mut d_to) = (from.edit(), to.edit());
    d_from.value_mut().balance -= 40;
    d_to.value_mut().balance += 40;
    // Someone else changes `to` first: the transfer must not half-apply.
    store
        .update(to.pk(), Box::new(|a| a.owner = "erin2".into()))
        .await
        .expect("update");
    match store.commit(vec![d_from, d_to]).await {
        Err(CommitError::Conflict { pk, rejected, .. }) => {
            assert_eq!(pk, to.pk());
            assert_eq!(rejected.len(), 2, "every draft handed back");
        }
        other => panic!("expected a commit conflict, got {other:?}"),
    }
    assert_eq!(
        store.get(from.pk()).await.expect("present").value().balance,
        100
    );
    assert_eq!(
        store.get(to.pk()).await.expect("present").value().balance,
        0
    );
    // Redone on the current versions it commits both.
    let (from, to) = (
        store.get(from.pk()).await.expect("present"),
        store.get(to.pk()).await.expect("present"),
    );
    let (mut d_from, mut d_to) = (from.edit(), to.edit());
    d_from.value_mut().balance -= 40;
    d_to.value_mut().balance += 40;
    let done = store.commit(vec![d_from, d_to]).await.expect("commit");
    assert_eq!(done.len(), 2);
    assert_eq!(
        store.get(from.pk()).await.expect("present").value().balance,
        60
    );
    assert_eq!(
        store.get(to.pk()).await.expect("present").value().balance,
        40
    );
    store.close().await;
}

async fn a_panicking_update_changes_nothing<T: Tier>() {
    let Some(store) = T::open("panic").await else {
        return;
    };
    let rec = store.insert(account("frank", 1)).await;
    match store
        .update(
            rec.pk(),
            Box::new(|a| {
                a.balance = 999;
                panic!("boom")
            }),
        )
        .await
    {
        Err(UpdateError::Panicked { pk, message }) => {
            assert_eq!(pk, rec.pk());
            assert!(message.contains("boom"), "{message}");
        }
        other => panic!("expected Panicked, got {other:?}"),
    }
    let now = store.get(rec.pk()).await.expect("present");
    assert_eq!(now.value().balance, 1);
    assert_eq!(now.version(), 1);
    store.close().await;
}

async fn hostile_keys_find_nothing<T: Tier>() {
    let Some(store) = T::open("hostile").await else {
        return;
    };
    let rec = store.insert(account("grace", 1)).await;
    for pk in [0, u64::MAX, i64::MAX as u64 + 1, rec.pk() + 1_000_000] {
        assert!(store.get(pk).await.is_none(), "{pk}");
        assert!(matches!(
            store.update(pk, Box::new(|a| a.balance += 1)).await,
            Err(UpdateError::NotFound { .. })
        ));
        assert!(matches!(
            store.delete(pk, 1).await,
            Err(DeleteError::NotFound { .. })
        ));
    }
    assert_eq!(
        store.get(rec.pk()).await.expect("present").value().balance,
        1
    );
    store.close().await;
}
