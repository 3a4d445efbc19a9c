//! Loom models of the protocols of `unlocked::lock` visible through its public API.
//!
//! Run with `RUSTFLAGS="--cfg unlocked_loom" cargo test --release --test loom` (see `.ci/run`).
//! Under that cfg the raw mutex under every lock is a loom atomic, so loom explores every
//! interleaving of acquisitions, re-entries and releases. The lazy-creation model lives next
//! to the registry (`src/lock/registry.rs`) because the registry is private.
#![cfg(unlocked_loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use unlocked::lock::InstanceLock;

fn builder() -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b
}

/// Two threads each take the lock, re-enter it, and increment a counter with a plain load and
/// store between the two acquisitions: no increment may be lost, the lock is free at the end,
/// and every acquisition is counted exactly once.
#[test]
fn owner_and_count_exclude_and_nest() {
    builder().check(|| {
        let lock = Arc::new(InstanceLock::new(AtomicUsize::new(0)));
        let spawn = |lock: Arc<InstanceLock<AtomicUsize>>| {
            loom::thread::spawn(move || {
                let outer = lock.lock();
                let seen = outer.load(Ordering::Relaxed);
                {
                    let inner = lock.lock();
                    assert!(lock.is_held_by_current_thread());
                    inner.store(seen + 1, Ordering::Relaxed);
                }
                // Still held after the inner guard drops: the count, not the owner, went down.
                assert!(lock.is_held_by_current_thread());
                drop(outer);
            })
        };
        let a = spawn(lock.clone());
        let b = spawn(lock.clone());
        a.join().unwrap();
        b.join().unwrap();
        assert!(!lock.is_locked());
        assert_eq!(
            lock.lock().load(Ordering::Relaxed),
            2,
            "an increment was lost"
        );
        let stats = lock.stats();
        assert_eq!(
            stats.acquisitions, 5,
            "two per thread (re-entry included) plus the check above"
        );
        assert!(stats.contended <= 2);
    });
}

/// `try_lock` never hands the lock to a second thread while the first holds it.
#[test]
fn try_lock_respects_the_owner() {
    builder().check(|| {
        let lock = Arc::new(InstanceLock::new(AtomicUsize::new(0)));
        let other = {
            let lock = lock.clone();
            loom::thread::spawn(move || {
                if let Ok(guard) = lock.try_lock() {
                    let seen = guard.load(Ordering::Relaxed);
                    guard.store(seen + 1, Ordering::Relaxed);
                    true
                } else {
                    false
                }
            })
        };
        let mine = {
            let guard = lock.lock();
            let seen = guard.load(Ordering::Relaxed);
            guard.store(seen + 1, Ordering::Relaxed);
            1
        };
        let theirs = usize::from(other.join().unwrap());
        assert_eq!(lock.lock().load(Ordering::Relaxed), mine + theirs);
    });
}

/// `Guarded` (whose `Sync` impl is `unsafe`) only lets one thread at a time reach its value:
/// two threads do a plain load-then-store increment through it and none is lost. Any
/// `&'static Lock` can guard a value; a leaked instance lock keeps the model self-contained.
#[test]
fn guarded_value_is_reached_under_the_lock_only() {
    use unlocked::lock::{Guarded, Lock};
    builder().check(|| {
        let lock: &'static Lock = Box::leak(Box::new(InstanceLock::new(())));
        let guarded = Arc::new(Guarded::new(lock, AtomicUsize::new(0)));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let guarded = guarded.clone();
                loom::thread::spawn(move || {
                    guarded.with(|n| {
                        let seen = n.load(Ordering::Relaxed);
                        n.store(seen + 1, Ordering::Relaxed);
                    })
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(
            guarded.with(|n| n.load(Ordering::Relaxed)),
            2,
            "an access escaped the lock"
        );
        assert!(!lock.is_locked());
    });
}
