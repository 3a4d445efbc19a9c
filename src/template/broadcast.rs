//! Templates across workers (feature `redis`): [`Broadcast`], the follower task and its
//! [`Following`] handle. The user-facing overview and example are in the parent module's docs
//! ("Across workers"); the wire format is in `backend::redis`.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use parking_lot::Mutex;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSub};
use tokio::task::JoinHandle;

use super::backend::redis::{Command, check_channel, decode, encode, failure, origin, subscribe};
use super::error::BroadcastError;

/// What a follower applies messages to: a `TemplateCache` of any engine and strategy (the
/// implementation sits in the parent module, which defines the cache).
pub(crate) trait Target: Send + Sync + 'static {
    /// `TemplateCache::reset`.
    fn reset(&self);
    /// `TemplateCache::invalidate`.
    fn invalidate(&self, name: &str);
    /// Whether applying may wait for a lock that a compile holds (the `Blocking` strategy).
    fn may_wait(&self) -> bool;
}

/// Publishes template resets and invalidations on a Redis channel and makes caches follow it,
/// so that a `reset` or `invalidate` in one process drops the templates in every process
/// following the channel; see [Across workers](crate::template#across-workers-feature-redis)
/// for how it works, what is guaranteed, and an example. Cheap to clone (one shared
/// connection).
///
/// Every call is `async` and needs a tokio runtime with its time driver (`#[tokio::main]` has
/// it).
#[derive(Clone)]
pub struct Broadcast {
    inner: Arc<Inner>,
}

struct Inner {
    /// Opens the followers' pub/sub connections.
    client: redis::Client,
    /// Publishes (multiplexed, reconnects by itself).
    publisher: ConnectionManager,
    channel: String,
    /// Put in every message this broadcast publishes; its followers skip those.
    origin: String,
    connect_timeout: Duration,
    response_timeout: Duration,
    health_check: Duration,
    max_reconnect_delay: Duration,
    retries: u32,
    /// The caches this broadcast follows, applied to at once by `reset` / `invalidate`.
    followers: Mutex<Vec<(u64, Arc<dyn Target>)>>,
    next_follower: AtomicU64,
}

impl fmt::Debug for Broadcast {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broadcast")
            .field("channel", &self.inner.channel)
            .field("origin", &self.inner.origin)
            .field("followers", &self.inner.followers.lock().len())
            .finish_non_exhaustive()
    }
}

/// Configures a [`Broadcast`]; from [`Broadcast::builder`].
#[derive(Clone, Debug)]
#[must_use]
pub struct BroadcastBuilder {
    connect_timeout: Duration,
    response_timeout: Duration,
    health_check: Duration,
    max_reconnect_delay: Duration,
    retries: u32,
}

impl Default for BroadcastBuilder {
    fn default() -> Self {
        BroadcastBuilder {
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(2),
            health_check: Duration::from_secs(5),
            max_reconnect_delay: Duration::from_secs(1),
            retries: 3,
        }
    }
}

impl BroadcastBuilder {
    /// Time limit for connecting (default 2 s) and for each reply (default 2 s), for the
    /// publishing connection and the followers' subscriptions.
    pub fn timeouts(mut self, connect: Duration, response: Duration) -> Self {
        self.connect_timeout = connect;
        self.response_timeout = response;
        self
    }

    /// A follower whose channel has been silent this long sends a `PING` (default 5 s); no
    /// answer within the response timeout counts as a broken connection (resubscribe, then
    /// reset). This finds connections that died without being closed (a network partition).
    pub fn health_check(mut self, every: Duration) -> Self {
        self.health_check = every.max(Duration::from_millis(10));
        self
    }

    /// The longest pause between two attempts of a follower to resubscribe (default 1 s; the
    /// first is 50 ms, doubling, with jitter).
    pub fn max_reconnect_delay(mut self, delay: Duration) -> Self {
        self.max_reconnect_delay = delay.max(Duration::from_millis(10));
        self
    }

    /// How many times a publish whose connection broke is sent again after the connection
    /// reconnected (default 3). Publishing twice is harmless.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Connects to `url` (`redis://host:port/db`) for `channel` (1 to 256 bytes of printable
    /// ASCII without spaces; give each application sharing a server its own).
    ///
    /// # Errors
    ///
    /// [`BroadcastError::InvalidChannel`] (before connecting), or
    /// [`BroadcastError::Connection`] if the URL is invalid or the server cannot be reached.
    pub async fn connect(self, url: &str, channel: &str) -> Result<Broadcast, BroadcastError> {
        check_channel(channel)?;
        let client = redis::Client::open(url).map_err(|e| BroadcastError::Connection {
            message: format!("invalid Redis URL: {e}"),
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.response_timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let publisher = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(|e| failure(&e))?;
        Ok(Broadcast {
            inner: Arc::new(Inner {
                client,
                publisher,
                channel: channel.to_owned(),
                origin: origin(),
                connect_timeout: self.connect_timeout,
                response_timeout: self.response_timeout,
                health_check: self.health_check,
                max_reconnect_delay: self.max_reconnect_delay,
                retries: self.retries,
                followers: Mutex::new(Vec::new()),
                next_follower: AtomicU64::new(0),
            }),
        })
    }
}

impl Broadcast {
    /// Connects to `url` for `channel` with the default settings; see
    /// [`BroadcastBuilder::connect`].
    ///
    /// # Errors
    ///
    /// [`BroadcastError::InvalidChannel`], or [`BroadcastError::Connection`] if the server
    /// cannot be reached.
    pub async fn connect(url: &str, channel: &str) -> Result<Self, BroadcastError> {
        Self::builder().connect(url, channel).await
    }

    /// A builder, for the timeouts, the health check and the reconnect delay.
    pub fn builder() -> BroadcastBuilder {
        BroadcastBuilder::default()
    }

    /// The channel.
    pub fn channel(&self) -> &str {
        &self.inner.channel
    }

    /// Resets every cache this broadcast follows at once, then tells every other process
    /// following the channel to reset its cache.
    ///
    /// # Errors
    ///
    /// [`BroadcastError::Connection`] when Redis is unreachable: the local caches were reset
    /// anyway, the other processes may not have been told (retry later).
    /// [`BroadcastError::Server`] if the server refused to publish.
    pub async fn reset(&self) -> Result<(), BroadcastError> {
        self.send(Command::Reset).await
    }

    /// Drops `name` from every cache this broadcast follows at once, then tells every other
    /// process following the channel to drop it. Any name the loader accepts works (spaces,
    /// quotes, any Unicode); an empty name is never cached, so nothing is sent for it.
    ///
    /// # Errors
    ///
    /// As [`reset`](Self::reset): [`BroadcastError::Connection`] (local caches updated, others
    /// maybe not) or [`BroadcastError::Server`].
    pub async fn invalidate(&self, name: &str) -> Result<(), BroadcastError> {
        if name.is_empty() {
            return Ok(());
        }
        self.send(Command::Invalidate(name.to_owned())).await
    }

    async fn send(&self, command: Command) -> Result<(), BroadcastError> {
        let local: Vec<Arc<dyn Target>> = self
            .inner
            .followers
            .lock()
            .iter()
            .map(|(_, target)| Arc::clone(target))
            .collect();
        for target in &local {
            apply(target, &command).await;
        }
        let payload = encode(&self.inner.origin, &command);
        let mut tries = 0;
        loop {
            let mut conn = self.inner.publisher.clone();
            let sent: redis::RedisResult<i64> =
                conn.publish(&self.inner.channel, payload.as_slice()).await;
            match sent {
                Ok(_) => return Ok(()),
                Err(e) => match failure(&e) {
                    BroadcastError::Connection { .. } if tries < self.inner.retries => {
                        tries += 1;
                        tokio::time::sleep(Duration::from_millis(20 << tries.min(4))).await;
                    }
                    other => return Err(other),
                },
            }
        }
    }

    /// Subscribes `target`; see `TemplateCache`'s `follow` in the parent module.
    pub(crate) async fn follow_target(
        &self,
        target: Arc<dyn Target>,
    ) -> Result<Following, BroadcastError> {
        let inner = &self.inner;
        let pubsub = subscribe(
            &inner.client,
            &inner.channel,
            inner.connect_timeout,
            inner.response_timeout,
        )
        .await?;
        let counters = Arc::new(Counters::default());
        counters.subscribed.store(true, Ordering::Release);
        let id = inner.next_follower.fetch_add(1, Ordering::Relaxed);
        inner.followers.lock().push((id, Arc::clone(&target)));
        let task = tokio::spawn(run(
            Arc::clone(inner),
            target,
            Arc::clone(&counters),
            pubsub,
        ));
        Ok(Following {
            inner: Arc::clone(inner),
            id,
            task: Some(task),
            counters,
        })
    }
}

/// Applies `command` to `target`, off the runtime's workers when it may wait for a lock. A
/// panic (in an engine's `forget`) is contained: the follower keeps going.
async fn apply(target: &Arc<dyn Target>, command: &Command) {
    fn now(target: &dyn Target, command: &Command) {
        let _ = catch_unwind(AssertUnwindSafe(|| match command {
            Command::Reset => target.reset(),
            Command::Invalidate(name) => target.invalidate(name),
        }));
    }
    if target.may_wait() {
        let target = Arc::clone(target);
        let command = command.clone();
        let _ = tokio::task::spawn_blocking(move || now(&*target, &command)).await;
    } else {
        now(&**target, command);
    }
}

#[derive(Default)]
struct Counters {
    applied: AtomicU64,
    own: AtomicU64,
    malformed: AtomicU64,
    reconnects: AtomicU64,
    subscribed: AtomicBool,
}

/// The follower task: listens until the connection is lost, resubscribes, resets, repeats.
async fn run(inner: Arc<Inner>, target: Arc<dyn Target>, counters: Arc<Counters>, first: PubSub) {
    let mut pubsub = first;
    loop {
        listen(&inner, &target, &counters, pubsub).await;
        counters.subscribed.store(false, Ordering::Release);
        pubsub = resubscribe(&inner).await;
        // Subscribed again: whatever was published while away is lost, so drop everything.
        // After the subscription, so that nothing published from now on is missed.
        apply(&target, &Command::Reset).await;
        counters.subscribed.store(true, Ordering::Release);
        counters.reconnects.fetch_add(1, Ordering::AcqRel);
    }
}

/// Applies the messages of `pubsub` until its connection closes or stops answering.
async fn listen(inner: &Inner, target: &Arc<dyn Target>, counters: &Counters, pubsub: PubSub) {
    let (mut sink, mut stream) = pubsub.split();
    loop {
        let msg = match tokio::time::timeout(inner.health_check, stream.next()).await {
            Ok(Some(msg)) => msg,
            Ok(None) => return,
            Err(_silent) => {
                let pong =
                    tokio::time::timeout(inner.response_timeout, sink.ping::<redis::Value>()).await;
                match pong {
                    Ok(Ok(_)) => continue,
                    _ => return,
                }
            }
        };
        match decode(msg.get_payload_bytes()) {
            None => {
                counters.malformed.fetch_add(1, Ordering::AcqRel);
            }
            Some(m) if m.origin == Some(inner.origin.as_str()) => {
                counters.own.fetch_add(1, Ordering::AcqRel);
            }
            Some(m) => {
                apply(target, &m.command).await;
                counters.applied.fetch_add(1, Ordering::AcqRel);
            }
        }
    }
}

/// A new subscription, trying until one is confirmed: 50 ms between attempts, doubling up to
/// the configured maximum, each pause drawn between half and 1.5 times that (so that many
/// workers do not reconnect in step after a server restart).
async fn resubscribe(inner: &Inner) -> PubSub {
    let mut delay = Duration::from_millis(50).min(inner.max_reconnect_delay);
    loop {
        let attempt = subscribe(
            &inner.client,
            &inner.channel,
            inner.connect_timeout,
            inner.response_timeout,
        )
        .await;
        if let Ok(pubsub) = attempt {
            return pubsub;
        }
        tokio::time::sleep(delay.mul_f64(0.5 + rand::random::<f64>())).await;
        delay = (delay * 2).min(inner.max_reconnect_delay);
    }
}

/// A cache following a channel, from [`Broadcast::follow`]. Dropping it (or
/// [`stop`](Self::stop)) ends the follower task and its subscription.
#[must_use = "the cache stops following the channel when this handle is dropped"]
pub struct Following {
    inner: Arc<Inner>,
    id: u64,
    task: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
}

/// What a follower did so far; from [`Following::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FollowStats {
    /// Messages applied to the cache (`reset` or `invalidate` from another broadcast).
    pub applied: u64,
    /// Messages this follower's own [`Broadcast`] published, skipped: they were applied to
    /// the cache when sent.
    pub own: u64,
    /// Messages ignored because they are malformed (another format version, an unknown
    /// command, not UTF-8). More than zero: a publisher of another version or a typo by hand.
    pub malformed: u64,
    /// Times the subscription was lost and made again (each followed by a whole-cache reset).
    pub reconnects: u64,
    /// Whether the follower is subscribed now (`false` while it reconnects).
    pub subscribed: bool,
}

impl Following {
    /// The counters so far.
    pub fn stats(&self) -> FollowStats {
        let c = &self.counters;
        FollowStats {
            applied: c.applied.load(Ordering::Acquire),
            own: c.own.load(Ordering::Acquire),
            malformed: c.malformed.load(Ordering::Acquire),
            reconnects: c.reconnects.load(Ordering::Acquire),
            subscribed: c.subscribed.load(Ordering::Acquire),
        }
    }

    /// The channel followed.
    pub fn channel(&self) -> &str {
        &self.inner.channel
    }

    /// Stops following and waits until the follower task has ended (its subscription is
    /// closed). Dropping the handle stops it too, without waiting.
    pub async fn stop(mut self) {
        if let Some(task) = self.end() {
            let _ = task.await;
        }
    }

    fn end(&mut self) -> Option<JoinHandle<()>> {
        self.inner.followers.lock().retain(|(id, _)| *id != self.id);
        let task = self.task.take()?;
        task.abort();
        Some(task)
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        self.end();
    }
}

impl fmt::Debug for Following {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Following")
            .field("channel", &self.inner.channel)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}
