//! [`report()`]: every lock's statistics, hottest first.

use std::fmt;

use super::keyed;
use super::level::Level;
use super::stats::{self, LockReport};

/// The lock statistics of the process, hottest first (most time waited, then most contended
/// acquisitions, then most acquisitions). `Display` prints it as a table.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// One entry per keyed lock and per instance-lock label.
    pub entries: Vec<LockReport>,
}

impl Report {
    /// The `n` hottest entries.
    pub fn hottest(&self, n: usize) -> &[LockReport] {
        &self.entries[..n.min(self.entries.len())]
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<8} {:<48} {:>12} {:>10} {:>7} {:>12}",
            "level", "key", "acquired", "contended", "share", "waited"
        )?;
        for entry in &self.entries {
            writeln!(f, "{entry}")?;
        }
        Ok(())
    }
}

/// Collects the statistics of every keyed lock and every instance-lock label.
///
/// Instance locks are counted when they are dropped (live ones keep their counts inside, see
/// [`ReentrantLock::stats`](super::ReentrantLock::stats)), so the report keeps no entry per object.
pub fn report() -> Report {
    let mut entries: Vec<LockReport> = keyed::all().into_iter().map(|l| l.stats()).collect();
    let instance = stats::instance_entries();
    entries.extend(instance.into_iter().map(|(label, stats)| {
        let (acquisitions, contended, wait) = stats.snapshot();
        LockReport {
            level: Level::Instance,
            key: label,
            acquisitions,
            contended,
            wait,
        }
    }));
    entries.sort_by(|a, b| {
        b.wait
            .cmp(&a.wait)
            .then(b.contended.cmp(&a.contended))
            .then(b.acquisitions.cmp(&a.acquisitions))
            .then(a.level.cmp(&b.level))
            .then(a.key.cmp(b.key))
    });
    Report { entries }
}
