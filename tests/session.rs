//! Django-parity and policy scenarios for the session store, run for both strategies.

#[macro_use]
mod common;

use serde_json::{Value, json};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use unlocked::Strategy;
use unlocked::session::{
    ConflictPolicy, CreateError, Expiry, ExpiryArgs, InvalidSessionKey, KEY_CHARS, SaveError,
    SessionKey, SessionStore,
};

fn store<S: Strategy>(policy: ConflictPolicy) -> SessionStore<S> {
    SessionStore::<S>::builder().conflict_policy(policy).build()
}

/// A saved session's cookie value.
fn saved<S: Strategy>(store: &SessionStore<S>, pairs: &[(&str, Value)]) -> String {
    let mut s = store.load(None);
    for (k, v) in pairs {
        s.insert(*k, v.clone());
    }
    s.save().unwrap();
    s.session_key().unwrap().to_string()
}

fn incr(v: Option<&Value>) -> Value {
    json!(v.and_then(Value::as_i64).unwrap_or(0) + 1)
}

fn handles_are_send_stores_are_sync<S: Strategy>() {
    fn send<T: Send>(_: &T) {}
    fn sync<T: Sync + Send>(_: &T) {}
    let store = store::<S>(ConflictPolicy::default());
    sync(&store);
    let s = store.load(None);
    send(&s);
    // A handle can be moved to another thread (an async task resuming elsewhere).
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut s = s;
            s.insert("moved", true);
            s.save().unwrap();
        });
    });
    assert_eq!(store.len(), 1);
}

fn flags_follow_django<S: Strategy>() {
    let store = store::<S>(ConflictPolicy::default());
    let cookie = saved(&store, &[("a", json!(1))]);

    let s = store.load(Some(&cookie));
    assert!(!s.accessed() && !s.modified(), "loading touches nothing");
    assert!(!s.is_empty());
    assert!(!s.accessed(), "is_empty does not access");
    assert_eq!(s.get("a"), Some(&json!(1)));
    assert!(s.accessed() && !s.modified(), "get accesses only");

    let s = store.load(Some(&cookie));
    assert!(s.contains("a") && !s.contains("zz"));
    assert!(s.accessed() && !s.modified(), "contains accesses only");

    let s = store.load(Some(&cookie));
    assert_eq!(s.keys().collect::<Vec<_>>(), ["a"]);
    assert!(s.accessed() && !s.modified(), "keys accesses only");

    let mut s = store.load(Some(&cookie));
    assert_eq!(s.remove("missing"), None);
    assert!(
        s.accessed() && !s.modified(),
        "pop of an absent key modifies nothing"
    );
    assert_eq!(s.remove("a"), Some(json!(1)));
    assert!(s.modified(), "pop of a present key modifies");

    let mut s = store.load(Some(&cookie));
    assert_eq!(s.setdefault("a", json!(9)), &json!(1));
    assert!(
        s.accessed() && !s.modified(),
        "setdefault of a present key modifies nothing"
    );
    assert_eq!(s.setdefault("b", json!(2)), &json!(2));
    assert!(s.modified(), "setdefault that inserts modifies");

    let mut s = store.load(Some(&cookie));
    s.insert("a", json!(5));
    assert_eq!(s.get("a"), Some(&json!(5)));
    assert!(s.accessed() && s.modified(), "set accesses and modifies");

    let mut s = store.load(Some(&cookie));
    s.clear();
    assert!(s.accessed() && s.modified() && s.keys().next().is_none());

    let mut s = store.load(Some(&cookie));
    s.update("n", incr).unwrap();
    assert!(s.accessed() && s.modified());

    let mut s = store.load(Some(&cookie));
    s.set_expiry(None);
    assert!(
        s.accessed() && !s.modified(),
        "resetting an unset expiry modifies nothing"
    );
    s.set_expiry(Expiry::Seconds(60));
    assert!(s.modified(), "set_expiry modifies");
    let mut s2 = store.load(Some(&cookie));
    s2.set_expiry(Expiry::Seconds(60));
    s2.save().unwrap();
    let mut s2 = store.load(Some(&cookie));
    s2.set_expiry(None);
    assert!(s2.modified(), "resetting a set expiry modifies");

    let s = store.load(Some(&cookie));
    let _ = s.get_expiry_age(ExpiryArgs::new().expiry(None));
    let _ = s.get_expiry_date(ExpiryArgs::new().expiry(Some(Expiry::Seconds(3))));
    assert!(!s.accessed(), "expiry passed in: the session is not read");
    let _ = s.get_expiry_age(ExpiryArgs::new());
    assert!(s.accessed(), "expiry not passed: the session is read");
    let s = store.load(Some(&cookie));
    let _ = s.get_expire_at_browser_close();
    assert!(s.accessed() && !s.modified());

    let mut s = store.load(Some(&cookie));
    s.set_modified(true);
    assert!(s.modified() && !s.accessed());

    // A fresh session: empty until it has data or a key.
    let mut fresh = store.load(None);
    assert!(fresh.is_empty());
    fresh.insert("x", 1);
    assert!(!fresh.is_empty());
}

fn expiry_arithmetic<S: Strategy>() {
    let store = store::<S>(ConflictPolicy::default());
    let m = datetime!(2024-03-01 12:00 UTC);
    let at = |e: Option<Expiry>| ExpiryArgs::new().modification(m).expiry(e);
    let mut s = store.load(None);

    assert_eq!(s.get_expiry_age(ExpiryArgs::new()), 1_209_600);
    assert_eq!(
        s.get_expiry_date(ExpiryArgs::new().modification(m)),
        m + Duration::seconds(1_209_600)
    );
    assert!(!s.get_expire_at_browser_close());

    s.set_expiry(Expiry::seconds(10));
    assert_eq!(s.get_expiry_age(ExpiryArgs::new()), 10);
    assert_eq!(
        s.get_expiry_date(ExpiryArgs::new().modification(m)),
        m + Duration::seconds(10)
    );
    assert!(!s.get_expire_at_browser_close());

    // Dates: whole seconds rounded down, as timedelta.days * 86400 + timedelta.seconds.
    let e = Expiry::At(m + Duration::milliseconds(10_500));
    assert_eq!(s.get_expiry_age(at(Some(e))), 10);
    let e = Expiry::At(m - Duration::milliseconds(500));
    assert_eq!(s.get_expiry_age(at(Some(e))), -1);
    let e = Expiry::At(m + Duration::days(2));
    assert_eq!(s.get_expiry_age(at(Some(e))), 172_800);
    assert_eq!(s.get_expiry_date(at(Some(e))), m + Duration::days(2));

    // 0: at browser close; the stored record keeps the default age.
    s.set_expiry(Expiry::seconds(0));
    assert_eq!(s.expiry(), Some(Expiry::AtBrowserClose));
    assert!(s.get_expire_at_browser_close());
    assert_eq!(s.get_expiry_age(ExpiryArgs::new()), 1_209_600);
    assert_eq!(
        s.get_expiry_date(ExpiryArgs::new().modification(m)),
        m + Duration::seconds(1_209_600)
    );
    assert!(s.get_expire_at_browser_close());

    // None: back to the default.
    s.set_expiry(None);
    assert_eq!(s.expiry(), None);
    assert_eq!(s.get_expiry_age(ExpiryArgs::new()), 1_209_600);

    // A timedelta becomes a date, computed now.
    s.set_expiry(Expiry::after(Duration::hours(1)));
    let age = s.get_expiry_age(ExpiryArgs::new());
    assert!((3_598..=3_600).contains(&age), "{age}");

    // Saving computes expires_at from the expiry, on the coarse clock: up to one scheduler
    // tick (4 ms by default) before the precise one. A second is allowed, as in the lib test
    // `the_coarse_clock_is_at_most_a_tick_behind`: a loaded machine may run a tick late.
    s.set_expiry(Expiry::Seconds(60));
    let before = OffsetDateTime::now_utc();
    s.save().unwrap();
    let rec = store.record(s.session_key().unwrap().as_str()).unwrap();
    assert_eq!(rec.expiry(), Some(Expiry::Seconds(60)));
    let exp = rec.expires_at();
    let tick = Duration::seconds(1);
    assert!(
        exp >= before + Duration::seconds(60) - tick
            && exp <= OffsetDateTime::now_utc() + Duration::seconds(60),
        "{exp} against {before} + 60 s"
    );

    // Store knobs.
    let custom = SessionStore::<S>::builder()
        .default_age(Duration::minutes(5))
        .expire_at_browser_close(true)
        .build();
    let c = custom.load(None);
    assert_eq!(c.get_expiry_age(ExpiryArgs::new()), 300);
    assert!(c.get_expire_at_browser_close());
}

fn key_validation<S: Strategy>() {
    let a = SessionKey::generate();
    let b = SessionKey::generate();
    assert_ne!(a, b);
    for k in [a, b] {
        assert_eq!(k.as_str().len(), 32);
        assert!(k.as_str().bytes().all(|c| KEY_CHARS.contains(&c)));
        assert_eq!(SessionKey::parse(k.as_str()), Ok(k));
    }
    assert_eq!(
        SessionKey::parse("abc"),
        Err(InvalidSessionKey::TooShort { len: 3 })
    );
    assert_eq!(
        SessionKey::parse(""),
        Err(InvalidSessionKey::TooShort { len: 0 })
    );
    assert_eq!(
        SessionKey::parse("abcdefgH1234567890abcdefgh123456"),
        Err(InvalidSessionKey::BadCharacter { index: 7 })
    );
    assert_eq!(
        SessionKey::parse("abcdefgh"),
        Err(InvalidSessionKey::WrongLength { len: 8 })
    );
    assert!(
        !format!("{a:?}").contains(a.as_str()),
        "Debug must not leak the whole key"
    );

    let store = store::<S>(ConflictPolicy::default());
    let cookie = saved(&store, &[("secret", json!("x"))]);
    // Every bad or unknown key: a fresh session, never one under the sent key.
    let upper = cookie.to_uppercase();
    let unknown = SessionKey::generate().to_string();
    for bad in [
        "short",
        upper.as_str(),
        &cookie[..31],
        unknown.as_str(),
        "../../etc/passwd",
    ] {
        let mut s = store.load(Some(bad));
        assert!(s.is_empty() && s.session_key().is_none(), "{bad}");
        assert_eq!(s.get("secret"), None);
        s.save().unwrap();
        assert_ne!(
            s.session_key().unwrap().as_str(),
            bad,
            "client chose its key"
        );
        assert!(!store.exists(bad));
    }
    assert!(store.exists(&cookie));
}

fn save_load_create_delete<S: Strategy>() {
    let store = store::<S>(ConflictPolicy::default());
    assert!(store.is_empty());
    let created = store.create().unwrap();
    assert!(created.modified());
    let key = created.session_key().unwrap().to_string();
    assert_eq!(created.loaded_version(), Some(1));
    assert!(store.exists(&key));
    assert_eq!(store.len(), 1);

    let mut s = store.load(Some(&key));
    s.insert("list", json!([1, 2]));
    s.save().unwrap();
    assert_eq!(s.loaded_version(), Some(2));
    s.insert("more", json!({"a": null}));
    s.save().unwrap();
    assert_eq!(s.loaded_version(), Some(3));

    let r = store.record(&key).unwrap();
    assert_eq!(r.version(), 3);
    assert_eq!(r.data().get("list"), Some(&json!([1, 2])));
    assert_eq!(r.data().get("more"), Some(&json!({"a": null})));

    assert!(store.delete(&key));
    assert!(!store.delete(&key));
    assert!(!store.delete("nonsense"));
    assert!(!store.exists(&key));
    assert_eq!(store.len(), 0);
    // A save of a deleted session is refused, not resurrected (Django #21608).
    s.insert("late", 1);
    match s.save() {
        Err(SaveError::Gone { key: k }) => assert_eq!(k.as_str(), key),
        other => panic!("expected Gone, got {other:?}"),
    }
    assert!(!store.exists(&key));
    assert_eq!(
        s.get("late"),
        Some(&json!(1)),
        "the handle keeps its data on error"
    );
}

fn flush_is_not_resurrected<S: Strategy>() {
    for policy in [
        ConflictPolicy::LastWriterWins,
        ConflictPolicy::Reject,
        ConflictPolicy::MergeChangedKeys,
    ] {
        let store = store::<S>(policy);
        let cookie = saved(&store, &[("user", json!(1))]);
        let mut other = store.load(Some(&cookie));
        other.insert("x", 1);

        let mut s = store.load(Some(&cookie));
        s.flush();
        assert!(s.modified() && s.accessed() && s.is_empty());
        assert_eq!(s.session_key(), None);
        assert!(!store.exists(&cookie));

        assert!(
            matches!(other.save(), Err(SaveError::Gone { .. })),
            "{policy:?}"
        );
        assert!(!store.exists(&cookie), "{policy:?}: resurrected");
        assert_eq!(store.len(), 0);

        // The flushed handle starts over under a new key.
        s.insert("anon", true);
        s.save().unwrap();
        assert_ne!(s.session_key().unwrap().as_str(), cookie);
    }
}

fn cycle_key_moves_data<S: Strategy>() {
    let store = store::<S>(ConflictPolicy::default());
    let cookie = saved(&store, &[("cart", json!([1]))]);
    let mut stale = store.load(Some(&cookie));
    stale.insert("x", 1);

    let mut s = store.load(Some(&cookie));
    s.insert("unsaved", 2);
    s.set_expiry(Expiry::Seconds(600));
    s.cycle_key().unwrap();
    assert!(s.modified());
    let new = s.session_key().unwrap().to_string();
    assert_ne!(new, cookie);
    assert!(!store.exists(&cookie), "old key must die");
    let r = store.record(&new).unwrap();
    assert_eq!(r.data().get("cart"), Some(&json!([1])));
    assert_eq!(
        r.data().get("unsaved"),
        Some(&json!(2)),
        "Django's cycle_key stores the current data"
    );
    assert_eq!(r.expiry(), Some(Expiry::Seconds(600)));
    assert_eq!(store.len(), 1);
    assert!(matches!(stale.save(), Err(SaveError::Gone { .. })));

    // Saving after the cycle updates the new key.
    s.insert("after", 3);
    s.save().unwrap();
    assert_eq!(
        store.record(&new).unwrap().data().get("after"),
        Some(&json!(3))
    );

    // A fresh session: cycle_key creates it.
    let mut f = store.load(None);
    f.insert("a", 1);
    f.cycle_key().unwrap();
    assert!(store.exists(f.session_key().unwrap().as_str()));
    assert_eq!(store.len(), 2);
}

fn expired_records_are_invisible<S: Strategy>() {
    let store = store::<S>(ConflictPolicy::default());
    let live = saved(&store, &[("a", json!(1))]);
    let mut s = store.load(Some(&live));
    let mut late = store.load(Some(&live));
    s.set_expiry(Expiry::Seconds(-1));
    s.save().unwrap();
    let dead = s.session_key().unwrap().to_string();
    assert!(!store.exists(&dead));
    assert!(store.record(&dead).is_none());
    let fresh = store.load(Some(&dead));
    assert!(fresh.session_key().is_none() && fresh.get("a").is_none());
    // A save meeting the expired record is refused.
    late.insert("b", 2);
    assert!(matches!(late.save(), Err(SaveError::Gone { .. })));

    let mut p = store.load(None);
    p.set_expiry(Expiry::At(datetime!(2000-01-01 0:00 UTC)));
    p.save().unwrap();
    let keep = saved(&store, &[("k", json!(1))]);
    assert_eq!(store.len(), 3, "expired records count until swept");
    assert_eq!(store.clear_expired(), 2);
    assert_eq!(store.clear_expired(), 0);
    assert_eq!(store.len(), 1);
    assert!(store.exists(&keep));
}

fn merge_keeps_changed_keys<S: Strategy>() {
    let store = store::<S>(ConflictPolicy::MergeChangedKeys);
    let cookie = saved(
        &store,
        &[("keep", json!("k")), ("gone", json!(0)), ("same", json!(0))],
    );
    let mut a = store.load(Some(&cookie));
    let mut b = store.load(Some(&cookie));
    a.insert("a", 1);
    a.update("n", incr).unwrap();
    a.insert("same", "a");
    a.remove("gone");
    b.insert("b", 2);
    b.update("n", incr).unwrap();
    b.update("n", incr).unwrap();
    b.insert("same", "b");
    b.setdefault("a", "from b"); // absent in b's view; must not overwrite a's value
    a.save().unwrap();
    b.save().unwrap();
    assert_eq!(b.loaded_version(), Some(3));
    assert_eq!(
        b.get("a"),
        Some(&json!(1)),
        "the handle sees the merged record"
    );

    let r = store.record(&cookie).unwrap();
    let d = r.data();
    assert_eq!(d.get("a"), Some(&json!(1)));
    assert_eq!(d.get("b"), Some(&json!(2)));
    assert_eq!(d.get("n"), Some(&json!(3)), "update operations replayed");
    assert_eq!(d.get("same"), Some(&json!("b")), "later plain set wins");
    assert_eq!(d.get("gone"), None, "a's remove kept");
    assert_eq!(d.get("keep"), Some(&json!("k")));

    // clear is replayed as clear, then the request's later changes.
    let mut c = store.load(Some(&cookie));
    let mut e = store.load(Some(&cookie));
    c.clear();
    c.insert("only", 1);
    e.insert("concurrent", 1);
    e.set_expiry(Expiry::Seconds(100));
    e.save().unwrap();
    c.save().unwrap();
    let r = store.record(&cookie).unwrap();
    assert_eq!(r.data().keys().collect::<Vec<_>>(), ["only"]);
    assert_eq!(
        r.expiry(),
        Some(Expiry::Seconds(100)),
        "expiry from e kept (c did not set one)"
    );
}

fn last_writer_wins_is_djangos<S: Strategy>() {
    let store = store::<S>(ConflictPolicy::LastWriterWins);
    let cookie = saved(&store, &[]);
    let mut a = store.load(Some(&cookie));
    let mut b = store.load(Some(&cookie));
    a.insert("a", 1);
    b.insert("b", 2);
    a.save().unwrap();
    b.save().unwrap();
    let r = store.record(&cookie).unwrap();
    assert_eq!(r.data().get("a"), None, "Django loses a's write");
    assert_eq!(r.data().get("b"), Some(&json!(2)));
    assert_eq!(r.version(), 3);
}

fn reject_reports_conflicts<S: Strategy>() {
    let store = store::<S>(ConflictPolicy::Reject);
    let cookie = saved(&store, &[]);
    let mut a = store.load(Some(&cookie));
    let mut b = store.load(Some(&cookie));
    a.update("n", incr).unwrap();
    b.update("n", incr).unwrap();
    a.save().unwrap();
    match b.save() {
        Err(SaveError::Conflict {
            current,
            loaded_version,
        }) => {
            assert_eq!(loaded_version, 1);
            assert_eq!(current.version(), 2);
            assert_eq!(current.data().get("n"), Some(&json!(1)));
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(
        store.record(&cookie).unwrap().version(),
        2,
        "rejected save changed nothing"
    );
    // Retry as a request would: reload and redo.
    let mut b = store.load(Some(&cookie));
    b.update("n", incr).unwrap();
    b.save().unwrap();
    assert_eq!(
        store.record(&cookie).unwrap().data().get("n"),
        Some(&json!(2))
    );
    // Unchanged since loaded: no conflict.
    let mut c = store.load(Some(&cookie));
    c.insert("c", 1);
    c.save().unwrap();
    c.insert("c", 2);
    c.save().unwrap();
}

fn update_panics_are_typed<S: Strategy>() {
    let store = store::<S>(ConflictPolicy::MergeChangedKeys);
    let cookie = saved(&store, &[("n", json!(1))]);
    let mut s = store.load(Some(&cookie));
    let err = s
        .update("n", |_| panic!("boom"))
        .expect_err("panic must be an error");
    assert_eq!(err.key, "n");
    assert_eq!(err.message, "boom");
    assert_eq!(s.get("n"), Some(&json!(1)), "value unchanged");
    assert!(!s.modified(), "nothing recorded");

    // A closure that panics only on the latest value: the save fails, the store is intact.
    let mut a = store.load(Some(&cookie));
    a.update("n", |v| {
        json!(v.and_then(Value::as_i64).expect("a number") * 10)
    })
    .unwrap();
    let mut b = store.load(Some(&cookie));
    b.insert("n", "not a number");
    b.save().unwrap();
    match a.save() {
        Err(SaveError::UpdatePanicked(e)) => assert_eq!(e.key, "n"),
        other => panic!("expected UpdatePanicked, got {other:?}"),
    }
    let r = store.record(&cookie).unwrap();
    assert_eq!(r.data().get("n"), Some(&json!("not a number")));
    assert_eq!(r.version(), 2, "only b's save published a version");
}

fn bound_on_live_sessions<S: Strategy>() {
    let store = SessionStore::<S>::builder()
        .max_sessions(2)
        .full_sweep_interval(Duration::ZERO)
        .build();
    let a = saved(&store, &[]);
    let _b = saved(&store, &[]);
    match store.create() {
        Err(CreateError::Full { limit }) => assert_eq!(limit, 2),
        other => panic!("expected Full, got {other:?}"),
    }
    let mut fresh = store.load(None);
    fresh.insert("x", 1);
    assert!(matches!(
        fresh.save(),
        Err(SaveError::Create(CreateError::Full { limit: 2 }))
    ));
    assert_eq!(fresh.get("x"), Some(&json!(1)), "handle keeps its data");
    // Cycling a key at the bound is fine (one in, one out).
    let mut s = store.load(Some(&a));
    s.cycle_key().unwrap();
    assert_eq!(store.len(), 2);
    // Expire one: the next create sweeps it and succeeds; live sessions are never evicted.
    s.set_expiry(Expiry::Seconds(-5));
    s.save().unwrap();
    fresh.save().unwrap();
    assert_eq!(store.len(), 2);
    assert!(store.exists(&_b));
    assert!(store.create().is_err());
    // Deleting makes room.
    assert!(store.delete(&_b));
    store.create().unwrap();
}

/// At the bound, a flood of creates sweeps at most once per interval: expired sessions found
/// by the first full create make room; later ones fail at once (no sweep each) until the
/// interval has passed or `clear_expired` runs.
fn floods_at_the_bound_sweep_once_per_interval<S: Strategy>() {
    let store = SessionStore::<S>::builder()
        .max_sessions(3)
        .full_sweep_interval(Duration::hours(1))
        .build();
    let keys: Vec<String> = (0..3).map(|_| saved(&store, &[])).collect();
    let expire = |key: &str| {
        let mut s = store.load(Some(key));
        s.set_expiry(Expiry::Seconds(-5));
        s.save().unwrap();
    };
    expire(&keys[0]);
    // The first create at the bound sweeps (the interval starts at the epoch).
    store.create().expect("the sweep made room");
    assert!(!store.exists(&keys[0]) && store.len() == 3);
    expire(&keys[1]);
    for _ in 0..100 {
        assert!(
            matches!(store.create(), Err(CreateError::Full { limit: 3 })),
            "no sweep within the interval"
        );
    }
    assert_eq!(store.len(), 3, "the expired record is still counted");
    assert_eq!(store.clear_expired(), 1, "an explicit sweep always runs");
    store.create().expect("room after the explicit sweep");
    assert_eq!(store.len(), 3);
}

/// A save refused by a panic (here the lock-order check, where it is on: a `Blocking` store's
/// module lock taken under an instance lock) leaves the live count exact: the reserved slot of
/// the bound is given back, so the store does not fill up with nothing stored.
fn refused_create_keeps_the_count<S: Strategy>() {
    let store = SessionStore::<S>::builder().max_sessions(1).build();
    unlocked::lock::set_order_check(true);
    let instance = unlocked::lock::InstanceLock::new(());
    let outcome = {
        let _held = instance.lock();
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut s = store.load(None);
            s.insert("k", 1);
            s.save().is_ok()
        }))
    };
    let stored = outcome.unwrap_or(false);
    assert_eq!(
        store.len(),
        usize::from(stored),
        "the count matches what is stored"
    );
    if !stored {
        // The refused create gave its slot back: the bound of 1 still admits one session.
        store.create().expect("the refused save left its slot free");
        assert_eq!(store.len(), 1);
    }
}

strategy_tests!(
    floods_at_the_bound_sweep_once_per_interval,
    refused_create_keeps_the_count,
    handles_are_send_stores_are_sync,
    flags_follow_django,
    expiry_arithmetic,
    key_validation,
    save_load_create_delete,
    flush_is_not_resurrected,
    cycle_key_moves_data,
    expired_records_are_invisible,
    merge_keeps_changed_keys,
    last_writer_wins_is_djangos,
    reject_reports_conflicts,
    update_panics_are_typed,
    bound_on_live_sessions,
);
