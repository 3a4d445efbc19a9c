//! What only the Redis session store has: records edited by hand, TTLs, several stores (as
//! several processes would have) on one hot session, and faults: connections killed mid-run and
//! the server restarted. The scenarios every tier shares are in `tests/session_scenarios.rs`.
//!
//! Reads `UNLOCKED_REDIS_URL` (default `redis://127.0.0.1:6379`); without a reachable server
//! each test prints a notice and passes, unless `CI=true`, where it fails. The restart test
//! starts a `redis-server` of its own on a free port (it needs the binary on `PATH`).

#[cfg(feature = "redis")]
mod common_remote;

#[cfg(feature = "redis")]
mod suite {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use super::common_remote::{ci, notice, redis_url as url};
    use std::time::{Duration, Instant};

    use redis::AsyncCommands;
    use serde_json::{Value, json};
    use unlocked::session::{
        ConflictPolicy, Expiry, RedisSessionStore, RedisSessionStoreBuilder, SaveError, StoreError,
    };

    fn prefix(test: &str) -> String {
        super::common_remote::unique(test, ":")
    }

    fn builder(prefix: &str) -> RedisSessionStoreBuilder {
        RedisSessionStore::builder()
            .prefix(prefix)
            .default_age(Duration::from_secs(600))
    }

    /// A raw connection for editing records by hand, or `None` (after a notice) without a
    /// server; fails under CI.
    async fn raw(url: &str) -> Option<redis::aio::MultiplexedConnection> {
        let conn = async {
            redis::Client::open(url)?
                .get_multiplexed_async_connection()
                .await
        }
        .await;
        match conn {
            Ok(c) => Some(c),
            Err(e) => {
                assert!(!ci(), "CI=true and Redis at {url} is unreachable: {e}");
                notice(&format!(
                    "skipping a Redis session test, {url} is unreachable ({e}); set \
                     UNLOCKED_REDIS_URL or run ci/redis.sh"
                ));
                None
            }
        }
    }

    fn plus_one(v: Option<&Value>) -> Value {
        json!(v.and_then(Value::as_i64).unwrap_or(0) + 1)
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .expect("runtime")
    }

    /// A session created through the store; its key and Redis key.
    async fn seeded(store: &RedisSessionStore) -> (String, String) {
        let mut s = store.load(None).await.expect("load");
        s.insert("seed", 1);
        s.save().await.expect("create");
        let key = s.session_key().expect("saved").as_str().to_owned();
        let rkey = format!("{}{{{key}}}", store.prefix());
        (key, rkey)
    }

    #[test]
    fn records_edited_by_hand_give_typed_errors() {
        rt().block_on(async {
            let Some(mut raw) = raw(&url()).await else {
                return;
            };
            let p = prefix("corrupt");
            let store = builder(&p)
                .max_encoded_len(64)
                .connect(&url())
                .await
                .expect("connect");
            let cases: [(&str, &[u8], &str); 7] = [
                ("v", b"seven", "`v`"),
                ("t", b"soon", "`t`"),
                ("x", b"q", "`x`"),
                ("x", b"s1e3", "`x`"),
                ("d", b"{not json", "`d`"),
                ("d", b"[1, 2]", "`d`"),
                ("d", &[b' '; 65], "`d`"),
            ];
            for (field, value, named) in cases {
                let (key, rkey) = seeded(&store).await;
                let mut stale = store.load(Some(&key)).await.expect("load");
                let _: () = raw.hset(&rkey, field, value).await.expect("hset");
                match store.load(Some(&key)).await {
                    Err(StoreError::Corrupt { key: k, message }) => {
                        assert_eq!(k.as_str(), key);
                        assert!(message.contains(named), "{field}: {message}");
                    }
                    other => panic!("{field}={value:?}: expected Corrupt, got {other:?}"),
                }
                if field != "v" {
                    // A save meeting the corrupt record (its version moved on) reports it too.
                    let _: () = raw.hset(&rkey, "v", "2").await.expect("hset");
                    stale.update("n", plus_one).expect("update");
                    match stale.save().await {
                        Err(SaveError::Store(StoreError::Corrupt { .. })) => {}
                        other => panic!("{field}: expected a corrupt-record error, got {other:?}"),
                    }
                    // The record was left as it was.
                    let v: String = raw.hget(&rkey, "v").await.expect("hget");
                    assert_eq!(v, "2");
                }
            }
            // A field missing; a key of another type under the prefix.
            let (key, rkey) = seeded(&store).await;
            let _: () = raw.hdel(&rkey, "d").await.expect("hdel");
            assert!(matches!(
                store.load(Some(&key)).await,
                Err(StoreError::Corrupt { .. })
            ));
            let (key, rkey) = seeded(&store).await;
            let _: () = raw.del(&rkey).await.expect("del");
            let _: () = raw.set(&rkey, "a string").await.expect("set");
            match store.load(Some(&key)).await {
                Err(StoreError::Server { message }) => {
                    assert!(message.contains("WRONGTYPE"), "{message}")
                }
                other => panic!("expected a server error, got {other:?}"),
            }
            // Oversized data is refused before a byte is sent.
            let mut s = store.load(None).await.expect("load");
            s.insert("big", "x".repeat(100));
            assert!(matches!(
                s.save().await,
                Err(SaveError::Store(StoreError::Encode(_)))
            ));
            assert!(s.session_key().is_none());
        });
    }

    #[test]
    fn settings_are_checked_before_connecting() {
        rt().block_on(async {
            for bad in ["has space", "a{b", "b}", "caf\u{e9}"] {
                match RedisSessionStore::builder()
                    .prefix(bad)
                    .connect(&url())
                    .await
                {
                    Err(StoreError::InvalidSetting { setting, .. }) => {
                        assert_eq!(setting, "prefix")
                    }
                    other => panic!("{bad:?}: {other:?}"),
                }
            }
            match RedisSessionStore::connect("redis://127.0.0.1:1").await {
                Err(e @ StoreError::Connection { .. }) => assert!(e.is_transient()),
                other => panic!("expected a connection error, got {other:?}"),
            }
        });
    }

    #[test]
    fn expiry_is_the_record_ttl() {
        rt().block_on(async {
            let Some(mut raw) = raw(&url()).await else {
                return;
            };
            let store = builder(&prefix("ttl"))
                .connect(&url())
                .await
                .expect("connect");
            let (key, rkey) = seeded(&store).await;
            let ttl: i64 = raw.pttl(&rkey).await.expect("pttl");
            assert!((590_000..=600_001).contains(&ttl), "default age: {ttl} ms");
            let mut s = store.load(Some(&key)).await.expect("load");
            s.set_expiry(Expiry::Seconds(30));
            s.save().await.expect("save");
            let ttl: i64 = raw.pttl(&rkey).await.expect("pttl");
            assert!((29_000..=30_001).contains(&ttl), "custom expiry: {ttl} ms");
            let again = store.load(Some(&key)).await.expect("load");
            assert_eq!(again.expiry(), Some(Expiry::Seconds(30)));
            // At-browser-close keeps the default age in the store; an instant round-trips.
            let at = time::OffsetDateTime::now_utc() + time::Duration::minutes(5);
            let mut s = again;
            s.set_expiry(Expiry::At(at));
            s.save().await.expect("save");
            let back = store.load(Some(&key)).await.expect("load");
            assert_eq!(back.expiry(), Some(Expiry::At(at)));
        });
    }

    /// Four stores (four connections, as four worker processes have), 8 tasks each, on one
    /// session, escalating after one conflict: every increment counts, nothing fails, no lock
    /// is left behind.
    #[test]
    fn several_stores_on_one_hot_session_lose_nothing() {
        rt().block_on(async {
            let Some(mut raw) = raw(&url()).await else {
                return;
            };
            let p = prefix("hot");
            let mut stores = Vec::new();
            for _ in 0..4 {
                stores.push(
                    builder(&p)
                        .escalate_after(1)
                        .connect(&url())
                        .await
                        .expect("connect"),
                );
            }
            let (key, rkey) = seeded(&stores[0]).await;
            const EACH: u64 = 25;
            let mut tasks = Vec::new();
            for store in &stores {
                for _ in 0..8 {
                    let (store, key) = (store.clone(), key.clone());
                    tasks.push(tokio::spawn(async move {
                        for _ in 0..EACH {
                            let mut s = store.load(Some(&key)).await.expect("load");
                            s.update("hits", plus_one).expect("update");
                            s.save().await.expect("never fails for contention");
                        }
                    }));
                }
            }
            let n = tasks.len() as u64;
            for t in tasks {
                t.await.expect("task");
            }
            let s = stores[1].load(Some(&key)).await.expect("load");
            assert_eq!(s.get("hits"), Some(&json!(n * EACH)));
            let escalations: u64 = stores.iter().map(|s| s.stats().escalations).sum();
            let conflicts: u64 = stores.iter().map(|s| s.stats().conflicts).sum();
            assert!(
                conflicts > 0 && escalations > 0,
                "no contention: {conflicts} conflicts, {escalations} escalations"
            );
            let locks: i64 = raw.exists(format!("{rkey}:lock")).await.expect("exists");
            assert_eq!(locks, 0, "an escalation lock was left behind");
        });
    }

    /// The store's connection is killed every 25 ms (`CLIENT KILL ID`) while 8 tasks
    /// increment one counter: each save returns `Ok` (acknowledged), a typed error, or
    /// `InDoubt`; every acknowledged increment is stored and none is applied twice:
    /// `acknowledged <= stored <= acknowledged + in doubt`.
    #[test]
    fn killed_connections_lose_no_acknowledged_save() {
        rt().block_on(async {
            let Some(mut raw) = raw(&url()).await else {
                return;
            };
            let p = prefix("kill");
            // The store connects as a user of its own, so the killer can aim at its connection
            // alone (`CLIENT KILL USER`), whatever else uses the server.
            let user = format!("unlocked-kill-{}", std::process::id());
            let _: () = redis::cmd("ACL")
                .arg(&[
                    "SETUSER",
                    &user,
                    "reset",
                    "on",
                    ">unlocked-test",
                    "~*",
                    "&*",
                    "+@all",
                ])
                .query_async(&mut raw)
                .await
                .expect("acl setuser");
            let user_url = url().replacen("redis://", &format!("redis://{user}:unlocked-test@"), 1);
            let store = builder(&p)
                .escalate_after(2)
                .connect(&user_url)
                .await
                .expect("connect");
            let (key, _) = seeded(&store).await;
            let stop = Arc::new(AtomicBool::new(false));
            let kills = Arc::new(AtomicU64::new(0));
            let killer = {
                let (stop, kills, user) = (Arc::clone(&stop), Arc::clone(&kills), user.clone());
                let mut raw = raw.clone();
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(25)).await;
                        let killed: i64 = redis::cmd("CLIENT")
                            .arg(&["KILL", "USER", &user])
                            .query_async(&mut raw)
                            .await
                            .expect("client kill");
                        kills.fetch_add(killed as u64, Ordering::Relaxed);
                    }
                })
            };
            let acked = Arc::new(AtomicU64::new(0));
            let in_doubt = Arc::new(AtomicU64::new(0));
            let failed = Arc::new(AtomicU64::new(0));
            let deadline = Instant::now() + Duration::from_millis(2500);
            let mut tasks = Vec::new();
            for _ in 0..8 {
                let (store, key) = (store.clone(), key.clone());
                let (acked, in_doubt, failed) = (
                    Arc::clone(&acked),
                    Arc::clone(&in_doubt),
                    Arc::clone(&failed),
                );
                tasks.push(tokio::spawn(async move {
                    while Instant::now() < deadline {
                        let mut s = match store.load(Some(&key)).await {
                            Ok(s) => s,
                            Err(e) => {
                                assert!(e.is_transient(), "{e}");
                                failed.fetch_add(1, Ordering::Relaxed);
                                continue;
                            }
                        };
                        assert!(s.session_key().is_some(), "the session vanished");
                        s.update("hits", plus_one).expect("update");
                        match s.save().await {
                            Ok(()) => acked.fetch_add(1, Ordering::Relaxed),
                            Err(SaveError::Store(StoreError::InDoubt { .. })) => {
                                in_doubt.fetch_add(1, Ordering::Relaxed)
                            }
                            Err(SaveError::Store(e)) if e.is_transient() => {
                                failed.fetch_add(1, Ordering::Relaxed)
                            }
                            Err(e) => panic!("unexpected save error: {e}"),
                        };
                    }
                }));
            }
            for t in tasks {
                t.await.expect("task");
            }
            stop.store(true, Ordering::Relaxed);
            killer.await.expect("killer");
            // The store reconnects by itself.
            let s = store.load(Some(&key)).await.expect("load after the faults");
            let stored = s.get("hits").and_then(Value::as_u64).unwrap_or(0);
            let (acked, in_doubt, failed) = (
                acked.load(Ordering::Relaxed),
                in_doubt.load(Ordering::Relaxed),
                failed.load(Ordering::Relaxed),
            );
            let kills = kills.load(Ordering::Relaxed);
            let stats = store.stats();
            notice(&format!(
                "redis kill test: {kills} connections killed, {acked} saves acknowledged, \
                 {in_doubt} in doubt, {failed} failed (typed, transient), {stored} stored; \
                 {stats:?}"
            ));
            // Whether a kill lands mid-write is timing: some runs settle writes, some do not
            // (the settling path itself is pinned by `a_save_whose_reply_was_lost_…` below).
            assert_eq!(
                stats.saves,
                acked + 1,
                "the seeded create and every acknowledged save"
            );
            let _: Result<(), _> = redis::cmd("ACL")
                .arg(&["DELUSER", &user])
                .query_async(&mut raw)
                .await;
            assert!(kills >= 10, "only {kills} kills");
            assert!(acked > 0);
            assert!(
                acked <= stored && stored <= acked + in_doubt,
                "acknowledged {acked}, in doubt {in_doubt}, stored {stored}"
            );
        });
    }

    /// A `redis-server` of the test's own on a free port, stopped and started again: calls
    /// while it is down return typed connection errors; afterwards the same store works again
    /// by itself. The server persists nothing, so sessions from before the restart are gone:
    /// a save of one is `Gone`, never a resurrection.
    #[test]
    fn the_store_survives_a_server_restart() {
        let Some(server) = which("redis-server") else {
            assert!(!ci(), "CI=true and redis-server is not on PATH");
            notice("skipping the Redis restart test: redis-server is not on PATH");
            return;
        };
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let start = || {
            std::process::Command::new(&server)
                .args([
                    "--port",
                    &port.to_string(),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .args(["--bind", "127.0.0.1"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("start redis-server")
        };
        let url = format!("redis://127.0.0.1:{port}");
        let mut child = start();
        rt().block_on(async {
            let store = wait_for(|| builder(&prefix("restart")).connect(&url)).await;
            let (key, _) = seeded(&store).await;
            let mut before = store.load(Some(&key)).await.expect("load");
            child.kill().expect("stop");
            child.wait().expect("wait");
            match store.load(Some(&key)).await {
                Err(e @ StoreError::Connection { .. }) => assert!(e.is_transient()),
                other => panic!("server down: expected a connection error, got {other:?}"),
            }
            before.insert("x", 1);
            match before.save().await {
                Err(SaveError::Store(e)) => assert!(e.is_transient(), "{e}"),
                other => panic!("server down: expected a store error, got {other:?}"),
            }
            child = start();
            // Same store, no reconnect call: it finds the server again by itself.
            let deadline = Instant::now() + Duration::from_secs(10);
            let fresh = loop {
                match store.load(Some(&key)).await {
                    Ok(s) => break s,
                    Err(e) => {
                        assert!(e.is_transient(), "{e}");
                        assert!(Instant::now() < deadline, "no reconnect: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            };
            assert!(
                fresh.session_key().is_none(),
                "the restarted server persists nothing"
            );
            assert!(matches!(before.save().await, Err(SaveError::Gone { .. })));
            let (key, _) = seeded(&store).await;
            assert!(store.exists(&key).await.expect("exists"));
        });
        let _ = child.kill();
        let _ = child.wait();
    }

    async fn wait_for<F, Fut>(connect: F) -> RedisSessionStore
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<RedisSessionStore, StoreError>>,
    {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match connect().await {
                Ok(s) => return s,
                Err(e) => {
                    assert!(Instant::now() < deadline, "redis-server did not start: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn which(binary: &str) -> Option<std::path::PathBuf> {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(binary))
                .find(|p| p.is_file())
        })
    }

    /// A TCP proxy to Redis that, when `cut` is set, lets the next reply's bytes go nowhere and
    /// closes the client's connection instead: the command ran, the client never hears.
    async fn cutting_proxy(upstream: String, cut: Arc<AtomicBool>) -> std::net::SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let cut = Arc::clone(&cut);
                tokio::spawn(async move {
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let up = tokio::spawn(async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        while let Ok(n @ 1..) = cr.read(&mut buf).await {
                            if sw.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    });
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n @ 1..) = sr.read(&mut buf).await {
                        if cut.swap(false, Ordering::SeqCst) {
                            break; // drop the reply and the client's connection
                        }
                        if cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    up.abort();
                });
            }
        });
        addr
    }

    /// A save whose script ran but whose reply was lost (the connection closed right after):
    /// the store finds its token in the record, answers `Ok`, and does not apply it twice.
    #[test]
    fn a_save_whose_reply_was_lost_is_settled_as_landed() {
        rt().block_on(async {
            if raw(&url()).await.is_none() {
                return;
            }
            let upstream = url()
                .trim_start_matches("redis://")
                .rsplit('@')
                .next()
                .unwrap_or("127.0.0.1:6379")
                .trim_end_matches('/')
                .to_owned();
            let cut = Arc::new(AtomicBool::new(false));
            let proxy = cutting_proxy(upstream, Arc::clone(&cut)).await;
            let store = builder(&prefix("lost-reply"))
                .connect(&format!("redis://{proxy}"))
                .await
                .expect("connect through the proxy");
            let (key, _) = seeded(&store).await;
            let mut s = store.load(Some(&key)).await.expect("load");
            s.update("n", plus_one).expect("update");
            s.save().await.expect("first save (loads the script)");
            let before = store.stats();
            s.update("n", plus_one).expect("update");
            cut.store(true, Ordering::SeqCst);
            s.save()
                .await
                .expect("a save whose reply was lost still succeeds");
            assert!(!cut.load(Ordering::SeqCst), "the proxy never cut");
            let after = store.stats();
            assert_eq!(after.settled_landed, before.settled_landed + 1, "{after:?}");
            let now = store.load(Some(&key)).await.expect("load");
            assert_eq!(now.get("n"), Some(&json!(2)), "applied twice or lost");
            assert_eq!(now.loaded_version(), Some(3));
            assert_eq!(s.loaded_version(), Some(3));

            // The same for a create.
            let mut fresh = store.load(None).await.expect("load");
            fresh.insert("k", 1);
            cut.store(true, Ordering::SeqCst);
            fresh
                .save()
                .await
                .expect("a create whose reply was lost still succeeds");
            let key = fresh.session_key().expect("created").as_str().to_owned();
            assert_eq!(
                store.load(Some(&key)).await.expect("load").get("k"),
                Some(&json!(1))
            );
            assert_eq!(store.stats().settled_landed, before.settled_landed + 2);
        });
    }

    /// A lock left by a crashed writer: a save waits for its lease to run out, then writes;
    /// with a shorter `lock_wait` it gives up with `Busy` and writes nothing.
    #[test]
    fn a_dead_writers_lock_expires_with_its_lease() {
        rt().block_on(async {
            let Some(mut raw) = raw(&url()).await else {
                return;
            };
            let store = builder(&prefix("lease"))
                .lock_wait(Duration::from_millis(150))
                .connect(&url())
                .await
                .expect("connect");
            let (key, rkey) = seeded(&store).await;
            let lkey = format!("{rkey}:lock");
            let _: () = redis::cmd("SET")
                .arg(&lkey)
                .arg("dead-writer")
                .arg("PX")
                .arg(5000)
                .query_async(&mut raw)
                .await
                .expect("set");
            let mut s = store.load(Some(&key)).await.expect("load");
            s.update("n", plus_one).expect("update");
            match s.save().await {
                Err(SaveError::Store(e @ StoreError::Busy { .. })) => assert!(e.is_transient()),
                other => panic!("expected Busy, got {other:?}"),
            }
            assert_eq!(s.loaded_version(), Some(1), "the handle kept its base");
            assert_eq!(
                store.load(Some(&key)).await.expect("load").loaded_version(),
                Some(1),
                "a refused save wrote"
            );
            // The lease runs out: the same save goes through, no sooner. The second store
            // connects and loads while the lock still has seconds to live.
            let waiting = builder(store.prefix())
                .connect(&url())
                .await
                .expect("connect");
            let mut s = waiting.load(Some(&key)).await.expect("load");
            s.update("n", plus_one).expect("update");
            let lease_set = Instant::now();
            let _: () = redis::cmd("PEXPIRE")
                .arg(&lkey)
                .arg(300)
                .query_async(&mut raw)
                .await
                .expect("pexpire");
            s.save().await.expect("saved once the lease ran out");
            assert!(
                lease_set.elapsed() >= Duration::from_millis(250),
                "{:?}",
                lease_set.elapsed()
            );
            assert!(waiting.stats().escalations >= 1);
            let now = waiting.load(Some(&key)).await.expect("load");
            assert_eq!(now.get("n"), Some(&json!(1)));
            let left: i64 = raw.exists(&lkey).await.expect("exists");
            assert_eq!(left, 0, "the waiter's own lock was left behind");
        });
    }

    #[test]
    fn reject_policy_across_stores() {
        rt().block_on(async {
            if raw(&url()).await.is_none() {
                return;
            }
            let p = prefix("reject2");
            let a = builder(&p)
                .conflict_policy(ConflictPolicy::Reject)
                .connect(&url())
                .await
                .expect("connect");
            let b = builder(&p)
                .conflict_policy(ConflictPolicy::Reject)
                .connect(&url())
                .await
                .expect("connect");
            let (key, _) = seeded(&a).await;
            let mut x = a.load(Some(&key)).await.expect("load");
            let mut y = b.load(Some(&key)).await.expect("load");
            x.insert("k", 1);
            y.insert("k", 2);
            x.save().await.expect("first");
            assert!(matches!(y.save().await, Err(SaveError::Conflict { .. })));
            // The refused handle kept its change and can be redone on a fresh load.
            assert_eq!(y.get("k"), Some(&json!(2)));
        });
    }
}

/// Runs in every build.
#[test]
fn store_errors_say_what_to_do() {
    use unlocked::session::{SessionKey, StoreError};
    let key = SessionKey::generate();
    let e = StoreError::InDoubt {
        key,
        message: "connection reset".into(),
    };
    assert!(e.is_transient());
    assert!(e.to_string().contains("load the session again"), "{e}");
    let e = StoreError::Corrupt {
        key,
        message: "field `d` (data): not JSON".into(),
    };
    assert!(!e.is_transient());
    assert!(e.to_string().contains("delete it"), "{e}");
    #[cfg(not(feature = "redis"))]
    {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "notice: the Redis session tests need `--features redis` (run ci/redis.sh)"
        );
    }
}
