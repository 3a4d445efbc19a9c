//! Template cache scenarios, each run against both strategies.

#[macro_use]
mod common;

mod common_template;

use std::sync::{Mutex, mpsc};
use std::time::Duration;

use common_template::{Counting, dir_with, write_files};
use serde_json::json;
use unlocked::Strategy;
use unlocked::template::{
    Engine, FileSystemLoader, GetError, LoadError, MiniJinja, RefusedReason, RenderError,
    RenderFailure, TemplateCache,
};

fn cache_over<S: Strategy>(dirs: &[&std::path::Path]) -> TemplateCache<Counting, S> {
    TemplateCache::new(
        Counting::default(),
        FileSystemLoader::new(dirs.iter().copied()),
    )
}

fn hits_compile_once<S: Strategy>() {
    let dir = dir_with(&[("hello.html", "Hello {{ name }}!")]);
    let cache = cache_over::<S>(&[dir.path()]);
    let mut reader = cache.reader();
    for i in 0..50 {
        let t = reader.get("hello.html").unwrap();
        assert_eq!(t.name(), "hello.html");
        assert_eq!(t.generation(), 0);
        assert!(t.path().ends_with("hello.html"));
        let out = reader.render("hello.html", &json!({ "name": i })).unwrap();
        assert_eq!(out, format!("Hello {i}!"));
    }
    // A second reader (another thread's) hits the same entry.
    let mut other = cache.reader();
    other.get("hello.html").unwrap();
    assert_eq!(cache.engine().compiles_of("hello.html"), 1);
    assert_eq!(cache.len(), 1);
}

fn first_directory_wins<S: Strategy>() {
    let a = dir_with(&[("x.html", "from a")]);
    let b = dir_with(&[("x.html", "from b"), ("y.html", "only b")]);
    let cache = cache_over::<S>(&[a.path(), b.path()]);
    assert_eq!(cache.render("x.html", &()).unwrap(), "from a");
    assert_eq!(cache.render("y.html", &()).unwrap(), "only b");
}

fn miss_lists_every_path_tried<S: Strategy>() {
    let a = dir_with(&[]);
    let b = dir_with(&[]);
    let cache = cache_over::<S>(&[a.path(), b.path()]);
    let err = cache.reader().get("nope/missing.html").unwrap_err();
    assert!(err.is_not_found());
    match err {
        GetError::Load(LoadError::NotFound { name, tried }) => {
            assert_eq!(name, "nope/missing.html");
            assert_eq!(
                tried,
                vec![
                    a.path().join("nope/missing.html"),
                    b.path().join("nope/missing.html")
                ]
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    let text = cache
        .reader()
        .get("nope/missing.html")
        .unwrap_err()
        .to_string();
    assert!(text.contains(&a.path().display().to_string()), "{text}");
    assert!(text.contains(&b.path().display().to_string()), "{text}");
}

fn misses_are_cached<S: Strategy>() {
    let dir = dir_with(&[]);
    let cache = cache_over::<S>(&[dir.path()]);
    let mut reader = cache.reader();
    assert!(reader.get("late.html").unwrap_err().is_not_found());
    // The file appears, but the cached miss stands: the disk is not read again.
    write_files(dir.path(), &[("late.html", "here")]);
    for _ in 0..10 {
        assert!(reader.get("late.html").unwrap_err().is_not_found());
    }
    assert_eq!(cache.len(), 1);
    assert!(cache.invalidate("late.html"));
    assert_eq!(cache.render("late.html", &()).unwrap(), "here");
}

fn reset_starts_a_new_generation<S: Strategy>() {
    let dir = dir_with(&[("t.html", "v1"), ("u.html", "u1")]);
    let cache = cache_over::<S>(&[dir.path()]);
    let mut reader = cache.reader();
    assert_eq!(reader.render("t.html", &()).unwrap(), "v1");
    assert_eq!(reader.render("u.html", &()).unwrap(), "u1");
    write_files(dir.path(), &[("t.html", "v2"), ("u.html", "u2")]);
    // Without autoreload the cache keeps what it compiled.
    assert_eq!(reader.render("t.html", &()).unwrap(), "v1");
    let held = reader.get("t.html").unwrap().generation();
    cache.reset();
    assert_eq!(cache.generation(), held + 1);
    assert!(cache.is_empty());
    assert_eq!(reader.render("t.html", &()).unwrap(), "v2");
    assert_eq!(reader.render("u.html", &()).unwrap(), "u2");
    assert_eq!(reader.get("t.html").unwrap().generation(), held + 1);
    assert_eq!(cache.engine().compiles_of("t.html"), 2);
    // The convenience path keeps a per-thread snapshot: it must see a reset too.
    assert_eq!(cache.render("t.html", &()).unwrap(), "v2");
    write_files(dir.path(), &[("t.html", "v3")]);
    cache.reset();
    assert_eq!(cache.render("t.html", &()).unwrap(), "v3");
    std::thread::scope(|s| {
        s.spawn(|| {
            write_files(dir.path(), &[("t.html", "v4")]);
            cache.reset();
        });
    });
    assert_eq!(cache.render("t.html", &()).unwrap(), "v4");
}

fn invalidate_one_name<S: Strategy>() {
    let dir = dir_with(&[("t.html", "v1"), ("u.html", "u1")]);
    let cache = cache_over::<S>(&[dir.path()]);
    assert_eq!(cache.render("t.html", &()).unwrap(), "v1");
    assert_eq!(cache.render("u.html", &()).unwrap(), "u1");
    write_files(dir.path(), &[("t.html", "v2"), ("u.html", "u2")]);
    assert!(cache.invalidate("t.html"));
    assert!(!cache.invalidate("never-loaded.html"));
    assert_eq!(cache.render("t.html", &()).unwrap(), "v2");
    assert_eq!(cache.render("u.html", &()).unwrap(), "u1");
    assert_eq!(cache.generation(), 0);
    assert_eq!(cache.engine().compiles_of("t.html"), 2);
    assert_eq!(cache.engine().compiles_of("u.html"), 1);
}

fn autoreload_notices_changes<S: Strategy>() {
    let dir = dir_with(&[("t.html", "short")]);
    let cache: TemplateCache<MiniJinja, S> =
        TemplateCache::builder(MiniJinja::new(), FileSystemLoader::new([dir.path()]))
            .autoreload(Duration::ZERO)
            .build();
    let mut reader = cache.reader();
    assert_eq!(reader.render("t.html", &()).unwrap(), "short");
    // A different length is noticed even where mtimes are coarse.
    write_files(dir.path(), &[("t.html", "a longer body")]);
    assert_eq!(reader.render("t.html", &()).unwrap(), "a longer body");
    // Cached misses are forgotten too, so a new file is found.
    assert!(reader.get("new.html").unwrap_err().is_not_found());
    write_files(dir.path(), &[("new.html", "new")]);
    assert_eq!(reader.render("new.html", &()).unwrap(), "new");
    // A deleted file is dropped, then reported missing.
    std::fs::remove_file(dir.path().join("t.html")).unwrap();
    assert!(reader.get("t.html").unwrap_err().is_not_found());
}

fn autoreload_waits_for_its_interval<S: Strategy>() {
    let dir = dir_with(&[("t.html", "v1")]);
    let cache: TemplateCache<MiniJinja, S> =
        TemplateCache::builder(MiniJinja::new(), FileSystemLoader::new([dir.path()]))
            .autoreload(Duration::from_secs(3600))
            .build();
    // The first lookup is due (the clock starts at 0) and checks an empty cache.
    assert_eq!(cache.render("t.html", &()).unwrap(), "v1");
    write_files(dir.path(), &[("t.html", "v2 longer")]);
    assert_eq!(cache.render("t.html", &()).unwrap(), "v1");
}

fn hostile_names_are_refused<S: Strategy>() {
    let outside = dir_with(&[("secret.html", "secret")]);
    let dir = dir_with(&[("ok.html", "ok"), ("sub/ok.html", "sub")]);
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(
            outside.path().join("secret.html"),
            dir.path().join("link.html"),
        )
        .unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("linkdir")).unwrap();
    }
    let cache = cache_over::<S>(&[dir.path()]);
    let mut reader = cache.reader();
    let absolute = outside.path().join("secret.html").display().to_string();
    let mut table: Vec<(&str, RefusedReason)> = vec![
        ("", RefusedReason::Empty),
        ("a\0b.html", RefusedReason::Nul),
        ("..\\secret.html", RefusedReason::Backslash),
        ("sub\\ok.html", RefusedReason::Backslash),
        ("/etc/passwd", RefusedReason::Absolute),
        (absolute.as_str(), RefusedReason::Absolute),
        ("../secret.html", RefusedReason::BadSegment),
        ("sub/../../secret.html", RefusedReason::BadSegment),
        ("sub/..", RefusedReason::BadSegment),
        ("./ok.html", RefusedReason::BadSegment),
        ("sub//ok.html", RefusedReason::BadSegment),
        ("sub/", RefusedReason::BadSegment),
    ];
    if cfg!(unix) {
        table.push(("link.html", RefusedReason::EscapesRoot));
        table.push(("linkdir/secret.html", RefusedReason::EscapesRoot));
    }
    for (name, want) in table {
        match reader.get(name) {
            Err(GetError::Load(LoadError::Refused { name: n, reason })) => {
                assert_eq!(n, name);
                assert_eq!(reason, want, "{name:?}");
            }
            other => panic!("{name:?} was not refused: {other:?}"),
        }
    }
    // Refusals are not cached, and good names still work.
    assert_eq!(cache.len(), 0);
    assert_eq!(cache.render("sub/ok.html", &()).unwrap(), "sub");
}

fn extends_and_include_resolve_through_the_cache<S: Strategy>() {
    let dir = dir_with(&[
        (
            "base.html",
            "<title>{% block title %}{% endblock %}</title>{% block body %}{% endblock %}",
        ),
        (
            "page.html",
            r#"{% extends "base.html" %}{% block title %}{{ title }}{% endblock %}{% block body %}{% include "partials/nav.html" %}{% endblock %}"#,
        ),
        ("partials/nav.html", "<nav>{{ title|upper }}</nav>"),
        ("broken.html", r#"{% include "absent.html" %}"#),
        (
            "choice.html",
            r#"{% include ["absent.html", "partials/alt.html"] %}"#,
        ),
        ("partials/alt.html", "alt"),
        ("outer.html", r#"[{% include "inner.html" %}]"#),
        ("inner.html", r#"({% include "partials/alt.html" %})"#),
    ]);
    let cache = cache_over::<S>(&[dir.path()]);
    let mut reader = cache.reader();
    let want = "<title>Home</title><nav>HOME</nav>";
    // Dependencies are not cached yet: the cache loads them while rendering.
    assert_eq!(
        reader
            .render("page.html", &json!({"title": "Home"}))
            .unwrap(),
        want
    );
    assert_eq!(cache.len(), 3);
    for _ in 0..5 {
        assert_eq!(
            reader
                .render("page.html", &json!({"title": "Home"}))
                .unwrap(),
            want
        );
    }
    for name in ["base.html", "page.html", "partials/nav.html"] {
        assert_eq!(cache.engine().compiles_of(name), 1, "{name}");
    }
    // A dependency that changed and is invalidated is picked up by its dependents.
    write_files(
        dir.path(),
        &[("partials/nav.html", "<nav>{{ title|lower }}</nav>")],
    );
    assert!(cache.invalidate("partials/nav.html"));
    assert_eq!(
        reader
            .render("page.html", &json!({"title": "Home"}))
            .unwrap(),
        "<title>Home</title><nav>home</nav>"
    );
    assert_eq!(cache.engine().compiles_of("page.html"), 1);
    // The first existing choice of an include list; an include inside an included template.
    assert_eq!(reader.render("outer.html", &()).unwrap(), "[(alt)]");
    cache.invalidate("partials/alt.html");
    assert_eq!(reader.render("choice.html", &()).unwrap(), "alt");
    // A missing dependency is reported as such, naming the template that needs it.
    match reader.render("broken.html", &()) {
        Err(RenderError::Dependency { template, source }) => {
            assert_eq!(template, "broken.html");
            assert!(source.is_not_found());
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn compile_errors_are_not_cached<S: Strategy>() {
    let dir = dir_with(&[("bad.html", "{% if %}")]);
    let cache = cache_over::<S>(&[dir.path()]);
    match cache.reader().get("bad.html") {
        Err(GetError::Compile { name, .. }) => assert_eq!(name, "bad.html"),
        other => panic!("unexpected {other:?}"),
    }
    write_files(dir.path(), &[("bad.html", "{% if true %}fixed{% endif %}")]);
    assert_eq!(cache.render("bad.html", &()).unwrap(), "fixed");
}

fn render_errors_are_reported<S: Strategy>() {
    let dir = dir_with(&[("f.html", "{{ 1 | no_such_filter }}")]);
    let cache = cache_over::<S>(&[dir.path()]);
    // minijinja checks filters when rendering.
    match cache.render("f.html", &()) {
        Err(RenderError::Render(e)) => assert!(e.to_string().contains("no_such_filter"), "{e}"),
        Err(RenderError::Get(GetError::Compile { .. })) => {}
        other => panic!("unexpected {other:?}"),
    }
}

/// MiniJinja whose compile of `slow.html` announces itself and waits for a go-ahead.
struct Gated {
    inner: MiniJinja,
    started: Mutex<mpsc::Sender<()>>,
    release: Mutex<mpsc::Receiver<()>>,
}

impl Engine for Gated {
    type Generation = <MiniJinja as Engine>::Generation;
    type Compiled = <MiniJinja as Engine>::Compiled;
    type Error = minijinja::Error;
    type RenderError = minijinja::Error;

    fn new_generation(&self) -> Self::Generation {
        self.inner.new_generation()
    }

    fn compile(
        &self,
        generation: &Self::Generation,
        name: &str,
        source: String,
    ) -> Result<Self::Compiled, minijinja::Error> {
        if name == "slow.html" {
            let _ = self.started.lock().unwrap().send(());
            let _ = self
                .release
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(5));
        }
        self.inner.compile(generation, name, source)
    }

    fn forget(&self, generation: &Self::Generation, name: &str, compiled: &Self::Compiled) {
        self.inner.forget(generation, name, compiled);
    }

    fn render<C: serde::Serialize + ?Sized>(
        &self,
        generation: &Self::Generation,
        name: &str,
        compiled: &Self::Compiled,
        context: &C,
    ) -> Result<String, RenderFailure<minijinja::Error>> {
        self.inner.render(generation, name, compiled, context)
    }
}

fn compile_started_before_reset_is_not_published<S: Strategy>() {
    let dir = dir_with(&[("slow.html", "old")]);
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel();
    let engine = Gated {
        inner: MiniJinja::new(),
        started: Mutex::new(started_tx),
        release: Mutex::new(release_rx),
    };
    let cache: TemplateCache<Gated, S> =
        TemplateCache::new(engine, FileSystemLoader::new([dir.path()]));
    std::thread::scope(|s| {
        let early = s.spawn(|| cache.render("slow.html", &()).unwrap());
        started_rx.recv().unwrap(); // the compile of the old source is under way
        write_files(dir.path(), &[("slow.html", "new")]);
        // Lock-free: the reset lands now. Blocking: it waits for the compile (under the lock).
        let reset = s.spawn(|| cache.reset());
        std::thread::sleep(Duration::from_millis(50));
        release_tx.send(()).unwrap();
        // The request that started before the reset may see the old source...
        assert_eq!(early.join().unwrap(), "old");
        reset.join().unwrap();
    });
    // ...but the new generation never does.
    release_tx.send(()).unwrap(); // the new generation's compile of slow.html must not wait
    assert_eq!(cache.generation(), 1);
    let mut reader = cache.reader();
    assert_eq!(reader.get("slow.html").unwrap().generation(), 1);
    assert_eq!(reader.render("slow.html", &()).unwrap(), "new");
}

fn thread_safety<S: Strategy>() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<TemplateCache<MiniJinja, S>>();
    send::<unlocked::template::Reader<'static, MiniJinja, S>>();
    send_sync::<unlocked::template::Template<'static, MiniJinja>>();
    send_sync::<GetError<minijinja::Error>>();
    // A cache shared by scoped threads, one reader each.
    let dir = dir_with(&[("t.html", "{{ n }}")]);
    let cache: TemplateCache<MiniJinja, S> =
        TemplateCache::new(MiniJinja::new(), FileSystemLoader::new([dir.path()]));
    std::thread::scope(|s| {
        for n in 0..4 {
            let cache = &cache;
            s.spawn(move || {
                let mut reader = cache.reader();
                for _ in 0..if cfg!(miri) { 5 } else { 100 } {
                    assert_eq!(
                        reader.render("t.html", &json!({ "n": n })).unwrap(),
                        n.to_string()
                    );
                }
            });
        }
    });
}

/// Issue 14: names holding quotes. `extends` of such a name must work while the cache is cold.
fn quoted_names_extend_while_cold<S: Strategy>() {
    let dir = dir_with(&[
        ("don't.html", "<b>{% block x %}{% endblock %}</b>"),
        (
            "page.html",
            r#"{% extends "don't.html" %}{% block x %}hi{% endblock %}"#,
        ),
        ("say \"hi\".html", "quoted"),
        ("dq.html", r#"{% include 'say "hi".html' %}"#),
    ]);
    let cache = cache_over::<S>(&[dir.path()]);
    assert_eq!(cache.render("page.html", &()).unwrap(), "<b>hi</b>");
    assert_eq!(cache.render("dq.html", &()).unwrap(), "quoted");
    assert_eq!(cache.engine().compiles_of("don't.html"), 1);
}

/// Issue 14: the first existing choice of an include list wins even if its name holds a quote.
fn quoted_names_in_include_lists<S: Strategy>() {
    let dir = dir_with(&[
        ("a's.html", "A"),
        ("b.html", "B"),
        ("choice.html", r#"{% include ["a's.html", "b.html"] %}"#),
        (
            "missing-first.html",
            r#"{% include ["gone's.html", "b.html"] %}"#,
        ),
    ]);
    let cache = cache_over::<S>(&[dir.path()]);
    let mut reader = cache.reader();
    assert_eq!(reader.render("choice.html", &()).unwrap(), "A");
    assert_eq!(reader.render("choice.html", &()).unwrap(), "A");
    assert_eq!(reader.render("missing-first.html", &()).unwrap(), "B");
    assert_eq!(cache.engine().compiles_of("b.html"), 1);
}

strategy_tests!(
    quoted_names_extend_while_cold,
    quoted_names_in_include_lists,
    thread_safety,
    compile_started_before_reset_is_not_published,
    hits_compile_once,
    first_directory_wins,
    miss_lists_every_path_tried,
    misses_are_cached,
    reset_starts_a_new_generation,
    invalidate_one_name,
    autoreload_notices_changes,
    autoreload_waits_for_its_interval,
    hostile_names_are_refused,
    extends_and_include_resolve_through_the_cache,
    compile_errors_are_not_cached,
    render_errors_are_reported,
);
