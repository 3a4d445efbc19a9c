//! Scenarios for `unlocked::model`, each run against both strategies.

#[macro_use]
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, mpsc};
use std::thread;
use std::time::Duration;

use unlocked::model::{
    Apps, CommitError, DeleteError, LookupError, Model, ModelStore, PopulateError, Populated,
    SaveError, UpdateError,
};
use unlocked::{Strategy, StrategyKind};

#[derive(Clone, Debug, PartialEq)]
struct Account {
    owner: String,
    balance: i64,
}

impl Model for Account {
    const APP_LABEL: &'static str = "bank";
    const NAME: &'static str = "Account";
}

#[derive(Clone, Debug, PartialEq)]
struct Article {
    title: String,
}

impl Model for Article {
    const APP_LABEL: &'static str = "blog";
    const NAME: &'static str = "Article";
}

#[derive(Clone, Debug)]
struct Comment;

impl Model for Comment {
    const APP_LABEL: &'static str = "blog";
    const NAME: &'static str = "Comment";
}

/// Reuses `Article`'s name in the same app (case differs): a duplicate.
#[derive(Clone, Debug)]
struct ArticleAgain;

impl Model for ArticleAgain {
    const APP_LABEL: &'static str = "blog";
    const NAME: &'static str = "ARTICLE";
}

#[derive(Clone, Debug)]
struct Orphan;

impl Model for Orphan {
    const APP_LABEL: &'static str = "nowhere";
    const NAME: &'static str = "Orphan";
}

#[derive(Clone, Debug)]
struct BadName;

impl Model for BadName {
    const APP_LABEL: &'static str = "blog";
    const NAME: &'static str = "Bad-Name";
}

fn account(owner: &str, balance: i64) -> Account {
    Account {
        owner: owner.to_owned(),
        balance,
    }
}

fn store<S: Strategy>() -> ModelStore<Account, S> {
    ModelStore::new()
}

// ---------------------------------------------------------------- store: basics

fn insert_assigns_increasing_keys_and_version_one<S: Strategy>() {
    let store = store::<S>();
    assert!(store.is_empty());
    let a = store.insert(account("a", 1));
    let b = store.insert(account("b", 2));
    assert_eq!((a.pk(), a.version()), (1, 1));
    assert_eq!((b.pk(), b.version()), (2, 1));
    assert_eq!(store.len(), 2);
    assert_eq!(store.get(2).unwrap().owner, "b");
    assert!(store.get(3).is_none());
    assert!(store.contains(1) && !store.contains(3));
}

fn save_commits_only_at_the_version_read<S: Strategy>() {
    let store = store::<S>();
    let rec = store.insert(account("a", 100));
    let mut first = rec.edit();
    let mut second = rec.edit();
    first.balance += 10;
    second.balance -= 10;
    let saved = store.save(first).expect("first save commits");
    assert_eq!((saved.version(), saved.balance), (2, 110));
    match store.save(second) {
        Err(SaveError::Conflict { rejected, current }) => {
            assert_eq!(
                rejected.balance, 90,
                "the rejected draft comes back unchanged"
            );
            assert_eq!(rejected.version(), 1);
            assert_eq!((current.version(), current.balance), (2, 110));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(store.get(rec.pk()).unwrap().balance, 110, "no lost update");
    // The draft from the conflict, rebased on the current record, saves.
    let mut retry = store.get(rec.pk()).unwrap().edit();
    retry.balance -= 10;
    assert_eq!(store.save(retry).unwrap().version(), 3);
}

fn save_ignores_commits_to_other_records<S: Strategy>() {
    let store = store::<S>();
    let a = store.insert(account("a", 1));
    let b = store.insert(account("b", 1));
    let mut draft = a.edit();
    draft.balance = 5;
    store.update(b.pk(), |acc| acc.balance += 1).unwrap();
    store.insert(account("c", 1));
    assert_eq!(store.save(draft).unwrap().balance, 5);
}

fn save_after_delete_is_not_found<S: Strategy>() {
    let store = store::<S>();
    let rec = store.insert(account("a", 1));
    let draft = rec.edit();
    store.delete(rec.pk(), rec.version()).unwrap();
    match store.save(draft) {
        Err(SaveError::NotFound { rejected }) => assert_eq!(rejected.owner, "a"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(
        store.get(rec.pk()).is_none(),
        "a save must not resurrect a deleted record"
    );
}

// ---------------------------------------------------------------- store: update

fn update_reruns_the_closure_after_a_conflict<S: Strategy>() {
    let store = store::<S>();
    let pk = store.insert(account("a", 0)).pk();
    let mut runs = 0;
    let rec = store
        .update(pk, |acc| {
            runs += 1;
            if runs <= 2 {
                // Someone else commits to the same record while we compute.
                store.update(pk, |other| other.balance += 100).unwrap();
            }
            acc.balance += 1;
        })
        .unwrap();
    assert_eq!(runs, 3, "two conflicts, then a commit");
    assert_eq!(
        rec.balance, 201,
        "the retried closure saw both concurrent commits"
    );
    assert_eq!(rec.version(), 4);
}

fn update_does_not_rerun_for_unrelated_commits<S: Strategy>() {
    let store = store::<S>();
    let pk = store.insert(account("a", 0)).pk();
    let other = store.insert(account("b", 0)).pk();
    let mut runs = 0;
    store
        .update(pk, |acc| {
            runs += 1;
            if runs == 1 {
                store.update(other, |o| o.balance += 1).unwrap();
                store.insert(account("c", 0));
            }
            acc.balance += 1;
        })
        .unwrap();
    assert_eq!(runs, 1, "commits to other records are not conflicts");
    assert_eq!(store.get(other).unwrap().balance, 1);
    assert_eq!(store.len(), 3);
}

fn update_gives_up_when_the_budget_runs_out<S: Strategy>() {
    let store: ModelStore<Account, S> = ModelStore::builder().retry_budget(3).build();
    assert_eq!(store.retry_budget(), Some(3));
    let pk = store.insert(account("a", 0)).pk();
    let mut runs = 0;
    let err = store
        .update(pk, |acc| {
            runs += 1;
            store.update(pk, |other| other.balance += 1).unwrap();
            acc.balance = -1_000;
        })
        .unwrap_err();
    match err {
        UpdateError::RetriesExhausted { attempts, current } => {
            assert_eq!(attempts, 3);
            assert_eq!(current.balance, 3);
        }
        other => panic!("expected RetriesExhausted, got {other:?}"),
    }
    assert_eq!(runs, 3);
    let stored = store.get(pk).unwrap();
    assert_eq!(
        (stored.balance, stored.version()),
        (3, 4),
        "the failed update wrote nothing"
    );
}

fn update_panic_is_an_error_and_leaves_data_intact<S: Strategy>() {
    let store = store::<S>();
    let pk = store.insert(account("a", 7)).pk();
    let err = store
        .update(pk, |acc| {
            acc.balance = 0;
            acc.owner.clear();
            panic!("boom in update");
        })
        .unwrap_err();
    match err {
        UpdateError::Panicked { pk: p, message } => {
            assert_eq!(p, pk);
            assert_eq!(message, "boom in update");
        }
        other => panic!("expected Panicked, got {other:?}"),
    }
    let rec = store.get(pk).unwrap();
    assert_eq!(
        (rec.balance, rec.owner.as_str(), rec.version()),
        (7, "a", 1)
    );
    // The store still works (no poisoned lock under Blocking).
    assert_eq!(store.update(pk, |a| a.balance += 1).unwrap().balance, 8);
}

fn update_reports_missing_and_duplicate_keys<S: Strategy>() {
    let store = store::<S>();
    let pk = store.insert(account("a", 0)).pk();
    assert!(matches!(
        store.update(99, |_| ()),
        Err(UpdateError::NotFound { pk: 99 })
    ));
    assert!(matches!(
        store.update_many(&[pk, 99], |_| ()),
        Err(UpdateError::NotFound { pk: 99 })
    ));
    assert!(matches!(
        store.update_many(&[pk, pk], |_| ()),
        Err(UpdateError::DuplicatePk { pk: p }) if p == pk
    ));
    assert_eq!(store.get(pk).unwrap().version(), 1);
}

// ---------------------------------------------------------------- store: delete

fn delete_checks_the_version<S: Strategy>() {
    let store = store::<S>();
    let rec = store.insert(account("a", 0));
    store.update(rec.pk(), |a| a.balance = 1).unwrap();
    match store.delete(rec.pk(), rec.version()) {
        Err(DeleteError::Conflict { expected, current }) => {
            assert_eq!(expected, 1);
            assert_eq!(current.version(), 2);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(store.contains(rec.pk()));
    let deleted = store.delete(rec.pk(), 2).unwrap();
    assert_eq!(deleted.balance, 1);
    assert!(matches!(
        store.delete(rec.pk(), 2),
        Err(DeleteError::NotFound { .. })
    ));
    assert!(store.is_empty());
}

fn delete_races_have_one_winner<S: Strategy>() {
    let store = Arc::new(store::<S>());
    for _ in 0..if cfg!(miri) { 2 } else { 50 } {
        let rec = store.insert(account("a", 0));
        let barrier = Arc::new(Barrier::new(3));
        let deleters: Vec<_> = (0..2)
            .map(|_| {
                let (store, barrier, rec) = (store.clone(), barrier.clone(), rec.clone());
                thread::spawn(move || {
                    barrier.wait();
                    store.delete(rec.pk(), rec.version()).is_ok()
                })
            })
            .collect();
        let updater = {
            let (store, barrier, pk) = (store.clone(), barrier.clone(), rec.pk());
            thread::spawn(move || {
                barrier.wait();
                store.update(pk, |a| a.balance += 1).is_ok()
            })
        };
        let deleted = deleters
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|&ok| ok)
            .count();
        let updated = updater.join().unwrap();
        assert!(deleted <= 1, "a record was deleted twice");
        // Either the update committed first (then both deletes at version 1 conflict), or
        // a delete did (then the update finds nothing, and the other delete too).
        match (deleted, updated) {
            (1, false) => assert!(!store.contains(rec.pk())),
            (0, true) => assert_eq!(store.get(rec.pk()).unwrap().version(), 2),
            (1, true) => panic!("an update and a delete at the read version both won"),
            (0, false) => panic!("nobody won"),
            _ => unreachable!(),
        }
    }
}

// ---------------------------------------------------------------- store: multi-record commits

fn commit_is_all_or_nothing<S: Strategy>() {
    let store = store::<S>();
    let a = store.insert(account("a", 100));
    let b = store.insert(account("b", 0));
    let (mut from, mut to) = (a.edit(), b.edit());
    from.balance -= 30;
    to.balance += 30;
    store.update(b.pk(), |acc| acc.balance += 5).unwrap();
    match store.commit(vec![from, to]) {
        Err(CommitError::Conflict {
            pk,
            expected,
            current,
            rejected,
        }) => {
            assert_eq!((pk, expected), (b.pk(), 1));
            assert_eq!(current.unwrap().balance, 5);
            assert_eq!(rejected.len(), 2);
            assert_eq!((rejected[0].balance, rejected[1].balance), (70, 30));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        store.get(a.pk()).unwrap().balance,
        100,
        "nothing half-applied"
    );
    assert_eq!(store.get(a.pk()).unwrap().version(), 1);

    // Re-read, redo, commit.
    let (mut from, mut to) = (
        store.get(a.pk()).unwrap().edit(),
        store.get(b.pk()).unwrap().edit(),
    );
    from.balance -= 30;
    to.balance += 30;
    let saved = store.commit(vec![from, to]).unwrap();
    assert_eq!((saved[0].version(), saved[1].version()), (2, 3));
    let total: i64 = store.snapshot().iter().map(|r| r.balance).sum();
    assert_eq!(total, 105);
}

fn commit_rejects_deleted_and_duplicate_records<S: Strategy>() {
    let store = store::<S>();
    let a = store.insert(account("a", 1));
    let b = store.insert(account("b", 1));
    let drafts = vec![a.edit(), b.edit()];
    store.delete(b.pk(), 1).unwrap();
    match store.commit(drafts) {
        Err(CommitError::Conflict {
            pk, current: None, ..
        }) => assert_eq!(pk, b.pk()),
        other => panic!("expected a conflict on a deleted record, got {other:?}"),
    }
    let err = store.commit(vec![a.edit(), a.edit()]).unwrap_err();
    assert!(matches!(err, CommitError::DuplicatePk { pk, .. } if pk == a.pk()));
    assert_eq!(err.into_rejected().len(), 2);
    assert_eq!(store.get(a.pk()).unwrap().version(), 1);
}

fn update_many_changes_all_records_together<S: Strategy>() {
    let store = store::<S>();
    let pks: Vec<u64> = (0..4).map(|i| store.insert(account("x", i)).pk()).collect();
    let before = store.snapshot();
    let records = store
        .update_many(&pks, |values| {
            for v in values.iter_mut() {
                v.balance *= 10;
            }
        })
        .unwrap();
    assert_eq!(
        records.iter().map(|r| r.balance).collect::<Vec<_>>(),
        [0, 10, 20, 30]
    );
    // A snapshot taken before is unaffected; one taken after sees every change.
    assert_eq!(
        before.iter().map(|r| r.balance).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    assert!(store.snapshot().iter().all(|r| r.version() == 2));
}

fn snapshot_iteration_and_filter_are_in_key_order<S: Strategy>() {
    let store = store::<S>();
    for i in 0..20 {
        store.insert(account(&format!("u{i}"), i));
    }
    let evens = store.filter(|a| a.balance % 2 == 0);
    assert_eq!(evens.len(), 10);
    assert!(evens.windows(2).all(|w| w[0].pk() < w[1].pk()));
    assert_eq!(store.all().len(), 20);
    let snap = store.snapshot();
    store.delete(1, 1).unwrap();
    assert_eq!(snap.len(), 20, "a snapshot does not see later commits");
    assert_eq!(snap.get(1).unwrap().owner, "u0");
    assert_eq!(store.len(), 19);
}

/// LockFree reads never wait, even while another thread holds the model's class lock;
/// Blocking reads take that lock (documented) and wait for it.
fn reads_and_the_class_lock<S: Strategy>() {
    #[derive(Clone)]
    struct Private;
    impl Model for Private {
        const APP_LABEL: &'static str = "tests";
        const NAME: &'static str = "Private";
    }
    let store: Arc<ModelStore<Private, S>> = Arc::new(ModelStore::new());
    let pk = store.insert(Private).pk();
    let (locked_tx, locked_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let holder = thread::spawn(move || {
        let _guard = unlocked::lock::class::<Private>().lock();
        locked_tx.send(()).unwrap();
        release_rx.recv().unwrap();
    });
    locked_rx.recv().unwrap();
    let (done_tx, done_rx) = mpsc::channel();
    let reader = {
        let store = store.clone();
        thread::spawn(move || {
            let found = store.get(pk).is_some();
            done_tx.send(found).unwrap();
        })
    };
    match S::KIND {
        StrategyKind::LockFree => {
            assert_eq!(done_rx.recv_timeout(Duration::from_secs(10)), Ok(true));
        }
        _ => {
            assert!(
                done_rx.recv_timeout(Duration::from_millis(100)).is_err(),
                "a Blocking read must wait for the class lock"
            );
        }
    }
    release_tx.send(()).unwrap();
    holder.join().unwrap();
    assert_eq!(
        done_rx.recv_timeout(Duration::from_secs(10)).ok(),
        match S::KIND {
            StrategyKind::LockFree => None, // already received
            _ => Some(true),
        }
    );
    reader.join().unwrap();
}

// ---------------------------------------------------------------- registry

fn register_blog(reg: &mut unlocked::model::Registrar) -> Result<(), PopulateError> {
    reg.app("blog")?.model::<Article>()?.model::<Comment>()?;
    reg.app("bank")?.model::<Account>()?;
    Ok(())
}

fn populate_then_look_up_without_a_lock<S: Strategy>() {
    let apps = Apps::new();
    assert!(!apps.apps_ready() && !apps.models_ready() && !apps.ready());
    assert_eq!(
        apps.get_model("blog", "Article"),
        Err(LookupError::NotReady)
    );
    assert_eq!(apps.get_models().count(), 0);
    let store: Arc<ModelStore<Article, S>> = Arc::new(ModelStore::new());
    let hook_store = store.clone();
    let populated = apps.populate(|reg| {
        register_blog(reg)?;
        reg.on_ready(move |apps| {
            // Lookups work in ready hooks; the registry is not `ready` yet.
            assert!(apps.models_ready() && !apps.ready());
            assert!(apps.get_model_of::<Article>().is_ok());
            hook_store.insert(Article {
                title: "first".into(),
            });
        });
        Ok(())
    });
    assert_eq!(populated, Ok(Populated::Now));
    assert!(apps.apps_ready() && apps.models_ready() && apps.ready());
    assert_eq!(store.len(), 1, "the ready hook ran once");

    let meta = apps.get_model("blog", "article").unwrap();
    assert_eq!((meta.app_label, meta.name), ("blog", "Article"));
    assert_eq!(meta.label(), "blog.Article");
    assert_eq!(meta.label_lower(), "blog.article");
    assert!(meta.is::<Article>() && !meta.is::<Comment>());
    assert!(
        apps.get_model_by_label("bank.ACCOUNT")
            .unwrap()
            .is::<Account>()
    );
    assert_eq!(apps.get_model_of::<Comment>().unwrap().name, "Comment");
    assert_eq!(
        apps.get_models().map(|m| m.label()).collect::<Vec<_>>(),
        ["blog.Article", "blog.Comment", "bank.Account"]
    );
    assert_eq!(apps.get_app_config("blog").unwrap().models.len(), 2);
    assert_eq!(apps.get_app_configs().count(), 2);
    assert_eq!(
        apps.get_model("shop", "Item"),
        Err(LookupError::NoSuchApp {
            app_label: "shop".into()
        })
    );
    assert_eq!(
        apps.get_model("blog", "Tag"),
        Err(LookupError::NoSuchModel {
            app_label: "blog".into(),
            model_name: "Tag".into()
        })
    );
    assert!(matches!(
        apps.get_model_by_label("blogArticle"),
        Err(LookupError::BadLabel { .. })
    ));
    assert!(matches!(
        apps.get_model_of::<Orphan>(),
        Err(LookupError::NoSuchModel { .. })
    ));

    // Idempotent: the closure of a later call is not run.
    let ran = AtomicUsize::new(0);
    let again = apps.populate(|_| {
        ran.fetch_add(1, Ordering::Relaxed);
        Ok(())
    });
    assert_eq!(again, Ok(Populated::Already));
    assert_eq!(ran.load(Ordering::Relaxed), 0);
    assert_eq!(store.len(), 1, "hooks do not run twice");
}

fn populate_races_run_once<S: Strategy>() {
    for _ in 0..if cfg!(miri) { 1 } else { 10 } {
        let apps = Arc::new(Apps::new());
        let store: Arc<ModelStore<Article, S>> = Arc::new(ModelStore::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let barrier = Arc::new(Barrier::new(6));
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let (apps, store, runs, barrier) =
                    (apps.clone(), store.clone(), runs.clone(), barrier.clone());
                thread::spawn(move || {
                    barrier.wait();
                    let outcome = apps.populate(|reg| {
                        runs.fetch_add(1, Ordering::SeqCst);
                        // Slow registration: the others must wait, not see half of it.
                        thread::sleep(Duration::from_millis(5));
                        register_blog(reg)?;
                        let store = store.clone();
                        reg.on_ready(move |_| {
                            thread::sleep(Duration::from_millis(5));
                            store.insert(Article {
                                title: "seed".into(),
                            });
                        });
                        Ok(())
                    });
                    // Whoever returns sees a complete, ready registry.
                    assert!(apps.ready());
                    assert_eq!(apps.get_models().count(), 3);
                    assert_eq!(store.len(), 1, "returned before the ready hooks finished");
                    outcome.unwrap()
                })
            })
            .collect();
        let outcomes: Vec<Populated> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "the registration ran more than once"
        );
        assert_eq!(outcomes.iter().filter(|&&o| o == Populated::Now).count(), 1);
    }
}

fn reentrant_populate_is_refused<S: Strategy>() {
    // From the registration closure.
    let apps = Apps::new();
    let mut inner = None;
    let outcome = apps.populate(|reg| {
        reg.app("blog")?.model::<Article>()?;
        inner = Some(apps.populate(|_| Ok(())));
        Ok(())
    });
    assert_eq!(outcome, Ok(Populated::Now), "the outer populate completes");
    assert_eq!(inner, Some(Err(PopulateError::Reentrant)));
    assert!(
        PopulateError::Reentrant
            .to_string()
            .contains("populate() isn't reentrant")
    );

    // From a ready hook, with a store of the strategy under test in play.
    let apps = Arc::new(Apps::new());
    let seen = Arc::new(std::sync::Mutex::new(None));
    let store: Arc<ModelStore<Article, S>> = Arc::new(ModelStore::new());
    let (hook_apps, hook_seen, hook_store) = (apps.clone(), seen.clone(), store.clone());
    let outcome = apps.populate(move |reg| {
        reg.app("blog")?.model::<Article>()?;
        reg.on_ready(move |_| {
            hook_store.insert(Article { title: "x".into() });
            *hook_seen.lock().unwrap() = Some(hook_apps.populate(|_| Ok(())));
        });
        Ok(())
    });
    assert_eq!(outcome, Ok(Populated::Now));
    assert_eq!(*seen.lock().unwrap(), Some(Err(PopulateError::Reentrant)));
    assert_eq!(store.len(), 1);
}

fn failed_registration_publishes_nothing<S: Strategy>() {
    let apps = Apps::new();
    assert_eq!(
        apps.populate(|reg| {
            reg.app("blog")?
                .model::<Article>()?
                .model::<ArticleAgain>()?;
            Ok(())
        }),
        Err(PopulateError::DuplicateModel {
            label: "blog.ARTICLE".into()
        })
    );
    assert!(!apps.models_ready());
    assert_eq!(
        apps.get_model("blog", "Article"),
        Err(LookupError::NotReady)
    );
    assert_eq!(
        apps.populate(|reg| reg.app("blog")?.app("blog").map(|_| ())),
        Err(PopulateError::DuplicateApp {
            label: "blog".into()
        })
    );
    assert_eq!(
        apps.populate(|reg| reg.model::<Orphan>().map(|_| ())),
        Err(PopulateError::UnknownApp {
            model: "nowhere.Orphan".into(),
            app_label: "nowhere".into()
        })
    );
    assert!(matches!(
        apps.populate(|reg| reg.app("blog")?.model::<BadName>().map(|_| ())),
        Err(PopulateError::InvalidLabel { label, .. }) if label == "Bad-Name"
    ));
    assert!(matches!(
        apps.populate(|reg| reg.app("9lives").map(|_| ())),
        Err(PopulateError::InvalidLabel { .. })
    ));
    assert_eq!(
        apps.populate(|reg| {
            reg.app("blog")?;
            panic!("registration blew up")
        }),
        Err(PopulateError::RegistrationPanicked {
            message: "registration blew up".into()
        })
    );
    assert!(!apps.models_ready());
    // A later attempt succeeds: failures leave nothing behind.
    let store: ModelStore<Article, S> = ModelStore::new();
    assert_eq!(apps.populate(register_blog), Ok(Populated::Now));
    assert_eq!(apps.get_models().count(), 3);
    store.insert(Article { title: "t".into() });
    assert_eq!(store.len(), 1);
}

fn panicking_ready_hook_is_sticky<S: Strategy>() {
    let apps = Apps::new();
    let store: Arc<ModelStore<Article, S>> = Arc::new(ModelStore::new());
    let later = store.clone();
    let outcome = apps.populate(|reg| {
        register_blog(reg)?;
        reg.on_ready(|_| panic!("hook failed"));
        reg.on_ready(move |_| {
            later.insert(Article {
                title: "never".into(),
            });
        });
        Ok(())
    });
    assert_eq!(
        outcome,
        Err(PopulateError::ReadyHookPanicked {
            message: "hook failed".into()
        })
    );
    assert!(apps.models_ready() && !apps.ready());
    assert_eq!(store.len(), 0, "hooks after the failing one are skipped");
    assert!(apps.get_model("blog", "Article").is_ok());
    assert!(matches!(
        apps.populate(register_blog),
        Err(PopulateError::ReadyHookPanicked { .. })
    ));
}

strategy_tests!(
    insert_assigns_increasing_keys_and_version_one,
    save_commits_only_at_the_version_read,
    save_ignores_commits_to_other_records,
    save_after_delete_is_not_found,
    update_reruns_the_closure_after_a_conflict,
    update_does_not_rerun_for_unrelated_commits,
    update_gives_up_when_the_budget_runs_out,
    update_panic_is_an_error_and_leaves_data_intact,
    update_reports_missing_and_duplicate_keys,
    delete_checks_the_version,
    delete_races_have_one_winner,
    commit_is_all_or_nothing,
    commit_rejects_deleted_and_duplicate_records,
    update_many_changes_all_records_together,
    snapshot_iteration_and_filter_are_in_key_order,
    reads_and_the_class_lock,
    populate_then_look_up_without_a_lock,
    populate_races_run_once,
    reentrant_populate_is_refused,
    failed_registration_publishes_nothing,
    panicking_ready_hook_is_sticky,
);
