//! The five-level lock API: reentrancy, mutual exclusion at every level, try/timeout, lock
//! order, no poisoning, race-free lazy creation, instance locks, statistics.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use unlocked::lock::{
    self, Guarded, GuardedError, InstanceLock, Level, Lock, ReentrantLock, TryLockError,
    TryLockForError,
};

const THREADS: usize = 4;
const ITERS: u64 = if cfg!(miri) { 50 } else { 20_000 };

/// A counter incremented with a plain load and store (not a read-modify-write): if two threads
/// ever run the section at once, increments are lost.
fn racy_increment(counter: &AtomicU64) {
    let seen = counter.load(Ordering::Relaxed);
    std::hint::spin_loop();
    counter.store(seen + 1, Ordering::Relaxed);
}

fn hammer(lock: &'static Lock) -> u64 {
    let counter = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let counter = counter.clone();
            thread::spawn(move || {
                for i in 0..ITERS {
                    if i % 2 == 0 {
                        let _guard = lock.lock();
                        racy_increment(&counter);
                    } else {
                        lock.locked(|()| racy_increment(&counter));
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    counter.load(Ordering::Relaxed)
}

#[test]
fn mutual_exclusion_global() {
    assert_eq!(hammer(lock::global()), THREADS as u64 * ITERS);
}

#[test]
fn mutual_exclusion_module() {
    assert_eq!(
        hammer(lock::module("tests::exclusion")),
        THREADS as u64 * ITERS
    );
}

#[test]
fn mutual_exclusion_class() {
    struct Exclusion;
    assert_eq!(hammer(lock::class::<Exclusion>()), THREADS as u64 * ITERS);
}

#[test]
fn mutual_exclusion_function() {
    fn critical() {}
    assert_eq!(hammer(lock::function(&critical)), THREADS as u64 * ITERS);
    assert_eq!(hammer(unlocked::function_lock!()), THREADS as u64 * ITERS);
}

#[test]
fn mutual_exclusion_instance() {
    // A genuinely non-atomic counter: `Cell` inside the lock.
    let lock = Arc::new(InstanceLock::new(Cell::new(0_u64)));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let lock = lock.clone();
            thread::spawn(move || {
                for _ in 0..ITERS {
                    let guard = lock.lock();
                    let seen = guard.get();
                    std::hint::spin_loop();
                    guard.set(seen + 1);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(lock.lock().get(), THREADS as u64 * ITERS);
}

#[test]
fn mutual_exclusion_locked_function() {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    fn bump(by: u64) -> u64 {
        let seen = COUNTER.load(Ordering::Relaxed);
        std::hint::spin_loop();
        COUNTER.store(seen + by, Ordering::Relaxed);
        seen
    }
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            thread::spawn(|| {
                for _ in 0..ITERS {
                    lock::locked(bump, 1);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(COUNTER.load(Ordering::Relaxed), THREADS as u64 * ITERS);
}

#[test]
fn reentrancy_nests_to_any_depth() {
    let lock = InstanceLock::with_label("tests::reentrancy", Cell::new(0));
    fn nest(lock: &ReentrantLock<Cell<u32>>, depth: u32) {
        if depth == 0 {
            return;
        }
        let guard = lock.lock();
        guard.set(guard.get() + 1);
        assert!(lock.is_held_by_current_thread());
        nest(lock, depth - 1);
    }
    nest(&lock, 200);
    assert_eq!(lock.lock().get(), 200);
    assert!(!lock.is_locked(), "every nested guard released the lock");
    // 200 acquisitions in `nest` (re-entries included) and 1 for the check above.
    assert_eq!(lock.stats().acquisitions, 201);

    // Keyed locks nest too, through every form.
    let module = lock::module("tests::reentrancy");
    let outer = module.lock();
    let inner = module.try_lock().expect("re-entering never waits");
    let timed = module
        .try_lock_for(Duration::ZERO)
        .expect("nor with a timeout");
    module.locked(|()| assert!(module.is_held_by_current_thread()));
    drop((timed, inner, outer));
    assert!(!module.is_locked());
}

#[test]
fn try_lock_and_timeouts() {
    let lock = Arc::new(InstanceLock::new(()));
    let held = Arc::new(Barrier::new(2));
    let release = Arc::new(Barrier::new(2));
    let holder = {
        let (lock, held, release) = (lock.clone(), held.clone(), release.clone());
        thread::spawn(move || {
            let _guard = lock.lock();
            held.wait();
            release.wait();
        })
    };
    held.wait();
    assert!(lock.is_locked());
    assert!(!lock.is_held_by_current_thread());
    assert_eq!(lock.try_lock().unwrap_err(), TryLockError::WouldBlock);
    let timeout = Duration::from_millis(30);
    let start = Instant::now();
    assert_eq!(
        lock.try_lock_for(timeout).unwrap_err(),
        TryLockForError::Timeout(timeout)
    );
    assert!(start.elapsed() >= timeout, "gave up before the timeout");
    release.wait();
    holder.join().unwrap();
    assert!(lock.try_lock().is_ok());
    assert!(lock.try_lock_for(timeout).is_ok());
}

#[test]
fn timed_wait_succeeds_when_released_in_time() {
    let lock = Arc::new(InstanceLock::new(()));
    let held = Arc::new(Barrier::new(2));
    let holder = {
        let (lock, held) = (lock.clone(), held.clone());
        thread::spawn(move || {
            let guard = lock.lock();
            held.wait();
            thread::sleep(Duration::from_millis(20));
            drop(guard);
        })
    };
    held.wait();
    let guard = lock.try_lock_for(Duration::from_secs(10));
    assert!(guard.is_ok(), "released after ~20 ms, well inside 10 s");
    drop(guard);
    holder.join().unwrap();
    let stats = lock.stats();
    assert_eq!(stats.contended, 1);
    assert!(stats.wait > Duration::ZERO);
}

struct OrderModel;

#[test]
fn order_violation_names_both_sites() {
    let function = unlocked::function_lock!();
    let class = lock::class::<OrderModel>();
    // `checked_lock`: recorded in every build (a plain `lock()` is recorded only while the
    // order check is on, so in release this test failed before).
    let fine = function.checked_lock().unwrap();
    let fine_line = line!() - 1;
    let err = class.checked_lock().unwrap_err();
    let coarse_line = line!() - 1;
    assert_eq!(err.held.level, Level::Function);
    assert_eq!(err.acquiring.level, Level::Class);
    assert_eq!(err.held.location.line(), fine_line);
    assert_eq!(err.acquiring.location.line(), coarse_line);
    assert_eq!(err.acquiring.location.file(), file!());
    let message = err.to_string();
    assert!(
        message.contains(&format!("{}:{fine_line}", file!())),
        "{message}"
    );
    assert!(
        message.contains(&format!("{}:{coarse_line}", file!())),
        "{message}"
    );
    assert!(message.contains("OrderModel"), "{message}");
    assert!(
        !class.is_held_by_current_thread(),
        "refused before acquiring"
    );
    drop(fine);
    // In order, the same pair is fine.
    let coarse = class.checked_lock().unwrap();
    let fine = function.checked_lock().unwrap();
    drop((fine, coarse));
}

#[test]
fn reentering_a_coarser_lock_already_held_is_allowed() {
    let module = lock::module("tests::order::reenter");
    let instance = InstanceLock::new(());
    let outer = module.checked_lock().unwrap();
    let inner = instance.checked_lock().unwrap();
    // Holding a finer lock, re-entering the module lock is no deadlock risk.
    let again = module.checked_lock().unwrap();
    // But a different coarser lock is refused.
    let other = lock::module("tests::order::other").checked_lock();
    assert!(other.is_err());
    drop((again, inner, outer));
}

#[cfg(debug_assertions)]
#[test]
fn order_violation_panics_in_debug_lock() {
    assert!(lock::order_check_enabled(), "on by default in debug builds");
    let instance = InstanceLock::new(());
    let result = catch_unwind(AssertUnwindSafe(|| {
        let _fine = instance.lock();
        let _coarse = lock::global().lock();
    }));
    let payload = result.unwrap_err();
    let message = payload.downcast_ref::<String>().unwrap();
    assert!(message.contains("lock-order violation"), "{message}");
    assert!(message.contains("instance lock"), "{message}");
    // The unwinding released the instance lock and cleared the thread's record.
    assert!(!instance.is_locked());
    assert_eq!(lock::held_by_current_thread(), 0);
    let err = lock::global().try_lock().map(drop);
    assert!(err.is_ok() || err == Err(TryLockError::WouldBlock));
}

#[test]
fn a_panic_releases_the_lock() {
    let lock = lock::module("tests::panic");
    let result = thread::spawn(move || {
        lock.locked(|()| panic!("boom inside the locked section"));
    })
    .join();
    assert!(result.is_err());
    assert!(!lock.is_locked());
    // The next holder proceeds (no poisoning), even from another thread.
    let got = thread::spawn(move || lock.try_lock().is_ok())
        .join()
        .unwrap();
    assert!(got);

    let instance = Arc::new(InstanceLock::new(Cell::new(1)));
    let cloned = instance.clone();
    let result = thread::spawn(move || {
        let guard = cloned.lock();
        guard.set(2);
        panic!("boom with the guard held");
    })
    .join();
    assert!(result.is_err());
    assert_eq!(
        instance.lock().get(),
        2,
        "data is as the panicking code left it"
    );
}

#[test]
fn lazy_creation_is_unique_under_a_race() {
    struct Raced;
    fn raced_fn() {}
    const RACERS: usize = if cfg!(miri) { 4 } else { 16 };
    for round in 0..if cfg!(miri) { 2 } else { 8 } {
        let barrier = Arc::new(Barrier::new(RACERS));
        let path: &'static str = Box::leak(format!("tests::race::{round}").into_boxed_str());
        let handles: Vec<_> = (0..RACERS)
            .map(|_| {
                let barrier = barrier.clone();
                thread::spawn(move || {
                    barrier.wait();
                    let module = lock::module(path) as *const Lock as usize;
                    let class = lock::class::<(Raced, [u8; 3])>() as *const Lock as usize;
                    let function = lock::function(&raced_fn) as *const Lock as usize;
                    // Copies of the path at another address find the same lock.
                    let copy: &'static str = Box::leak(path.to_owned().into_boxed_str());
                    let module_copy = lock::module(copy) as *const Lock as usize;
                    (module, class, function, module_copy)
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let first = results[0];
        assert_eq!(first.0, first.3, "same path at two addresses, two locks");
        for r in &results {
            assert_eq!(*r, first, "two threads got different locks for one key");
        }
    }
}

#[test]
fn keyed_lookups_agree_with_the_macros() {
    struct Article;
    assert!(std::ptr::eq(
        unlocked::class_lock!(Article),
        lock::class::<Article>()
    ));
    assert!(std::ptr::eq(
        unlocked::module_lock!(),
        lock::module(module_path!())
    ));
    assert_eq!(unlocked::module_lock!().level(), Level::Module);
    assert_eq!(lock::class::<Article>().level(), Level::Class);
    assert!(lock::class::<Article>().key().ends_with("Article"));
    assert_eq!(lock::global().level(), Level::Global);
    assert!(std::ptr::eq(lock::global(), lock::global()));
    // Distinct keys, distinct locks.
    struct Other;
    assert!(!std::ptr::eq(
        lock::class::<Article>(),
        lock::class::<Other>()
    ));
    assert!(!std::ptr::eq(lock::module("a"), lock::module("b")));
}

#[test]
fn function_locks_are_per_function_and_per_call_site() {
    fn first() {}
    fn second() {}
    assert!(std::ptr::eq(lock::function(&first), lock::function(&first)));
    assert!(!std::ptr::eq(
        lock::function(&first),
        lock::function(&second)
    ));
    assert_eq!(lock::function(&first).level(), Level::Function);
    let sites = [unlocked::function_lock!(), unlocked::function_lock!()];
    assert!(
        !std::ptr::eq(sites[0], sites[1]),
        "two call sites, two locks"
    );
    fn site() -> &'static Lock {
        unlocked::function_lock!()
    }
    assert!(std::ptr::eq(site(), site()), "one call site, one lock");
    assert!(
        site().key().ends_with("site"),
        "named after its function: {}",
        site().key()
    );
}

#[test]
fn instance_locks_are_distinct_and_leave_nothing_behind() {
    struct Obj {
        lock: InstanceLock,
    }
    let a = Arc::new(Obj {
        lock: InstanceLock::with_label("tests::Obj", ()),
    });
    let b = Obj {
        lock: InstanceLock::with_label("tests::Obj", ()),
    };
    let held = Arc::new(Barrier::new(2));
    let release = Arc::new(Barrier::new(2));
    let holder = {
        let (a, held, release) = (a.clone(), held.clone(), release.clone());
        thread::spawn(move || {
            let _g = a.lock.lock();
            held.wait();
            release.wait();
        })
    };
    held.wait();
    assert!(a.lock.try_lock().is_err(), "a is held by the other thread");
    assert!(
        b.lock.try_lock().is_ok(),
        "b is another object: another lock"
    );
    release.wait();
    holder.join().unwrap();

    const CHURN: u64 = if cfg!(miri) { 100 } else { 10_000 };
    for _ in 0..CHURN {
        let obj = Obj {
            lock: InstanceLock::with_label("tests::Churn", ()),
        };
        drop(obj.lock.lock());
    }
    let report = lock::report();
    // Counted by label, not as growth of the whole report: tests running in parallel create
    // entries of their own meanwhile.
    let left = report
        .entries
        .iter()
        .filter(|e| e.key == "tests::Churn")
        .count();
    assert_eq!(
        left, 1,
        "{CHURN} dropped instance locks left {left} entries"
    );
    let churn = report
        .entries
        .iter()
        .find(|e| e.key == "tests::Churn")
        .unwrap();
    assert_eq!(churn.level, Level::Instance);
    assert_eq!(
        churn.acquisitions, CHURN,
        "dropped locks' counts are summed per label"
    );
}

#[test]
fn contention_is_counted_and_reported_hottest_first() {
    let lock = lock::module("tests::contended");
    let held = Arc::new(Barrier::new(2));
    let holder = {
        let held = held.clone();
        thread::spawn(move || {
            let guard = lock.lock();
            held.wait();
            thread::sleep(Duration::from_millis(30));
            drop(guard);
        })
    };
    held.wait();
    drop(lock.lock()); // waits ~30 ms
    holder.join().unwrap();
    let stats = lock.stats();
    assert_eq!(stats.acquisitions, 2);
    assert_eq!(stats.contended, 1);
    assert!(stats.wait >= Duration::from_millis(10), "{:?}", stats.wait);

    let report = lock::report();
    let pos = report
        .entries
        .iter()
        .position(|e| e.key == "tests::contended")
        .unwrap();
    for earlier in &report.entries[..pos] {
        assert!(
            earlier.wait >= stats.wait,
            "report is sorted by time waited"
        );
    }
    let table = report.to_string();
    assert!(table.contains("tests::contended"), "{table}");
    assert!(table.lines().next().unwrap().contains("contended"));
}

#[test]
fn guarded_values_need_the_lock() {
    const PER_THREAD: u32 = if cfg!(miri) { 20 } else { 1000 };
    static SHARED: std::sync::LazyLock<Guarded<Vec<u32>>> =
        std::sync::LazyLock::new(|| Guarded::new(lock::module("tests::guarded"), Vec::new()));
    let handles: Vec<_> = (0..THREADS as u32)
        .map(|t| {
            thread::spawn(move || {
                for i in 0..PER_THREAD {
                    SHARED.with(|v| v.push(t * PER_THREAD + i));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let mut all = SHARED.with(|v| v.clone());
    all.sort_unstable();
    assert_eq!(all, (0..THREADS as u32 * PER_THREAD).collect::<Vec<_>>());

    // A nested access to the same value is refused, not aliased.
    let nested = SHARED.with(|_| SHARED.try_with(|v| v.len()));
    let err = nested.unwrap_err();
    assert_eq!(err.lock, "tests::guarded");
    assert!(err.to_string().contains("nested access"));
    // Another value under the same lock is reachable while holding it.
    let other = Guarded::new(lock::module("tests::guarded"), 5_u32);
    assert_eq!(SHARED.with(|_| other.with(|n| *n)), 5);
}

#[test]
fn report_names_levels_and_keys() {
    drop(lock::module("tests::report").lock());
    let report = lock::report();
    let entry = report
        .entries
        .iter()
        .find(|e| e.key == "tests::report")
        .unwrap();
    assert_eq!(entry.level, Level::Module);
    assert!(entry.acquisitions >= 1);
    assert_eq!(report.hottest(1).len(), 1);
}

struct FallbackModel;

/// Issue 14: the locks of the `Blocking` fallback (those a `Guarded` value lives under) are
/// order-checked in every build, so a `Blocking` store touched out of order from inside
/// another's locked section is refused in release as in debug (before: debug only).
#[test]
fn guarded_locks_are_order_checked_in_every_build() {
    let sessions = Guarded::new(lock::module("tests::fallback::sessions"), 0_u32);
    let models = Guarded::new(lock::class::<FallbackModel>(), 0_u32);
    // In order: fine.
    sessions.with(|s| models.with(|m| *m += *s + 1));
    // Out of order: `with` panics with the lock-order message, in every build.
    let result = catch_unwind(AssertUnwindSafe(|| {
        models.with(|_| sessions.with(|s| *s += 1));
    }));
    let payload = result.expect_err("refused in every build");
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .unwrap_or_default();
    assert!(message.contains("lock-order violation"), "{message}");
    assert_eq!(sessions.with(|s| *s), 0, "the refused section did not run");
    assert_eq!(lock::held_by_current_thread(), 0);
    // Even when the outer lock is taken directly (as a store's `alters_data` does).
    let result = catch_unwind(AssertUnwindSafe(|| {
        let _outer = models.guarding_lock().lock();
        sessions.with(|s| *s += 1);
    }));
    assert!(result.is_err(), "refused in every build");
}

/// The same refusal as a value: `Guarded::checked_with`.
#[test]
fn guarded_checked_with_returns_the_error() {
    let sessions = Guarded::new(lock::module("tests::fallback::checked"), 0_u32);
    let models = Guarded::new(lock::class::<FallbackModel>(), 0_u32);
    let refused = models.with(|_| sessions.checked_with(|s| *s += 1));
    match refused {
        Err(GuardedError::Order(e)) => {
            assert_eq!(e.acquiring.level, Level::Module);
            assert_eq!(e.held.level, Level::Class);
        }
        other => panic!("unexpected {other:?}"),
    }
    // A nested access to the same value is the other error.
    let nested = sessions.with(|_| sessions.checked_with(|_| ()));
    assert!(matches!(nested, Err(GuardedError::Reentrant(_))));
    assert_eq!(sessions.checked_with(|s| *s), Ok(0));
}
