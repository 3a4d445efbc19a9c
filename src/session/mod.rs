//! A session store with Django's session API, and no lost updates.
//!
//! `django.contrib.sessions` loads a whole session at the start of a request and writes it
//! back whole at the end: when two requests of one user overlap, the last writer silently wins
//! (tower-sessions documents the same loss). Here every stored [`Record`] is immutable and
//! versioned, a [`Session`] handle remembers the version it loaded and the changes it made,
//! and a save that meets a newer record follows a [`ConflictPolicy`]: by default only this
//! request's changes are applied onto the latest record, and update operations
//! ([`Session::update`]) are replayed on the latest value, so concurrent increments all count.
//!
//! * [`SessionStore`]: the store, generic over the [`Strategy`](crate::Strategy):
//!   [`LockFree`](crate::LockFree) (papaya's concurrent map of per-session cells; reads take
//!   no lock, a save is one compare-and-swap) or [`Blocking`](crate::Blocking) (a `HashMap`
//!   under this module's lock).
//! * [`SessionData`]: a session's values, as a base shared between versions and a short
//!   overlay of the keys changed since, so a save copies two or three pointers whatever the
//!   session's size, never a key or a value.
//! * [`Session`]: one request's handle: `get`, `insert`, `remove`, `setdefault`, `contains`,
//!   `keys`, `clear`, `flush`, `cycle_key`, `is_empty`, the `modified`/`accessed` flags and
//!   the expiry calls, all as Django defines them.
//! * [`SessionKey`]: 32 characters of `[a-z0-9]` from a CSPRNG; the client never chooses one.
//! * `RedisSessionStore` and `RedisSession` (feature `redis`): the same API and guarantees
//!   between every process that shares one Redis, `async`: a versioned save is one Lua script
//!   round trip; see `docs/scale-out.md`.
//!
//! ```
//! use serde_json::json;
//! use unlocked::session::SessionStore;
//!
//! let store: SessionStore = SessionStore::new();
//! let mut first = store.load(None);
//! first.save()?;
//! let cookie = first.session_key().unwrap().to_string();
//!
//! // Two overlapping requests of one user.
//! let mut a = store.load(Some(&cookie));
//! let mut b = store.load(Some(&cookie));
//! a.insert("theme", "dark");
//! a.update("hits", |v| json!(v.and_then(|v| v.as_i64()).unwrap_or(0) + 1))?;
//! b.insert("lang", "fr");
//! b.update("hits", |v| json!(v.and_then(|v| v.as_i64()).unwrap_or(0) + 1))?;
//! a.save()?;
//! b.save()?; // meets a's record: replays only b's changes onto it
//!
//! let now = store.load(Some(&cookie));
//! assert_eq!(now.get("theme"), Some(&json!("dark")));
//! assert_eq!(now.get("lang"), Some(&json!("fr")));
//! assert_eq!(now.get("hits"), Some(&json!(2)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Async code
//!
//! No call blocks on I/O, and with `LockFree` none waits on a lock held across other work (a
//! save that lost several races in a row waits behind another escalated save of the same
//! session, which is short). A [`Session`] holds no lock or guard and may live across
//! `.await`. With `Blocking`, calls take the module lock for the duration of one map operation;
//! never call the store while holding a class, instance or function lock of [`crate::lock`]
//! (the lock-order check refuses the coarser module lock).
//!
//! See `docs/session.md` for the design and its consistency guarantees.

pub(crate) mod backend;
mod codec;
mod data;
mod error;
mod handle;
mod key;
pub(crate) mod record;
#[cfg(feature = "redis")]
mod redis;
pub(crate) mod save;
mod state;
mod store;

pub use codec::{DEFAULT_MAX_ENCODED_LEN, SessionCodec};
pub use data::{Iter as DataIter, SessionData};
pub use error::{
    CreateError, DecodeError, EncodeError, ImportError, SaveError, StoreError, UpdatePanicked,
};
pub use handle::{OwnedSession, Session};
pub use key::{InvalidSessionKey, KEY_CHARS, KEY_LEN, MIN_KEY_LEN, SessionKey};
pub use record::{Expiry, Record};
#[cfg(feature = "redis")]
pub use redis::{
    DEFAULT_PREFIX, RedisSession, RedisSessionStore, RedisSessionStoreBuilder, RedisStats,
};
pub use save::ConflictPolicy;
pub use state::ExpiryArgs;
pub use store::{DEFAULT_AGE_SECS, SessionStore, SessionStoreBuilder};
