//! [`ArcCell`]: an atomic, nullable pointer to an `Arc<T>`, read under a reclamation guard.
//!
//! This is the versioned cell under every lock-free record of the crate (a model record, a
//! session). The cell owns one strong count of the `Arc` it points to. Readers load the
//! pointer under a guard and borrow the value for the guard's lifetime (no reference count
//! moves), or take their own count ([`ArcCell::load_arc`]). A writer replaces the pointer with
//! a compare-and-swap by identity and *retires* the old one through its guard: the old count is
//! released only once no guard that could have loaded the pointer is alive (crossbeam-epoch
//! for model records, seize, through papaya's collector, for sessions).
//!
//! Identity comparison has no ABA problem: a writer compares against a pointer whose `Arc` it
//! holds (or that it loaded under a live guard), so that allocation cannot be freed and reused
//! while the writer compares.
//!
//! Every access is `SeqCst`. On x86-64 that costs nothing over Acquire/AcqRel (loads are
//! plain moves, read-modify-writes are locked instructions either way), and it puts the cell's
//! accesses in one total order with the escalation flags of [`super::escalate`], which the
//! progress bound of an escalated writer relies on (see there).

use std::marker::PhantomData;
use std::ptr;
use std::sync::Arc;

use super::shim::{AtomicPtr, Ordering};

/// A guard under which a pointer loaded from an [`ArcCell`] stays valid, and through which a
/// replaced pointer is retired.
///
/// # Safety
///
/// An implementor guarantees that a pointer passed to [`retire`](Self::retire) is not
/// released before every guard of the same reclamation domain that was alive at the time of
/// the call has been dropped. Every cell must only ever be accessed through guards of one
/// domain (the store that owns the cell picks it).
pub(crate) unsafe trait Reclaim {
    /// Releases, once safe, the strong count that `ptr` carries.
    ///
    /// # Safety
    ///
    /// `ptr` came from `Arc::into_raw` of an `Arc<T>` whose count the caller owns, and it is no
    /// longer reachable through any cell: no guard created from now on can load it.
    unsafe fn retire<T: Send + Sync + 'static>(&self, ptr: *const T);
}

/// Reclaims a retired pointer: gives back its strong count.
///
/// # Safety
///
/// As [`Reclaim::retire`], and called once the reclamation domain says no reader remains.
unsafe fn release<T>(ptr: *const T) {
    // SAFETY: the caller passes a pointer from `Arc::into_raw` carrying one strong count,
    // released here exactly once.
    unsafe { drop(Arc::from_raw(ptr)) }
}

/// A pointer that may move to the thread that reclaims it.
pub(crate) struct SendPtr<T>(pub(crate) *const T);
// SAFETY: it stands for an `Arc<T>` (with `T: Send + Sync`, checked at `retire`), which is
// `Send`; the pointer is only turned back into that `Arc`.
unsafe impl<T: Send + Sync> Send for SendPtr<T> {}

#[cfg(not(unlocked_loom))]
// SAFETY: crossbeam-epoch runs a deferred function only after every thread pinned at the time
// of `defer_unchecked` has unpinned: the guarantee `Reclaim` asks for.
unsafe impl Reclaim for crossbeam::epoch::Guard {
    unsafe fn retire<T: Send + Sync + 'static>(&self, ptr: *const T) {
        let ptr = SendPtr(ptr);
        // SAFETY: the closure only releases the count `ptr` carries (`release`'s contract is
        // ours to keep: `retire`'s caller guarantees it), and crossbeam delays it until no
        // thread that was pinned can still hold the pointer.
        unsafe {
            self.defer_unchecked(move || {
                let SendPtr(ptr) = ptr;
                release(ptr)
            })
        }
    }
}

#[cfg(not(unlocked_loom))]
// SAFETY: seize reclaims a retired pointer only after every guard of the collector that was
// active at the retirement has been dropped: the guarantee `Reclaim` asks for.
unsafe impl Reclaim for seize::LocalGuard<'_> {
    unsafe fn retire<T: Send + Sync + 'static>(&self, ptr: *const T) {
        /// seize's reclaimer signature around `release`.
        unsafe fn reclaim<T>(ptr: *mut T, _: &seize::Collector) {
            // SAFETY: `retire` handed this pointer over with its count, and seize calls this
            // once, when no guard can hold it.
            unsafe { release(ptr.cast_const()) }
        }
        // SAFETY: `ptr` is unreachable from new guards (the caller's contract) and `reclaim`
        // is valid for it.
        unsafe { seize::Guard::defer_retire(self, ptr.cast_mut(), reclaim::<T>) };
        super::recycle::watch_seize(self);
    }
}

/// The model-checked stand-in: loom cannot see crossbeam's or seize's internals, so under
/// loom a retired pointer is simply never released (the models check the cell's protocol;
/// memory safety of the reclamation is checked by miri on the real guards).
#[cfg(unlocked_loom)]
#[derive(Debug, Default)]
pub(crate) struct LeakGuard;

#[cfg(unlocked_loom)]
// SAFETY: nothing retired is ever released.
unsafe impl Reclaim for LeakGuard {
    unsafe fn retire<T: Send + Sync + 'static>(&self, _ptr: *const T) {}
}

/// A value borrowed from an [`ArcCell`] under a guard: the pointee of a live `Arc`, so it can
/// also be turned into a counted `Arc` of its own.
pub(crate) struct Loaded<'a, T> {
    /// The pointer as loaded from the cell: it keeps `Arc::into_raw`'s provenance over the
    /// whole allocation (counts included), which a `&T` would narrow to the value alone, so
    /// `to_arc` may write the count through it.
    ptr: std::ptr::NonNull<T>,
    _borrow: std::marker::PhantomData<&'a T>,
}

impl<T> Clone for Loaded<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Loaded<'_, T> {}

impl<'a, T> Loaded<'a, T> {
    /// The borrowed value, for the borrow's whole lifetime.
    #[inline]
    pub(crate) fn get(self) -> &'a T {
        // SAFETY: the pointee is alive and never mutated for `'a` (see `ArcCell::borrow`).
        unsafe { self.ptr.as_ref() }
    }

    /// The value's address (identity, for a compare-and-swap).
    #[inline]
    pub(crate) fn as_ptr(self) -> *const T {
        self.ptr.as_ptr()
    }

    /// A counted reference to the value.
    #[inline]
    pub(crate) fn to_arc(self) -> Arc<T> {
        let p: *const T = self.ptr.as_ptr();
        // SAFETY: a `Loaded` is only made from a pointer that came from `Arc::into_raw` and
        // is kept alive by the cell's count or its guard for `'a`: the allocation is live, so
        // one more count can be taken.
        unsafe {
            Arc::increment_strong_count(p);
            Arc::from_raw(p)
        }
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Loaded<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.get().fmt(f)
    }
}

impl<T> std::ops::Deref for Loaded<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        self.get()
    }
}

/// A value a compare-and-swap installed in an [`ArcCell`], kept borrowed together with the
/// guard it was installed under ([`ArcCell::compare_exchange_held`]): it can be returned from
/// the function that wrote it without taking a count of its own.
pub(crate) struct Held<'c, G, T> {
    /// Dropped after nothing can borrow `ptr` any more (a `Held` hands out borrows of itself).
    guard: G,
    /// As in [`Loaded`]: `Arc::into_raw`'s pointer, with provenance over the allocation.
    ptr: std::ptr::NonNull<T>,
    /// The cell: while it is borrowed it cannot be dropped (its `Drop` releases without a guard).
    _cell: PhantomData<&'c ArcCell<T>>,
}

impl<G, T> Held<'_, G, T> {
    /// The value as a [`Loaded`] borrowed from `self`.
    #[inline]
    fn loaded(&self) -> Loaded<'_, T> {
        // What makes the borrow sound: `ptr` was installed in the cell by a compare-and-swap
        // made under `self.guard`, so the count the cell then owned is released only by a
        // retirement through a guard of the cell's domain after it is unlinked, which waits
        // for `self.guard` (alive until `self` is dropped, so for the whole borrow), or by the
        // cell's `Drop`, which cannot run while `'c` borrows the cell.
        Loaded {
            ptr: self.ptr,
            _borrow: PhantomData,
        }
    }

    /// The value, borrowed from `self`.
    #[inline]
    pub(crate) fn get(&self) -> &T {
        self.loaded().get()
    }

    /// A counted reference to the value.
    #[inline]
    pub(crate) fn to_arc(&self) -> Arc<T> {
        self.loaded().to_arc()
    }
}

impl<G, T> std::ops::Deref for Held<'_, G, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        self.get()
    }
}

impl<G, T: std::fmt::Debug> std::fmt::Debug for Held<'_, G, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.get().fmt(f)
    }
}

/// An atomic, nullable `Arc<T>` (see the [module docs](self)).
pub(crate) struct ArcCell<T> {
    ptr: AtomicPtr<T>,
    /// The cell owns one strong count of the pointee: `Send`/`Sync` exactly when `Arc<T>` is.
    _owns: PhantomData<Arc<T>>,
}

fn into_ptr<T>(value: Option<Arc<T>>) -> *mut T {
    value.map_or(ptr::null_mut(), |a| Arc::into_raw(a).cast_mut())
}

impl<T: Send + Sync + 'static> ArcCell<T> {
    pub(crate) fn new(value: Option<Arc<T>>) -> Self {
        ArcCell {
            ptr: AtomicPtr::new(into_ptr(value)),
            _owns: PhantomData,
        }
    }

    /// The current pointer (null: empty), for a later
    /// [`compare_exchange`](Self::compare_exchange) against it.
    #[inline]
    pub(crate) fn load_ptr<G: Reclaim>(&self, _guard: &G) -> *const T {
        // SeqCst: see the module docs (Acquire is what the value itself needs: it pairs with
        // the writer's SeqCst swap, so the pointee's initialisation is visible).
        self.ptr.load(Ordering::SeqCst)
    }

    /// Borrows what a pointer read from this cell under `guard` points to.
    ///
    /// # Safety
    ///
    /// `p` was in this cell (loaded from it, or found by a failed compare-and-swap) while
    /// `guard` was alive.
    #[inline]
    unsafe fn borrow<'a, G: Reclaim>(
        &'a self,
        p: *const T,
        _guard: &'a G,
    ) -> Option<Loaded<'a, T>> {
        // What makes `Loaded::get` and `Loaded::to_arc` sound (the caller's contract): `p` is
        // null or came from `Arc::into_raw`, with the count the cell owned when it was in the
        // cell. That count is released only by `retire` through a guard of this cell's domain
        // after being unlinked (or by `Drop`, which needs `&mut self`, impossible while `'a`
        // borrows the cell); `guard` was alive when `p` was in the cell and lives for `'a`, so
        // the count is not released before `'a` ends.
        std::ptr::NonNull::new(p.cast_mut()).map(|ptr| Loaded {
            ptr,
            _borrow: std::marker::PhantomData,
        })
    }

    /// The current value, borrowed while both the cell and the guard live.
    #[inline]
    pub(crate) fn load<'a, G: Reclaim>(&'a self, guard: &'a G) -> Option<Loaded<'a, T>> {
        let p = self.load_ptr(guard);
        // SAFETY: just loaded from this cell under `guard`.
        unsafe { self.borrow(p, guard) }
    }

    /// The current value with its own strong count.
    #[inline]
    pub(crate) fn load_arc<G: Reclaim>(&self, guard: &G) -> Option<Arc<T>> {
        self.load(guard).map(Loaded::to_arc)
    }

    /// Replaces the value by `new` if the cell still holds `current` (by identity; null for
    /// empty). On success the old value is retired through `guard`. On failure `new` is handed
    /// back with the value found (borrowed under `guard`).
    ///
    /// `current` must be a pointer the caller keeps alive: one whose `Arc` it holds, or one it
    /// loaded under `guard` (no ABA).
    #[inline]
    #[allow(clippy::type_complexity)]
    pub(crate) fn compare_exchange<'a, G: Reclaim>(
        &'a self,
        current: *const T,
        new: Option<Arc<T>>,
        guard: &'a G,
    ) -> Result<(), (Option<Arc<T>>, Option<Loaded<'a, T>>)> {
        let new_ptr = into_ptr(new);
        // SeqCst on both sides: see the module docs. Success publishes the new value's
        // initialisation to readers (their SeqCst load is at least Acquire).
        match self.ptr.compare_exchange(
            current.cast_mut(),
            new_ptr,
            Ordering::SeqCst,
            Ordering::SeqCst,
        ) {
            Ok(old) => {
                if !old.is_null() {
                    // SAFETY: `old` came from `Arc::into_raw` and carried the count the cell
                    // owned; the swap unlinked it, so no guard created from now on loads it.
                    unsafe { guard.retire(old.cast_const()) };
                }
                Ok(())
            }
            Err(found) => {
                let back = (!new_ptr.is_null()).then(|| {
                    // SAFETY: `new_ptr` came from `Arc::into_raw` above and was never
                    // published: we still own its count.
                    unsafe { Arc::from_raw(new_ptr.cast_const()) }
                });
                // SAFETY: `found` was in this cell at the failed swap, while `guard` was alive.
                Err((back, unsafe { self.borrow(found.cast_const(), guard) }))
            }
        }
    }

    /// As [`compare_exchange`](Self::compare_exchange) with a value, but on success `guard`
    /// moves into the result, which keeps borrowing the value installed (no count taken). On
    /// failure `new` and `guard` are handed back.
    #[inline]
    pub(crate) fn compare_exchange_held<'c, G: Reclaim>(
        &'c self,
        current: *const T,
        new: Arc<T>,
        guard: G,
    ) -> Result<Held<'c, G, T>, (Arc<T>, G)> {
        // The pointer `compare_exchange` stores (`Arc::into_raw` is `Arc::as_ptr`, with the
        // provenance of the whole allocation).
        let installed = Arc::as_ptr(&new);
        match self.compare_exchange(current, Some(new), &guard) {
            Ok(()) => Ok(Held {
                guard,
                // SAFETY: `Arc::as_ptr` of a live `Arc` is never null.
                ptr: unsafe { std::ptr::NonNull::new_unchecked(installed.cast_mut()) },
                _cell: PhantomData,
            }),
            Err((back, _)) => Err((back.expect("`Some(new)` comes back"), guard)),
        }
    }

    /// Replaces the value by `new` whatever it holds; the old one is retired through `guard`.
    /// Returns whether the cell held a value.
    pub(crate) fn swap<G: Reclaim>(&self, new: Option<Arc<T>>, guard: &G) -> bool {
        // SeqCst: see the module docs.
        let old = self.ptr.swap(into_ptr(new), Ordering::SeqCst);
        if old.is_null() {
            return false;
        }
        // SAFETY: as in `compare_exchange`: `old` carried the cell's count and is unlinked.
        unsafe { guard.retire(old.cast_const()) };
        true
    }

    /// The value, through exclusive access (no guard needed: nobody else can reach the cell).
    pub(crate) fn get_mut(&mut self) -> Option<&T> {
        // Under loom, `with_mut` is the unsynchronised access of an exclusively borrowed atomic.
        #[cfg(unlocked_loom)]
        let p = self.ptr.with_mut(|p| *p);
        #[cfg(not(unlocked_loom))]
        let p = *self.ptr.get_mut();
        // SAFETY: `&mut self` excludes every other access to the cell, so the count it owns
        // keeps `p` alive for the borrow.
        unsafe { p.as_ref() }
    }

    /// Takes the value out through exclusive access.
    pub(crate) fn take(&mut self) -> Option<Arc<T>> {
        #[cfg(unlocked_loom)]
        let p = self.ptr.with_mut(|p| std::mem::replace(p, ptr::null_mut()));
        #[cfg(not(unlocked_loom))]
        let p = std::mem::replace(self.ptr.get_mut(), ptr::null_mut());
        // SAFETY: `&mut self` excludes other accesses; the cell's count moves to the caller
        // and the cell is left empty.
        (!p.is_null()).then(|| unsafe { Arc::from_raw(p.cast_const()) })
    }
}

impl<T> Drop for ArcCell<T> {
    fn drop(&mut self) {
        #[cfg(unlocked_loom)]
        let p = self.ptr.with_mut(|p| *p);
        #[cfg(not(unlocked_loom))]
        let p = *self.ptr.get_mut();
        if !p.is_null() {
            // SAFETY: the cell owns one count of `p`. Readers borrow values for no longer than
            // they borrow the cell (`load` ties both lifetimes), and `drop` has the cell
            // exclusively, so nobody borrows the value through this cell any more; readers
            // that took their own count keep the allocation alive.
            unsafe { release(p.cast_const()) }
        }
    }
}

impl<T> std::fmt::Debug for ArcCell<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArcCell").finish_non_exhaustive()
    }
}

#[cfg(all(test, not(unlocked_loom)))]
mod tests {
    //! Run under miri by `ci/miri.sh` (`--lib`): the unsafe blocks above with the real guards.
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Rec(u64, String);

    #[test]
    fn load_swap_and_retire_with_crossbeam() {
        let cell = ArcCell::new(Some(Arc::new(Rec(1, "one".into()))));
        let guard = crossbeam::epoch::pin();
        let held = cell.load_arc(&guard).unwrap();
        let borrowed = cell.load(&guard).unwrap().get();
        assert_eq!(borrowed, &Rec(1, "one".into()));
        let cur = cell.load_ptr(&guard);
        assert!(
            cell.compare_exchange(cur, Some(Arc::new(Rec(2, "two".into()))), &guard)
                .is_ok()
        );
        // The borrow from before the swap is still valid: the guard is alive.
        assert_eq!(borrowed.0, 1);
        let (back, found) = cell
            .compare_exchange(cur, Some(Arc::new(Rec(3, "three".into()))), &guard)
            .unwrap_err();
        assert_eq!(back.unwrap().0, 3, "the refused value comes back");
        assert_eq!(found.unwrap().0, 2);
        assert_eq!(found.unwrap().to_arc().1, "two");
        assert!(cell.swap(None, &guard));
        assert!(cell.load(&guard).is_none());
        assert!(!cell.swap(None, &guard));
        drop(guard);
        assert_eq!(
            held.1, "one",
            "an Arc taken by a reader outlives every retirement"
        );
        crossbeam::epoch::pin().flush();
    }

    #[test]
    fn retire_through_seize_and_drop_with_value() {
        let collector = seize::Collector::new();
        let cell = ArcCell::new(Some(Arc::new(Rec(1, "a".into()))));
        for i in 2..100 {
            let guard = collector.enter();
            let cur = cell.load_ptr(&guard);
            cell.compare_exchange(cur, Some(Arc::new(Rec(i, i.to_string()))), &guard)
                .unwrap();
        }
        let mut cell = cell;
        assert_eq!(cell.get_mut().unwrap().0, 99);
        let taken = cell.take().unwrap();
        assert_eq!(taken.0, 99);
        assert!(cell.get_mut().is_none());
        let other = ArcCell::new(Some(Arc::new(Rec(7, "dropped with the cell".into()))));
        drop(other);
    }
}
