//! The lock API's errors.
//!
//! Following crossbeam, each fallible operation has its own error type, so a `match` lists only
//! what that operation can actually report. Each component's errors live next to it
//! (`lock::error`, `template::error`, `session::error`, `model::error`) and are re-exported by
//! the component.

use std::error::Error;
use std::fmt;
use std::panic::Location;
use std::time::Duration;

use super::level::Level;

/// One side of a lock-order violation: which lock, and where it was (or is being) acquired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockSite {
    /// The lock's level.
    pub level: Level,
    /// The lock's key: module path, type name, function name or instance label.
    pub key: &'static str,
    /// Where in the source the lock was acquired.
    pub location: &'static Location<'static>,
}

impl fmt::Display for LockSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} lock `{}` acquired at {}",
            self.level, self.key, self.location
        )
    }
}

/// Acquiring a coarser lock while holding a finer one (levels are ordered global → module →
/// class → instance → function). Two threads doing this in opposite orders deadlock, which is
/// what Django hit in tickets #18251 and #11193.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockOrderError {
    /// The acquisition that was refused.
    pub acquiring: LockSite,
    /// The finer lock this thread already holds.
    pub held: LockSite,
}

impl fmt::Display for LockOrderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "lock-order violation: {} lock `{}` requested at {} while this thread holds the finer {}; \
             acquire locks from coarse to fine (global → module → class → instance → function), \
             or release the {} lock first",
            self.acquiring.level,
            self.acquiring.key,
            self.acquiring.location,
            self.held,
            self.held.level,
        )
    }
}

impl Error for LockOrderError {}

/// Why [`ReentrantLock::try_lock`](crate::lock::ReentrantLock::try_lock) did not acquire.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TryLockError {
    /// Another thread holds the lock.
    WouldBlock,
    /// Acquiring would break the lock order (only reported while the order check is on).
    Order(LockOrderError),
}

impl fmt::Display for TryLockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryLockError::WouldBlock => f.write_str("the lock is held by another thread"),
            TryLockError::Order(e) => e.fmt(f),
        }
    }
}

impl Error for TryLockError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            TryLockError::Order(e) => Some(e),
            TryLockError::WouldBlock => None,
        }
    }
}

/// Why [`ReentrantLock::try_lock_for`](crate::lock::ReentrantLock::try_lock_for) did not
/// acquire.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TryLockForError {
    /// Another thread held the lock for the whole timeout.
    Timeout(Duration),
    /// Acquiring would break the lock order (only reported while the order check is on).
    Order(LockOrderError),
}

impl fmt::Display for TryLockForError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryLockForError::Timeout(d) => {
                write!(f, "the lock stayed held by another thread for {d:?}")
            }
            TryLockForError::Order(e) => e.fmt(f),
        }
    }
}

impl Error for TryLockForError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            TryLockForError::Order(e) => Some(e),
            TryLockForError::Timeout(_) => None,
        }
    }
}

/// A nested access to a [`Guarded`](crate::lock::Guarded) value from inside another access to
/// it on the same thread: the lock is reentrant, but two `&mut` to one value may not coexist.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReentrantAccessError {
    /// The key of the lock guarding the value.
    pub lock: &'static str,
}

impl fmt::Display for ReentrantAccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "nested access to a value guarded by lock `{}` from inside an access to it on the same \
             thread; finish the outer access first, or pass the `&mut` down instead of reaching \
             the value again",
            self.lock
        )
    }
}

impl Error for ReentrantAccessError {}

/// Why [`Guarded::checked_with`](crate::lock::Guarded::checked_with) or
/// [`Guarded::checked_lock`](crate::lock::Guarded::checked_lock) refused an access.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GuardedError {
    /// Taking the guarding lock would break the lock order (checked in every build for the
    /// lock of a `Guarded` value).
    Order(LockOrderError),
    /// A nested access to the same value on this thread.
    Reentrant(ReentrantAccessError),
}

impl fmt::Display for GuardedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuardedError::Order(e) => e.fmt(f),
            GuardedError::Reentrant(e) => e.fmt(f),
        }
    }
}

impl Error for GuardedError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            GuardedError::Order(e) => Some(e),
            GuardedError::Reentrant(e) => Some(e),
        }
    }
}

impl From<LockOrderError> for GuardedError {
    fn from(e: LockOrderError) -> Self {
        GuardedError::Order(e)
    }
}

impl From<ReentrantAccessError> for GuardedError {
    fn from(e: ReentrantAccessError) -> Self {
        GuardedError::Reentrant(e)
    }
}
