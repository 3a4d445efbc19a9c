//! Random operation sequences on `SessionStore` (each strategy) against a plain `HashMap`
//! model: every request's reads, every store call's result, and after every step the whole
//! store (its length and each session a cookie names) must agree with the model.
#![no_main]

use std::collections::HashMap;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};
use unlocked::session::{Expiry, SessionStore};
use unlocked::{Blocking, LockFree, Strategy};

const SLOTS: usize = 4;
const KEYS: [&str; 4] = ["a", "b", "c", "d"];

#[derive(Arbitrary, Clone, Debug)]
enum Act {
    Insert(u8, i8),
    Remove(u8),
    Incr(u8),
    SetDefault(u8, i8),
    Get(u8),
    Clear,
    Flush,
    CycleKey,
}

#[derive(Arbitrary, Clone, Debug)]
enum Step {
    /// Load the session a slot's cookie names (or none), act, then save or drop the handle;
    /// `expire` sets an already-past expiry before saving.
    Request {
        slot: u8,
        acts: Vec<Act>,
        save: bool,
        expire: bool,
    },
    /// `create()` a session and give its key to a slot's cookie.
    Create(u8),
    Delete(u8),
    ClearExpired,
    /// A cookie the client made up: never a stored session.
    Forged(String),
}

/// The model: key -> (data, expired), and which key each slot's cookie holds.
#[derive(Default)]
struct Model {
    records: HashMap<String, (Map<String, Value>, bool)>,
    cookies: [Option<String>; SLOTS],
}

impl Model {
    fn live(&self, cookie: Option<&String>) -> Option<&Map<String, Value>> {
        cookie
            .and_then(|k| self.records.get(k))
            .filter(|(_, expired)| !expired)
            .map(|(d, _)| d)
    }
}

fn key(k: u8) -> &'static str {
    KEYS[usize::from(k) % KEYS.len()]
}

fn run<S: Strategy>(steps: &[Step]) {
    let store: SessionStore<S> = SessionStore::new();
    let mut model = Model::default();
    for (i, step) in steps.iter().enumerate() {
        match step {
            Step::Request {
                slot,
                acts,
                save,
                expire,
            } => {
                let slot = usize::from(*slot) % SLOTS;
                let cookie = model.cookies[slot].clone();
                let mut s = store.load(cookie.as_deref());
                let mut cur: Option<String> = model.live(cookie.as_ref()).and(cookie.clone());
                let mut data = model.live(cookie.as_ref()).cloned().unwrap_or_default();
                assert_eq!(s.session_key().map(|k| k.to_string()), cur, "step {i}");
                for a in acts {
                    match *a {
                        Act::Insert(k, v) => {
                            s.insert(key(k), v);
                            data.insert(key(k).into(), json!(v));
                        }
                        Act::Remove(k) => assert_eq!(s.remove(key(k)), data.remove(key(k))),
                        Act::Incr(k) => {
                            let next = |v: Option<&Value>| {
                                json!(v.and_then(Value::as_i64).unwrap_or(0).wrapping_add(1))
                            };
                            let want = next(data.get(key(k)));
                            let got = s.update(key(k), next).expect("no panic").clone();
                            assert_eq!(got, want, "step {i}");
                            data.insert(key(k).into(), want);
                        }
                        Act::SetDefault(k, v) => {
                            let want = data.entry(key(k)).or_insert(json!(v)).clone();
                            assert_eq!(s.setdefault(key(k), v), &want, "step {i}");
                        }
                        Act::Get(k) => {
                            assert_eq!(s.get(key(k)), data.get(key(k)), "step {i}");
                            assert_eq!(s.contains(key(k)), data.contains_key(key(k)));
                        }
                        Act::Clear => {
                            s.clear();
                            data.clear();
                        }
                        Act::Flush => {
                            s.flush();
                            if let Some(k) = cur.take() {
                                model.records.remove(&k);
                            }
                            data.clear();
                            assert_eq!(s.session_key(), None);
                        }
                        Act::CycleKey => {
                            s.cycle_key().expect("no bound");
                            let new = s.session_key().expect("a key after cycle_key").to_string();
                            if let Some(old) = cur.replace(new.clone()) {
                                assert_ne!(old, new);
                                model.records.remove(&old);
                            }
                            assert!(!model.records.contains_key(&new), "key reused");
                            model.records.insert(new.clone(), (data.clone(), false));
                            model.cookies[slot] = Some(new);
                        }
                    }
                    let mut got: Vec<&str> = s.keys().collect();
                    let mut want: Vec<&str> = data.keys().map(String::as_str).collect();
                    got.sort_unstable();
                    want.sort_unstable();
                    assert_eq!(got, want, "step {i}");
                    assert_eq!(s.is_empty(), cur.is_none() && data.is_empty(), "step {i}");
                }
                if *expire {
                    s.set_expiry(Expiry::Seconds(-1));
                }
                if *save {
                    s.save().unwrap_or_else(|e| panic!("step {i}: {e}"));
                    let k = s
                        .session_key()
                        .expect("a saved session has a key")
                        .to_string();
                    if cur.as_ref() != Some(&k) {
                        assert!(!model.records.contains_key(&k), "key reused");
                    }
                    model.records.insert(k.clone(), (data, *expire));
                    model.cookies[slot] = Some(k);
                }
            }
            Step::Create(slot) => {
                let s = store.create().expect("no bound");
                let k = s.session_key().expect("created with a key").to_string();
                // Django's is_empty: no key and no data; a created session has a key.
                assert!(!s.is_empty());
                assert_eq!(s.keys().count(), 0);
                assert!(!model.records.contains_key(&k), "key reused");
                model.records.insert(k.clone(), (Map::new(), false));
                model.cookies[usize::from(*slot) % SLOTS] = Some(k);
            }
            Step::Delete(slot) => {
                let cookie = &model.cookies[usize::from(*slot) % SLOTS];
                let deleted = cookie.as_deref().is_some_and(|k| store.delete(k));
                let want = cookie
                    .as_ref()
                    .is_some_and(|k| model.records.remove(k).is_some());
                assert_eq!(deleted, want, "step {i}");
            }
            Step::ClearExpired => {
                let before = model.records.len();
                model.records.retain(|_, (_, expired)| !*expired);
                assert_eq!(
                    store.clear_expired(),
                    before - model.records.len(),
                    "step {i}"
                );
            }
            Step::Forged(cookie) => {
                let want = model.live(Some(cookie)).cloned();
                let got = store.record(cookie).map(|r| r.data().to_map());
                assert_eq!(got, want, "step {i}: forged cookie {cookie:?}");
                assert_eq!(store.exists(cookie), want.is_some());
                let s = store.load(Some(cookie));
                assert_eq!(s.session_key().is_some(), want.is_some());
            }
        }
        // The whole store against the model.
        assert_eq!(store.len(), model.records.len(), "step {i}");
        for cookie in &model.cookies {
            let got = cookie.as_deref().and_then(|k| store.record(k));
            let got = got.as_ref().map(|r| r.data().to_map());
            assert_eq!(got.as_ref(), model.live(cookie.as_ref()), "step {i}");
        }
    }
}

fuzz_target!(|steps: Vec<Step>| {
    run::<LockFree>(&steps);
    run::<Blocking>(&steps);
});
