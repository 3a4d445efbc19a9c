//! Lock-order checking: a per-thread record of the locks this thread holds.
//!
//! Levels are ordered global → module → class → instance → function (coarse to fine). Taking a
//! coarser lock while holding a finer one is how two threads deadlock (one holds the finer and
//! waits for the coarser, the other the reverse), so the check refuses it before blocking.
//! Re-entering a lock already held never deadlocks and is never refused.
//!
//! The record is thread-local: no shared write, no lock. It is on by default in debug builds
//! (or with the `lock-order` feature) and can be switched at run time with
//! [`set_order_check`](super::set_order_check).

use std::cell::RefCell;
use std::panic::Location;
use std::sync::atomic::{AtomicBool, Ordering};

use super::Level;
use crate::error::{LockOrderError, LockSite};

/// Whether acquisitions are checked and recorded. A plain std atomic, not the loom shim's: it
/// is configuration, not part of a protocol, and must be usable from a `static`.
static ENABLED: AtomicBool = AtomicBool::new(cfg!(any(debug_assertions, feature = "lock-order")));

#[derive(Clone, Copy)]
struct Held {
    /// Address of the lock, to find the entry again when its guard drops.
    lock: usize,
    site: LockSite,
}

crate::sync::thread_local! {
    static HELD: RefCell<Vec<Held>> = RefCell::new(Vec::new());
}

pub(crate) fn enabled() -> bool {
    // Relaxed: a configuration flag; a thread that sees the old value for a moment checks (or
    // skips) one more acquisition, and each guard remembers whether it recorded itself.
    ENABLED.load(Ordering::Relaxed)
}

pub(crate) fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Refuses the acquisition of a lock at `level` if this thread holds a finer lock.
pub(crate) fn check(
    level: Level,
    key: &'static str,
    location: &'static Location<'static>,
) -> Result<(), LockOrderError> {
    HELD.with(|held| {
        let held = held.borrow();
        // The finest lock held is the most informative one to name; scanning is cheap (a thread
        // rarely holds more than a handful of locks).
        match held.iter().filter(|h| h.site.level > level).max_by_key(|h| h.site.level) {
            None => Ok(()),
            Some(finer) => Err(LockOrderError {
                acquiring: LockSite {
                    level,
                    key,
                    location,
                },
                held: finer.site,
            }),
        }
    })
}

pub(crate) fn push(lock: usize, site: LockSite) {
    HELD.with(|held| held.borrow_mut().push(Held { lock, site }));
}

/// Removes the most recent record of `lock`; guards may drop in any order.
pub(crate) fn pop(lock: usize) {
    // `try_with`: a guard dropped during thread-local destruction has nothing left to update.
    let _ = HELD.try_with(|held| {
        let mut held = held.borrow_mut();
        if let Some(i) = held.iter().rposition(|h| h.lock == lock) {
            held.remove(i);
        }
    });
}

/// How many locks this thread has recorded as held (for tests and diagnostics).
pub(crate) fn held_count() -> usize {
    HELD.with(|held| held.borrow().len())
}
