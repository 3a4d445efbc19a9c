//! An axum app on this crate's session store, template cache and model store.
//!
//! ```text
//! cargo run --release --example app --features axum,tower-sessions -- --addr 127.0.0.1:8000
//! ```
//!
//! Routes (native session handle through `unlocked::web::axum`, cookie `sessionid`):
//!
//! * `GET /`: a page rendered from `examples/templates/` through the template cache: this
//!   session's counter, the user, and a counter shared by everyone (a model record), with a
//!   login form (or a logout button) and a button that bumps the counter.
//! * `POST /incr`: adds one to the session's counter (an update operation: replayed on the
//!   latest record if another request saved meanwhile) and to the shared model record; answers
//!   the new figures as text (for scripts and load generators).
//! * `POST /bump`: the page's counter button: the same as `/incr`, then `303 See Other` back
//!   to `/`.
//! * `GET /count`: the session's counter, as text.
//! * `POST /login` with the form body `user=NAME` (the page's login form): cycles the session
//!   key (a new cookie), stores the user, then `303 See Other` back to `/`.
//! * `POST /logout` (the page's logout button): flushes the session (deletes it; the cookie is
//!   cleared), then `303 See Other` back to `/`.
//!
//! The same tower-sessions routes twice, through tower-sessions' own `Session`: under
//! `/ours` on [`TowerStore`] (this crate's store; cookie `ours`) and under `/mem` on
//! tower-sessions' `MemoryStore` (cookie `mem`):
//!
//! * `POST /{ours,mem}/set?k=KEY&work_ms=N`: sets `KEY`, then works `N` ms (simulated I/O)
//!   before the middleware saves the session.
//! * `GET /{ours,mem}/present?n=N`: how many of the keys `k0`..`k{N-1}` the session holds.
//! * `POST /{ours,mem}/incr`: a read-modify-write counter (`get`, then `insert` plus one): the
//!   one pattern no store behind tower-sessions can make safe.
//!
//! `tests/http.rs` and `tests/browser.rs` include this file to build the same router.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, Redirect};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tower_sessions::{MemoryStore, Session, SessionManagerLayer};
use unlocked::model::{Model, ModelStore};
use unlocked::session::SessionStore;
use unlocked::template::{FileSystemLoader, MiniJinja, TemplateCache};
use unlocked::web::axum::{RequestSession, SessionLayer};
use unlocked::web::tower::TowerStore;
use unlocked::{Blocking, LockFree, Strategy};

/// The record everyone's requests increment.
#[derive(Clone, Debug)]
struct Hits {
    n: u64,
}

impl Model for Hits {
    const APP_LABEL: &'static str = "demo";
    const NAME: &'static str = "Hits";
}

struct App<S: Strategy> {
    templates: TemplateCache<MiniJinja, S>,
    hits: ModelStore<Hits, S>,
    hits_pk: u64,
}

type Failure = (StatusCode, String);

fn internal(e: impl std::fmt::Display) -> Failure {
    (StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

fn incr(v: Option<&Value>) -> Value {
    json!(v.and_then(Value::as_i64).unwrap_or(0) + 1)
}

async fn index<S: Strategy>(
    State(app): State<Arc<App<S>>>,
    session: RequestSession<S>,
) -> Result<Html<String>, Failure> {
    let (count, user) = {
        let s = session.lock();
        (
            s.get("count").cloned().unwrap_or(json!(0)),
            s.get("user").cloned(),
        )
    };
    let hits = app
        .hits
        .get(app.hits_pk)
        .ok_or_else(|| internal("hits record missing"))?;
    let ctx = json!({"count": count, "user": user, "hits": hits.n, "version": hits.version()});
    app.templates
        .render("index.html", &ctx)
        .map(Html)
        .map_err(internal)
}

/// Adds one to the session's counter and to the shared record: the new figures.
fn add_one<S: Strategy>(
    app: &App<S>,
    session: &RequestSession<S>,
) -> Result<(Value, u64), Failure> {
    let count = session
        .lock()
        .update("count", incr)
        .map_err(internal)?
        .clone();
    let hits = app
        .hits
        .update(app.hits_pk, |h| h.n += 1)
        .map_err(internal)?;
    Ok((count, hits.n))
}

async fn incr_both<S: Strategy>(
    State(app): State<Arc<App<S>>>,
    session: RequestSession<S>,
) -> Result<String, Failure> {
    let (count, hits) = add_one(&app, &session)?;
    Ok(format!("count={count} hits={hits}\n"))
}

/// The page's counter button: post, then redirect back to the page (so a reload does not post
/// again).
async fn bump<S: Strategy>(
    State(app): State<Arc<App<S>>>,
    session: RequestSession<S>,
) -> Result<Redirect, Failure> {
    add_one(&app, &session)?;
    Ok(Redirect::to("/"))
}

async fn count<S: Strategy>(session: RequestSession<S>) -> String {
    session
        .lock()
        .get("count")
        .cloned()
        .unwrap_or(json!(0))
        .to_string()
}

#[derive(Deserialize)]
struct Login {
    user: String,
}

/// The login form's body (`application/x-www-form-urlencoded`, as a browser posts it).
async fn login<S: Strategy>(
    session: RequestSession<S>,
    Form(form): Form<Login>,
) -> Result<Redirect, Failure> {
    let user = form.user.trim();
    if user.is_empty() {
        return Err((StatusCode::BAD_REQUEST, "a user name is needed\n".into()));
    }
    let mut s = session.lock();
    s.cycle_key().map_err(internal)?;
    s.insert("user", user);
    Ok(Redirect::to("/"))
}

async fn logout<S: Strategy>(session: RequestSession<S>) -> Redirect {
    session.lock().flush();
    Redirect::to("/")
}

#[derive(Deserialize)]
struct Set {
    k: String,
    #[serde(default)]
    work_ms: u64,
}

async fn ts_set(session: Session, Query(q): Query<Set>) -> Result<&'static str, Failure> {
    session.insert(&q.k, true).await.map_err(internal)?;
    // The request's other work (a database call, say) before the middleware saves.
    tokio::time::sleep(Duration::from_millis(q.work_ms)).await;
    Ok("ok\n")
}

#[derive(Deserialize)]
struct Present {
    n: usize,
}

async fn ts_present(session: Session, Query(q): Query<Present>) -> Result<String, Failure> {
    let mut present = 0;
    for i in 0..q.n {
        if session
            .get_value(&format!("k{i}"))
            .await
            .map_err(internal)?
            .is_some()
        {
            present += 1;
        }
    }
    Ok(present.to_string())
}

async fn ts_incr(session: Session) -> Result<String, Failure> {
    let n: u64 = session.get("n").await.map_err(internal)?.unwrap_or(0);
    session.insert("n", n + 1).await.map_err(internal)?;
    Ok(format!("{}\n", n + 1))
}

fn tower_routes() -> Router {
    Router::new()
        .route("/set", post(ts_set))
        .route("/present", get(ts_present))
        .route("/incr", post(ts_incr))
}

/// The app on strategy `S`: native routes, then the tower-sessions routes over both stores.
pub fn router<S: Strategy>(templates: &Path) -> Router {
    let hits = ModelStore::new();
    let hits_pk = hits.insert(Hits { n: 0 }).pk();
    let app = Arc::new(App {
        templates: TemplateCache::new(MiniJinja::new(), FileSystemLoader::new([templates])),
        hits,
        hits_pk,
    });
    // One store serves the native handles and tower-sessions (distinct cookies, distinct keys).
    let store: Arc<SessionStore<S>> = Arc::new(SessionStore::new());
    let ours = SessionManagerLayer::new(TowerStore::from_arc(Arc::clone(&store)))
        .with_name("ours")
        .with_secure(false);
    let mem = SessionManagerLayer::new(MemoryStore::default())
        .with_name("mem")
        .with_secure(false);
    Router::new()
        .route("/", get(index::<S>))
        .route("/incr", post(incr_both::<S>))
        .route("/bump", post(bump::<S>))
        .route("/count", get(count::<S>))
        .route("/login", post(login::<S>))
        .route("/logout", post(logout::<S>))
        .layer(SessionLayer::from_arc(store).secure(false))
        .with_state(app)
        .nest("/ours", tower_routes().layer(ours))
        .nest("/mem", tower_routes().layer(mem))
}

/// The example's templates.
pub fn templates_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/templates"))
}

#[allow(dead_code)] // `tests/http.rs` and `tests/browser.rs` include this file for `router` only.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut addr: SocketAddr = "127.0.0.1:8000".parse()?;
    let mut blocking = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => addr = args.next().ok_or("--addr needs a value")?.parse()?,
            "--blocking" => blocking = true,
            "--help" | "-h" => {
                println!(
                    "usage: app [--addr HOST:PORT] [--blocking]\n  --addr      where to listen \
                     (default 127.0.0.1:8000)\n  --blocking  the Blocking strategy (default LockFree)"
                );
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}; try --help").into()),
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        println!("listening on http://{}", listener.local_addr()?);
        let app = if blocking {
            router::<Blocking>(templates_dir())
        } else {
            router::<LockFree>(templates_dir())
        };
        axum::serve(listener, app).await?;
        Ok(())
    })
}
