//! The web glue over Redis sessions: `TowerStore::redis` (tower-sessions' `SessionStore`) and
//! `SessionLayer::redis` (the native handle in axum), served on 127.0.0.1 and driven by a real
//! HTTP client with many concurrent requests sharing one cookie.
//!
//! Needs features `redis`, `axum` and `tower-sessions` (`cargo test --all-features --test
//! http_redis`) and a Redis at `UNLOCKED_REDIS_URL` (default `redis://127.0.0.1:6379`);
//! without one each test prints a notice and passes, unless `CI=true`, where it fails.

#![cfg(all(feature = "redis", feature = "axum", feature = "tower-sessions"))]

mod common_remote;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common_remote::redis_url as url;

use axum::Router;
use axum::http::{Method, Request, StatusCode};
use axum::routing::{get, post};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tower_sessions::session::{Id, Record};
use tower_sessions::{Session, SessionManagerLayer, SessionStore as _};
use unlocked::session::{RedisSessionStore, StoreError};
use unlocked::web::axum::{Redis, RequestSession, SessionLayer};
use unlocked::web::tower::{BASE_KEY, TowerStore};

const N: usize = 100;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn prefix(test: &str) -> String {
    common_remote::unique(test, ":")
}

/// A store under a fresh prefix, or `None` (after a notice) without a server; fails under CI.
async fn store(test: &str) -> Option<RedisSessionStore> {
    let url = url();
    match RedisSessionStore::builder()
        .prefix(&prefix(test))
        .default_age(Duration::from_secs(600))
        .connect(&url)
        .await
    {
        Ok(s) => Some(s),
        Err(e) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true and Redis at {url} is unreachable: {e}"
            );
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "notice: skipping a Redis web test, {url} is unreachable ({e}); run ci/redis.sh"
            );
            None
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

struct Reply {
    status: StatusCode,
    cookie: Option<String>,
    raw_cookies: Vec<String>,
    body: String,
}

async fn send(client: &HttpClient, addr: SocketAddr, path: &str, cookie: Option<&str>) -> Reply {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(format!("http://{addr}{path}"));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let resp = client
        .request(req.body(Full::default()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let raw_cookies: Vec<String> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let cookie = raw_cookies
        .first()
        .map(|c| c.split(';').next().unwrap().to_owned());
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        cookie,
        raw_cookies,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn all_ok(client: &HttpClient, addr: SocketAddr, cookie: &str, paths: Vec<String>) {
    let mut set = JoinSet::new();
    for path in paths {
        let (client, cookie) = (client.clone(), cookie.to_owned());
        set.spawn(async move { send(&client, addr, &path, Some(&cookie)).await });
    }
    while let Some(reply) = set.join_next().await {
        let reply = reply.unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }
}

fn plus_one(v: Option<&Value>) -> Value {
    json!(v.and_then(Value::as_i64).unwrap_or(0) + 1)
}

/// The native handle over Redis: `N` concurrent increments with one cookie all count; login
/// cycles the key; logout deletes the session and clears the cookie.
#[test]
fn native_layer_over_redis_loses_nothing() {
    runtime().block_on(async {
        let Some(store) = store("native").await else {
            return;
        };
        let router = Router::new()
            .route(
                "/incr",
                post(|s: RequestSession<Redis>| async move {
                    s.lock().update("hits", plus_one).unwrap().to_string()
                }),
            )
            .route(
                "/count",
                post(|s: RequestSession<Redis>| async move {
                    s.lock()
                        .get("hits")
                        .cloned()
                        .unwrap_or(json!(0))
                        .to_string()
                }),
            )
            .route(
                "/login",
                post(|s: RequestSession<Redis>| async move {
                    s.lock().insert("user", "alice");
                    s.cycle_key().await.map_err(|e| e.to_string())
                }),
            )
            .route(
                "/logout",
                post(|s: RequestSession<Redis>| async move {
                    s.flush().await.map_err(|e| e.to_string())
                }),
            )
            .layer(SessionLayer::redis(store.clone()).secure(false));
        let addr = serve(router).await;
        let client = client();
        let first = send(&client, addr, "/incr", None).await;
        assert_eq!(first.status, StatusCode::OK);
        let cookie = first.cookie.expect("a new session sets its cookie");
        all_ok(
            &client,
            addr,
            &cookie,
            (1..N).map(|_| "/incr".into()).collect(),
        )
        .await;
        let count = send(&client, addr, "/count", Some(&cookie)).await;
        assert_eq!(count.body, N.to_string(), "increments lost");

        let login = send(&client, addr, "/login", Some(&cookie)).await;
        assert_eq!(login.status, StatusCode::OK, "{}", login.body);
        let new = login.cookie.expect("login sets a new cookie");
        assert_ne!(new, cookie, "cycle_key kept the key");
        let old_key = cookie.trim_start_matches("sessionid=");
        assert!(
            !store.exists(old_key).await.unwrap(),
            "old key still stored"
        );
        let count = send(&client, addr, "/count", Some(&new)).await;
        assert_eq!(count.body, N.to_string(), "the data did not move");

        let out = send(&client, addr, "/logout", Some(&new)).await;
        assert_eq!(out.status, StatusCode::OK, "{}", out.body);
        assert!(
            out.raw_cookies.iter().any(|c| c.contains("Max-Age=0")),
            "{:?}",
            out.raw_cookies
        );
        let new_key = new.trim_start_matches("sessionid=");
        assert!(!store.exists(new_key).await.unwrap());
    });
}

/// A store that cannot answer: the layer answers 503 without calling the handler.
#[test]
fn unreachable_store_answers_503() {
    let Some(server) = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("redis-server"))
            .find(|p| p.is_file())
    }) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and redis-server is not on PATH"
        );
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(server)
        .args([
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    runtime().block_on(async {
        let url = format!("redis://127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let store = loop {
            match RedisSessionStore::builder()
                .timeouts(Duration::from_millis(300), Duration::from_millis(300))
                .retries(1)
                .connect(&url)
                .await
            {
                Ok(s) => break s,
                Err(e) => {
                    assert!(std::time::Instant::now() < deadline, "{e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        let called = std::sync::Arc::new(AtomicU64::new(0));
        let c = std::sync::Arc::clone(&called);
        let router = Router::new()
            .route(
                "/",
                post(move |s: RequestSession<Redis>| async move {
                    c.fetch_add(1, Ordering::Relaxed);
                    s.lock().insert("x", 1);
                }),
            )
            .layer(SessionLayer::redis(store).secure(false));
        let addr = serve(router).await;
        let client = client();
        let ok = send(&client, addr, "/", None).await;
        assert_eq!(ok.status, StatusCode::OK);
        let cookie = ok.cookie.unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        let down = send(&client, addr, "/", Some(&cookie)).await;
        assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            called.load(Ordering::Relaxed),
            1,
            "the handler ran without a session"
        );
    });
    let _ = child.kill();
}

/// tower-sessions' `Session` over `TowerStore::redis`: `N` concurrent requests each set their
/// own key on one session: all survive (a plain store keeps only the last writer's record).
#[test]
fn tower_sessions_over_redis_keeps_every_key() {
    runtime().block_on(async {
        let Some(store) = store("tower").await else {
            return;
        };
        let router = Router::new()
            .route(
                "/set/{k}",
                post(
                    |session: Session, axum::extract::Path(k): axum::extract::Path<String>| async move {
                        session.insert(&k, true).await.unwrap();
                    },
                ),
            )
            .route(
                "/present",
                get(|session: Session| async move {
                    let mut n = 0;
                    for i in 0..N {
                        if session.get::<bool>(&format!("k{i}")).await.unwrap() == Some(true) {
                            n += 1;
                        }
                    }
                    n.to_string()
                }),
            )
            .layer(SessionManagerLayer::new(TowerStore::redis(store)).with_secure(false));
        let addr = serve(router).await;
        let client = client();
        let first = send(&client, addr, "/set/k0", None).await;
        let cookie = first.cookie.expect("cookie");
        all_ok(&client, addr, &cookie, (1..N).map(|i| format!("/set/k{i}")).collect()).await;
        let req = Request::builder()
            .uri(format!("http://{addr}/present"))
            .header("cookie", &cookie)
            .body(Full::default())
            .unwrap();
        let body = client.request(req).await.unwrap().into_body().collect().await.unwrap();
        let present: usize = String::from_utf8(body.to_bytes().to_vec()).unwrap().parse().unwrap();
        assert_eq!(present, N, "keys lost");
    });
}

fn record(id: i128) -> Record {
    Record {
        id: Id(id),
        data: Default::default(),
        expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
    }
}

/// `TowerStore::redis` called directly: merge, removals, no resurrection, the create re-roll,
/// expired records hidden, a corrupt record is no session.
#[test]
fn tower_store_contract_over_redis() {
    runtime().block_on(async {
        let Some(native) = store("towerc").await else {
            return;
        };
        let store = TowerStore::redis(native.clone());
        let mut r = record(42);
        r.data.insert("keep".into(), 1.into());
        r.data.insert("drop".into(), 2.into());
        store.create(&mut r).await.unwrap();
        assert_eq!(r.id, Id(42));
        assert!(r.data.contains_key(BASE_KEY));

        let mut a = store.load(&r.id).await.unwrap().unwrap();
        let mut b = store.load(&r.id).await.unwrap().unwrap();
        a.data.insert("x".into(), "a".into());
        a.data.remove("drop");
        b.data.insert("y".into(), "b".into());
        b.data.insert("keep".into(), 10.into());
        store.save(&a).await.unwrap();
        store.save(&b).await.unwrap();
        let now = store.load(&r.id).await.unwrap().unwrap();
        assert_eq!(now.data.get("x"), Some(&"a".into()));
        assert_eq!(now.data.get("y"), Some(&"b".into()));
        assert_eq!(now.data.get("keep"), Some(&10.into()));
        assert!(!now.data.contains_key("drop"));
        // Natively visible under the mapped key.
        let key = unlocked::web::tower::key_for(r.id);
        let n = native.load(Some(key.as_str())).await.unwrap();
        assert_eq!(n.get("y"), Some(&"b".into()));

        store.delete(&r.id).await.unwrap();
        assert!(store.save(&now).await.is_err(), "resurrected");
        assert!(store.load(&r.id).await.unwrap().is_none());

        let mut taken = record(7);
        store.create(&mut taken).await.unwrap();
        let mut again = record(7);
        store.create(&mut again).await.unwrap();
        assert_ne!(again.id, Id(7), "an id collision was not re-rolled");

        let mut old = record(9);
        old.expiry_date = time::OffsetDateTime::now_utc() - time::Duration::seconds(1);
        store.create(&mut old).await.unwrap();
        assert!(store.load(&old.id).await.unwrap().is_none());

        // A record edited by hand into garbage: tower-sessions sees no session.
        let mut c = record(11);
        store.create(&mut c).await.unwrap();
        let mut raw = redis::Client::open(url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let rkey = format!(
            "{}{{{}}}",
            native.prefix(),
            unlocked::web::tower::key_for(c.id).as_str()
        );
        let _: () = redis::AsyncCommands::hset(&mut raw, &rkey, "d", "{garbage")
            .await
            .unwrap();
        assert!(store.load(&c.id).await.unwrap().is_none());
        assert!(matches!(
            native
                .load(Some(unlocked::web::tower::key_for(c.id).as_str()))
                .await,
            Err(StoreError::Corrupt { .. })
        ));
    });
}
