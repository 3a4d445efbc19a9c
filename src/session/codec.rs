//! Session data as bytes: JSON encode/decode with a size limit (Django's
//! `SessionBase.encode`/`decode`).
//!
//! Use it where session data crosses a byte boundary: a database column, a cache server, a
//! migration from another session backend ([`SessionStore::import`](super::SessionStore::import)).
//! Bytes from outside are untrusted: decoding checks the size before parsing, and corrupt input
//! gives a typed [`DecodeError`] (or, as Django does, an empty session with
//! [`SessionCodec::decode_or_empty`]); it never panics.

use super::error::{DecodeError, EncodeError};
use super::data::SessionData;

/// The default limit on encoded session data: 1 MiB.
pub const DEFAULT_MAX_ENCODED_LEN: usize = 1 << 20;

/// Encodes and decodes session data as a JSON object, refusing anything longer than
/// [`max_len`](Self::max_len) bytes.
///
/// ```
/// use serde_json::json;
/// use unlocked::session::{DecodeError, SessionCodec, SessionData};
///
/// let codec = SessionCodec::new().with_max_len(64);
/// let mut data = SessionData::new();
/// data.insert("user_id", json!(42));
/// let bytes = codec.encode(&data)?;
/// assert_eq!(codec.decode(&bytes)?, data);
///
/// // Corrupt bytes: a typed error, or Django's empty session.
/// assert!(matches!(codec.decode(b"{\"user_id\": 4"), Err(DecodeError::Malformed { .. })));
/// assert!(codec.decode_or_empty(b"\xff\xfe").is_empty());
/// // Oversized bytes are refused before parsing.
/// assert!(matches!(codec.decode(&[b' '; 65]), Err(DecodeError::TooLarge { len: 65, limit: 64 })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionCodec {
    max_len: usize,
}

impl Default for SessionCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl SessionCodec {
    /// A codec with the default limit, [`DEFAULT_MAX_ENCODED_LEN`].
    pub const fn new() -> Self {
        SessionCodec {
            max_len: DEFAULT_MAX_ENCODED_LEN,
        }
    }

    /// The same codec with another limit, in bytes of encoded data.
    #[must_use]
    pub const fn with_max_len(mut self, max_len: usize) -> Self {
        self.max_len = max_len;
        self
    }

    /// The limit, in bytes of encoded data.
    pub const fn max_len(&self) -> usize {
        self.max_len
    }

    /// Encodes `data` as a JSON object.
    ///
    /// # Errors
    ///
    /// [`EncodeError::TooLarge`] if the encoding is longer than the limit; `data` is untouched.
    pub fn encode(&self, data: &SessionData) -> Result<Vec<u8>, EncodeError> {
        // A `Map<String, Value>` always serializes (string keys, finite JSON values).
        let bytes = serde_json::to_vec(data).unwrap_or_default();
        if bytes.len() > self.max_len {
            return Err(EncodeError::TooLarge {
                len: bytes.len(),
                limit: self.max_len,
            });
        }
        Ok(bytes)
    }

    /// Decodes bytes made by [`encode`](Self::encode) (any JSON object).
    ///
    /// # Errors
    ///
    /// [`DecodeError::TooLarge`] before parsing if `bytes` is longer than the limit,
    /// [`DecodeError::Malformed`] if it is not JSON (or not UTF-8),
    /// [`DecodeError::NotAnObject`] if it is JSON but not an object.
    pub fn decode(&self, bytes: &[u8]) -> Result<SessionData, DecodeError> {
        if bytes.len() > self.max_len {
            return Err(DecodeError::TooLarge {
                len: bytes.len(),
                limit: self.max_len,
            });
        }
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed {
                line: e.line(),
                column: e.column(),
                message: e.to_string(),
            })?;
        match value {
            serde_json::Value::Object(map) => Ok(map.into()),
            other => Err(DecodeError::NotAnObject {
                found: json_kind(&other),
            }),
        }
    }

    /// Django's behaviour: corrupt or oversized data decodes to an empty session (Django logs
    /// a `SuspiciousSession` warning; call [`decode`](Self::decode) to see the error).
    pub fn decode_or_empty(&self, bytes: &[u8]) -> SessionData {
        self.decode(bytes).unwrap_or_default()
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}
