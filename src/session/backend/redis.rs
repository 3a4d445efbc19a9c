//! The Redis back end's wire protocol: how a record is laid out in Redis, the Lua scripts that
//! make a create and a versioned save one atomic round trip each, and how driver errors map
//! onto [`StoreError`].
//!
//! A session is one hash, `{prefix}{<key>}`, with the fields
//!
//! | field | what |
//! | --- | --- |
//! | `v` | version, decimal (1 after create, one more per save) |
//! | `t` | expiry instant, nanoseconds since the Unix epoch, decimal |
//! | `x` | custom expiry: empty (none), `b` (at browser close), `s<seconds>`, `a<unix nanos>` |
//! | `d` | data, the store's [`SessionCodec`] JSON |
//! | `o0`…`o15` | the random token of the write that made version `n`, in `o{n % 16}` (settles a broken write) |
//!
//! and the key's TTL is the expiry (`PEXPIREAT`), so Redis removes expired sessions itself.
//! The escalation lock of a session is the string `{prefix}{<key>}:lock` (same hash tag, so
//! the same cluster slot as the record): a save script refuses to write while another
//! writer's token is in it.

use redis::{RedisError, Script, Value as RedisValue};
use time::OffsetDateTime;

use crate::session::codec::SessionCodec;
use crate::session::error::StoreError;
use crate::session::key::SessionKey;
use crate::session::record::{Expiry, Record, Stamp};

/// How many write tokens a record keeps (`o0`…`o15`): a broken write is settled if fewer
/// than this many writes landed after it.
pub(crate) const TOKENS_KEPT: usize = 16;

/// Creates a record unless the key exists. KEYS: record. ARGV: data, expiry instant, custom
/// expiry, PEXPIREAT milliseconds, write token. Returns 1 (created) or 0 (taken).
const CREATE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'v', '1', 't', ARGV[2], 'x', ARGV[3], 'd', ARGV[1], 'o1', ARGV[5])
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
return 1
";

/// The versioned save. KEYS: record, lock. ARGV: expected version, next version, data, expiry
/// instant, custom expiry, PEXPIREAT milliseconds, write token, lock token (empty: none), the
/// token's field (`o{next % 16}`). Returns `{'ok'}`, `{'gone'}`, `{'busy'}` (another writer
/// holds the lock) or `{'conflict', v, t, x, d}` (the current record, for the replay). The
/// uncontended path reads one field (`v`), never the data.
const SAVE: &str = r"
local lock = redis.call('GET', KEYS[2])
if lock and lock ~= ARGV[8] then return {'busy'} end
local v = redis.call('HGET', KEYS[1], 'v')
if not v then return {'gone'} end
if v ~= ARGV[1] then
  local cur = redis.call('HMGET', KEYS[1], 't', 'x', 'd')
  return {'conflict', v, cur[1], cur[2], cur[3]}
end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 't', ARGV[4], 'x', ARGV[5], 'd', ARGV[3], ARGV[9], ARGV[7])
redis.call('PEXPIREAT', KEYS[1], ARGV[6])
return {'ok'}
";

/// The field holding the token of the write that made `version`.
pub(crate) fn token_field(version: u64) -> String {
    format!("o{}", version % TOKENS_KEPT as u64)
}

/// Releases an escalation lock if it still holds our token. KEYS: lock. ARGV: token.
const UNLOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// The scripts, hashed once per store.
pub(crate) struct Scripts {
    pub(crate) create: Script,
    pub(crate) save: Script,
    pub(crate) unlock: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Scripts {
            create: Script::new(CREATE),
            save: Script::new(SAVE),
            unlock: Script::new(UNLOCK),
        }
    }
}

/// Checks a key prefix: printable ASCII, no braces (they would change the hash slot), no
/// spaces.
pub(crate) fn check_prefix(prefix: &str) -> Result<(), StoreError> {
    let bad = |reason| {
        Err(StoreError::InvalidSetting {
            setting: "prefix",
            value: prefix.to_owned(),
            reason,
        })
    };
    if prefix.len() > 128 {
        return bad("longer than 128 bytes");
    }
    if !prefix.bytes().all(|b| b.is_ascii_graphic()) {
        return bad("only printable ASCII without spaces is allowed");
    }
    if prefix.contains(['{', '}']) {
        return bad("`{` and `}` are reserved for the key's hash tag");
    }
    Ok(())
}

/// The record's Redis key.
pub(crate) fn record_key(prefix: &str, key: &SessionKey) -> String {
    format!("{prefix}{{{}}}", key.as_str())
}

/// The session's escalation lock key (same hash tag as the record).
pub(crate) fn lock_key(prefix: &str, key: &SessionKey) -> String {
    format!("{prefix}{{{}}}:lock", key.as_str())
}

/// A record as the hash fields a script writes.
pub(crate) struct Fields {
    pub(crate) data: Vec<u8>,
    pub(crate) expires: String,
    pub(crate) expiry: String,
    pub(crate) pexpire_at: i64,
}

/// The latest instant Redis is asked to expire at (year 9999): `PEXPIREAT` refuses larger.
const MAX_PEXPIRE_AT_MS: i128 = 253_402_300_799_000;

impl Fields {
    pub(crate) fn of(record: &Record, codec: &SessionCodec) -> Result<Fields, StoreError> {
        let data = codec.encode(&record.data).map_err(StoreError::Encode)?;
        let nanos = record.expires_at.nanos();
        // Round up to the next millisecond: Redis never drops a record before it expires. At
        // least 1 ms after the epoch (0 or negative: already expired, Redis deletes it now).
        let ms = (nanos.div_euclid(1_000_000) + i128::from(nanos.rem_euclid(1_000_000) != 0))
            .clamp(1, MAX_PEXPIRE_AT_MS);
        Ok(Fields {
            data,
            expires: nanos.to_string(),
            expiry: encode_expiry(record.expiry),
            // In range: clamped above.
            pexpire_at: i64::try_from(ms).unwrap_or(i64::MAX),
        })
    }
}

pub(crate) fn encode_expiry(expiry: Option<Expiry>) -> String {
    match expiry {
        None => String::new(),
        Some(Expiry::AtBrowserClose) => "b".to_owned(),
        Some(Expiry::Seconds(s)) => format!("s{s}"),
        Some(Expiry::At(at)) => format!("a{}", at.unix_timestamp_nanos()),
    }
}

pub(crate) fn decode_expiry(text: &str) -> Result<Option<Expiry>, String> {
    let bad = || format!("custom expiry `x` = {text:?} is not ``, `b`, `s<seconds>` or `a<nanos>`");
    match text.as_bytes().first() {
        None => Ok(None),
        Some(b'b') if text.len() == 1 => Ok(Some(Expiry::AtBrowserClose)),
        Some(b's') => text[1..]
            .parse::<i64>()
            .map(|s| Some(Expiry::Seconds(s)))
            .map_err(|_| bad()),
        Some(b'a') => text[1..]
            .parse::<i128>()
            .ok()
            .and_then(|n| OffsetDateTime::from_unix_timestamp_nanos(n).ok())
            .map(|at| Some(Expiry::At(at)))
            .ok_or_else(bad),
        Some(_) => Err(bad()),
    }
}

/// A Redis reply field as bytes (`None`: nil).
fn bytes(value: &RedisValue) -> Result<Option<&[u8]>, String> {
    match value {
        RedisValue::Nil => Ok(None),
        RedisValue::BulkString(b) => Ok(Some(b)),
        RedisValue::SimpleString(s) => Ok(Some(s.as_bytes())),
        // Lua's `false` (a missing hash field) comes back as nil; anything else is not ours.
        other => Err(format!("unexpected reply {other:?}")),
    }
}

fn text<'v>(value: &'v RedisValue, field: &str) -> Result<&'v str, String> {
    let b = bytes(value)?.ok_or_else(|| format!("field `{field}` is missing"))?;
    std::str::from_utf8(b).map_err(|_| format!("field `{field}` is not UTF-8"))
}

/// Decodes the fields `v`, `t`, `x`, `d` (in that order) of `key`'s record; `Ok(None)` if the
/// record does not exist (`v` is nil).
pub(crate) fn decode_record(
    key: SessionKey,
    fields: &[RedisValue],
    codec: &SessionCodec,
) -> Result<Option<Record>, StoreError> {
    let corrupt = |message: String| StoreError::Corrupt { key, message };
    let [v, t, x, d, ..] = fields else {
        return Err(corrupt(format!("expected 4 fields, got {}", fields.len())));
    };
    if matches!(v, RedisValue::Nil) {
        return Ok(None);
    }
    let version = text(v, "v")
        .map_err(corrupt)?
        .parse::<u64>()
        .map_err(|_| corrupt("field `v` (version) is not an unsigned integer".to_owned()))?;
    let expires_at = text(t, "t")
        .map_err(corrupt)?
        .parse::<i128>()
        .map(Stamp::from_nanos)
        .map_err(|_| corrupt("field `t` (expiry instant) is not an integer".to_owned()))?;
    let expiry = decode_expiry(text(x, "x").map_err(corrupt)?).map_err(corrupt)?;
    let data = bytes(d)
        .map_err(corrupt)?
        .ok_or_else(|| corrupt("field `d` (data) is missing".to_owned()))?;
    let data = codec
        .decode(data)
        .map_err(|e| corrupt(format!("field `d` (data): {e}")))?;
    Ok(Some(Record {
        key,
        expires_at,
        data,
        expiry,
        version,
    }))
}

/// Whether a token field holds `token`.
pub(crate) fn has_token(field: &RedisValue, token: &str) -> bool {
    matches!(bytes(field), Ok(Some(b)) if b == token.as_bytes())
}

/// A fresh write token: 64 random bits, hex.
pub(crate) fn token() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// What a failed command means for the caller.
pub(crate) enum Failure {
    /// The connection broke or timed out: a write may or may not have landed; the
    /// connection manager is reconnecting.
    Connection(String),
    /// The server answered with an error: nothing was written.
    Server(String),
}

impl Failure {
    pub(crate) fn of(e: &RedisError) -> Failure {
        if e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_timeout()
            || e.is_unrecoverable_error()
        {
            Failure::Connection(e.to_string())
        } else {
            Failure::Server(e.to_string())
        }
    }

    pub(crate) fn into_error(self) -> StoreError {
        match self {
            Failure::Connection(message) => StoreError::Connection { message },
            Failure::Server(message) => StoreError::Server { message },
        }
    }
}

/// The answer of the save script.
pub(crate) enum SaveReply {
    Saved,
    Gone,
    Busy,
    /// The current record's `v`, `t`, `x`, `d`.
    Conflict(Vec<RedisValue>),
}

pub(crate) fn save_reply(key: SessionKey, reply: RedisValue) -> Result<SaveReply, StoreError> {
    let corrupt = |message: String| StoreError::Server {
        message: format!("unexpected save script reply for {key:?}: {message}"),
    };
    let RedisValue::Array(mut items) = reply else {
        return Err(corrupt(format!("{reply:?}")));
    };
    if items.is_empty() {
        return Err(corrupt("empty".to_owned()));
    }
    let tag = text(&items[0], "tag").map_err(corrupt)?.to_owned();
    match tag.as_str() {
        "ok" => Ok(SaveReply::Saved),
        "gone" => Ok(SaveReply::Gone),
        "busy" => Ok(SaveReply::Busy),
        "conflict" => {
            items.remove(0);
            // Lua stops an array at its first nil: a missing field shortens the reply.
            items.resize(4, RedisValue::Nil);
            Ok(SaveReply::Conflict(items))
        }
        other => Err(corrupt(other.to_owned())),
    }
}
