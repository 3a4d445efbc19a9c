//! A long random-operation run of the session store against a plain `HashMap` model.
//!
//! Ignored by default: `bash ci/session-model.sh` runs it (optimized, a time limit, and
//! `PROPTEST_CASES`, default 50 000 sequences of up to 200 requests each, for both
//! strategies). Each step is a whole request (load by cookie, changes, maybe save) or a
//! store call; after every step every session the model knows is compared with the store.

#![cfg(not(miri))]

mod common_proptest;

use std::collections::HashMap;

use proptest::prelude::*;
use proptest::strategy::Strategy as _;
use serde_json::{Map, Value, json};
use unlocked::session::{Expiry, SessionStore};
use unlocked::{Blocking, LockFree, Strategy};

const SLOTS: usize = 6;
const KEYS: &[&str] = &["a", "b", "c", "d"];

#[derive(Clone, Debug)]
enum Act {
    Insert(usize, i64),
    Remove(usize),
    Incr(usize),
    Clear,
    Flush,
    CycleKey,
}

#[derive(Clone, Debug)]
enum Step {
    /// Load the session in `slot` (or none), act, then save (or drop) it; `expire` sets an
    /// already-past expiry before saving.
    Request {
        slot: usize,
        acts: Vec<Act>,
        save: bool,
        expire: bool,
    },
    Delete(usize),
    ClearExpired,
}

fn act() -> impl proptest::strategy::Strategy<Value = Act> {
    let k = 0..KEYS.len();
    prop_oneof![
        4 => (k.clone(), -9i64..9).prop_map(|(k, v)| Act::Insert(k, v)),
        2 => k.clone().prop_map(Act::Remove),
        3 => k.prop_map(Act::Incr),
        1 => Just(Act::Clear),
        1 => Just(Act::Flush),
        1 => Just(Act::CycleKey),
    ]
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    prop_oneof![
        8 => (0..SLOTS, proptest::collection::vec(act(), 0..5), proptest::bool::weighted(0.85),
              proptest::bool::weighted(0.05))
            .prop_map(|(slot, acts, save, expire)| Step::Request { slot, acts, save, expire }),
        1 => (0..SLOTS).prop_map(Step::Delete),
        1 => Just(Step::ClearExpired),
    ]
}

/// The model: key -> (data, expired), and which key each slot's cookie holds.
#[derive(Default)]
struct ModelStore {
    records: HashMap<String, (Map<String, Value>, bool)>,
    cookies: Vec<Option<String>>,
}

impl ModelStore {
    fn live(&self, cookie: Option<&String>) -> Option<&Map<String, Value>> {
        cookie
            .and_then(|k| self.records.get(k))
            .filter(|(_, expired)| !expired)
            .map(|(d, _)| d)
    }
}

fn run<S: Strategy>(steps: &[Step]) -> Result<(), TestCaseError> {
    let store: SessionStore<S> = SessionStore::new();
    let mut model = ModelStore {
        cookies: vec![None; SLOTS],
        ..Default::default()
    };
    for (i, step) in steps.iter().enumerate() {
        match step {
            Step::Request {
                slot,
                acts,
                save,
                expire,
            } => {
                let cookie = model.cookies[*slot].clone();
                let mut s = store.load(cookie.as_deref());
                // The handle's view, as the model sees it.
                let mut key: Option<String> =
                    model.live(cookie.as_ref()).map(|_| cookie.clone().unwrap());
                let mut data = model.live(cookie.as_ref()).cloned().unwrap_or_default();
                prop_assert_eq!(s.session_key().map(|k| k.to_string()), key.clone());
                for a in acts {
                    match a {
                        Act::Insert(k, v) => {
                            s.insert(KEYS[*k], *v);
                            data.insert(KEYS[*k].into(), json!(v));
                            prop_assert_eq!(s.get(KEYS[*k]), Some(&json!(v)));
                        }
                        Act::Remove(k) => {
                            prop_assert_eq!(s.remove(KEYS[*k]), data.remove(KEYS[*k]));
                        }
                        Act::Incr(k) => {
                            let new = s
                                .update(KEYS[*k], |v| {
                                    json!(v.and_then(Value::as_i64).unwrap_or(0) + 1)
                                })
                                .unwrap()
                                .clone();
                            let n = data.get(KEYS[*k]).and_then(Value::as_i64).unwrap_or(0) + 1;
                            prop_assert_eq!(&new, &json!(n));
                            data.insert(KEYS[*k].into(), new);
                        }
                        Act::Clear => {
                            s.clear();
                            data.clear();
                        }
                        Act::Flush => {
                            s.flush();
                            if let Some(k) = key.take() {
                                model.records.remove(&k);
                            }
                            data.clear();
                        }
                        Act::CycleKey => {
                            s.cycle_key().unwrap();
                            let new = s.session_key().unwrap().to_string();
                            if let Some(old) = key.replace(new.clone()) {
                                model.records.remove(&old);
                            }
                            prop_assert!(!model.records.contains_key(&new));
                            model.records.insert(new.clone(), (data.clone(), false));
                            model.cookies[*slot] = Some(new);
                        }
                    }
                    let keys: Vec<&str> = s.keys().collect();
                    let mut want: Vec<&str> = data.keys().map(String::as_str).collect();
                    let mut got = keys.clone();
                    got.sort_unstable();
                    want.sort_unstable();
                    prop_assert_eq!(got, want, "step {}", i);
                }
                if *expire {
                    s.set_expiry(Expiry::Seconds(-1));
                }
                if *save {
                    s.save()
                        .map_err(|e| TestCaseError::fail(format!("step {i}: {e}")))?;
                    let k = s.session_key().unwrap().to_string();
                    if key.as_ref() != Some(&k) {
                        prop_assert!(!model.records.contains_key(&k), "key reused");
                    }
                    model.records.insert(k.clone(), (data, *expire));
                    model.cookies[*slot] = Some(k);
                }
            }
            Step::Delete(slot) => {
                let deleted = model.cookies[*slot]
                    .as_deref()
                    .is_some_and(|k| store.delete(k));
                let want = model.cookies[*slot]
                    .as_ref()
                    .is_some_and(|k| model.records.remove(k).is_some());
                prop_assert_eq!(deleted, want, "step {}", i);
            }
            Step::ClearExpired => {
                let before = model.records.len();
                model.records.retain(|_, (_, expired)| !*expired);
                prop_assert_eq!(store.clear_expired(), before - model.records.len());
            }
        }
        // The whole store against the model.
        prop_assert_eq!(store.len(), model.records.len(), "step {}", i);
        for cookie in &model.cookies {
            let got = cookie.as_deref().and_then(|k| store.record(k));
            let want = model.live(cookie.as_ref());
            let got = got.as_ref().map(|r| r.data().to_map());
            prop_assert_eq!(got.as_ref(), want, "step {}", i);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(common_proptest::config(50_000))]

    #[test]
    #[ignore = "long run: bash ci/session-model.sh"]
    fn session_store_matches_a_hashmap_model(steps in proptest::collection::vec(step(), 1..200)) {
        run::<LockFree>(&steps)?;
        run::<Blocking>(&steps)?;
    }
}

/// A short run of the same model in the default `cargo test`, so it cannot rot.
#[test]
fn session_store_matches_a_hashmap_model_briefly() {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 16,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&proptest::collection::vec(step(), 1..100), |steps| {
            run::<LockFree>(&steps)?;
            run::<Blocking>(&steps)
        })
        .unwrap();
}
