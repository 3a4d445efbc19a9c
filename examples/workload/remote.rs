//! Several OS processes sharing sessions in Redis and model records in PostgreSQL (features
//! `redis` and `postgres`).
//!
//! The parent creates the run's sessions (under a run-unique key prefix) and records (in a
//! run-unique table), re-executes this example `--processes` times with a hidden `--worker I`
//! and the same settings, and talks to each worker over its stdin and stdout, one JSON value
//! per line:
//!
//! ```text
//! parent → worker (stdin):   the plan {prefix, table, cookies, pks}    then  "go"
//! worker → parent (stdout):  {"ready": true}                           then  its report
//! ```
//!
//! Every worker connects and warms its template cache, says it is ready; the parent starts
//! them together; each runs `--threads` tokio tasks (on as many runtime threads) doing the
//! same request as the in-memory loop for `--seconds`, then reports what its requests did,
//! per session and per record: increments acknowledged (the store answered `Ok`) and
//! increments in doubt (the store answered `InDoubt`: the connection broke and it could not
//! tell whether the write landed). After every worker exited, the parent reads each session's
//! `hits` from Redis and each record's `views` from PostgreSQL and checks, per session and per
//! record, `acknowledged ≤ stored ≤ acknowledged + in doubt`. Below is a lost update, above an
//! increment applied twice (or one nobody asked for). Then it deletes the run's sessions and
//! drops its table.

use std::io::{BufRead, BufReader, Write as _};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::ValueEnum;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use unlocked::model::{PgModelStore, StoreError as ModelError, UpdateError, Versioned};
use unlocked::session::{RedisSessionStore, SaveError, StoreError as SessionError};
use unlocked::template::{FileSystemLoader, MiniJinja, TemplateCache};
use unlocked::{Blocking, LockFree, Strategy};

use crate::{Args, Article, ConfigName, Counts, PAGES, bump, page_context, page_ok};

/// The default Redis, when `UNLOCKED_REDIS_URL` is not set.
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
/// The default PostgreSQL, when `UNLOCKED_DATABASE_URL` is not set.
const DEFAULT_DATABASE_URL: &str = "postgres://root@127.0.0.1:5432/test";
/// How long the parent waits for every worker to connect and say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long past `--seconds` the parent waits for the reports before it kills the workers.
const REPORT_GRACE: Duration = Duration::from_secs(60);

fn redis_url() -> String {
    std::env::var("UNLOCKED_REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.to_owned())
}

fn database_url() -> String {
    std::env::var("UNLOCKED_DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned())
}

/// What the parent hands every worker on its stdin.
#[derive(Serialize, Deserialize)]
struct Plan {
    /// The run's Redis key prefix.
    prefix: String,
    /// The run's table.
    table: String,
    /// The session keys (cookies), one per simulated user, in order.
    cookies: Vec<String>,
    /// The records' primary keys, in order.
    pks: Vec<u64>,
}

/// What requests did in a worker, beyond the in-memory loop's counts.
#[derive(Serialize, Deserialize, Default, Clone, Copy)]
struct RemoteCounts {
    #[serde(flatten)]
    counts: Counts,
    /// Session loads that failed (the request stopped there).
    session_load_errors: u64,
    /// Saves the store answered with `InDoubt`: maybe landed, maybe not.
    session_in_doubt: u64,
    /// Model reads that failed (the request stopped there).
    model_read_errors: u64,
    /// Updates the store answered with `InDoubt`.
    model_in_doubt: u64,
    /// Failures that are no weather (connection, in doubt, a busy session) but a bug or a
    /// broken set-up: a refused command, a corrupt record, a vanished session or record. Any
    /// fails the run.
    hard_errors: u64,
}

impl RemoteCounts {
    fn add(&mut self, o: &RemoteCounts) {
        self.counts.add(&o.counts);
        self.session_load_errors += o.session_load_errors;
        self.session_in_doubt += o.session_in_doubt;
        self.model_read_errors += o.model_read_errors;
        self.model_in_doubt += o.model_in_doubt;
        self.hard_errors += o.hard_errors;
    }
}

/// One worker's report: its counts, and per session / per record what it acknowledged and
/// what stayed in doubt.
#[derive(Serialize, Deserialize)]
struct WorkerReport {
    worker: usize,
    pid: u32,
    threads: usize,
    seconds: f64,
    counts: RemoteCounts,
    session_acked: Vec<u64>,
    session_doubt: Vec<u64>,
    record_acked: Vec<u64>,
    record_doubt: Vec<u64>,
    /// The latency histogram (nanoseconds) as (value, count) pairs.
    latency: Vec<(u64, u64)>,
    /// The first error any request met, for the log.
    first_error: Option<String>,
}

/// One task's tallies.
struct Tally {
    latency: Histogram<u64>,
    counts: RemoteCounts,
    session_acked: Vec<u64>,
    session_doubt: Vec<u64>,
    record_acked: Vec<u64>,
    record_doubt: Vec<u64>,
    first_error: Option<String>,
}

impl Tally {
    fn new(sessions: usize, records: usize) -> Tally {
        Tally {
            latency: new_histogram(),
            counts: RemoteCounts::default(),
            session_acked: vec![0; sessions],
            session_doubt: vec![0; sessions],
            record_acked: vec![0; records],
            record_doubt: vec![0; records],
            first_error: None,
        }
    }

    fn merge(&mut self, other: Tally) {
        self.latency.add(&other.latency).expect("same bounds");
        self.counts.add(&other.counts);
        add_into(&mut self.session_acked, &other.session_acked);
        add_into(&mut self.session_doubt, &other.session_doubt);
        add_into(&mut self.record_acked, &other.record_acked);
        add_into(&mut self.record_doubt, &other.record_doubt);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn note(&mut self, error: String) {
        if self.first_error.is_none() {
            self.first_error = Some(error);
        }
    }

    /// A session load or save failed with a store error: `true` if it is weather
    /// (connection, busy), `false` (and counted as hard) otherwise. `InDoubt` is the caller's.
    fn session_error(&mut self, e: &SessionError) -> bool {
        self.note(e.to_string());
        let transient = e.is_transient();
        self.counts.hard_errors += u64::from(!transient);
        transient
    }

    fn model_error(&mut self, e: &ModelError) -> bool {
        self.note(e.to_string());
        let transient = e.is_connection();
        self.counts.hard_errors += u64::from(!transient);
        transient
    }
}

fn new_histogram() -> Histogram<u64> {
    // 1 ns to 60 s, 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
}

fn add_into(a: &mut [u64], b: &[u64]) {
    for (a, b) in a.iter_mut().zip(b) {
        *a += b;
    }
}

/// With sessions and models remote, only the template cache lives in each process: a
/// configuration is the templates' strategy (default: `lock-free`).
fn remote_configs(configs: &[ConfigName]) -> Result<Vec<ConfigName>, String> {
    if configs.is_empty() {
        return Ok(vec![ConfigName::LockFree]);
    }
    for c in configs {
        if !matches!(c, ConfigName::LockFree | ConfigName::BlockingTemplates) {
            return Err(format!(
                "--config {}: with sessions in Redis and models in PostgreSQL only the template \
                 cache lives in each process, so the configurations are `lock-free` and \
                 `blocking-templates`",
                c.name()
            ));
        }
    }
    Ok(configs.to_vec())
}

fn runtime(threads: usize) -> Result<tokio::runtime::Runtime, String> {
    let mut builder = if threads > 1 {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a tokio runtime: {e}"))
}

async fn connect_sessions(args: &Args, prefix: &str) -> Result<RedisSessionStore, String> {
    let url = redis_url();
    RedisSessionStore::builder()
        .prefix(prefix)
        .conflict_policy(args.conflict_policy.policy())
        // Left-overs of a run that crashed before its clean-up go by themselves.
        .default_age(Duration::from_secs(3600))
        .connect(&url)
        .await
        .map_err(|e| {
            format!("cannot reach Redis at {url} (set UNLOCKED_REDIS_URL, or start it): {e}")
        })
}

async fn connect_models(table: &str, threads: usize) -> Result<PgModelStore<Article>, String> {
    let url = database_url();
    PgModelStore::builder(table)
        .max_connections(u32::try_from(threads.clamp(2, 16)).unwrap_or(16))
        .application_name("unlocked-workload")
        .connect(&url)
        .await
        .map_err(|e| {
            format!(
                "cannot reach PostgreSQL at {url} (set UNLOCKED_DATABASE_URL, or start it): {e}"
            )
        })
}

// ---------------------------------------------------------------------------------------------
// The worker.

/// Runs as worker `index`: reads the plan, connects, says ready, waits for "go", runs, reports.
pub fn worker(args: &Args, index: usize, threads: usize, configs: &[ConfigName]) -> ExitCode {
    match worker_run(args, index, threads, configs) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("workload worker {index} (pid {}): {e}", std::process::id());
            ExitCode::FAILURE
        }
    }
}

fn worker_run(
    args: &Args,
    index: usize,
    threads: usize,
    configs: &[ConfigName],
) -> Result<(), String> {
    let config = match remote_configs(configs)?.as_slice() {
        [one] => *one,
        _ => return Err("a worker runs exactly one --config".to_owned()),
    };
    let mut stdin = std::io::stdin().lock();
    let mut line = String::new();
    stdin
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the plan: {e}"))?;
    let plan: Plan = serde_json::from_str(&line).map_err(|e| format!("bad plan: {e}"))?;
    if plan.cookies.is_empty() || plan.pks.is_empty() {
        return Err("the plan has no sessions or no records".to_owned());
    }
    let dir = crate::write_templates()?;
    let rt = runtime(threads)?;
    let go = move || -> Result<(), String> {
        let mut line = String::new();
        stdin
            .read_line(&mut line)
            .map_err(|e| format!("cannot read \"go\": {e}"))?;
        match line.trim() {
            "go" => Ok(()),
            other => Err(format!("expected \"go\" from the parent, got {other:?}")),
        }
    };
    let report = match config {
        ConfigName::BlockingTemplates => rt.block_on(worker_async::<Blocking>(
            args,
            index,
            threads,
            plan,
            dir.path(),
            go,
        )),
        _ => rt.block_on(worker_async::<LockFree>(
            args,
            index,
            threads,
            plan,
            dir.path(),
            go,
        )),
    }?;
    say(&report)
}

/// Writes one JSON line on stdout, the channel to the parent.
fn say<T: Serialize>(value: &T) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value)
        .map_err(|e| e.to_string())
        .and_then(|()| writeln!(out).map_err(|e| e.to_string()))
        .and_then(|()| out.flush().map_err(|e| e.to_string()))
        .map_err(|e| format!("cannot write to the parent: {e}"))
}

/// What every task of a worker shares.
struct Ctx<T: Strategy> {
    sessions: RedisSessionStore,
    models: PgModelStore<Article>,
    cache: TemplateCache<MiniJinja, T>,
    cookies: Vec<String>,
    pks: Vec<u64>,
    write_ratio: f64,
}

async fn worker_async<T: Strategy>(
    args: &Args,
    index: usize,
    threads: usize,
    plan: Plan,
    templates: &std::path::Path,
    go: impl FnOnce() -> Result<(), String>,
) -> Result<WorkerReport, String>
where
    TemplateCache<MiniJinja, T>: Send + Sync + 'static,
{
    let sessions = connect_sessions(args, &plan.prefix).await?;
    let models = connect_models(&plan.table, threads).await?;
    let cache: TemplateCache<MiniJinja, T> =
        TemplateCache::new(MiniJinja::new(), FileSystemLoader::new([templates]));
    // Warm the cache, as a server is after its first requests.
    let record = models
        .get(plan.pks[0])
        .await
        .map_err(|e| format!("cannot read record {}: {e}", plan.pks[0]))?
        .ok_or_else(|| format!("record {} is missing", plan.pks[0]))?;
    for page in PAGES {
        cache
            .render(page, &page_context(0, "user0", "dark", 0, &record))
            .map_err(|e| format!("template {page} does not render: {e}"))?;
    }
    let (sessions_n, records_n) = (plan.cookies.len(), plan.pks.len());
    let ctx = Arc::new(Ctx {
        sessions,
        models,
        cache,
        cookies: plan.cookies,
        pks: plan.pks,
        write_ratio: args.write_ratio,
    });

    say(&json!({ "ready": true }))?;
    // Blocking, but nothing else runs on this runtime yet.
    go()?;

    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let tasks: Vec<_> = (0..threads)
        .map(|t| {
            let (ctx, stop) = (Arc::clone(&ctx), Arc::clone(&stop));
            let seed = 0x5eed_0000 + (index as u64) * 1024 + t as u64;
            tokio::spawn(async move {
                let mut tally = Tally::new(sessions_n, records_n);
                let mut rng = StdRng::seed_from_u64(seed);
                let mut out = String::new();
                // Relaxed: a stop flag; requests after it flips are counted like the others.
                while !stop.load(Ordering::Relaxed) {
                    let begin = Instant::now();
                    request(&ctx, &mut rng, &mut tally, &mut out).await;
                    let ns = begin.elapsed().as_nanos() as u64;
                    tally.latency.saturating_record(ns.max(1));
                    tally.counts.counts.requests += 1;
                }
                tally
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = Tally::new(sessions_n, records_n);
    for task in tasks {
        total.merge(
            task.await
                .map_err(|e| format!("a request task failed: {e}"))?,
        );
    }
    let seconds = start.elapsed().as_secs_f64();

    if args.inject_loss && index == 0 {
        // Test of the check: claim one session hit and one model view acknowledged that were
        // never written, as a store that dropped an acknowledged write would.
        total.session_acked[0] += 1;
        total.record_acked[0] += 1;
        total.counts.counts.session_saves += 1;
        total.counts.counts.model_updates += 1;
        eprintln!(
            "workload worker {index}: --inject-loss: reporting 1 session hit and 1 model view \
             that were never written"
        );
    }
    Ok(WorkerReport {
        worker: index,
        pid: std::process::id(),
        threads,
        seconds,
        counts: total.counts,
        session_acked: total.session_acked,
        session_doubt: total.session_doubt,
        record_acked: total.record_acked,
        record_doubt: total.record_doubt,
        latency: total
            .latency
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect(),
        first_error: total.first_error,
    })
}

/// One request, as in memory: load the session, read or update a record, render a page,
/// bump the session's counter, save. Each store call is one or two round trips.
async fn request<T: Strategy>(ctx: &Ctx<T>, rng: &mut StdRng, tally: &mut Tally, out: &mut String) {
    let s = rng.random_range(0..ctx.cookies.len());
    let r = rng.random_range(0..ctx.pks.len());
    let pk = ctx.pks[r];
    let write = rng.random_bool(ctx.write_ratio);

    // 1. The session named by the request's cookie.
    let mut session = match ctx.sessions.load(Some(&ctx.cookies[s])).await {
        Ok(session) => session,
        Err(e) => {
            tally.session_error(&e);
            tally.counts.session_load_errors += 1;
            return;
        }
    };

    // 2. The model record: an update (retried on conflict by the store) or a read.
    let record: Option<Arc<Versioned<Article>>> = if write {
        let mut attempts = 0_u64;
        let updated = ctx
            .models
            .update(pk, |a| {
                attempts += 1;
                a.views += 1;
            })
            .await;
        match updated {
            Ok(record) => {
                tally.counts.counts.model_updates += 1;
                tally.record_acked[r] += 1;
                tally.counts.counts.model_conflicts += u64::from(attempts > 1);
                tally.counts.counts.model_retries += attempts.saturating_sub(1);
                Some(record)
            }
            Err(e) => {
                match e {
                    UpdateError::Backend {
                        error: error @ ModelError::InDoubt { .. },
                    } => {
                        tally.note(error.to_string());
                        tally.counts.model_in_doubt += 1;
                        tally.record_doubt[r] += 1;
                    }
                    UpdateError::Backend { error } => {
                        tally.model_error(&error);
                        tally.counts.counts.model_update_errors += 1;
                    }
                    // No retry budget is set: anything else is a bug.
                    other => {
                        tally.note(format!("{other:?}"));
                        tally.counts.hard_errors += 1;
                        tally.counts.counts.model_update_errors += 1;
                    }
                }
                read(ctx, pk, tally).await
            }
        }
    } else {
        tally.counts.counts.model_reads += 1;
        read(ctx, pk, tally).await
    };
    let Some(record) = record else {
        return;
    };

    // 3. The page, with the session's user and the record in the context.
    let user_id = session.get("user_id").and_then(Value::as_u64).unwrap_or(0);
    let page = PAGES[(s + r) % PAGES.len()];
    let rendered = ctx.cache.render(
        page,
        &page_context(
            user_id,
            session.get("name").and_then(Value::as_str).unwrap_or(""),
            session.get("theme").and_then(Value::as_str).unwrap_or(""),
            session.get("hits").and_then(Value::as_u64).unwrap_or(0),
            &record,
        ),
    );
    match rendered {
        Ok(html) => {
            tally.counts.counts.bad_renders += u64::from(!page_ok(out, &html, user_id, s, pk));
        }
        Err(_) => tally.counts.counts.render_errors += 1,
    }

    // 4. Count the visit in the session and save it.
    let before = session.loaded_version();
    if session.update("hits", bump).is_err() {
        tally.counts.hard_errors += 1;
        tally.counts.counts.session_save_errors += 1;
        return;
    }
    match session.save().await {
        Ok(()) => {
            tally.counts.counts.session_saves += 1;
            tally.session_acked[s] += 1;
            let after = session.loaded_version();
            if let (Some(b), Some(a)) = (before, after) {
                tally.counts.counts.session_merges += u64::from(a > b + 1);
            }
        }
        Err(SaveError::Store(e @ SessionError::InDoubt { .. })) => {
            tally.note(e.to_string());
            tally.counts.session_in_doubt += 1;
            tally.session_doubt[s] += 1;
        }
        Err(SaveError::Store(e)) => {
            tally.session_error(&e);
            tally.counts.counts.session_save_errors += 1;
        }
        // `--conflict-policy reject`: expected, not a failure.
        Err(SaveError::Conflict { .. }) => tally.counts.counts.session_save_errors += 1,
        Err(e) => {
            tally.note(e.to_string());
            tally.counts.hard_errors += 1;
            tally.counts.counts.session_save_errors += 1;
        }
    }
}

async fn read<T: Strategy>(
    ctx: &Ctx<T>,
    pk: u64,
    tally: &mut Tally,
) -> Option<Arc<Versioned<Article>>> {
    match ctx.models.get(pk).await {
        Ok(Some(record)) => Some(record),
        Ok(None) => {
            tally.note(format!("record {pk} vanished"));
            tally.counts.hard_errors += 1;
            tally.counts.model_read_errors += 1;
            None
        }
        Err(e) => {
            tally.model_error(&e);
            tally.counts.model_read_errors += 1;
            None
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The parent.

/// One store's end-of-run check, summed over sessions (or records).
#[derive(Serialize, Default)]
struct Check {
    /// What the store holds: the sum of every session's `hits` (record's `views`).
    stored: u64,
    /// Increments the workers acknowledged.
    acknowledged: u64,
    /// Increments the store reported in doubt.
    in_doubt: u64,
    /// Sum over sessions (records) of `acknowledged - stored` where the store holds less.
    lost: u64,
    /// Sum over sessions (records) of `stored - acknowledged - in doubt` where it holds more.
    extra: u64,
    /// Sessions (records) outside `acknowledged ≤ stored ≤ acknowledged + in doubt`.
    wrong: u64,
    /// Sessions (records) checked.
    items: usize,
}

impl Check {
    fn of(&mut self, stored: u64, acknowledged: u64, in_doubt: u64) {
        self.items += 1;
        self.stored += stored;
        self.acknowledged += acknowledged;
        self.in_doubt += in_doubt;
        let lost = acknowledged.saturating_sub(stored);
        let extra = stored.saturating_sub(acknowledged + in_doubt);
        self.lost += lost;
        self.extra += extra;
        self.wrong += u64::from(lost + extra > 0);
    }

    fn ok(&self) -> bool {
        self.lost == 0 && self.extra == 0
    }
}

/// One worker's line of the table.
#[derive(Serialize)]
struct WorkerSummary {
    worker: usize,
    pid: u32,
    threads: usize,
    seconds: f64,
    requests_per_second: f64,
    latency_p50_us: f64,
    latency_p99_us: f64,
    #[serde(flatten)]
    counts: RemoteCounts,
    first_error: Option<String>,
}

/// What one configuration of a multi-process run measured and verified.
#[derive(Serialize)]
struct RemoteOutcome {
    config: &'static str,
    templates: &'static str,
    sessions: &'static str,
    models: &'static str,
    processes: usize,
    threads_per_process: usize,
    session_count: usize,
    record_count: usize,
    seconds: f64,
    requests_per_second: f64,
    latency_p50_us: f64,
    latency_p99_us: f64,
    latency_max_us: f64,
    #[serde(flatten)]
    counts: RemoteCounts,
    workers: Vec<WorkerSummary>,
    session_hits: Check,
    model_views: Check,
    /// Workers that failed (exit status, no report); the check is then skipped.
    worker_failures: Vec<String>,
    cleanup_errors: Vec<String>,
}

impl RemoteOutcome {
    fn failed(&self) -> bool {
        !self.worker_failures.is_empty()
            || !self.session_hits.ok()
            || !self.model_views.ok()
            || self.counts.counts.bad_renders != 0
            || self.counts.counts.render_errors != 0
            || self.counts.hard_errors != 0
            || self.counts.counts.requests == 0
    }
}

/// The multi-process run: for each configuration, set up, spawn, collect, check, clean up.
pub fn parent(args: &Args, threads: usize, configs: &[ConfigName]) -> ExitCode {
    let configs = match remote_configs(configs) {
        Ok(configs) => configs,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let rt = match runtime(1) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "unlocked workload: {} processes × {threads} threads (tokio tasks), {} s per \
         configuration, write ratio {}, {} sessions in Redis ({}), {} records in PostgreSQL ({})",
        args.processes,
        args.seconds,
        args.write_ratio,
        args.sessions,
        redis_url(),
        args.records,
        database_url()
    );
    println!(
        "request: load session (Redis), read or update a record (PostgreSQL), render a page \
         (extends + 2 includes, per-process cache), bump the session's hits, save (Redis)"
    );
    let mut failed = false;
    let mut outcomes = Vec::new();
    for config in configs {
        println!();
        match run_config(&rt, args, threads, config) {
            Ok(outcome) => {
                print_outcome(&outcome);
                failed |= outcome.failed();
                outcomes.push(outcome);
            }
            Err(e) => {
                eprintln!("{}: {e}", config.name());
                failed = true;
            }
        }
    }

    if let Some(path) = &args.json {
        let report = json!({
            "processes": args.processes,
            "threads_per_process": threads,
            "available_parallelism": thread::available_parallelism().map_or(0, |n| n.get()),
            "args": args,
            "configurations": &outcomes,
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
        eprintln!(
            "\nFAILED: a count did not match the shared stores, a page was wrong, a worker or \
             the set-up failed: see the checks and errors above"
        );
        ExitCode::FAILURE
    } else {
        println!(
            "\nall counts exact across {} processes: every acknowledged increment is in Redis \
             and PostgreSQL, none twice; every page showed its user and record",
            args.processes
        );
        ExitCode::SUCCESS
    }
}

/// A run-unique name part: the parent's pid and the clock, in lower-case hex.
fn run_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{:x}_{:x}",
        std::process::id(),
        nanos as u64 & 0xffff_ffff_ffff
    )
}

fn run_config(
    rt: &tokio::runtime::Runtime,
    args: &Args,
    threads: usize,
    config: ConfigName,
) -> Result<RemoteOutcome, String> {
    let id = run_id();
    let prefix = format!("unlocked:workload:{id}:");
    let table = format!("workload_{id}");
    let (sessions, models, plan) = rt.block_on(setup(args, &prefix, &table))?;
    println!(
        "{}: templates {} in each process; sessions under {prefix}*, records in table {table}",
        config.name(),
        if config == ConfigName::BlockingTemplates {
            "Blocking"
        } else {
            "LockFree"
        },
    );
    let run = run_workers(args, threads, config, &plan);
    let mut outcome = RemoteOutcome {
        config: config.name(),
        templates: if config == ConfigName::BlockingTemplates {
            Blocking::KIND.name()
        } else {
            LockFree::KIND.name()
        },
        sessions: "redis",
        models: "postgres",
        processes: args.processes,
        threads_per_process: threads,
        session_count: plan.cookies.len(),
        record_count: plan.pks.len(),
        seconds: 0.0,
        requests_per_second: 0.0,
        latency_p50_us: 0.0,
        latency_p99_us: 0.0,
        latency_max_us: 0.0,
        counts: RemoteCounts::default(),
        workers: Vec::new(),
        session_hits: Check::default(),
        model_views: Check::default(),
        worker_failures: Vec::new(),
        cleanup_errors: Vec::new(),
    };
    let checked = match run {
        Ok(reports) => {
            summarize(&mut outcome, &reports);
            rt.block_on(check(&sessions, &models, &plan, &reports, &mut outcome))
        }
        Err(failures) => {
            outcome.worker_failures = failures;
            Ok(())
        }
    };
    outcome.cleanup_errors = rt.block_on(cleanup(&sessions, &plan));
    checked.map(|()| outcome)
}

/// Creates the run's sessions and records; returns the parent's handles and the plan. What
/// it created before a failure is removed again.
async fn setup(
    args: &Args,
    prefix: &str,
    table: &str,
) -> Result<(RedisSessionStore, PgModelStore<Article>, Plan), String> {
    let sessions = connect_sessions(args, prefix).await?;
    let models = connect_models(table, 4).await?;
    let mut plan = Plan {
        prefix: prefix.to_owned(),
        table: table.to_owned(),
        cookies: Vec::with_capacity(args.sessions),
        pks: Vec::with_capacity(args.records),
    };
    match populate(args, &sessions, &models, &mut plan).await {
        Ok(()) => Ok((sessions, models, plan)),
        Err(e) => {
            for error in cleanup(&sessions, &plan).await {
                eprintln!("warning: clean-up: {error}");
            }
            Err(e)
        }
    }
}

async fn populate(
    args: &Args,
    sessions: &RedisSessionStore,
    models: &PgModelStore<Article>,
    plan: &mut Plan,
) -> Result<(), String> {
    models
        .migrate()
        .await
        .map_err(|e| format!("cannot create table {}: {e}", plan.table))?;
    for i in 0..args.sessions {
        let mut s = sessions
            .load(None)
            .await
            .map_err(|e| format!("cannot start a session: {e}"))?;
        s.insert("user_id", i as u64);
        s.insert("name", format!("user{i}"));
        s.insert("theme", if i % 2 == 0 { "dark" } else { "light" });
        s.save()
            .await
            .map_err(|e| format!("cannot create a session: {e}"))?;
        plan.cookies
            .push(s.session_key().expect("saved").to_string());
    }
    for i in 0..args.records {
        let record = models
            .insert(Article {
                title: format!("article number {i}"),
                author: format!("author{}", i % 17),
                views: 0,
            })
            .await
            .map_err(|e| format!("cannot insert a record: {e}"))?;
        plan.pks.push(record.pk());
    }
    Ok(())
}

/// The arguments a worker runs with: the parent's settings, one configuration.
fn worker_args(args: &Args, index: usize, threads: usize, config: ConfigName) -> Vec<String> {
    let mut out = vec![
        format!("--worker={index}"),
        format!("--processes={}", args.processes),
        format!("--threads={threads}"),
        format!("--seconds={}", args.seconds),
        format!("--write-ratio={}", args.write_ratio),
        format!("--sessions={}", args.sessions),
        format!("--records={}", args.records),
        format!("--conflict-policy={}", value_name(&args.conflict_policy)),
        format!("--config={}", config.name()),
        format!("--sessions-backend={}", value_name(&args.sessions_backend)),
        format!("--models-backend={}", value_name(&args.models_backend)),
        "--lock-millis=0".to_owned(),
    ];
    if args.inject_loss {
        out.push("--inject-loss".to_owned());
    }
    out
}

/// How a value is spelled on the command line.
fn value_name<T: ValueEnum>(value: &T) -> String {
    value
        .to_possible_value()
        .map(|p| p.get_name().to_owned())
        .unwrap_or_default()
}

/// What a worker's stdout reader thread passes on: a line, or the end of the stream.
type Line = (usize, Option<String>);

/// Spawns the workers, hands out the plan, starts them together, collects their reports.
/// On any failure, kills the workers still running and returns what went wrong.
fn run_workers(
    args: &Args,
    threads: usize,
    config: ConfigName,
    plan: &Plan,
) -> Result<Vec<WorkerReport>, Vec<String>> {
    let exe = std::env::current_exe()
        .map_err(|e| vec![format!("cannot find this program to re-execute it: {e}")])?;
    let plan_line = serde_json::to_string(plan).expect("serializable") + "\n";
    let (tx, rx) = mpsc::channel::<Line>();
    let mut children: Vec<Child> = Vec::with_capacity(args.processes);
    let mut failures = Vec::new();
    for i in 0..args.processes {
        let spawned = Command::new(&exe)
            .args(worker_args(args, i, threads, config))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                failures.push(format!("cannot start worker {i} ({}): {e}", exe.display()));
                break;
            }
        };
        let stdout = child.stdout.take().expect("piped");
        let tx = tx.clone();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(line) => {
                        if tx.send((i, Some(line))).is_err() {
                            return;
                        }
                    }
                    Err(_) => break,
                }
            }
            let _ = tx.send((i, None));
        });
        if let Err(e) = child
            .stdin
            .as_mut()
            .expect("piped")
            .write_all(plan_line.as_bytes())
        {
            failures.push(format!("cannot hand worker {i} its plan: {e}"));
        }
        children.push(child);
        if !failures.is_empty() {
            break;
        }
    }
    drop(tx);
    if !failures.is_empty() {
        return Err(stop_all(children, failures));
    }

    // Every worker connects and warms up, then says it is ready.
    let n = args.processes;
    let mut ready = vec![false; n];
    let deadline = Instant::now() + READY_TIMEOUT;
    while ready.iter().any(|r| !r) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((i, Some(line))) => {
                let ok = serde_json::from_str::<Value>(&line)
                    .is_ok_and(|v| v.get("ready") == Some(&Value::Bool(true)));
                if !ok {
                    failures.push(format!("worker {i} said {line:?} instead of ready"));
                    return Err(stop_all(children, failures));
                }
                ready[i] = true;
            }
            Ok((i, None)) => {
                failures.push(format!(
                    "worker {i} exited before it was ready (see its error above)"
                ));
                return Err(stop_all(children, failures));
            }
            Err(_) => {
                failures.push(format!(
                    "workers not ready after {} s: {:?}",
                    READY_TIMEOUT.as_secs(),
                    (0..n).filter(|&i| !ready[i]).collect::<Vec<_>>()
                ));
                return Err(stop_all(children, failures));
            }
        }
    }

    // All together.
    for (i, child) in children.iter_mut().enumerate() {
        let mut stdin = child.stdin.take().expect("piped");
        if let Err(e) = stdin.write_all(b"go\n") {
            failures.push(format!("cannot start worker {i}: {e}"));
        }
    }
    if !failures.is_empty() {
        return Err(stop_all(children, failures));
    }
    let duration = Duration::from_secs_f64(args.seconds);
    let bar = ProgressBar::new(duration.as_millis() as u64).with_style(
        ProgressStyle::with_template("{prefix:>20} [{bar:30}] {elapsed:>3} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(config.name());
    bar.set_message(format!("{n} processes"));
    let start = Instant::now();
    let deadline = start + duration + REPORT_GRACE;
    let mut reports: Vec<Option<WorkerReport>> = (0..n).map(|_| None).collect();
    while reports.iter().any(Option::is_none) {
        let now = Instant::now();
        if now >= deadline {
            failures.push(format!(
                "no report from workers {:?} {} s after the run's end",
                (0..n).filter(|&i| reports[i].is_none()).collect::<Vec<_>>(),
                REPORT_GRACE.as_secs()
            ));
            break;
        }
        bar.set_position((now - start).as_millis().min(duration.as_millis()) as u64);
        match rx.recv_timeout((deadline - now).min(Duration::from_millis(100))) {
            Ok((i, Some(line))) => match serde_json::from_str::<WorkerReport>(&line) {
                Ok(report) if report.worker == i => reports[i] = Some(report),
                Ok(report) => {
                    failures.push(format!("worker {i} reported as worker {}", report.worker))
                }
                Err(e) => failures.push(format!("worker {i}: unreadable report ({e}): {line:?}")),
            },
            Ok((i, None)) => {
                if reports[i].is_none() {
                    failures.push(format!(
                        "worker {i} exited without a report (see its error above)"
                    ));
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if !failures.is_empty() {
            break;
        }
    }
    bar.finish_and_clear();
    if !failures.is_empty() {
        return Err(stop_all(children, failures));
    }
    for (i, mut child) in children.into_iter().enumerate() {
        match child.wait() {
            Ok(status) if status.success() => {}
            Ok(status) => failures.push(format!(
                "worker {i} (pid {}) ended with {status}",
                child.id()
            )),
            Err(e) => failures.push(format!("cannot wait for worker {i}: {e}")),
        }
    }
    if !failures.is_empty() {
        return Err(failures);
    }
    Ok(reports
        .into_iter()
        .map(|r| r.expect("every report arrived"))
        .collect())
}

/// Kills the workers still running (each by its own handle) and reaps them.
fn stop_all(children: Vec<Child>, failures: Vec<String>) -> Vec<String> {
    for mut child in children {
        if let Ok(None) = child.try_wait() {
            let _ = child.kill();
        }
        let _ = child.wait();
    }
    failures
}

/// Sums the workers' counts and latencies into the outcome.
fn summarize(outcome: &mut RemoteOutcome, reports: &[WorkerReport]) {
    let mut total = new_histogram();
    for report in reports {
        let mut latency = new_histogram();
        for &(value, count) in &report.latency {
            latency
                .record_n(value.max(1), count)
                .expect("values within bounds");
        }
        total.add(&latency).expect("same bounds");
        outcome.counts.add(&report.counts);
        outcome.seconds = outcome.seconds.max(report.seconds);
        let rps = report.counts.counts.requests as f64 / report.seconds;
        outcome.requests_per_second += rps;
        outcome.workers.push(WorkerSummary {
            worker: report.worker,
            pid: report.pid,
            threads: report.threads,
            seconds: report.seconds,
            requests_per_second: rps,
            latency_p50_us: latency.value_at_quantile(0.50) as f64 / 1e3,
            latency_p99_us: latency.value_at_quantile(0.99) as f64 / 1e3,
            counts: report.counts,
            first_error: report.first_error.clone(),
        });
    }
    outcome.latency_p50_us = total.value_at_quantile(0.50) as f64 / 1e3;
    outcome.latency_p99_us = total.value_at_quantile(0.99) as f64 / 1e3;
    outcome.latency_max_us = total.max() as f64 / 1e3;
}

/// Reads every session's `hits` and every record's `views` back and checks them against what
/// the workers acknowledged.
async fn check(
    sessions: &RedisSessionStore,
    models: &PgModelStore<Article>,
    plan: &Plan,
    reports: &[WorkerReport],
    outcome: &mut RemoteOutcome,
) -> Result<(), String> {
    let sum = |pick: fn(&WorkerReport) -> &Vec<u64>, len: usize| {
        let mut total = vec![0; len];
        for report in reports {
            add_into(&mut total, pick(report));
        }
        total
    };
    let (s_acked, s_doubt) = (
        sum(|r| &r.session_acked, plan.cookies.len()),
        sum(|r| &r.session_doubt, plan.cookies.len()),
    );
    let (r_acked, r_doubt) = (
        sum(|r| &r.record_acked, plan.pks.len()),
        sum(|r| &r.record_doubt, plan.pks.len()),
    );
    for (i, cookie) in plan.cookies.iter().enumerate() {
        let session = sessions
            .load(Some(cookie))
            .await
            .map_err(|e| format!("cannot read session {i} back: {e}"))?;
        if session.session_key().is_none() {
            return Err(format!("session {i} is gone from Redis"));
        }
        let stored = session.get("hits").and_then(Value::as_u64).unwrap_or(0);
        outcome.session_hits.of(stored, s_acked[i], s_doubt[i]);
    }
    for (i, &pk) in plan.pks.iter().enumerate() {
        let stored = models
            .get(pk)
            .await
            .map_err(|e| format!("cannot read record {pk} back: {e}"))?
            .ok_or_else(|| format!("record {pk} is gone from PostgreSQL"))?
            .views;
        outcome.model_views.of(stored, r_acked[i], r_doubt[i]);
    }
    Ok(())
}

/// Deletes the run's sessions and drops its table; returns what could not be removed.
async fn cleanup(sessions: &RedisSessionStore, plan: &Plan) -> Vec<String> {
    let mut errors = Vec::new();
    for cookie in &plan.cookies {
        if let Err(e) = sessions.delete(cookie).await {
            errors.push(format!(
                "session {cookie}: {e} (it expires within the hour)"
            ));
            break;
        }
    }
    // The store has no DROP (tables are the application's); the table name was validated by
    // `PgModelStore::connect` (a plain lower-case identifier).
    use sqlx::Connection as _;
    let url = database_url();
    match sqlx::PgConnection::connect(&url).await {
        Ok(mut conn) => {
            let sql = format!("DROP TABLE IF EXISTS \"{}\"", plan.table);
            if let Err(e) = sqlx::query(&sql).execute(&mut conn).await {
                errors.push(format!("table {}: {e}", plan.table));
            }
            let _ = conn.close().await;
        }
        Err(e) => errors.push(format!(
            "table {}: cannot connect to drop it: {e}",
            plan.table
        )),
    }
    errors
}

fn print_outcome(o: &RemoteOutcome) {
    println!(
        "{:<9} {:>8} {:>9} {:>8} {:>8} {:>9} {:>8} {:>7} {:>6} {:>7} {:>7} {:>9} {:>7} {:>6}",
        "process",
        "pid",
        "requests",
        "req/s",
        "p50 µs",
        "p99 µs",
        "s.saves",
        "s.merged",
        "s.doubt",
        "m.upd",
        "m.confl",
        "m.retries",
        "m.doubt",
        "errors"
    );
    let row = |name: &str, pid: String, c: &RemoteCounts, rps: f64, p50: f64, p99: f64| {
        let errors = c.counts.session_save_errors
            + c.session_load_errors
            + c.counts.model_update_errors
            + c.model_read_errors;
        println!(
            "{:<9} {:>8} {:>9} {:>8.0} {:>8.0} {:>9.0} {:>8} {:>7} {:>6} {:>7} {:>7} {:>9} {:>7} {:>6}",
            name,
            pid,
            c.counts.requests,
            rps,
            p50,
            p99,
            c.counts.session_saves,
            c.counts.session_merges,
            c.session_in_doubt,
            c.counts.model_updates,
            c.counts.model_conflicts,
            c.counts.model_retries,
            c.model_in_doubt,
            errors,
        );
    };
    for w in &o.workers {
        row(
            &format!("worker {}", w.worker),
            w.pid.to_string(),
            &w.counts,
            w.requests_per_second,
            w.latency_p50_us,
            w.latency_p99_us,
        );
    }
    row(
        "total",
        String::new(),
        &o.counts,
        o.requests_per_second,
        o.latency_p50_us,
        o.latency_p99_us,
    );
    println!(
        "s.merged: session saves merged onto another process's or task's save; s.doubt / \
         m.doubt: writes the store reported in doubt (connection broke mid-write); m.confl / \
         m.retries: model updates that met a conflict / extra attempts; errors: failed loads, \
         reads and writes (none expected on a healthy server)"
    );
    for w in &o.workers {
        if let Some(e) = &w.first_error {
            println!("  worker {} first error: {e}", w.worker);
        }
    }
    println!();
    println!("checks (read back from Redis and PostgreSQL after every worker exited):");
    if !o.worker_failures.is_empty() {
        for f in &o.worker_failures {
            println!("  FAILED  {f}");
        }
        println!("  (no count check: not every worker reported)");
    } else {
        let line = |what: &str, unit: &str, c: &Check| {
            println!(
                "  {:<6}  {what:<12} {} stored, {} acknowledged + {} in doubt: {} lost, {} extra \
                 ({} of {} {unit} outside acknowledged ≤ stored ≤ acknowledged + in doubt)",
                if c.ok() { "ok" } else { "FAILED" },
                c.stored,
                c.acknowledged,
                c.in_doubt,
                c.lost,
                c.extra,
                c.wrong,
                c.items,
            );
        };
        line("session hits", "sessions", &o.session_hits);
        line("model views", "records", &o.model_views);
        let c = &o.counts.counts;
        println!(
            "  {:<6}  {:<12} {} requests, {} pages checked ({} bad, {} render errors), {} hard \
             errors",
            if c.bad_renders + c.render_errors + o.counts.hard_errors == 0 && c.requests > 0 {
                "ok"
            } else {
                "FAILED"
            },
            "pages",
            c.requests,
            c.requests
                - c.render_errors
                - o.counts.session_load_errors
                - o.counts.model_read_errors,
            c.bad_renders,
            c.render_errors,
            o.counts.hard_errors,
        );
    }
    for e in &o.cleanup_errors {
        println!("  warning: clean-up: {e}");
    }
}
