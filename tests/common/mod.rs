//! Shared by the integration tests: [`strategy_tests!`], one test per strategy.

/// Instantiates generic test scenarios once per strategy.
///
/// Each listed function must be generic over `S: Strategy` and take no arguments. The macro
/// emits a `lock_free` and a `blocking` module holding one `#[test]` per scenario, so a
/// scenario written once runs against both strategies. Attributes written before a name
/// (`#[ignore]`, `#[should_panic]`, `#[cfg(...)]`) are copied onto both tests.
///
/// Use it with `#[macro_use] mod common;` at the top of a test file.
macro_rules! strategy_tests {
    ($( $(#[$meta:meta])* $name:ident ),+ $(,)?) => {
        mod lock_free {
            $(
                #[test]
                $(#[$meta])*
                pub(super) fn $name() {
                    super::$name::<unlocked::LockFree>();
                }
            )+
        }
        mod blocking {
            $(
                #[test]
                $(#[$meta])*
                pub(super) fn $name() {
                    super::$name::<unlocked::Blocking>();
                }
            )+
        }
    };
}
