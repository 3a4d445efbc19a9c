//! Runs one store operation N times, for instruction counting under callgrind (a repeatable
//! per-operation figure on a noisy machine). `ci/store-instructions.sh` runs every operation
//! at two values of N and prints the difference per operation.
//!
//! With a third argument, T threads share the N operations (each its own keys order, started
//! together by a barrier) and the probe prints the wall time per operation: with
//! `/usr/bin/time -f %M` around it, the peak memory too (retired records waiting on a stalled
//! epoch show there, see `docs/benchmarks.md`). Timings are for looking, not for the record:
//! the criterion `versus` bench is the measurement.
//!
//! With `PROBE_POOL=K` in the environment, K threads alive at once first run 64 operations
//! each and are joined before the measured run: the process a server's thread pool leaves
//! behind (the versus bench's `after_256_threads` cells).
//!
//! ```sh
//! cargo build --release --example store_probe
//! valgrind --tool=callgrind target/release/examples/store_probe lock-free/update 100000
//! /usr/bin/time -f '%M KiB' target/release/examples/store_probe lock-free/save 4000000 32
//! ```

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{Value, json};
use unlocked::model::{Model, ModelStore};
use unlocked::session::SessionStore;
use unlocked::{Blocking, LockFree, Strategy};

#[derive(Clone, Debug)]
struct Article {
    #[allow(dead_code)] // copied on every copy-on-write update, never read
    title: String,
    views: u64,
}

impl Model for Article {
    const APP_LABEL: &'static str = "probe";
    const NAME: &'static str = "Article";
}

const RECORDS: u64 = 256;

/// `hot16k`: one record whose value holds 16 KiB, which every thread updates: what a
/// copy-on-write update costs for a large value, and (under `/usr/bin/time -f %M`) how much
/// memory the replaced records a thread keeps take.
#[derive(Clone, Debug)]
struct Page {
    #[allow(dead_code)] // copied on every copy-on-write update, never read
    body: Vec<u8>,
    views: u64,
}

impl Model for Page {
    const APP_LABEL: &'static str = "probe";
    const NAME: &'static str = "Page";
}

fn page() -> Page {
    Page {
        body: vec![b'x'; 16 << 10],
        views: 0,
    }
}

fn incr(v: Option<&Value>) -> Value {
    json!(v.and_then(Value::as_i64).unwrap_or(0) + 1)
}

fn article(i: u64) -> Article {
    Article {
        title: format!("Article number {i}"),
        views: 0,
    }
}

fn ours<S: Strategy>(op: &str, n: u64, threads: usize) {
    let models: ModelStore<Article, S> = ModelStore::new();
    let pks: Vec<u64> = (0..RECORDS)
        .map(|i| models.insert(article(i)).pk())
        .collect();
    let pages: ModelStore<Page, S> = ModelStore::new();
    let page = pages.insert(page()).pk();
    let sessions = SessionStore::<S>::new();
    // `save16`: the sessions carry 12 more keys (16 in all), for what a save costs by size.
    let extra = if op == "save16" { 12 } else { 0 };
    let cookies: Vec<String> = (0..RECORDS)
        .map(|i| {
            let mut s = sessions.load(None);
            s.insert("user", format!("user{i}"));
            s.insert("hits", 0);
            s.insert("cart", json!([1, 2, 3]));
            s.insert("theme", "dark");
            for k in 0..extra {
                s.insert(format!("pref_{k:02}"), k);
            }
            s.save().expect("fresh session saves");
            s.session_key().expect("saved").to_string()
        })
        .collect();
    let run = |t: u64, n: u64| {
        for i in 0..n {
            let k = (i.wrapping_add(t << 20).wrapping_mul(0x9E37_79B9) >> 3) % RECORDS;
            match op {
                "update" => {
                    models
                        .update(pks[k as usize], |a| a.views += 1)
                        .expect("commits");
                }
                "hot" => {
                    models.update(pks[0], |a| a.views += 1).expect("commits");
                }
                "hot16k" => {
                    pages.update(page, |p| p.views += 1).expect("commits");
                }
                "get" => {
                    black_box(models.get(pks[k as usize]).map(|a| a.views));
                }
                "load" => {
                    let s = sessions.load(Some(&cookies[k as usize]));
                    black_box(s.get("hits").and_then(Value::as_u64));
                }
                "save" | "save16" => {
                    let mut s = sessions.load(Some(&cookies[k as usize]));
                    s.update("hits", incr).expect("no panic");
                    s.save().expect("saves");
                }
                _ => usage(),
            }
        }
    };
    pool(&run);
    spread(n, threads, run);
}

/// The hand-written maps of `benches/versus.rs`.
fn mutex(op: &str, n: u64, threads: usize) {
    let models: Mutex<HashMap<u64, Article>> =
        Mutex::new((0..RECORDS).map(|i| (i, article(i))).collect());
    let page = Mutex::new(page());
    let cookies: Vec<String> = (0..RECORDS).map(|i| format!("{i:032x}")).collect();
    let sessions: Mutex<HashMap<String, HashMap<String, Value>>> = Mutex::new(
        cookies
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
            .collect(),
    );
    let run = |t: u64, n: u64| {
        for i in 0..n {
            let k = (i.wrapping_add(t << 20).wrapping_mul(0x9E37_79B9) >> 3) % RECORDS;
            match op {
                "update" => models.lock().get_mut(&k).expect("present").views += 1,
                "hot" => models.lock().get_mut(&0).expect("present").views += 1,
                "hot16k" => page.lock().views += 1,
                "get" => {
                    black_box(models.lock().get(&k).map(|a| a.views));
                }
                "load" => {
                    // A request copies out what it reads: the value must outlive the lock.
                    let v = sessions
                        .lock()
                        .get(&cookies[k as usize])
                        .and_then(|d| d.get("hits").cloned());
                    black_box(v.and_then(|v| v.as_u64()));
                }
                "save" => {
                    let mut map = sessions.lock();
                    let data = map.get_mut(&cookies[k as usize]).expect("present");
                    let hits = incr(data.get("hits"));
                    data.insert("hits".to_owned(), hits);
                }
                _ => usage(),
            }
        }
    };
    pool(&run);
    spread(n, threads, run);
}

/// `PROBE_POOL=K`: K threads, all alive at once, run 64 operations each; then they are joined.
fn pool(run: &(impl Fn(u64, u64) + Sync)) {
    let Ok(k) = std::env::var("PROBE_POOL") else {
        return;
    };
    let Ok(k) = k.parse::<usize>() else {
        eprintln!("PROBE_POOL must be a thread count, got {k:?}");
        std::process::exit(2);
    };
    let barrier = Barrier::new(k);
    std::thread::scope(|s| {
        for t in 0..k {
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                run(t as u64 + 1, 64);
                barrier.wait();
            });
        }
    });
}

/// Runs `run(thread, ops)` on the calling thread (one thread: nothing else is counted), or on
/// `threads` threads that share the `n` operations, and prints the wall time per operation.
fn spread(n: u64, threads: usize, run: impl Fn(u64, u64) + Sync) {
    if threads <= 1 {
        return run(0, n);
    }
    let per = n / threads as u64;
    let barrier = Barrier::new(threads + 1);
    let elapsed: Duration = std::thread::scope(|s| {
        for t in 0..threads {
            let (run, barrier) = (&run, &barrier);
            s.spawn(move || {
                barrier.wait();
                run(t as u64, per);
                barrier.wait();
            });
        }
        barrier.wait();
        let start = Instant::now();
        barrier.wait();
        start.elapsed()
    });
    let ops = per * threads as u64;
    println!(
        "{threads} threads, {ops} ops: {:.1} ns/op",
        elapsed.as_nanos() as f64 / ops as f64
    );
}

fn usage() -> ! {
    eprintln!(
        "usage: store_probe (lock-free|blocking|mutex)/(update|hot|hot16k|get|load|save|save16) N [THREADS]\n\
         (save16: lock-free and blocking only)"
    );
    std::process::exit(2)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(name), Some(n)) = (args.next(), args.next().and_then(|n| n.parse::<u64>().ok()))
    else {
        usage()
    };
    let Some((strategy, op)) = name.split_once('/') else {
        usage()
    };
    let threads = match args.next().map(|t| t.parse::<usize>()) {
        None => 1,
        Some(Ok(t)) if t > 0 => t,
        Some(_) => usage(),
    };
    match strategy {
        "lock-free" => ours::<LockFree>(op, n, threads),
        "blocking" => ours::<Blocking>(op, n, threads),
        "mutex" => mutex(op, n, threads),
        _ => usage(),
    }
}
