//! [`ReentrantLock`]: parking_lot's reentrant mutex plus a level, a key, contention statistics
//! and the lock-order check.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::panic::Location;
use std::time::{Duration, Instant};

use super::{Level, order};
use crate::error::{LockOrderError, LockSite, TryLockError, TryLockForError};
use crate::sync::{AtomicU64, Ordering, RawMutex, RawThreadId};

type Inner<T> = lock_api::ReentrantMutex<RawMutex, RawThreadId, T>;
type InnerGuard<'a, T> = lock_api::ReentrantMutexGuard<'a, RawMutex, RawThreadId, T>;

/// Contention counters of one lock.
///
/// `acquisitions` and, on the slow path, `contended` and `wait_ns` are only written by the
/// thread that holds the lock, so they are updated with a plain load and store (no
/// read-modify-write, no extra cache-line transfer); readers may see them a moment late.
pub(crate) struct LockStats {
    pub(crate) acquisitions: AtomicU64,
    pub(crate) contended: AtomicU64,
    pub(crate) wait_ns: AtomicU64,
}

impl LockStats {
    pub(crate) fn new() -> Self {
        Self {
            acquisitions: AtomicU64::new(0),
            contended: AtomicU64::new(0),
            wait_ns: AtomicU64::new(0),
        }
    }

    /// Adds one to a counter owned by the lock holder.
    #[inline]
    fn bump_held(counter: &AtomicU64, by: u64) {
        // Relaxed load + store: only the holder writes, and the lock's own Acquire/Release
        // orders successive holders' writes, so no increment is lost.
        counter.store(counter.load(Ordering::Relaxed).wrapping_add(by), Ordering::Relaxed);
    }

    /// Adds counters of a dropped lock into an aggregate shared by many (instance locks).
    #[cfg_attr(unlocked_loom, allow(dead_code))]
    pub(crate) fn absorb(&self, other: &LockStats) {
        // Relaxed read-modify-writes: aggregates are shared by unrelated locks, so a plain
        // store could lose a concurrent update; no other memory depends on these counters.
        for (into, from) in [
            (&self.acquisitions, &other.acquisitions),
            (&self.contended, &other.contended),
            (&self.wait_ns, &other.wait_ns),
        ] {
            into.fetch_add(from.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }

    pub(crate) fn snapshot(&self) -> (u64, u64, Duration) {
        // Relaxed: statistics, read without synchronising with the holder.
        (
            self.acquisitions.load(Ordering::Relaxed),
            self.contended.load(Ordering::Relaxed),
            Duration::from_nanos(self.wait_ns.load(Ordering::Relaxed)),
        )
    }
}

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
}

impl Drop for Meta {
    fn drop(&mut self) {
        // Not under loom: the aggregates are process-wide statics, which loom objects cannot
        // populate across model executions.
        #[cfg(not(unlocked_loom))]
        if self.level == Level::Instance && self.stats.acquisitions.load(Ordering::Relaxed) > 0 {
            super::instance_aggregate(self.key).absorb(&self.stats);
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
        Self {
            meta: Meta {
                level,
                key,
                stats: LockStats::new(),
            },
            inner: Inner::new(value),
        }
    }

    /// Consumes the lock, returning the value inside.
    pub fn into_inner(self) -> T {
        let Self { meta, inner } = self;
        drop(meta);
        inner.into_inner()
    }
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

    /// Acquires the lock, blocking until it is free (or at once if this thread holds it).
    ///
    /// # Panics
    ///
    /// While the lock-order check is on (debug builds, the `lock-order` feature, or
    /// [`set_order_check(true)`](super::set_order_check)), panics with a
    /// [`LockOrderError`] message naming both acquisition sites if this thread holds a finer
    /// lock. Use [`checked_lock`](Self::checked_lock) to get the error as a value instead.
    #[track_caller]
    #[inline]
    pub fn lock(&self) -> LockGuard<'_, T> {
        let check = order::enabled();
        match self.acquire(Location::caller(), Wait::Forever, check) {
            Ok(guard) => guard,
            Err(Refused::Order(e)) => panic!("{e}"),
            Err(Refused::Busy) => unreachable!("a blocking acquisition always ends holding the lock"),
        }
    }

    /// Acquires the lock, always checking the lock order (whether or not the check is on for
    /// [`lock`](Self::lock)), and reports a violation as an error instead of panicking.
    #[track_caller]
    pub fn checked_lock(&self) -> Result<LockGuard<'_, T>, LockOrderError> {
        match self.acquire(Location::caller(), Wait::Forever, true) {
            Ok(guard) => Ok(guard),
            Err(Refused::Order(e)) => Err(e),
            Err(Refused::Busy) => unreachable!("a blocking acquisition always ends holding the lock"),
        }
    }

    /// Acquires the lock if that needs no waiting.
    #[track_caller]
    pub fn try_lock(&self) -> Result<LockGuard<'_, T>, TryLockError> {
        match self.acquire(Location::caller(), Wait::Never, order::enabled()) {
            Ok(guard) => Ok(guard),
            Err(Refused::Order(e)) => Err(TryLockError::Order(e)),
            Err(Refused::Busy) => Err(TryLockError::WouldBlock),
        }
    }

    /// Acquires the lock, waiting at most `timeout`.
    #[track_caller]
    pub fn try_lock_for(&self, timeout: Duration) -> Result<LockGuard<'_, T>, TryLockForError> {
        match self.acquire(Location::caller(), Wait::For(timeout), order::enabled()) {
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
    pub fn stats(&self) -> super::LockReport {
        let (acquisitions, contended, wait) = self.meta.stats.snapshot();
        super::LockReport {
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
        // Re-entry needs neither the order check (re-entering never deadlocks) nor statistics
        // (the mutex is not acquired again, only its count is raised).
        if self.inner.is_owned_by_current_thread() {
            let guard = self.inner.lock();
            return Ok(LockGuard::new(self, guard, false));
        }
        if check {
            order::check(self.meta.level, self.meta.key, location).map_err(Refused::Order)?;
        }
        let guard = match self.inner.try_lock() {
            Some(guard) => guard,
            None => {
                // The slow path: someone else holds it. Only here do we read the clock.
                let start = Instant::now();
                let guard = match wait {
                    Wait::Never => None,
                    Wait::For(timeout) => self.inner.try_lock_for(timeout),
                    Wait::Forever => Some(self.inner.lock()),
                };
                let waited = start.elapsed();
                let Some(guard) = guard else {
                    return Err(Refused::Busy);
                };
                LockStats::bump_held(&self.meta.stats.contended, 1);
                LockStats::bump_held(
                    &self.meta.stats.wait_ns,
                    u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX),
                );
                guard
            }
        };
        LockStats::bump_held(&self.meta.stats.acquisitions, 1);
        if check {
            order::push(
                self.addr(),
                LockSite {
                    level: self.meta.level,
                    key: self.meta.key,
                    location,
                },
            );
        }
        Ok(LockGuard::new(self, guard, check))
    }

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
