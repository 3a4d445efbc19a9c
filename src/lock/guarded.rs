//! [`Guarded`]: data of your own protected by a keyed lock.

use std::cell::{RefCell, RefMut};
use std::fmt;
use std::ops::{Deref, DerefMut};

use super::error::{GuardedError, ReentrantAccessError};
use super::reentrant::{Lock, LockGuard};

/// A value that is only reachable while holding a given keyed lock.
///
/// Global, module, class and function locks carry no data: they are shared by everything with
/// the same key. `Guarded` ties a value to one of them, so code can keep, say, a session map
/// "under the sessions module's lock" (the Django spec's proposal) without `unsafe`: every
/// access takes the lock first. Several `Guarded` values may share one lock; holding it grants
/// access to all of them.
///
/// The lock is reentrant but `&mut T` must stay unique, so a nested access to the *same*
/// value from inside [`with`](Guarded::with) is refused ([`try_with`](Guarded::try_with)
/// returns [`ReentrantAccessError`]; [`with`](Guarded::with) panics). Nested access to
/// *other* values under the same lock is fine.
///
/// ```
/// use std::collections::HashMap;
/// use unlocked::lock::{self, Guarded};
///
/// struct SessionStore {
///     map: Guarded<HashMap<String, u32>>,
/// }
///
/// let store = SessionStore { map: Guarded::new(lock::module(module_path!()), HashMap::new()) };
/// store.map.with(|m| m.insert("k".into(), 1));
/// assert_eq!(store.map.with(|m| m["k"]), 1);
/// ```
pub struct Guarded<T: ?Sized> {
    lock: &'static Lock,
    value: RefCell<T>,
}

// SAFETY: `value` is only reached through `with`, `try_with` and `lock`, each of which holds
// `self.lock` for as long as the borrow lives. The lock admits one thread at a time and its
// release/acquire orders one holder's accesses before the next one's, so the `RefCell` (which
// is not `Sync`) is never touched by two threads at once; within the holding thread, the
// `RefCell` itself refuses aliasing `&mut`. `T: Send` because successive holders on different
// threads get `&mut T`, which lets them move values in and out.
unsafe impl<T: ?Sized + Send> Sync for Guarded<T> {}

impl<T> Guarded<T> {
    /// Puts `value` under `lock`.
    ///
    /// From then on every acquisition of `lock` (through this value or not) is order-checked
    /// in every build, not only while [`set_order_check`](super::set_order_check) is on: `lock`
    /// is now a lock of the blocking fallback, where a violation must not pass silently in
    /// release (see the [module docs](super#lock-order)).
    pub fn new(lock: &'static Lock, value: T) -> Self {
        lock.always_check();
        Self {
            lock,
            value: RefCell::new(value),
        }
    }

    /// Takes the value back.
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

impl<T: ?Sized> Guarded<T> {
    /// The lock that protects the value.
    pub fn guarding_lock(&self) -> &'static Lock {
        self.lock
    }

    /// Runs `f` on the value while holding the lock.
    ///
    /// # Panics
    ///
    /// If called from inside another access to this same value on this thread (use
    /// [`try_with`](Self::try_with) to get that as an error), on a lock-order violation (in
    /// every build: see [`new`](Self::new); [`checked_with`](Self::checked_with) returns it as
    /// a value), and if `f` panics (the lock is released first).
    #[track_caller]
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut guard = self.lock();
        f(&mut guard)
    }

    /// As [`with`](Self::with), but a nested access to this value is an error, not a panic.
    #[track_caller]
    pub fn try_with<R>(&self, f: impl FnOnce(&mut T) -> R) -> Result<R, ReentrantAccessError> {
        let mut guard = self.try_lock_ref()?;
        Ok(f(&mut guard))
    }

    /// As [`with`](Self::with), but a lock-order violation or a nested access is an error
    /// value, not a panic. The order is checked in every build.
    ///
    /// ```
    /// use unlocked::lock::{self, Guarded, GuardedError, InstanceLock};
    ///
    /// let sessions = Guarded::new(lock::module("docs::checked_with"), 1_u32);
    /// let instance = InstanceLock::new(());
    /// assert_eq!(sessions.checked_with(|n| *n + 1), Ok(2));
    /// // An instance lock is finer than a module lock: refused while it is held.
    /// let _held = instance.checked_lock()?;
    /// assert!(matches!(sessions.checked_with(|n| *n), Err(GuardedError::Order(_))));
    /// # Ok::<(), unlocked::lock::LockOrderError>(())
    /// ```
    #[track_caller]
    pub fn checked_with<R>(&self, f: impl FnOnce(&mut T) -> R) -> Result<R, GuardedError> {
        let mut guard = self.checked_lock()?;
        Ok(f(&mut guard))
    }

    /// As [`lock`](Self::lock), but a lock-order violation or a nested access is an error
    /// value, not a panic.
    #[track_caller]
    pub fn checked_lock(&self) -> Result<GuardedMut<'_, T>, GuardedError> {
        let lock_guard = self.lock.checked_lock()?;
        let value = self
            .value
            .try_borrow_mut()
            .map_err(|_| ReentrantAccessError {
                lock: self.lock.key(),
            })?;
        Ok(GuardedMut {
            value,
            _lock: lock_guard,
        })
    }

    /// Takes the lock and borrows the value; both are released when the guard drops.
    ///
    /// # Panics
    ///
    /// As [`with`](Self::with).
    #[track_caller]
    pub fn lock(&self) -> GuardedMut<'_, T> {
        match self.try_lock_ref() {
            Ok(guard) => guard,
            Err(e) => panic!("{e}"),
        }
    }

    #[track_caller]
    fn try_lock_ref(&self) -> Result<GuardedMut<'_, T>, ReentrantAccessError> {
        let lock_guard = self.lock.lock();
        let value = self
            .value
            .try_borrow_mut()
            .map_err(|_| ReentrantAccessError {
                lock: self.lock.key(),
            })?;
        Ok(GuardedMut {
            value,
            _lock: lock_guard,
        })
    }

    /// Mutable access without locking: `&mut self` proves no one else can reach the value.
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }
}

impl<T: ?Sized> fmt::Debug for Guarded<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guarded")
            .field("lock", &self.lock.key())
            .finish_non_exhaustive()
    }
}

/// Exclusive access to a [`Guarded`] value; holds the lock. `!Send`, like every lock guard.
pub struct GuardedMut<'a, T: ?Sized> {
    // Field order matters: the borrow ends before the lock is released.
    value: RefMut<'a, T>,
    _lock: LockGuard<'a>,
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for GuardedMut<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.value, f)
    }
}

impl<T: ?Sized> Deref for GuardedMut<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: ?Sized> DerefMut for GuardedMut<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}
