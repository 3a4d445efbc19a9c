//! What one cache-line transfer between two cores costs right now: two threads hand one
//! counter back and forth N times and the probe prints the one-way time.
//!
//! A gauge for the shared VM the benchmarks run on, not a benchmark of `unlocked`: the VM
//! switches, within seconds, between a phase where a transfer takes about 25–45 ns and one
//! where it takes about 200 ns (`docs/benchmarks.md`, "The VM's phases, measured"). A lock-free write
//! moves more lines between cores than a mutex map's write (the cell, the record read, its
//! heap buffer, the spare written), so its ratio to the mutex map moves with this figure.
//! `ci/versus-rounds.py` runs it between measurements and sorts the rounds by phase.
//!
//! ```sh
//! cargo run --release --example line_transfer [N]    # default N = 500000
//! ```
//!
//! The figure depends on how the waiting thread spins: a C twin that spins without `pause`
//! read about twice as high in the fast phase (48–57 against 24–30 ns), and alike in the slow
//! one. Compare readings of this program with each other only.
//!
//! Prints `one-way line transfer: X ns`. The two threads are not pinned to cores: with two
//! spinning threads and two cores the scheduler keeps them apart, and if something else takes
//! a core the figure shows that too (a transfer then waits for a time slice).

use std::hint::spin_loop;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crossbeam::utils::CachePadded;

fn main() {
    let n: u64 = match std::env::args().nth(1).map(|a| a.parse()) {
        None => 500_000,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("usage: line_transfer [N], N a positive number of round trips");
            std::process::exit(2);
        }
    };
    // On a line of its own (and away from the adjacent line the prefetcher pairs with it).
    let line = CachePadded::new(AtomicU64::new(0));
    let elapsed = std::thread::scope(|s| {
        s.spawn(|| {
            // Odd values are ours to answer: each answer is one transfer back.
            for i in 0..n {
                // Acquire/Release: the hand-off itself is what is measured; nothing else
                // is read through it.
                while line.load(Ordering::Acquire) != 2 * i + 1 {
                    spin_loop();
                }
                line.store(2 * i + 2, Ordering::Release);
            }
        });
        let start = Instant::now();
        for i in 0..n {
            line.store(2 * i + 1, Ordering::Release);
            while line.load(Ordering::Acquire) != 2 * i + 2 {
                spin_loop();
            }
        }
        start.elapsed()
    });
    // Two transfers per round trip.
    println!(
        "one-way line transfer: {:.1} ns",
        elapsed.as_nanos() as f64 / (2 * n) as f64
    );
}
