//! Hostile input: template names, session keys, corrupt or oversized session data, and panics
//! inside every kind of locked section and update closure. Each must give a typed error or a
//! fresh session as documented, leave stored data intact, never panic the caller, and leave
//! the next caller unaffected. Every scenario runs for both strategies.

#[macro_use]
mod common;

mod common_template;

use std::panic::catch_unwind;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use common_template::dir_with;
use serde::Serialize;
use serde_json::{Value, json};
use unlocked::lock::{self, Guarded, InstanceLock};
use unlocked::model::{Model, ModelStore, UpdateError};
use unlocked::session::{
    DecodeError, EncodeError, Expiry, ExpiryArgs, ImportError, KEY_LEN, SaveError, SessionCodec,
    SessionData, SessionStore,
};
use unlocked::template::{
    Engine, FileSystemLoader, GetError, LoadError, MiniJinja, MiniJinjaGeneration,
    MiniJinjaTemplate, RenderFailure, TemplateCache,
};
use unlocked::{Strategy, StrategyKind};

/// Length of the "very long" inputs (scaled down under miri, which runs ~1000x slower).
const LONG: usize = if cfg!(miri) { 1_000 } else { 100_000 };
/// Nesting depth of the deeply nested inputs (serde_json's recursion limit is 128).
const DEEP: usize = if cfg!(miri) { 300 } else { 10_000 };

fn quiet_panics() {
    // The panics below are expected; keep the test output readable.
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = info.to_string();
            if !msg.contains("hostile") {
                default(info);
            }
        }));
    });
}

// ------------------------------------------------------------------------ template names

/// Names that must never reach outside the template directory.
fn hostile_names() -> Vec<String> {
    let mut v: Vec<String> = [
        "",
        ".",
        "..",
        "../secret.txt",
        "../../secret.txt",
        "a/../../secret.txt",
        "a/./b.html",
        "a//b.html",
        "./page.html",
        "/etc/passwd",
        "//etc/passwd",
        "..\\secret.txt",
        "a\\..\\..\\secret.txt",
        "C:\\Windows\\win.ini",
        "page.html\0.txt",
        "\0",
        "page.html/",
        "%2e%2e/secret.txt",
        "%2e%2e%2fsecret.txt",
        "..%2fsecret.txt",
        "%252e%252e%252fsecret.txt",
        "..%c0%afsecret.txt",
        "\u{2024}\u{2024}/secret.txt",
        "page.html\n",
        " page.html",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push("a/".repeat(LONG / 20) + "page.html");
    v.push("x".repeat(LONG));
    v.push("../".repeat(64) + "etc/passwd");
    v
}

fn template_names_are_confined<S: Strategy>() {
    // The secret sits next to the template directory.
    let outer = dir_with(&[
        ("secret.txt", "TOP SECRET"),
        ("templates/page.html", "page {{ x }}"),
    ]);
    let root = outer.path().join("templates");
    let cache: TemplateCache<MiniJinja, S> =
        TemplateCache::new(MiniJinja::new(), FileSystemLoader::new([&root]));
    for name in hostile_names() {
        let mut reader = cache.reader();
        match reader.get(&name) {
            Ok(t) => panic!("{name:?} resolved to {}", t.path().display()),
            Err(GetError::Load(LoadError::Refused { name: n, .. })) => assert_eq!(n, name),
            Err(GetError::Load(LoadError::NotFound { tried, .. })) => {
                for path in tried {
                    assert!(path.starts_with(&root), "{name:?} tried {}", path.display());
                }
            }
            // An over-long path fails in the OS: a typed I/O error, never a panic.
            Err(GetError::Load(LoadError::Io { path, .. })) => {
                assert!(path.starts_with(&root), "{name:?} read {}", path.display())
            }
            Err(e) => panic!("{name:?}: unexpected {e}"),
        }
        match cache.render(&name, &json!({})) {
            Ok(out) => panic!("{name:?} rendered {out:?}"),
            Err(e) => assert!(!e.to_string().contains("TOP SECRET")),
        }
    }
    // The cache still serves the real template.
    assert_eq!(
        cache.render("page.html", &json!({"x": 1})).unwrap(),
        "page 1"
    );
}

// ------------------------------------------------------------------------ session keys

fn hostile_keys(real: &str) -> Vec<String> {
    let mut v: Vec<String> = vec![
        String::new(),
        "a".into(),
        "abcdefg".into(),
        "abcdefgh".into(),
        "0".repeat(KEY_LEN - 1),
        "0".repeat(KEY_LEN + 1),
        "0".repeat(KEY_LEN),
        "a".repeat(LONG),
        "é".repeat(KEY_LEN),
        "é".repeat(KEY_LEN / 2),
        "\0".repeat(KEY_LEN),
        format!("{}\0", &real[..KEY_LEN - 1]),
        real.to_uppercase(),
        format!("{real}\n"),
        format!(" {real}"),
        format!("{real}{real}"),
        real[..KEY_LEN - 1].to_string(),
        format!("{}A", &real[..KEY_LEN - 1]),
        format!("../{}", &real[3..]),
        "%00".repeat(11),
    ];
    // Every key of the right shape one character away from the real one.
    let mut near = real.to_string().into_bytes();
    near[0] = if near[0] == b'a' { b'b' } else { b'a' };
    v.push(String::from_utf8(near).unwrap());
    v
}

fn hostile_session_keys_give_fresh_sessions<S: Strategy>() {
    let store: SessionStore<S> = SessionStore::new();
    let mut s = store.load(None);
    s.insert("user_id", 7);
    s.save().unwrap();
    let real = s.session_key().unwrap().to_string();
    let before = store.record(&real).unwrap();

    for key in hostile_keys(&real) {
        let mut fresh = store.load(Some(&key));
        assert!(fresh.session_key().is_none(), "{key:?} loaded a session");
        assert!(fresh.is_empty(), "{key:?}");
        assert_eq!(fresh.get("user_id"), None);
        assert!(!store.exists(&key) && store.record(&key).is_none());
        assert!(!store.delete(&key), "{key:?} deleted something");
        // Saving the fresh session creates a new, store-chosen key.
        fresh.insert("k", 1);
        fresh.save().unwrap();
        let issued = fresh.session_key().unwrap().to_string();
        assert_ne!(issued, key);
        assert_ne!(issued, real);
        assert!(store.delete(&issued));
    }
    // The real session is untouched: same record, same data.
    let after = store.record(&real).unwrap();
    assert!(std::sync::Arc::ptr_eq(&before, &after));
    assert_eq!(after.data().get("user_id"), Some(&json!(7)));
    assert_eq!(store.len(), 1);
}

/// Expiry values at the ends of the range (an application passing a user's "remember me for N
/// days" through, or a misconfigured default age) must not panic on save or in the expiry
/// arithmetic: far dates saturate at the largest (smallest) representable instant.
fn extreme_expiry_values_do_not_panic<S: Strategy>() {
    let now = time::OffsetDateTime::now_utc;
    for age in [i64::MAX, i64::MIN, i64::MAX / 2, -(1 << 40)] {
        let store: SessionStore<S> = SessionStore::builder()
            .default_age(time::Duration::seconds(age))
            .build();
        for e in [
            Expiry::Seconds(i64::MAX),
            Expiry::Seconds(i64::MIN),
            Expiry::Seconds(1 << 40),
            Expiry::At(time::PrimitiveDateTime::MAX.assume_utc()),
            Expiry::At(time::PrimitiveDateTime::MIN.assume_utc()),
            Expiry::after(time::Duration::MAX),
            Expiry::after(time::Duration::MIN),
        ] {
            // Created with the default age (saturated).
            let mut s = store.load(None);
            s.insert("k", 1);
            s.save().unwrap();
            let key = s.session_key().unwrap().to_string();
            let live = s.get_expiry_date(ExpiryArgs::new()) > now();
            assert_eq!(store.exists(&key), live, "default age {age}");
            let _ = s.get_expiry_age(ExpiryArgs::new());
            // Then given an extreme expiry.
            s.set_expiry(e);
            let _ = s.get_expiry_age(ExpiryArgs::new());
            match s.save() {
                Ok(()) => {
                    let live = s.get_expiry_date(ExpiryArgs::new()) > now();
                    assert_eq!(store.exists(&key), live, "{age} {e:?}");
                }
                // Documented: a session that expired since it was loaded is not resurrected.
                Err(SaveError::Gone { .. }) => assert!(!live, "{age} {e:?}"),
                Err(other) => panic!("{age} {e:?}: {other}"),
            }
        }
    }
}

// ------------------------------------------------------------------------ session data

fn corrupt_inputs() -> Vec<(&'static str, Vec<u8>)> {
    let mut nested = "[".repeat(DEEP);
    nested.push_str(&"]".repeat(DEEP));
    let mut deep_object = String::from("{\"a\":");
    deep_object.push_str(&"{\"a\":".repeat(DEEP / 2));
    deep_object.push_str(&"}".repeat(DEEP / 2 + 1));
    vec![
        ("empty", Vec::new()),
        ("truncated", br#"{"user_id": 4"#.to_vec()),
        ("not utf-8", b"\xff\xfe\x00{".to_vec()),
        (
            "utf-8 inside a string broken",
            b"{\"a\": \"\xc3\x28\"}".to_vec(),
        ),
        ("array", b"[1, 2, 3]".to_vec()),
        ("null", b"null".to_vec()),
        ("number", b"42".to_vec()),
        ("string", b"\"{}\"".to_vec()),
        ("trailing garbage", br#"{"a": 1} x"#.to_vec()),
        ("two objects", br#"{"a": 1}{"b": 2}"#.to_vec()),
        ("NaN", br#"{"a": NaN}"#.to_vec()),
        ("lone surrogate", br#"{"a": "\ud800"}"#.to_vec()),
        ("deeply nested arrays", nested.into_bytes()),
        ("deeply nested objects", deep_object.into_bytes()),
        ("django pickle base64", b"gAJ9cQAu:1a2b3c".to_vec()),
        ("NUL", b"\0".to_vec()),
    ]
}

fn corrupt_session_data_is_a_typed_error<S: Strategy>() {
    let store: SessionStore<S> = SessionStore::builder().max_encoded_len(1 << 16).build();
    let kept = store.import(br#"{"kept": true}"#).unwrap();
    let kept_key = kept.session_key().unwrap().to_string();
    let codec = store.codec();
    for (what, bytes) in corrupt_inputs() {
        let err = codec.decode(&bytes).unwrap_err();
        assert!(
            matches!(
                err,
                DecodeError::Malformed { .. } | DecodeError::NotAnObject { .. }
            ),
            "{what}: {err:?}"
        );
        assert!(!err.to_string().is_empty());
        assert!(codec.decode_or_empty(&bytes).is_empty(), "{what}");
        match store.import(&bytes) {
            Err(ImportError::Decode(e)) => assert_eq!(e, err, "{what}"),
            Err(e) => panic!("{what}: {e:?}"),
            Ok(_) => panic!("{what}: imported"),
        }
    }
    // Nothing was stored; the existing session is intact.
    assert_eq!(store.len(), 1);
    let s = store.load(Some(&kept_key));
    assert_eq!(s.get("kept"), Some(&json!(true)));
}

fn oversized_session_data_is_refused<S: Strategy>() {
    const LIMIT: usize = 1024;
    let store: SessionStore<S> = SessionStore::builder().max_encoded_len(LIMIT).build();
    assert_eq!(store.codec().max_len(), LIMIT);
    let codec = store.codec();

    // Exactly at the limit: accepted. One byte over: refused, before parsing.
    let mut data = SessionData::new();
    data.insert("k", json!(""));
    let base = codec.encode(&data).unwrap().len();
    data.insert("k", json!("x".repeat(LIMIT - base)));
    let at_limit = codec.encode(&data).unwrap();
    assert_eq!(at_limit.len(), LIMIT);
    assert_eq!(codec.decode(&at_limit).unwrap(), data);
    let s = store.import(&at_limit).unwrap();
    let key = s.session_key().unwrap().to_string();

    data.insert("k", json!("x".repeat(LIMIT - base + 1)));
    assert_eq!(
        codec.encode(&data),
        Err(EncodeError::TooLarge {
            len: LIMIT + 1,
            limit: LIMIT
        })
    );
    // Garbage over the limit is refused as too large, not parsed.
    let huge = vec![b'['; 10 * LIMIT];
    assert_eq!(
        store.import(&huge).unwrap_err(),
        ImportError::Decode(DecodeError::TooLarge {
            len: 10 * LIMIT,
            limit: LIMIT
        })
    );
    assert_eq!(store.len(), 1);
    assert_eq!(
        store.load(Some(&key)).get("k"),
        Some(&json!("x".repeat(LIMIT - base)))
    );
    // The default limit is 1 MiB.
    assert_eq!(SessionCodec::new().max_len(), 1 << 20);
}

fn import_respects_the_session_bound<S: Strategy>() {
    let store: SessionStore<S> = SessionStore::builder().max_sessions(1).build();
    store.import(b"{}").unwrap();
    assert!(matches!(
        store.import(b"{}"),
        Err(ImportError::Create(unlocked::session::CreateError::Full {
            limit: 1
        }))
    ));
    assert_eq!(store.len(), 1);
}

// ------------------------------------------------------------------------ panics

/// Runs `f` on another thread and asserts that it panicked.
fn panics_on_another_thread(f: impl FnOnce() + Send) {
    thread::scope(|s| {
        assert!(s.spawn(f).join().is_err(), "expected a panic");
    });
}

struct HostileClass;
fn hostile_function() {}

fn a_panic_in_any_lock_level_releases_it<S: Strategy>() {
    quiet_panics();
    let levels: [&'static lock::Lock; 4] = [
        lock::global(),
        lock::module("tests::hostile::module"),
        lock::class::<HostileClass>(),
        lock::function(&hostile_function),
    ];
    for l in levels {
        // Nested (reentrant) holds, then a panic: every level of the hold is released.
        panics_on_another_thread(|| {
            l.locked(|()| l.locked(|()| panic!("hostile panic in {:?}", l.level())))
        });
        assert!(!l.is_locked(), "{:?} still locked", l.level());
        thread::scope(|s| {
            s.spawn(|| assert!(l.try_lock().is_ok(), "{:?}", l.level()));
        });
        assert_eq!(lock::held_by_current_thread(), 0);
    }
    // `lock::locked` (the function level, keyed by the closure's type).
    let r = catch_unwind(|| lock::locked(|x: i32| -> i32 { panic!("hostile {x}") }, 1));
    assert!(r.is_err());
    assert_eq!(lock::held_by_current_thread(), 0);

    // An instance lock's closure.
    let instance = InstanceLock::new(std::cell::Cell::new(1));
    panics_on_another_thread(|| {
        instance.locked(|c| {
            c.set(2);
            panic!("hostile panic in an instance lock")
        })
    });
    assert!(!instance.is_locked());
    assert_eq!(
        instance.lock().get(),
        2,
        "data as the panicking code left it"
    );

    // A guarded value: released, data as left, next caller (another thread) proceeds.
    let guarded = Guarded::new(lock::module("tests::hostile::guarded"), vec![1, 2]);
    panics_on_another_thread(|| {
        guarded.with(|v| {
            v.push(3);
            panic!("hostile panic in a guarded section")
        })
    });
    thread::scope(|s| {
        s.spawn(|| guarded.with(|v| v.push(4)));
    });
    assert_eq!(guarded.with(|v| v.clone()), [1, 2, 3, 4]);
    assert!(!guarded.guarding_lock().is_locked());
    // Strategy-independent, but run under both names like every scenario.
    let _ = S::KIND;
}

/// MiniJinja that panics while compiling `bomb.html` as long as `armed` is set, after `delay`.
struct PanickyEngine {
    inner: MiniJinja,
    armed: AtomicBool,
    delay: Duration,
    compiles: AtomicUsize,
}

impl Engine for PanickyEngine {
    type Generation = MiniJinjaGeneration;
    type Compiled = MiniJinjaTemplate;
    type Error = minijinja::Error;
    type RenderError = minijinja::Error;

    fn new_generation(&self) -> MiniJinjaGeneration {
        self.inner.new_generation()
    }

    fn compile(
        &self,
        generation: &MiniJinjaGeneration,
        name: &str,
        source: String,
    ) -> Result<MiniJinjaTemplate, minijinja::Error> {
        self.compiles.fetch_add(1, Ordering::SeqCst);
        if name == "bomb.html" {
            thread::sleep(self.delay);
            if self.armed.swap(false, Ordering::SeqCst) {
                panic!("hostile panic while compiling {name}");
            }
        }
        self.inner.compile(generation, name, source)
    }

    fn render<C: Serialize + ?Sized>(
        &self,
        generation: &MiniJinjaGeneration,
        name: &str,
        compiled: &MiniJinjaTemplate,
        context: &C,
    ) -> Result<String, RenderFailure<minijinja::Error>> {
        self.inner.render(generation, name, compiled, context)
    }
}

fn a_panic_while_compiling_propagates_and_releases<S: Strategy>() {
    quiet_panics();
    let dir = dir_with(&[("bomb.html", "boom {{ x }}"), ("ok.html", "ok")]);
    let cache: TemplateCache<PanickyEngine, S> = TemplateCache::new(
        PanickyEngine {
            inner: MiniJinja::new(),
            armed: AtomicBool::new(true),
            delay: Duration::from_millis(200),
            compiles: AtomicUsize::new(0),
        },
        FileSystemLoader::new([dir.path()]),
    );
    thread::scope(|s| {
        // Two callers miss on one name; the first compile panics. The caller that ran it sees
        // the panic (documented propagation); the other, whether it waited on that same miss
        // or came later, is not stuck and gets the template.
        let a = s.spawn(|| cache.render("bomb.html", &json!({"x": 1})));
        thread::sleep(Duration::from_millis(50));
        let b = s.spawn(|| cache.render("bomb.html", &json!({"x": 2})));
        // Other names are served meanwhile.
        assert_eq!(cache.render("ok.html", &()).unwrap(), "ok");
        match (a.join(), b.join()) {
            (Err(_), Ok(r)) => assert_eq!(r.unwrap(), "boom 2"),
            (Ok(r), Err(_)) => assert_eq!(r.unwrap(), "boom 1"),
            (a, b) => panic!("expected exactly one panicked caller: {a:?} {b:?}"),
        }
    });
    assert_eq!(
        cache.render("bomb.html", &json!({"x": 3})).unwrap(),
        "boom 3"
    );
    // ok.html once, bomb.html twice (the panicked compile and one retry), nothing more.
    assert_eq!(cache.engine().compiles.load(Ordering::SeqCst), 3);
    if S::KIND == StrategyKind::Blocking {
        assert_eq!(lock::held_by_current_thread(), 0);
    }
}

fn a_panicking_session_update_changes_nothing<S: Strategy>() {
    quiet_panics();
    let store: SessionStore<S> = SessionStore::new();
    let mut s = store.load(None);
    s.insert("n", 1);
    s.save().unwrap();
    let key = s.session_key().unwrap().to_string();

    // Panics right away: a typed error, the handle keeps its value, nothing logged.
    let mut a = store.load(Some(&key));
    let err = a.update("n", |_| panic!("hostile update")).unwrap_err();
    assert_eq!(err.key, "n");
    assert!(err.message.contains("hostile update"));
    assert_eq!(a.get("n"), Some(&json!(1)));
    a.save().unwrap();
    assert_eq!(store.load(Some(&key)).get("n"), Some(&json!(1)));

    // Panics only when replayed on a newer record (at save): typed error, store unchanged.
    let mut b = store.load(Some(&key));
    b.update("n", |v| {
        let n = v.and_then(Value::as_i64).unwrap_or(0);
        if n > 1 {
            panic!("hostile update on replay");
        }
        json!(n + 1)
    })
    .unwrap();
    let mut c = store.load(Some(&key));
    c.insert("n", 5);
    c.save().unwrap();
    let before = store.record(&key).unwrap();
    match b.save() {
        Err(SaveError::UpdatePanicked(e)) => assert!(e.message.contains("on replay")),
        other => panic!("{other:?}"),
    }
    assert!(std::sync::Arc::ptr_eq(
        &before,
        &store.record(&key).unwrap()
    ));
    // The next caller is unaffected.
    let mut d = store.load(Some(&key));
    d.insert("m", 1);
    d.save().unwrap();
    assert_eq!(store.load(Some(&key)).get("n"), Some(&json!(5)));
}

#[derive(Clone, Debug, PartialEq)]
struct Wallet {
    cents: i64,
}

impl Model for Wallet {
    const APP_LABEL: &'static str = "hostile";
    const NAME: &'static str = "Wallet";
}

fn a_panicking_model_update_changes_nothing<S: Strategy>() {
    quiet_panics();
    let store: ModelStore<Wallet, S> = ModelStore::new();
    let a = store.insert(Wallet { cents: 100 });
    let b = store.insert(Wallet { cents: 5 });
    match store.update(a.pk(), |w| {
        w.cents = -1;
        panic!("hostile model update")
    }) {
        Err(UpdateError::Panicked { pk, message }) => {
            assert_eq!(pk, a.pk());
            assert!(message.contains("hostile model update"));
        }
        other => panic!("{other:?}"),
    }
    match store.update_many(&[a.pk(), b.pk()], |ws| {
        ws[0].cents = 0;
        panic!("hostile update_many")
    }) {
        Err(UpdateError::Panicked { .. }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(store.get(a.pk()).unwrap().version(), 1);
    assert_eq!(store.get(a.pk()).unwrap().value().cents, 100);
    assert_eq!(store.get(b.pk()).unwrap().value().cents, 5);
    // The next caller proceeds (no lock left held, no poisoning), from another thread too.
    thread::scope(|s| {
        s.spawn(|| {
            store.update(a.pk(), |w| w.cents += 1).unwrap();
        });
    });
    assert_eq!(store.get(a.pk()).unwrap().value().cents, 101);
    assert_eq!(lock::held_by_current_thread(), 0);
}

strategy_tests!(
    template_names_are_confined,
    hostile_session_keys_give_fresh_sessions,
    extreme_expiry_values_do_not_panic,
    corrupt_session_data_is_a_typed_error,
    oversized_session_data_is_refused,
    import_respects_the_session_bound,
    a_panic_in_any_lock_level_releases_it,
    a_panic_while_compiling_propagates_and_releases,
    a_panicking_session_update_changes_nothing,
    a_panicking_model_update_changes_nothing,
);
