//! One scenario suite for every session storage tier: the in-memory store under each strategy
//! (`LockFree`, `Blocking`) and, with feature `redis`, the Redis store. Each scenario is written
//! once against the `Tier` trait below and instantiated per tier by `tiers!`.
//!
//! The Redis tier reads `UNLOCKED_REDIS_URL` (default `redis://127.0.0.1:6379`); without a
//! reachable server its tests print a notice and pass, unless `CI=true`, where they fail. Each
//! test uses a key prefix of its own.

#[cfg(feature = "redis")]
mod common_remote;

use std::future::Future;
use std::sync::Arc;

use serde_json::{Value, json};
use unlocked::session::{ConflictPolicy, Expiry, SaveError, SessionKey};

/// A session store under test, seen through the calls every tier shares.
trait Tier: Clone + Send + Sync + 'static {
    type Handle: Handle;
    /// A fresh store with `policy`, or `None` when the tier's server is unreachable (skip).
    fn open(test: &str, policy: ConflictPolicy) -> impl Future<Output = Option<Self>> + Send;
    fn load(&self, key: Option<&str>) -> impl Future<Output = Self::Handle> + Send;
    fn delete(&self, key: &str) -> impl Future<Output = bool> + Send;
    fn exists(&self, key: &str) -> impl Future<Output = bool> + Send;
}

/// A request's session handle.
trait Handle: Send + 'static {
    fn key(&self) -> Option<SessionKey>;
    fn version(&self) -> Option<u64>;
    fn get(&self, key: &str) -> Option<Value>;
    fn insert(&mut self, key: &str, value: Value);
    fn remove(&mut self, key: &str) -> Option<Value>;
    fn incr(&mut self, key: &str);
    fn panic_update(&mut self, key: &str) -> bool;
    fn set_expiry(&mut self, expiry: Option<Expiry>);
    fn save(&mut self) -> impl Future<Output = Result<(), SaveError>> + Send;
    fn flush(&mut self) -> impl Future<Output = ()> + Send;
    fn cycle_key(&mut self) -> impl Future<Output = ()> + Send;
}

fn plus_one(v: Option<&Value>) -> Value {
    json!(v.and_then(Value::as_i64).unwrap_or(0) + 1)
}

mod memory {
    use super::*;
    use unlocked::Strategy;
    use unlocked::session::{OwnedSession, SessionStore};

    pub(super) struct Memory<S: Strategy>(pub(super) Arc<SessionStore<S>>);

    impl<S: Strategy> Clone for Memory<S> {
        fn clone(&self) -> Self {
            Memory(Arc::clone(&self.0))
        }
    }

    impl<S: Strategy> Tier for Memory<S> {
        type Handle = OwnedSession<S>;
        async fn open(_test: &str, policy: ConflictPolicy) -> Option<Self> {
            Some(Memory(Arc::new(
                SessionStore::builder().conflict_policy(policy).build(),
            )))
        }
        async fn load(&self, key: Option<&str>) -> OwnedSession<S> {
            self.0.load_owned(key)
        }
        async fn delete(&self, key: &str) -> bool {
            self.0.delete(key)
        }
        async fn exists(&self, key: &str) -> bool {
            self.0.exists(key)
        }
    }

    impl<S: Strategy> Handle for OwnedSession<S> {
        fn key(&self) -> Option<SessionKey> {
            self.session_key()
        }
        fn version(&self) -> Option<u64> {
            self.loaded_version()
        }
        fn get(&self, key: &str) -> Option<Value> {
            OwnedSession::get(self, key).cloned()
        }
        fn insert(&mut self, key: &str, value: Value) {
            OwnedSession::insert(self, key, value);
        }
        fn remove(&mut self, key: &str) -> Option<Value> {
            OwnedSession::remove(self, key)
        }
        fn incr(&mut self, key: &str) {
            self.update(key, plus_one).expect("plus_one does not panic");
        }
        fn panic_update(&mut self, key: &str) -> bool {
            self.update(key, |_| panic!("boom")).is_err()
        }
        fn set_expiry(&mut self, expiry: Option<Expiry>) {
            OwnedSession::set_expiry(self, expiry);
        }
        async fn save(&mut self) -> Result<(), SaveError> {
            OwnedSession::save(self)
        }
        async fn flush(&mut self) {
            OwnedSession::flush(self);
        }
        async fn cycle_key(&mut self) {
            OwnedSession::cycle_key(self).expect("unbounded store");
        }
    }
}

#[cfg(feature = "redis")]
mod remote {
    use super::common_remote::{redis_url as url, unique};
    use super::*;

    pub(super) fn prefix(test: &str) -> String {
        unique(test, ":")
    }

    use unlocked::session::{RedisSession, RedisSessionStore};

    /// Connects, or `None` after a notice when unreachable (fails under `CI=true`).
    pub(super) async fn connect(
        builder: unlocked::session::RedisSessionStoreBuilder,
    ) -> Option<RedisSessionStore> {
        let url = url();
        match builder.connect(&url).await {
            Ok(store) => Some(store),
            Err(e) => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "CI=true and Redis at {url} is unreachable: {e}"
                );
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "notice: skipping a Redis session test, {url} is unreachable ({e}); set \
                     UNLOCKED_REDIS_URL or run ci/redis.sh"
                );
                None
            }
        }
    }

    #[derive(Clone)]
    pub(super) struct Redis(pub(super) RedisSessionStore);

    impl Tier for Redis {
        type Handle = RedisSession;
        async fn open(test: &str, policy: ConflictPolicy) -> Option<Self> {
            let builder = RedisSessionStore::builder()
                .prefix(&prefix(test))
                // Leftovers of a test run expire soon.
                .default_age(std::time::Duration::from_secs(600))
                .conflict_policy(policy);
            connect(builder).await.map(Redis)
        }
        async fn load(&self, key: Option<&str>) -> RedisSession {
            self.0.load(key).await.expect("load")
        }
        async fn delete(&self, key: &str) -> bool {
            self.0.delete(key).await.expect("delete")
        }
        async fn exists(&self, key: &str) -> bool {
            self.0.exists(key).await.expect("exists")
        }
    }

    impl Handle for RedisSession {
        fn key(&self) -> Option<SessionKey> {
            self.session_key()
        }
        fn version(&self) -> Option<u64> {
            self.loaded_version()
        }
        fn get(&self, key: &str) -> Option<Value> {
            RedisSession::get(self, key).cloned()
        }
        fn insert(&mut self, key: &str, value: Value) {
            RedisSession::insert(self, key, value);
        }
        fn remove(&mut self, key: &str) -> Option<Value> {
            RedisSession::remove(self, key)
        }
        fn incr(&mut self, key: &str) {
            self.update(key, plus_one).expect("plus_one does not panic");
        }
        fn panic_update(&mut self, key: &str) -> bool {
            self.update(key, |_| panic!("boom")).is_err()
        }
        fn set_expiry(&mut self, expiry: Option<Expiry>) {
            RedisSession::set_expiry(self, expiry);
        }
        async fn save(&mut self) -> Result<(), SaveError> {
            RedisSession::save(self).await
        }
        async fn flush(&mut self) {
            RedisSession::flush(self).await.expect("flush");
        }
        async fn cycle_key(&mut self) {
            RedisSession::cycle_key(self).await.expect("cycle_key");
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
        #[cfg(feature = "redis")]
        mod redis {
            $(#[test] fn $name() { super::run(super::$name::<super::remote::Redis>); })*
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
    different_keys_merge,
    flushed_session_is_not_resurrected,
    cycled_key_moves_the_data,
    reject_reports_the_current_version,
    last_writer_wins_overwrites,
    expired_sessions_are_gone,
    hostile_keys_get_a_fresh_session,
    a_panicking_update_changes_nothing,
);

/// A session saved once; its key.
async fn seeded<T: Tier>(store: &T) -> String {
    let mut s = store.load(None).await;
    s.insert("seed", json!(true));
    s.save().await.expect("create");
    s.key().expect("saved").as_str().to_owned()
}

/// 8 tasks × 40 requests, each loading the session, incrementing one counter and saving: every
/// increment counts, no save fails.
async fn lost_update_storm<T: Tier>() {
    let Some(store) = T::open("storm", ConflictPolicy::MergeChangedKeys).await else {
        return;
    };
    let key = seeded(&store).await;
    const TASKS: u64 = 8;
    const EACH: u64 = 40;
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let store = store.clone();
            let key = key.clone();
            tokio::spawn(async move {
                for _ in 0..EACH {
                    let mut s = store.load(Some(&key)).await;
                    s.incr("hits");
                    s.incr(&format!("task{t}"));
                    s.save()
                        .await
                        .expect("a merged save never fails for contention");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    let s = store.load(Some(&key)).await;
    assert_eq!(s.get("hits"), Some(json!(TASKS * EACH)), "lost increments");
    for t in 0..TASKS {
        assert_eq!(s.get(&format!("task{t}")), Some(json!(EACH)));
    }
    assert_eq!(s.version(), Some(1 + TASKS * EACH));
}

async fn different_keys_merge<T: Tier>() {
    let Some(store) = T::open("merge", ConflictPolicy::MergeChangedKeys).await else {
        return;
    };
    let key = seeded(&store).await;
    let mut a = store.load(Some(&key)).await;
    let mut b = store.load(Some(&key)).await;
    a.insert("theme", json!("dark"));
    b.insert("lang", json!("fr"));
    assert_eq!(b.remove("seed"), Some(json!(true)));
    a.save().await.expect("a");
    b.save().await.expect("b merges onto a");
    let now = store.load(Some(&key)).await;
    assert_eq!(now.get("theme"), Some(json!("dark")));
    assert_eq!(now.get("lang"), Some(json!("fr")));
    assert_eq!(now.get("seed"), None);
    assert_eq!(now.version(), Some(3));
}

async fn flushed_session_is_not_resurrected<T: Tier>() {
    let Some(store) = T::open("flush", ConflictPolicy::MergeChangedKeys).await else {
        return;
    };
    let key = seeded(&store).await;
    let mut late = store.load(Some(&key)).await;
    let mut logout = store.load(Some(&key)).await;
    logout.flush().await;
    assert!(logout.key().is_none());
    assert!(!store.exists(&key).await);
    late.insert("cart", json!([1]));
    match late.save().await {
        Err(SaveError::Gone { key: gone }) => assert_eq!(gone.as_str(), key),
        other => panic!("expected Gone, got {other:?}"),
    }
    assert!(!store.exists(&key).await, "resurrected");
    // The refused handle kept its data.
    assert_eq!(late.get("cart"), Some(json!([1])));
    let fresh = store.load(Some(&key)).await;
    assert!(fresh.key().is_none());
}

async fn cycled_key_moves_the_data<T: Tier>() {
    let Some(store) = T::open("cycle", ConflictPolicy::MergeChangedKeys).await else {
        return;
    };
    let key = seeded(&store).await;
    let mut stale = store.load(Some(&key)).await;
    let mut login = store.load(Some(&key)).await;
    login.insert("user", json!("alice"));
    login.cycle_key().await;
    let new_key = login.key().expect("cycled").as_str().to_owned();
    assert_ne!(new_key, key);
    assert!(!store.exists(&key).await);
    let moved = store.load(Some(&new_key)).await;
    assert_eq!(moved.get("user"), Some(json!("alice")));
    assert_eq!(moved.get("seed"), Some(json!(true)));
    stale.insert("x", json!(1));
    assert!(matches!(stale.save().await, Err(SaveError::Gone { .. })));
    assert!(!store.exists(&key).await);
}

async fn reject_reports_the_current_version<T: Tier>() {
    let Some(store) = T::open("reject", ConflictPolicy::Reject).await else {
        return;
    };
    let key = seeded(&store).await;
    let mut a = store.load(Some(&key)).await;
    let mut b = store.load(Some(&key)).await;
    a.insert("k", json!("a"));
    b.insert("k", json!("b"));
    a.save().await.expect("first");
    match b.save().await {
        Err(SaveError::Conflict {
            current,
            loaded_version,
        }) => {
            assert_eq!(loaded_version, 1);
            assert_eq!(current.version(), 2);
            assert_eq!(current.data().get("k"), Some(&json!("a")));
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(store.load(Some(&key)).await.get("k"), Some(json!("a")));
}

async fn last_writer_wins_overwrites<T: Tier>() {
    let Some(store) = T::open("lww", ConflictPolicy::LastWriterWins).await else {
        return;
    };
    let key = seeded(&store).await;
    let mut a = store.load(Some(&key)).await;
    let mut b = store.load(Some(&key)).await;
    a.insert("a", json!(1));
    b.insert("b", json!(2));
    a.save().await.expect("a");
    b.save().await.expect("b");
    let now = store.load(Some(&key)).await;
    assert_eq!(
        now.get("a"),
        None,
        "Django's behaviour: b's whole view replaced a's"
    );
    assert_eq!(now.get("b"), Some(json!(2)));
}

async fn expired_sessions_are_gone<T: Tier>() {
    let Some(store) = T::open("expiry", ConflictPolicy::MergeChangedKeys).await else {
        return;
    };
    let key = seeded(&store).await;
    let mut s = store.load(Some(&key)).await;
    s.set_expiry(Some(Expiry::Seconds(-1)));
    s.save().await.expect("saved already expired");
    assert!(!store.exists(&key).await);
    assert!(store.load(Some(&key)).await.key().is_none());

    let mut t = store.load(None).await;
    t.set_expiry(Some(Expiry::Seconds(3600)));
    t.save().await.expect("create");
    let key = t.key().expect("saved").as_str().to_owned();
    assert!(store.exists(&key).await);
    assert!(store.delete(&key).await);
    assert!(!store.delete(&key).await);
}

async fn hostile_keys_get_a_fresh_session<T: Tier>() {
    let Some(store) = T::open("hostile", ConflictPolicy::MergeChangedKeys).await else {
        return;
    };
    let real = seeded(&store).await;
    let long = format!("{real}0");
    let hostile = [
        "",
        "../../etc/passwd",
        "short",
        &long,
        &real.to_uppercase(),
        "{abcdefghijklmnopqrstuvwxyz0123}",
        "*",
        "abcdefghijklmnopqrstuvwxyz01234\u{e9}",
        "abc def",
    ];
    for key in hostile {
        let mut s = store.load(Some(key)).await;
        assert!(s.key().is_none(), "{key:?} was accepted");
        assert!(!store.exists(key).await);
        assert!(!store.delete(key).await);
        s.insert("x", json!(1));
        s.save().await.expect("a fresh session saves");
        let new = s.key().expect("saved");
        assert_ne!(new.as_str(), key, "the client chose its key");
    }
    assert_eq!(store.load(Some(&real)).await.get("seed"), Some(json!(true)));
}

async fn a_panicking_update_changes_nothing<T: Tier>() {
    let Some(store) = T::open("panic", ConflictPolicy::MergeChangedKeys).await else {
        return;
    };
    let key = seeded(&store).await;
    let mut s = store.load(Some(&key)).await;
    s.incr("n");
    assert!(s.panic_update("n"));
    assert_eq!(s.get("n"), Some(json!(1)));
    s.save().await.expect("save");
    assert_eq!(store.load(Some(&key)).await.get("n"), Some(json!(1)));
}
