//! The wire part of the template broadcast (feature `redis`): the message format on the
//! channel, the channel-name check, the subscription connection and how driver errors map onto
//! [`BroadcastError`].
//!
//! A message is UTF-8 text, one of
//!
//! | message | what a follower does |
//! | --- | --- |
//! | `1 reset` | `TemplateCache::reset()` |
//! | `1 invalidate <name>` | `TemplateCache::invalidate(name)` |
//!
//! `1` is the format version. `<name>` is everything after the single space that follows
//! `invalidate`, byte for byte (spaces, quotes, newlines, any Unicode), and is not empty. A
//! publisher may put `from=<origin>` (1 to 32 characters `[0-9a-z]`) between the version and
//! the command: `1 from=3f9c… invalidate a b.html`. [`Broadcast`](crate::template::Broadcast)
//! does, with a random origin per broadcast, so that its own followers skip the echo of what
//! it already applied locally. Anything else (another version, another command, trailing
//! text after `reset`, bytes that are not UTF-8) is malformed: followers ignore and count it.
//! By hand: `redis-cli PUBLISH <channel> "1 invalidate pages/home.html"`.

use std::time::Duration;

use redis::RedisError;
use redis::aio::PubSub;

use crate::template::error::BroadcastError;

/// The format version this build writes and understands.
pub(crate) const VERSION: &str = "1";

/// The longest channel name accepted, in bytes.
const MAX_CHANNEL_LEN: usize = 256;

/// What a message asks followers to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Command {
    /// `TemplateCache::reset()`.
    Reset,
    /// `TemplateCache::invalidate(name)`.
    Invalidate(String),
}

/// A decoded message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Message<'a> {
    /// The publisher's origin, if it gave one.
    pub(crate) origin: Option<&'a str>,
    /// What to do.
    pub(crate) command: Command,
}

/// A fresh origin: 64 random bits, hex.
pub(crate) fn origin() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// `command` as sent by the broadcast of `origin`.
pub(crate) fn encode(origin: &str, command: &Command) -> Vec<u8> {
    match command {
        Command::Reset => format!("{VERSION} from={origin} reset").into_bytes(),
        Command::Invalidate(name) => {
            format!("{VERSION} from={origin} invalidate {name}").into_bytes()
        }
    }
}

fn is_origin(text: &str) -> bool {
    (1..=32).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

/// Decodes a payload; `None` when it is malformed (see the module docs).
pub(crate) fn decode(payload: &[u8]) -> Option<Message<'_>> {
    let text = std::str::from_utf8(payload).ok()?;
    let rest = text.strip_prefix(VERSION)?.strip_prefix(' ')?;
    let (origin, rest) = match rest.strip_prefix("from=") {
        Some(tail) => {
            let (origin, rest) = tail.split_once(' ')?;
            if !is_origin(origin) {
                return None;
            }
            (Some(origin), rest)
        }
        None => (None, rest),
    };
    let command = if rest == "reset" {
        Command::Reset
    } else {
        let name = rest.strip_prefix("invalidate ")?;
        if name.is_empty() {
            return None;
        }
        Command::Invalidate(name.to_owned())
    };
    Some(Message { origin, command })
}

/// Checks a channel name: 1 to 256 bytes of printable ASCII without spaces (what `redis-cli`
/// and logs show without quoting).
pub(crate) fn check_channel(channel: &str) -> Result<(), BroadcastError> {
    let bad = |reason| {
        Err(BroadcastError::InvalidChannel {
            channel: channel.to_owned(),
            reason,
        })
    };
    if channel.is_empty() {
        return bad("the name is empty");
    }
    if channel.len() > MAX_CHANNEL_LEN {
        return bad("longer than 256 bytes");
    }
    if !channel.bytes().all(|b| b.is_ascii_graphic()) {
        return bad("only printable ASCII without spaces is allowed");
    }
    Ok(())
}

/// What a failed driver call means for the caller.
pub(crate) fn failure(e: &RedisError) -> BroadcastError {
    if e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
    {
        BroadcastError::Connection {
            message: e.to_string(),
        }
    } else {
        BroadcastError::Server {
            message: e.to_string(),
        }
    }
}

fn timed_out(what: &str, limit: Duration) -> BroadcastError {
    BroadcastError::Connection {
        message: format!("{what} took longer than {limit:?}"),
    }
}

/// A new pub/sub connection subscribed to `channel`: the subscription is confirmed by the
/// server when this returns, so every message published afterwards reaches it.
pub(crate) async fn subscribe(
    client: &redis::Client,
    channel: &str,
    connect_timeout: Duration,
    response_timeout: Duration,
) -> Result<PubSub, BroadcastError> {
    let mut pubsub = tokio::time::timeout(connect_timeout, client.get_async_pubsub())
        .await
        .map_err(|_| timed_out("connecting", connect_timeout))?
        .map_err(|e| failure(&e))?;
    tokio::time::timeout(response_timeout, pubsub.subscribe(channel))
        .await
        .map_err(|_| timed_out("SUBSCRIBE", response_timeout))?
        .map_err(|e| failure(&e))?;
    Ok(pubsub)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reset(origin: Option<&str>) -> Option<Message<'_>> {
        Some(Message {
            origin,
            command: Command::Reset,
        })
    }

    fn invalidate<'a>(origin: Option<&'a str>, name: &str) -> Option<Message<'a>> {
        Some(Message {
            origin,
            command: Command::Invalidate(name.to_owned()),
        })
    }

    #[test]
    fn roundtrip() {
        let origin = origin();
        assert_eq!(origin.len(), 16);
        for name in [
            "a.html",
            "it's \"quoted\".html",
            " leading and trailing ",
            "line\nbreak",
            "ünïcødé/页面 ✓.html",
            "1 reset",
            "from=x invalidate y",
        ] {
            let command = Command::Invalidate(name.to_owned());
            let wire = encode(&origin, &command);
            assert_eq!(decode(&wire), invalidate(Some(&origin), name), "{name:?}");
        }
        let wire = encode(&origin, &Command::Reset);
        assert_eq!(decode(&wire), reset(Some(&origin)));
    }

    #[test]
    fn by_hand() {
        assert_eq!(decode(b"1 reset"), reset(None));
        assert_eq!(decode(b"1 invalidate a b"), invalidate(None, "a b"));
        assert_eq!(
            decode(b"1 invalidate  two spaces"),
            invalidate(None, " two spaces")
        );
        assert_eq!(decode(b"1 from=abc reset"), reset(Some("abc")));
    }

    #[test]
    fn malformed() {
        for wire in [
            &b""[..],
            b"1",
            b"1 ",
            b"reset",
            b"2 reset",
            b"11 reset",
            b"1 reset ",
            b"1 resets",
            b"1 RESET",
            b"1  reset",
            b"1 invalidate",
            b"1 invalidate ",
            b"1 invalidatex",
            b"1 from= reset",
            b"1 from=ABC reset",
            b"1 from=abc",
            b"1 from=abc frobnicate",
            b"1 frobnicate",
            b"\xff\xfe reset",
            b"1 invalidate \xff",
        ] {
            assert_eq!(decode(wire), None, "{:?}", String::from_utf8_lossy(wire));
        }
    }

    #[test]
    fn channels() {
        assert!(check_channel("unlocked:templates").is_ok());
        assert!(check_channel(&"x".repeat(256)).is_ok());
        for bad in ["", "a b", "tab\there", "ünï", &"x".repeat(257)] {
            assert!(
                matches!(
                    check_channel(bad),
                    Err(BroadcastError::InvalidChannel { .. })
                ),
                "{bad:?}"
            );
        }
    }
}
