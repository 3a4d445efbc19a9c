//! Reentrant locks at five levels: global, module, class, instance and function.
//!
//! This is the locking module the Django "threading improvements" spec proposed
//! (`django.utils.locking`), without its bugs, and the **blocking fallback** every component
//! of this crate can opt into with [`Blocking`](crate::Blocking).
//!
//! | level | one lock per | how to get it | finding it costs |
//! |---|---|---|---|
//! | [`Level::Global`] | process | [`global()`] | one atomic load |
//! | [`Level::Module`] | module path | [`module_lock!()`](crate::module_lock), [`module(path)`](module()) | one atomic load (macro); a thread-local lookup (function) |
//! | [`Level::Class`] | type | [`class_lock!(T)`](crate::class_lock), [`class::<T>()`](class()) | as above |
//! | [`Level::Instance`] | live object | a [`InstanceLock`] field in the object | nothing: it is in the object |
//! | [`Level::Function`] | function or call site | [`locked(func, args)`](locked()), [`function(&func)`](function()), [`function_lock!()`](crate::function_lock) | as above |
//!
//! Every lock is a [`ReentrantLock`] over `parking_lot`'s reentrant mutex: the owning thread
//! may take it again, and it is released when the last guard drops. Two forms everywhere: an
//! RAII guard ([`ReentrantLock::lock`], the seed's note about `with`) and a closure
//! ([`ReentrantLock::locked`], [`locked()`]), plus [`try_lock`](ReentrantLock::try_lock) and
//! [`try_lock_for`](ReentrantLock::try_lock_for).
//!
//! ```
//! use unlocked::lock;
//!
//! fn render_page() -> String {
//!     // One lock for this module, created on first use, found by one atomic load after that.
//!     let _guard = unlocked::module_lock!().lock();
//!     // Re-entering is fine: the same thread nests.
//!     unlocked::module_lock!().locked(|()| "page".to_string())
//! }
//!
//! fn compile(name: &str) -> usize { name.len() }
//!
//! assert_eq!(render_page(), "page");
//! // The seed's `locked(func, *args)`: every call through one function shares its lock.
//! assert_eq!(lock::locked(compile, "index.html"), 10);
//! ```
//!
//! # No poisoning
//!
//! A panic while a lock is held releases it during unwinding; the next holder proceeds. Data
//! the lock protects is left as the panicking code left it.
//!
//! # Lazy creation is race-free
//!
//! Keyed locks are created on first use. Where the seed's `getattr_` let two racing threads
//! install two different locks for one function, here every thread gets the one lock that was
//! published first for its key (double-checked publish of a copy-on-write map; a loom model
//! checks it). After creation, finding a lock takes no lock: each thread keeps its own cache,
//! and the macros cache per call site.
//!
//! # Lock order
//!
//! Levels are ordered from coarse to fine: global → module → class → instance → function.
//! While the order check is on, acquiring a coarser lock while holding a finer one (other than
//! re-entering a lock already held) is refused: [`ReentrantLock::lock`] panics,
//! [`ReentrantLock::checked_lock`] and the `try_` forms return a [`LockOrderError`] naming
//! both acquisition sites. It keeps a thread-local list of the locks the thread holds, so it
//! takes no lock and writes nothing shared. Locks of one level may be taken in any order:
//! ordering them is up to you.
//!
//! When is it on?
//!
//! * **Always, in every build, for the locks of the `Blocking` fallback**: every lock that a
//!   [`Guarded`] value lives under (the template, session and model stores keep their data
//!   so). So a `Blocking` store touched from inside another `Blocking` store's locked section
//!   in the wrong order is refused the same way in debug and in release, instead of passing in
//!   release and deadlocking the day another thread takes the two locks the other way round.
//!   [`Guarded::with`] panics with the [`LockOrderError`] message; [`Guarded::checked_with`]
//!   returns it as a [`GuardedError`] value.
//! * **Always for [`ReentrantLock::checked_lock`]** (it returns the error).
//! * **For every other acquisition** in debug builds, with the `lock-order` feature, or after
//!   [`set_order_check(true)`](set_order_check). Locks taken while their check was off are not
//!   recorded, so they cannot be named as the finer lock held: turn the check on in release
//!   too (the feature) to cover your own locks.
//!
//! ```
//! use unlocked::lock::{self, Guarded, GuardedError};
//!
//! struct Article;
//! // Two `Blocking`-style stores: one under a module lock, one under a class lock.
//! let sessions = Guarded::new(lock::module("app::sessions"), 0_u32);
//! let articles = Guarded::new(lock::class::<Article>(), 0_u32);
//!
//! // Coarse to fine: fine.
//! sessions.with(|s| articles.with(|a| *a += *s));
//! // Fine to coarse: refused, in every build, as a value here (`with` would panic).
//! let refused = articles.with(|_| sessions.checked_with(|s| *s += 1));
//! assert!(matches!(refused, Err(GuardedError::Order(_))));
//! ```
//!
//! # Contention statistics
//!
//! Each lock counts its acquisitions, re-entries included (a plain store by the holder, no
//! read-modify-write), and
//! on the slow path only — when another thread held it — the contended acquisitions and the
//! time spent waiting. [`report()`] lists every keyed lock, hottest first, and one line per
//! instance-lock label summing the instance locks that have been dropped: use it to find the
//! hot spots of your application.
//!
//! # Async code
//!
//! These are blocking, thread-owned locks. Guards are `!Send`: never hold one across
//! `.await` (the task may resume on another thread, and a blocked executor thread stalls every
//! task scheduled on it). Keep locked sections short and synchronous, or run them in
//! `spawn_blocking`.

// One job per file, layered without circles (each file imports only the ones above it):
// `level` → `error` → `order`, `registry` → `stats` → `reentrant` → `guarded`, `keyed` →
// `report`. This file only documents and re-exports (and switches the order check).
mod error;
mod guarded;
mod keyed;
mod level;
mod order;
mod reentrant;
mod registry;
mod report;
mod stats;

pub use error::{
    GuardedError, LockOrderError, LockSite, ReentrantAccessError, TryLockError, TryLockForError,
};
pub use guarded::{Guarded, GuardedMut};
#[doc(hidden)]
pub use keyed::__call_site;
pub use keyed::{class, function, global, locked, module};
pub use level::Level;
pub use reentrant::{InstanceLock, Lock, LockGuard, ReentrantLock};
pub use report::{Report, report};
pub use stats::LockReport;

/// Turns the lock-order check on or off for every thread, from the next acquisition on.
///
/// The default is on in debug builds and with the `lock-order` feature, off otherwise.
/// Guards taken while it was off are not known to the check.
pub fn set_order_check(on: bool) {
    order::set_enabled(on);
}

/// Whether the lock-order check is on.
pub fn order_check_enabled() -> bool {
    order::enabled()
}

/// How many locks the calling thread holds, as recorded by the lock-order check (re-entries
/// count once; acquisitions made while the check was off are not counted).
pub fn held_by_current_thread() -> usize {
    order::held_count()
}
