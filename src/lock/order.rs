//! Lock-order checking: a per-thread record of the locks this thread holds.
//!
//! Levels are ordered global → module → class → instance → function (coarse to fine). Taking a
//! coarser lock while holding a finer one is how two threads deadlock (one holds the finer and
//! waits for the coarser, the other the reverse), so the check refuses it before blocking.
//! Re-entering a lock already held never deadlocks and is never refused.
//!
//! The record is thread-local (no shared write, no lock) and has no destructor, so reaching it
//! is a plain thread-pointer-relative access: a fixed stack of the held locks plus a bitmask of
//! the levels held, which makes the common case (no violation) one shift and compare. It is on
//! by default in debug builds (or with the `lock-order` feature) and can be switched at run
//! time with [`set_order_check`](super::set_order_check).

use std::cell::Cell;
use std::panic::Location;
use std::sync::atomic::{AtomicBool, Ordering};

use super::error::{LockOrderError, LockSite};
use super::level::Level;

/// Whether acquisitions are checked and recorded. A plain std atomic, not the loom shim's: it
/// is configuration, not part of a protocol, and must be usable from a `static`.
static ENABLED: AtomicBool = AtomicBool::new(cfg!(any(debug_assertions, feature = "lock-order")));

/// How many distinct held locks one thread can have recorded. Acquisitions beyond that are not
/// recorded (nor checked against), which only weakens the check for threads holding more than
/// this many locks at once.
pub(crate) const CAPACITY: usize = 32;

#[derive(Clone, Copy)]
struct Held {
    /// Address of the lock, to find the entry again when its guard drops (0: empty slot).
    lock: usize,
    site: LockSite,
}

impl Held {
    const EMPTY: Held = Held {
        lock: 0,
        site: LockSite {
            level: Level::Global,
            key: "",
            location: Location::caller(),
        },
    };
}

struct Stack {
    len: Cell<usize>,
    /// Bit `level` is set while at least one lock of that level is held.
    mask: Cell<u8>,
    per_level: [Cell<u16>; 5],
    entries: [Cell<Held>; CAPACITY],
}

crate::sync::thread_local! {
    static HELD: Stack = Stack {
        len: Cell::new(0),
        mask: Cell::new(0),
        per_level: [const { Cell::new(0) }; 5],
        entries: [const { Cell::new(Held::EMPTY) }; CAPACITY],
    };
}

#[inline]
pub(crate) fn enabled() -> bool {
    // Relaxed: a configuration flag; a thread that sees the old value for a moment checks (or
    // skips) one more acquisition, and each guard remembers whether it recorded itself.
    ENABLED.load(Ordering::Relaxed)
}

pub(crate) fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// What [`check_and_push`] did.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Recorded as held: the caller must [`pop`] it when the acquisition fails or its guard
    /// drops.
    Recorded,
    /// This thread already holds the lock (re-entry): nothing recorded, nothing to check.
    Reentry,
    /// Not recorded: this thread already holds [`CAPACITY`] locks.
    Full,
    /// A finer lock is held: the caller confirms it is not a re-entry of a lock taken while
    /// the check was off, then calls [`violation`] for the error.
    Refused,
}

/// Refuses the acquisition of `site` if this thread holds a finer lock; otherwise records it as
/// held.
#[inline]
pub(crate) fn check_and_push(lock: usize, site: LockSite) -> Pushed {
    HELD.with(|held| {
        let len = held.len.get();
        // Re-entry: the lock is in this thread's record (usually a very short list).
        if held.entries[..len].iter().any(|h| h.get().lock == lock) {
            return Pushed::Reentry;
        }
        let level = site.level as u8;
        if held.mask.get() >> (level + 1) != 0 {
            return Pushed::Refused;
        }
        let Some(slot) = held.entries.get(len) else {
            return Pushed::Full;
        };
        slot.set(Held { lock, site });
        held.len.set(len + 1);
        let count = &held.per_level[usize::from(level)];
        count.set(count.get() + 1);
        held.mask.set(held.mask.get() | 1 << level);
        Pushed::Recorded
    })
}

/// The error for a [`Pushed::Refused`] acquisition of `acquiring`.
#[cold]
pub(crate) fn violation(acquiring: LockSite) -> LockOrderError {
    // Name the finest lock held: the most informative one.
    let held = HELD.with(|held| {
        held.entries[..held.len.get()]
            .iter()
            .map(Cell::get)
            .filter(|h| h.site.level > acquiring.level)
            .max_by_key(|h| h.site.level)
            .map(|h| h.site)
    });
    LockOrderError {
        acquiring,
        held: held.expect("the level mask says a finer lock is held"),
    }
}

/// Removes the most recent record of `lock`; guards may drop in any order.
#[inline]
pub(crate) fn pop(lock: usize) {
    // `try_with`: a guard dropped during thread-local destruction has nothing left to update.
    let _ = HELD.try_with(|held| {
        let len = held.len.get();
        if len == 0 {
            return;
        }
        let top = held.entries[len - 1].get();
        let level = if top.lock == lock {
            // The common, last-in-first-out case.
            top.site.level
        } else {
            match remove_inner(held, lock, len) {
                Some(level) => level,
                None => return,
            }
        };
        held.len.set(len - 1);
        let count = &held.per_level[level as usize];
        count.set(count.get() - 1);
        if count.get() == 0 {
            held.mask.set(held.mask.get() & !(1 << level as u8));
        }
    });
}

/// Removes a record below the top of the stack (guards dropped out of order); returns its
/// level. The caller shortens the stack by one.
#[cold]
fn remove_inner(held: &Stack, lock: usize, len: usize) -> Option<Level> {
    let entries = &held.entries[..len];
    let i = entries.iter().rposition(|h| h.get().lock == lock)?;
    let level = entries[i].get().site.level;
    for j in i..len - 1 {
        entries[j].set(entries[j + 1].get());
    }
    Some(level)
}

/// How many locks this thread has recorded as held (for tests and diagnostics).
pub(crate) fn held_count() -> usize {
    HELD.with(|held| held.len.get())
}
