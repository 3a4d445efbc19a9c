//! Bounded optimism, then a lock that optimistic writers respect: how a lock-free write is
//! guaranteed to finish.
//!
//! A compare-and-swap loop is lock-free (*some* writer always wins) but not starvation-free:
//! under contention one writer can lose every round. [`Escalation::run`] lets a writer try
//! optimistically a few times; after that it *escalates*: it takes the store's escalation lock
//! and raises a flag on each stripe it writes (a stripe is a group of keys: the flags are per
//! stripe, not per store, so a hot record does not slow writers of other records). Optimistic
//! writers check the flags of their stripes before every attempt and, seeing one raised, queue
//! on the lock instead of racing. Readers never look at any of this.
//!
//! **The bound.** The flag accesses and the cells' accesses are all `SeqCst`
//! ([`super::arc_cell`]), so they sit in one total order. Once an escalated writer E has raised
//! its flag, a thread T can make E's compare-and-swap fail only with an attempt whose flag
//! check came before E's raise in that order: T's *next* check comes after T's successful swap,
//! which comes after E read the cell, which comes after E's raise, so it sees the flag and
//! queues. Hence each other thread beats E at most once, and escalated writers exclude each
//! other through the lock: E finishes after at most *threads − 1* failed attempts. The loom
//! model `escalated_writer_finishes` checks this bound.
//!
//! The lock is reentrant, so a writer that escalated may write again from inside its own
//! attempt (a nested update of another record of the same store).

use crossbeam::utils::{Backoff, CachePadded};

use super::shim::{AtomicUsize, Ordering, RawMutex, RawThreadId};

/// How many stripes the flags are spread over.
pub(crate) const STRIPES: usize = 64;

/// The default for how many optimistic attempts a writer makes before it escalates.
pub(crate) const DEFAULT_ESCALATE_AFTER: u32 = 4;

/// What one attempt of a write did.
#[derive(Debug)]
#[allow(unreachable_pub)] // sealed: public in a private module (see `model::backend`)
pub enum Attempt<T> {
    /// Finished (committed, or failed for a reason other than contention): stop with `T`.
    Done(T),
    /// Lost a race: try again.
    Conflict,
}

/// How a write proceeds (a store's configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(unreachable_pub)] // sealed: public in a private module (see `model::backend`)
pub struct Progress {
    /// Optimistic attempts before escalating (0: always take the lock).
    pub escalate_after: u32,
    /// Attempts in all before giving up; `None`: never give up.
    pub budget: Option<u32>,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            escalate_after: DEFAULT_ESCALATE_AFTER,
            budget: None,
        }
    }
}

/// The write ran out of its budget after this many attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(unreachable_pub)] // sealed: public in a private module (see `model::backend`)
pub struct Exhausted {
    pub attempts: u32,
}

/// The escalation lock and flags of one store.
pub(crate) struct Escalation {
    lock: lock_api::ReentrantMutex<RawMutex, RawThreadId, ()>,
    flags: Box<[CachePadded<AtomicUsize>]>,
}

impl std::fmt::Debug for Escalation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Escalation").finish_non_exhaustive()
    }
}

impl Default for Escalation {
    fn default() -> Self {
        Self::new()
    }
}

/// Lowers the flags an escalated writer raised, also when its attempt panics.
struct Raised<'a> {
    flags: &'a [CachePadded<AtomicUsize>],
    stripes: &'a [usize],
}

impl Drop for Raised<'_> {
    fn drop(&mut self) {
        for &s in self.stripes {
            // Release: nothing is published through the flag (the cells publish their
            // values); any ordering would do, this one keeps the lowering after the
            // escalated writer's last cell access for a reader of the flag.
            self.flags[s].fetch_sub(1, Ordering::Release);
        }
    }
}

impl Escalation {
    pub(crate) fn new() -> Self {
        let escalation = Escalation {
            lock: lock_api::ReentrantMutex::new(()),
            flags: (0..STRIPES)
                .map(|_| CachePadded::new(AtomicUsize::new(0)))
                .collect(),
        };
        // Under loom the raw mutex creates its loom atomic on first use: do that here, in
        // the creating thread, not in a race between two first users.
        #[cfg(unlocked_loom)]
        drop(escalation.lock.lock());
        escalation
    }

    /// The stripe of a key, from any well-mixed bits of it.
    #[inline]
    pub(crate) fn stripe(bits: u64) -> usize {
        (bits % STRIPES as u64) as usize
    }

    /// Whether an escalated writer works on one of `stripes` (optimistic writers queue then).
    #[inline]
    fn raised(&self, stripes: &[usize]) -> bool {
        // SeqCst: the progress bound in the module docs needs the check and the cells'
        // accesses in one total order with the escalated writer's raise.
        stripes
            .iter()
            .any(|&s| self.flags[s].load(Ordering::SeqCst) != 0)
    }

    /// Runs `f` holding the escalation lock, without raising flags: for writers that must not
    /// interleave with escalated ones (the model store's multi-record installation).
    pub(crate) fn exclusive<R>(&self, f: impl FnOnce() -> R) -> R {
        let _lock = self.lock.lock();
        f()
    }

    /// Runs `attempt` until it is [`Attempt::Done`]: optimistically up to
    /// `progress.escalate_after` times (or until a flag of `stripes` is raised), then holding
    /// the lock with `stripes` flagged. Fails only when `progress.budget` runs out.
    pub(crate) fn run<T>(
        &self,
        stripes: &[usize],
        progress: Progress,
        mut attempt: impl FnMut() -> Attempt<T>,
    ) -> Result<T, Exhausted> {
        let budget = progress.budget.unwrap_or(u32::MAX);
        let mut attempts = 0_u32;
        let backoff = Backoff::new();
        while attempts < progress.escalate_after && !self.raised(stripes) {
            if attempts >= budget {
                return Err(Exhausted { attempts });
            }
            attempts += 1;
            match attempt() {
                Attempt::Done(t) => return Ok(t),
                Attempt::Conflict => pause(&backoff),
            }
        }
        let _lock = self.lock.lock();
        for &s in stripes {
            // SeqCst: see `raised`.
            self.flags[s].fetch_add(1, Ordering::SeqCst);
        }
        let _raised = Raised {
            flags: &self.flags,
            stripes,
        };
        retry(progress.budget, attempts, attempt)
    }
}

/// Runs `attempt` until it is [`Attempt::Done`] or the `budget` (attempts in all, `done` of
/// them already made) runs out, with no pause: for writers no other writer can get between.
pub(crate) fn retry<T>(
    budget: Option<u32>,
    mut done: u32,
    mut attempt: impl FnMut() -> Attempt<T>,
) -> Result<T, Exhausted> {
    let budget = budget.unwrap_or(u32::MAX);
    loop {
        if done >= budget {
            return Err(Exhausted { attempts: done });
        }
        done = done.saturating_add(1);
        if let Attempt::Done(t) = attempt() {
            return Ok(t);
        }
    }
}

/// Backs off between optimistic attempts. Under loom, a yield, so the model schedules the
/// thread that won.
#[inline]
fn pause(backoff: &Backoff) {
    #[cfg(unlocked_loom)]
    {
        let _ = backoff;
        super::shim::yield_now();
    }
    #[cfg(not(unlocked_loom))]
    backoff.spin();
}

#[cfg(all(test, unlocked_loom))]
mod loom_model {
    use std::sync::Arc as StdArc;

    use super::*;
    use crate::sync::Arc;
    use crate::sync::arc_cell::{ArcCell, LeakGuard};

    /// A counter in an `ArcCell`, incremented by compare-and-swap through `Escalation::run`.
    struct Counter {
        cell: ArcCell<u64>,
        escalation: Escalation,
    }

    impl Counter {
        /// Adds one; returns how many attempts it took.
        fn bump(&self, progress: Progress) -> u32 {
            let mut tries = 0;
            self.escalation
                .run(&[0], progress, || {
                    tries += 1;
                    let g = LeakGuard;
                    let cur = self.cell.load(&g).expect("never emptied");
                    let n = *cur;
                    match self
                        .cell
                        .compare_exchange(cur.as_ptr(), Some(StdArc::new(n + 1)), &g)
                    {
                        Ok(()) => Attempt::Done(()),
                        Err(_) => Attempt::Conflict,
                    }
                })
                .expect("no budget");
            tries
        }
    }

    /// An optimistic writer increments a counter while another escalates at once (a writer
    /// that has used up its optimistic attempts is modelled by escalating from the start): no
    /// increment is lost, and once escalated the writer loses at most one race to the other
    /// thread (the bound in the module docs: threads − 1).
    #[test]
    fn escalated_writer_finishes() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(|| {
            let c = Arc::new(Counter {
                cell: ArcCell::new(Some(StdArc::new(0))),
                escalation: Escalation::new(),
            });
            let optimistic = Progress {
                escalate_after: u32::MAX,
                budget: None,
            };
            let worker = {
                let c = c.clone();
                loom::thread::spawn(move || c.bump(optimistic))
            };
            let escalated = Progress {
                escalate_after: 0,
                budget: None,
            };
            let tries = c.bump(escalated);
            worker.join().unwrap();
            assert!(tries <= 2, "the escalated writer needed {tries} attempts");
            let g = LeakGuard;
            assert_eq!(
                c.cell.load(&g).map(|n| *n),
                Some(2),
                "an increment was lost"
            );
        });
    }

    /// Two optimistic writers with one attempt before escalating: both finish, neither
    /// increment is lost, whichever of them escalates.
    #[test]
    fn both_escalate_and_finish() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(2);
        b.check(|| {
            let c = Arc::new(Counter {
                cell: ArcCell::new(Some(StdArc::new(0))),
                escalation: Escalation::new(),
            });
            let progress = Progress {
                escalate_after: 1,
                budget: None,
            };
            let worker = {
                let c = c.clone();
                loom::thread::spawn(move || c.bump(progress))
            };
            c.bump(progress);
            worker.join().unwrap();
            let g = LeakGuard;
            assert_eq!(
                c.cell.load(&g).map(|n| *n),
                Some(2),
                "an increment was lost"
            );
        });
    }

    /// A budget ends the attempts with `Exhausted` and no change.
    #[test]
    fn budget_stops_attempts() {
        loom::model(|| {
            let e = Escalation::new();
            let r: Result<(), _> = e.run(
                &[1],
                Progress {
                    escalate_after: 1,
                    budget: Some(2),
                },
                || Attempt::Conflict,
            );
            assert_eq!(r, Err(Exhausted { attempts: 2 }));
        });
    }
}
