//! Many threads acting as requests on a few shared sessions: no write is lost.

#[macro_use]
mod common;

use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;

use serde_json::{Value, json};
use unlocked::Strategy;
use unlocked::session::{ConflictPolicy, SaveError, SessionStore};

const THREADS: usize = 8;
const REQUESTS: usize = 300;
const SESSIONS: usize = 3;

fn incr(v: Option<&Value>) -> Value {
    json!(v.and_then(Value::as_i64).unwrap_or(0) + 1)
}

/// Runs the workload; returns the number of reported conflicts.
fn run<S: Strategy>(policy: ConflictPolicy) -> u64 {
    let store = SessionStore::<S>::builder().conflict_policy(policy).build();
    let cookies: Vec<String> = (0..SESSIONS)
        .map(|_| {
            let mut s = store.load(None);
            s.save().unwrap();
            s.session_key().unwrap().to_string()
        })
        .collect();
    // Expired records swept concurrently must never disturb live ones.
    for _ in 0..50 {
        let mut s = store.load(None);
        s.set_expiry(unlocked::session::Expiry::Seconds(-1));
        s.save().unwrap();
    }
    let conflicts = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    let barrier = Barrier::new(THREADS + 2);
    thread::scope(|scope| {
        let mut workers = Vec::new();
        for t in 0..THREADS {
            let (store, cookies, conflicts, barrier) = (&store, &cookies, &conflicts, &barrier);
            workers.push(scope.spawn(move || {
                barrier.wait();
                for r in 0..REQUESTS {
                    let cookie = &cookies[(t + r) % SESSIONS];
                    loop {
                        let mut s = store.load(Some(cookie));
                        assert!(s.session_key().is_some(), "a live session vanished");
                        s.insert(format!("t{t}r{r}"), r);
                        s.update("counter", incr).unwrap();
                        match s.save() {
                            Ok(()) => break,
                            Err(SaveError::Conflict {
                                current,
                                loaded_version,
                            }) => {
                                assert!(current.version() > loaded_version);
                                conflicts.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => panic!("unexpected save error: {e}"),
                        }
                    }
                }
            }));
        }
        // A reader checking that counters only grow, and a sweeper.
        let (store, cookies, done, barrier) = (&store, &cookies, &done, &barrier);
        scope.spawn(move || {
            barrier.wait();
            let mut last = [0i64; SESSIONS];
            while !done.load(Ordering::Relaxed) {
                for (i, c) in cookies.iter().enumerate() {
                    let s = store.load(Some(c));
                    let n = s.get("counter").and_then(Value::as_i64).unwrap_or(0);
                    assert!(n >= last[i], "counter went back from {} to {n}", last[i]);
                    last[i] = n;
                }
                store.clear_expired();
            }
        });
        barrier.wait();
        for w in workers {
            w.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
    });

    for (i, cookie) in cookies.iter().enumerate() {
        let rec = store.record(cookie).expect("session lost");
        let mut expected = 0;
        for t in 0..THREADS {
            for r in 0..REQUESTS {
                if (t + r) % SESSIONS == i {
                    expected += 1;
                    assert_eq!(
                        rec.data().get(&format!("t{t}r{r}")),
                        Some(&json!(r)),
                        "lost write t{t}r{r}"
                    );
                }
            }
        }
        assert_eq!(
            rec.data().get("counter"),
            Some(&json!(expected)),
            "lost increments"
        );
        assert_eq!(rec.data().len(), expected as usize + 1, "stray keys");
        // One version per successful save: no save was applied twice or silently dropped.
        assert_eq!(rec.version(), 1 + expected as u64);
    }
    store.clear_expired();
    assert_eq!(
        store.len(),
        SESSIONS,
        "the sweeper removed exactly the expired records"
    );
    conflicts.into_inner()
}

fn merge_loses_nothing<S: Strategy>() {
    assert_eq!(
        run::<S>(ConflictPolicy::MergeChangedKeys),
        0,
        "merge never reports conflicts"
    );
}

fn reject_reports_and_retries<S: Strategy>() {
    let conflicts = run::<S>(ConflictPolicy::Reject);
    eprintln!("{}: {conflicts} conflicts reported and retried", S::KIND);
}

/// 64 threads save one hot session with the default policy and settings: every save must
/// succeed (contention never surfaces as an error) and every increment must count.
fn hot_session_never_starves<S: Strategy>() {
    const THREADS: usize = 64;
    const EACH: usize = 300;
    let store = SessionStore::<S>::new();
    let cookie = {
        let mut s = store.load(None);
        s.insert("hits", 0);
        s.save().unwrap();
        s.session_key().unwrap().to_string()
    };
    let barrier = Barrier::new(THREADS);
    thread::scope(|scope| {
        for t in 0..THREADS {
            let (store, cookie, barrier) = (&store, &cookie, &barrier);
            scope.spawn(move || {
                barrier.wait();
                for r in 0..EACH {
                    let mut s = store.load(Some(cookie));
                    s.update("hits", incr).unwrap();
                    if r % 16 == 0 {
                        s.insert(format!("t{t}"), r);
                    }
                    s.save()
                        .unwrap_or_else(|e| panic!("save failed under contention: {e}"));
                }
            });
        }
    });
    let s = store.load(Some(&cookie));
    let total = (THREADS * EACH) as i64;
    assert_eq!(s.get("hits"), Some(&json!(total)), "lost increments");
    assert_eq!(
        s.keys().count(),
        THREADS + 1,
        "one key per thread plus the counter"
    );
}

strategy_tests!(
    merge_loses_nothing,
    reject_reports_and_retries,
    hot_session_never_starves
);
