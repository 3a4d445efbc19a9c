//! The five lock levels of `unlocked::lock`, as the first version of this example drove them.
//!
//! For each level, every thread repeatedly takes the level's lock and increments a plain
//! (load, then store) counter under it; afterwards the counter must equal the number of
//! completed sections, or an increment was lost. A last case nests one lock of every level in
//! order (global → module → class → instance → function) to exercise reentrancy and the
//! lock-order check together.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;
use unlocked::lock::{self, InstanceLock, Level, Lock};

struct Article;

fn article_save() {}

/// One case: which lock a worker takes for each critical section.
#[derive(Clone, Copy)]
enum Case {
    Level(Level),
    Nested,
}

/// What one lock case measured.
#[derive(Serialize)]
pub struct Outcome {
    /// The lock level (or the nested case).
    pub name: String,
    /// Critical sections completed.
    pub sections: u64,
    /// What the counter guarded by the lock reads afterwards (must equal `sections`).
    pub counted: u64,
    /// Wall time of the case.
    pub elapsed: Duration,
    /// Acquisitions that found the lock held.
    pub contended: u64,
    /// Time spent waiting for it.
    pub waited: Duration,
}

fn keyed(level: Level) -> &'static Lock {
    match level {
        Level::Global => lock::global(),
        Level::Module => unlocked::module_lock!(),
        Level::Class => lock::class::<Article>(),
        Level::Function => lock::function(&article_save),
        Level::Instance => unreachable!("instance locks live in their object"),
    }
}

fn run_case(case: Case, threads: usize, duration: Duration) -> Outcome {
    let counter = Arc::new(AtomicU64::new(0));
    let instance = Arc::new(InstanceLock::with_label(
        "workload::Article",
        Cell::new(0_u64),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let barrier = Arc::new(Barrier::new(threads + 1));
    let before: Vec<_> = lock::report().entries;
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (counter, instance, stop, barrier) = (
                counter.clone(),
                instance.clone(),
                stop.clone(),
                barrier.clone(),
            );
            thread::spawn(move || {
                barrier.wait();
                let mut done = 0_u64;
                // Relaxed: a stop flag; a few extra sections after it flips are harmless.
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..64 {
                        match case {
                            Case::Level(Level::Instance) => {
                                let g = instance.lock();
                                g.set(g.get() + 1);
                            }
                            Case::Level(level) => {
                                let _g = keyed(level).lock();
                                let n = counter.load(Ordering::Relaxed);
                                counter.store(n + 1, Ordering::Relaxed);
                            }
                            Case::Nested => {
                                let _global = lock::global().lock();
                                let _module = unlocked::module_lock!().lock();
                                let _class = lock::class::<Article>().lock();
                                let g = instance.lock();
                                let _function = lock::function(&article_save).lock();
                                let _again = unlocked::module_lock!().lock(); // re-entry
                                g.set(g.get() + 1);
                            }
                        }
                        done += 1;
                    }
                }
                done
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    let sections: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let elapsed = start.elapsed();

    let (name, counted, contended, waited) = match case {
        Case::Level(Level::Instance) | Case::Nested => {
            let stats = instance.stats();
            let name = match case {
                Case::Nested => "nested: all five levels".to_string(),
                _ => "instance".to_string(),
            };
            (name, instance.lock().get(), stats.contended, stats.wait)
        }
        Case::Level(level) => {
            let lock = keyed(level);
            let now = lock.stats();
            let was = before
                .iter()
                .find(|e| e.level == level && e.key == lock.key())
                .map(|e| (e.contended, e.wait))
                .unwrap_or_default();
            (
                level.to_string(),
                counter.load(Ordering::Relaxed),
                now.contended - was.0,
                now.wait - was.1,
            )
        }
    };
    Outcome {
        name,
        sections,
        counted,
        elapsed,
        contended,
        waited,
    }
}

/// Runs every lock case for `duration` each on `threads` threads, prints a table and returns
/// the outcomes and whether any increment was lost.
pub fn run(threads: usize, duration: Duration) -> (Vec<Outcome>, bool) {
    println!(
        "lock levels: {threads} threads, {} ms per case, lock-order check {}",
        duration.as_millis(),
        if lock::order_check_enabled() {
            "on"
        } else {
            "off"
        }
    );
    println!(
        "{:<24} {:>11} {:>8} {:>10} {:>7} {:>11} {:>20}",
        "case", "sections", "M/s", "contended", "share", "waited", "lost increments"
    );
    let mut failed = false;
    let mut outcomes = Vec::new();
    let cases = Level::ALL
        .into_iter()
        .map(Case::Level)
        .chain([Case::Nested]);
    for case in cases {
        let o = run_case(case, threads, duration);
        let lost = i128::from(o.sections) - i128::from(o.counted);
        failed |= lost != 0;
        println!(
            "{:<24} {:>11} {:>8.2} {:>10} {:>6.1}% {:>11.1?} {:>20}",
            o.name,
            o.sections,
            o.sections as f64 / o.elapsed.as_secs_f64() / 1e6,
            o.contended,
            o.contended as f64 / o.sections.max(1) as f64 * 100.0,
            o.waited,
            if lost == 0 {
                format!("0 (counted {})", o.counted)
            } else {
                format!("{lost} LOST")
            }
        );
        outcomes.push(o);
    }
    println!("hottest locks (lock::report):");
    for entry in lock::report().hottest(3) {
        println!("  {entry}");
    }
    (outcomes, failed)
}
