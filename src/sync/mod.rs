//! Private synchronisation shim.
//!
//! Every atomic, mutex and snapshot cell whose *protocol* we own goes through this module, so
//! that building with `RUSTFLAGS="--cfg unlocked_loom"` swaps them for [loom]'s model-checked
//! versions. Normal builds use `std` atomics, `parking_lot` (no poisoning) and `arc-swap`.
//!
//! The loom versions keep the same API; they are slower and only meant for the models under
//! `cfg(unlocked_loom)`. Global statics (the lock registries) are not usable inside loom models
//! (loom objects cannot outlive one execution): the models build their own local instances.
//!
//! The two versions are in `shim.rs` (re-exported here); [`arc_cell`] and [`escalate`] build
//! on them, and this file adds the model stores' reclamation guard ([`EpochGuard`], [`pin`]).
//!
//! [loom]: https://docs.rs/loom

#![allow(dead_code, unused_imports)]

mod shim;

pub(crate) use shim::*;

pub(crate) mod arc_cell;
pub(crate) mod escalate;
pub(crate) mod recycle;

/// A guard of the model stores' reclamation domain: crossbeam-epoch's global collector
/// (measured against seize in `docs/model.md`: it keeps its write cost after hundreds of
/// threads have come and gone). A record it reclaims becomes a spare of the reclaiming thread
/// ([`recycle`]) instead of going back to the allocator. Under loom, a stand-in that never
/// releases anything.
#[cfg(not(unlocked_loom))]
pub(crate) struct EpochGuard(crossbeam::epoch::Guard);

#[cfg(all(test, not(unlocked_loom)))]
impl EpochGuard {
    /// Hands this thread's retired records to crossbeam's global queue and reclaims what can
    /// be (tests that wait for spares).
    pub(crate) fn flush(&self) {
        self.0.flush();
    }
}

#[cfg(not(unlocked_loom))]
// SAFETY: crossbeam-epoch runs a deferred function only after every thread pinned at the time
// of `defer_unchecked` has unpinned: the guarantee `Reclaim` asks for.
unsafe impl arc_cell::Reclaim for EpochGuard {
    #[inline]
    unsafe fn retire<T: Send + Sync + 'static>(&self, ptr: *const T) {
        // SAFETY: `ptr` came from `Arc::into_raw` with a count the caller hands over; the
        // `Arc` is not dropped before crossbeam says no thread that was pinned can still hold
        // it (`recycle::retire` keeps it in the thread's limbo or defers it through `self`).
        let record = unsafe { std::sync::Arc::from_raw(ptr) };
        recycle::retire(&self.0, record);
    }
}
/// See the non-loom definition.
#[cfg(unlocked_loom)]
pub(crate) type EpochGuard = arc_cell::LeakGuard;

/// Pins the current thread in the model stores' reclamation domain.
#[inline]
pub(crate) fn pin() -> EpochGuard {
    #[cfg(not(unlocked_loom))]
    {
        EpochGuard(crossbeam::epoch::pin())
    }
    #[cfg(unlocked_loom)]
    {
        arc_cell::LeakGuard
    }
}
