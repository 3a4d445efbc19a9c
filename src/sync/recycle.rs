//! Spare records: retired `Arc`s kept for reuse by the thread that reclaimed them.
//!
//! A lock-free copy-on-write update allocates its new record and retires the old one, which
//! is released only once no reader can hold it (epoch reclamation). Released in batches, far
//! from where they were allocated, those frees defeat the allocator's per-thread caches:
//! callgrind put glibc's slow paths (`_int_malloc`, `malloc_consolidate`) at ≈ 300 of the
//! ≈ 1 050 instructions of a model update, more than the lock that `Blocking` pays.
//!
//! So a released record that nobody else holds (the reclaimer saw the last count) is not
//! freed: it goes to a small per-thread, per-type stack of spares, and the next update on that
//! thread overwrites it in place (`Arc::get_mut`: the allocation, and whatever buffers the
//! value's `clone_from` can reuse). A thread keeps at most [`PER_TYPE`] spares of a type;
//! beyond that, and on a thread that is exiting, a record is simply dropped.
//!
//! Safe code only: a spare is an `Arc` with a strong count of one, and `Arc::get_mut` proves
//! that at reuse. No reference to a store is kept, so a store can go away while its records
//! wait for reclamation.

use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::sync::Arc;

/// At most this many spares per type and thread (each is one record: its allocation and its
/// value's buffers stay reserved until reused or the thread exits).
pub(crate) const PER_TYPE: usize = 128;

/// One stack of spares per type (a thread touches few types: a linear search is the fastest
/// lookup).
type Stacks = Vec<(TypeId, Box<dyn Any>)>;

thread_local! {
    static SPARES: RefCell<Stacks> = const { RefCell::new(Vec::new()) };
}

fn stack<T: 'static>(stacks: &mut Stacks) -> &mut Vec<Arc<T>> {
    let id = TypeId::of::<Vec<Arc<T>>>();
    let at = match stacks.iter().position(|(t, _)| *t == id) {
        Some(at) => at,
        None => {
            stacks.push((id, Box::new(Vec::<Arc<T>>::with_capacity(PER_TYPE))));
            stacks.len() - 1
        }
    };
    stacks[at]
        .1
        .downcast_mut::<Vec<Arc<T>>>()
        .expect("the entry's type id matches")
}

/// Keeps `record` as a spare if this thread has room and nobody else holds it; drops it
/// otherwise (after the stacks are released: a value's `Drop` may reach them again).
pub(crate) fn put<T: Send + Sync + 'static>(mut record: Arc<T>) {
    if Arc::get_mut(&mut record).is_none() {
        // A reader still holds its own count: it keeps the record.
        return;
    }
    let refused = SPARES
        .try_with(|s| {
            let Ok(mut stacks) = s.try_borrow_mut() else {
                return Some(record);
            };
            let stack = stack::<T>(&mut stacks);
            if stack.len() < PER_TYPE {
                stack.push(record);
                None
            } else {
                Some(record)
            }
        })
        // The thread is exiting: its stacks are gone.
        .unwrap_or_else(|_| None);
    drop(refused);
}

/// A spare record of type `T` nobody else holds, if this thread has one.
#[inline]
pub(crate) fn take<T: 'static>() -> Option<Arc<T>> {
    SPARES
        .try_with(|s| {
            s.try_borrow_mut().ok()?.iter_mut().find_map(|(id, stack)| {
                (*id == TypeId::of::<Vec<Arc<T>>>())
                    .then(|| stack.downcast_mut::<Vec<Arc<T>>>()?.pop())
                    .flatten()
            })
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

    /// Records retired through the model stores' guard come back as spares once crossbeam
    /// reclaims them (miri runs this: the deferred `Arc::from_raw` of `EpochGuard::retire`).
    ///
    /// The guard comes from a collector of this test's own: on the global one, another test's
    /// thread may reclaim these records (and keep the spares), so waiting for them here could
    /// fail.
    #[cfg(not(unlocked_loom))]
    #[test]
    fn retired_records_come_back_as_spares() {
        use crate::sync::EpochGuard;
        use crate::sync::arc_cell::ArcCell;
        // A thread of its own: its spares are dropped when it exits.
        std::thread::spawn(|| {
            let collector = crossbeam::epoch::Collector::new();
            let handle = collector.register();
            let cell = ArcCell::new(Some(Arc::new((0_u64, String::from("0")))));
            let last = 200_u64;
            for i in 1..=last {
                let guard = EpochGuard(handle.pin());
                let current = cell.load_ptr(&guard);
                cell.compare_exchange(current, Some(Arc::new((i, i.to_string()))), &guard)
                    .expect("no other writer");
            }
            // The only participant: each flush moves the epoch on and reclaims up to eight
            // bags of 64 retirements that are two epochs old; ten reclaim everything.
            for _ in 0..10 {
                EpochGuard(handle.pin()).flush();
            }
            let mut seen = Vec::new();
            while let Some(mut spare) = take::<(u64, String)>() {
                assert!(Arc::get_mut(&mut spare).is_some(), "a spare is unique");
                assert_eq!(
                    spare.1,
                    spare.0.to_string(),
                    "a spare keeps its value until reused"
                );
                seen.push(spare.0);
            }
            seen.sort_unstable();
            // Every replaced record (0..last) came back, the cap allowing; the record still in
            // the cell did not.
            assert_eq!(
                seen.len(),
                (last as usize).min(PER_TYPE),
                "spares: {seen:?}"
            );
            assert!(
                seen.iter().all(|v| *v < last),
                "the record in the cell is not a spare"
            );
            let guard = EpochGuard(handle.pin());
            assert_eq!(cell.load(&guard).map(|r| r.get().0), Some(last));
        })
        .join()
        .expect("no panic");
    }

    #[test]
    fn a_shared_record_is_not_kept() {
        let shared = Arc::new(7_u8);
        put(shared.clone());
        assert!(take::<u8>().is_none());
        assert_eq!(Arc::strong_count(&shared), 1, "the put count was released");
    }
}
