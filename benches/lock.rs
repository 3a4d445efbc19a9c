//! Lock API costs: uncontended acquire/release at each level against parking_lot's
//! `ReentrantMutex` and `std::sync::Mutex`, the lock-order check, and contended thread sweeps.
//!
//! `cargo bench --bench lock` (add `-- --quick` for a fast pass). Figures and the exact
//! command are recorded in `docs/benchmarks.md`.

use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[path = "common/mod.rs"]
mod common;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use unlocked::lock::{self, InstanceLock, Lock};

struct BenchModel;

fn bench_fn() {}

fn uncontended(c: &mut Criterion) {
    let mut g = c.benchmark_group("lock/uncontended");
    lock::set_order_check(false);

    let pl = parking_lot::ReentrantMutex::new(());
    g.bench_function("parking_lot ReentrantMutex (outer)", |b| {
        b.iter(|| drop(black_box(&pl).lock()))
    });
    let held = pl.lock();
    g.bench_function("parking_lot ReentrantMutex (nested)", |b| {
        b.iter(|| drop(black_box(&pl).lock()))
    });
    drop(held);
    let std_mutex = Mutex::new(());
    g.bench_function("std Mutex", |b| {
        b.iter(|| drop(black_box(&std_mutex).lock().unwrap()))
    });

    g.bench_function("global: global()", |b| {
        b.iter(|| drop(lock::global().lock()))
    });
    g.bench_function("module: module(path)", |b| {
        b.iter(|| drop(lock::module(black_box("bench::module")).lock()))
    });
    g.bench_function("module: module_lock!()", |b| {
        b.iter(|| drop(unlocked::module_lock!().lock()))
    });
    g.bench_function("class: class::<T>()", |b| {
        b.iter(|| drop(lock::class::<BenchModel>().lock()))
    });
    g.bench_function("class: class_lock!(T)", |b| {
        b.iter(|| drop(unlocked::class_lock!(BenchModel).lock()))
    });
    let instance = InstanceLock::new(());
    g.bench_function("instance: lock()", |b| {
        b.iter(|| drop(black_box(&instance).lock()))
    });
    let outer = instance.lock();
    g.bench_function("instance: lock() nested", |b| {
        b.iter(|| drop(black_box(&instance).lock()))
    });
    drop(outer);
    g.bench_function("function: function(&f)", |b| {
        b.iter(|| drop(lock::function(&bench_fn).lock()))
    });
    g.bench_function("function: function_lock!()", |b| {
        b.iter(|| drop(unlocked::function_lock!().lock()))
    });
    g.bench_function("function: locked(f, args)", |b| {
        b.iter(|| lock::locked(|x: u32| black_box(x), black_box(1)))
    });

    // The lock-order check, on, for the same operations.
    lock::set_order_check(true);
    g.bench_function("module: module_lock!() + order check", |b| {
        b.iter(|| drop(unlocked::module_lock!().lock()))
    });
    g.bench_function("instance: lock() + order check", |b| {
        b.iter(|| drop(black_box(&instance).lock()))
    });
    let module = unlocked::module_lock!().lock();
    g.bench_function("instance: lock() + order check, module held", |b| {
        b.iter(|| drop(black_box(&instance).lock()))
    });
    drop(module);
    lock::set_order_check(false);
    g.finish();
}

fn sweep(threads: usize, iters: u64, op: impl Fn() + Sync) -> Duration {
    common::parallel(threads, iters, |_| |_| op())
}

fn contended(c: &mut Criterion) {
    let mut g = c.benchmark_group("lock/contended");
    lock::set_order_check(false);
    for threads in [1, 2, 4] {
        g.bench_with_input(
            BenchmarkId::new("parking_lot ReentrantMutex", threads),
            &threads,
            |b, &t| {
                let m = Arc::new(parking_lot::ReentrantMutex::new(std::cell::Cell::new(0u64)));
                b.iter_custom(|iters| {
                    let m = m.clone();
                    sweep(t, iters, move || {
                        let g = m.lock();
                        g.set(g.get() + 1);
                    })
                })
            },
        );
        g.bench_with_input(BenchmarkId::new("std Mutex", threads), &threads, |b, &t| {
            let m = Arc::new(Mutex::new(0u64));
            b.iter_custom(|iters| {
                let m = m.clone();
                sweep(t, iters, move || *m.lock().unwrap() += 1)
            })
        });
        g.bench_with_input(
            BenchmarkId::new("unlocked module_lock!()", threads),
            &threads,
            |b, &t| {
                let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
                b.iter_custom(|iters| {
                    let counter = counter.clone();
                    sweep(t, iters, move || {
                        let lock: &'static Lock = unlocked::module_lock!();
                        let _g = lock.lock();
                        let n = counter.load(std::sync::atomic::Ordering::Relaxed);
                        counter.store(n + 1, std::sync::atomic::Ordering::Relaxed);
                    })
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("unlocked InstanceLock", threads),
            &threads,
            |b, &t| {
                let m = Arc::new(InstanceLock::new(std::cell::Cell::new(0u64)));
                b.iter_custom(|iters| {
                    let m = m.clone();
                    sweep(t, iters, move || {
                        let g = m.lock();
                        g.set(g.get() + 1);
                    })
                })
            },
        );
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = uncontended, contended
}
criterion_main!(benches);
