//! What the tests against real servers share: where the servers are, unique names per test
//! and run, and the skip notice. Include with `mod common_remote;`.
#![allow(dead_code)] // each test file uses part of it

use std::sync::atomic::{AtomicU64, Ordering};

/// `UNLOCKED_REDIS_URL`, default `redis://127.0.0.1:6379`.
pub fn redis_url() -> String {
    std::env::var("UNLOCKED_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// `CI=true`: a test that would skip for a missing server fails instead.
pub fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// Prints `notice: {what}` straight to the stream (the test harness captures `eprintln!`).
pub fn notice(what: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "notice: {what}");
}

/// A name unique to this test and run: `unlocked-test:{test}:{pid}:{nanos}:{n}{end}` (a key
/// prefix with `end = ":"`, a channel with `end = ""`).
pub fn unique(test: &str, end: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "unlocked-test:{test}:{}:{nanos}:{}{end}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
