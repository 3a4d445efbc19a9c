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
//!
//! **Heat.** A writer that escalates because it lost its optimistic races, or that has to wait
//! for the lock, leaves its stripes *hot*: writes of a hot stripe go straight to the lock, and
//! each that finds the lock free cools the stripe by one; after [`HEAT`] of those in a row,
//! writers are optimistic again. So a stripe stays hot while its writers queue, and a burst of
//! contention does not flip it back and forth between racing and queueing. On a record that
//! many threads write at once the optimistic attempts mostly fail, and each failure costs a
//! copy of the value and a round trip of the record's cache lines between cores; queueing at
//! once makes such a record cost what a lock costs. Records nobody contends never escalate, so
//! they never heat up. The heat sits in the high half of the stripe's flag word, so
//! [`raised`](Escalation::raised) reads both in one load, and only holders of the lock change
//! it, so the bound above is unchanged: a hot stripe only sends more writers to the queue.
//! A writer that takes the lock for a hot stripe does not raise the stripe's count: the heat
//! already keeps the word non-zero until that writer is done (writes nested in it leave the
//! heat to it), and a stripe that stays hot is then not written at all, so on a record every
//! thread writes, the flag's line stays shared in every core's cache instead of moving with
//! each write.

use crossbeam::utils::{Backoff, CachePadded};

use super::shim::{AtomicUsize, Ordering, RawMutex, RawThreadId, seq_cst_point};

/// How many stripes the flags are spread over (at most 64: a writer notes the stripes it
/// raised in a `u64`).
pub(crate) const STRIPES: usize = 64;
const _: () = assert!(STRIPES <= 64);

/// The default for how many optimistic attempts a writer makes before it escalates.
pub(crate) const DEFAULT_ESCALATE_AFTER: u32 = 4;

/// The heat a contended writer leaves on its stripes: how many writes in a row must find the
/// lock free before the stripe is optimistic again (see "Heat" in the module docs). Under
/// miri, 16, so the test that cools a stripe write by write runs in a second.
pub(crate) const HEAT: usize = if cfg!(miri) { 16 } else { 1024 };

/// A flag word: escalated writers working on the stripe in the low half, heat in the high half.
const HEAT_SHIFT: u32 = usize::BITS / 2;
/// The low half of a flag word.
const WRITERS: usize = (1 << HEAT_SHIFT) - 1;

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

/// Lowers the flags an escalated writer raised, also when its attempt panics, and heats or
/// cools its stripes.
struct Raised<'a> {
    flags: &'a [CachePadded<AtomicUsize>],
    stripes: &'a [usize],
    /// Bit `s`: this writer raised stripe `s`'s writer count (it found the stripe cold; a hot
    /// stripe's heat already sends optimistic writers to the queue, see "Heat").
    raised: u64,
    /// The writer lost its optimistic races or waited for the lock (it heats its stripes; a
    /// writer that queued because a stripe was flagged or hot and found the lock free cools
    /// them).
    contended: bool,
    /// The writer already held the lock when it began (a write from inside another write of
    /// this thread): it leaves the heat to the outermost writer, which is still working.
    nested: bool,
}

impl Drop for Raised<'_> {
    fn drop(&mut self) {
        for &s in self.stripes {
            let flag = &self.flags[s];
            // Relaxed: only holders of the escalation lock write a flag word, and this thread
            // holds it, so the load sees the last write.
            let word = flag.load(Ordering::Relaxed);
            let heat = if self.nested {
                word >> HEAT_SHIFT
            } else if self.contended {
                HEAT
            } else {
                (word >> HEAT_SHIFT).saturating_sub(1)
            };
            let writers = (word & WRITERS) - usize::from(self.raised >> s & 1 == 1);
            let new = (heat << HEAT_SHIFT) | writers;
            // A stripe that stays hot is not written: on a record many threads write, its
            // line then stays shared in every core's cache instead of moving with each write.
            if new != word {
                // A store, not a read-modify-write: no other thread writes the word (above).
                // SeqCst: the same total order as the raise (see `raised`); nothing is
                // published through the flag (the cells publish their values).
                flag.store(new, Ordering::SeqCst);
                // Under loom, the order the store takes in a normal build (see
                // `seq_cst_point`): the next holder's reads of its cells come after it.
                seq_cst_point();
            }
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

    /// Whether an escalated writer works on one of `stripes`, or one of them is hot
    /// (optimistic writers queue then).
    #[inline]
    fn raised(&self, stripes: &[usize]) -> bool {
        // SeqCst: the progress bound in the module docs needs the check and the cells'
        // accesses in one total order with the escalated writer's raise. (Under loom, a fence
        // after this writer's last swap gives that order: see `seq_cst_point`.)
        seq_cst_point();
        stripes
            .iter()
            .any(|&s| self.flags[s].load(Ordering::SeqCst) != 0)
    }

    /// Whether the current thread holds the escalation lock.
    #[cfg(test)]
    fn held_by_current_thread(&self) -> bool {
        self.lock.is_owned_by_current_thread()
    }

    /// The heat of stripe `s`.
    #[cfg(test)]
    fn heat(&self, s: usize) -> usize {
        self.flags[s].load(Ordering::SeqCst) >> HEAT_SHIFT
    }

    /// Runs `f` holding the escalation lock, without raising flags: for writers that must not
    /// interleave with escalated ones (the model store's multi-record installation).
    pub(crate) fn exclusive<R>(&self, f: impl FnOnce() -> R) -> R {
        let _lock = self.lock.lock();
        f()
    }

    /// Runs `attempt` until it is [`Attempt::Done`]: optimistically up to
    /// `progress.escalate_after` times (or until a flag of `stripes` is raised or one of them
    /// is hot), then holding the lock with `stripes` flagged. Fails only when
    /// `progress.budget` runs out.
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
        // Lost every optimistic race (not queued behind a flag or heat), or has to wait for
        // the lock: either way the stripe is contended now.
        let lost = progress.escalate_after > 0 && attempts >= progress.escalate_after;
        let nested = self.lock.is_owned_by_current_thread();
        let (_lock, waited) = match self.lock.try_lock() {
            Some(lock) => (lock, false),
            None => (self.lock.lock(), true),
        };
        let contended = lost || waited;
        let mut raised = 0_u64;
        for &s in stripes {
            // Relaxed: only holders of the escalation lock write a flag word (see `Raised`).
            let word = self.flags[s].load(Ordering::Relaxed);
            if word >> HEAT_SHIFT != 0 {
                // Hot: the word is non-zero and stays so until this writer's `Raised` drops,
                // since only holders of the lock change it and writes nested in this one
                // leave the heat alone. That is all the bound needs: an optimistic writer's
                // next check sees it and queues (the store that heated the stripe precedes
                // this writer's reads of its cells in the total order: it was made before
                // the lock this writer took was released).
                continue;
            }
            // SeqCst: see `raised`. (Under the lock, as every write of a flag word.)
            self.flags[s].fetch_add(1, Ordering::SeqCst);
            raised |= 1 << s;
        }
        // Under loom, the order the raise (or the store that heated the stripe) takes before
        // this writer's reads of its cells in a normal build (see `seq_cst_point`).
        seq_cst_point();
        let _raised = Raised {
            flags: &self.flags,
            stripes,
            raised,
            contended,
            nested,
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

    /// An optimistic writer increments a counter twice while another escalates at once (a
    /// writer that has used up its optimistic attempts is modelled by escalating from the
    /// start): no increment is lost, and once escalated the writer loses at most one race to
    /// the other thread (the bound in the module docs: threads − 1), although that thread
    /// writes twice: its second write sees the raised flag and queues.
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
                loom::thread::spawn(move || {
                    c.bump(optimistic);
                    c.bump(optimistic);
                })
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
                Some(3),
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

    /// Both writers find their stripe hot (as a contended escalation leaves it): both queue on
    /// the lock, even the one that would stay optimistic for ever, neither increment is lost,
    /// and each cools the stripe by one or, having waited for the lock, heats it again.
    #[test]
    fn hot_stripe_queues_and_loses_nothing() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(2);
        b.check(|| {
            let c = Arc::new(Counter {
                cell: ArcCell::new(Some(StdArc::new(0))),
                escalation: Escalation::new(),
            });
            c.escalation.flags[0].store(HEAT << HEAT_SHIFT, Ordering::SeqCst);
            let worker = {
                let c = c.clone();
                loom::thread::spawn(move || {
                    c.bump(Progress {
                        escalate_after: u32::MAX,
                        budget: None,
                    })
                })
            };
            let tries = c.bump(Progress::default());
            let worker_tries = worker.join().unwrap();
            assert_eq!((tries, worker_tries), (1, 1), "a queued writer lost a race");
            let g = LeakGuard;
            assert_eq!(
                c.cell.load(&g).map(|n| *n),
                Some(2),
                "an increment was lost"
            );
            // Each cools the stripe by one, unless it waited for the lock (heats it again).
            let heat = c.escalation.heat(0);
            assert!((HEAT - 2..=HEAT).contains(&heat), "heat {heat}");
            assert_eq!(
                c.escalation.flags[0].load(Ordering::SeqCst) & WRITERS,
                0,
                "a flag stayed raised"
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

#[cfg(all(test, not(unlocked_loom)))]
mod tests {
    use super::*;

    /// Runs one write on `stripe` whose attempts conflict `conflicts` times; returns whether
    /// its last attempt ran under the lock.
    fn write(e: &Escalation, stripe: usize, conflicts: u32) -> bool {
        let mut left = conflicts;
        let mut locked = false;
        e.run(&[stripe], Progress::default(), || {
            locked = e.held_by_current_thread();
            if left == 0 {
                Attempt::Done(())
            } else {
                left -= 1;
                Attempt::Conflict
            }
        })
        .expect("no budget");
        locked
    }

    /// A write that escalates after losing its races heats its stripe: the next `HEAT` writes
    /// there go straight to the lock, each cooling it by one (none waits: one thread); then
    /// writes are optimistic again. Other stripes, and writes that escalate without
    /// contention, are unaffected; a writer that waits for the lock heats its stripe.
    #[test]
    fn heat_sends_the_next_writes_to_the_lock_then_cools() {
        let e = Escalation::new();
        assert!(!write(&e, 3, 0), "a cold stripe is written optimistically");
        assert!(
            !write(&e, 3, DEFAULT_ESCALATE_AFTER - 1),
            "lost races, not all of them"
        );
        assert_eq!(e.heat(3), 0);
        assert!(
            write(&e, 3, DEFAULT_ESCALATE_AFTER),
            "lost every optimistic race"
        );
        assert_eq!(e.heat(3), HEAT);
        assert!(!write(&e, 4, 0), "another stripe stays cold");
        for left in (0..HEAT).rev() {
            assert!(write(&e, 3, 0), "a write of a hot stripe queues");
            assert_eq!(e.heat(3), left);
        }
        assert!(!write(&e, 3, 0), "cooled down: optimistic again");
        // A contended escalation while hot heats the stripe up again.
        assert!(write(&e, 3, DEFAULT_ESCALATE_AFTER));
        assert!(
            write(&e, 3, 1),
            "hot: queued at once, retried under the lock"
        );
        assert_eq!(e.heat(3), HEAT - 1);
        // Always-lock writers (`escalate_after` 0) neither heat nor stay queued.
        let e = Escalation::new();
        let always = Progress {
            escalate_after: 0,
            budget: None,
        };
        e.run(&[5], always, || Attempt::Done(()))
            .expect("no budget");
        assert_eq!(e.heat(5), 0);
        assert_eq!(e.flags[5].load(Ordering::SeqCst), 0, "flag lowered");
        // A writer that waits for the lock heats its stripe, even one that always locks.
        let e = Escalation::new();
        let taken = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            s.spawn(|| {
                e.exclusive(|| {
                    taken.wait();
                    // Hold the lock until the other thread is surely blocked on it.
                    std::thread::sleep(std::time::Duration::from_millis(50));
                });
            });
            taken.wait();
            e.run(&[6], always, || Attempt::Done(()))
                .expect("no budget");
        });
        assert_eq!(e.heat(6), HEAT, "waited for the lock");
    }

    /// A write of a hot stripe does not raise its writer count (the heat already queues
    /// optimistic writers); a write nested in another, on a cold stripe or a hot one, leaves
    /// the heat to the outer writer, which cools its stripe once, at its end; every raised
    /// count comes down.
    #[test]
    fn hot_and_nested_writes_leave_the_flags_as_they_found_them() {
        let e = Escalation::new();
        e.flags[3].store(5 << HEAT_SHIFT, Ordering::SeqCst);
        let mut seen = Vec::new();
        e.run(&[3], Progress::default(), || {
            seen.push(e.flags[3].load(Ordering::SeqCst));
            // Nested: the same hot stripe, then a cold one.
            e.run(&[3], Progress::default(), || {
                seen.push(e.flags[3].load(Ordering::SeqCst));
                Attempt::Done(())
            })
            .expect("no budget");
            e.run(&[4], Progress::default(), || {
                seen.push(e.flags[4].load(Ordering::SeqCst));
                Attempt::Done(())
            })
            .expect("no budget");
            seen.push(e.flags[3].load(Ordering::SeqCst));
            Attempt::Done(())
        })
        .expect("no budget");
        assert_eq!(
            seen,
            [5 << HEAT_SHIFT, 5 << HEAT_SHIFT, 0, 5 << HEAT_SHIFT],
            "the hot stripe was not raised, the nested write on it did not cool it, and the \
             nested write on the cold stripe ran optimistically"
        );
        assert_eq!(
            e.flags[3].load(Ordering::SeqCst),
            4 << HEAT_SHIFT,
            "cooled once"
        );
        assert_eq!(e.flags[4].load(Ordering::SeqCst), 0);
        // A nested write that goes to the lock raises its cold stripe and lowers it again,
        // without heating it.
        e.run(&[3], Progress::default(), || {
            e.run(
                &[7],
                Progress {
                    escalate_after: 0,
                    budget: None,
                },
                || {
                    seen.push(e.flags[7].load(Ordering::SeqCst));
                    Attempt::Done(())
                },
            )
            .expect("no budget");
            Attempt::Done(())
        })
        .expect("no budget");
        assert_eq!(seen.last(), Some(&1), "raised while it ran");
        assert_eq!(e.flags[7].load(Ordering::SeqCst), 0, "lowered, not heated");
        assert_eq!(e.flags[3].load(Ordering::SeqCst), 3 << HEAT_SHIFT);
    }
}
