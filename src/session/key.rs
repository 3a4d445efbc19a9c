//! Session keys: 32 characters of `[a-z0-9]` drawn from a CSPRNG, and the error of parsing one.

use std::cell::RefCell;
use std::error::Error;
use std::fmt;

use rand::SeedableRng;
use rand::distr::{Distribution, Uniform};
use rand::rngs::{OsRng, StdRng};

/// The characters a session key is made of (Django's `VALID_KEY_CHARS`).
pub const KEY_CHARS: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// The length of every key this crate issues (Django's `get_random_string(32, VALID_KEY_CHARS)`).
pub const KEY_LEN: usize = 32;

/// The shortest key Django considers valid at all (`_validate_session_key`).
pub const MIN_KEY_LEN: usize = 8;

/// A session key issued by a [`SessionStore`](super::SessionStore).
///
/// Always [`KEY_LEN`] characters of [`KEY_CHARS`] (about 165 bits of entropy), drawn from
/// ChaCha12 (`rand`'s `StdRng`) seeded per thread from the operating system (`getrandom`).
/// Keys are only ever *issued* by the store: a key sent by a client is only used to look up an
/// existing session ([`SessionKey::parse`] checks its shape), never to create one, so a client
/// cannot choose its own session key (session fixation).
///
/// ```
/// use unlocked::session::SessionKey;
///
/// let key = SessionKey::generate();
/// assert_eq!(key.as_str().len(), 32);
/// assert_eq!(SessionKey::parse(key.as_str()), Ok(key));
/// assert!(SessionKey::parse("short").is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey([u8; KEY_LEN]);

std::thread_local! {
    // A per-thread CSPRNG: one `getrandom` call per thread, then ChaCha12 in user space.
    static RNG: RefCell<Option<StdRng>> = const { RefCell::new(None) };
}

impl SessionKey {
    /// A fresh random key.
    ///
    /// # Panics
    ///
    /// If the operating system's random source fails when this thread seeds its generator
    /// (only on a thread's first key; `getrandom` failing means no secure key can be made).
    pub fn generate() -> SessionKey {
        let chars = Uniform::new(0, KEY_CHARS.len()).expect("a non-empty range");
        RNG.with(|cell| {
            let mut slot = cell.borrow_mut();
            let rng = slot.get_or_insert_with(|| {
                StdRng::try_from_rng(&mut OsRng)
                    .expect("the operating system's random source failed")
            });
            let mut out = [0u8; KEY_LEN];
            for b in &mut out {
                *b = KEY_CHARS[chars.sample(rng)];
            }
            SessionKey(out)
        })
    }

    /// Checks the shape of a key sent by a client.
    ///
    /// Django rejects keys shorter than [`MIN_KEY_LEN`]; this crate also rejects characters
    /// outside [`KEY_CHARS`] and any length other than [`KEY_LEN`] (no such key can ever have
    /// been issued). The error says which rule failed; a store treats every such key as
    /// unknown and starts a fresh session.
    pub fn parse(key: &str) -> Result<SessionKey, InvalidSessionKey> {
        let bytes = key.as_bytes();
        let valid = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        // Fast path, every key this crate issued: a fixed-length check that compiles to a few
        // vector instructions (callgrind: 60 instructions per parse before, most of a load's
        // key handling). Anything else takes the checks below, which name the broken rule.
        if let Ok(fixed) = <&[u8; KEY_LEN]>::try_from(bytes) {
            if fixed.iter().fold(true, |ok, b| ok & valid(b)) {
                return Ok(SessionKey(*fixed));
            }
        }
        if bytes.len() < MIN_KEY_LEN {
            return Err(InvalidSessionKey::TooShort { len: bytes.len() });
        }
        // One pass without early exit (vectorises), then the position only on failure.
        if !bytes.iter().fold(true, |ok, b| ok & valid(b)) {
            let index = bytes.iter().position(|b| !valid(b)).unwrap_or_default();
            return Err(InvalidSessionKey::BadCharacter { index });
        }
        if bytes.len() != KEY_LEN {
            return Err(InvalidSessionKey::WrongLength { len: bytes.len() });
        }
        let mut out = [0u8; KEY_LEN];
        out.copy_from_slice(bytes);
        Ok(SessionKey(out))
    }

    /// The key's bytes (ASCII).
    pub(crate) fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The key as text (what goes in the cookie).
    pub fn as_str(&self) -> &str {
        // Every byte is from `KEY_CHARS` (checked in `parse`, guaranteed by `generate`): ASCII.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys are bearer credentials: show only a prefix in logs.
        write!(f, "SessionKey({}…)", &self.as_str()[..6])
    }
}

impl std::str::FromStr for SessionKey {
    type Err = InvalidSessionKey;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SessionKey::parse(s)
    }
}

/// A key sent by a client does not have the shape of a key this crate issues.
///
/// Returned by [`SessionKey::parse`](super::SessionKey::parse). A store's
/// [`load`](super::SessionStore::load) treats such a key as unknown and starts a fresh session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidSessionKey {
    /// Shorter than 8 characters (Django's minimum).
    TooShort {
        /// The length given.
        len: usize,
    },
    /// A character outside `[a-z0-9]`.
    BadCharacter {
        /// The byte offset of the first bad character.
        index: usize,
    },
    /// Of valid characters but not 32 of them: no such key is ever issued.
    WrongLength {
        /// The length given.
        len: usize,
    },
}

impl fmt::Display for InvalidSessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidSessionKey::TooShort { len } => write!(
                f,
                "session key of {len} characters is shorter than the minimum of 8; \
                 send the 32-character key the store issued"
            ),
            InvalidSessionKey::BadCharacter { index } => write!(
                f,
                "session key has a character outside [a-z0-9] at byte {index}; \
                 send the key exactly as the store issued it"
            ),
            InvalidSessionKey::WrongLength { len } => write!(
                f,
                "session key has {len} characters but issued keys have 32; \
                 send the key exactly as the store issued it"
            ),
        }
    }
}

impl Error for InvalidSessionKey {}
