//! The native session handle in axum (feature `axum`): a layer and an extractor.
//!
//! [`SessionLayer`] does what Django's `SessionMiddleware` does: it loads the session the
//! request's cookie names (an [`OwnedSession`]), lends it to the handler through the
//! [`RequestSession`] extractor, and after the handler:
//!
//! * a session that was accessed adds `Vary: Cookie`;
//! * a session that the handler found empty (an unknown or stale key) or emptied with
//!   [`flush`](crate::session::Session::flush) (logout) while the request carried a cookie gets the
//!   cookie deleted;
//! * a modified, non-empty session is [saved](crate::session::Session::save) and its cookie (re)set:
//!   a new key after [`cycle_key`](crate::session::Session::cycle_key) (login), `Max-Age` from the
//!   session's expiry, or a browser-session cookie for
//!   [`Expiry::AtBrowserClose`](crate::session::Expiry::AtBrowserClose);
//! * a save that finds the session deleted meanwhile (another request logged out) is not
//!   resurrected: the response becomes `400 Bad Request`, as Django's `SessionInterrupted`;
//!   any other save error gives `500`. A handler's 5xx response is not saved (as Django).
//!
//! Handlers get the whole native API, update operations included: an
//! [`update`](crate::session::Session::update) is replayed on the latest record if another request
//! saved the session meanwhile, so concurrent increments all count.
//!
//! ```
//! use axum::{Router, routing::post};
//! use serde_json::json;
//! use unlocked::session::SessionStore;
//! use unlocked::web::axum::{RequestSession, SessionLayer};
//!
//! async fn hit(session: RequestSession) -> String {
//!     // Lock, change, unlock: the guard cannot be held across an `.await`.
//!     let mut s = session.lock();
//!     let n = s.update("hits", |v| json!(v.and_then(|v| v.as_i64()).unwrap_or(0) + 1));
//!     n.map(|n| n.to_string()).unwrap_or_default()
//! }
//!
//! let store: SessionStore = SessionStore::new();
//! let app: Router = Router::new()
//!     .route("/hit", post(hit))
//!     .layer(SessionLayer::new(store).secure(false));
//! ```
//!
//! # Async
//!
//! The handle lives in an `Arc<Mutex<_>>` shared by the layer and the handler. Its guard is
//! not `Send`, so an async handler cannot hold it across `.await` (the compiler refuses):
//! take it, work, drop it. Over Redis ([`SessionLayer::redis`], feature `redis`), the calls
//! that need a round trip inside a handler are on the extractor itself
//! (`RequestSession<Redis>::flush` and `::cycle_key`), and the layer's load and save are one
//! round trip each; a store that cannot answer gives `503` without calling the handler. Store calls take no lock under [`LockFree`]; under
//! [`Blocking`](crate::Blocking) they hold the session module's lock for one map operation.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum_core::extract::FromRequestParts;
use axum_core::response::{IntoResponse, Response};
use cookie::Cookie;
use http::header::{COOKIE, SET_COOKIE, VARY};
use http::request::Parts;
use http::{HeaderValue, Request, StatusCode};
use parking_lot::{Mutex, MutexGuard};
use tower_layer::Layer;
use tower_service::Service;

use crate::session::SaveError;
use crate::session::SessionStore;
use crate::session::{ExpiryArgs, OwnedSession};
#[cfg(feature = "redis")]
use crate::session::{RedisSession, RedisSessionStore, StoreError};
use crate::{LockFree, Strategy};

mod sealed {
    // Public items of a private module: nameable by no one outside the crate (sealed).
    #![allow(unreachable_pub)]

    use std::fmt;
    use std::future::Future;
    use std::sync::Arc;

    use crate::session::{ExpiryArgs, SaveError, SessionKey};

    /// A session store the layer can serve: the in-memory store under a strategy, or Redis.
    pub trait Backing: Send + Sync + 'static {
        /// The store.
        type Store: fmt::Debug + Send + Sync + 'static;
        /// A request's handle.
        type Handle: Handle;
        /// Loads the session the cookie names; `Err` only when the store cannot answer (the
        /// layer then answers 503 without calling the handler).
        /// The handle keeps `store` (the request's one reference count on it).
        fn load(
            store: Arc<Self::Store>,
            key: Option<&str>,
        ) -> impl Future<Output = Result<Self::Handle, String>> + Send;
    }

    /// What the layer does with a handle after the handler.
    pub trait Handle: fmt::Debug + Send + 'static {
        /// A handle of the same store without a session (no I/O).
        fn emptied(&self) -> Self;
        fn accessed(&self) -> bool;
        fn modified(&self) -> bool;
        fn is_empty(&self) -> bool;
        fn session_key(&self) -> Option<SessionKey>;
        fn get_expire_at_browser_close(&self) -> bool;
        fn get_expiry_age(&self, args: ExpiryArgs) -> i64;
        fn save(&mut self) -> impl Future<Output = Result<(), SaveError>> + Send;
    }
}

use sealed::{Backing, Handle};

impl<S: Strategy> Backing for S {
    type Store = SessionStore<S>;
    type Handle = OwnedSession<S>;
    async fn load(
        store: Arc<SessionStore<S>>,
        key: Option<&str>,
    ) -> Result<OwnedSession<S>, String> {
        Ok(SessionStore::load_into(store, key))
    }
}

impl<S: Strategy> Handle for OwnedSession<S> {
    fn emptied(&self) -> Self {
        OwnedSession::emptied(self)
    }
    fn accessed(&self) -> bool {
        OwnedSession::accessed(self)
    }
    fn modified(&self) -> bool {
        OwnedSession::modified(self)
    }
    fn is_empty(&self) -> bool {
        OwnedSession::is_empty(self)
    }
    fn session_key(&self) -> Option<crate::session::SessionKey> {
        OwnedSession::session_key(self)
    }
    fn get_expire_at_browser_close(&self) -> bool {
        OwnedSession::get_expire_at_browser_close(self)
    }
    fn get_expiry_age(&self, args: ExpiryArgs) -> i64 {
        OwnedSession::get_expiry_age(self, args)
    }
    async fn save(&mut self) -> Result<(), SaveError> {
        OwnedSession::save(self)
    }
}

/// Selects [`RedisSessionStore`] for [`SessionLayer`] and [`RequestSession`]:
/// `SessionLayer::<Redis>::new(store)`, `RequestSession<Redis>` (feature `redis`).
#[cfg(feature = "redis")]
#[derive(Debug)]
pub enum Redis {}

#[cfg(feature = "redis")]
impl Backing for Redis {
    type Store = RedisSessionStore;
    type Handle = RedisSession;
    async fn load(
        store: Arc<RedisSessionStore>,
        key: Option<&str>,
    ) -> Result<RedisSession, String> {
        match store.load(key).await {
            Ok(s) => Ok(s),
            // Django's decode-or-empty: a record that does not decode is no session.
            Err(StoreError::Corrupt { .. }) => Ok(store.fresh()),
            Err(e) => Err(e.to_string()),
        }
    }
}

#[cfg(feature = "redis")]
impl Handle for RedisSession {
    fn emptied(&self) -> Self {
        self.store().fresh()
    }
    fn accessed(&self) -> bool {
        RedisSession::accessed(self)
    }
    fn modified(&self) -> bool {
        RedisSession::modified(self)
    }
    fn is_empty(&self) -> bool {
        RedisSession::is_empty(self)
    }
    fn session_key(&self) -> Option<crate::session::SessionKey> {
        RedisSession::session_key(self)
    }
    fn get_expire_at_browser_close(&self) -> bool {
        RedisSession::get_expire_at_browser_close(self)
    }
    fn get_expiry_age(&self, args: ExpiryArgs) -> i64 {
        RedisSession::get_expiry_age(self, args)
    }
    async fn save(&mut self) -> Result<(), SaveError> {
        RedisSession::save(self).await
    }
}

/// The cookie's `SameSite` attribute (Django's `SESSION_COOKIE_SAMESITE`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SameSite {
    /// Sent only with same-site requests.
    Strict,
    /// Also sent on top-level navigations from other sites (Django's default).
    #[default]
    Lax,
    /// Sent with every request (browsers then require `Secure`).
    None,
}

#[derive(Clone, Debug)]
struct CookieConfig {
    name: String,
    path: String,
    domain: Option<String>,
    secure: bool,
    http_only: bool,
    same_site: SameSite,
}

/// The session middleware: a tower [`Layer`] over an [`Arc`]`<`[`SessionStore`]`>`.
///
/// Cookie settings default to Django's: name `sessionid`, path `/`, `HttpOnly`,
/// `SameSite=Lax`, and `Secure` **on** (turn it off with [`secure(false)`](Self::secure) for
/// plain-HTTP development only).
pub struct SessionLayer<S: Backing = LockFree> {
    store: Arc<S::Store>,
    cookie: Arc<CookieConfig>,
}

impl<S: Backing> Clone for SessionLayer<S> {
    fn clone(&self) -> Self {
        SessionLayer {
            store: Arc::clone(&self.store),
            cookie: Arc::clone(&self.cookie),
        }
    }
}

impl<S: Backing> fmt::Debug for SessionLayer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionLayer")
            .field("store", &self.store)
            .field("cookie", &self.cookie)
            .finish()
    }
}

impl<S: Strategy> SessionLayer<S> {
    /// A layer over `store` with Django's cookie settings.
    pub fn new(store: SessionStore<S>) -> Self {
        Self::from_arc(Arc::new(store))
    }

    /// A layer over a shared store (e.g. one also used by a
    /// `unlocked::web::tower::TowerStore` or a background task).
    pub fn from_arc(store: Arc<SessionStore<S>>) -> Self {
        Self::with_store(store)
    }
}

#[cfg(feature = "redis")]
impl SessionLayer<Redis> {
    /// A layer over sessions in Redis (feature `redis`), with Django's cookie settings. Load
    /// and save are one round trip each; a store that cannot answer gives `503 Service
    /// Unavailable` without calling the handler, a record that does not decode is treated as
    /// no session (Django's decode-or-empty).
    ///
    /// ```no_run
    /// use axum::{Router, routing::post};
    /// use serde_json::json;
    /// use unlocked::session::RedisSessionStore;
    /// use unlocked::web::axum::{Redis, RequestSession, SessionLayer};
    ///
    /// async fn hit(session: RequestSession<Redis>) -> String {
    ///     let mut s = session.lock();
    ///     let n = s.update("hits", |v| json!(v.and_then(|v| v.as_i64()).unwrap_or(0) + 1));
    ///     n.map(|n| n.to_string()).unwrap_or_default()
    /// }
    ///
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = RedisSessionStore::connect("redis://127.0.0.1:6379").await?;
    /// let app: Router = Router::new()
    ///     .route("/hit", post(hit))
    ///     .layer(SessionLayer::redis(store));
    /// # Ok(()) }
    /// ```
    pub fn redis(store: RedisSessionStore) -> Self {
        Self::with_store(Arc::new(store))
    }
}

impl<S: Backing> SessionLayer<S> {
    fn with_store(store: Arc<S::Store>) -> Self {
        SessionLayer {
            store,
            cookie: Arc::new(CookieConfig {
                name: "sessionid".into(),
                path: "/".into(),
                domain: None,
                secure: true,
                http_only: true,
                same_site: SameSite::Lax,
            }),
        }
    }

    fn cookie_mut(&mut self) -> &mut CookieConfig {
        Arc::make_mut(&mut self.cookie)
    }

    /// The cookie name (Django's `SESSION_COOKIE_NAME`, default `sessionid`).
    #[must_use]
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie_mut().name = name.into();
        self
    }

    /// The cookie path (default `/`).
    #[must_use]
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.cookie_mut().path = path.into();
        self
    }

    /// The cookie domain (default none: the request's host only).
    #[must_use]
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.cookie_mut().domain = Some(domain.into());
        self
    }

    /// The `Secure` attribute (default on: the cookie only travels over HTTPS).
    #[must_use]
    pub fn secure(mut self, secure: bool) -> Self {
        self.cookie_mut().secure = secure;
        self
    }

    /// The `HttpOnly` attribute (default on: scripts cannot read the cookie).
    #[must_use]
    pub fn http_only(mut self, http_only: bool) -> Self {
        self.cookie_mut().http_only = http_only;
        self
    }

    /// The `SameSite` attribute (default [`SameSite::Lax`]).
    #[must_use]
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.cookie_mut().same_site = same_site;
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<S::Store> {
        &self.store
    }
}

impl<S: Backing, I> Layer<I> for SessionLayer<S> {
    type Service = SessionService<I, S>;

    fn layer(&self, inner: I) -> Self::Service {
        SessionService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`SessionLayer`] wraps around the app.
pub struct SessionService<I, S: Backing = LockFree> {
    inner: I,
    layer: SessionLayer<S>,
}

impl<I: Clone, S: Backing> Clone for SessionService<I, S> {
    fn clone(&self) -> Self {
        SessionService {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<I: fmt::Debug, S: Backing> fmt::Debug for SessionService<I, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionService")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

/// The value of cookie `name` among the request's `Cookie` headers.
fn request_cookie(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

impl<I, S, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<I, S>
where
    I: Service<Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    I::Future: Send + 'static,
    S: Backing,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = I::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let sent = request_cookie(req.headers(), &self.layer.cookie.name);
        // The clone that was polled ready serves this request (tower's usual dance).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let cookie = Arc::clone(&self.layer.cookie);
        let store = Arc::clone(&self.layer.store);
        Box::pin(async move {
            let handle = match S::load(store, sent.as_deref()).await {
                Ok(handle) => handle,
                Err(_unavailable) => {
                    let mut response = http::Response::default();
                    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                    return Ok(response);
                }
            };
            let session = Arc::new(Mutex::new(handle));
            req.extensions_mut().insert(RequestSession::<S> {
                inner: Arc::clone(&session),
            });
            let mut response = inner.call(req).await?;
            // Out of the mutex for the save (its guard cannot cross an `.await`). Normally the
            // request, and with it the handler's `RequestSession`, is gone: the handle is ours
            // alone, moved out without a replacement. A handler task that kept its
            // `RequestSession` finds an empty handle instead.
            let mut handle = match Arc::try_unwrap(session) {
                Ok(only) => only.into_inner(),
                Err(shared) => {
                    let mut guard = shared.lock();
                    let emptied = guard.emptied();
                    std::mem::replace(&mut *guard, emptied)
                }
            };
            finish(&mut handle, &cookie, sent.is_some(), &mut response).await;
            Ok(response)
        })
    }
}

/// Django's `SessionMiddleware.process_response`.
async fn finish<H: Handle, B: Default>(
    session: &mut H,
    config: &CookieConfig,
    had_cookie: bool,
    response: &mut http::Response<B>,
) {
    if session.accessed() {
        response
            .headers_mut()
            .append(VARY, HeaderValue::from_static("Cookie"));
    }
    if had_cookie && session.accessed() && session.is_empty() {
        let cookie = build_cookie(config, "")
            .max_age(time::Duration::ZERO)
            .expires(time::OffsetDateTime::UNIX_EPOCH)
            .build();
        set_cookie(response, &cookie);
        return;
    }
    if !session.modified() || session.is_empty() || response.status().is_server_error() {
        return;
    }
    if let Err(e) = session.save().await {
        let status = match e {
            SaveError::Gone { .. } => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        *response = http::Response::default();
        *response.status_mut() = status;
        return;
    }
    let Some(key) = session.session_key() else {
        return;
    };
    let mut cookie = build_cookie(config, key.as_str());
    if !session.get_expire_at_browser_close() {
        let age = session.get_expiry_age(ExpiryArgs::new());
        cookie = cookie.max_age(time::Duration::seconds(age));
    }
    set_cookie(response, &cookie.build());
}

fn build_cookie(config: &CookieConfig, value: &str) -> cookie::CookieBuilder<'static> {
    let mut c = Cookie::build((config.name.clone(), value.to_owned()))
        .path(config.path.clone())
        .secure(config.secure)
        .http_only(config.http_only)
        .same_site(match config.same_site {
            SameSite::Strict => cookie::SameSite::Strict,
            SameSite::Lax => cookie::SameSite::Lax,
            SameSite::None => cookie::SameSite::None,
        });
    if let Some(domain) = &config.domain {
        c = c.domain(domain.clone());
    }
    c
}

fn set_cookie<B>(response: &mut http::Response<B>, cookie: &Cookie<'_>) {
    // A cookie built from a store key and configured attributes is visible ASCII; a
    // configured name or path with control characters is skipped rather than sent broken.
    if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
        response.headers_mut().append(SET_COOKIE, value);
    }
}

/// The extractor: this request's native session handle, shared with [`SessionLayer`].
///
/// [`lock`](Self::lock) it to use the [`Session`](crate::session::Session) API; the layer saves it
/// after the handler returns. Extracting it without the layer fails with
/// [`MissingSessionLayer`] (a 500 response).
pub struct RequestSession<S: Backing = LockFree> {
    inner: Arc<Mutex<S::Handle>>,
}

impl<S: Backing> Clone for RequestSession<S> {
    fn clone(&self) -> Self {
        RequestSession {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S: Backing> fmt::Debug for RequestSession<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RequestSession").field(&self.inner).finish()
    }
}

impl<S: Backing> RequestSession<S> {
    /// The session handle. The guard is not `Send`: drop it before any `.await`.
    pub fn lock(&self) -> MutexGuard<'_, S::Handle> {
        self.inner.lock()
    }
}

#[cfg(feature = "redis")]
impl RequestSession<Redis> {
    /// [`RedisSession::flush`] (logout) from a handler: the lock is not held across the
    /// round trip (the handle is taken out, flushed, and put back).
    ///
    /// ```no_run
    /// use unlocked::web::axum::{Redis, RequestSession};
    ///
    /// async fn logout(session: RequestSession<Redis>) -> &'static str {
    ///     match session.flush().await {
    ///         Ok(()) => "bye",
    ///         Err(_) => "session store unavailable, try again",
    ///     }
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`RedisSession::flush`]. If the future is dropped before it finishes, the request
    /// continues with an empty handle.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let mut handle = self.take();
        let out = handle.flush().await;
        *self.inner.lock() = handle;
        out
    }

    /// [`RedisSession::cycle_key`] (login) from a handler, without holding the lock across
    /// the round trip.
    ///
    /// # Errors
    ///
    /// As [`RedisSession::cycle_key`]; as [`flush`](Self::flush) if dropped early.
    pub async fn cycle_key(&self) -> Result<(), StoreError> {
        let mut handle = self.take();
        let out = handle.cycle_key().await;
        *self.inner.lock() = handle;
        out
    }

    fn take(&self) -> RedisSession {
        let mut guard = self.inner.lock();
        let fresh = guard.store().fresh();
        std::mem::replace(&mut *guard, fresh)
    }
}

/// [`RequestSession`] was extracted in a route that [`SessionLayer`] does not wrap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MissingSessionLayer;

impl fmt::Display for MissingSessionLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "no session in the request: add `unlocked::web::axum::SessionLayer` (of the \
             same strategy) around this route with `.layer(...)`",
        )
    }
}

impl std::error::Error for MissingSessionLayer {}

impl IntoResponse for MissingSessionLayer {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

impl<S: Backing, St: Send + Sync> FromRequestParts<St> for RequestSession<S> {
    type Rejection = MissingSessionLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &St) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<RequestSession<S>>()
            .cloned()
            .ok_or(MissingSessionLayer)
    }
}
