//! Errors of the session component, one type per fallible operation. The error of parsing a
//! key, [`InvalidSessionKey`](super::InvalidSessionKey), lives with the key (`key.rs`), which
//! needs nothing else of the component.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

use super::key::SessionKey;
use super::record::Record;

/// Creating a session failed.
///
/// Returned by [`SessionStore::create`](super::SessionStore::create),
/// [`Session::cycle_key`](super::Session::cycle_key) and inside
/// [`SaveError::Create`] when saving a session that has no key yet.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CreateError {
    /// The store holds its configured maximum of live sessions, even after removing the
    /// expired ones. Raise [`SessionStoreBuilder::max_sessions`](super::SessionStoreBuilder::max_sessions),
    /// shorten the expiry age, or delete sessions (logouts).
    Full {
        /// The configured bound.
        limit: usize,
    },
}

impl fmt::Display for CreateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CreateError::Full { limit } => write!(
                f,
                "session store is full ({limit} live sessions, none expired); raise \
                 `max_sessions`, shorten the expiry age or delete sessions"
            ),
        }
    }
}

impl Error for CreateError {}

/// An update closure panicked; nothing was changed.
///
/// Returned by [`Session::update`](super::Session::update) (the handle keeps its previous
/// value for the key) and inside [`SaveError::UpdatePanicked`] (the stored record is left
/// as it was).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UpdatePanicked {
    /// The session data key the update was for.
    pub key: String,
    /// The panic message, when it was a string.
    pub message: String,
}

impl fmt::Display for UpdatePanicked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "update closure for session key `{}` panicked: {}; nothing was changed \
             (make the closure total over every value it can be given, including `None`)",
            self.key, self.message
        )
    }
}

impl Error for UpdatePanicked {}

/// Saving a session failed; the store is unchanged.
///
/// Returned by [`Session::save`](super::Session::save).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum SaveError {
    /// [`ConflictPolicy::Reject`](super::ConflictPolicy::Reject): another request saved this
    /// session after this one loaded it. Carries the record now stored; load the session again,
    /// redo the request's changes and save (optimistic locking, like django-concurrency's
    /// `RecordModifiedError`).
    Conflict {
        /// The record now stored.
        current: Arc<Record>,
        /// The version this request loaded.
        loaded_version: u64,
    },
    /// The session was deleted (logged out, flushed, cycled away or expired) after this request
    /// loaded it. It is not resurrected (Django #21608, `UpdateError`): answer the request as
    /// if it had no session (Django answers HTTP 400), or start a fresh one.
    Gone {
        /// The key that no longer exists.
        key: SessionKey,
    },
    /// An update operation panicked when replayed on the latest record.
    UpdatePanicked(UpdatePanicked),
    /// The session had no key yet and creating it failed.
    Create(CreateError),
    /// A remote store (`RedisSessionStore`, feature `redis`) could not carry the
    /// save out: the server was unreachable, refused, or it is unknown whether the write
    /// landed. The in-memory stores never return this.
    Store(StoreError),
}

impl fmt::Display for SaveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SaveError::Conflict {
                current,
                loaded_version,
            } => write!(
                f,
                "session was saved by another request since it was loaded (loaded version \
                 {loaded_version}, stored version {}); reload it, redo the changes and save again",
                current.version()
            ),
            SaveError::Gone { key } => write!(
                f,
                "session {key:?} was deleted or expired since it was loaded and is not \
                 resurrected; treat the request as having no session"
            ),
            SaveError::UpdatePanicked(e) => write!(f, "{e}"),
            SaveError::Create(e) => write!(f, "{e}"),
            SaveError::Store(e) => write!(f, "{e}"),
        }
    }
}

impl Error for SaveError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            SaveError::UpdatePanicked(e) => Some(e),
            SaveError::Create(e) => Some(e),
            SaveError::Store(e) => Some(e),
            _ => None,
        }
    }
}

impl From<CreateError> for SaveError {
    fn from(e: CreateError) -> Self {
        SaveError::Create(e)
    }
}

impl From<StoreError> for SaveError {
    fn from(e: StoreError) -> Self {
        SaveError::Store(e)
    }
}

impl From<UpdatePanicked> for SaveError {
    fn from(e: UpdatePanicked) -> Self {
        SaveError::UpdatePanicked(e)
    }
}

/// Encoding session data failed; the data is untouched.
///
/// Returned by [`SessionCodec::encode`](super::SessionCodec::encode).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// The encoding is longer than the codec's limit.
    TooLarge {
        /// The encoded length, in bytes.
        len: usize,
        /// The limit, in bytes.
        limit: usize,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::TooLarge { len, limit } => write!(
                f,
                "encoded session data is {len} bytes, over the limit of {limit}; store less \
                 in the session or raise the limit (`SessionStoreBuilder::max_encoded_len`)"
            ),
        }
    }
}

impl Error for EncodeError {}

/// Decoding session data failed; nothing was stored.
///
/// Returned by [`SessionCodec::decode`](super::SessionCodec::decode) and inside
/// [`ImportError::Decode`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input is longer than the codec's limit (checked before parsing).
    TooLarge {
        /// The input length, in bytes.
        len: usize,
        /// The limit, in bytes.
        limit: usize,
    },
    /// The input is not JSON (or not UTF-8).
    Malformed {
        /// The line of the first error (1-based; 0 at end of input).
        line: usize,
        /// The column of the first error (1-based).
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// The input is JSON but not an object.
    NotAnObject {
        /// What it is instead ("an array", "null", ...).
        found: &'static str,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooLarge { len, limit } => write!(
                f,
                "session data of {len} bytes is over the limit of {limit}; it was not parsed \
                 (raise `SessionStoreBuilder::max_encoded_len` if such sessions are legitimate)"
            ),
            DecodeError::Malformed {
                line,
                column,
                message,
            } => write!(
                f,
                "session data is not valid JSON (line {line}, column {column}: {message}); it \
                 is corrupt or was not made by `SessionCodec::encode`"
            ),
            DecodeError::NotAnObject { found } => write!(
                f,
                "session data is {found}, not a JSON object of key/value pairs"
            ),
        }
    }
}

impl Error for DecodeError {}

/// Importing encoded session data failed; nothing was stored.
///
/// Returned by [`SessionStore::import`](super::SessionStore::import).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImportError {
    /// The bytes did not decode.
    Decode(DecodeError),
    /// Creating the session failed (the store is at its bound).
    Create(CreateError),
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImportError::Decode(e) => write!(f, "{e}"),
            ImportError::Create(e) => write!(f, "{e}"),
        }
    }
}

impl Error for ImportError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            ImportError::Decode(e) => Some(e),
            ImportError::Create(e) => Some(e),
        }
    }
}

/// A remote session store (`RedisSessionStore`, feature `redis`) failed. Says what
/// went wrong and what to do; the driver's own error types are not part of the API.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError {
    /// A builder setting cannot be used (the key prefix: printable ASCII without `{`, `}` or
    /// spaces, as braces would change the key's cluster hash slot). Nothing was connected.
    InvalidSetting {
        /// The setting, e.g. `prefix`.
        setting: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The server is unreachable or the connection broke, and the store's own reconnects and
    /// retries did not get through. Nothing was written (reads) or the write was settled as
    /// not applied. Retry later; check the server.
    Connection {
        /// The driver's message.
        message: String,
    },
    /// The connection broke during a write and reading the record back could not tell whether
    /// the write landed (more than 16 writes to the session since, or the server is still
    /// unreachable). Load the session again to see.
    InDoubt {
        /// The session written.
        key: SessionKey,
        /// The driver's message.
        message: String,
    },
    /// The server refused the command (out of memory, a wrong-type key under the prefix, a
    /// script error). The message is the server's.
    Server {
        /// The server's message.
        message: String,
    },
    /// The stored record does not decode: edited by hand, written by another program, or
    /// corrupted. It is left as it is; delete it (or the whole session) to recover.
    Corrupt {
        /// The session whose record is corrupt.
        key: SessionKey,
        /// What does not decode.
        message: String,
    },
    /// The session's data is longer than the store's codec allows
    /// (`RedisSessionStoreBuilder::max_encoded_len`). Nothing was
    /// written; store less in the session.
    Encode(EncodeError),
    /// Other requests kept this session's escalation lock for longer than the store's
    /// `lock_wait`: an unusually long pile-up of saves to one session. Nothing was written.
    Busy {
        /// The session.
        key: SessionKey,
    },
}

impl StoreError {
    /// `true` for the errors a retry later may cure ([`Connection`](Self::Connection),
    /// [`InDoubt`](Self::InDoubt), [`Busy`](Self::Busy)).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Connection { .. } | StoreError::InDoubt { .. } | StoreError::Busy { .. }
        )
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::InvalidSetting {
                setting,
                value,
                reason,
            } => write!(f, "invalid `{setting}` {value:?}: {reason}"),
            StoreError::Connection { message } => write!(
                f,
                "the session server is unreachable or the connection broke: {message}"
            ),
            StoreError::InDoubt { key, message } => write!(
                f,
                "the connection broke while saving session {key:?} and it is unknown whether \
                 the save landed ({message}); load the session again"
            ),
            StoreError::Server { message } => {
                write!(f, "the session server refused the command: {message}")
            }
            StoreError::Corrupt { key, message } => write!(
                f,
                "the stored record of session {key:?} does not decode ({message}); delete it"
            ),
            StoreError::Encode(e) => write!(f, "{e}"),
            StoreError::Busy { key } => write!(
                f,
                "session {key:?} stayed locked by other saves for longer than the store's \
                 lock_wait; retry the request"
            ),
        }
    }
}

impl Error for StoreError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            StoreError::Encode(e) => Some(e),
            _ => None,
        }
    }
}
