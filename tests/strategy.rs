//! The strategy vocabulary and the per-strategy test macro.

#[macro_use]
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use unlocked::{Strategy, StrategyKind};

static RAN: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];

fn kind_round_trips<S: Strategy>() {
    let parsed: StrategyKind = S::KIND.name().parse().unwrap();
    assert_eq!(parsed, S::KIND);
    assert_eq!(S::KIND.to_string(), S::KIND.name());
    let index = StrategyKind::ALL
        .iter()
        .position(|k| *k == S::KIND)
        .unwrap();
    RAN[index].fetch_add(1, Ordering::SeqCst);
}

fn default_is_constructible<S: Strategy>() {
    let s = S::default();
    assert!(
        format!("{s:?}").contains(if S::KIND == StrategyKind::LockFree {
            "LockFree"
        } else {
            "Blocking"
        })
    );
}

strategy_tests!(kind_round_trips, default_is_constructible);

#[test]
fn the_macro_instantiates_each_strategy() {
    lock_free::kind_round_trips();
    blocking::kind_round_trips();
    assert!(RAN[0].load(Ordering::SeqCst) >= 1);
    assert!(RAN[1].load(Ordering::SeqCst) >= 1);
}

#[test]
fn unknown_strategy_names_are_refused_with_the_choices() {
    let err = "optimistic".parse::<StrategyKind>().unwrap_err();
    assert_eq!(err.input, "optimistic");
    assert!(err.to_string().contains("lock-free"));
    assert!(err.to_string().contains("blocking"));
    assert_eq!(
        "Lock-Free".parse::<StrategyKind>().unwrap(),
        StrategyKind::LockFree
    );
}
