//! Templates across workers (feature `redis`): two caches over the same template directory,
//! each with its own `Broadcast` connection (as two worker processes would have), following
//! one channel. Every scenario runs once per strategy.
//!
//! Reads `UNLOCKED_REDIS_URL` (default `redis://127.0.0.1:6379`); without a reachable server
//! the tests print a notice and pass, unless `CI=true`, where they fail. Each test uses a
//! channel of its own. Deliveries are awaited by polling with a 5 s deadline.
#![cfg(feature = "redis")]

mod common_remote;
mod common_template;

use std::collections::BTreeSet;
use std::future::Future;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common_remote::redis_url as url;
use common_template::{Counting, dir_with, write_files};
use redis::aio::MultiplexedConnection;
use tokio::sync::RwLock;
use unlocked::Strategy;
use unlocked::template::{
    Broadcast, BroadcastBuilder, BroadcastError, FileSystemLoader, FollowStats, Following,
    TemplateCache,
};

/// Runs each async scenario once per strategy, on a runtime of its own.
macro_rules! strategy_tokio_tests {
    ($($name:ident),+ $(,)?) => {
        mod lock_free {
            $(
                #[test]
                fn $name() {
                    super::block_on(super::$name::<unlocked::LockFree>());
                }
            )+
        }
        mod blocking {
            $(
                #[test]
                fn $name() {
                    super::block_on(super::$name::<unlocked::Blocking>());
                }
            )+
        }
    };
}

strategy_tokio_tests!(
    invalidate_reaches_the_other_worker,
    reset_reaches_the_other_worker,
    names_with_quotes_spaces_and_unicode,
    malformed_messages_are_ignored_and_counted,
    reconnect_after_client_kill_resets_and_still_delivers,
    renders_never_wait_on_redis,
    stop_and_drop_end_the_subscription,
);

fn block_on<F: Future<Output = ()>>(test: F) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(test);
}

// ---------------------------------------------------------------------------------------------
// Server, channels, workers
// ---------------------------------------------------------------------------------------------

/// Why the server was found unreachable, once (later tests skip at once).
static UNREACHABLE: OnceLock<String> = OnceLock::new();

/// Tests that kill pub/sub connections take this for writing, every other test for reading,
/// so that a kill never hits another test's subscription.
static PUBSUB: RwLock<()> = RwLock::const_new(());

/// An admin connection, or `None` (after a notice) without a server; fails under `CI=true`.
async fn server() -> Option<MultiplexedConnection> {
    let url = url();
    let ci = std::env::var("CI").as_deref() == Ok("true");
    if let Some(reason) = UNREACHABLE.get() {
        assert!(!ci, "CI=true and Redis at {url} is unreachable: {reason}");
        return None;
    }
    let connected = async {
        let client = redis::Client::open(url.as_str()).map_err(|e| e.to_string())?;
        tokio::time::timeout(
            Duration::from_secs(3),
            client.get_multiplexed_async_connection(),
        )
        .await
        .map_err(|_| "no answer within 3 s".to_owned())?
        .map_err(|e| e.to_string())
    };
    match connected.await {
        Ok(conn) => Some(conn),
        Err(e) => {
            assert!(!ci, "CI=true and Redis at {url} is unreachable: {e}");
            if UNREACHABLE.set(e.clone()).is_ok() {
                // Straight to the stream: the test harness captures `eprintln!`.
                let _ = writeln!(
                    std::io::stderr(),
                    "notice: skipping the template broadcast tests, {url} is unreachable ({e}); \
                     set UNLOCKED_REDIS_URL or run ci/redis.sh"
                );
            }
            None
        }
    }
}

/// A channel unique to this test and run.
fn channel(test: &str) -> String {
    common_remote::unique(&format!("templates:{test}"), "")
}

/// One worker process: its cache, its broadcast connection, its follower.
struct Worker<S: Strategy> {
    cache: Arc<TemplateCache<Counting, S>>,
    broadcast: Broadcast,
    following: Following,
}

impl<S: Strategy> Worker<S> {
    async fn start(dir: &Path, url: &str, channel: &str, builder: BroadcastBuilder) -> Self {
        let cache = Arc::new(TemplateCache::new(
            Counting::default(),
            FileSystemLoader::new([dir]),
        ));
        let broadcast = builder.connect(url, channel).await.expect("connect");
        let following = broadcast
            .follow(Arc::clone(&cache))
            .await
            .expect("subscribe");
        assert!(following.stats().subscribed);
        assert_eq!(following.channel(), channel);
        Worker {
            cache,
            broadcast,
            following,
        }
    }

    fn render(&self, name: &str) -> String {
        self.cache
            .render(name, &())
            .unwrap_or_else(|e| panic!("render {name:?}: {e}"))
    }

    fn stats(&self) -> FollowStats {
        self.following.stats()
    }

    fn compiles(&self, name: &str) -> u64 {
        self.cache.engine().compiles_of(name)
    }
}

/// Polls `done` every 10 ms until it holds; fails after 5 s.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "not within 5 s: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn publish_raw(admin: &mut MultiplexedConnection, channel: &str, payload: &[u8]) {
    let _: i64 = redis::cmd("PUBLISH")
        .arg(channel)
        .arg(payload)
        .query_async(admin)
        .await
        .expect("PUBLISH");
}

async fn subscribers(admin: &mut MultiplexedConnection, channel: &str) -> i64 {
    let (_, n): (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(admin)
        .await
        .expect("PUBSUB NUMSUB");
    n
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

async fn invalidate_reaches_the_other_worker<S: Strategy>() {
    let _shared = PUBSUB.read().await;
    let Some(_admin) = server().await else { return };
    let dir = dir_with(&[("page.html", "v1"), ("other.html", "other")]);
    let channel = channel("invalidate");
    let a = Worker::<S>::start(dir.path(), &url(), &channel, Broadcast::builder()).await;
    let b = Worker::<S>::start(dir.path(), &url(), &channel, Broadcast::builder()).await;
    assert_eq!(a.render("page.html"), "v1");
    assert_eq!(b.render("page.html"), "v1");
    assert_eq!(b.render("other.html"), "other");

    write_files(dir.path(), &[("page.html", "v2")]);
    assert_eq!(b.render("page.html"), "v1", "cached until invalidated");
    a.broadcast.invalidate("page.html").await.expect("publish");
    // Applied to A's own cache when the call returns, not when the echo comes back.
    assert_eq!(a.render("page.html"), "v2");
    eventually("B applies the invalidation", || b.stats().applied == 1).await;
    assert_eq!(b.render("page.html"), "v2", "B re-read the changed file");
    // Only that name: B's other template is still the one compiled first, same generation.
    assert_eq!(b.render("other.html"), "other");
    assert_eq!(b.compiles("other.html"), 1);
    assert_eq!(b.cache.generation(), 0);
    assert_eq!(b.stats().malformed, 0);

    // A's follower sees its own message come back and skips it (already applied).
    eventually("A sees its own echo", || a.stats().own == 1).await;
    assert_eq!(a.stats().applied, 0);
    assert_eq!(a.render("page.html"), "v2");
    assert_eq!(
        a.compiles("page.html"),
        2,
        "v1, then v2 once: the echo dropped nothing"
    );
}

async fn reset_reaches_the_other_worker<S: Strategy>() {
    let _shared = PUBSUB.read().await;
    let Some(_admin) = server().await else { return };
    let dir = dir_with(&[("page.html", "v1"), ("other.html", "o1")]);
    let channel = channel("reset");
    let a = Worker::<S>::start(dir.path(), &url(), &channel, Broadcast::builder()).await;
    let b = Worker::<S>::start(dir.path(), &url(), &channel, Broadcast::builder()).await;
    assert_eq!(b.render("page.html"), "v1");
    assert_eq!(b.render("other.html"), "o1");
    assert_eq!(b.cache.len(), 2);

    write_files(dir.path(), &[("page.html", "v2"), ("other.html", "o2")]);
    a.broadcast.reset().await.expect("publish");
    assert_eq!(a.cache.generation(), 1, "A reset at once");
    // Counted once applied: wait for the count, then the reset is visible.
    eventually("B resets", || b.stats().applied == 1).await;
    assert_eq!(b.cache.generation(), 1);
    assert!(b.cache.is_empty());
    assert_eq!(b.render("page.html"), "v2");
    assert_eq!(b.render("other.html"), "o2");

    eventually("A sees its own echo", || a.stats().own == 1).await;
    assert_eq!(a.cache.generation(), 1, "the echo did not reset A again");
}

async fn names_with_quotes_spaces_and_unicode<S: Strategy>() {
    let _shared = PUBSUB.read().await;
    let Some(_admin) = server().await else { return };
    let names = [
        "it's \"quoted\" page.html",
        " with  spaces /and\ttab .html",
        "ünïcødé/页面 ✓ 🎉.html",
        "line\nbreak.html",
        // Looks like a message of its own: must be taken as one name.
        "1 invalidate trick.html",
        "trick.html",
    ];
    let files: Vec<(&str, &str)> = names.iter().map(|n| (*n, "v1")).collect();
    let dir = dir_with(&files);
    let channel = channel("names");
    let a = Worker::<S>::start(dir.path(), &url(), &channel, Broadcast::builder()).await;
    let b = Worker::<S>::start(dir.path(), &url(), &channel, Broadcast::builder()).await;
    for name in names {
        assert_eq!(b.render(name), "v1", "{name:?}");
    }
    let files: Vec<(&str, &str)> = names.iter().map(|n| (*n, "v2")).collect();
    write_files(dir.path(), &files);

    for (i, name) in names.iter().enumerate() {
        a.broadcast.invalidate(name).await.expect("publish");
        eventually(&format!("B drops {name:?}"), || {
            b.stats().applied == i as u64 + 1
        })
        .await;
        // Exactly that name: it is re-read, the ones after it are still cached.
        for (j, other) in names.iter().enumerate() {
            let want = if j <= i { "v2" } else { "v1" };
            assert_eq!(
                b.render(other),
                want,
                "after invalidating {name:?}: {other:?}"
            );
        }
    }
    assert_eq!(b.stats().malformed, 0);
}

async fn malformed_messages_are_ignored_and_counted<S: Strategy>() {
    let _shared = PUBSUB.read().await;
    let Some(mut admin) = server().await else {
        return;
    };
    let dir = dir_with(&[("page.html", "v1"), ("other.html", "other")]);
    let channel = channel("malformed");
    let b = Worker::<S>::start(dir.path(), &url(), &channel, Broadcast::builder()).await;
    assert_eq!(b.render("page.html"), "v1");
    assert_eq!(b.render("other.html"), "other");
    write_files(dir.path(), &[("page.html", "v2")]);

    let malformed: [&[u8]; 12] = [
        b"",
        b"garbage",
        b"2 reset",
        b"2 invalidate page.html",
        b"1 resets",
        b"1 reset ",
        b"1 RESET",
        b"1 invalidate",
        b"1 invalidate ",
        b"1 from=NOT-HEX reset",
        b"1 frobnicate page.html",
        b"\xff\xfe invalidate page.html",
    ];
    for payload in malformed {
        publish_raw(&mut admin, &channel, payload).await;
    }
    // The form a person types into redis-cli (no origin); one connection, so in order.
    publish_raw(&mut admin, &channel, b"1 invalidate page.html").await;
    eventually("B applies the valid message", || b.stats().applied == 1).await;
    assert_eq!(b.stats().malformed, malformed.len() as u64);
    assert_eq!(
        b.cache.generation(),
        0,
        "no malformed message reset the cache"
    );
    assert_eq!(b.render("page.html"), "v2");
    assert_eq!(b.compiles("other.html"), 1);
    assert!(b.stats().subscribed, "still following");

    publish_raw(&mut admin, &channel, b"1 reset").await;
    eventually("B resets", || b.stats().applied == 2).await;
    assert_eq!(b.cache.generation(), 1);
}

/// The ids of the pub/sub connections now open on the server.
async fn pubsub_clients(admin: &mut MultiplexedConnection) -> BTreeSet<u64> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(admin)
        .await
        .expect("CLIENT LIST");
    list.lines()
        .filter_map(|line| line.strip_prefix("id=")?.split(' ').next()?.parse().ok())
        .collect()
}

async fn reconnect_after_client_kill_resets_and_still_delivers<S: Strategy>() {
    // No other test of this binary holds a subscription while this one kills.
    let _exclusive = PUBSUB.write().await;
    let Some(mut admin) = server().await else {
        return;
    };
    let dir = dir_with(&[("page.html", "v1")]);
    let channel = channel("kill");
    let a = Worker::<S>::start(dir.path(), &url(), &channel, Broadcast::builder()).await;
    let before = pubsub_clients(&mut admin).await;
    let b = Worker::<S>::start(dir.path(), &url(), &channel, Broadcast::builder()).await;
    let mine: Vec<u64> = pubsub_clients(&mut admin)
        .await
        .difference(&before)
        .copied()
        .collect();
    assert!(!mine.is_empty(), "B's subscription is listed");
    assert_eq!(b.render("page.html"), "v1");
    assert_eq!(b.cache.generation(), 0);

    // Kill B's subscription from another connection (only B's: A's stays).
    for id in &mine {
        let _: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("pubsub")
            .arg("ID")
            .arg(*id)
            .query_async(&mut admin)
            .await
            .expect("CLIENT KILL");
    }
    eventually("B resubscribes by itself", || {
        let s = b.stats();
        s.reconnects == 1 && s.subscribed
    })
    .await;
    // It may have missed messages meanwhile: it reset its whole cache.
    assert_eq!(b.cache.generation(), 1);
    assert!(b.cache.is_empty());
    assert_eq!(a.stats().reconnects, 0);
    assert_eq!(a.cache.generation(), 0);

    // Later invalidations still arrive.
    assert_eq!(b.render("page.html"), "v1");
    write_files(dir.path(), &[("page.html", "v2")]);
    a.broadcast.invalidate("page.html").await.expect("publish");
    eventually("B applies the invalidation", || b.stats().applied == 1).await;
    assert_eq!(b.render("page.html"), "v2");
    assert_eq!(subscribers(&mut admin, &channel).await, 2);
}

async fn renders_never_wait_on_redis<S: Strategy>() {
    let _shared = PUBSUB.read().await;
    let Some(_admin) = server().await else { return };
    let Some(proxy) = Proxy::start(&url()) else {
        let _ = writeln!(
            std::io::stderr(),
            "notice: renders_never_wait_on_redis needs a redis://host:port URL, skipped"
        );
        return;
    };
    let dir = dir_with(&[
        ("page.html", "v1"),
        ("other.html", "o1"),
        ("third.html", "t1"),
    ]);
    let channel = channel("unreachable");
    let a = Worker::<S>::start(dir.path(), &url(), &channel, Broadcast::builder()).await;
    // B reaches Redis through a proxy the test can make hang; a 1 s limit per reply, and a
    // health check every 200 ms, so that it notices soon.
    let quick = Broadcast::builder()
        .timeouts(Duration::from_secs(1), Duration::from_secs(1))
        .health_check(Duration::from_millis(200))
        .max_reconnect_delay(Duration::from_millis(100))
        .retries(1);
    let b = Arc::new(Worker::<S>::start(dir.path(), &proxy.url, &channel, quick).await);
    for (name, text) in [
        ("page.html", "v1"),
        ("other.html", "o1"),
        ("third.html", "t1"),
    ] {
        assert_eq!(b.render(name), text);
    }

    // Renders in B, on a thread of their own, for as long as Redis is unreachable.
    let stop = Arc::new(AtomicBool::new(false));
    let renderer = {
        let (b, stop) = (Arc::clone(&b), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut slowest = Duration::ZERO;
            let mut renders = 0_u64;
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                assert_eq!(b.render("third.html"), "t1");
                slowest = slowest.max(started.elapsed());
                renders += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            (renders, slowest)
        })
    };

    // Redis stops answering (a partition: connections stay open, nothing comes back).
    proxy.hang();
    write_files(dir.path(), &[("page.html", "v2")]);
    let publish = {
        let b = Arc::clone(&b);
        tokio::spawn(async move { b.broadcast.invalidate("page.html").await })
    };
    // B's own cache is updated at once, whatever Redis does.
    eventually("B drops page.html locally", || {
        b.render("page.html") == "v2"
    })
    .await;
    let err = publish.await.unwrap().expect_err("Redis does not answer");
    assert!(
        matches!(err, BroadcastError::Connection { .. }) && err.is_transient(),
        "{err:?}"
    );
    // The follower's health check finds the silent connection and starts reconnecting.
    eventually("B's follower notices", || !b.stats().subscribed).await;
    assert_eq!(
        b.render("other.html"),
        "o1",
        "renders work while unsubscribed"
    );

    // What A publishes now never reaches B...
    write_files(dir.path(), &[("other.html", "o2")]);
    a.broadcast
        .invalidate("other.html")
        .await
        .expect("A's Redis is fine");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(b.render("other.html"), "o1", "missed while away");

    // ...but once Redis is back, B resubscribes and resets: nothing missed stays cached.
    proxy.heal();
    eventually("B resubscribes", || {
        let s = b.stats();
        s.reconnects >= 1 && s.subscribed
    })
    .await;
    assert!(b.cache.generation() >= 1);
    assert_eq!(b.render("other.html"), "o2");

    stop.store(true, Ordering::Relaxed);
    let (renders, slowest) = renderer.join().expect("renders never failed");
    assert!(renders > 10, "{renders} renders");
    // A render is microseconds; anything that waited on Redis would take its 1 s timeout.
    assert!(
        slowest < Duration::from_millis(500),
        "slowest render while Redis hung: {slowest:?}"
    );

    // And deliveries resume, both ways.
    write_files(dir.path(), &[("page.html", "v3")]);
    let applied = b.stats().applied;
    a.broadcast.invalidate("page.html").await.expect("publish");
    eventually("B applies A's invalidation", || b.stats().applied > applied).await;
    assert_eq!(b.render("page.html"), "v3");
    let deadline = Instant::now() + Duration::from_secs(5);
    while let Err(e) = b.broadcast.reset().await {
        assert!(Instant::now() < deadline, "B cannot publish again: {e}");
    }
    eventually("A applies B's reset", || a.cache.generation() >= 1).await;
}

async fn stop_and_drop_end_the_subscription<S: Strategy>() {
    let _shared = PUBSUB.read().await;
    let Some(mut admin) = server().await else {
        return;
    };
    let dir = dir_with(&[("page.html", "v1")]);
    let channel = channel("stop");
    let a = Worker::<S>::start(dir.path(), &url(), &channel, Broadcast::builder()).await;
    let b = Worker::<S>::start(dir.path(), &url(), &channel, Broadcast::builder()).await;
    assert_eq!(subscribers(&mut admin, &channel).await, 2);

    let Worker {
        cache: b_cache,
        broadcast: b_broadcast,
        following: b_following,
    } = b;
    b_following.stop().await;
    eventually_async("B's subscription is closed", || {
        let mut admin = admin.clone();
        let channel = channel.clone();
        async move { subscribers(&mut admin, &channel).await == 1 }
    })
    .await;
    // B's broadcast no longer applies to B's cache; A still gets it.
    b_broadcast.reset().await.expect("publish");
    eventually("A resets", || a.cache.generation() == 1).await;
    assert_eq!(b_cache.generation(), 0);

    drop(a.following);
    eventually_async("A's subscription is closed", || {
        let mut admin = admin.clone();
        let channel = channel.clone();
        async move { subscribers(&mut admin, &channel).await == 0 }
    })
    .await;
}

async fn eventually_async<F: Future<Output = bool>>(what: &str, mut done: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done().await {
        assert!(Instant::now() < deadline, "not within 5 s: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Without a server
// ---------------------------------------------------------------------------------------------

#[test]
fn invalid_channels_are_refused_before_connecting() {
    block_on(async {
        // No server needed: the name is checked first.
        for bad in ["", "has space", "tab\t", "ünïcødé", &"x".repeat(257)] {
            let err = Broadcast::connect("redis://127.0.0.1:1", bad)
                .await
                .expect_err(bad);
            assert!(
                matches!(&err, BroadcastError::InvalidChannel { channel, .. } if channel == bad),
                "{err:?}"
            );
            assert!(!err.is_transient());
        }
    });
}

#[test]
fn an_unreachable_server_is_a_connection_error() {
    block_on(async {
        // A port nobody listens on.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = Broadcast::builder()
            .timeouts(Duration::from_millis(500), Duration::from_millis(500))
            .connect(&format!("redis://127.0.0.1:{port}"), "templates")
            .await
            .expect_err("nothing listens");
        assert!(matches!(err, BroadcastError::Connection { .. }), "{err:?}");
        assert!(err.is_transient());
        let err = Broadcast::connect("not a url", "templates")
            .await
            .expect_err("not a URL");
        assert!(matches!(err, BroadcastError::Connection { .. }), "{err:?}");
    });
}

// ---------------------------------------------------------------------------------------------
// A TCP proxy the test can make hang
// ---------------------------------------------------------------------------------------------

/// Forwards to Redis. `hang` stops forwarding (connections stay open, nothing comes back, new
/// ones are accepted and never answered), like a network partition; `heal` closes every
/// connection made so far and forwards again.
struct Proxy {
    url: String,
    hung: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    /// A proxy in front of the server of `url`; `None` unless `url` is `redis://[auth@]host[:port][/db]`.
    fn start(url: &str) -> Option<Proxy> {
        let rest = url.strip_prefix("redis://")?;
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((auth, rest)) => (format!("{auth}@"), rest),
            None => (String::new(), rest),
        };
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (host, tail) = rest.split_at(end);
        let upstream = if host.contains(':') {
            host.to_owned()
        } else {
            format!("{host}:6379")
        };
        let listener = TcpListener::bind("127.0.0.1:0").ok()?;
        let proxy = Proxy {
            url: format!("redis://{auth}{}{tail}", listener.local_addr().ok()?),
            hung: Arc::new(AtomicBool::new(false)),
            conns: Arc::new(Mutex::new(Vec::new())),
        };
        let (hung, conns) = (Arc::clone(&proxy.hung), Arc::clone(&proxy.conns));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(keep) = client.try_clone() else {
                    continue;
                };
                conns.lock().unwrap().push(keep);
                if hung.load(Ordering::SeqCst) {
                    // Accepted, never answered.
                    let hung = Arc::clone(&hung);
                    std::thread::spawn(move || pump(client, None, &hung));
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let (Ok(keep), Ok(c2), Ok(s2)) =
                    (server.try_clone(), client.try_clone(), server.try_clone())
                else {
                    continue;
                };
                conns.lock().unwrap().push(keep);
                let (h1, h2) = (Arc::clone(&hung), Arc::clone(&hung));
                std::thread::spawn(move || pump(client, Some(s2), &h1));
                std::thread::spawn(move || pump(server, Some(c2), &h2));
            }
        });
        Some(proxy)
    }

    fn hang(&self) {
        self.hung.store(true, Ordering::SeqCst);
    }

    fn heal(&self) {
        for conn in self.conns.lock().unwrap().drain(..) {
            let _ = conn.shutdown(std::net::Shutdown::Both);
        }
        self.hung.store(false, Ordering::SeqCst);
    }
}

/// Copies `from` to `to` while not hung (drops what it reads while hung, or always without
/// `to`); closes both when either side closes.
fn pump(mut from: TcpStream, mut to: Option<TcpStream>, hung: &AtomicBool) {
    let mut buf = [0_u8; 8192];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if hung.load(Ordering::SeqCst) {
            continue;
        }
        if let Some(to) = &mut to {
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    }
    let _ = from.shutdown(std::net::Shutdown::Both);
    if let Some(to) = to {
        let _ = to.shutdown(std::net::Shutdown::Both);
    }
}
