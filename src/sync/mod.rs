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

/// A guard of the model stores' reclamation domain: crossbeam-epoch's global collector
/// (measured against seize in `docs/model.md`: it keeps its write cost after hundreds of
/// threads have come and gone). Under loom, a stand-in that never releases anything.
#[cfg(not(unlocked_loom))]
pub(crate) type EpochGuard = crossbeam::epoch::Guard;
/// See the non-loom definition.
#[cfg(unlocked_loom)]
pub(crate) type EpochGuard = arc_cell::LeakGuard;

/// Pins the current thread in the model stores' reclamation domain.
#[inline]
pub(crate) fn pin() -> EpochGuard {
    #[cfg(not(unlocked_loom))]
    {
        crossbeam::epoch::pin()
    }
    #[cfg(unlocked_loom)]
    {
        arc_cell::LeakGuard
    }
}
