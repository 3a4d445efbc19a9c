//! # unlocked
//!
//! Thread-safe state for web frameworks, without making every request wait on a lock.
//!
//! Django's "threading improvements" spec found three places where every request thread
//! touches shared mutable state — the template loader's cache, the models, the sessions — and
//! proposed a reusable locking module with five lock levels. This crate builds all of it:
//!
//! * [`lock`]: reentrant locks at the five levels (global, module, class, instance, function),
//!   with race-free lazy creation, lock-order checking and contention statistics. They are a
//!   public API of their own and the blocking fallback of every component.
//! * [`template`]: a cache of compiled templates (engine-agnostic, with a minijinja adapter)
//!   whose hit path — `extends` and `include` included — takes no lock and bumps no shared
//!   reference count; single-flight misses, negative caching, reset, autoreload.
//! * [`session`]: a session store with Django's `SessionBase` semantics whose saves never lose
//!   a concurrent request's writes (versioned records, merge/reject/last-writer-wins policies,
//!   replayable update operations).
//! * [`model`]: a model registry (`populate` once, refuses reentrancy) and versioned records with
//!   optimistic, compare-and-swap writes and all-or-nothing multi-record commits.
//! * [`Strategy`]: each component takes [`LockFree`] (the default) or [`Blocking`] as a type
//!   parameter: same API, same tests, different synchronisation.
//!
//! See `docs/design.md` in the repository for the architecture and `docs/benchmarks.md` for
//! measured figures.
//!
//! ## Quick start
//!
//! ```
//! use std::cell::Cell;
//! use unlocked::lock::{self, InstanceLock};
//!
//! // A lock per object, around the data it protects.
//! let hits = InstanceLock::new(Cell::new(0_u64));
//! hits.locked(|n| n.set(n.get() + 1));
//! assert_eq!(hits.lock().get(), 1);
//!
//! // A lock per type, found without taking a lock once created.
//! struct Article;
//! let _guard = lock::class::<Article>().lock();
//! ```

#![warn(
    missing_docs,
    rust_2018_idioms,
    unreachable_pub,
    missing_debug_implementations
)]

pub mod lock;
// TODO(session/model owners): `Debug` for the types this lint flags there (the back ends,
// `SessionStoreBuilder`); allowed here only until then, so the rest of the crate is held to it.
#[allow(missing_debug_implementations)]
pub mod model;
#[allow(missing_debug_implementations)]
pub mod session;
pub mod strategy;
pub(crate) mod sync;
pub mod template;
#[cfg(any(feature = "axum", feature = "tower-sessions"))]
pub mod web;

pub use strategy::{Blocking, LockFree, ParseStrategyError, Strategy, StrategyKind};

/// The README's examples, compiled and run as doctests (as moka does).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
