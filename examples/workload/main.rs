//! The main job: web-like request handling over every component, on every core.
//!
//! ```sh
//! cargo run --release --example workload                      # defaults: every core, 3 s per configuration
//! cargo run --release --example workload -- --threads 4 --seconds 5 --write-ratio 0.5
//! cargo run --release --example workload -- --config lock-free,blocking --json result.json
//! # several OS processes sharing sessions in Redis and models in PostgreSQL:
//! cargo run --release --features redis,postgres --example workload -- \
//!     --processes 4 --sessions-backend redis --models-backend postgres
//! ```
//!
//! Each simulated request, on one of N threads:
//!
//! 1. loads a session from a [`SessionStore`] (a pool of `--sessions` cookies);
//! 2. picks a model record (a pool of `--records`) and either reads it
//!    ([`ModelStore::get`]) or increments its `views` ([`ModelStore::update`], which retries
//!    on a conflict), `--write-ratio` of the time;
//! 3. renders a page through a [`TemplateCache`] (minijinja templates that `extends` a base
//!    and `include` a navigation bar and a footer), with the session's user and the record in
//!    the context, and checks the page shows both;
//! 4. bumps the session's `hits` with [`Session::update`] and saves the session (a concurrent
//!    save of the same session is merged, not lost).
//!
//! The same loop runs for every configuration: every component `LockFree`, every component
//! `Blocking`, and mixes where one component is `Blocking` and the others `LockFree`. The
//! request loop is written once, generic over the three strategy parameters. Each
//! configuration's `--seconds` are cut into `--rounds` slices; round r runs one slice of every
//! configuration in turn (starting from a different one each round), on the same stores, so a
//! slow or fast stretch of a shared machine falls on all of them alike. The output gives each
//! round's requests/s and the fastest configuration per round.
//!
//! Afterwards the counts are verified exactly: every session's `hits` must equal the number of
//! saves that bumped it, every record's `views` the number of updates that committed on it.
//! Any difference is a lost update and the example exits with a failure status. A last
//! section drives the five lock levels of `unlocked::lock` (skip it with `--lock-millis 0`).
//!
//! With `--processes N` (N > 1), `--sessions-backend redis` or `--models-backend postgres`,
//! the state is shared between OS processes instead (see `remote.rs`, features `redis` and
//! `postgres`): the example re-executes itself N times as workers, every worker runs the same
//! request loop on a tokio runtime against one Redis and one PostgreSQL, and the parent checks
//! the stores against the increments every worker acknowledged.

mod alloc;
mod locks;
#[cfg(all(feature = "redis", feature = "postgres"))]
mod remote;

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{Value, json};
use unlocked::model::{Model, ModelStore};
use unlocked::session::{ConflictPolicy, Session, SessionStore};
use unlocked::template::{FileSystemLoader, MiniJinja, TemplateCache};
use unlocked::{Blocking, LockFree, Strategy};

/// mimalloc unless `UNLOCKED_WORKLOAD_ALLOCATOR=system` (see `alloc.rs`: on glibc the workload
/// measured glibc's arena lock more than the strategies).
#[global_allocator]
static GLOBAL: alloc::WorkloadAlloc = alloc::WorkloadAlloc;

#[derive(Parser, Debug, Serialize)]
#[command(
    about = "Web-like request handling over unlocked's template cache, session store and \
                   model store, once per strategy configuration, with exact lost-update checks"
)]
struct Args {
    /// Worker threads (default: the machine's available parallelism).
    #[arg(long)]
    threads: Option<usize>,
    /// How long each configuration runs, in seconds (over all rounds).
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Slices each configuration's time is cut into. Round r runs one slice of every
    /// configuration in turn, so a slow or fast stretch of a shared machine falls on all of
    /// them rather than on the one that happened to run then; 1 runs each configuration in
    /// one piece, one after the other.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Share of requests that update their model record (the rest read it), 0.0 to 1.0.
    #[arg(long, default_value_t = 0.25)]
    write_ratio: f64,
    /// Distinct sessions (cookies) the requests spread over; fewer means more save conflicts.
    #[arg(long, default_value_t = 32)]
    sessions: usize,
    /// Distinct model records the requests spread over; fewer means more update conflicts.
    #[arg(long, default_value_t = 256)]
    records: usize,
    /// Write the results as JSON to this file.
    #[arg(long, value_name = "PATH")]
    json: Option<std::path::PathBuf>,
    /// Run only these configurations (comma-separated; default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    config: Vec<ConfigName>,
    /// How a session save that meets a newer record is resolved. `last-writer-wins` is
    /// Django's behaviour: the check then reports the visits it lost.
    #[arg(long, value_enum, default_value_t = Policy::Merge)]
    conflict_policy: Policy,
    /// Milliseconds per case of the lock-level section; 0 skips it.
    #[arg(long, default_value_t = 300)]
    lock_millis: u64,
    /// Worker processes sharing the sessions and models (more than 1 needs both remote back
    /// ends: `--sessions-backend redis --models-backend postgres`).
    #[arg(long, default_value_t = 1)]
    processes: usize,
    /// Where sessions live: in each process's memory, or in Redis at `UNLOCKED_REDIS_URL`
    /// (default redis://127.0.0.1:6379; feature `redis`).
    #[arg(long, value_enum, default_value_t = SessionsBackend::Memory)]
    sessions_backend: SessionsBackend,
    /// Where model records live: in each process's memory, or in PostgreSQL at
    /// `UNLOCKED_DATABASE_URL` (default postgres://root@127.0.0.1:5432/test; feature
    /// `postgres`).
    #[arg(long, value_enum, default_value_t = ModelsBackend::Memory)]
    models_backend: ModelsBackend,
    /// Internal: run as worker I of a multi-process run (the parent passes the plan on stdin).
    #[arg(long, hide = true, value_name = "I")]
    worker: Option<usize>,
    /// Internal, for testing the check: worker 0 reports one session hit and one model view
    /// as acknowledged that it never wrote, so the parent must find both missing.
    #[arg(long, hide = true)]
    inject_loss: bool,
}

impl Args {
    /// Whether the state is shared between processes (the `remote` path).
    fn remote(&self) -> bool {
        self.processes > 1
            || self.worker.is_some()
            || self.sessions_backend != SessionsBackend::Memory
            || self.models_backend != ModelsBackend::Memory
    }
}

/// Where the sessions live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
enum SessionsBackend {
    /// `SessionStore` in each process's memory.
    Memory,
    /// `RedisSessionStore`, shared by every process.
    Redis,
}

impl SessionsBackend {
    fn spelled(self) -> &'static str {
        match self {
            SessionsBackend::Memory => "memory",
            SessionsBackend::Redis => "redis",
        }
    }
}

impl ModelsBackend {
    fn spelled(self) -> &'static str {
        match self {
            ModelsBackend::Memory => "memory",
            ModelsBackend::Postgres => "postgres",
        }
    }
}

/// Where the model records live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
enum ModelsBackend {
    /// `ModelStore` in each process's memory.
    Memory,
    /// `PgModelStore`, shared by every process.
    Postgres,
}

/// The session store's conflict policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Policy {
    /// `ConflictPolicy::MergeChangedKeys` (the default): replay this request's changes.
    Merge,
    /// `ConflictPolicy::Reject`: the save fails with a conflict.
    Reject,
    /// `ConflictPolicy::LastWriterWins`: Django's; concurrent changes are lost.
    LastWriterWins,
}

impl Policy {
    fn policy(self) -> ConflictPolicy {
        match self {
            Policy::Merge => ConflictPolicy::MergeChangedKeys,
            Policy::Reject => ConflictPolicy::Reject,
            Policy::LastWriterWins => ConflictPolicy::LastWriterWins,
        }
    }
}

/// Which strategy each component runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
enum ConfigName {
    /// Every component `LockFree`.
    LockFree,
    /// Every component `Blocking`.
    Blocking,
    /// `Blocking` models, `LockFree` sessions and templates.
    BlockingModels,
    /// `Blocking` sessions, `LockFree` templates and models.
    BlockingSessions,
    /// `Blocking` templates, `LockFree` sessions and models.
    BlockingTemplates,
}

impl ConfigName {
    const ALL: [ConfigName; 5] = [
        ConfigName::LockFree,
        ConfigName::Blocking,
        ConfigName::BlockingModels,
        ConfigName::BlockingSessions,
        ConfigName::BlockingTemplates,
    ];

    fn name(self) -> &'static str {
        match self {
            ConfigName::LockFree => "lock-free",
            ConfigName::Blocking => "blocking",
            ConfigName::BlockingModels => "blocking-models",
            ConfigName::BlockingSessions => "blocking-sessions",
            ConfigName::BlockingTemplates => "blocking-templates",
        }
    }

    /// Builds this configuration's stores (templates, sessions, models strategies).
    fn prepare<'a>(self, setup: &Setup<'a>) -> Box<dyn ConfigRun + 'a> {
        match self {
            ConfigName::LockFree => prepare::<LockFree, LockFree, LockFree>(self, setup),
            ConfigName::Blocking => prepare::<Blocking, Blocking, Blocking>(self, setup),
            ConfigName::BlockingModels => prepare::<LockFree, LockFree, Blocking>(self, setup),
            ConfigName::BlockingSessions => prepare::<LockFree, Blocking, LockFree>(self, setup),
            ConfigName::BlockingTemplates => prepare::<Blocking, LockFree, LockFree>(self, setup),
        }
    }
}

/// A model record: an article whose page views the requests count.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
struct Article {
    title: String,
    author: String,
    views: u64,
}

impl Model for Article {
    const APP_LABEL: &'static str = "blog";
    const NAME: &'static str = "Article";
}

/// The pages a request renders; each extends `base.html`, which includes `nav.html`.
const PAGES: [&str; 3] = ["article.html", "profile.html", "list.html"];

const TEMPLATES: [(&str, &str); 6] = [
    (
        "base.html",
        "<!doctype html><html><head><title>{% block title %}site{% endblock %}</title></head>\
         <body class=\"{{ user.theme }}\">{% include \"nav.html\" %}\
         <main>{% block content %}{% endblock %}</main>{% include \"footer.html\" %}</body></html>",
    ),
    (
        "nav.html",
        "<nav data-user=\"{{ user.id }}\">{{ user.name }} · {{ user.hits }} visits</nav>",
    ),
    (
        "footer.html",
        "<footer>rendered by {{ engine }} · {% for t in tags %}{{ t }}{% if not loop.last %}, \
         {% endif %}{% endfor %}</footer>",
    ),
    (
        "article.html",
        "{% extends \"base.html\" %}{% block title %}{{ article.title }}{% endblock %}\
         {% block content %}<article data-record=\"{{ article.pk }}\"><h1>{{ article.title|title }}</h1>\
         <p>by {{ article.author }}, version {{ article.version }}, {{ article.views }} views</p>\
         </article>{% endblock %}",
    ),
    (
        "profile.html",
        "{% extends \"base.html\" %}{% block title %}{{ user.name }}{% endblock %}\
         {% block content %}<section><h1>{{ user.name|upper }}</h1><p>last read: \
         <a data-record=\"{{ article.pk }}\">{{ article.title }}</a></p></section>{% endblock %}",
    ),
    (
        "list.html",
        "{% extends \"base.html\" %}{% block content %}<ul>{% for i in range(5) %}\
         <li data-record=\"{{ article.pk }}\">{{ article.title }} #{{ i }}</li>{% endfor %}</ul>\
         {% endblock %}",
    ),
];

/// What every configuration shares: the template directory and the workload's shape.
struct Setup<'a> {
    args: &'a Args,
    threads: usize,
    /// Each configuration's time in all, over `rounds` slices.
    duration: Duration,
    rounds: usize,
    templates: &'a Path,
}

/// What one configuration measured and verified.
#[derive(Serialize, Default)]
struct Outcome {
    config: &'static str,
    templates: &'static str,
    sessions: &'static str,
    models: &'static str,
    threads: usize,
    session_count: usize,
    record_count: usize,
    seconds: f64,
    requests_per_second: f64,
    /// Requests per second in each round (slice), in round order.
    rounds_requests_per_second: Vec<f64>,
    latency_p50_us: f64,
    latency_p99_us: f64,
    latency_max_us: f64,
    /// What the requests did, summed over the threads.
    #[serde(flatten)]
    counts: Counts,
    /// Sum of every session's `hits` after the run, and what it must be.
    session_hits_counted: u64,
    session_hits_expected: u64,
    /// Sessions whose `hits` differs from the saves that bumped it.
    sessions_wrong: u64,
    /// Sum over sessions of the difference between `hits` and the saves that bumped it.
    session_hits_lost: u64,
    /// Sum of every record's `views` after the run, and what it must be.
    model_views_counted: u64,
    model_views_expected: u64,
    /// Records whose `views` differs from the updates that committed on it.
    records_wrong: u64,
    /// Sum over records of the difference between `views` and the updates committed on it.
    model_views_lost: u64,
}

impl Outcome {
    fn lost_updates(&self) -> u64 {
        self.session_hits_lost + self.model_views_lost
    }

    fn failed(&self) -> bool {
        self.lost_updates() != 0 || self.counts.bad_renders != 0 || self.counts.render_errors != 0
    }
}

/// What requests did; one per thread, summed afterwards.
#[derive(Serialize, serde::Deserialize, Default, Clone, Copy)]
struct Counts {
    requests: u64,
    /// Pages rendered that did not show the session's user and the request's record.
    bad_renders: u64,
    /// Renders that failed with an error.
    render_errors: u64,
    /// Session saves that committed.
    session_saves: u64,
    /// Saves that met a newer record (another request saved the session since this one loaded
    /// it) and were merged onto it (with `last-writer-wins`: overwrote it).
    session_merges: u64,
    /// Saves that failed (none expected unless the policy is `reject`).
    session_save_errors: u64,
    model_reads: u64,
    /// `ModelStore::update` calls that committed.
    model_updates: u64,
    /// Updates whose first attempt met a conflict.
    model_conflicts: u64,
    /// Extra attempts (closure runs beyond the first) over all updates.
    model_retries: u64,
    /// Updates that gave up (retry budget exhausted; none expected).
    model_update_errors: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.requests += o.requests;
        self.bad_renders += o.bad_renders;
        self.render_errors += o.render_errors;
        self.session_saves += o.session_saves;
        self.session_merges += o.session_merges;
        self.session_save_errors += o.session_save_errors;
        self.model_reads += o.model_reads;
        self.model_updates += o.model_updates;
        self.model_conflicts += o.model_conflicts;
        self.model_retries += o.model_retries;
        self.model_update_errors += o.model_update_errors;
    }
}

/// One worker thread's tallies.
struct Tally {
    latency: Histogram<u64>,
    counts: Counts,
    /// Per session: saves that committed a `hits` bump. Per record: updates that committed.
    session_bumps: Vec<u64>,
    record_bumps: Vec<u64>,
}

impl Tally {
    fn new(sessions: usize, records: usize) -> Tally {
        Tally {
            // 1 ns to 60 s, 3 significant digits.
            latency: Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds"),
            counts: Counts::default(),
            session_bumps: vec![0; sessions],
            record_bumps: vec![0; records],
        }
    }

    fn merge(&mut self, other: Tally) {
        self.latency.add(&other.latency).expect("same bounds");
        self.counts.add(&other.counts);
        for (a, b) in self.session_bumps.iter_mut().zip(other.session_bumps) {
            *a += b;
        }
        for (a, b) in self.record_bumps.iter_mut().zip(other.record_bumps) {
            *a += b;
        }
    }
}

/// The template context of one request.
#[derive(Serialize)]
struct Page<'a> {
    user: User<'a>,
    article: ArticleView<'a>,
    engine: &'static str,
    tags: [&'static str; 3],
}

#[derive(Serialize)]
struct User<'a> {
    id: u64,
    name: &'a str,
    theme: &'a str,
    hits: u64,
}

#[derive(Serialize)]
struct ArticleView<'a> {
    pk: u64,
    version: u64,
    title: &'a str,
    author: &'a str,
    views: u64,
}

fn bump(v: Option<&Value>) -> Value {
    json!(v.and_then(Value::as_u64).unwrap_or(0) + 1)
}

/// One configuration's stores and tallies, run in slices (`--rounds`) interleaved with the
/// other configurations' slices and verified once at the end.
trait ConfigRun {
    /// Runs the request loop on fresh threads for `duration` (one round) and records this
    /// round's requests per second.
    fn slice(&mut self, duration: Duration, round: usize, rounds: usize);
    /// Reads every count back from the stores and compares it with what the requests did.
    fn finish(self: Box<Self>) -> Outcome;
}

/// The stores of one strategy combination: `T` templates, `S` sessions, `M` models.
struct Prepared<'a, T: Strategy, S: Strategy, M: Strategy> {
    config: ConfigName,
    args: &'a Args,
    threads: usize,
    cache: TemplateCache<MiniJinja, T>,
    sessions: SessionStore<S>,
    models: ModelStore<Article, M>,
    cookies: Vec<String>,
    pks: Vec<u64>,
    total: Tally,
    elapsed: Duration,
    rounds: Vec<f64>,
}

/// Builds the stores for one configuration and warms the template cache (the run measures
/// hits, as a server does after its first requests).
fn prepare<'a, T: Strategy, S: Strategy, M: Strategy>(
    config: ConfigName,
    setup: &Setup<'a>,
) -> Box<dyn ConfigRun + 'a> {
    let args = setup.args;
    let cache: TemplateCache<MiniJinja, T> =
        TemplateCache::new(MiniJinja::new(), FileSystemLoader::new([setup.templates]));
    let sessions: SessionStore<S> = SessionStore::builder()
        .conflict_policy(args.conflict_policy.policy())
        .build();
    let models: ModelStore<Article, M> = ModelStore::new();

    // The session pool: one cookie per simulated user.
    let cookies: Vec<String> = (0..args.sessions)
        .map(|i| {
            let mut s = sessions.load(None);
            s.insert("user_id", i as u64);
            s.insert("name", format!("user{i}"));
            s.insert("theme", if i % 2 == 0 { "dark" } else { "light" });
            s.save().expect("a fresh session saves");
            s.session_key().expect("saved").to_string()
        })
        .collect();
    let pks: Vec<u64> = (0..args.records)
        .map(|i| {
            models
                .insert(Article {
                    title: format!("article number {i}"),
                    author: format!("author{}", i % 17),
                    views: 0,
                })
                .pk()
        })
        .collect();
    {
        let mut reader = cache.reader();
        let record = models.get(pks[0]).expect("inserted");
        for page in PAGES {
            reader
                .render(page, &page_context(0, "user0", "dark", 0, &record))
                .expect("the templates render");
        }
    }
    let total = Tally::new(cookies.len(), pks.len());
    Box::new(Prepared {
        config,
        args,
        threads: setup.threads,
        cache,
        sessions,
        models,
        cookies,
        pks,
        total,
        elapsed: Duration::ZERO,
        rounds: Vec::new(),
    })
}

impl<T: Strategy, S: Strategy, M: Strategy> ConfigRun for Prepared<'_, T, S, M> {
    fn slice(&mut self, duration: Duration, round: usize, rounds: usize) {
        let threads = self.threads;
        let write_ratio = self.args.write_ratio;
        let stop = AtomicBool::new(false);
        let progress = AtomicU64::new(0);
        let barrier = Barrier::new(threads + 1);
        let bar = ProgressBar::new(duration.as_millis() as u64).with_style(
            ProgressStyle::with_template("{prefix:>28} [{bar:30}] {elapsed:>3} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{} {}/{rounds}", self.config.name(), round + 1));

        let (cache, sessions, models) = (&self.cache, &self.sessions, &self.models);
        let (cookies, pks) = (&self.cookies, &self.pks);
        let (tally, elapsed) = thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let (stop, progress, barrier) = (&stop, &progress, &barrier);
                    scope.spawn(move || {
                        let mut tally = Tally::new(cookies.len(), pks.len());
                        let mut reader = cache.reader();
                        // A different stream every round, the same streams in every
                        // configuration.
                        let seed = 0x5eed_0000 + ((round as u64) << 20) + t as u64;
                        let mut rng = StdRng::seed_from_u64(seed);
                        let mut out = String::new();
                        barrier.wait();
                        // Relaxed: a stop flag; a few requests after it flips are harmless
                        // (they are counted and verified like the others).
                        while !stop.load(Ordering::Relaxed) {
                            let begin = Instant::now();
                            request(
                                &mut rng,
                                &mut tally,
                                &mut out,
                                &mut reader,
                                sessions,
                                models,
                                cookies,
                                pks,
                                write_ratio,
                            );
                            let ns = begin.elapsed().as_nanos() as u64;
                            tally.latency.saturating_record(ns.max(1));
                            tally.counts.requests += 1;
                            if tally.counts.requests % 256 == 0 {
                                // Relaxed: a progress statistic read by the progress bar only.
                                progress.fetch_add(256, Ordering::Relaxed);
                            }
                        }
                        tally
                    })
                })
                .collect();
            barrier.wait();
            let start = Instant::now();
            loop {
                let elapsed = start.elapsed();
                if elapsed >= duration {
                    break;
                }
                thread::sleep((duration - elapsed).min(Duration::from_millis(100)));
                let elapsed = start.elapsed();
                bar.set_position(elapsed.as_millis() as u64);
                // Relaxed: see above.
                let done = progress.load(Ordering::Relaxed);
                bar.set_message(format!("{:.0} req/s", done as f64 / elapsed.as_secs_f64()));
            }
            stop.store(true, Ordering::Relaxed);
            let mut total = Tally::new(cookies.len(), pks.len());
            for h in handles {
                total.merge(h.join().expect("a worker panicked"));
            }
            (total, start.elapsed())
        });
        bar.finish_and_clear();
        self.rounds
            .push(tally.counts.requests as f64 / elapsed.as_secs_f64());
        self.total.merge(tally);
        self.elapsed += elapsed;
    }

    fn finish(self: Box<Self>) -> Outcome {
        let Prepared {
            config,
            threads,
            sessions,
            models,
            cookies,
            pks,
            total,
            elapsed,
            rounds,
            ..
        } = *self;
        let seconds = elapsed.as_secs_f64();
        let mut outcome = Outcome {
            config: config.name(),
            templates: T::KIND.name(),
            sessions: S::KIND.name(),
            models: M::KIND.name(),
            threads,
            session_count: cookies.len(),
            record_count: pks.len(),
            seconds,
            requests_per_second: total.counts.requests as f64 / seconds,
            rounds_requests_per_second: rounds,
            latency_p50_us: total.latency.value_at_quantile(0.50) as f64 / 1e3,
            latency_p99_us: total.latency.value_at_quantile(0.99) as f64 / 1e3,
            latency_max_us: total.latency.max() as f64 / 1e3,
            counts: total.counts,
            ..Outcome::default()
        };
        // Verify every count exactly.
        for (cookie, &expected) in cookies.iter().zip(&total.session_bumps) {
            let counted = sessions
                .load(Some(cookie))
                .get("hits")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            outcome.session_hits_counted += counted;
            outcome.session_hits_expected += expected;
            outcome.sessions_wrong += u64::from(counted != expected);
            outcome.session_hits_lost += counted.abs_diff(expected);
        }
        for (&pk, &expected) in pks.iter().zip(&total.record_bumps) {
            let counted = models.get(pk).map_or(0, |r| r.views);
            outcome.model_views_counted += counted;
            outcome.model_views_expected += expected;
            outcome.records_wrong += u64::from(counted != expected);
            outcome.model_views_lost += counted.abs_diff(expected);
        }
        outcome
    }
}

/// Runs every configuration for `seconds` in all, as `rounds` slices: round `r` runs one
/// slice of each configuration, starting from configuration `r` (mod their number), so a
/// slow or fast stretch of a shared machine falls on every configuration alike instead of on
/// whichever ran then.
fn run_interleaved(configs: &[ConfigName], setup: &Setup<'_>) -> Vec<Outcome> {
    let rounds = setup.rounds;
    let slice = setup.duration.div_f64(rounds as f64);
    let mut runs: Vec<Box<dyn ConfigRun + '_>> = configs.iter().map(|c| c.prepare(setup)).collect();
    for round in 0..rounds {
        for i in 0..runs.len() {
            let k = (round + i) % runs.len();
            runs[k].slice(slice, round, rounds);
        }
    }
    runs.into_iter().map(|run| run.finish()).collect()
}

fn page_context<'a>(
    user_id: u64,
    name: &'a str,
    theme: &'a str,
    hits: u64,
    record: &'a unlocked::model::Versioned<Article>,
) -> Page<'a> {
    Page {
        user: User {
            id: user_id,
            name,
            theme,
            hits,
        },
        article: ArticleView {
            pk: record.pk(),
            version: record.version(),
            title: &record.title,
            author: &record.author,
            views: record.views,
        },
        engine: "minijinja",
        tags: ["rust", "django", "threads"],
    }
}

/// Whether a rendered page shows the session's user (who must be user `s`, the session's
/// index) and record `pk`; `out` is scratch space.
fn page_ok(out: &mut String, html: &str, user_id: u64, s: usize, pk: u64) -> bool {
    out.clear();
    let _ = write!(out, "data-user=\"{user_id}\"");
    let user_ok = html.contains(out.as_str()) && user_id == s as u64;
    out.clear();
    let _ = write!(out, "data-record=\"{pk}\"");
    user_ok && html.contains(out.as_str())
}

/// One request: load the session, read or update a record, render a page, bump the session's
/// counter, save.
#[allow(clippy::too_many_arguments)]
fn request<T: Strategy, S: Strategy, M: Strategy>(
    rng: &mut StdRng,
    tally: &mut Tally,
    out: &mut String,
    reader: &mut unlocked::template::Reader<'_, MiniJinja, T>,
    sessions: &SessionStore<S>,
    models: &ModelStore<Article, M>,
    cookies: &[String],
    pks: &[u64],
    write_ratio: f64,
) {
    let s = rng.random_range(0..cookies.len());
    let r = rng.random_range(0..pks.len());
    let pk = pks[r];

    // 1. The session named by the request's cookie.
    let mut session: Session<'_, S> = sessions.load(Some(&cookies[s]));

    // 2. The model record: an update (retried on conflict) or a read.
    let record = if rng.random_bool(write_ratio) {
        let mut attempts = 0_u64;
        match models.update(pk, |a| {
            attempts += 1;
            a.views += 1;
        }) {
            Ok(record) => {
                tally.counts.model_updates += 1;
                tally.record_bumps[r] += 1;
                tally.counts.model_conflicts += u64::from(attempts > 1);
                tally.counts.model_retries += attempts.saturating_sub(1);
                // Counted: the page renders after the update's pin has ended.
                Some(record.into_arc())
            }
            Err(_) => {
                tally.counts.model_update_errors += 1;
                models.get(pk)
            }
        }
    } else {
        tally.counts.model_reads += 1;
        models.get(pk)
    };
    let record = record.expect("records are never deleted");

    // 3. The page, with the session's user and the record in the context.
    let user_id = session.get("user_id").and_then(Value::as_u64).unwrap_or(0);
    let page = PAGES[(s + r) % PAGES.len()];
    let rendered = {
        let context = page_context(
            user_id,
            session.get("name").and_then(Value::as_str).unwrap_or(""),
            session.get("theme").and_then(Value::as_str).unwrap_or(""),
            session.get("hits").and_then(Value::as_u64).unwrap_or(0),
            &record,
        );
        reader.render(page, &context)
    };
    match rendered {
        Ok(html) => tally.counts.bad_renders += u64::from(!page_ok(out, &html, user_id, s, pk)),
        Err(_) => tally.counts.render_errors += 1,
    }

    // 4. Count the visit in the session and save it.
    let before = session.loaded_version();
    if session.update("hits", bump).is_err() {
        tally.counts.session_save_errors += 1;
        return;
    }
    match session.save() {
        Ok(()) => {
            tally.counts.session_saves += 1;
            tally.session_bumps[s] += 1;
            // A save publishes version + 1 of the record it commits on: a larger jump means
            // other requests saved this session meanwhile and this save was merged onto theirs.
            let after = session.loaded_version();
            if let (Some(b), Some(a)) = (before, after) {
                tally.counts.session_merges += u64::from(a > b + 1);
            }
        }
        Err(_) => tally.counts.session_save_errors += 1,
    }
}

fn print_table(outcomes: &[Outcome]) {
    println!(
        "{:<19} {:<9} {:<9} {:<9} {:>8} {:>7} {:>7} {:>8} {:>7} {:>9} {:>5}",
        "configuration",
        "templates",
        "sessions",
        "models",
        "req/s",
        "p50 µs",
        "p99 µs",
        "s.merged",
        "m.confl",
        "m.retries",
        "lost"
    );
    for o in outcomes {
        println!(
            "{:<19} {:<9} {:<9} {:<9} {:>8.0} {:>7.1} {:>7.1} {:>8} {:>7} {:>9} {:>5}",
            o.config,
            o.templates,
            o.sessions,
            o.models,
            o.requests_per_second,
            o.latency_p50_us,
            o.latency_p99_us,
            o.counts.session_merges,
            o.counts.model_conflicts,
            o.counts.model_retries,
            o.lost_updates()
        );
    }
    println!(
        "s.merged: session saves that found a newer record and were merged onto it (policy \
         `merge`); m.confl / m.retries: model updates that met a conflict / extra attempts; \
         lost: increments missing from the stores (must be 0)"
    );
    println!();
    println!("checks (every count read back from the stores after the run):");
    for o in outcomes {
        println!(
            "  {:<19} {}: {} requests, {} pages checked ({} bad, {} errors)",
            o.config,
            if o.failed() { "FAILED" } else { "ok" },
            o.counts.requests,
            o.counts.requests - o.counts.render_errors,
            o.counts.bad_renders,
            o.counts.render_errors,
        );
        println!(
            "  {:<19} session hits {} {} {} saves ({} of {} sessions wrong, {} failed saves)",
            "",
            o.session_hits_counted,
            eq(o.session_hits_counted, o.session_hits_expected),
            o.session_hits_expected,
            o.sessions_wrong,
            o.session_count,
            o.counts.session_save_errors,
        );
        println!(
            "  {:<19} model views  {} {} {} updates ({} of {} records wrong, {} gave up), {} reads",
            "",
            o.model_views_counted,
            eq(o.model_views_counted, o.model_views_expected),
            o.model_views_expected,
            o.records_wrong,
            o.record_count,
            o.counts.model_update_errors,
            o.counts.model_reads,
        );
    }
}

/// Per round: which configuration was fastest, and all-`LockFree` against all-`Blocking`.
fn print_rounds(outcomes: &[Outcome]) {
    let rounds = outcomes
        .iter()
        .map(|o| o.rounds_requests_per_second.len())
        .min()
        .unwrap_or(0);
    if rounds < 2 || outcomes.len() < 2 {
        return;
    }
    println!();
    println!("per round (req/s; each round ran one slice of every configuration in turn):");
    print!("{:<19}", "configuration");
    for r in 1..=rounds {
        print!(" {:>9}", format!("round {r}"));
    }
    println!();
    for o in outcomes {
        print!("{:<19}", o.config);
        for rate in &o.rounds_requests_per_second[..rounds] {
            print!(" {rate:>9.0}");
        }
        println!();
    }
    let fastest: Vec<&str> = (0..rounds)
        .map(|r| {
            outcomes
                .iter()
                .max_by(|a, b| {
                    a.rounds_requests_per_second[r].total_cmp(&b.rounds_requests_per_second[r])
                })
                .map_or("", |o| o.config)
        })
        .collect();
    print!("{:<19}", "fastest");
    for f in &fastest {
        print!(
            " {:>9}",
            f.strip_prefix("blocking-").map_or(*f, |rest| rest)
        );
    }
    println!();
    let find = |name: ConfigName| outcomes.iter().find(|o| o.config == name.name());
    if let (Some(lf), Some(bl)) = (find(ConfigName::LockFree), find(ConfigName::Blocking)) {
        print!("{:<19}", "lock-free/blocking");
        for r in 0..rounds {
            let ratio = lf.rounds_requests_per_second[r] / bl.rounds_requests_per_second[r];
            print!(" {ratio:>9.2}");
        }
        println!();
    }
    let wins = fastest
        .iter()
        .filter(|f| **f == ConfigName::LockFree.name())
        .count();
    println!(
        "all-lock-free fastest in {wins} of {rounds} rounds (\"models\", \"sessions\", \
         \"templates\": the configuration with that component blocking)"
    );
}

fn eq(a: u64, b: u64) -> &'static str {
    if a == b { "==" } else { "!=" }
}

/// The templates, written to a fresh directory (removed when the value drops).
fn write_templates() -> Result<tempfile::TempDir, String> {
    let dir = tempfile::tempdir()
        .map_err(|e| format!("cannot create a directory for the templates: {e}"))?;
    for (name, source) in TEMPLATES {
        std::fs::write(dir.path().join(name), source)
            .map_err(|e| format!("cannot write template {name}: {e}"))?;
    }
    Ok(dir)
}

/// Several processes, or a remote back end: both back ends must be remote (memory stores are
/// private to each process, so the parent could not check them), and the example must be
/// built with the features of both.
fn remote_main(args: &Args, threads: usize, configs: &[ConfigName]) -> ExitCode {
    if args.sessions_backend == SessionsBackend::Memory
        && args.models_backend == ModelsBackend::Memory
    {
        eprintln!(
            "--processes {}: worker processes share state only through remote stores (a memory \
             store is private to its process); add --sessions-backend redis --models-backend \
             postgres",
            args.processes
        );
        return ExitCode::from(2);
    }
    if args.sessions_backend != SessionsBackend::Redis
        || args.models_backend != ModelsBackend::Postgres
    {
        eprintln!(
            "--sessions-backend {} with --models-backend {} is not supported: a remote run \
             keeps both in servers that every process shares; give --sessions-backend redis \
             --models-backend postgres (or neither, for the in-memory run)",
            args.sessions_backend.spelled(),
            args.models_backend.spelled()
        );
        return ExitCode::from(2);
    }
    if args.processes == 0 {
        eprintln!("--processes must be at least 1");
        return ExitCode::from(2);
    }
    #[cfg(all(feature = "redis", feature = "postgres"))]
    {
        if let Some(index) = args.worker {
            return remote::worker(args, index, threads, configs);
        }
        remote::parent(args, threads, configs)
    }
    #[cfg(not(all(feature = "redis", feature = "postgres")))]
    {
        let _ = (threads, configs);
        eprintln!(
            "sessions in Redis and models in PostgreSQL need features this build lacks: \
             rebuild with --features redis,postgres, e.g.\n  cargo run --release --features \
             redis,postgres --example workload -- --processes {} --sessions-backend redis \
             --models-backend postgres",
            args.processes.max(1)
        );
        ExitCode::from(2)
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !(0.0..=1.0).contains(&args.write_ratio) {
        eprintln!(
            "--write-ratio must be between 0.0 and 1.0 (got {})",
            args.write_ratio
        );
        return ExitCode::from(2);
    }
    if args.sessions == 0 || args.records == 0 {
        eprintln!("--sessions and --records must be at least 1");
        return ExitCode::from(2);
    }
    if !(args.seconds.is_finite() && args.seconds > 0.0) {
        eprintln!("--seconds must be a positive number (got {})", args.seconds);
        return ExitCode::from(2);
    }
    if args.rounds == 0 {
        eprintln!("--rounds must be at least 1");
        return ExitCode::from(2);
    }
    let threads = args
        .threads
        .unwrap_or_else(|| thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1);
    let configs: Vec<ConfigName> = if args.config.is_empty() {
        ConfigName::ALL.to_vec()
    } else {
        args.config.clone()
    };

    if args.remote() {
        // The remote path picks its own default (`--config` there sets the templates' strategy).
        return remote_main(&args, threads, &args.config);
    }

    let dir = match write_templates() {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let setup = Setup {
        args: &args,
        threads,
        duration: Duration::from_secs_f64(args.seconds),
        rounds: args.rounds,
        templates: dir.path(),
    };

    println!(
        "unlocked workload: {threads} threads, {} s per configuration in {} interleaved \
         rounds, write ratio {}, {} sessions, {} records",
        args.seconds, args.rounds, args.write_ratio, args.sessions, args.records
    );
    println!(
        "request: load session, read or update a record, render a page (extends + 2 includes), \
         bump the session's hits, save"
    );
    println!(
        "allocator: {} (set {}=system or =mimalloc to choose)",
        alloc::name(),
        alloc::VARIABLE.to_string_lossy()
    );
    println!();
    let outcomes = run_interleaved(&configs, &setup);
    print_table(&outcomes);
    print_rounds(&outcomes);
    let mut failed = outcomes.iter().any(Outcome::failed);

    let lock_outcomes = if args.lock_millis > 0 {
        println!();
        let (outcomes, lost) = locks::run(threads, Duration::from_millis(args.lock_millis));
        failed |= lost;
        outcomes
    } else {
        Vec::new()
    };

    if let Some(path) = &args.json {
        let report = json!({
            "threads": threads,
            "available_parallelism": thread::available_parallelism().map_or(0, |n| n.get()),
            "allocator": alloc::name(),
            "args": &args,
            "configurations": &outcomes,
            "lock_levels": &lock_outcomes,
            "passed": !failed,
        });
        let text = serde_json::to_string_pretty(&report).expect("serializable");
        if let Err(e) = std::fs::write(path, text + "\n") {
            eprintln!("cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("\nresults written to {}", path.display());
    }

    if failed {
        eprintln!("\nFAILED: a count did not match (lost update or bad page): see the checks");
        ExitCode::FAILURE
    } else {
        println!("\nall counts exact: no lost update, every page showed its user and record");
        ExitCode::SUCCESS
    }
}
