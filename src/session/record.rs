//! Stored records and expiry.

use std::fmt;
use std::time::SystemTime;

use time::{Duration, OffsetDateTime};

use super::data::SessionData;
use super::key::SessionKey;

/// When a session expires: what [`Session::set_expiry`](super::Session::set_expiry) takes.
///
/// Django keeps this inside the session data under `_session_expiry`; this crate keeps it in a
/// typed field of the record instead, so it never shows up among the data keys and cannot be
/// overwritten by accident. The `None` of Django's `set_expiry(None)` ("back to the default
/// age") is `Option::<Expiry>::None`.
///
/// ```
/// use unlocked::session::Expiry;
///
/// assert_eq!(Expiry::seconds(0), Expiry::AtBrowserClose); // Django's set_expiry(0)
/// assert_eq!(Expiry::seconds(300), Expiry::Seconds(300));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Expiry {
    /// Expires this many seconds after the last save (Django: a non-zero integer). May be
    /// negative (the cookie is then already expired), as in Django. `Seconds(0)` behaves as
    /// [`AtBrowserClose`](Expiry::AtBrowserClose).
    Seconds(i64),
    /// Expires at this instant (Django: a `datetime`; a `timedelta` becomes one, see
    /// [`Expiry::after`]).
    At(OffsetDateTime),
    /// The cookie expires when the browser closes (Django: `0`); the stored record keeps the
    /// store's default age.
    AtBrowserClose,
}

impl Expiry {
    /// Django's integer form: `0` means at browser close, anything else is seconds.
    pub const fn seconds(seconds: i64) -> Expiry {
        if seconds == 0 {
            Expiry::AtBrowserClose
        } else {
            Expiry::Seconds(seconds)
        }
    }

    /// Django's `timedelta` form: an instant `delta` from now (computed now, as Django does).
    /// Saturates at the largest (smallest) representable instant instead of overflowing.
    pub fn after(delta: Duration) -> Expiry {
        Expiry::At(OffsetDateTime::now_utc().saturating_add(delta))
    }

    /// `true` for [`AtBrowserClose`](Expiry::AtBrowserClose) and `Seconds(0)` (Django's
    /// `expiry == 0`).
    pub const fn is_at_browser_close(&self) -> bool {
        matches!(self, Expiry::AtBrowserClose | Expiry::Seconds(0))
    }
}

/// Django's `get_expiry_age`: whole seconds, rounded down as `timedelta.days * 86400 +
/// timedelta.seconds` does.
pub(crate) fn expiry_age(
    expiry: Option<Expiry>,
    modification: OffsetDateTime,
    default_age: i64,
) -> i64 {
    match expiry {
        None | Some(Expiry::AtBrowserClose) | Some(Expiry::Seconds(0)) => default_age,
        Some(Expiry::Seconds(s)) => s,
        Some(Expiry::At(at)) => {
            let delta = at - modification;
            let secs = delta.whole_seconds();
            if delta.subsec_nanoseconds() < 0 {
                secs - 1
            } else {
                secs
            }
        }
    }
}

/// An instant as nanoseconds since the Unix epoch, clamped to what `OffsetDateTime` can
/// represent: what a record stores for its expiry, so that the hot path compares two integers
/// and reads the clock without building a calendar date.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[allow(unreachable_pub)] // sealed: named by the back-end trait, unreachable from outside
pub struct Stamp(i128);

impl Stamp {
    const MIN: i128 =
        OffsetDateTime::new_utc(time::Date::MIN, time::Time::MIDNIGHT).unix_timestamp_nanos();
    const MAX: i128 =
        OffsetDateTime::new_utc(time::Date::MAX, time::Time::MAX).unix_timestamp_nanos();

    fn clamped(nanos: i128) -> Stamp {
        Stamp(nanos.clamp(Self::MIN, Self::MAX))
    }

    /// Now, from the system clock.
    #[inline]
    pub(crate) fn now() -> Stamp {
        let nanos = match SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
            Ok(after) => after.as_nanos() as i128,
            Err(before) => -(before.duration().as_nanos() as i128),
        };
        Stamp::clamped(nanos)
    }

    /// Now, from the system's coarse clock where it has one (Linux: `CLOCK_REALTIME_COARSE`,
    /// read without the time-stamp counter): behind [`now`](Self::now) by less than one
    /// scheduler tick (1–10 ms, 4 ms by default), at a seventh of its cost on the machine
    /// measured in `docs/benchmarks.md`. For the expiry check of a read: a session stays
    /// readable for at most one tick past its expiry. Elsewhere, the precise clock.
    #[inline]
    pub(crate) fn now_coarse() -> Stamp {
        #[cfg(target_os = "linux")]
        {
            // libc (glibc's vDSO path), not rustix's own vDSO reader: that one crashes under
            // valgrind, which `ci/*-instructions.sh` and users' profiling rely on.
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: `ts` is a valid, writable `timespec`; `clock_gettime` writes only it.
            if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) } == 0 {
                return Stamp::clamped(
                    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec),
                );
            }
        }
        Stamp::now()
    }

    /// Nanoseconds since the epoch, saturated to `u64` (0 before the epoch).
    pub(crate) fn as_u64(self) -> u64 {
        u64::try_from(self.0.max(0)).unwrap_or(u64::MAX)
    }

    /// Nanoseconds since the epoch.
    #[cfg(feature = "redis")]
    pub(crate) fn nanos(self) -> i128 {
        self.0
    }

    /// From nanoseconds since the epoch, clamped to the representable range.
    #[cfg(feature = "redis")]
    pub(crate) fn from_nanos(nanos: i128) -> Stamp {
        Stamp::clamped(nanos)
    }

    pub(crate) fn from_datetime(at: OffsetDateTime) -> Stamp {
        Stamp(at.unix_timestamp_nanos())
    }

    pub(crate) fn to_datetime(self) -> OffsetDateTime {
        // In range by construction.
        OffsetDateTime::from_unix_timestamp_nanos(self.0).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    fn plus_seconds(self, seconds: i64) -> Stamp {
        Stamp::clamped(self.0.saturating_add(i128::from(seconds) * 1_000_000_000))
    }
}

/// When a record saved at `now` with `expiry` expires (Django's `get_expiry_date`), as a
/// [`Stamp`]. Saturates at the largest (smallest) representable instant, so an extreme age
/// (`Expiry::Seconds(i64::MAX)`, a huge default age) means "never" ("already") instead of an
/// overflow.
#[inline]
pub(crate) fn expires_stamp(expiry: Option<Expiry>, now: Stamp, default_age: i64) -> Stamp {
    match expiry {
        Some(Expiry::At(at)) => Stamp::from_datetime(at),
        Some(Expiry::Seconds(s)) if s != 0 => now.plus_seconds(s),
        _ => now.plus_seconds(default_age),
    }
}

/// Django's `get_expiry_date`, on `OffsetDateTime`s: [`expires_stamp`] converted.
pub(crate) fn expiry_date(
    expiry: Option<Expiry>,
    modification: OffsetDateTime,
    default_age: i64,
) -> OffsetDateTime {
    match expiry {
        // Exactly the instant given, offset included.
        Some(Expiry::At(at)) => at,
        _ => expires_stamp(expiry, Stamp::from_datetime(modification), default_age).to_datetime(),
    }
}

/// One stored version of a session. Immutable: a save publishes a new record with the next
/// version; readers holding the old one keep a consistent view.
#[derive(Clone, PartialEq)]
pub struct Record {
    pub(crate) key: SessionKey,
    pub(crate) data: SessionData,
    pub(crate) expiry: Option<Expiry>,
    pub(crate) expires_at: Stamp,
    pub(crate) version: u64,
}

impl Record {
    /// The session's key.
    pub fn key(&self) -> SessionKey {
        self.key
    }

    /// The session data.
    pub fn data(&self) -> &SessionData {
        &self.data
    }

    /// The custom expiry, if one was set.
    pub fn expiry(&self) -> Option<Expiry> {
        self.expiry
    }

    /// The instant after which the store treats the record as absent (Django's
    /// `expire_date`), computed at the save that wrote it.
    pub fn expires_at(&self) -> OffsetDateTime {
        self.expires_at.to_datetime()
    }

    /// The version: 1 when created, one more at every save.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Whether the record has expired at `now`.
    pub fn is_expired_at(&self, now: OffsetDateTime) -> bool {
        self.expires_at <= Stamp::from_datetime(now)
    }

    /// Whether the record has expired at `now` (the store's clock).
    #[inline]
    pub(crate) fn expired(&self, now: Stamp) -> bool {
        self.expires_at <= now
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("key", &self.key)
            .field("version", &self.version)
            .field("expires_at", &self.expires_at())
            .field("expiry", &self.expiry)
            .field("data", &self.data)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coarse_clock_is_at_most_a_tick_behind() {
        for _ in 0..1_000 {
            let before = Stamp::now();
            let coarse = Stamp::now_coarse();
            let after = Stamp::now();
            // Never ahead of the precise clock read after it; behind the one read before by
            // less than a scheduler tick (at most 10 ms; 1 s leaves room for a descheduled
            // test thread).
            assert!(coarse <= after, "{coarse:?} after {after:?}");
            assert!(
                coarse.0 > before.0 - 1_000_000_000,
                "{coarse:?} far behind {before:?}"
            );
        }
    }

    #[test]
    fn stamps_agree_with_offset_date_time() {
        let at = time::macros::datetime!(2024-03-01 12:00:00.5 UTC);
        let s = Stamp::from_datetime(at);
        assert_eq!(s.to_datetime(), at);
        assert_eq!(
            expiry_date(Some(Expiry::Seconds(90)), at, 0),
            at + Duration::seconds(90)
        );
        assert_eq!(
            expiry_date(Some(Expiry::Seconds(i64::MAX)), at, 0),
            at.saturating_add(Duration::seconds(i64::MAX))
        );
        assert_eq!(
            expiry_date(None, at, i64::MIN),
            at.saturating_add(Duration::seconds(i64::MIN))
        );
        let now = Stamp::now();
        let dt = OffsetDateTime::now_utc();
        assert!((dt - now.to_datetime()).abs() < Duration::seconds(5));
    }
}
