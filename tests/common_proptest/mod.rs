//! Shared by the proptest-driven tests: the run configuration.

use proptest::test_runner::Config;

/// `PROPTEST_CASES` cases if set, else `default_cases`; no failure persistence files (the
/// failing input is printed, shrunk, in the test output).
pub fn config(default_cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_cases);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}
