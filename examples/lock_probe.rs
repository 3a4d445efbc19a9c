//! Runs one lock operation N times, for instruction counting under callgrind — a repeatable
//! figure on a noisy machine, unlike wall time. `ci/lock-instructions.sh` runs every operation
//! at two values of N and prints the difference per operation.
//!
//! ```sh
//! cargo build --release --example lock_probe
//! valgrind --tool=callgrind target/release/examples/lock_probe instance 100000
//! ```

use std::hint::black_box;
use std::sync::LazyLock;

use unlocked::lock::{self, InstanceLock};

struct Model;

fn handler() {}

static INSTANCE: LazyLock<InstanceLock> = LazyLock::new(|| InstanceLock::new(()));
static PARKING_LOT: parking_lot::ReentrantMutex<()> = parking_lot::const_reentrant_mutex(());
static STD: std::sync::Mutex<()> = std::sync::Mutex::new(());

const OPS: &[(&str, fn())] = &[
    ("parking_lot", || drop(black_box(&PARKING_LOT).lock())),
    ("std_mutex", || drop(black_box(&STD).lock())),
    ("global", || drop(lock::global().lock())),
    ("module_fn", || {
        drop(lock::module(black_box("probe")).lock())
    }),
    ("module_macro", || drop(unlocked::module_lock!().lock())),
    ("class_fn", || drop(lock::class::<Model>().lock())),
    ("class_macro", || drop(unlocked::class_lock!(Model).lock())),
    ("instance", || drop(black_box(&*INSTANCE).lock())),
    ("function_fn", || drop(lock::function(&handler).lock())),
    ("function_macro", || drop(unlocked::function_lock!().lock())),
];

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(name), Some(n)) = (args.next(), args.next().and_then(|n| n.parse::<u64>().ok()))
    else {
        let names: Vec<_> = OPS.iter().map(|(n, _)| *n).collect();
        eprintln!(
            "usage: lock_probe OP[+nested][+check] N   (OP: {})",
            names.join(", ")
        );
        std::process::exit(2);
    };
    let base = name.split('+').next().unwrap_or_default();
    let Some(&(_, op)) = OPS.iter().find(|(n, _)| *n == base) else {
        eprintln!("unknown operation {base}");
        std::process::exit(2);
    };
    lock::set_order_check(name.contains("+check"));
    // "+nested": hold the lock once, so every measured acquisition is a re-entry.
    let _held = name.contains("+nested").then(|| match base {
        "parking_lot" => Some(PARKING_LOT.lock()),
        _ => None,
    });
    let _held_ours = name
        .contains("+nested")
        .then(|| match base {
            "instance" => Some(INSTANCE.lock()),
            "module_macro" => Some(unlocked::module_lock!().lock()),
            _ => None,
        })
        .flatten();
    for _ in 0..n {
        op();
    }
}
