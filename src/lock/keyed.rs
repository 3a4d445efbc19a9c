//! The keyed levels (global, module, class, function): race-free lazy creation through the
//! registry, and lookups through a per-thread cache.

use std::any::TypeId;
use std::cell::Cell;
use std::hash::{Hash, Hasher};
use std::sync::LazyLock;

use super::level::Level;
use super::reentrant::Lock;
use super::registry::Registry;

/// The registry key of a keyed lock.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Key {
    /// Only under loom (elsewhere the global lock is a plain static).
    #[cfg_attr(not(unlocked_loom), allow(dead_code))]
    Global,
    Module(&'static str),
    Type(Level, TypeId),
}

/// The per-thread cache key: module paths by address, so a hit compares two words instead of
/// the path (two copies of one path at two addresses just make two cache entries).
#[derive(Clone, Copy, PartialEq, Eq)]
enum CacheKey {
    ModulePtr(usize, usize),
    Type(Level, TypeId),
}

impl CacheKey {
    /// The cache slot of this key. No general-purpose hash: a `TypeId` already is a hash (its
    /// low word is taken as is; for `class::<T>()` the whole computation folds to a constant),
    /// and a module path's address and length only need their low bits mixed.
    #[inline(always)]
    fn slot(self) -> usize {
        let word = match self {
            CacheKey::ModulePtr(ptr, len) => (ptr >> 3) ^ len.rotate_left(4),
            CacheKey::Type(level, id) => {
                let mut grab = LowWord(0);
                id.hash(&mut grab);
                grab.0 as usize ^ level as usize
            }
        };
        word % CACHE_SLOTS
    }
}

/// A `Hasher` that keeps what a `TypeId` writes (one `u64`, already a hash) instead of
/// hashing it again.
struct LowWord(u64);

impl Hasher for LowWord {
    #[inline(always)]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    #[inline(always)]
    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
    #[inline(always)]
    fn write_u128(&mut self, n: u128) {
        self.0 ^= n as u64 ^ (n >> 64) as u64;
    }
    #[inline(always)]
    fn finish(&self) -> u64 {
        self.0
    }
}

static LOCKS: LazyLock<Registry<Key, Lock>> = LazyLock::new(Registry::new);

/// Slots in each thread's cache of keyed locks. Direct-mapped: a key lives in one slot, chosen
/// by its hash; a collision evicts, and the evicted key is found again in the registry's
/// snapshot (lock-free) on its next use.
const CACHE_SLOTS: usize = 64;

type Slot = Option<(CacheKey, &'static Lock)>;

crate::sync::thread_local! {
    /// `Copy` entries in `Cell`s (no borrow flag to check and set) and no destructor, so a hit
    /// is a plain thread-local load and compare.
    static CACHE: [Cell<Slot>; CACHE_SLOTS] = [const { Cell::new(None) }; CACHE_SLOTS];
}

#[inline(always)]
fn find(
    cache_key: CacheKey,
    describe: impl FnOnce() -> (Key, Level, &'static str),
) -> &'static Lock {
    let slot = cache_key.slot();
    // `try_with`: during thread-local destruction the cache is gone; go to the registry.
    if let Ok(Some((key, lock))) = CACHE.try_with(|c| c[slot].get()) {
        if key == cache_key {
            return lock;
        }
    }
    find_slow(cache_key, slot, describe())
}

/// A cache miss: the registry (lock-free once created), then the cache slot.
#[cold]
#[inline(never)]
fn find_slow(
    cache_key: CacheKey,
    slot: usize,
    (key, level, label): (Key, Level, &'static str),
) -> &'static Lock {
    let lock = LOCKS.get_or_create(key, || Lock::with_level(level, label, ()));
    let _ = CACHE.try_with(|c| c[slot].set(Some((cache_key, lock))));
    lock
}

/// The process-wide lock.
///
/// The seed saw "no use for a Django-wide lock"; it is here for completeness and for the rare
/// section that must exclude everything else (it is the coarsest level, so it must be taken
/// before any other lock).
#[cfg(not(unlocked_loom))]
#[inline]
pub fn global() -> &'static Lock {
    // A plain static: no lookup, no lazy-initialisation check.
    static GLOBAL: Lock = Lock::new_static(Level::Global, "global");
    &GLOBAL
}

/// The process-wide lock (loom: its atomics cannot be built in a `const`).
#[cfg(unlocked_loom)]
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
/// As [`ReentrantLock::lock`](super::ReentrantLock::lock) on a lock-order violation, and if `func` panics (the lock is
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

/// Every keyed lock created so far (the global one included), in no particular order.
pub(crate) fn all() -> Vec<&'static Lock> {
    let all = LOCKS.values();
    #[cfg(not(unlocked_loom))]
    let all = {
        let mut all = all;
        if global().stats().acquisitions > 0 {
            all.push(global());
        }
        all
    };
    all
}
