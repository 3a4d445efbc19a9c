//! The example's global allocator: mimalloc, or the platform's `malloc` when the environment
//! says `UNLOCKED_WORKLOAD_ALLOCATOR=system`.
//!
//! The crate itself never picks an allocator: that is the application's call. The example
//! picks mimalloc by default because on glibc the workload measured the allocator more than
//! the strategies: `perf` put 28 % of the samples of a 2-thread run in glibc's arena lock
//! (`realloc` inside minijinja's rendering, and frees of blocks that another thread's arena
//! handed out), and runs of the same binary spread over 2x. A server that cares about the
//! figures below runs on jemalloc or mimalloc too. `docs/benchmarks.md` has both.
//!
//! The choice is read once, at the first allocation (before `main`), with `getenv`, which does
//! not allocate; every later allocation, and every free, goes to the same allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU8, Ordering};

use mimalloc::MiMalloc;

const UNDECIDED: u8 = 0;
const MIMALLOC: u8 = 1;
const SYSTEM: u8 = 2;

/// Which allocator serves the process; decided once, at the first allocation.
static CHOICE: AtomicU8 = AtomicU8::new(UNDECIDED);

/// The environment variable that picks the allocator (`system` or `mimalloc`).
pub const VARIABLE: &std::ffi::CStr = c"UNLOCKED_WORKLOAD_ALLOCATOR";

/// The process's global allocator (see the module docs).
pub struct WorkloadAlloc;

#[inline]
fn choice() -> u8 {
    // Relaxed: the value is decided before the program's first allocation, on the one thread
    // that exists then; every thread spawned later sees it through the spawn's
    // synchronisation. The compare-exchange in `decide` keeps even a racing first use single.
    match CHOICE.load(Ordering::Relaxed) {
        UNDECIDED => decide(),
        c => c,
    }
}

#[cold]
fn decide() -> u8 {
    let wanted = if system_requested() { SYSTEM } else { MIMALLOC };
    match CHOICE.compare_exchange(UNDECIDED, wanted, Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => wanted,
        Err(decided) => decided,
    }
}

#[cfg(target_os = "linux")]
fn system_requested() -> bool {
    // getenv reads the environment in place: no allocation, so no recursion into this
    // allocator before it has decided.
    // SAFETY: the name is a NUL-terminated C string literal; nothing in this process calls `setenv`
    // (the example never changes its environment), so the returned pointer, when not null,
    // is a NUL-terminated string that stays valid while it is read here.
    let value = unsafe { libc::getenv(VARIABLE.as_ptr()) };
    if value.is_null() {
        return false;
    }
    // SAFETY: as above, a valid NUL-terminated C string.
    let value = unsafe { std::ffi::CStr::from_ptr(value) };
    value.to_bytes() == b"system"
}

#[cfg(not(target_os = "linux"))]
fn system_requested() -> bool {
    false
}

/// The allocator serving this process, for the report.
pub fn name() -> &'static str {
    match choice() {
        SYSTEM => "system (the platform's malloc)",
        _ => "mimalloc",
    }
}

// SAFETY: every method forwards to one of two allocators that uphold `GlobalAlloc`'s
// contract, and the choice between them is made once, before the first allocation, and never
// changes: a block is always freed or resized by the allocator that handed it out.
unsafe impl GlobalAlloc for WorkloadAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's `layout` contract is passed on unchanged.
        unsafe {
            match choice() {
                SYSTEM => System.alloc(layout),
                _ => MiMalloc.alloc(layout),
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        unsafe {
            match choice() {
                SYSTEM => System.alloc_zeroed(layout),
                _ => MiMalloc.alloc_zeroed(layout),
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from the same (never changing) choice of allocator.
        unsafe {
            match choice() {
                SYSTEM => System.dealloc(ptr, layout),
                _ => MiMalloc.dealloc(ptr, layout),
            }
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from the same allocator; the caller's contract is passed on.
        unsafe {
            match choice() {
                SYSTEM => System.realloc(ptr, layout, new_size),
                _ => MiMalloc.realloc(ptr, layout, new_size),
            }
        }
    }
}
