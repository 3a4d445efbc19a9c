//! The blocking model back end: the records under the model type's class lock.

use std::sync::Arc;

use super::{Backend, Record, ReplaceAllError, TryUpdate, try_update_by_replace};
use crate::lock::{self, Guarded};
use crate::model::record::{Model, Versioned};
use crate::sync::escalate::{Attempt, Exhausted, Progress, retry};

/// The records of a blocking store, under the class lock.
pub struct BlockingTable<M> {
    /// Slot `i` holds the record with key `i + 1`; `None` once deleted.
    records: Vec<Option<Record<M>>>,
    live: usize,
}

/// The blocking back end: the records under the model type's class lock.
pub struct BlockingBackend<M> {
    data: Guarded<BlockingTable<M>>,
}

/// A series of borrowed reads: the records handed out, kept alive by their counts (the
/// class lock is not held between reads, so a reader never blocks writers for long).
pub struct BlockingPin<M> {
    held: boxcar::Vec<Record<M>>,
}

fn slot(pk: u64) -> Option<usize> {
    usize::try_from(pk.checked_sub(1)?).ok()
}

impl<M: Model> Backend<M> for BlockingBackend<M> {
    type Pin<'a> = BlockingPin<M>;
    type Committed<'a> = Record<M>;

    fn new() -> Self {
        Self {
            data: Guarded::new(
                lock::class::<M>(),
                BlockingTable {
                    records: Vec::new(),
                    live: 0,
                },
            ),
        }
    }

    fn get(&self, pk: u64) -> Option<Record<M>> {
        let index = slot(pk)?;
        self.data.with(|t| t.records.get(index).cloned().flatten())
    }

    fn try_update<E>(
        &self,
        pk: u64,
        make: impl FnOnce(&Versioned<M>) -> Result<Record<M>, E>,
    ) -> TryUpdate<Record<M>, E> {
        try_update_by_replace(self, pk, make)
    }

    fn committed_arc(committed: &Record<M>) -> Record<M> {
        committed.clone()
    }

    fn pin(&self) -> BlockingPin<M> {
        BlockingPin {
            held: boxcar::Vec::new(),
        }
    }

    fn get_pinned<'p>(&'p self, pin: &'p BlockingPin<M>, pk: u64) -> Option<&'p Versioned<M>> {
        let record = self.get(pk)?;
        let index = pin.held.push(record);
        Some(&pin.held[index])
    }

    fn insert(&self, value: M) -> Record<M> {
        self.data.with(|t| {
            let record = Arc::new(Versioned {
                pk: t.records.len() as u64 + 1,
                version: 1,
                value,
            });
            t.records.push(Some(record.clone()));
            t.live += 1;
            record
        })
    }

    fn live_count(&self) -> usize {
        self.data.with(|t| t.live)
    }

    fn snapshot(&self) -> Vec<Record<M>> {
        self.data
            .with(|t| t.records.iter().flatten().cloned().collect())
    }

    fn replace(
        &self,
        pk: u64,
        expected: u64,
        new: Option<Record<M>>,
    ) -> Result<Record<M>, Option<Record<M>>> {
        let index = slot(pk).ok_or(None)?;
        // The replaced record is returned, so it is dropped after the lock is released.
        self.data.with(|t| {
            let Some(entry) = t.records.get_mut(index) else {
                return Err(None);
            };
            match entry {
                Some(current) if current.version == expected => {}
                _ => return Err(entry.clone()),
            }
            if new.is_none() {
                t.live -= 1;
            }
            Ok(std::mem::replace(entry, new).expect("checked above"))
        })
    }

    fn replace_all(&self, records: &[(u64, Record<M>)]) -> Result<(), ReplaceAllError<M>> {
        let previous = self.data.with(|t| {
            for (i, (expected, record)) in records.iter().enumerate() {
                let current = slot(record.pk)
                    .and_then(|index| t.records.get(index))
                    .cloned()
                    .flatten();
                match &current {
                    Some(c) if c.version == *expected => {}
                    _ => return Err((i, current)),
                }
            }
            Ok(records
                .iter()
                .map(|(_, record)| {
                    let index = slot(record.pk).expect("validated above");
                    t.records[index].replace(record.clone())
                })
                .collect::<Vec<_>>())
        });
        // The replaced records are dropped here, after the lock is released.
        previous.map(drop)
    }

    fn write<T>(
        &self,
        _pks: &[u64],
        progress: Progress,
        attempt: impl FnMut() -> Attempt<T>,
    ) -> Result<T, Exhausted> {
        // Writers hold the class lock (`alters_data`): an attempt conflicts only with a write
        // made from inside it on this thread. No escalation: the lock already orders writers.
        retry(progress.budget, 0, attempt)
    }

    fn alters_data<R>(&self, f: impl FnOnce() -> R) -> R {
        // Hold the class lock for the whole operation (the `alters_data` rule); the table
        // itself is borrowed only briefly inside, since `f` may run user code that reads
        // this store again.
        let _guard = self.data.guarding_lock().lock();
        f()
    }
}
