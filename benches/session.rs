//! Session store throughput: load only; load + modify + save; create/delete churn; at 1, 2 and 4
//! threads, for the lock-free store (papaya), the `Blocking` store, a versioned store on
//! flurry written here (the previous lock-free design, as a peer), tower-sessions 0.15's `MemoryStore` driven as its users drive it (async calls on a
//! runtime, whole records cloned in and out), and a plain `RwLock<HashMap>` of whole records.
//!
//! Each measurement spawns N threads, waits on a barrier, and times the wall clock until all
//! threads finished `iters / N` operations (`iter_custom`). One "operation" is one request.
//!
//! `cargo bench --bench session -- --warm-up-time 1 --measurement-time 2`

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, RwLock};
use std::time::Duration;

#[path = "common/mod.rs"]
mod common;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tower_sessions::session::{Id, Record as TowerRecord};
use tower_sessions::{MemoryStore, SessionStore as _};
use unlocked::session::SessionStore;
use unlocked::{Blocking, LockFree};

const SESSIONS: usize = 64;
const THREADS: [usize; 3] = [1, 2, 4];

/// A peer through its own code: flurry 0.5 (the previous lock-free session map) holding
/// versioned records whose save is a compare-and-swap by version under the bin lock
/// (`compute_if_present`), the data map copied on every save.
#[derive(Default)]
struct FlurryStore {
    map: flurry::HashMap<u128, Arc<(u64, HashMap<String, Value>)>, foldhash::fast::RandomState>,
}

impl FlurryStore {
    fn seeded(&self) -> Vec<u128> {
        let map = self.map.pin();
        for i in 0..SESSIONS as u128 {
            map.insert(i, Arc::new((1, seed_data().into_iter().collect())));
        }
        (0..SESSIONS as u128).collect()
    }

    fn load(&self, id: u128) -> Arc<(u64, HashMap<String, Value>)> {
        self.map.pin().get(&id).cloned().unwrap()
    }

    /// Saves `data` if the record is still at `version`; `false` on a conflict.
    fn save(&self, id: u128, version: u64, data: HashMap<String, Value>) -> bool {
        let mut data = Some(data);
        let mut saved = false;
        self.map.pin().compute_if_present(&id, |_, cur| {
            if cur.0 == version {
                saved = true;
                Some(Arc::new((version + 1, data.take().unwrap_or_default())))
            } else {
                Some(Arc::clone(cur))
            }
        });
        saved
    }
}

fn flurry_load(threads: usize, iters: u64) -> Duration {
    let store = FlurryStore::default();
    let ids = store.seeded();
    measure(threads, iters, &|t| {
        let (ids, store) = (&ids, &store);
        move |n| {
            for i in 0..n as usize {
                let rec = store.load(ids[(t * 7 + i) % SESSIONS]);
                black_box(rec.1.get("_auth_user_id"));
            }
        }
    })
}

fn flurry_modify(threads: usize, iters: u64) -> Duration {
    let store = FlurryStore::default();
    let ids = store.seeded();
    measure(threads, iters, &|t| {
        let (ids, store) = (&ids, &store);
        let key = format!("seen_by_{t}");
        move |n| {
            for i in 0..n as usize {
                let id = ids[(t * 7 + i) % SESSIONS];
                loop {
                    let rec = store.load(id);
                    black_box(rec.1.get("_auth_user_id"));
                    let mut data = rec.1.clone();
                    data.insert(key.clone(), json!(i));
                    if store.save(id, rec.0, data) {
                        break;
                    }
                }
            }
        }
    })
}

fn flurry_churn(threads: usize, iters: u64) -> Duration {
    let store = FlurryStore::default();
    measure(threads, iters, &|t| {
        let store = &store;
        let mut next = (t as u128) << 64;
        move |n| {
            for _ in 0..n {
                next += 1;
                let data = [("_auth_user_id".to_string(), json!("42"))].into_iter().collect();
                let _ = store.map.pin().try_insert(next, Arc::new((1, data)));
                store.map.pin().remove(&next);
            }
        }
    })
}

/// The data every session starts with (same for every store).
fn seed_data() -> Vec<(String, Value)> {
    vec![
        ("_auth_user_id".into(), json!("42")),
        ("csrf".into(), json!("k3j4h5g6f7d8s9a0q1w2e3r4t5y6u7i8")),
        ("cart".into(), json!([1, 2, 3])),
        ("theme".into(), json!("dark")),
    ]
}

/// The shared sweep; each worker is asked for one operation at a time.
fn measure<W: FnMut(u64)>(
    threads: usize,
    iters: u64,
    make: &(dyn Fn(usize) -> W + Sync),
) -> Duration {
    common::parallel(threads, iters, |t| {
        let mut work = make(t);
        move |_| work(1)
    })
}

/// Our store, for any back end: cookies of the pre-made sessions.
fn seeded<S: unlocked::Strategy>(store: &SessionStore<S>) -> Vec<String> {
    (0..SESSIONS)
        .map(|_| {
            let mut s = store.load(None);
            for (k, v) in seed_data() {
                s.insert(k, v);
            }
            s.save().unwrap();
            s.session_key().unwrap().to_string()
        })
        .collect()
}

fn ours_load<S: unlocked::Strategy>(
    store: &SessionStore<S>,
    threads: usize,
    iters: u64,
) -> Duration {
    let cookies = seeded(store);
    measure(threads, iters, &|t| {
        let cookies = &cookies;
        move |n| {
            for i in 0..n as usize {
                let s = store.load(Some(&cookies[(t * 7 + i) % SESSIONS]));
                black_box(s.get("_auth_user_id"));
            }
        }
    })
}

fn ours_modify<S: unlocked::Strategy>(
    store: &SessionStore<S>,
    threads: usize,
    iters: u64,
) -> Duration {
    let cookies = seeded(store);
    measure(threads, iters, &|t| {
        let cookies = &cookies;
        let key = format!("seen_by_{t}");
        move |n| {
            for i in 0..n as usize {
                let mut s = store.load(Some(&cookies[(t * 7 + i) % SESSIONS]));
                black_box(s.get("_auth_user_id"));
                s.insert(key.clone(), i);
                s.save().unwrap();
            }
        }
    })
}

fn ours_churn<S: unlocked::Strategy>(
    store: &SessionStore<S>,
    threads: usize,
    iters: u64,
) -> Duration {
    measure(threads, iters, &|_| {
        move |n| {
            for _ in 0..n {
                let mut s = store.load(None);
                s.insert("_auth_user_id", "42");
                s.save().unwrap();
                let key = s.session_key().unwrap();
                store.delete(key.as_str());
            }
        }
    })
}

fn tower_seeded(store: &MemoryStore) -> Vec<Id> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    (0..SESSIONS)
        .map(|_| {
            let mut record = TowerRecord {
                id: Id::default(),
                data: seed_data().into_iter().collect(),
                expiry_date: OffsetDateTime::now_utc() + time::Duration::weeks(2),
            };
            rt.block_on(store.create(&mut record)).unwrap();
            record.id
        })
        .collect()
}

/// A request handler's runtime: one current-thread tokio runtime per worker thread.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

fn tower_load(threads: usize, iters: u64) -> Duration {
    let store = MemoryStore::default();
    let ids = tower_seeded(&store);
    measure(threads, iters, &|t| {
        let (ids, store, rt) = (&ids, store.clone(), runtime());
        move |n| {
            for i in 0..n as usize {
                let id = ids[(t * 7 + i) % SESSIONS];
                rt.block_on(async {
                    let rec = store.load(&id).await.unwrap().unwrap();
                    black_box(rec.data.get("_auth_user_id"));
                });
            }
        }
    })
}

fn tower_modify(threads: usize, iters: u64) -> Duration {
    let store = MemoryStore::default();
    let ids = tower_seeded(&store);
    measure(threads, iters, &|t| {
        let (ids, store, rt) = (&ids, store.clone(), runtime());
        let key = format!("seen_by_{t}");
        move |n| {
            for i in 0..n as usize {
                let id = ids[(t * 7 + i) % SESSIONS];
                rt.block_on(async {
                    let mut rec = store.load(&id).await.unwrap().unwrap();
                    black_box(rec.data.get("_auth_user_id"));
                    rec.data.insert(key.clone(), json!(i));
                    store.save(&rec).await.unwrap();
                });
            }
        }
    })
}

fn tower_churn(threads: usize, iters: u64) -> Duration {
    let store = MemoryStore::default();
    measure(threads, iters, &|_| {
        let (store, rt) = (store.clone(), runtime());
        move |n| {
            for _ in 0..n {
                rt.block_on(async {
                    let mut rec = TowerRecord {
                        id: Id::default(),
                        data: [("_auth_user_id".to_string(), json!("42"))]
                            .into_iter()
                            .collect(),
                        expiry_date: OffsetDateTime::now_utc() + time::Duration::weeks(2),
                    };
                    store.create(&mut rec).await.unwrap();
                    store.delete(&rec.id).await.unwrap();
                });
            }
        }
    })
}

/// The naive synchronous store: `RwLock<HashMap>` of whole records, cloned in and out
/// (last writer wins, like Django).
type RwStore = RwLock<HashMap<u128, TowerRecord>>;

fn rw_seeded(store: &RwStore) -> Vec<u128> {
    let mut map = store.write().unwrap();
    for i in 0..SESSIONS as u128 {
        let rec = TowerRecord {
            id: Id(i as i128),
            data: seed_data().into_iter().collect(),
            expiry_date: OffsetDateTime::now_utc() + time::Duration::weeks(2),
        };
        map.insert(i, rec);
    }
    (0..SESSIONS as u128).collect()
}

fn rw_load_rec(store: &RwStore, id: u128) -> TowerRecord {
    let rec = store.read().unwrap().get(&id).cloned().unwrap();
    assert!(rec.expiry_date > OffsetDateTime::now_utc());
    rec
}

fn rw_load(threads: usize, iters: u64) -> Duration {
    let store = RwStore::default();
    let ids = rw_seeded(&store);
    measure(threads, iters, &|t| {
        let (ids, store) = (&ids, &store);
        move |n| {
            for i in 0..n as usize {
                let rec = rw_load_rec(store, ids[(t * 7 + i) % SESSIONS]);
                black_box(rec.data.get("_auth_user_id"));
            }
        }
    })
}

fn rw_modify(threads: usize, iters: u64) -> Duration {
    let store = RwStore::default();
    let ids = rw_seeded(&store);
    measure(threads, iters, &|t| {
        let (ids, store) = (&ids, &store);
        let key = format!("seen_by_{t}");
        move |n| {
            for i in 0..n as usize {
                let id = ids[(t * 7 + i) % SESSIONS];
                let mut rec = rw_load_rec(store, id);
                black_box(rec.data.get("_auth_user_id"));
                rec.data.insert(key.clone(), json!(i));
                store.write().unwrap().insert(id, rec);
            }
        }
    })
}

fn rw_churn(threads: usize, iters: u64) -> Duration {
    let store = RwStore::default();
    measure(threads, iters, &|_| {
        let store = &store;
        move |n| {
            for _ in 0..n {
                let rec = TowerRecord {
                    id: Id::default(),
                    data: [("_auth_user_id".to_string(), json!("42"))]
                        .into_iter()
                        .collect(),
                    expiry_date: OffsetDateTime::now_utc() + time::Duration::weeks(2),
                };
                let id = rec.id.0 as u128;
                let mut map = store.write().unwrap();
                if let std::collections::hash_map::Entry::Vacant(v) = map.entry(id) {
                    v.insert(rec);
                }
                drop(map);
                store.write().unwrap().remove(&id);
            }
        }
    })
}

fn group(c: &mut Criterion, workload: &str) {
    let mut g = c.benchmark_group(format!("session/{workload}"));
    // No `Throughput`: with one, criterion plots throughput against the element count
    // (always 1) instead of time against the thread count, and draws no `lines.svg`.
    for &threads in &THREADS {
        macro_rules! ours {
            ($label:literal, $ty:ty) => {
                g.bench_with_input(
                    BenchmarkId::new($label, threads),
                    &threads,
                    |b, &threads| {
                        b.iter_custom(|iters| {
                            let store = <$ty>::default();
                            match workload {
                                "load" => ours_load(&store, threads, iters),
                                "load_modify_save" => ours_modify(&store, threads, iters),
                                _ => ours_churn(&store, threads, iters),
                            }
                        })
                    },
                );
            };
        }
        ours!("lock-free", SessionStore<LockFree>);
        ours!("blocking", SessionStore<Blocking>);
        g.bench_with_input(
            BenchmarkId::new("flurry-versioned", threads),
            &threads,
            |b, &threads| {
                b.iter_custom(|iters| match workload {
                    "load" => flurry_load(threads, iters),
                    "load_modify_save" => flurry_modify(threads, iters),
                    _ => flurry_churn(threads, iters),
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("tower-memory-store", threads),
            &threads,
            |b, &threads| {
                b.iter_custom(|iters| match workload {
                    "load" => tower_load(threads, iters),
                    "load_modify_save" => tower_modify(threads, iters),
                    _ => tower_churn(threads, iters),
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("rwlock-hashmap", threads),
            &threads,
            |b, &threads| {
                b.iter_custom(|iters| match workload {
                    "load" => rw_load(threads, iters),
                    "load_modify_save" => rw_modify(threads, iters),
                    _ => rw_churn(threads, iters),
                })
            },
        );
    }
    g.finish();
}

fn sessions(c: &mut Criterion) {
    for workload in ["load", "load_modify_save", "create_delete"] {
        group(c, workload);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(10);
    targets = sessions
}
criterion_main!(benches);
