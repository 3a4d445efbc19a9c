//! Model store: reads and updates at 1, 2 and 4 threads, for `LockFree`, `Blocking`, and a
//! `Mutex<HashMap>` / `RwLock<HashMap>` versioned store as baselines.
//!
//! Each measurement spawns N threads, lines them up on a `Barrier`, and times the wall clock
//! for all of them to do `iters / N` operations each (`iter_custom`), so the figure is the
//! time per operation of the whole group: lower is better, and perfect scaling halves it from
//! 1 to 2 threads.
//!
//! * `read`: `get` of a random record among 1,000.
//! * `update_low`: each thread increments random records among its own 1,000 / N (no two
//!   threads touch one record, but they share the store).
//! * `update_high`: every thread increments the same record.
//!
//! Baselines: a `HashMap<u64, (version, value)>` under a parking_lot `Mutex` or `RwLock`
//! whose update is one critical section (look up, check the version, clone, change, bump the
//! version, write back), the cheapest a lock-based versioned store can do.
//!
//! Run: `cargo bench --bench model -- --warm-up-time 1 --measurement-time 2`

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

#[path = "common/mod.rs"]
mod common;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use parking_lot::{Mutex, RwLock};
use unlocked::model::{Model, ModelStore};
use unlocked::{Blocking, LockFree, Strategy};

const RECORDS: u64 = 1_000;
const THREADS: [usize; 3] = [1, 2, 4];

#[derive(Clone, Debug)]
struct Row {
    hits: u64,
    owner: [u8; 16],
}

impl Model for Row {
    const APP_LABEL: &'static str = "bench";
    const NAME: &'static str = "Row";
}

#[derive(Clone, Copy)]
enum Op {
    Read,
    UpdateLow,
    UpdateHigh,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Read => "read",
            Op::UpdateLow => "update_low",
            Op::UpdateHigh => "update_high",
        }
    }
}

/// What the bench needs from each store.
trait Bench: Send + Sync + 'static {
    fn read(&self, pk: u64) -> u64;
    fn update(&self, pk: u64);
}

impl<S: Strategy> Bench for ModelStore<Row, S> {
    #[inline]
    fn read(&self, pk: u64) -> u64 {
        self.get(pk).map_or(0, |r| r.hits ^ u64::from(r.owner[0]))
    }
    #[inline]
    fn update(&self, pk: u64) {
        self.update(pk, |r| r.hits += 1).expect("update commits");
    }
}

type Versioned = (u64, Row);

struct MutexMap(Mutex<HashMap<u64, Versioned>>);
struct RwLockMap(RwLock<HashMap<u64, Versioned>>);

/// One critical section: look up, check the version read, clone, change, write back.
#[inline]
fn locked_update(map: &mut HashMap<u64, Versioned>, pk: u64) {
    let (version, row) = map.get(&pk).expect("present");
    let read = *version;
    let mut next = row.clone();
    next.hits += 1;
    let entry = map.get_mut(&pk).expect("present");
    assert_eq!(entry.0, read, "version check");
    *entry = (read + 1, next);
}

impl Bench for MutexMap {
    #[inline]
    fn read(&self, pk: u64) -> u64 {
        self.0
            .lock()
            .get(&pk)
            .map_or(0, |(_, r)| r.hits ^ u64::from(r.owner[0]))
    }
    #[inline]
    fn update(&self, pk: u64) {
        locked_update(&mut self.0.lock(), pk);
    }
}

impl Bench for RwLockMap {
    #[inline]
    fn read(&self, pk: u64) -> u64 {
        self.0
            .read()
            .get(&pk)
            .map_or(0, |(_, r)| r.hits ^ u64::from(r.owner[0]))
    }
    #[inline]
    fn update(&self, pk: u64) {
        locked_update(&mut self.0.write(), pk);
    }
}

fn row() -> Row {
    Row {
        hits: 0,
        owner: *b"someone@example.",
    }
}

fn fill<S: Strategy>() -> ModelStore<Row, S> {
    let store = ModelStore::builder().retry_budget(u32::MAX).build();
    for _ in 0..RECORDS {
        store.insert(row());
    }
    store
}

fn map() -> HashMap<u64, Versioned> {
    (1..=RECORDS).map(|pk| (pk, (1, row()))).collect()
}

/// xorshift, one per thread.
#[inline]
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Wall time for `threads` threads to do `iters` operations together.
fn run<B: Bench>(store: &Arc<B>, op: Op, threads: usize, iters: u64) -> Duration {
    let slice = RECORDS / threads as u64;
    common::parallel(threads, iters, |t| {
        let store = &**store;
        let mut rng = 0x9E37_79B9_7F4A_7C15_u64 ^ ((t as u64 + 1) * 0x2545_F491);
        move |_| match op {
            Op::Read => {
                black_box(store.read(next(&mut rng) % RECORDS + 1));
            }
            // Own slice: records t*slice+1 ..= (t+1)*slice.
            Op::UpdateLow => store.update(t as u64 * slice + next(&mut rng) % slice + 1),
            Op::UpdateHigh => store.update(1),
        }
    })
}

fn bench_model(c: &mut Criterion) {
    for op in [Op::Read, Op::UpdateLow, Op::UpdateHigh] {
        let mut group = c.benchmark_group(format!("model/{}", op.name()));
        for threads in THREADS {
            let lock_free = Arc::new(fill::<LockFree>());
            group.bench_with_input(BenchmarkId::new("lock-free", threads), &threads, |b, &n| {
                b.iter_custom(|iters| run(&lock_free, op, n, iters))
            });
            let blocking = Arc::new(fill::<Blocking>());
            group.bench_with_input(BenchmarkId::new("blocking", threads), &threads, |b, &n| {
                b.iter_custom(|iters| run(&blocking, op, n, iters))
            });
            let mutex = Arc::new(MutexMap(Mutex::new(map())));
            group.bench_with_input(
                BenchmarkId::new("mutex-hashmap", threads),
                &threads,
                |b, &n| b.iter_custom(|iters| run(&mutex, op, n, iters)),
            );
            let rwlock = Arc::new(RwLockMap(RwLock::new(map())));
            group.bench_with_input(
                BenchmarkId::new("rwlock-hashmap", threads),
                &threads,
                |b, &n| b.iter_custom(|iters| run(&rwlock, op, n, iters)),
            );
        }
        group.finish();
    }
}

criterion_group!(benches, bench_model);
criterion_main!(benches);
