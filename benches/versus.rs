//! `LockFree` against `Blocking` against the hand-written `parking_lot::Mutex<HashMap>` a user
//! would otherwise write: the table at the top of `docs/benchmarks.md`.
//!
//! Cells (each at 1, 2, 8 and 32 threads, `iter_custom` + `Barrier`, time per operation of the
//! whole group, lower is better):
//!
//! * `model_update`: `update` of a random record among 256 (`views += 1`); records are a
//!   struct with a `String` and a `u64`.
//! * `model_update_hot`: every thread updates the same record.
//! * `model_get`: `get` of a random record, reading `views` (`LockFree` also through `pin()`,
//!   which moves no reference count).
//! * `session_load`: `load` of a random session among 256 (four keys each) and one key read.
//! * `session_save`: `load` + `update("hits", +1)` + `save`.
//!
//! Then the single-thread cells again (`after_256_threads/…`) in a process that has had 256
//! threads alive at once, each of which touched every store: a web server's thread pool. The
//! reclamation schemes keep per-thread state, and a scheme whose writes walk it gets slower
//! for good.
//!
//! The mutex maps do the least a user's code would: lock, look up, change in place (or copy out
//! the value read), unlock. They keep no versions and cannot detect a lost update between a
//! load and a save; they are the floor, not a peer with the same guarantees.
//!
//! Run: `cargo bench --bench versus -- --warm-up-time 1 --measurement-time 2`

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::Duration;

#[path = "common/mod.rs"]
mod common;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use parking_lot::Mutex;
use serde_json::{Value, json};
use unlocked::model::{Model, ModelStore};
use unlocked::session::SessionStore;
use unlocked::{Blocking, LockFree, Strategy};

const RECORDS: u64 = 256;
const SESSIONS: usize = 256;
const THREADS: [usize; 4] = [1, 2, 8, 32];

#[derive(Clone, Debug)]
struct Article {
    #[allow(dead_code)] // carried (copied on every copy-on-write update), never read
    title: String,
    views: u64,
}

impl Model for Article {
    const APP_LABEL: &'static str = "bench";
    const NAME: &'static str = "Article";
}

fn article(i: u64) -> Article {
    Article {
        title: format!("Article number {i}"),
        views: 0,
    }
}

fn incr(v: Option<&Value>) -> Value {
    json!(v.and_then(Value::as_i64).unwrap_or(0) + 1)
}

/// A xorshift step: cheap per-thread randomness.
#[inline]
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// The operations every contender offers.
trait Contender: Send + Sync {
    fn update(&self, i: u64);
    fn get(&self, i: u64) -> u64;
    fn get_pinned(&self, i: u64) -> u64 {
        self.get(i)
    }
    fn load(&self, s: usize) -> u64;
    fn save(&self, s: usize);
}

struct Ours<S: Strategy> {
    models: ModelStore<Article, S>,
    pks: Vec<u64>,
    sessions: SessionStore<S>,
    cookies: Vec<String>,
}

impl<S: Strategy> Ours<S> {
    fn new() -> Self {
        let models = ModelStore::new();
        let pks = (0..RECORDS)
            .map(|i| models.insert(article(i)).pk())
            .collect();
        let sessions = SessionStore::<S>::new();
        let cookies = (0..SESSIONS)
            .map(|i| {
                let mut s = sessions.load(None);
                s.insert("user", format!("user{i}"));
                s.insert("hits", 0);
                s.insert("cart", json!([1, 2, 3]));
                s.insert("theme", "dark");
                s.save().expect("fresh session saves");
                s.session_key().expect("saved").to_string()
            })
            .collect();
        Ours {
            models,
            pks,
            sessions,
            cookies,
        }
    }
}

impl<S: Strategy> Contender for Ours<S> {
    #[inline]
    fn update(&self, i: u64) {
        self.models
            .update(self.pks[i as usize], |a| a.views += 1)
            .expect("no budget: update commits");
    }
    #[inline]
    fn get(&self, i: u64) -> u64 {
        self.models.get(self.pks[i as usize]).map_or(0, |a| a.views)
    }
    #[inline]
    fn get_pinned(&self, i: u64) -> u64 {
        let pin = self.models.pin();
        pin.get(self.pks[i as usize]).map_or(0, |a| a.views)
    }
    #[inline]
    fn load(&self, s: usize) -> u64 {
        let session = self.sessions.load(Some(&self.cookies[s]));
        session.get("hits").and_then(Value::as_u64).unwrap_or(0)
    }
    #[inline]
    fn save(&self, s: usize) {
        let mut session = self.sessions.load(Some(&self.cookies[s]));
        session.update("hits", incr).expect("incr does not panic");
        session.save().expect("merge: save commits");
    }
}

/// What a user writes without this crate.
struct MutexMaps {
    models: Mutex<HashMap<u64, Article>>,
    sessions: Mutex<HashMap<String, HashMap<String, Value>>>,
    cookies: Vec<String>,
}

impl MutexMaps {
    fn new() -> Self {
        let models = (0..RECORDS).map(|i| (i, article(i))).collect();
        let cookies: Vec<String> = (0..SESSIONS).map(|i| format!("{i:032x}")).collect();
        let sessions = cookies
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let data = HashMap::from([
                    ("user".to_owned(), json!(format!("user{i}"))),
                    ("hits".to_owned(), json!(0)),
                    ("cart".to_owned(), json!([1, 2, 3])),
                    ("theme".to_owned(), json!("dark")),
                ]);
                (c.clone(), data)
            })
            .collect();
        MutexMaps {
            models: Mutex::new(models),
            sessions: Mutex::new(sessions),
            cookies,
        }
    }
}

impl Contender for MutexMaps {
    #[inline]
    fn update(&self, i: u64) {
        self.models.lock().get_mut(&i).expect("present").views += 1;
    }
    #[inline]
    fn get(&self, i: u64) -> u64 {
        self.models.lock().get(&i).map_or(0, |a| a.views)
    }
    #[inline]
    fn load(&self, s: usize) -> u64 {
        // A request copies out what it reads: the value must outlive the lock.
        let v = self
            .sessions
            .lock()
            .get(&self.cookies[s])
            .and_then(|d| d.get("hits").cloned());
        v.and_then(|v| v.as_u64()).unwrap_or(0)
    }
    #[inline]
    fn save(&self, s: usize) {
        let mut map = self.sessions.lock();
        let data = map.get_mut(&self.cookies[s]).expect("present");
        let hits = incr(data.get("hits"));
        data.insert("hits".to_owned(), hits);
    }
}

#[derive(Clone, Copy)]
enum Op {
    Update,
    UpdateHot,
    Get,
    GetPinned,
    Load,
    Save,
}

impl Op {
    const ALL: [Op; 6] = [
        Op::Update,
        Op::UpdateHot,
        Op::Get,
        Op::GetPinned,
        Op::Load,
        Op::Save,
    ];
    fn group(self) -> &'static str {
        match self {
            Op::Update => "model_update",
            Op::UpdateHot => "model_update_hot",
            Op::Get | Op::GetPinned => "model_get",
            Op::Load => "session_load",
            Op::Save => "session_save",
        }
    }
    #[inline]
    fn run<C: Contender + ?Sized>(self, c: &C, rng: &mut u64) {
        let r = next(rng);
        match self {
            Op::Update => c.update(r % RECORDS),
            Op::UpdateHot => c.update(0),
            Op::Get => {
                black_box(c.get(r % RECORDS));
            }
            Op::GetPinned => {
                black_box(c.get_pinned(r % RECORDS));
            }
            Op::Load => {
                black_box(c.load(r as usize % SESSIONS));
            }
            Op::Save => c.save(r as usize % SESSIONS),
        }
    }
}

struct Field {
    lock_free: Ours<LockFree>,
    blocking: Ours<Blocking>,
    mutex: MutexMaps,
}

impl Field {
    fn contenders(&self, op: Op) -> Vec<(&'static str, &dyn Contender)> {
        match op {
            Op::GetPinned => vec![("lock-free-pinned", &self.lock_free)],
            _ => vec![
                ("lock-free", &self.lock_free),
                ("blocking", &self.blocking),
                ("mutex-hashmap", &self.mutex),
            ],
        }
    }
}

fn cell(c: &mut Criterion, prefix: &str, field: &Field, threads: &[usize]) {
    for op in Op::ALL {
        let mut group = c.benchmark_group(format!("{prefix}{}", op.group()));
        for (name, contender) in field.contenders(op) {
            for &t in threads {
                group.bench_with_input(BenchmarkId::new(name, t), &t, |b, &t| {
                    b.iter_custom(|iters| {
                        common::parallel(t, iters, |thread| {
                            let mut rng =
                                0x9E37_79B9_7F4A_7C15 ^ ((thread as u64 + 1) * 0x2545_F491);
                            move |_| op.run(contender, &mut rng)
                        })
                    });
                });
            }
        }
        group.finish();
    }
}

/// Starts 256 threads that are all alive at once, each touching every store (so each has
/// registered with every reclamation scheme), then joins them.
fn pool_of_256(field: &Field) {
    let barrier = Barrier::new(256);
    std::thread::scope(|s| {
        for t in 0..256_u64 {
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                for op in Op::ALL {
                    for (_, c) in field.contenders(op) {
                        let mut rng = t + 1;
                        op.run(c, &mut rng);
                    }
                }
                barrier.wait();
            });
        }
    });
}

fn versus(c: &mut Criterion) {
    let field = Arc::new(Field {
        lock_free: Ours::new(),
        blocking: Ours::new(),
        mutex: MutexMaps::new(),
    });
    cell(c, "", &field, &THREADS);
    pool_of_256(&field);
    cell(c, "after_256_threads/", &field, &[1]);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20);
    targets = versus
}
criterion_main!(benches);
