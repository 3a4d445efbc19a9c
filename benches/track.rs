//! Benchmarks to track the hot operation of every component across changes, in both
//! strategies: small and fast, so CI can run them (modelled on arc-swap's `benches/track.rs`).
//!
//! * `track/<strategy>/quiet/*`: one thread, nothing else running.
//! * `track/<strategy>/background/*`: the same while one background thread keeps writing to
//!   the same stores (other sessions and records than the measured ones, the same template
//!   cache), so shared writes and lock hand-offs show up.
//! * `track/lock/*`: acquire + release of a lock level, quiet.
//!
//! Operations: `template_hit` (a per-thread `Reader` finding a cached template),
//! `session_load_save` (load a session by its cookie, bump a counter with `Session::update`,
//! save), `model_get`, `model_update` (`ModelStore::update` of one record).
//!
//! ```sh
//! cargo bench --bench track                  # about 20 s
//! cargo bench --bench track -- --quick       # stops each benchmark at significance (CI)
//! cargo bench --bench track -- --test        # runs each benchmark once (a smoke test)
//! ```

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use unlocked::lock::{self, InstanceLock};
use unlocked::model::{Model, ModelStore};
use unlocked::session::SessionStore;
use unlocked::template::{FileSystemLoader, MiniJinja, TemplateCache};
use unlocked::{Blocking, LockFree, Strategy};

#[derive(Clone, Debug)]
struct Row {
    hits: u64,
}

impl Model for Row {
    const APP_LABEL: &'static str = "track";
    const NAME: &'static str = "Row";
}

fn bump(v: Option<&Value>) -> Value {
    json!(v.and_then(Value::as_u64).unwrap_or(0) + 1)
}

/// The stores of one strategy, with two sessions and two records: one for the measured
/// thread, one for the background writer.
struct Env<S: Strategy> {
    _dir: tempfile::TempDir,
    templates: TemplateCache<MiniJinja, S>,
    sessions: SessionStore<S>,
    cookies: [String; 2],
    models: ModelStore<Row, S>,
    pks: [u64; 2],
}

impl<S: Strategy> Env<S> {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::write(dir.path().join("page.html"), "Hello {{ name }}!").expect("write");
        let templates = TemplateCache::new(MiniJinja::new(), FileSystemLoader::new([dir.path()]));
        templates
            .reader()
            .get("page.html")
            .expect("the template compiles");
        let sessions: SessionStore<S> = SessionStore::new();
        let cookies = [0, 1].map(|_| {
            let mut s = sessions.load(None);
            s.insert("user_id", 7);
            s.save().expect("a fresh session saves");
            s.session_key().expect("saved").to_string()
        });
        let models: ModelStore<Row, S> = ModelStore::new();
        let pks = [0, 1].map(|_| models.insert(Row { hits: 0 }).pk());
        Env {
            _dir: dir,
            templates,
            sessions,
            cookies,
            models,
            pks,
        }
    }

    /// One write of the background thread: a session save and a model update on its own
    /// session and record, and a template hit through a reader of its own.
    fn background(&self, reader: &mut unlocked::template::Reader<'_, MiniJinja, S>) {
        let mut s = self.sessions.load(Some(&self.cookies[1]));
        s.update("hits", bump).expect("bump");
        s.save().expect("save");
        self.models
            .update(self.pks[1], |r| r.hits += 1)
            .expect("update");
        black_box(reader.get("page.html").is_ok());
    }
}

fn batch<S: Strategy>(c: &mut Criterion, name: &str, env: &Env<S>) {
    let mut g = c.benchmark_group(name);
    g.bench_function("template_hit", |b| {
        let mut reader = env.templates.reader();
        b.iter(|| black_box(reader.get(black_box("page.html")).is_ok()))
    });
    g.bench_function("session_load_save", |b| {
        b.iter(|| {
            let mut s = env.sessions.load(Some(black_box(&env.cookies[0])));
            s.update("hits", bump).expect("bump");
            s.save().expect("save");
        })
    });
    g.bench_function("model_get", |b| {
        b.iter(|| black_box(env.models.get(black_box(env.pks[0])).map(|r| r.hits)))
    });
    g.bench_function("model_update", |b| {
        b.iter(|| {
            env.models
                .update(black_box(env.pks[0]), |r| r.hits += 1)
                .expect("update")
        })
    });
    g.finish();
}

fn strategy<S: Strategy>(c: &mut Criterion) {
    let env = Env::<S>::new();
    batch(c, &format!("track/{}/quiet", S::KIND.name()), &env);

    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        s.spawn(|| {
            let mut reader = env.templates.reader();
            // Relaxed: a stop flag; one more background write after it flips is harmless.
            while !stop.load(Ordering::Relaxed) {
                env.background(&mut reader);
            }
        });
        batch(c, &format!("track/{}/background", S::KIND.name()), &env);
        stop.store(true, Ordering::Relaxed);
    });
}

fn lock_levels(c: &mut Criterion) {
    let mut g = c.benchmark_group("track/lock");
    g.bench_function("module_lock", |b| {
        b.iter(|| drop(black_box(unlocked::module_lock!().lock())))
    });
    g.bench_function("class", |b| {
        b.iter(|| drop(black_box(lock::class::<Row>().lock())))
    });
    let instance = InstanceLock::new(0_u64);
    g.bench_function("instance", |b| b.iter(|| black_box(*instance.lock())));
    g.finish();
}

fn track(c: &mut Criterion) {
    strategy::<LockFree>(c);
    strategy::<Blocking>(c);
    lock_levels(c);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(30);
    targets = track
}
criterion_main!(benches);
