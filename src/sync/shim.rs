//! The shim itself: `std` atomics, `parking_lot` and `arc-swap` in normal builds, [loom]'s
//! model-checked stand-ins under `cfg(unlocked_loom)`, with the same API. `sync/mod.rs`
//! re-exports everything here; the modules of `sync` import it from here directly.
//!
//! [loom]: https://docs.rs/loom

#![allow(dead_code, unused_imports)]

#[cfg(not(unlocked_loom))]
mod imp {
    pub(crate) use std::sync::Arc;
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
    pub(crate) use std::thread::yield_now;

    /// Nothing in a normal build; a `SeqCst` fence under loom (see the loom twin).
    #[inline(always)]
    pub(crate) fn seq_cst_point() {}

    /// The raw mutex under every [`crate::lock::ReentrantLock`].
    #[cfg(not(miri))]
    pub(crate) type RawMutex = parking_lot::RawMutex;
    /// Under miri: parking_lot_core's futex call passes `&AtomicI32` where the variadic
    /// `syscall` expects `*mut u32`, which miri reports as undefined behaviour before it gets to
    /// our code. A spin-and-yield mutex stands in, so miri checks our code and lock_api's.
    #[cfg(miri)]
    pub(crate) type RawMutex = miri_mutex::RawSpinMutex;
    /// The thread-id source that makes the raw mutex reentrant.
    pub(crate) type RawThreadId = parking_lot::RawThreadId;

    /// A mutex without poisoning.
    pub(crate) type Mutex<T> = lock_api::Mutex<RawMutex, T>;
    /// Guard of [`Mutex`].
    pub(crate) type MutexGuard<'a, T> = lock_api::MutexGuard<'a, RawMutex, T>;

    #[cfg(miri)]
    mod miri_mutex {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::time::{Duration, Instant};

        pub(crate) struct RawSpinMutex(AtomicBool);

        // SAFETY: `try_lock` succeeds for exactly one caller until `unlock`: a compare-and-swap
        // from false to true (Acquire, so the previous holder's writes are visible), and
        // `unlock` stores false with Release to publish this holder's writes.
        unsafe impl lock_api::RawMutex for RawSpinMutex {
            #[allow(clippy::declare_interior_mutable_const)]
            const INIT: Self = Self(AtomicBool::new(false));
            type GuardMarker = lock_api::GuardNoSend;

            fn lock(&self) {
                while !self.try_lock() {
                    std::thread::yield_now();
                }
            }

            fn try_lock(&self) -> bool {
                self.0
                    .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            }

            unsafe fn unlock(&self) {
                self.0.store(false, Ordering::Release);
            }
        }

        // SAFETY: a timed attempt is a loop of `try_lock` until the deadline, which keeps the
        // guarantees above.
        unsafe impl lock_api::RawMutexTimed for RawSpinMutex {
            type Duration = Duration;
            type Instant = Instant;
            fn try_lock_for(&self, timeout: Duration) -> bool {
                self.try_lock_until(Instant::now() + timeout)
            }
            fn try_lock_until(&self, deadline: Instant) -> bool {
                loop {
                    if lock_api::RawMutex::try_lock(self) {
                        return true;
                    }
                    if Instant::now() >= deadline {
                        return false;
                    }
                    std::thread::yield_now();
                }
            }
        }
    }

    /// A copy-on-write snapshot cell: readers take no lock and write nothing shared that
    /// writers wait on (arc-swap's debt slots); writers publish a whole new `Arc<T>`.
    pub(crate) struct Snapshot<T>(arc_swap::ArcSwap<T>);

    impl<T> Snapshot<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(arc_swap::ArcSwap::from_pointee(value))
        }
        pub(crate) fn from_arc(value: Arc<T>) -> Self {
            Self(arc_swap::ArcSwap::new(value))
        }
        /// A short-lived read of the current snapshot. Do not hold it across long work or
        /// `.await`: arc-swap then falls back to a slower path.
        pub(crate) fn load(&self) -> arc_swap::Guard<Arc<T>> {
            self.0.load()
        }
        pub(crate) fn load_full(&self) -> Arc<T> {
            self.0.load_full()
        }
        pub(crate) fn store(&self, value: Arc<T>) {
            self.0.store(value)
        }
        pub(crate) fn swap(&self, value: Arc<T>) -> Arc<T> {
            self.0.swap(value)
        }
        /// Replaces the snapshot only if it still is `current` (pointer equality); returns the
        /// snapshot found (equal to `current` on success).
        pub(crate) fn compare_and_swap(&self, current: &Arc<T>, new: Arc<T>) -> Arc<T> {
            arc_swap::Guard::into_inner(self.0.compare_and_swap(current, new))
        }
    }

    /// `thread_local!` with a non-lazy initialiser where the platform allows it.
    macro_rules! thread_local_shim {
        ($(#[$m:meta])* static $name:ident : $t:ty = $init:expr;) => {
            std::thread_local!($(#[$m])* static $name: $t = const { $init });
        };
    }
    pub(crate) use thread_local_shim as thread_local;

    /// A per-thread reader of a [`Snapshot`]: keeps the last snapshot it saw and re-validates
    /// it with one atomic load (`arc_swap::Cache`), so a read bumps no shared reference count.
    pub(crate) struct SnapshotReader<'a, T>(arc_swap::Cache<&'a arc_swap::ArcSwap<T>, Arc<T>>);

    impl<T> Snapshot<T> {
        /// A reader for one thread (template cache hit path).
        pub(crate) fn reader(&self) -> SnapshotReader<'_, T> {
            SnapshotReader(arc_swap::Cache::new(&self.0))
        }
    }

    impl<T> SnapshotReader<'_, T> {
        /// The current snapshot, borrowed from this reader.
        #[inline]
        pub(crate) fn load(&mut self) -> &Arc<T> {
            self.0.load()
        }
    }
}

#[cfg(unlocked_loom)]
mod imp {
    pub(crate) use loom::sync::Arc;
    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
    pub(crate) use loom::thread::yield_now;

    /// A `SeqCst` fence. Loom models `SeqCst` loads and stores as `AcqRel` (its README's
    /// "Unsupported features", loom#180), so it cannot see an argument that rests on the one
    /// total order of `SeqCst` accesses to *different* atomics, and reports executions that
    /// order forbids. Where a protocol rests on that order, it calls this next to the access
    /// (between a write and a later read of another atomic): loom supports `SeqCst` fences,
    /// and a fence there orders what the `SeqCst` accesses order in a normal build, where this
    /// is nothing.
    pub(crate) fn seq_cst_point() {
        loom::sync::atomic::fence(Ordering::SeqCst);
    }

    use std::num::NonZeroUsize;
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    /// A spin-and-yield mutex on a loom atomic, so loom explores every interleaving of the
    /// reentrant lock built on it. `lock_api` needs a `const INIT`, which loom atomics cannot
    /// provide, hence the `OnceLock`: the atomic is created on first use, inside the model.
    pub(crate) struct RawMutex {
        locked: OnceLock<loom::sync::atomic::AtomicBool>,
    }

    impl RawMutex {
        fn cell(&self) -> &loom::sync::atomic::AtomicBool {
            self.locked
                .get_or_init(|| loom::sync::atomic::AtomicBool::new(false))
        }
    }

    // SAFETY: `try_lock` succeeds for exactly one caller until `unlock` (a compare-and-swap from
    // false to true, Acquire on success so the previous holder's writes are visible; `unlock`
    // stores false with Release to publish this holder's writes).
    unsafe impl lock_api::RawMutex for RawMutex {
        #[allow(clippy::declare_interior_mutable_const)]
        const INIT: Self = Self {
            locked: OnceLock::new(),
        };
        type GuardMarker = lock_api::GuardNoSend;

        fn lock(&self) {
            while !self.try_lock() {
                loom::thread::yield_now();
            }
        }

        fn try_lock(&self) -> bool {
            self.cell()
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        }

        unsafe fn unlock(&self) {
            self.cell().store(false, Ordering::Release);
        }
    }

    // SAFETY: a timed attempt is one `try_lock` (loom's time does not advance), which keeps the
    // `RawMutex` guarantees above.
    unsafe impl lock_api::RawMutexTimed for RawMutex {
        type Duration = Duration;
        type Instant = Instant;
        fn try_lock_for(&self, _timeout: Duration) -> bool {
            lock_api::RawMutex::try_lock(self)
        }
        fn try_lock_until(&self, _timeout: Instant) -> bool {
            lock_api::RawMutex::try_lock(self)
        }
    }

    /// Loom runs its threads on one OS thread, so parking_lot's address-of-a-thread-local id
    /// would give every model thread the same id: number loom threads instead.
    pub(crate) struct RawThreadId;

    static NEXT_ID: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);
    loom::thread_local! {
        static THREAD_ID: usize = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    // SAFETY: every loom thread gets a distinct, non-zero number for its whole life.
    unsafe impl lock_api::GetThreadId for RawThreadId {
        const INIT: Self = RawThreadId;
        fn nonzero_thread_id(&self) -> NonZeroUsize {
            NonZeroUsize::new(THREAD_ID.with(|id| *id)).expect("thread ids start at 1")
        }
    }

    /// A mutex without poisoning (loom's, with the poison result unwrapped: a model that
    /// panics fails anyway).
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);
    pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(loom::sync::Mutex::new(value))
        }
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }
    }

    /// Loom stand-in for the arc-swap snapshot: a loom `RwLock<Arc<T>>`, so loom sees every
    /// publish and read as a synchronisation point.
    pub(crate) struct Snapshot<T>(loom::sync::RwLock<Arc<T>>);

    impl<T> Snapshot<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(loom::sync::RwLock::new(Arc::new(value)))
        }
        pub(crate) fn from_arc(value: Arc<T>) -> Self {
            Self(loom::sync::RwLock::new(value))
        }
        pub(crate) fn load(&self) -> Arc<T> {
            self.0.read().unwrap().clone()
        }
        pub(crate) fn load_full(&self) -> Arc<T> {
            self.load()
        }
        pub(crate) fn store(&self, value: Arc<T>) {
            *self.0.write().unwrap() = value;
        }
        pub(crate) fn swap(&self, value: Arc<T>) -> Arc<T> {
            std::mem::replace(&mut *self.0.write().unwrap(), value)
        }
        pub(crate) fn compare_and_swap(&self, current: &Arc<T>, new: Arc<T>) -> Arc<T> {
            let mut slot = self.0.write().unwrap();
            if Arc::ptr_eq(&slot, current) {
                std::mem::replace(&mut *slot, new)
            } else {
                slot.clone()
            }
        }
    }

    macro_rules! thread_local_shim {
        ($(#[$m:meta])* static $name:ident : $t:ty = $init:expr;) => {
            loom::thread_local!($(#[$m])* static $name: $t = $init);
        };
    }
    pub(crate) use thread_local_shim as thread_local;

    /// Loom stand-in for the per-thread snapshot reader: re-reads the snapshot every time.
    pub(crate) struct SnapshotReader<'a, T> {
        cell: &'a Snapshot<T>,
        last: Option<Arc<T>>,
    }

    impl<T> Snapshot<T> {
        pub(crate) fn reader(&self) -> SnapshotReader<'_, T> {
            SnapshotReader {
                cell: self,
                last: None,
            }
        }
    }

    impl<T> SnapshotReader<'_, T> {
        pub(crate) fn load(&mut self) -> &Arc<T> {
            self.last.insert(self.cell.load())
        }
    }
}

pub(crate) use imp::*;
