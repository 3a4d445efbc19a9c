//! [`ReentrantLock`]: parking_lot's reentrant mutex plus a level, a key, contention statistics
//! and the lock-order check.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::panic::Location;
use std::time::{Duration, Instant};

use super::error::{LockOrderError, LockSite, TryLockError, TryLockForError};
use super::level::Level;
use super::order;
use super::stats::{LockReport, LockStats};
use crate::sync::{RawMutex, RawThreadId};

type Inner<T> = lock_api::ReentrantMutex<RawMutex, RawThreadId, T>;
type InnerGuard<'a, T> = lock_api::ReentrantMutexGuard<'a, RawMutex, RawThreadId, T>;

/// A data-less reentrant lock: what the keyed levels hand out.
pub type Lock = ReentrantLock<()>;

/// An instance-level lock, embedded in the object it protects (optionally around data).
///
/// Two objects never share one, and dropping the object drops the lock: nothing is left in any
/// registry.
pub type InstanceLock<T = ()> = ReentrantLock<T>;

/// A reentrant lock at one of the five [`Level`]s.
///
/// The owning thread may acquire it again while holding it; it is released when the last
/// guard drops. A panic while holding it releases it too (there is no poisoning): the next
/// holder proceeds, and data protected by the lock is whatever the panicking code left.
///
/// `ReentrantLock<T>` hands out `&T` only, since a second guard on the same thread may alias
/// it; put a [`Cell`](std::cell::Cell) or [`RefCell`](std::cell::RefCell) inside to mutate.
///
/// Global, module, class and function locks are `&'static Lock`s found by key (see the
/// functions of [`crate::lock`]); instance locks are values you embed in your own types,
/// created with [`ReentrantLock::new`] (alias [`InstanceLock`](super::InstanceLock)).
///
/// ```
/// use std::cell::Cell;
/// use unlocked::lock::InstanceLock;
///
/// struct Account {
///     balance: InstanceLock<Cell<i64>>,
/// }
///
/// let account = Account { balance: InstanceLock::new(Cell::new(10)) };
/// let outer = account.balance.lock();
/// let inner = account.balance.lock(); // reentrant: the same thread nests
/// inner.set(inner.get() + 5);
/// drop(inner);
/// assert_eq!(outer.get(), 15);
/// ```
pub struct ReentrantLock<T: ?Sized = ()> {
    meta: Meta,
    inner: Inner<T>,
}

/// Everything but the mutex. Its `Drop` folds an instance lock's counts into the per-label
/// aggregate, so instance locks leave no per-object entry behind.
struct Meta {
    level: Level,
    key: &'static str,
    stats: LockStats,
    /// Every acquisition of this lock is order-checked, whatever the global switch: set for
    /// the locks the `Blocking` fallback keeps its data under (a [`Guarded`](super::Guarded)
    /// was put under it). A plain std atomic (configuration, set once, like the global
    /// switch); it sits next to the statistics, in a line the holder touches anyway.
    always_check: std::sync::atomic::AtomicBool,
}

impl Drop for Meta {
    fn drop(&mut self) {
        // Not under loom: the aggregates are process-wide statics, which loom objects cannot
        // populate across model executions.
        #[cfg(not(unlocked_loom))]
        if self.level == Level::Instance
            && self.stats.acquisitions.load(crate::sync::Ordering::Relaxed) > 0
        {
            super::stats::instance_aggregate(self.key).absorb(&self.stats);
        }
    }
}

#[cfg(not(unlocked_loom))]
impl ReentrantLock<()> {
    /// A keyed lock usable in a `static` (the global lock): found without any lookup.
    pub(crate) const fn new_static(level: Level, key: &'static str) -> Self {
        use lock_api::{GetThreadId, RawMutex as _};
        Self {
            meta: Meta {
                level,
                key,
                stats: LockStats::new(),
                always_check: std::sync::atomic::AtomicBool::new(false),
            },
            inner: Inner::const_new(RawMutex::INIT, RawThreadId::INIT, ()),
        }
    }
}

impl<T> ReentrantLock<T> {
    /// An instance-level lock around `value`, labelled with the type name of `T` in
    /// [`report`](super::report).
    pub fn new(value: T) -> Self {
        Self::with_label(std::any::type_name::<T>(), value)
    }

    /// An instance-level lock around `value`, reported under `label` (use the owning type's
    /// name: every instance lock with one label is summed into one report line).
    pub fn with_label(label: &'static str, value: T) -> Self {
        Self::with_level(Level::Instance, label, value)
    }

    pub(crate) fn with_level(level: Level, key: &'static str, value: T) -> Self {
        let lock = Self {
            meta: Meta {
                level,
                key,
                stats: LockStats::new(),
                always_check: std::sync::atomic::AtomicBool::new(false),
            },
            inner: Inner::new(value),
        };
        // Under loom the raw mutex's model atomic is created on first use (see `sync.rs`):
        // create it here, in the constructing thread, so later users are ordered after it.
        #[cfg(unlocked_loom)]
        drop(lock.inner.try_lock());
        lock
    }

    /// Consumes the lock, returning the value inside.
    pub fn into_inner(self) -> T {
        let Self { meta, inner } = self;
        drop(meta);
        inner.into_inner()
    }
}

#[cold]
#[inline(never)]
fn order_panic(e: LockOrderError) -> ! {
    panic!("{e}")
}

/// Which kind of wait an acquisition may do.
enum Wait {
    Never,
    For(Duration),
    Forever,
}

enum Refused {
    Order(LockOrderError),
    Busy,
}

impl<T: ?Sized> ReentrantLock<T> {
    /// The lock's level.
    pub fn level(&self) -> Level {
        self.meta.level
    }

    /// The lock's key: module path, type name, function name or instance label.
    pub fn key(&self) -> &'static str {
        self.meta.key
    }

    /// Makes every later acquisition of this lock order-checked, whatever
    /// [`set_order_check`](super::set_order_check) says (the locks of the `Blocking`
    /// fallback; see [`Guarded::new`](super::Guarded::new)).
    pub(crate) fn always_check(&self) {
        // Relaxed: configuration; see `order::enabled`.
        self.meta
            .always_check
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether this acquisition is order-checked: the global switch, or this lock's own.
    #[inline]
    fn check_on(&self) -> bool {
        // Relaxed: configuration flags, see `order::enabled`.
        order::enabled()
            || self
                .meta
                .always_check
                .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Acquires the lock, blocking until it is free (or at once if this thread holds it).
    ///
    /// # Panics
    ///
    /// While the lock-order check is on (debug builds, the `lock-order` feature,
    /// [`set_order_check(true)`](super::set_order_check), and always for a lock that a
    /// [`Guarded`](super::Guarded) value lives under), panics with a
    /// [`LockOrderError`] message naming both acquisition sites if this thread holds a finer
    /// lock. Use [`checked_lock`](Self::checked_lock) to get the error as a value instead.
    #[track_caller]
    #[inline]
    pub fn lock(&self) -> LockGuard<'_, T> {
        if self.check_on() {
            return self.lock_checked_or_panic(Location::caller());
        }
        // The fast path, kept small enough to inline: one relaxed load above, the mutex's own
        // fast path, and a plain store to the counter.
        let guard = match self.inner.try_lock() {
            Some(guard) => guard,
            None => self.lock_contended(),
        };
        LockStats::bump_held(&self.meta.stats.acquisitions, 1);
        LockGuard::new(self, guard, false)
    }

    /// `lock()` with the order check: no `Result` in between (a violation panics right
    /// here), so nothing larger than the guard goes through memory.
    #[inline(never)]
    fn lock_checked_or_panic(&self, location: &'static Location<'static>) -> LockGuard<'_, T> {
        let site = LockSite {
            level: self.meta.level,
            key: self.meta.key,
            location,
        };
        let recorded = match order::check_and_push(self.addr(), site) {
            order::Pushed::Recorded => true,
            order::Pushed::Full | order::Pushed::Reentry => false,
            // Taken while the check was off, so not in the record: a re-entry, not refused.
            order::Pushed::Refused if self.inner.is_owned_by_current_thread() => false,
            order::Pushed::Refused => order_panic(order::violation(site)),
        };
        let guard = match self.inner.try_lock() {
            Some(guard) => guard,
            None => self.lock_contended(),
        };
        LockStats::bump_held(&self.meta.stats.acquisitions, 1);
        LockGuard::new(self, guard, recorded)
    }

    #[cold]
    #[inline(never)]
    fn lock_contended(&self) -> InnerGuard<'_, T> {
        match self.acquire_slow(Wait::Forever) {
            Some(guard) => guard,
            None => unreachable!("a blocking acquisition always ends holding the lock"),
        }
    }

    /// Acquires the lock, always checking the lock order (whether or not the check is on for
    /// [`lock`](Self::lock)), and reports a violation as an error instead of panicking.
    #[track_caller]
    pub fn checked_lock(&self) -> Result<LockGuard<'_, T>, LockOrderError> {
        match self.acquire(Location::caller(), Wait::Forever, true) {
            Ok(guard) => Ok(guard),
            Err(Refused::Order(e)) => Err(e),
            Err(Refused::Busy) => {
                unreachable!("a blocking acquisition always ends holding the lock")
            }
        }
    }

    /// Acquires the lock if that needs no waiting.
    #[track_caller]
    pub fn try_lock(&self) -> Result<LockGuard<'_, T>, TryLockError> {
        match self.acquire(Location::caller(), Wait::Never, self.check_on()) {
            Ok(guard) => Ok(guard),
            Err(Refused::Order(e)) => Err(TryLockError::Order(e)),
            Err(Refused::Busy) => Err(TryLockError::WouldBlock),
        }
    }

    /// Acquires the lock, waiting at most `timeout`.
    #[track_caller]
    pub fn try_lock_for(&self, timeout: Duration) -> Result<LockGuard<'_, T>, TryLockForError> {
        match self.acquire(Location::caller(), Wait::For(timeout), self.check_on()) {
            Ok(guard) => Ok(guard),
            Err(Refused::Order(e)) => Err(TryLockForError::Order(e)),
            Err(Refused::Busy) => Err(TryLockForError::Timeout(timeout)),
        }
    }

    /// Runs `f` while holding the lock (the closure form of the seed's `locked(func, *args)`).
    ///
    /// A panic in `f` releases the lock and continues unwinding.
    ///
    /// # Panics
    ///
    /// As [`lock`](Self::lock), on a lock-order violation; and whenever `f` panics.
    #[track_caller]
    pub fn locked<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        let guard = self.lock();
        f(&guard)
    }

    /// Whether any thread holds the lock.
    pub fn is_locked(&self) -> bool {
        self.inner.is_locked()
    }

    /// Whether the calling thread holds the lock.
    pub fn is_held_by_current_thread(&self) -> bool {
        self.inner.is_owned_by_current_thread()
    }

    /// Mutable access without locking: `&mut self` proves no one else can hold the lock.
    pub fn get_mut(&mut self) -> &mut T {
        self.inner.get_mut()
    }

    /// This lock's contention statistics.
    pub fn stats(&self) -> LockReport {
        let (acquisitions, contended, wait) = self.meta.stats.snapshot();
        LockReport {
            level: self.meta.level,
            key: self.meta.key,
            acquisitions,
            contended,
            wait,
        }
    }

    #[inline]
    fn acquire(
        &self,
        location: &'static Location<'static>,
        wait: Wait,
        check: bool,
    ) -> Result<LockGuard<'_, T>, Refused> {
        if check {
            return self.acquire_checked_outlined(location, wait);
        }
        // Without the check there is no need to tell re-entry from a first acquisition: both
        // succeed in `try_lock`, and both are counted.
        let guard = match self.inner.try_lock() {
            Some(guard) => guard,
            None => self.acquire_slow(wait).ok_or(Refused::Busy)?,
        };
        LockStats::bump_held(&self.meta.stats.acquisitions, 1);
        Ok(LockGuard::new(self, guard, false))
    }

    /// [`acquire`](Self::acquire) with the lock-order check. Inlined into its out-of-line
    /// callers, so its `Result` never goes through memory, and kept out of the unchecked fast
    /// path.
    #[inline(always)]
    fn acquire_checked(
        &self,
        location: &'static Location<'static>,
        wait: Wait,
    ) -> Result<LockGuard<'_, T>, Refused> {
        let site = LockSite {
            level: self.meta.level,
            key: self.meta.key,
            location,
        };
        let recorded = match order::check_and_push(self.addr(), site) {
            order::Pushed::Recorded => true,
            order::Pushed::Full => false,
            // Re-entry is never refused (re-entering cannot deadlock) nor recorded twice.
            order::Pushed::Reentry => false,
            // A lock taken while the check was off is not in the record: make sure this is
            // not a re-entry of one before refusing.
            order::Pushed::Refused if self.inner.is_owned_by_current_thread() => false,
            order::Pushed::Refused => return Err(Refused::Order(order::violation(site))),
        };
        let guard = match self.inner.try_lock() {
            Some(guard) => guard,
            None => match self.acquire_slow(wait) {
                Some(guard) => guard,
                None => {
                    if recorded {
                        order::pop(self.addr());
                    }
                    return Err(Refused::Busy);
                }
            },
        };
        LockStats::bump_held(&self.meta.stats.acquisitions, 1);
        Ok(LockGuard::new(self, guard, recorded))
    }

    #[inline(never)]
    fn acquire_checked_outlined(
        &self,
        location: &'static Location<'static>,
        wait: Wait,
    ) -> Result<LockGuard<'_, T>, Refused> {
        self.acquire_checked(location, wait)
    }

    /// The slow path: another thread holds the lock. Only here is the clock read.
    #[cold]
    fn acquire_slow(&self, wait: Wait) -> Option<InnerGuard<'_, T>> {
        if matches!(wait, Wait::Never) {
            return None;
        }
        let start = Instant::now();
        let guard = match wait {
            Wait::For(timeout) => self.inner.try_lock_for(timeout)?,
            _ => self.inner.lock(),
        };
        let waited = start.elapsed();
        LockStats::bump_held(&self.meta.stats.contended, 1);
        LockStats::bump_held(
            &self.meta.stats.wait_ns,
            u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX),
        );
        Some(guard)
    }

    #[inline(always)]
    fn addr(&self) -> usize {
        (self as *const Self).cast::<()>() as usize
    }
}

impl<T: Default> Default for ReentrantLock<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T: ?Sized> fmt::Debug for ReentrantLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReentrantLock")
            .field("level", &self.meta.level)
            .field("key", &self.meta.key)
            .field("locked", &self.is_locked())
            .finish_non_exhaustive()
    }
}

/// Proof that the current thread holds a [`ReentrantLock`]; releases it (one level of nesting)
/// when dropped.
///
/// The guard is tied to the thread that acquired the lock, so it is `!Send`. **Async users:**
/// never hold it across `.await` — the task may resume on another thread, and a blocked
/// executor thread stalls every task on it. Take the lock inside a synchronous block, or use
/// the closure form, and keep the section short.
///
/// ```compile_fail
/// fn assert_send<T: Send>(_: T) {}
/// let lock = unlocked::lock::InstanceLock::new(());
/// assert_send(lock.lock());
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a, T: ?Sized = ()> {
    guard: InnerGuard<'a, T>,
    lock: &'a ReentrantLock<T>,
    recorded: bool,
    _not_send: PhantomData<*const ()>,
}

impl<'a, T: ?Sized> LockGuard<'a, T> {
    #[inline]
    fn new(lock: &'a ReentrantLock<T>, guard: InnerGuard<'a, T>, recorded: bool) -> Self {
        Self {
            guard,
            lock,
            recorded,
            _not_send: PhantomData,
        }
    }

    /// The lock this guard holds.
    pub fn lock(guard: &Self) -> &'a ReentrantLock<T> {
        guard.lock
    }
}

impl<T: ?Sized> Deref for LockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T: ?Sized> Drop for LockGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        if self.recorded {
            order::pop(self.lock.addr());
        }
        // `guard` is dropped after this, releasing one level of the reentrant mutex.
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for LockGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
