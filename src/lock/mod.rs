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

mod guarded;
mod order;
mod reentrant;
mod registry;

use std::any::TypeId;
use std::cell::RefCell;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::LazyLock;
use std::time::Duration;

pub use crate::error::{
    GuardedError, LockOrderError, LockSite, ReentrantAccessError, TryLockError, TryLockForError,
};
pub use guarded::{Guarded, GuardedMut};
pub use reentrant::{LockGuard, ReentrantLock};

use reentrant::LockStats;
use registry::Registry;

/// A data-less reentrant lock: what the keyed levels hand out.
pub type Lock = ReentrantLock<()>;

/// An instance-level lock, embedded in the object it protects (optionally around data).
///
/// Two objects never share one, and dropping the object drops the lock: nothing is left in any
/// registry.
pub type InstanceLock<T = ()> = ReentrantLock<T>;

/// The five lock levels, ordered from coarse to fine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// One lock for the whole process.
    Global,
    /// One lock per module path.
    Module,
    /// One lock per type.
    Class,
    /// One lock per live object.
    Instance,
    /// One lock per function or call site.
    Function,
}

impl Level {
    /// Every level, from coarse to fine.
    pub const ALL: [Level; 5] = [
        Level::Global,
        Level::Module,
        Level::Class,
        Level::Instance,
        Level::Function,
    ];

    /// A lowercase name: `"global"`, `"module"`, …
    pub const fn name(self) -> &'static str {
        match self {
            Level::Global => "global",
            Level::Module => "module",
            Level::Class => "class",
            Level::Instance => "instance",
            Level::Function => "function",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// The registry key of a keyed lock.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Key {
    Global,
    Module(&'static str),
    Type(Level, TypeId),
}

/// The per-thread cache key: module paths by address, so a hit hashes two words instead of
/// the path (two copies of one path at two addresses just make two cache entries).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum CacheKey {
    ModulePtr(usize, usize),
    Type(Level, TypeId),
}

static LOCKS: LazyLock<Registry<Key, Lock>> = LazyLock::new(Registry::new);
static INSTANCE_STATS: LazyLock<Registry<&'static str, LockStats>> = LazyLock::new(Registry::new);

/// Slots in each thread's cache of keyed locks. Direct-mapped: a key lives in one slot, chosen
/// by its hash; a collision evicts, and the evicted key is found again in the registry's
/// snapshot (lock-free) on its next use.
const CACHE_SLOTS: usize = 64;

type Slot = Option<(CacheKey, &'static Lock)>;

crate::sync::thread_local! {
    /// `Copy` entries and no destructor, so reaching it is a plain thread-local access.
    static CACHE: RefCell<[Slot; CACHE_SLOTS]> = RefCell::new([None; CACHE_SLOTS]);
}

#[inline]
fn find(
    cache_key: CacheKey,
    describe: impl FnOnce() -> (Key, Level, &'static str),
) -> &'static Lock {
    let slot =
        foldhash::fast::FixedState::with_seed(0x5eed).hash_one(cache_key) as usize % CACHE_SLOTS;
    // `try_with`: during thread-local destruction the cache is gone; go to the registry.
    if let Ok(Some(lock)) = CACHE.try_with(|c| match c.borrow()[slot] {
        Some((key, lock)) if key == cache_key => Some(lock),
        _ => None,
    }) {
        return lock;
    }
    let (key, level, label) = describe();
    let lock = LOCKS.get_or_create(key, || Lock::with_level(level, label, ()));
    let _ = CACHE.try_with(|c| c.borrow_mut()[slot] = Some((cache_key, lock)));
    lock
}

#[cfg_attr(unlocked_loom, allow(dead_code))]
pub(crate) fn instance_aggregate(label: &'static str) -> &'static LockStats {
    INSTANCE_STATS.get_or_create(label, LockStats::new)
}

/// The process-wide lock.
///
/// The seed saw "no use for a Django-wide lock"; it is here for completeness and for the rare
/// section that must exclude everything else (it is the coarsest level, so it must be taken
/// before any other lock).
pub fn global() -> &'static Lock {
    static GLOBAL: LazyLock<&'static Lock> = LazyLock::new(|| {
        LOCKS.get_or_create(Key::Global, || {
            Lock::with_level(Level::Global, "global", ())
        })
    });
    *GLOBAL
}

/// The lock of the module at `path` (use `module_path!()`, or [`module_lock!`](crate::module_lock)
/// which does that and caches the result at the call site).
///
/// Keys are compared by content; the lock lives for the rest of the process, so use a fixed
/// set of paths, not per-request strings.
pub fn module(path: &'static str) -> &'static Lock {
    find(
        CacheKey::ModulePtr(path.as_ptr() as usize, path.len()),
        || (Key::Module(path), Level::Module, path),
    )
}

/// The lock of type `C` (Django's class-level lock, e.g. one per model type).
pub fn class<C: ?Sized + 'static>() -> &'static Lock {
    let id = TypeId::of::<C>();
    find(CacheKey::Type(Level::Class, id), || {
        (
            Key::Type(Level::Class, id),
            Level::Class,
            std::any::type_name::<C>(),
        )
    })
}

/// The lock of function `F`, keyed by its type.
///
/// Every function item and closure has a type of its own, so this is one lock per function,
/// as the seed's lock stored on the function object. Pass the function item itself
/// (`function(&compile)`), not a function pointer: all `fn(A) -> R` pointers share one type,
/// hence one lock.
pub fn function<F: 'static>(_func: &F) -> &'static Lock {
    let id = TypeId::of::<F>();
    find(CacheKey::Type(Level::Function, id), || {
        (
            Key::Type(Level::Function, id),
            Level::Function,
            std::any::type_name::<F>(),
        )
    })
}

/// Calls `func(args)` while holding `func`'s function-level lock: the seed's
/// `locked(func, *args)`. Pass several arguments as a tuple.
///
/// ```
/// fn load(name: &str, dirs: &[&str]) -> String {
///     format!("{}/{name}", dirs[0])
/// }
/// let path = unlocked::lock::locked(|(n, d)| load(n, d), ("base.html", &["templates"][..]));
/// assert_eq!(path, "templates/base.html");
/// ```
///
/// # Panics
///
/// As [`ReentrantLock::lock`] on a lock-order violation, and if `func` panics (the lock is
/// released first).
#[track_caller]
pub fn locked<F, A, R>(func: F, args: A) -> R
where
    F: FnOnce(A) -> R + 'static,
{
    function(&func).locked(|()| func(args))
}

#[doc(hidden)]
pub fn __call_site<S: 'static>() -> &'static Lock {
    let id = TypeId::of::<S>();
    let name = std::any::type_name::<S>();
    let name = name.strip_suffix("::__UnlockedCallSite").unwrap_or(name);
    find(CacheKey::Type(Level::Function, id), || {
        (Key::Type(Level::Function, id), Level::Function, name)
    })
}

/// The module-level lock of the calling module, cached at the call site (after the first call,
/// one atomic load).
///
/// ```
/// let guard = unlocked::module_lock!().lock();
/// assert_eq!(unlocked::module_lock!().key(), module_path!());
/// drop(guard);
/// ```
#[macro_export]
macro_rules! module_lock {
    () => {{
        static SLOT: ::std::sync::OnceLock<&'static $crate::lock::Lock> =
            ::std::sync::OnceLock::new();
        *SLOT.get_or_init(|| $crate::lock::module(::core::module_path!()))
    }};
}

/// The class-level lock of a concrete type, cached at the call site.
///
/// It does not compile with a generic parameter or `Self` (the cache is per call site, not per
/// type): use [`class::<T>()`](crate::lock::class) there.
///
/// ```
/// struct Article;
/// let lock = unlocked::class_lock!(Article);
/// assert!(std::ptr::eq(lock, unlocked::lock::class::<Article>()));
/// ```
///
/// ```compile_fail
/// fn generic<T: 'static>() -> &'static unlocked::lock::Lock {
///     unlocked::class_lock!(T) // one cache for every T would be wrong: refused
/// }
/// ```
#[macro_export]
macro_rules! class_lock {
    ($t:ty) => {{
        fn __unlocked_class_lock() -> &'static $crate::lock::Lock {
            static SLOT: ::std::sync::OnceLock<&'static $crate::lock::Lock> =
                ::std::sync::OnceLock::new();
            *SLOT.get_or_init($crate::lock::class::<$t>)
        }
        __unlocked_class_lock()
    }};
}

/// A function-level lock for this call site, named after the enclosing function in
/// [`report`](crate::lock::report).
///
/// Each expansion of the macro is its own lock (also inside generic functions: one lock per
/// call site, not per instantiation).
///
/// ```
/// fn refresh() -> bool {
///     let _guard = unlocked::function_lock!().lock();
///     true
/// }
/// assert!(refresh());
/// ```
#[macro_export]
macro_rules! function_lock {
    () => {{
        struct __UnlockedCallSite;
        static SLOT: ::std::sync::OnceLock<&'static $crate::lock::Lock> =
            ::std::sync::OnceLock::new();
        *SLOT.get_or_init($crate::lock::__call_site::<__UnlockedCallSite>)
    }};
}

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

/// Contention statistics of one lock (or, for [`Level::Instance`], of every dropped instance
/// lock with one label).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockReport {
    /// The lock's level.
    pub level: Level,
    /// Module path, type name, function name, instance label, or `"global"`.
    pub key: &'static str,
    /// Successful acquisitions, re-entries included.
    pub acquisitions: u64,
    /// Acquisitions that found the lock held by another thread.
    pub contended: u64,
    /// Total time spent waiting in contended acquisitions.
    pub wait: Duration,
}

impl LockReport {
    /// The share of acquisitions that had to wait, from 0 to 1.
    pub fn contention_ratio(&self) -> f64 {
        if self.acquisitions == 0 {
            0.0
        } else {
            self.contended as f64 / self.acquisitions as f64
        }
    }
}

impl fmt::Display for LockReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<8} {:<48} {:>12} {:>10} {:>6.1}% {:>12.3?}",
            self.level,
            self.key,
            self.acquisitions,
            self.contended,
            self.contention_ratio() * 100.0,
            self.wait
        )
    }
}

/// The lock statistics of the process, hottest first (most time waited, then most contended
/// acquisitions, then most acquisitions). `Display` prints it as a table.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// One entry per keyed lock and per instance-lock label.
    pub entries: Vec<LockReport>,
}

impl Report {
    /// The `n` hottest entries.
    pub fn hottest(&self, n: usize) -> &[LockReport] {
        &self.entries[..n.min(self.entries.len())]
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<8} {:<48} {:>12} {:>10} {:>7} {:>12}",
            "level", "key", "acquired", "contended", "share", "waited"
        )?;
        for entry in &self.entries {
            writeln!(f, "{entry}")?;
        }
        Ok(())
    }
}

/// Collects the statistics of every keyed lock and every instance-lock label.
///
/// Instance locks are counted when they are dropped (live ones keep their counts inside, see
/// [`ReentrantLock::stats`]), so the report keeps no entry per object.
pub fn report() -> Report {
    let mut entries: Vec<LockReport> = LOCKS.values().into_iter().map(|l| l.stats()).collect();
    let instance = INSTANCE_STATS.snapshot_entries();
    entries.extend(instance.into_iter().map(|(label, stats)| {
        let (acquisitions, contended, wait) = stats.snapshot();
        LockReport {
            level: Level::Instance,
            key: label,
            acquisitions,
            contended,
            wait,
        }
    }));
    entries.sort_by(|a, b| {
        b.wait
            .cmp(&a.wait)
            .then(b.contended.cmp(&a.contended))
            .then(b.acquisitions.cmp(&a.acquisitions))
            .then(a.level.cmp(&b.level))
            .then(a.key.cmp(b.key))
    });
    Report { entries }
}
