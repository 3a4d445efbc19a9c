//! Sessions on Redis (feature `redis`): what a versioned save costs over the floor of one round
//! trip, and against the in-memory stores.
//!
//! One task, one session, sequential operations (latency), then 16 tasks on 16 sessions
//! (throughput through one multiplexed connection):
//!
//! * `redis/save`: `RedisSession::save` of one changed key (one `EVALSHA` of the versioned
//!   save script: compare the version, write data, expiry, version and write token, `PEXPIREAT`).
//! * `redis/blind_set`: `SET` of the same encoded record bytes through the same kind of
//!   connection: the floor, one round trip that checks nothing.
//! * `redis/load`: `RedisSessionStore::load` (one `HMGET`, decode).
//! * `redis/load_update_save`: a request's whole session work: load, `update("hits", +1)`,
//!   save (two round trips).
//! * `memory/load_update_save`: the same on the in-memory `SessionStore` (`LockFree`).
//! * `tower_memory/save`: tower-sessions' `MemoryStore::save` of a record with the same data
//!   (in memory, blind: what the user's default store costs).
//! * `x16/...`: 16 tasks at once, each on its own session, per operation.
//!
//! Needs a server at `UNLOCKED_REDIS_URL` (default `redis://127.0.0.1:6379`); without one it
//! prints a notice and measures only the in-memory cells.
//!
//! Run: `cargo bench --features redis --bench session_redis -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use tower_sessions::session::{Id, Record};
use tower_sessions::{MemoryStore, SessionStore as _};
use unlocked::session::{RedisSessionStore, SessionCodec, SessionData, SessionStore};

fn plus_one(v: Option<&Value>) -> Value {
    json!(v.and_then(Value::as_i64).unwrap_or(0) + 1)
}

/// Four keys, as in the versus bench.
fn data() -> SessionData {
    let mut d = SessionData::new();
    d.insert("user_id", json!(42));
    d.insert("theme", json!("dark"));
    d.insert("cart", json!([1, 2, 3]));
    d.insert("hits", json!(0));
    d
}

const TASKS: usize = 16;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("session_redis");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let memory: SessionStore = SessionStore::new();
    let key = {
        let mut s = memory.load(None);
        for (k, v) in data().iter() {
            s.insert(k, v.clone());
        }
        s.save().expect("create");
        s.session_key().expect("key")
    };
    group.bench_function("memory/load_update_save", |b| {
        b.iter(|| {
            let mut s = memory.load(Some(key.as_str()));
            s.update("hits", plus_one).expect("update");
            s.save().expect("save");
        })
    });

    let tower = MemoryStore::default();
    let mut record = Record {
        id: Id(1),
        data: data()
            .iter()
            .map(|(k, v)| (k.to_owned(), v.clone()))
            .collect(),
        expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
    };
    rt.block_on(tower.create(&mut record)).expect("create");
    group.bench_function("tower_memory/save", |b| {
        b.iter(|| rt.block_on(tower.save(black_box(&record))).expect("save"))
    });

    let url =
        std::env::var("UNLOCKED_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let prefix = format!("unlocked-bench:{}:", std::process::id());
    let store = match rt.block_on(
        RedisSessionStore::builder()
            .prefix(&prefix)
            .default_age(Duration::from_secs(600))
            .connect(&url),
    ) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("notice: Redis at {url} unreachable ({e}); only the in-memory cells ran");
            group.finish();
            return;
        }
    };
    let new_session = || {
        rt.block_on(async {
            let mut s = store.load(None).await.expect("load");
            for (k, v) in data().iter() {
                s.insert(k, v.clone());
            }
            s.save().await.expect("create");
            s
        })
    };

    let mut session = new_session();
    group.bench_function("redis/save", |b| {
        b.iter(|| {
            rt.block_on(async {
                session.update("hits", plus_one).expect("update");
                session.save().await.expect("save");
            })
        })
    });
    let key = session.session_key().expect("key");
    group.bench_function("redis/load", |b| {
        b.iter(|| {
            rt.block_on(async { black_box(store.load(Some(key.as_str())).await.expect("load")) })
        })
    });
    group.bench_function("redis/load_update_save", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut s = store.load(Some(key.as_str())).await.expect("load");
                s.update("hits", plus_one).expect("update");
                s.save().await.expect("save");
            })
        })
    });

    let client = redis::Client::open(url.as_str()).expect("url");
    let mut raw = rt
        .block_on(client.get_multiplexed_async_connection())
        .expect("connect");
    let bytes = SessionCodec::new().encode(&data()).expect("encode");
    let set_key = format!("{prefix}blind");
    group.bench_function("redis/blind_set", |b| {
        b.iter(|| {
            rt.block_on(async {
                let () = redis::cmd("SET")
                    .arg(&set_key)
                    .arg(&bytes[..])
                    .arg("PX")
                    .arg(600_000)
                    .query_async(&mut raw)
                    .await
                    .expect("set");
            })
        })
    });

    // 16 tasks at once, each on its own session: one operation per task per iteration.
    let sessions: Vec<_> = (0..TASKS).map(|_| new_session()).collect();
    let keys: Arc<Vec<String>> = Arc::new(
        sessions
            .iter()
            .map(|s| s.session_key().expect("key").as_str().to_owned())
            .collect(),
    );
    group.bench_function("x16/redis/load_update_save", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                let mut tasks = Vec::new();
                for t in 0..TASKS {
                    let (store, keys) = (store.clone(), Arc::clone(&keys));
                    tasks.push(tokio::spawn(async move {
                        for _ in 0..iters.div_ceil(TASKS as u64) {
                            let mut s = store.load(Some(&keys[t])).await.expect("load");
                            s.update("hits", plus_one).expect("update");
                            s.save().await.expect("save");
                        }
                    }));
                }
                for t in tasks {
                    t.await.expect("task");
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("x16/redis/blind_set", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                let mut tasks = Vec::new();
                for t in 0..TASKS {
                    let (mut raw, bytes) = (raw.clone(), bytes.clone());
                    let key = format!("{prefix}blind{t}");
                    tasks.push(tokio::spawn(async move {
                        for _ in 0..iters.div_ceil(TASKS as u64) {
                            let () = redis::cmd("SET")
                                .arg(&key)
                                .arg(&bytes[..])
                                .arg("PX")
                                .arg(600_000)
                                .query_async(&mut raw)
                                .await
                                .expect("set");
                        }
                    }));
                }
                for t in tasks {
                    t.await.expect("task");
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
