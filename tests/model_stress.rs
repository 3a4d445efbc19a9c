//! Stress scenarios for `unlocked::model`, each run against both strategies: invariants are
//! checked exactly (no lost update, a constant total in every snapshot).

#[macro_use]
mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use unlocked::Strategy;
use unlocked::model::{CommitError, Model, ModelStore, SaveError};

#[derive(Clone, Debug)]
struct Counter {
    hits: u64,
}

impl Model for Counter {
    const APP_LABEL: &'static str = "stress";
    const NAME: &'static str = "Counter";
}

#[derive(Clone, Debug)]
struct Account {
    balance: i64,
}

impl Model for Account {
    const APP_LABEL: &'static str = "stress";
    const NAME: &'static str = "Account";
}

const RECORDS: usize = 3;
const THREADS_PER_KIND: usize = 2;
const INCREMENTS: usize = 20_000;

/// A small deterministic generator (xorshift), one per thread.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Threads increment counters in a few shared records, half through `update`, half through
/// read + `save` with a retry on conflict. Every increment each thread made is counted per
/// record; the stored counters must equal those counts exactly, and each record's version must
/// be one more than its number of commits.
fn increments_are_never_lost<S: Strategy>() {
    let store: Arc<ModelStore<Counter, S>> =
        Arc::new(ModelStore::builder().retry_budget(u32::MAX).build());
    let pks: Arc<Vec<u64>> = Arc::new(
        (0..RECORDS)
            .map(|_| store.insert(Counter { hits: 0 }).pk())
            .collect(),
    );
    let barrier = Arc::new(Barrier::new(2 * THREADS_PER_KIND));
    let conflicts = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..2 * THREADS_PER_KIND)
        .map(|t| {
            let (store, pks, barrier, conflicts) = (
                store.clone(),
                pks.clone(),
                barrier.clone(),
                conflicts.clone(),
            );
            thread::spawn(move || {
                let mut rng = 0x9E37_79B9_7F4A_7C15_u64 ^ (t as u64 + 1);
                let mut mine = [0_u64; RECORDS];
                barrier.wait();
                for _ in 0..INCREMENTS {
                    let i = (next(&mut rng) % RECORDS as u64) as usize;
                    if t % 2 == 0 {
                        store
                            .update(pks[i], |c| c.hits += 1)
                            .expect("unlimited budget: update commits");
                    } else {
                        let mut draft = store.get(pks[i]).expect("never deleted").edit();
                        draft.hits += 1;
                        loop {
                            match store.save(draft) {
                                Ok(_) => break,
                                Err(SaveError::Conflict { rejected, current }) => {
                                    conflicts.fetch_add(1, Ordering::Relaxed);
                                    // Rebase: apply our +1 to the current value.
                                    assert!(current.version() > rejected.version());
                                    draft = current.edit();
                                    draft.hits += 1;
                                }
                                Err(e) => panic!("unexpected save error: {e}"),
                            }
                        }
                    }
                    mine[i] += 1;
                }
                mine
            })
        })
        .collect();
    let mut expected = [0_u64; RECORDS];
    for h in handles {
        for (e, m) in expected.iter_mut().zip(h.join().unwrap()) {
            *e += m;
        }
    }
    assert_eq!(
        expected.iter().sum::<u64>(),
        (2 * THREADS_PER_KIND * INCREMENTS) as u64
    );
    for (i, &pk) in pks.iter().enumerate() {
        let rec = store.get(pk).unwrap();
        assert_eq!(rec.hits, expected[i], "lost updates on record {pk}");
        assert_eq!(rec.version(), expected[i] + 1, "one version per commit");
    }
    eprintln!(
        "{}: save conflicts rebased: {}",
        S::KIND,
        conflicts.load(Ordering::Relaxed)
    );
}

const ACCOUNTS: usize = 6;
const START: i64 = 1_000;
const TRANSFERS: usize = 15_000;

/// Transfer threads move money between accounts (through `update_many`, and through read +
/// `commit` with retry) while a reader repeatedly takes snapshots and sums them: every
/// snapshot must show the same total, and the final balances must match the sum of the
/// transfers each thread made.
fn transfers_keep_the_total_in_every_snapshot<S: Strategy>() {
    let store: Arc<ModelStore<Account, S>> =
        Arc::new(ModelStore::builder().retry_budget(u32::MAX).build());
    let pks: Arc<Vec<u64>> = Arc::new(
        (0..ACCOUNTS)
            .map(|_| store.insert(Account { balance: START }).pk())
            .collect(),
    );
    let total = START * ACCOUNTS as i64;
    let done = Arc::new(AtomicBool::new(false));
    let barrier = Arc::new(Barrier::new(4));

    let reader = {
        let (store, done, barrier) = (store.clone(), done.clone(), barrier.clone());
        thread::spawn(move || {
            barrier.wait();
            let mut snapshots = 0_u64;
            let mut distinct_states = 0_u64;
            let mut last = Vec::new();
            loop {
                let finished = done.load(Ordering::Acquire);
                let snap = store.snapshot();
                let balances: Vec<i64> = snap.iter().map(|r| r.balance).collect();
                assert_eq!(balances.len(), ACCOUNTS);
                let sum: i64 = balances.iter().sum();
                assert_eq!(
                    sum, total,
                    "a snapshot saw a transfer half-done: {balances:?}"
                );
                // `filter` and `all` read one snapshot too.
                let filtered: i64 = store.filter(|_| true).iter().map(|r| r.balance).sum();
                assert_eq!(filtered, total, "filter saw a transfer half-done");
                if balances != last {
                    distinct_states += 1;
                    last = balances;
                }
                snapshots += 1;
                if finished {
                    break;
                }
            }
            (snapshots, distinct_states)
        })
    };

    let transfer_threads: Vec<_> = (0..3)
        .map(|t| {
            let (store, pks, barrier) = (store.clone(), pks.clone(), barrier.clone());
            thread::spawn(move || {
                let mut rng = 0xD1B5_4A32_D192_ED03_u64 ^ (t as u64 + 7);
                let mut moved = [0_i64; ACCOUNTS];
                barrier.wait();
                for _ in 0..TRANSFERS {
                    let from = (next(&mut rng) % ACCOUNTS as u64) as usize;
                    let to =
                        (from + 1 + (next(&mut rng) % (ACCOUNTS as u64 - 1)) as usize) % ACCOUNTS;
                    let amount = (next(&mut rng) % 50) as i64 + 1;
                    if t == 0 {
                        store
                            .update_many(&[pks[from], pks[to]], |a| {
                                a[0].balance -= amount;
                                a[1].balance += amount;
                            })
                            .expect("unlimited budget: update_many commits");
                    } else {
                        loop {
                            let snap = store.snapshot();
                            let mut a = snap.get(pks[from]).unwrap().edit();
                            let mut b = snap.get(pks[to]).unwrap().edit();
                            a.balance -= amount;
                            b.balance += amount;
                            match store.commit(vec![a, b]) {
                                Ok(saved) => {
                                    assert_eq!(saved.len(), 2);
                                    break;
                                }
                                Err(CommitError::Conflict { .. }) => continue,
                                Err(e) => panic!("unexpected commit error: {e}"),
                            }
                        }
                    }
                    moved[from] -= amount;
                    moved[to] += amount;
                }
                moved
            })
        })
        .collect();

    let mut expected = [START; ACCOUNTS];
    for h in transfer_threads {
        for (e, m) in expected.iter_mut().zip(h.join().unwrap()) {
            *e += m;
        }
    }
    done.store(true, Ordering::Release);
    let (snapshots, distinct) = reader.join().unwrap();
    let finals: Vec<i64> = pks
        .iter()
        .map(|&pk| store.get(pk).unwrap().balance)
        .collect();
    assert_eq!(
        finals, expected,
        "final balances differ from the transfers made"
    );
    assert!(
        snapshots > 1,
        "the reader took only {snapshots} snapshot(s)"
    );
    eprintln!(
        "{}: {snapshots} snapshots checked, {distinct} distinct states",
        S::KIND
    );
}

/// 64 threads (on a 2-core machine: far more threads than cores, so writers are preempted
/// mid-attempt) hammer one record with the default settings: no retry budget, so contention
/// must never surface as an error. Half the threads use `update`, half `update_many` over the
/// hot record and a private one. The hot counter must equal the number of updates exactly.
fn hot_record_never_starves<S: Strategy>() {
    const THREADS: usize = 64;
    const EACH: u64 = 500;
    let store: ModelStore<Counter, S> = ModelStore::new();
    assert_eq!(store.retry_budget(), None, "the default never gives up");
    let hot = store.insert(Counter { hits: 0 }).pk();
    let own: Vec<u64> = (0..THREADS)
        .map(|_| store.insert(Counter { hits: 0 }).pk())
        .collect();
    let barrier = Barrier::new(THREADS);
    thread::scope(|scope| {
        for (t, &mine) in own.iter().enumerate() {
            let (store, barrier) = (&store, &barrier);
            scope.spawn(move || {
                barrier.wait();
                for _ in 0..EACH {
                    if t % 2 == 0 {
                        store
                            .update(hot, |c| c.hits += 1)
                            .unwrap_or_else(|e| panic!("update failed under contention: {e}"));
                    } else {
                        store
                            .update_many(&[mine, hot], |cs| {
                                cs[0].hits += 1;
                                cs[1].hits += 1;
                            })
                            .unwrap_or_else(|e| panic!("update_many failed under contention: {e}"));
                    }
                }
            });
        }
    });
    let total = THREADS as u64 * EACH;
    let rec = store.get(hot).expect("never deleted");
    assert_eq!(rec.hits, total, "lost updates on the hot record");
    assert_eq!(rec.version(), 1 + total, "one version per committed update");
    for (t, &pk) in own.iter().enumerate() {
        let want = if t % 2 == 0 { 0 } else { EACH };
        assert_eq!(store.get(pk).unwrap().hits, want, "thread {t}'s own record");
    }
}

strategy_tests!(
    increments_are_never_lost,
    transfers_keep_the_total_in_every_snapshot,
    hot_record_never_starves
);
