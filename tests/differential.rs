//! Differential property tests: one random operation sequence is applied to the `LockFree` and
//! the `Blocking` form of each component, and every step's observable result must be the same.
//!
//! Random keys differ between the two stores, so session keys are compared by structure (which
//! slot of the test's own table they belong to), never as strings.
//!
//! `cargo test` runs a few cases per component; the full run sets `PROPTEST_CASES` (CI runs
//! `bash ci/differential.sh`: 10 000 cases per component, optimized).

#![cfg(not(miri))]

mod common_proptest;
mod common_template;

use std::sync::Arc;

use proptest::prelude::*;
use proptest::strategy::Strategy as _;
use serde_json::{Value, json};
use unlocked::model::{CommitError, DeleteError, Draft, Model, ModelStore, SaveError as MSave};
use unlocked::model::{UpdateError, Versioned};
use unlocked::session::{ConflictPolicy, Expiry, SaveError, Session, SessionStore};
use unlocked::template::{FileSystemLoader, GetError, LoadError, TemplateCache};
use unlocked::{Blocking, LockFree, Strategy};

// ---------------------------------------------------------------------------------------------
// Session store
// ---------------------------------------------------------------------------------------------

const SLOTS: usize = 4;
const HANDLES: usize = 3;
const DATA_KEYS: &[&str] = &["a", "b", "c"];

#[derive(Clone, Debug)]
enum SOp {
    /// `store.create()`, its key into a slot.
    Create(usize),
    /// Opens handle `h` on the session in slot `s` (or with no cookie / a bogus one).
    Load(usize, Option<usize>, bool),
    Get(usize, usize),
    Insert(usize, usize, i64),
    Remove(usize, usize),
    Incr(usize, usize),
    /// An update closure that panics.
    UpdatePanics(usize, usize),
    Clear(usize),
    Flush(usize),
    CycleKey(usize),
    /// Sets expiry: negative seconds are already expired; `None` is the default.
    SetExpiry(usize, Option<i64>),
    /// Saves handle `h`; a new key goes into slot `s`.
    Save(usize, usize),
    Delete(usize),
    Exists(usize),
    ClearExpired,
    Len,
    /// `store.import` of valid or corrupt bytes, its key into a slot.
    Import(usize, bool),
}

fn session_op() -> impl proptest::strategy::Strategy<Value = SOp> {
    let h = 0..HANDLES;
    let s = 0..SLOTS;
    let k = 0..DATA_KEYS.len();
    prop_oneof![
        1 => s.clone().prop_map(SOp::Create),
        4 => (h.clone(), proptest::option::of(s.clone()), any::<bool>())
            .prop_map(|(h, s, bogus)| SOp::Load(h, s, bogus)),
        2 => (h.clone(), k.clone()).prop_map(|(h, k)| SOp::Get(h, k)),
        3 => (h.clone(), k.clone(), -3i64..3).prop_map(|(h, k, v)| SOp::Insert(h, k, v)),
        1 => (h.clone(), k.clone()).prop_map(|(h, k)| SOp::Remove(h, k)),
        2 => (h.clone(), k.clone()).prop_map(|(h, k)| SOp::Incr(h, k)),
        1 => (h.clone(), k.clone()).prop_map(|(h, k)| SOp::UpdatePanics(h, k)),
        1 => h.clone().prop_map(SOp::Clear),
        1 => h.clone().prop_map(SOp::Flush),
        1 => h.clone().prop_map(SOp::CycleKey),
        1 => (h.clone(), proptest::option::of(prop_oneof![Just(-60i64), Just(0), Just(3600)]))
            .prop_map(|(h, e)| SOp::SetExpiry(h, e)),
        4 => (h, s.clone()).prop_map(|(h, s)| SOp::Save(h, s)),
        1 => s.clone().prop_map(SOp::Delete),
        1 => s.prop_map(SOp::Exists),
        1 => Just(SOp::ClearExpired),
        1 => Just(SOp::Len),
        1 => (0..SLOTS, any::<bool>()).prop_map(|(s, ok)| SOp::Import(s, ok)),
    ]
}

fn session_config() -> impl proptest::strategy::Strategy<Value = (u8, Option<usize>)> {
    (0u8..3, proptest::option::of(2usize..6))
}

/// Runs `ops` on a fresh store of strategy `S`; returns one line per step.
fn run_session<S: Strategy>(policy: u8, max: Option<usize>, ops: &[SOp]) -> Vec<String> {
    let policy = match policy {
        0 => ConflictPolicy::LastWriterWins,
        1 => ConflictPolicy::Reject,
        _ => ConflictPolicy::MergeChangedKeys,
    };
    let mut builder = SessionStore::<S>::builder().conflict_policy(policy);
    if let Some(max) = max {
        builder = builder.max_sessions(max);
    }
    let store = builder.build();
    let mut slots: Vec<Option<String>> = vec![None; SLOTS];
    let mut handles: Vec<Option<Session<'_, S>>> = (0..HANDLES).map(|_| None).collect();
    let mut out = Vec::with_capacity(ops.len());
    // Which slot holds `key` (structure, not the random string).
    let slot_of = |slots: &[Option<String>], key: Option<String>| -> String {
        match key {
            None => "no key".into(),
            Some(k) => match slots.iter().position(|s| s.as_deref() == Some(&k)) {
                Some(i) => format!("slot {i}"),
                None => "unslotted key".into(),
            },
        }
    };
    for op in ops {
        let line = match op {
            SOp::Create(s) => match store.create() {
                Ok(sess) => {
                    slots[*s] = sess.session_key().map(|k| k.to_string());
                    format!("created v{:?}", sess.loaded_version())
                }
                Err(e) => format!("create error {e:?}"),
            },
            SOp::Load(h, s, bogus) => {
                let cookie = if *bogus {
                    Some("0123456789abcdefghij0123456789ab".to_string())
                } else {
                    s.and_then(|s| slots[s].clone())
                };
                let sess = store.load(cookie.as_deref());
                let line = format!(
                    "loaded {} v{:?} empty={}",
                    slot_of(&slots, sess.session_key().map(|k| k.to_string())),
                    sess.loaded_version(),
                    sess.is_empty()
                );
                handles[*h] = Some(sess);
                line
            }
            SOp::Save(h, s) => match handles[*h].as_mut() {
                None => "no handle".into(),
                Some(sess) => {
                    let had = sess.session_key().map(|k| k.to_string());
                    match sess.save() {
                        Ok(()) => {
                            let key = sess.session_key().map(|k| k.to_string());
                            if had.is_none() {
                                slots[*s] = key.clone();
                            }
                            format!(
                                "saved {} v{:?} data={:?} expiry={:?}",
                                slot_of(&slots, key),
                                sess.loaded_version(),
                                DATA_KEYS
                                    .iter()
                                    .map(|k| sess.get(k).cloned())
                                    .collect::<Vec<_>>(),
                                sess.expiry().map(normalize_expiry)
                            )
                        }
                        Err(SaveError::Conflict {
                            current,
                            loaded_version,
                        }) => format!(
                            "conflict loaded v{loaded_version} current v{} {:?}",
                            current.version(),
                            current.data()
                        ),
                        Err(SaveError::Gone { key }) => {
                            format!("gone {}", slot_of(&slots, Some(key.to_string())))
                        }
                        Err(e) => format!("save error {e:?}"),
                    }
                }
            },
            SOp::Delete(s) => format!(
                "delete {}",
                slots[*s].as_deref().is_some_and(|k| store.delete(k))
            ),
            SOp::Exists(s) => format!(
                "exists {}",
                slots[*s].as_deref().is_some_and(|k| store.exists(k))
            ),
            SOp::ClearExpired => format!("swept {}", store.clear_expired()),
            SOp::Len => format!("len {}", store.len()),
            SOp::Import(s, ok) => {
                let bytes: &[u8] = if *ok {
                    br#"{"a": 7, "b": [1]}"#
                } else {
                    b"{\"a\": 7"
                };
                match store.import(bytes) {
                    Ok(sess) => {
                        slots[*s] = sess.session_key().map(|k| k.to_string());
                        format!(
                            "imported v{:?} a={:?}",
                            sess.loaded_version(),
                            sess.get("a")
                        )
                    }
                    Err(e) => format!("import error {e:?}"),
                }
            }
            op => {
                let (SOp::Get(h, _)
                | SOp::Insert(h, ..)
                | SOp::Remove(h, _)
                | SOp::Incr(h, _)
                | SOp::UpdatePanics(h, _)
                | SOp::Clear(h)
                | SOp::Flush(h)
                | SOp::CycleKey(h)
                | SOp::SetExpiry(h, _)) = op
                else {
                    unreachable!()
                };
                match handles[*h].as_mut() {
                    None => "no handle".into(),
                    Some(sess) => handle_op(sess, op, &mut slots),
                }
            }
        };
        out.push(line);
    }
    out
}

fn normalize_expiry(e: Expiry) -> String {
    match e {
        // Absolute instants are not produced by these ops.
        Expiry::At(_) => "at".into(),
        other => format!("{other:?}"),
    }
}

fn handle_op<S: Strategy>(
    sess: &mut Session<'_, S>,
    op: &SOp,
    slots: &mut [Option<String>],
) -> String {
    match *op {
        SOp::Get(_, k) => format!("get {:?}", sess.get(DATA_KEYS[k])),
        SOp::Insert(_, k, v) => format!("insert {:?}", sess.insert(DATA_KEYS[k], v)),
        SOp::Remove(_, k) => format!("remove {:?}", sess.remove(DATA_KEYS[k])),
        SOp::Incr(_, k) => format!(
            "incr {:?}",
            sess.update(DATA_KEYS[k], |v| json!(
                v.and_then(Value::as_i64).unwrap_or(0) + 1
            ))
            .cloned()
        ),
        SOp::UpdatePanics(_, k) => {
            let r = sess
                .update(DATA_KEYS[k], |_| panic!("hostile update"))
                .cloned()
                .map_err(|e| (e.key.clone(), e.message.clone()));
            format!("update panics {r:?} after {:?}", sess.get(DATA_KEYS[k]))
        }
        SOp::Clear(_) => {
            sess.clear();
            "cleared".into()
        }
        SOp::Flush(_) => {
            sess.flush();
            "flushed".into()
        }
        SOp::CycleKey(_) => {
            let old = sess.session_key().map(|k| k.to_string());
            match sess.cycle_key() {
                Ok(()) => {
                    // The new key takes the old key's slot (or none).
                    let new = sess.session_key().map(|k| k.to_string());
                    if let Some(i) = slots.iter().position(|s| *s == old && old.is_some()) {
                        slots[i] = new;
                        format!("cycled slot {i}")
                    } else {
                        "cycled unslotted".into()
                    }
                }
                Err(e) => format!("cycle error {e:?}"),
            }
        }
        SOp::SetExpiry(_, e) => {
            sess.set_expiry(e.map(Expiry::seconds));
            format!("expiry {:?} modified={}", sess.expiry(), sess.modified())
        }
        _ => unreachable!(),
    }
}

// ---------------------------------------------------------------------------------------------
// Model store
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
struct Counter {
    n: i64,
}

impl Model for Counter {
    const APP_LABEL: &'static str = "differential";
    const NAME: &'static str = "Counter";
}

const SEEN: usize = 4;

#[derive(Clone, Debug)]
enum MOp {
    Insert(i64),
    /// Reads record `pk` into seen slot `s` (for stale drafts later).
    Read(u64, usize),
    /// Saves a draft made from seen slot `s` with value `n`.
    Save(usize, i64),
    Update(u64, i64),
    UpdatePanics(u64),
    /// Deletes `pk` at the version in seen slot `s`, or at its current version.
    Delete(u64, Option<usize>),
    /// Commits drafts from these seen slots, each adding `d`.
    Commit(Vec<usize>, i64),
    Len,
}

fn model_op() -> impl proptest::strategy::Strategy<Value = MOp> {
    let pk = 0u64..6;
    let s = 0..SEEN;
    prop_oneof![
        2 => (-5i64..5).prop_map(MOp::Insert),
        3 => (pk.clone(), s.clone()).prop_map(|(p, s)| MOp::Read(p, s)),
        3 => (s.clone(), -5i64..5).prop_map(|(s, n)| MOp::Save(s, n)),
        2 => (pk.clone(), -5i64..5).prop_map(|(p, d)| MOp::Update(p, d)),
        1 => pk.clone().prop_map(MOp::UpdatePanics),
        1 => (pk, proptest::option::of(s.clone())).prop_map(|(p, s)| MOp::Delete(p, s)),
        2 => (proptest::collection::vec(s, 0..4), -5i64..5).prop_map(|(v, d)| MOp::Commit(v, d)),
        1 => Just(MOp::Len),
    ]
}

fn show(r: &Arc<Versioned<Counter>>) -> String {
    format!("pk{} v{} n{}", r.pk(), r.version(), r.value().n)
}

fn run_model<S: Strategy>(ops: &[MOp]) -> Vec<String> {
    let store = ModelStore::<Counter, S>::new();
    let mut seen: Vec<Option<Arc<Versioned<Counter>>>> = vec![None; SEEN];
    let mut out = Vec::with_capacity(ops.len() + 1);
    for op in ops {
        let line = match op {
            MOp::Insert(n) => show(&store.insert(Counter { n: *n })),
            MOp::Read(pk, s) => {
                let r = store.get(*pk);
                let line = format!("read {:?}", r.as_ref().map(show));
                if r.is_some() {
                    seen[*s] = r;
                }
                line
            }
            MOp::Save(s, n) => match &seen[*s] {
                None => "nothing seen".into(),
                Some(r) => {
                    let mut d: Draft<Counter> = r.edit();
                    d.value_mut().n = *n;
                    match store.save(d) {
                        Ok(r) => format!("saved {}", show(&r)),
                        Err(MSave::Conflict { rejected, current }) => format!(
                            "conflict draft v{} n{} current {}",
                            rejected.version(),
                            rejected.value().n,
                            show(&current)
                        ),
                        Err(MSave::NotFound { rejected }) => {
                            format!("save not found pk{}", rejected.pk())
                        }
                        Err(e) => format!("save error {e:?}"),
                    }
                }
            },
            MOp::Update(pk, d) => match store.update(*pk, |c| c.n += *d) {
                Ok(r) => format!("updated {}", show(&r.into_arc())),
                Err(e) => format!("update error {}", update_error(&e)),
            },
            MOp::UpdatePanics(pk) => match store.update(*pk, |_| panic!("hostile update")) {
                Ok(r) => format!("updated?! {}", show(&r.into_arc())),
                Err(e) => format!(
                    "update error {} now {:?}",
                    update_error(&e),
                    store.get(*pk).as_ref().map(show)
                ),
            },
            MOp::Delete(pk, s) => {
                let version = match s {
                    Some(s) => seen[*s].as_ref().map_or(1, |r| r.version()),
                    None => store.get(*pk).map_or(1, |r| r.version()),
                };
                match store.delete(*pk, version) {
                    Ok(r) => format!("deleted {}", show(&r)),
                    Err(DeleteError::NotFound { pk }) => format!("delete not found pk{pk}"),
                    Err(DeleteError::Conflict { expected, current }) => {
                        format!("delete conflict v{expected} current {}", show(&current))
                    }
                    Err(e) => format!("delete error {e:?}"),
                }
            }
            MOp::Commit(slots, d) => {
                let drafts: Vec<Draft<Counter>> = slots
                    .iter()
                    .filter_map(|s| seen[*s].as_ref())
                    .map(|r| {
                        let mut draft = r.edit();
                        draft.value_mut().n += *d;
                        draft
                    })
                    .collect();
                match store.commit(drafts) {
                    Ok(rs) => format!("committed {:?}", rs.iter().map(show).collect::<Vec<_>>()),
                    Err(CommitError::Conflict {
                        pk,
                        expected,
                        current,
                        rejected,
                    }) => format!(
                        "commit conflict pk{pk} v{expected} current {:?} rejected {}",
                        current.as_ref().map(show),
                        rejected.len()
                    ),
                    Err(CommitError::DuplicatePk { pk, rejected }) => {
                        format!("commit duplicate pk{pk} rejected {}", rejected.len())
                    }
                    Err(e) => format!("commit error {e:?}"),
                }
            }
            MOp::Len => format!("len {}", store.len()),
        };
        out.push(line);
    }
    let mut all: Vec<String> = store.all().iter().map(show).collect();
    all.sort();
    out.push(format!("final {all:?}"));
    out
}

fn update_error(e: &UpdateError<Counter>) -> String {
    match e {
        UpdateError::NotFound { pk } => format!("not found pk{pk}"),
        UpdateError::Panicked { pk, message } => format!("panicked pk{pk}: {message}"),
        other => format!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Template cache
// ---------------------------------------------------------------------------------------------

const NAMES: &[&str] = &[
    "a.html",
    "b.html",
    "dir/c.html",
    "missing.html",
    "../escape.html",
    "base.html",
];

#[derive(Clone, Debug)]
enum TOp {
    Get(usize),
    Render(usize, i64),
    /// Writes template `name` with body variant `v` (some fail to compile; some extend base).
    Write(usize, u8),
    RemoveFile(usize),
    Invalidate(usize),
    Reset,
    Len,
}

fn template_op() -> impl proptest::strategy::Strategy<Value = TOp> {
    let n = 0..NAMES.len();
    prop_oneof![
        4 => n.clone().prop_map(TOp::Get),
        3 => (n.clone(), -2i64..3).prop_map(|(n, x)| TOp::Render(n, x)),
        2 => (n.clone(), 0u8..4).prop_map(|(n, v)| TOp::Write(n, v)),
        1 => n.clone().prop_map(TOp::RemoveFile),
        2 => n.prop_map(TOp::Invalidate),
        1 => Just(TOp::Reset),
        1 => Just(TOp::Len),
    ]
}

fn body(name: &str, variant: u8) -> String {
    match variant {
        0 => format!("{name} says {{{{ x }}}}"),
        1 => format!("{name} v1 {{% if x > 0 %}}pos{{% else %}}neg{{% endif %}}"),
        2 => "{% extends \"base.html\" %}{% block b %}child {{ x }}{% endblock %}".into(),
        // Fails to compile.
        _ => "{% if %}broken".into(),
    }
}

fn get_outcome<C: std::fmt::Debug>(r: Result<String, GetError<C>>) -> String {
    match r {
        Ok(s) => format!("ok {s}"),
        Err(GetError::Load(LoadError::NotFound { name, tried })) => {
            format!("not found {name} ({} tried)", tried.len())
        }
        Err(GetError::Load(LoadError::Refused { name, reason })) => {
            format!("refused {name:?} {reason:?}")
        }
        Err(GetError::Load(e)) => format!("load error {e}"),
        Err(GetError::Compile { name, .. }) => format!("compile error {name}"),
        Err(_) => "other error".into(),
    }
}

/// Runs `ops` on two caches (one per strategy) over one directory, step by step, so each file
/// change reaches both before the next step.
fn run_templates(ops: &[TOp]) -> (Vec<String>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    common_template::write_files(
        dir.path(),
        &[
            ("a.html", "A {{ x }}"),
            ("dir/c.html", "C"),
            ("base.html", "base[{% block b %}{% endblock %}]"),
        ],
    );
    let free: TemplateCache<common_template::Counting, LockFree> =
        TemplateCache::new(Default::default(), FileSystemLoader::new([dir.path()]));
    let blocking: TemplateCache<common_template::Counting, Blocking> =
        TemplateCache::new(Default::default(), FileSystemLoader::new([dir.path()]));
    let mut a = Vec::new();
    let mut b = Vec::new();
    for op in ops {
        match op {
            TOp::Write(n, v) if !NAMES[*n].starts_with("..") => {
                common_template::write_files(dir.path(), &[(NAMES[*n], &body(NAMES[*n], *v))]);
            }
            TOp::RemoveFile(n) if !NAMES[*n].starts_with("..") => {
                let _ = std::fs::remove_file(dir.path().join(NAMES[*n]));
            }
            _ => {}
        }
        a.push(template_step(&free, op));
        b.push(template_step(&blocking, op));
    }
    (a, b)
}

fn template_step<S: Strategy>(
    cache: &TemplateCache<common_template::Counting, S>,
    op: &TOp,
) -> String {
    match op {
        TOp::Get(n) => {
            let mut reader = cache.reader();
            let r = reader
                .get(NAMES[*n])
                .map(|t| format!("{} gen{}", t.name(), t.generation()));
            get_outcome(r)
        }
        TOp::Render(n, x) => match cache.render(NAMES[*n], &json!({ "x": x })) {
            Ok(s) => format!("rendered {s}"),
            Err(e) => format!("render error {e}"),
        },
        TOp::Write(..) | TOp::RemoveFile(_) => "file changed".into(),
        TOp::Invalidate(n) => format!("invalidate {}", cache.invalidate(NAMES[*n])),
        TOp::Reset => {
            cache.reset();
            format!("reset gen{}", cache.generation())
        }
        TOp::Len => format!("len {}", cache.len()),
    }
}

proptest! {
    #![proptest_config(common_proptest::config(64))]

    #[test]
    fn session_store_strategies_agree(
        (policy, max) in session_config(),
        ops in proptest::collection::vec(session_op(), 1..60),
    ) {
        let free = run_session::<LockFree>(policy, max, &ops);
        let blocking = run_session::<Blocking>(policy, max, &ops);
        prop_assert_eq!(free, blocking);
    }

    #[test]
    fn model_store_strategies_agree(ops in proptest::collection::vec(model_op(), 1..60)) {
        let free = run_model::<LockFree>(&ops);
        let blocking = run_model::<Blocking>(&ops);
        prop_assert_eq!(free, blocking);
    }

    #[test]
    fn template_cache_strategies_agree(ops in proptest::collection::vec(template_op(), 1..40)) {
        let (free, blocking) = run_templates(&ops);
        prop_assert_eq!(free, blocking);
    }
}
