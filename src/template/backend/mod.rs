//! How each [`Strategy`](crate::Strategy) implements the template cache. Sealed: the traits
//! are public items of a private module (arc-swap's pattern, as `model::backend` and
//! `session::backend`), so code outside the crate can neither name nor implement them.
//!
//! * [`lock_free::LockFreeBackend`]: copy-on-write snapshots of the name → template map behind
//!   arc-swap, read through a per-thread reader (or the per-thread snapshot of
//!   `TemplateCache::render`); single-flight misses.
//! * [`blocking::BlockingBackend`]: one map under the template loader's function-level lock,
//!   loading and compiling under it.
//! * `redis` (feature `redis`): not a strategy but the wire part of the template broadcast
//!   (`Broadcast`): the message format on the channel and the subscription connection.

// Public items of a private module: visible to the `Strategy` bounds, nameable by no one
// outside the crate (arc-swap's sealing).
#![allow(unreachable_pub)]

use super::cache::{Shared, Template};
use super::engine::Engine;
use super::error::GetError;

pub(crate) mod blocking;
pub(crate) mod lock_free;
#[cfg(feature = "redis")]
pub(crate) mod redis;

/// Selects the template back end of a strategy.
pub trait TemplateStrategy {
    /// The back end storing compiled templates of engine `E`.
    type Backend<E: Engine>: Backend<E>;
}

/// How a strategy stores and finds templates (selected by [`TemplateStrategy`]).
pub trait Backend<E: Engine>: Send + Sync + Sized {
    /// A per-thread handle (it may move to another thread with its task).
    type Reader<'a>: Send
    where
        Self: 'a;
    /// A back end with one empty generation.
    fn new(shared: &Shared<E>) -> Self;
    /// A handle for one thread.
    fn reader(&self) -> Self::Reader<'_>;
    /// Runs `f` with a reader that keeps this thread's snapshot between calls (what
    /// `TemplateCache::render` uses), so the convenience path is as cheap as a kept reader.
    fn with_local_reader<R>(&self, f: impl FnOnce(&mut Self::Reader<'_>) -> R) -> R;
    /// Looks `name` up, loading and compiling it on a miss.
    fn get<'r>(
        reader: &'r mut Self::Reader<'_>,
        shared: &Shared<E>,
        name: &str,
    ) -> Result<Template<'r, E>, GetError<E::Error>>;
    /// Drops every entry; starts a new generation.
    fn reset(&self, shared: &Shared<E>);
    /// Drops `name`'s entry; whether there was one.
    fn invalidate(&self, shared: &Shared<E>, name: &str) -> bool;
    /// The current generation number.
    fn generation(&self) -> u64;
    /// How many names are cached (found or missing).
    fn cached_count(&self) -> usize;
}
