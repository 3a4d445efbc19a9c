//! The example app (`examples/app.rs`) served on 127.0.0.1 and driven by a real HTTP client
//! with many concurrent requests sharing one session cookie; plus `TowerStore` called directly.
//!
//! Needs the `axum` and `tower-sessions` features: `cargo test --all-features --test http`.

#[macro_use]
mod common;

#[path = "../examples/app.rs"]
#[allow(dead_code)]
mod app;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{Method, Request, StatusCode};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use time::{Duration, OffsetDateTime};
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tower_sessions::SessionStore as _;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::ExpiredDeletion as _;
use unlocked::Strategy;
use unlocked::session::SessionStore;
use unlocked::web::tower::{BASE_KEY, TowerStore, key_for};

/// Concurrent requests per scenario (one cookie).
const N: usize = 200;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// The app on a random free port; stops when dropped.
struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn serve<S: Strategy>() -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel();
    let router = app::router::<S>(app::templates_dir());
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    Server {
        addr,
        stop: Some(stop),
    }
}

struct Reply {
    status: StatusCode,
    /// `name=value` of every `Set-Cookie`.
    cookies: Vec<String>,
    /// Every `Set-Cookie`, attributes included.
    raw_cookies: Vec<String>,
    body: String,
}

impl Reply {
    fn cookie(&self, name: &str) -> Option<String> {
        self.cookies
            .iter()
            .find(|c| c.starts_with(&format!("{name}=")))
            .cloned()
    }
}

async fn send(
    client: &HttpClient,
    addr: SocketAddr,
    method: Method,
    path: &str,
    cookie: Option<&str>,
) -> Reply {
    send_body(client, addr, method, path, cookie, None).await
}

/// `send` with a body: `Some(form)` posts `form` as `application/x-www-form-urlencoded`, as a
/// browser's form does.
async fn send_body(
    client: &HttpClient,
    addr: SocketAddr,
    method: Method,
    path: &str,
    cookie: Option<&str>,
    form: Option<&str>,
) -> Reply {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let body = match form {
        Some(form) => {
            req = req.header("content-type", "application/x-www-form-urlencoded");
            Full::new(Bytes::from(form.to_owned()))
        }
        None => Full::default(),
    };
    let resp = client.request(req.body(body).unwrap()).await.unwrap();
    let status = resp.status();
    let raw_cookies: Vec<String> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let cookies = raw_cookies
        .iter()
        .map(|c| c.split(';').next().unwrap().to_owned())
        .collect();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        cookies,
        raw_cookies,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends `paths` all at once with `cookie`; every reply must be 200.
async fn concurrently(client: &HttpClient, addr: SocketAddr, cookie: &str, paths: Vec<String>) {
    let mut set = JoinSet::new();
    for path in paths {
        let (client, cookie) = (client.clone(), cookie.to_owned());
        set.spawn(async move { send(&client, addr, Method::POST, &path, Some(&cookie)).await });
    }
    while let Some(reply) = set.join_next().await {
        let reply = reply.unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// (1) `N` concurrent increments through our extractor, one cookie: none is lost.
fn native_counter_loses_nothing<S: Strategy>() {
    runtime().block_on(async {
        let server = serve::<S>().await;
        let client = client();
        let first = send(&client, server.addr, Method::POST, "/incr", None).await;
        assert_eq!(first.status, StatusCode::OK);
        let cookie = first
            .cookie("sessionid")
            .expect("a new session sets its cookie");
        let paths = (1..N).map(|_| "/incr".to_owned()).collect();
        concurrently(&client, server.addr, &cookie, paths).await;
        let count = send(&client, server.addr, Method::GET, "/count", Some(&cookie)).await;
        assert_eq!(count.body, N.to_string(), "increments lost");
        // The page renders through the template cache with the same figures.
        let page = send(&client, server.addr, Method::GET, "/", Some(&cookie)).await;
        assert!(
            page.body
                .contains(&format!("<strong id=\"count\">{N}</strong>")),
            "{}",
            page.body
        );
    });
}

/// Login cycles the key (the old cookie is worthless), logout deletes the session and clears
/// the cookie.
fn login_cycles_and_logout_flushes<S: Strategy>() {
    runtime().block_on(async {
        let server = serve::<S>().await;
        let client = client();
        let (addr, post) = (server.addr, Method::POST);
        let old = send(&client, addr, post.clone(), "/incr", None).await;
        let old = old.cookie("sessionid").unwrap();
        // The page's login form: the name in the form body, not the query string.
        let form = Some("user=ann");
        let login = send_body(&client, addr, post.clone(), "/login", Some(&old), form).await;
        assert_eq!(login.status, StatusCode::SEE_OTHER, "{}", login.body);
        let new = login.cookie("sessionid").expect("login sets a new cookie");
        assert_ne!(new, old);
        let count = |c: String| {
            let client = client.clone();
            async move {
                send(&client, addr, Method::GET, "/count", Some(&c))
                    .await
                    .body
            }
        };
        assert_eq!(
            count(new.clone()).await,
            "1",
            "data kept across the key change"
        );
        assert_eq!(count(old).await, "0", "the pre-login key still works");
        let page = send(&client, addr, Method::GET, "/", Some(&new)).await;
        assert!(
            page.body.contains(r#"Hello, <span id="user">ann</span>!"#),
            "{}",
            page.body
        );
        let logout = send(&client, addr, post, "/logout", Some(&new)).await;
        assert_eq!(logout.status, StatusCode::SEE_OTHER, "{}", logout.body);
        assert_eq!(logout.cookie("sessionid").as_deref(), Some("sessionid="));
        assert_eq!(count(new).await, "0", "the session survived logout");
    });
}

/// (2) `N` concurrent requests, each setting its own key through tower-sessions' `Session`:
/// how many keys the session holds afterwards.
async fn keys_kept(client: &HttpClient, addr: SocketAddr, prefix: &str) -> usize {
    let first = send(
        client,
        addr,
        Method::POST,
        &format!("{prefix}/set?k=k0"),
        None,
    )
    .await;
    let cookie = first
        .cookie(&prefix[1..])
        .expect("a new session sets its cookie");
    let paths = (1..N)
        .map(|i| format!("{prefix}/set?k=k{i}&work_ms=2"))
        .collect();
    concurrently(client, addr, &cookie, paths).await;
    let present = send(
        client,
        addr,
        Method::GET,
        &format!("{prefix}/present?n={N}"),
        Some(&cookie),
    )
    .await;
    present.body.parse().unwrap()
}

fn tower_sessions_keys_all_survive<S: Strategy>() {
    runtime().block_on(async {
        let server = serve::<S>().await;
        let client = client();
        assert_eq!(keys_kept(&client, server.addr, "/ours").await, N);
        // The contrast, measured, not asserted: tower-sessions' `MemoryStore` keeps the last
        // record saved.
        let kept = keys_kept(&client, server.addr, "/mem").await;
        println!("MemoryStore ({}): {} of {N} keys lost", S::KIND, N - kept);
    });
}

/// `SessionLayer` on its own: Django's cookie defaults (and the knobs), and a save of a
/// session logged out meanwhile answers 400 without resurrecting it.
fn layer_cookie_and_interrupted_save<S: Strategy>() {
    use axum::Router;
    use axum::routing::post;
    use tokio::sync::Notify;
    use unlocked::web::axum::{RequestSession, SameSite, SessionLayer};

    runtime().block_on(async {
        let store = Arc::new(SessionStore::<S>::new());
        let (entered, go) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let (e2, g2) = (Arc::clone(&entered), Arc::clone(&go));
        let router = Router::new()
            .route(
                "/set",
                post(|s: RequestSession<S>| async move {
                    s.lock().insert("a", 1);
                }),
            )
            .route(
                "/slow",
                post(move |s: RequestSession<S>| async move {
                    s.lock().insert("b", 2);
                    e2.notify_one();
                    g2.notified().await;
                }),
            )
            .route(
                "/logout",
                post(|s: RequestSession<S>| async move { s.lock().flush() }),
            )
            .layer(
                SessionLayer::from_arc(Arc::clone(&store))
                    .cookie_name("sid")
                    .same_site(SameSite::Strict),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, router).await });
        let client = client();

        let set = send(&client, addr, Method::POST, "/set", None).await;
        let raw = &set.raw_cookies[0];
        for attr in [
            "sid=",
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Path=/",
            "Max-Age=1209600",
        ] {
            assert!(raw.contains(attr), "{attr} missing from {raw}");
        }
        let cookie = set.cookie("sid").unwrap();
        assert_eq!(store.len(), 1);

        let slow = {
            let (client, cookie) = (client.clone(), cookie.clone());
            tokio::spawn(
                async move { send(&client, addr, Method::POST, "/slow", Some(&cookie)).await },
            )
        };
        entered.notified().await;
        let logout = send(&client, addr, Method::POST, "/logout", Some(&cookie)).await;
        assert!(
            logout.raw_cookies[0].contains("Max-Age=0"),
            "{:?}",
            logout.raw_cookies
        );
        go.notify_one();
        let slow = slow.await.unwrap();
        assert_eq!(
            slow.status,
            StatusCode::BAD_REQUEST,
            "a logged-out session was saved"
        );
        assert!(store.is_empty(), "the session was resurrected");
        server.abort();
    });
}

fn record(id: i128) -> Record {
    Record {
        id: Id(id),
        data: Default::default(),
        expiry_date: OffsetDateTime::now_utc() + Duration::hours(1),
    }
}

/// `TowerStore` called directly: merge of different keys, removals, no resurrection,
/// create's re-roll, expired records hidden and swept.
fn tower_store_contract<S: Strategy>() {
    runtime().block_on(async {
        let shared = Arc::new(SessionStore::<S>::new());
        let store = TowerStore::from_arc(Arc::clone(&shared));
        let mut r = record(42);
        r.data.insert("keep".into(), 1.into());
        r.data.insert("drop".into(), 2.into());
        store.create(&mut r).await.unwrap();
        assert_eq!(r.id, Id(42));
        assert!(r.data.contains_key(BASE_KEY), "create describes its base");

        // Two loads of one version; a sets x and removes `drop`, b sets y and `keep`.
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
        assert!(
            !now.data.contains_key("drop"),
            "a's removal was undone by b's save"
        );
        // Natively visible under the mapped key, without the reserved entry.
        let native = shared.load(Some(key_for(r.id).as_str()));
        assert_eq!(native.get("y"), Some(&"b".into()));
        assert!(native.get(BASE_KEY).is_none());

        // A record without the base entry (tower-sessions' `clear`) replaces the data.
        let mut cleared = now.clone();
        cleared.data.clear();
        cleared.data.insert("only".into(), true.into());
        store.save(&cleared).await.unwrap();
        let now = store.load(&r.id).await.unwrap().unwrap();
        assert_eq!(now.data.len(), 2, "{:?}", now.data); // `only` and the base entry

        // Deleted meanwhile: the save fails instead of resurrecting it.
        store.delete(&r.id).await.unwrap();
        assert!(store.save(&now).await.is_err());
        assert!(store.load(&r.id).await.unwrap().is_none());

        // Create on a taken id draws another one.
        let mut taken = record(7);
        store.create(&mut taken).await.unwrap();
        let mut again = record(7);
        store.create(&mut again).await.unwrap();
        assert_ne!(again.id, Id(7), "an id collision was not re-rolled");
        assert!(store.load(&Id(7)).await.unwrap().is_some());
        assert!(store.load(&again.id).await.unwrap().is_some());

        // Expired records are hidden by load and removed by delete_expired.
        let mut old = record(9);
        old.expiry_date = OffsetDateTime::now_utc() - Duration::seconds(1);
        store.create(&mut old).await.unwrap();
        assert!(store.load(&old.id).await.unwrap().is_none());
        let before = shared.len();
        store.delete_expired().await.unwrap();
        assert_eq!(shared.len(), before - 1);
    });
}

strategy_tests!(
    native_counter_loses_nothing,
    login_cycles_and_logout_flushes,
    tower_sessions_keys_all_survive,
    tower_store_contract,
    layer_cookie_and_interrupted_save,
);
