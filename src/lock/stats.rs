//! Contention statistics: the counters each lock keeps, one lock's report line, and the
//! per-label aggregates of dropped instance locks.

use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use super::level::Level;
use super::registry::Registry;
use crate::sync::{AtomicU64, Ordering};

/// Contention counters of one lock.
///
/// `acquisitions` (re-entries included) and, on the slow path, `contended` and `wait_ns` are
/// only written by the
/// thread that holds the lock, so they are updated with a plain load and store (no
/// read-modify-write, no extra cache-line transfer); readers may see them a moment late.
pub(crate) struct LockStats {
    pub(crate) acquisitions: AtomicU64,
    pub(crate) contended: AtomicU64,
    pub(crate) wait_ns: AtomicU64,
}

impl LockStats {
    #[cfg(not(unlocked_loom))]
    pub(crate) const fn new() -> Self {
        Self {
            acquisitions: AtomicU64::new(0),
            contended: AtomicU64::new(0),
            wait_ns: AtomicU64::new(0),
        }
    }

    /// Loom's atomics cannot be built in a `const`.
    #[cfg(unlocked_loom)]
    pub(crate) fn new() -> Self {
        Self {
            acquisitions: AtomicU64::new(0),
            contended: AtomicU64::new(0),
            wait_ns: AtomicU64::new(0),
        }
    }

    /// Adds one to a counter owned by the lock holder.
    #[inline]
    pub(crate) fn bump_held(counter: &AtomicU64, by: u64) {
        // Relaxed load + store: only the holder writes, and the lock's own Acquire/Release
        // orders successive holders' writes, so no increment is lost.
        counter.store(
            counter.load(Ordering::Relaxed).wrapping_add(by),
            Ordering::Relaxed,
        );
    }

    /// Adds counters of a dropped lock into an aggregate shared by many (instance locks).
    #[cfg_attr(unlocked_loom, allow(dead_code))]
    pub(crate) fn absorb(&self, other: &LockStats) {
        // Relaxed read-modify-writes: aggregates are shared by unrelated locks, so a plain
        // store could lose a concurrent update; no other memory depends on these counters.
        for (into, from) in [
            (&self.acquisitions, &other.acquisitions),
            (&self.contended, &other.contended),
            (&self.wait_ns, &other.wait_ns),
        ] {
            into.fetch_add(from.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }

    pub(crate) fn snapshot(&self) -> (u64, u64, Duration) {
        // Relaxed: statistics, read without synchronising with the holder.
        (
            self.acquisitions.load(Ordering::Relaxed),
            self.contended.load(Ordering::Relaxed),
            Duration::from_nanos(self.wait_ns.load(Ordering::Relaxed)),
        )
    }
}

/// Contention statistics of one lock (or, for [`Level::Instance`], of every dropped instance
/// lock with one label).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockReport {
    /// The lock's level.
    pub level: Level,
    /// Module path, type name, function name, instance label, or `"global"`.
    pub key: &'static str,
    /// Successful acquisitions, re-entries included.
    pub acquisitions: u64,
    /// Acquisitions that found the lock held by another thread.
    pub contended: u64,
    /// Total time spent waiting in contended acquisitions.
    pub wait: Duration,
}

impl LockReport {
    /// The share of acquisitions that had to wait, from 0 to 1.
    pub fn contention_ratio(&self) -> f64 {
        if self.acquisitions == 0 {
            0.0
        } else {
            self.contended as f64 / self.acquisitions as f64
        }
    }
}

impl fmt::Display for LockReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<8} {:<48} {:>12} {:>10} {:>6.1}% {:>12.3?}",
            self.level,
            self.key,
            self.acquisitions,
            self.contended,
            self.contention_ratio() * 100.0,
            self.wait
        )
    }
}

static INSTANCE_STATS: LazyLock<Registry<&'static str, LockStats>> = LazyLock::new(Registry::new);

/// The aggregate of every dropped instance lock labelled `label`.
#[cfg_attr(unlocked_loom, allow(dead_code))]
pub(crate) fn instance_aggregate(label: &'static str) -> &'static LockStats {
    INSTANCE_STATS.get_or_create(label, LockStats::new)
}

/// Every instance-lock label with its aggregate, in no particular order.
pub(crate) fn instance_entries() -> Vec<(&'static str, &'static LockStats)> {
    INSTANCE_STATS.snapshot_entries()
}
