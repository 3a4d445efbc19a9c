//! A template cache whose hit path takes no lock and writes nothing shared.
//!
//! Django's cached template loader raced for years (spurious `TemplateDoesNotExist`, #6950 and
//! #17303; `KeyError` on a `reset()` during a lookup, #19510), and minijinja, the engine Rust
//! users pick today, takes a `Mutex` on every lookup of an owned template. [`TemplateCache`]
//! keeps compiled templates in copy-on-write snapshots:
//!
//! * **Hit**: a [`Reader`] (one per thread) re-validates its cached snapshot with one atomic
//!   load and looks the name up in a hash map. No lock, no reference count: the template is
//!   borrowed from the reader.
//! * **Miss**: the name is loaded by a [`FileSystemLoader`] (several directories, first match
//!   wins, hostile names refused) and compiled by the [`Engine`] without any lock readers take,
//!   then published in a new snapshot. Concurrent misses of one name compile it once
//!   (single-flight): the others wait for that result.
//! * **Negative caching**: a name the loader cannot find is cached as missing, so a flood of
//!   requests for it does not touch the disk each time.
//! * [`reset`](TemplateCache::reset) starts a new *generation* atomically;
//!   [`invalidate`](TemplateCache::invalidate) drops one name. Readers in flight finish on the
//!   snapshot they hold; a compile that started before a reset never publishes into the new
//!   generation.
//! * **Autoreload** (opt-in, [`Builder::autoreload`]): at most once per interval, one reader
//!   compares the files' modification time and length with what was loaded and drops what
//!   changed; the next lookup loads the new version. Nobody waits for it.
//!
//! The cache is engine-agnostic ([`Engine`]); [`MiniJinja`] is the adapter shipped here.
//! With it, `{% extends %}` and `{% include %}` resolve through the cache and, on a hit, take
//! no lock either (see `docs/template.md`).
//!
//! The strategy parameter picks the synchronisation: [`LockFree`] (default)
//! as above, or [`Blocking`](crate::Blocking): one map under the template loader's
//! function-level lock ([`crate::lock`]), loading and compiling under it. Same API.
//!
//! ```
//! use unlocked::template::{FileSystemLoader, MiniJinja, TemplateCache};
//!
//! let dir = tempfile::tempdir()?;
//! std::fs::write(dir.path().join("hello.html"), "Hello {{ name }}!")?;
//! // The strategy defaults to `LockFree`; name the type (a default type parameter does not
//! // drive inference).
//! let cache: TemplateCache<MiniJinja> =
//!     TemplateCache::new(MiniJinja::new(), FileSystemLoader::new([dir.path()]));
//!
//! // One reader per thread (or per task): its hits take no lock.
//! let mut reader = cache.reader();
//! assert_eq!(reader.render("hello.html", &serde_json::json!({"name": "World"}))?, "Hello World!");
//! assert!(reader.get("missing.html").unwrap_err().is_not_found());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Async code
//!
//! Nothing here blocks on a hit. A miss reads a file and compiles: from an async task, warm
//! the cache at start-up or expect a short blocking call on first use. With
//! [`Blocking`](crate::Blocking), every lookup takes a lock: do not hold a [`Template`]
//! across `.await` (it holds no lock, but it keeps its generation alive), and keep one
//! [`Reader`] per task rather than sharing one.
#![cfg_attr(
    feature = "redis",
    doc = r#"
# Across workers (feature `redis`)

A Django-style deployment runs several worker processes, each with its own cache. A
[`Broadcast`] connects them through one Redis channel, so that `reset()` or
`invalidate(name)` in one process drops the templates in every process following the channel:

* [`Broadcast::connect`] opens one publishing connection (reconnecting by itself).
* [`Broadcast::follow`] subscribes a cache: a tokio task holds a dedicated pub/sub connection
  and applies each message to the cache ([`reset`](TemplateCache::reset) or
  [`invalidate`](TemplateCache::invalidate)). It returns once the server has confirmed the
  subscription, with a [`Following`] handle (counters in [`Following::stats`]); dropping the
  handle, or [`Following::stop`], ends the task.
* [`Broadcast::reset`] and [`Broadcast::invalidate`] apply to the caches this broadcast
  follows **at once** (even when Redis is down: the call then returns
  [`BroadcastError::Connection`] after applying locally), then publish to the others. Their
  own followers skip the echo of what they already applied.
* **Renders never wait on Redis**: lookups do not know the broadcast exists. A follower
  applies a message as a local `reset` / `invalidate` does (lock-free with [`LockFree`];
  with [`Blocking`](crate::Blocking), on tokio's blocking pool, since that cache's lock may
  be held by a compile).
* **Delivery is at most once while connected** (Redis pub/sub keeps nothing for a subscriber
  that is away). When a follower's connection breaks (server restart, network,
  `CLIENT KILL`, or no answer to the health-check `PING` after a silent interval), it
  resubscribes by itself with a growing delay and then **resets its whole cache**, since it
  cannot know what it missed.
* Messages are short versioned text (`1 reset`, `1 invalidate <name>`, any name the loader
  accepts); a malformed one is ignored and counted. By hand:
  `redis-cli PUBLISH <channel> "1 invalidate pages/home.html"`. See `docs/template.md` and
  `docs/scale-out.md`.

```no_run
use std::sync::Arc;
use unlocked::template::{Broadcast, FileSystemLoader, MiniJinja, TemplateCache};

# async fn demo() -> Result<(), Box<dyn std::error::Error>> {
let cache: Arc<TemplateCache<MiniJinja>> =
    Arc::new(TemplateCache::new(MiniJinja::new(), FileSystemLoader::new(["templates"])));
let broadcast = Broadcast::connect("redis://127.0.0.1:6379", "myapp:templates").await?;
// Keep the handle for as long as the cache should follow (in the application state).
let following = broadcast.follow(Arc::clone(&cache)).await?;

// Renders are as before: they never touch Redis.
let page = cache.render("pages/home.html", &serde_json::json!({ "user": "ann" }))?;

// After deploying new templates, in any one worker: every worker drops them.
broadcast.invalidate("pages/home.html").await?;
broadcast.reset().await?;

let stats = following.stats();
println!("applied {}, reconnects {}", stats.applied, stats.reconnects);
# let _ = page;
# Ok(()) }
```
"#
)]

pub(crate) mod backend;
#[cfg(feature = "redis")]
mod broadcast;
mod cache;
mod engine;
mod error;
mod loader;
mod minijinja;

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::Serialize;

use crate::{LockFree, Strategy};
use backend::{Backend, TemplateStrategy};
use cache::Shared;

#[cfg(feature = "redis")]
pub use broadcast::{Broadcast, BroadcastBuilder, FollowStats, Following};
pub use cache::Template;
pub use engine::{Engine, RenderFailure};
#[cfg(feature = "redis")]
pub use error::BroadcastError;
pub use error::{GetError, LoadError, RefusedReason, RenderError};
pub use loader::{FileSystemLoader, Source, Stamp};
pub use minijinja::{MiniJinja, MiniJinjaGeneration, MiniJinjaTemplate};

type BackendOf<E, S> = <S as TemplateStrategy>::Backend<E>;

/// A cache of compiled templates; see the [module docs](self).
///
/// `E` is the engine ([`MiniJinja`]), `S` the strategy ([`LockFree`] by default, or
/// [`Blocking`](crate::Blocking)).
pub struct TemplateCache<E: Engine, S: Strategy = LockFree> {
    shared: Shared<E>,
    backend: BackendOf<E, S>,
}

impl<E: Engine, S: Strategy> TemplateCache<E, S> {
    /// A cache without autoreload.
    pub fn new(engine: E, loader: FileSystemLoader) -> Self {
        Builder::new(engine, loader).build()
    }

    /// A builder, for autoreload.
    pub fn builder(engine: E, loader: FileSystemLoader) -> Builder<E, S> {
        Builder::new(engine, loader)
    }

    /// A handle for one thread. Its hits take no lock and bump no shared count (with
    /// [`LockFree`]); create one per thread or task and keep it.
    pub fn reader(&self) -> Reader<'_, E, S> {
        Reader {
            shared: &self.shared,
            inner: self.backend.reader(),
        }
    }

    /// Renders `name` with `context`, as [`Reader::render`] does.
    ///
    /// As cheap as a kept [`Reader`]: with [`LockFree`], the cache keeps one snapshot per
    /// thread that has called `render`, re-validated by one atomic load per call, so a hit
    /// takes no lock and bumps no shared count. (A thread's snapshot is refreshed on its next
    /// call after a write; until then it keeps the generation it saw alive, as a kept reader
    /// does.)
    ///
    /// ```
    /// use unlocked::template::{FileSystemLoader, MiniJinja, TemplateCache};
    ///
    /// let dir = tempfile::tempdir()?;
    /// std::fs::write(dir.path().join("hi.html"), "Hi {{ who }}")?;
    /// let cache: TemplateCache<MiniJinja> =
    ///     TemplateCache::new(MiniJinja::new(), FileSystemLoader::new([dir.path()]));
    /// assert_eq!(cache.render("hi.html", &serde_json::json!({ "who": "you" }))?, "Hi you");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn render<C: Serialize + ?Sized>(
        &self,
        name: &str,
        context: &C,
    ) -> Result<String, RenderError<E::Error, E::RenderError>> {
        let shared = &self.shared;
        self.backend
            .with_local_reader(|inner| Reader::<'_, E, S>::render_in(shared, inner, name, context))
    }

    /// Drops every cached template and cached miss at once and starts a new generation.
    /// Readers in flight finish with what they hold.
    pub fn reset(&self) {
        self.backend.reset(&self.shared);
    }

    /// Drops `name` (a compiled template or a cached miss); returns whether it was cached.
    /// The next lookup loads it again.
    pub fn invalidate(&self, name: &str) -> bool {
        self.backend.invalidate(&self.shared, name)
    }

    /// The current generation: 0 at creation, one more after each [`reset`](Self::reset).
    pub fn generation(&self) -> u64 {
        self.backend.generation()
    }

    /// How many names are cached, compiled or missing.
    pub fn len(&self) -> usize {
        self.backend.cached_count()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The engine.
    pub fn engine(&self) -> &E {
        &self.shared.engine
    }

    /// The loader.
    pub fn loader(&self) -> &FileSystemLoader {
        &self.shared.loader
    }
}

// Here rather than in `broadcast`, which would otherwise name `TemplateCache` while this module
// re-exports it (a module cycle, see ci/modules.sh).
#[cfg(feature = "redis")]
impl<E: Engine, S: Strategy> broadcast::Target for TemplateCache<E, S> {
    fn reset(&self) {
        TemplateCache::reset(self);
    }

    fn invalidate(&self, name: &str) {
        TemplateCache::invalidate(self, name);
    }

    fn may_wait(&self) -> bool {
        S::KIND == crate::StrategyKind::Blocking
    }
}

#[cfg(feature = "redis")]
impl Broadcast {
    /// Makes `cache` follow this broadcast's channel: a tokio task subscribed to the channel
    /// applies every `reset` and `invalidate` published by another [`Broadcast`] to `cache`,
    /// and this broadcast's own [`reset`](Broadcast::reset) and
    /// [`invalidate`](Broadcast::invalidate) apply to it at once. Returns when the server has
    /// confirmed the subscription (every message published afterwards reaches it); messages
    /// published before are not replayed.
    ///
    /// The task runs until the returned [`Following`] is dropped or stopped. When its
    /// connection breaks it resubscribes by itself and then resets `cache` (what was published
    /// meanwhile is lost). Renders never wait on any of this.
    ///
    /// # Errors
    ///
    /// [`BroadcastError::Connection`] if the server cannot be reached or does not confirm the
    /// subscription in time, [`BroadcastError::Server`] if it refuses it.
    pub async fn follow<E: Engine, S: Strategy>(
        &self,
        cache: std::sync::Arc<TemplateCache<E, S>>,
    ) -> Result<Following, BroadcastError> {
        self.follow_target(cache).await
    }
}

impl<E: Engine, S: Strategy> fmt::Debug for TemplateCache<E, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TemplateCache")
            .field("strategy", &S::KIND)
            .field("dirs", &self.shared.loader.dirs())
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

/// Configures a [`TemplateCache`].
///
/// ```
/// use std::time::Duration;
/// use unlocked::template::{FileSystemLoader, MiniJinja, TemplateCache};
///
/// let cache: TemplateCache<MiniJinja> =
///     TemplateCache::builder(MiniJinja::new(), FileSystemLoader::new(["templates"]))
///         .autoreload(Duration::from_millis(500))
///         .build();
/// assert_eq!(cache.generation(), 0);
/// ```
#[must_use]
pub struct Builder<E: Engine, S: Strategy = LockFree> {
    engine: E,
    loader: FileSystemLoader,
    autoreload: Option<Duration>,
    _strategy: PhantomData<S>,
}

impl<E: Engine, S: Strategy> fmt::Debug for Builder<E, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("strategy", &S::KIND)
            .field("dirs", &self.loader.dirs())
            .field("autoreload", &self.autoreload)
            .finish_non_exhaustive()
    }
}

impl<E: Engine, S: Strategy> Builder<E, S> {
    /// A builder without autoreload.
    pub fn new(engine: E, loader: FileSystemLoader) -> Self {
        Self {
            engine,
            loader,
            autoreload: None,
            _strategy: PhantomData,
        }
    }

    /// Checks the files of cached templates (and forgets cached misses) at most once per
    /// `every`. The check is done by whichever lookup finds it due: that lookup pays one
    /// `stat` per cached template; other lookups pay one clock read. Off by default (a
    /// production deployment reloads by restarting or calling `reset`). `Duration::ZERO`
    /// checks on every lookup.
    pub fn autoreload(mut self, every: Duration) -> Self {
        self.autoreload = Some(every);
        self
    }

    /// Builds the cache.
    pub fn build(self) -> TemplateCache<E, S> {
        let shared = Shared::new(self.engine, self.loader, self.autoreload);
        let backend = BackendOf::<E, S>::new(&shared);
        TemplateCache { shared, backend }
    }
}

/// A per-thread handle on a [`TemplateCache`]; see [`TemplateCache::reader`].
///
/// With [`LockFree`], it keeps the snapshot it last saw and re-validates it with one atomic
/// load per lookup, so a hit writes nothing shared.
pub struct Reader<'c, E: Engine, S: Strategy = LockFree> {
    shared: &'c Shared<E>,
    inner: <BackendOf<E, S> as Backend<E>>::Reader<'c>,
}

impl<'c, E: Engine, S: Strategy> Reader<'c, E, S> {
    /// The compiled template `name`, loading and compiling it on a miss.
    #[inline]
    pub fn get(&mut self, name: &str) -> Result<Template<'_, E>, GetError<E::Error>> {
        BackendOf::<E, S>::get(&mut self.inner, self.shared, name)
    }

    /// Renders `name` with `context`; templates it extends or includes are loaded through the
    /// cache (in the same generation) as needed.
    pub fn render<C: Serialize + ?Sized>(
        &mut self,
        name: &str,
        context: &C,
    ) -> Result<String, RenderError<E::Error, E::RenderError>> {
        Self::render_in(self.shared, &mut self.inner, name, context)
    }

    /// [`render`](Self::render) on any back-end reader (a kept one, or the thread's).
    fn render_in<'i, C: Serialize + ?Sized>(
        shared: &Shared<E>,
        inner: &mut <BackendOf<E, S> as Backend<E>>::Reader<'i>,
        name: &str,
        context: &C,
    ) -> Result<String, RenderError<E::Error, E::RenderError>> {
        let engine = &shared.engine;
        for _ in 0..64 {
            let template = BackendOf::<E, S>::get(inner, shared, name).map_err(RenderError::Get)?;
            let loaded = template.loaded();
            let deps = match engine.render(&loaded.engine_gen, name, &loaded.compiled, context) {
                Ok(out) => return Ok(out),
                Err(RenderFailure::Failed(e)) => return Err(RenderError::Render(e)),
                Err(RenderFailure::MissingDependency(deps)) => deps,
            };
            drop(template);
            // Load the first candidate that exists; report the last failure if none does.
            let mut failure = None;
            for dep in &deps {
                match BackendOf::<E, S>::get(inner, shared, dep) {
                    Ok(_) => {
                        failure = None;
                        break;
                    }
                    Err(e) if e.is_not_found() => failure = Some(e),
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            if let Some(source) = failure {
                return Err(RenderError::Dependency {
                    template: name.to_owned(),
                    source,
                });
            }
        }
        Err(RenderError::Unsettled {
            template: name.to_owned(),
        })
    }
}

impl<E: Engine, S: Strategy> fmt::Debug for Reader<'_, E, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("strategy", &S::KIND)
            .finish_non_exhaustive()
    }
}
