//! Spare records: each thread keeps the records it retired and reuses them itself once no
//! reader can hold them.
//!
//! A lock-free copy-on-write update allocates its new record and retires the old one, which
//! may be released only once no reader can hold it (epoch reclamation). Handed to crossbeam
//! one by one, retired records are released in bursts of 64 on whichever thread collects,
//! far from where they were allocated. With glibc's allocator that is the worst pattern:
//! the burst overflows the collecting thread's cache into the fast bins, and the next
//! large-bin request (crossbeam's own ≈ 2 KiB queue node, one per 64 retirements) first
//! consolidates every fast bin. A `perf record -e cpu-clock` profile of
//! `model_update/lock-free/32` put `malloc_consolidate`, `unlink_chunk`, `_int_malloc` and
//! `_int_free` at ≈ 45 % of the samples; callgrind put glibc's slow paths at ≈ 300 of the
//! ≈ 1 050 instructions of a one-thread update before records were reused at all.
//!
//! So a retired record stays with the thread that retired it, in its *limbo* for the record's
//! type: an open batch of [`BATCH`] records, then closed batches waiting to become safe; a
//! safe batch is where the thread takes its spares from.
//! Closing a batch defers a *marker* through crossbeam (no allocation: the closure is two
//! words, kept in crossbeam's bag); when crossbeam runs it, every thread that was pinned when
//! the batch closed has unpinned, so no reader can hold any record of that batch or of an
//! earlier one: the marker raises the limbo's `safe` clock past the batch. Every
//! [`FLUSH_EVERY`]th closed batch also flushes the thread's crossbeam bag, which otherwise
//! holds the markers until 64 of them wait. The next update on
//! the thread overwrites a safe record in place (`Arc::get_mut` proves nobody took a count of
//! its own: the allocation, and whatever buffers the value's `clone_from` can reuse). Records
//! are reused on the thread that allocated them, at the rate it retires them: no burst of
//! frees, no cross-thread free.
//!
//! Bounds. A thread keeps at most [`MAX_CLOSED`] closed batches of a type: past that the
//! oldest is freed on the spot if safe, or else goes to crossbeam to be released like any
//! deferred garbage. While none of its closed batches is safe (the epoch stalls) the thread
//! yields once before its next write ([`relieve`]). At thread exit, safe records are freed
//! and the rest deferred.
//!
//! Only retirements through crossbeam's default collector are kept (a limbo's marker must
//! cover every record in it); any other guard's go to crossbeam directly.
//!
//! No reference to a store is kept, so a store can go away while its records wait.
//!
//! Session stores retire through their map's seize collector, not crossbeam; their records
//! are not kept here (seize frees them), but the same stall shows there: a thread descheduled
//! inside a guard holds back every batch retired while it was active. [`watch_seize`] counts
//! each thread's retirements through seize and, every [`SEIZE_MARK_EVERY`]th, sends a marker
//! through the collector at hand; markers left waiting raise the same stall flag, and the session
//! write yields through [`relieve`] like the model write. Measured with
//! `examples/store_probe lock-free/save 2000000 32` under `/usr/bin/time` on 2 cores: peak
//! memory 160–244 MB without the watch, 7–8 MB with it (`Blocking`: 3 MB; 8 million saves:
//! 367 MB against 8 MB); the storm takes 3–10 % longer in wall time, which is the frees that
//! otherwise wait for the end of the run. Without the yield, the watch alone changes nothing.

use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::Arc;

/// At most this many spares per type and thread handed back by [`put`] (each is one record:
/// its allocation and its value's buffers stay reserved until reused or the thread exits).
pub(crate) const PER_TYPE: usize = 128;

/// Retired records per batch (one crossbeam marker each): a marker is a deferred call and an
/// update of a counter another thread may have to fetch, so it is paid once per batch. Larger
/// batches wait longer (crossbeam seals its bag every 64 markers), so their records come back
/// colder. 4, 16 and 32 measured alike within this VM's noise (2 cores, 1 to 32 threads).
pub(crate) const BATCH: usize = 16;

/// Closed batches between two flushes of this thread's crossbeam bag. crossbeam keeps a
/// thread's deferred functions in a bag of 64 and publishes the bag only when it is full, so
/// unflushed, a batch's marker waits for 64 more batches (1 024 records) before its epoch wait
/// even begins: one thread updating one record kept about 1 300 replaced records of the type
/// (20 MB of 16 KiB records, against one under `Blocking`), and each update copied into a
/// spare that cold. Flushed every 16 batches, a thread keeps about 260 (4 MB of 16 KiB
/// records) and such an update takes about half the time. A flush allocates crossbeam's
/// 2 KiB queue node and tries to advance the epoch: 17 instructions per update of a small
/// record (callgrind, 658 → 675; flushing every 8 batches cost 99). With 32 threads on 2
/// cores, where the epoch stalls behind descheduled pinned threads anyway, storms of small
/// updates peaked a few MB higher (12–16 MB against 8–13). See `docs/model.md`.
const FLUSH_EVERY: u64 = 16;

/// A thread with more closed batches than this of a type, none of them safe yet, asks to
/// yield the processor before its next write ([`relieve`]): its epoch is stalled, nearly
/// always by a pinned thread that is not running. 64 batches (1 024 records): a yield costs
/// the request that makes it a wait behind every other runnable thread of its core, so it is
/// kept for a backlog no ordinary descheduling builds (16 made the workload yield on 0.4 % of
/// its requests at 32 threads on 2 cores, see [`relieve`]). Under miri, 4: the bounds are
/// scaled down there (as crossbeam scales its bags), so the tests that fill them run in
/// seconds instead of minutes.
pub(crate) const STALL: usize = if cfg!(miri) { 4 } else { 64 };

/// At most this many closed batches per type and thread (4 096 records) before the oldest goes
/// to crossbeam (only while the epoch stays stalled despite [`relieve`], such as under a pin
/// held for long). Under miri, 16 (see [`STALL`]).
pub(crate) const MAX_CLOSED: usize = if cfg!(miri) { 16 } else { 256 };
const _: () = assert!(STALL < MAX_CLOSED);

/// One thread's retired records of type `T`.
struct Limbo<T> {
    /// Spares no reader can reach, reused last-in first-out. One may still be shared (a
    /// reader took a count of its own before it was retired): users check `Arc::get_mut`.
    ready: Vec<Arc<T>>,
    /// Retired since the last batch closed.
    #[cfg(not(unlocked_loom))]
    open: Vec<Arc<T>>,
    /// Closed batches, oldest first, each with its sequence number.
    #[cfg(not(unlocked_loom))]
    closed: VecDeque<(u64, Vec<Arc<T>>)>,
    /// The sequence number of the next batch to close.
    #[cfg(not(unlocked_loom))]
    next: u64,
    /// Batches numbered below this are safe (raised by the markers, on any thread).
    #[cfg(not(unlocked_loom))]
    safe: Arc<std::sync::atomic::AtomicU64>,
    /// An emptied batch vector, for the next open batch.
    #[cfg(not(unlocked_loom))]
    empty: Option<Vec<Arc<T>>>,
}

impl<T> Limbo<T> {
    fn new() -> Self {
        Limbo {
            ready: Vec::new(),
            #[cfg(not(unlocked_loom))]
            open: Vec::new(),
            #[cfg(not(unlocked_loom))]
            closed: VecDeque::new(),
            #[cfg(not(unlocked_loom))]
            next: 0,
            #[cfg(not(unlocked_loom))]
            safe: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            #[cfg(not(unlocked_loom))]
            empty: None,
        }
    }

    /// A ready spare, or one of the oldest closed batch once it is safe.
    #[inline]
    fn take(&mut self) -> Option<Arc<T>> {
        if let Some(spare) = self.ready.pop() {
            return Some(spare);
        }
        #[cfg(not(unlocked_loom))]
        if self.front_is_safe() {
            let (_, batch) = self.closed.pop_front().expect("front_is_safe");
            // The batch's vector becomes the ready stack; the empty one is kept for the next
            // open batch.
            let empty = std::mem::replace(&mut self.ready, batch);
            if empty.capacity() >= BATCH {
                self.empty = Some(empty);
            }
            return self.ready.pop();
        }
        None
    }
}

#[cfg(not(unlocked_loom))]
impl<T> Limbo<T> {
    /// Whether the oldest closed batch is safe.
    #[inline]
    fn front_is_safe(&self) -> bool {
        self.closed
            .front()
            .is_some_and(|&(seq, _)| seq_is_safe(&self.safe, seq))
    }
}

/// Whether batch `seq` of the limbo with clock `safe` is safe.
#[cfg(not(unlocked_loom))]
#[inline]
fn seq_is_safe(safe: &std::sync::atomic::AtomicU64, seq: u64) -> bool {
    // Acquire: pairs with the marker's Release raise, which crossbeam ran after every thread
    // pinned when the batch closed had unpinned: their reads of the batch's records happen
    // before our writes into them.
    seq < safe.load(std::sync::atomic::Ordering::Acquire)
}

#[cfg(not(unlocked_loom))]
impl<T: Send + Sync + 'static> Limbo<T> {
    /// Adds a retired record; closes the batch when full. Returns records to drop (after the
    /// thread's limbos are released: a value's `Drop` may reach them again).
    fn retire(&mut self, guard: &crossbeam::epoch::Guard, record: Arc<T>) -> Vec<Arc<T>> {
        if self.open.capacity() == 0 {
            self.open.reserve_exact(BATCH);
        }
        self.open.push(record);
        if self.open.len() < BATCH {
            return Vec::new();
        }
        let seq = self.next;
        self.next += 1;
        let safe = Arc::clone(&self.safe);
        let marker = move || {
            // Release: see `front_is_safe`. `fetch_max`: markers may run out of order, and a
            // later batch's marker also covers every earlier batch (it was deferred after
            // them, so it waits for everyone who could hold their records).
            safe.fetch_max(seq + 1, std::sync::atomic::Ordering::Release);
        };
        // SAFETY: the marker only raises a counter it co-owns; `defer_unchecked` is needed
        // only because crossbeam cannot check that the closure is `Send` and `'static`, which
        // it is (an `Arc<AtomicU64>` and a `u64`).
        unsafe { guard.defer_unchecked(marker) };
        if (seq + 1) % FLUSH_EVERY == 0 {
            // Publish the markers waiting in this thread's bag (see `FLUSH_EVERY`); also tries
            // to advance the epoch and runs expired deferred functions, as a pin does now and
            // then.
            guard.flush();
        }
        let fresh = self
            .empty
            .take()
            .unwrap_or_else(|| Vec::with_capacity(BATCH));
        let batch = std::mem::replace(&mut self.open, fresh);
        self.closed.push_back((seq, batch));
        if self.closed.len() > STALL && !self.front_is_safe() {
            STALLED.with(|stalled| stalled.set(true));
        }
        if self.closed.len() <= MAX_CLOSED {
            return Vec::new();
        }
        let (oldest_seq, oldest) = self.closed.pop_front().expect("over the bound");
        if seq_is_safe(&self.safe, oldest_seq) {
            // Safe but not reused: freed here, on its own thread.
            return oldest;
        }
        // Epochs stall (a pinned thread is descheduled): crossbeam takes the oldest batch.
        // SAFETY: as for the marker: `oldest` holds `Arc<T>`s with `T: Send + Sync`; it was
        // retired through the default collector like `guard`, and is dropped once every
        // thread pinned now has unpinned, which covers every reader of its records (they were
        // unlinked before this call).
        unsafe { guard.defer_unchecked(move || drop(oldest)) };
        Vec::new()
    }
}

#[cfg(not(unlocked_loom))]
impl<T> Drop for Limbo<T> {
    fn drop(&mut self) {
        // Thread exit: ready and safe records are freed with `self`; the rest waits for
        // crossbeam (whose own thread-local may be gone: `pin` then registers a temporary
        // handle with the default collector).
        while self.front_is_safe() {
            self.closed.pop_front();
        }
        let waiting: Vec<Vec<Arc<T>>> = self
            .closed
            .drain(..)
            .map(|(_, batch)| batch)
            .chain(Some(std::mem::take(&mut self.open)))
            .filter(|batch| !batch.is_empty())
            .collect();
        if !waiting.is_empty() {
            let guard = crossbeam::epoch::pin();
            // SAFETY: every record was unlinked before this call and retired through the
            // default collector, `guard`'s; crossbeam drops them once every thread pinned now
            // has unpinned. They may be dropped on another thread: records only enter a limbo
            // through `retire` and `put`, which require `T: Send + Sync`.
            unsafe { guard.defer_unchecked(move || drop(waiting)) };
        }
    }
}

/// A thread's retirements through seize (any collector) between two stall markers (see
/// [`watch_seize`]).
pub(crate) const SEIZE_MARK_EVERY: u32 = 16;

/// A thread with more of its stall markers than this waiting in one seize collector asks to
/// yield before its next write ([`relieve`]). seize retires a thread's garbage in batches of
/// at least 32 entries (two markers each at [`SEIZE_MARK_EVERY`] = 16), so this is about 32
/// batches (1 024 retirements, as [`STALL`]): far more than are in flight while every active
/// thread runs, or than a thread descheduled for a few time slices holds back. Under miri, 4
/// (see [`STALL`]): still above the two markers a batch holds.
pub(crate) const SEIZE_STALL: u64 = if cfg!(miri) { 4 } else { 64 };

/// Collectors a thread watches at once; past that the oldest watch is dropped (it only
/// loses its stall signal: nothing is kept in a watch but counters).
const SEIZE_WATCHES: usize = 16;

/// One thread's watch on one seize collector: the session stores retire each replaced record
/// to seize directly, and every [`SEIZE_MARK_EVERY`]th retirement of the thread also retires a
/// marker that counts itself reclaimed. Markers sent and not yet reclaimed tell how far this
/// thread's garbage is behind; seize has no such count of its own.
#[cfg(not(unlocked_loom))]
struct SeizeWatch {
    /// The collector's address (a dropped collector reclaims everything retired through it,
    /// markers included, so a later collector at the same address starts even).
    collector: usize,
    /// Markers retired so far.
    sent: u64,
    /// Markers reclaimed so far (raised by the markers, on any thread).
    reclaimed: Arc<std::sync::atomic::AtomicU64>,
}

#[cfg(not(unlocked_loom))]
thread_local! {
    static SEIZE_WATCH: RefCell<Vec<SeizeWatch>> = const { RefCell::new(Vec::new()) };
    /// Retirements through any seize collector since this thread's last marker.
    static SEIZE_SINCE: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Counts a retirement through a seize collector on this thread; every
/// [`SEIZE_MARK_EVERY`]th also retires a marker through `guard`'s collector, and raises the
/// stall flag ([`relieve`]) when more than [`SEIZE_STALL`] of this thread's markers wait there.
/// Costs a thread-local counter per retirement and a small allocation per marker.
#[cfg(not(unlocked_loom))]
#[inline]
pub(crate) fn watch_seize(guard: &seize::LocalGuard<'_>) {
    use seize::Guard as _;
    /// The marker's reclaimer: counts it, on whichever thread seize reclaims it.
    unsafe fn reclaimed(ptr: *mut Arc<std::sync::atomic::AtomicU64>, _: &seize::Collector) {
        // SAFETY: `ptr` came from `Box::into_raw` below and seize calls this once.
        let count = unsafe { Box::from_raw(ptr) };
        // Relaxed: the count is a hint for when to yield; nothing is read through it.
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    // The fast path: one thread-local counter for all collectors, so the marker samples the
    // collectors a thread retires through in proportion to its retirements there.
    let due = SEIZE_SINCE.try_with(|since| {
        let n = since.get() + 1;
        since.set(if n == SEIZE_MARK_EVERY { 0 } else { n });
        n == SEIZE_MARK_EVERY
    });
    if due != Ok(true) {
        return;
    }
    let collector = std::ptr::from_ref(guard.collector()) as usize;
    let marker = SEIZE_WATCH.try_with(|w| {
        let mut watches = w.try_borrow_mut().ok()?;
        let at = match watches.iter().position(|w| w.collector == collector) {
            Some(at) => at,
            None => {
                if watches.len() == SEIZE_WATCHES {
                    watches.remove(0);
                }
                watches.push(SeizeWatch {
                    collector,
                    sent: 0,
                    reclaimed: Arc::new(std::sync::atomic::AtomicU64::new(0)),
                });
                watches.len() - 1
            }
        };
        let watch = &mut watches[at];
        watch.sent += 1;
        let waiting = watch.sent
            - watch
                .reclaimed
                .load(std::sync::atomic::Ordering::Relaxed)
                .min(watch.sent);
        if waiting > SEIZE_STALL {
            let _ = STALLED.try_with(|stalled| stalled.set(true));
        }
        Some(Box::new(Arc::clone(&watch.reclaimed)))
    });
    if let Ok(Some(marker)) = marker {
        // SAFETY: the marker is a fresh allocation nobody else can reach, and `reclaimed` is
        // its reclaimer (it frees it once).
        unsafe { guard.defer_retire(Box::into_raw(marker), reclaimed) };
    }
}

thread_local! {
    /// Set when this thread's retired records wait on a stalled epoch (see [`relieve`]).
    static STALLED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Yields the processor once if this thread's retired records were found waiting on a stalled
/// epoch (model records, [`Limbo`]) or reservation (session records, [`watch_seize`]). Call it
/// while not pinned and outside any guard, before a write.
///
/// Reclamation moves on only once every thread that was inside a guard has left it; a thread
/// descheduled inside one holds it back until it runs again, and with more threads than cores
/// (a server's pool) one nearly always is. Yielding lets that thread run and leave. The writer
/// waits for nothing: it gives up the rest of its time slice and goes on, so the write stays
/// lock-free; without contention for the processor `sched_yield` returns at once. Measured with
/// 32 threads on 2 cores (`docs/model.md`, `docs/session.md`): peak memory of an update storm
/// 232–295 MB before, 7.6–7.9 MB after; of a save storm 160–244 MB before, 7–8 MB after.
///
/// The yield is not free for the request that makes it: with more runnable threads than cores
/// it waits behind the others of its core. With the flag raised at 16 batches or markers the
/// workload (`examples/workload`, 32 threads on 2 cores) yielded on 0.4 % of its requests,
/// enough to put its p99 in milliseconds in the VM's slow stretches; at 64 ([`STALL`],
/// [`SEIZE_STALL`]) it yields 11–25 times less, and the storms above peak at 8–16 MB.
#[inline]
pub(crate) fn relieve() {
    if STALLED.try_with(|stalled| stalled.replace(false)) == Ok(true) {
        super::shim::yield_now();
    }
}

/// One limbo per type (a thread touches few types: a linear search is the fastest lookup).
type Limbos = Vec<(TypeId, Box<dyn Any>)>;

thread_local! {
    static LIMBOS: RefCell<Limbos> = const { RefCell::new(Vec::new()) };
}

/// This thread's limbo for `T`, made on first use.
fn limbo<T: 'static>(limbos: &mut Limbos) -> &mut Limbo<T> {
    let id = TypeId::of::<Limbo<T>>();
    let at = match limbos.iter().position(|(t, _)| *t == id) {
        Some(at) => at,
        None => {
            limbos.push((id, Box::new(Limbo::<T>::new())));
            limbos.len() - 1
        }
    };
    limbos[at]
        .1
        .downcast_mut::<Limbo<T>>()
        .expect("the entry's type id matches")
}

/// Keeps a retired `record` in this thread's limbo until no reader can hold it, then as a
/// spare.
///
/// `record` carries the count its cell owned and was unlinked: no guard created from now on
/// can load it. Dropping it before every thread pinned now has unpinned would be unsound, so
/// every path below either keeps it in the limbo or defers it through `guard`.
#[cfg(not(unlocked_loom))]
pub(crate) fn retire<T: Send + Sync + 'static>(guard: &crossbeam::epoch::Guard, record: Arc<T>) {
    /// The fallback: crossbeam drops it (on any thread) once every thread pinned now has
    /// unpinned.
    fn defer<T: Send + Sync + 'static>(guard: &crossbeam::epoch::Guard, record: Arc<T>) {
        // SAFETY: `Arc<T>` is `Send` (`T: Send + Sync`) and `'static`; dropped only once no
        // reader that could hold it remains.
        unsafe { guard.defer_unchecked(move || drop(record)) };
    }
    if guard.collector() != Some(crossbeam::epoch::default_collector()) {
        return defer(guard, record);
    }
    let mut record = Some(record);
    let dropped = LIMBOS.try_with(|l| {
        // Reentered (a value's `Drop` that writes to a store): no limbo this time.
        let mut limbos = l.try_borrow_mut().ok()?;
        Some(limbo::<T>(&mut limbos).retire(guard, record.take().expect("once")))
    });
    if let Some(record) = record {
        // The thread is exiting (its limbos are gone) or the limbos are borrowed.
        defer(guard, record);
    }
    drop(dropped);
}

/// Keeps `record` as a ready spare if this thread has room and nobody else holds it; drops it
/// otherwise (after the limbos are released: a value's `Drop` may reach them again). For a
/// record that was never shared (a spare a failed update did not use).
pub(crate) fn put<T: Send + Sync + 'static>(mut record: Arc<T>) {
    if Arc::get_mut(&mut record).is_none() {
        // Someone else holds a count: they keep the record.
        return;
    }
    let refused = LIMBOS
        .try_with(|l| {
            let Ok(mut limbos) = l.try_borrow_mut() else {
                return Some(record);
            };
            let ready = &mut limbo::<T>(&mut limbos).ready;
            if ready.len() < PER_TYPE {
                ready.push(record);
                None
            } else {
                Some(record)
            }
        })
        // The thread is exiting: its limbos are gone (and `record` with the closure).
        .unwrap_or_else(|_| None);
    drop(refused);
}

/// A spare record of type `T` no reader can hold, if this thread has one. It may still be
/// shared (a reader took a count of its own before it was retired): check with
/// `Arc::get_mut`.
#[inline]
pub(crate) fn take<T: 'static>() -> Option<Arc<T>> {
    LIMBOS
        .try_with(|l| {
            let mut limbos = l.try_borrow_mut().ok()?;
            let id = TypeId::of::<Limbo<T>>();
            let (_, limbo) = limbos.iter_mut().find(|(t, _)| *t == id)?;
            limbo.downcast_mut::<Limbo<T>>()?.take()
        })
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_unique_records_up_to_the_cap() {
        for i in 0..PER_TYPE as u64 + 4 {
            put(Arc::new((i, String::from("spare"))));
        }
        let mut taken = 0;
        while let Some(mut spare) = take::<(u64, String)>() {
            assert!(Arc::get_mut(&mut spare).is_some(), "a spare is unique");
            taken += 1;
        }
        assert_eq!(taken, PER_TYPE);
        assert!(take::<(u32, String)>().is_none(), "types are kept apart");
    }

    /// Pins and flushes until `done` (crossbeam moves the epoch on when no thread is pinned
    /// at an older one; other tests' threads only delay that).
    #[cfg(not(unlocked_loom))]
    fn flush_until(mut done: impl FnMut() -> bool) {
        for _ in 0..1_000_000 {
            if done() {
                return;
            }
            crate::sync::pin().flush();
            std::thread::yield_now();
        }
        panic!("crossbeam never ran the deferred functions");
    }

    /// This thread's clock for `T`: batches numbered below it are safe.
    #[cfg(not(unlocked_loom))]
    fn safe_clock<T: 'static>() -> u64 {
        LIMBOS.with(|l| {
            limbo::<T>(&mut l.borrow_mut())
                .safe
                .load(std::sync::atomic::Ordering::Acquire)
        })
    }

    /// Records retired through the model stores' guard come back as spares of the retiring
    /// thread once crossbeam has run their batches' markers, exactly those of closed batches
    /// (miri runs this: the `Arc::from_raw` of `EpochGuard::retire` and the markers).
    #[cfg(not(unlocked_loom))]
    #[test]
    fn retired_records_come_back_as_spares() {
        use crate::sync::arc_cell::ArcCell;
        // A thread of its own: its limbo goes when it exits.
        std::thread::spawn(|| {
            type Rec = (u64, String);
            let cell = ArcCell::new(Some(Arc::new((0_u64, String::from("0")))));
            let last = 3 * BATCH as u64 + 5;
            for i in 1..=last {
                let guard = crate::sync::pin();
                let current = cell.load_ptr(&guard);
                cell.compare_exchange(current, Some(Arc::new((i, i.to_string()))), &guard)
                    .expect("no other writer");
            }
            // Three batches closed; the last five records are in the open batch.
            flush_until(|| safe_clock::<Rec>() >= 3);
            let mut seen = Vec::new();
            while let Some(mut spare) = take::<Rec>() {
                assert!(Arc::get_mut(&mut spare).is_some(), "a spare is unique");
                assert_eq!(spare.1, spare.0.to_string(), "a spare keeps its value");
                seen.push(spare.0);
            }
            seen.sort_unstable();
            let closed: Vec<u64> = (0..3 * BATCH as u64).collect();
            assert_eq!(seen, closed, "the records of the closed batches, each once");
            let guard = crate::sync::pin();
            assert_eq!(cell.load(&guard).map(|r| r.get().0), Some(last));
        })
        .join()
        .expect("no panic");
    }

    /// While another thread stays pinned, nothing retired is released or reused: the thread
    /// is asked to yield, and past `MAX_CLOSED` batches the oldest go to crossbeam, which
    /// still waits for the pinned thread. Once it unpins, everything is released.
    #[cfg(not(unlocked_loom))]
    #[test]
    fn a_stalled_epoch_holds_every_record_and_asks_to_yield() {
        use crate::sync::arc_cell::ArcCell;
        use std::sync::mpsc;
        type Rec = (u64, u32);
        let (pinned_tx, pinned_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let reader = std::thread::spawn(move || {
            let guard = crate::sync::pin();
            pinned_tx.send(()).expect("the test waits");
            release_rx.recv().expect("the test says when");
            drop(guard);
        });
        pinned_rx.recv().expect("the reader pins");
        let retired = std::thread::spawn(|| {
            let cell = ArcCell::new(Some(Arc::new((0_u64, 0_u32))));
            let mut kept = Vec::new();
            let n = (MAX_CLOSED + 3) * BATCH;
            for i in 1..=n as u64 {
                let guard = crate::sync::pin();
                let current = cell.load_ptr(&guard);
                let new = Arc::new((i, 0_u32));
                // A count of our own on every record, to see when the limbo lets go of it.
                kept.push(Arc::clone(&new));
                cell.compare_exchange(current, Some(new), &guard)
                    .expect("no other writer");
                // Nothing is safe while the reader stays pinned.
                assert!(
                    take::<Rec>().is_none(),
                    "a spare while the reader is pinned"
                );
            }
            assert!(
                STALLED.with(std::cell::Cell::get),
                "a stalled epoch asks to yield"
            );
            relieve();
            assert!(!STALLED.with(std::cell::Cell::get), "asked once");
            let closed = LIMBOS.with(|l| limbo::<Rec>(&mut l.borrow_mut()).closed.len());
            assert_eq!(closed, MAX_CLOSED, "the bound on closed batches");
            // Every replaced record (the first's count is the cell's own, `0` was not kept)
            // is still held by the limbo or by crossbeam's deferred drop.
            let held = kept[..n - 1].iter().filter(|r| Arc::strong_count(r) == 2);
            assert_eq!(held.count(), n - 1, "a record released while pinned");
            kept
        })
        .join()
        .expect("no panic");
        release_tx.send(()).expect("the reader waits");
        reader.join().expect("no panic");
        // The retiring thread has exited: its limbo deferred what was left. Every replaced
        // record is released once crossbeam runs it all; the last one is still in the cell,
        // which the thread dropped with it.
        flush_until(|| retired.iter().all(|r| Arc::strong_count(r) == 1));
    }

    /// seize: retiring while no other thread is active never asks to yield; while another
    /// thread stays active in the collector the markers wait and the thread is asked to yield
    /// (once per ask); once it leaves, the markers are reclaimed and the watch is even again.
    #[cfg(not(unlocked_loom))]
    #[test]
    fn a_stalled_seize_reservation_asks_to_yield() {
        use crate::sync::arc_cell::ArcCell;
        use std::sync::mpsc;
        let collector = Arc::new(seize::Collector::new());
        let cell = ArcCell::new(Some(Arc::new(0_u64)));
        let replace = |i: u64| {
            let guard = collector.enter();
            let current = cell.load_ptr(&guard);
            cell.compare_exchange(current, Some(Arc::new(i)), &guard)
                .expect("no other writer");
        };
        let watch = || {
            SEIZE_WATCH.with(|w| {
                let w = w.borrow();
                let c = std::ptr::from_ref::<seize::Collector>(&collector) as usize;
                let w = w.iter().find(|w| w.collector == c).expect("watched");
                (
                    w.sent,
                    w.reclaimed.load(std::sync::atomic::Ordering::Relaxed),
                )
            })
        };
        relieve();
        let n = (SEIZE_STALL + 4) * u64::from(SEIZE_MARK_EVERY);
        for i in 1..=n {
            replace(i);
        }
        assert!(!STALLED.with(std::cell::Cell::get), "nothing stalls alone");
        let (sent, reclaimed) = watch();
        assert_eq!(
            sent,
            SEIZE_STALL + 4,
            "a marker per {SEIZE_MARK_EVERY} retirements"
        );
        assert!(
            sent - reclaimed <= 2,
            "markers reclaimed as batches go: {sent} - {reclaimed}"
        );

        let (active_tx, active_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        std::thread::scope(|s| {
            let collector = &collector;
            s.spawn(move || {
                let guard = collector.enter();
                active_tx.send(()).expect("the test waits");
                release_rx.recv().expect("the test says when");
                drop(guard);
            });
            active_rx.recv().expect("the reader enters");
            for i in 1..=n * 4 {
                replace(n + i);
            }
            assert!(
                STALLED.with(std::cell::Cell::get),
                "a stalled reservation asks to yield"
            );
            relieve();
            assert!(!STALLED.with(std::cell::Cell::get), "asked once");
            release_tx.send(()).expect("the reader waits");
        });
        // The reader has left: what waited on it is reclaimed once this thread's next batch
        // goes (seize retires a batch when it is full) and its guard is dropped.
        for i in 1..=n {
            replace(5 * n + i);
        }
        let (sent, reclaimed) = watch();
        assert!(
            sent - reclaimed <= 2,
            "markers reclaimed after the stall: {sent} - {reclaimed}"
        );
    }

    #[test]
    fn a_shared_record_is_not_kept() {
        let shared = Arc::new(7_u8);
        put(shared.clone());
        assert!(take::<u8>().is_none());
        assert_eq!(Arc::strong_count(&shared), 1, "the put count was released");
    }
}
