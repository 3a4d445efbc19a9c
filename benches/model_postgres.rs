//! Models on PostgreSQL (feature `postgres`): what a versioned write costs over the floor of
//! one round trip, and against the in-memory store.
//!
//! One task, one record, sequential operations (latency, not throughput):
//!
//! * `pg/save`: `PgModelStore::save` of a draft of the last saved record (the versioned
//!   `UPDATE … WHERE pk = $1 AND version = $2`, one round trip).
//! * `pg/blind_update`: a plain `UPDATE … SET data = $2 WHERE pk = $1` of the same row
//!   through a pool configured the same way: the floor, one round trip without a version.
//! * `pg/versioned_sql`: the bare versioned statement `UPDATE … SET data = $3, version =
//!   version + 1 WHERE pk = $1 AND version = $2` through the same kind of pool (what `save`
//!   would cost without its conflict read-back and write token).
//! * `pg/update`: `PgModelStore::update` (read, closure, versioned write: two round trips).
//! * `pg/get`: `PgModelStore::get`.
//! * `memory/update`: `ModelStore::update` (in-memory, `LockFree`).
//!
//! Needs a server at `UNLOCKED_DATABASE_URL` (default `postgres://root@127.0.0.1:5432/test`);
//! without one it prints a notice and measures only `memory/update`.
//!
//! Run: `cargo bench --features postgres --bench model_postgres -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgPoolOptions;
use unlocked::model::{Model, ModelStore, PgModelStore, Versioned};

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Row {
    hits: u64,
    owner: String,
}

impl Model for Row {
    const APP_LABEL: &'static str = "bench";
    const NAME: &'static str = "Row";
}

fn row() -> Row {
    Row {
        hits: 0,
        owner: "0123456789abcdef".to_owned(),
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("model_postgres");

    let memory: ModelStore<Row> = ModelStore::new();
    let pk = memory.insert(row()).pk();
    group.bench_function("memory/update", |b| {
        b.iter(|| black_box(memory.update(pk, |r| r.hits += 1).unwrap()))
    });

    let url = std::env::var("UNLOCKED_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".to_owned());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let table = format!("bench_model_{}", std::process::id());
    let store = match rt.block_on(PgModelStore::<Row>::connect(&url, &table)) {
        Ok(store) => store,
        Err(e) => {
            eprintln!("notice: PostgreSQL at {url} is unreachable ({e}); only memory/update ran");
            group.finish();
            return;
        }
    };
    rt.block_on(store.migrate()).unwrap();
    let mut last: Arc<Versioned<Row>> = rt.block_on(store.insert(row())).unwrap();
    let pk = last.pk();

    group.bench_function("pg/save", |b| {
        b.iter(|| {
            let mut draft = last.edit();
            draft.hits += 1;
            last = rt.block_on(store.save(draft)).unwrap();
        })
    });

    let pool = rt
        .block_on(
            PgPoolOptions::new()
                .max_connections(10)
                .test_before_acquire(false)
                .connect(&url),
        )
        .unwrap();
    let blind = format!("UPDATE \"{table}\" SET data = $2::jsonb WHERE pk = $1");
    let data = serde_json::to_string(&row()).unwrap();
    group.bench_function("pg/blind_update", |b| {
        b.iter(|| {
            rt.block_on(
                sqlx::query(&blind)
                    .bind(pk as i64)
                    .bind(&data)
                    .execute(&pool),
            )
            .unwrap()
        })
    });

    let versioned = format!(
        "UPDATE \"{table}\" SET data = $3::jsonb, version = version + 1 \
         WHERE pk = $1 AND version = $2 RETURNING version"
    );
    let mut version: i64 = rt
        .block_on(store.get(pk))
        .unwrap()
        .map(|r| r.version() as i64)
        .unwrap();
    group.bench_function("pg/versioned_sql", |b| {
        b.iter(|| {
            let row: (i64,) = rt
                .block_on(
                    sqlx::query_as(&versioned)
                        .bind(pk as i64)
                        .bind(version)
                        .bind(&data)
                        .fetch_one(&pool),
                )
                .unwrap();
            version = row.0;
        })
    });

    group.bench_function("pg/update", |b| {
        b.iter(|| black_box(rt.block_on(store.update(pk, |r| r.hits += 1)).unwrap()))
    });

    group.bench_function("pg/get", |b| {
        b.iter(|| black_box(rt.block_on(store.get(pk)).unwrap()))
    });
    group.finish();

    rt.block_on(sqlx::query(&format!("DROP TABLE \"{table}\"")).execute(&pool))
        .unwrap();
}

criterion_group!(benches, bench);
criterion_main!(benches);
