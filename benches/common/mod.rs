//! The thread sweep every bench uses (`iter_custom` + `Barrier`).

use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Runs `iters` operations split over `threads` threads. Each thread first builds its worker
/// with `make(thread)` (outside the timing), waits at a barrier, then calls the worker once per
/// operation with the operation's index. Returns the wall time from the first thread's start to
/// the last thread's finish: each thread stamps its own start after the barrier, so a main
/// thread descheduled on a busy machine does not shorten the measurement.
pub fn parallel<F, W>(threads: usize, iters: u64, make: F) -> Duration
where
    F: Fn(usize) -> W + Sync,
    W: FnMut(u64),
{
    let barrier = Barrier::new(threads);
    let per = iters.div_ceil(threads as u64).max(1);
    let make = &make;
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let barrier = &barrier;
                s.spawn(move || {
                    let mut work = make(t);
                    barrier.wait();
                    let start = Instant::now();
                    for i in 0..per {
                        work(i);
                    }
                    (start, Instant::now())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let first = spans.iter().map(|s| s.0).min().unwrap();
    let last = spans.iter().map(|s| s.1).max().unwrap();
    last - first
}
