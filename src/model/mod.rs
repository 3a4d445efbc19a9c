//! Models: a registry of model types ([`Apps`]) and optimistic versioned records
//! ([`ModelStore`]).
//!
//! Django's model cache raced until it got an `RLock` and ready flags; the threading spec
//! wanted every `alters_data` method wrapped in a lock. A lock makes each write atomic, but it
//! cannot stop a *lost update*: two requests read one record, both change their copy, the
//! second save silently overwrites the first. Optimistic versioning stops it (Rails'
//! `lock_version`, JPA's `@Version`, django-concurrency's `RecordModifiedError`): every record
//! carries a version, and a save commits only if the version is still the one read.
//!
//! * [`Apps`]: register apps and models once ([`Apps::populate`] is thread-safe, idempotent and
//!   refuses reentrant calls), then look them up without a lock.
//! * [`ModelStore<M, S>`](ModelStore): the records of one model type. Reads return
//!   `Arc<`[`Versioned`]`<M>>` (primary key, version, value) and take no lock under
//!   [`LockFree`](crate::LockFree); [`save`](ModelStore::save) a [`Draft`] made from a read,
//!   [`update`](ModelStore::update) with a retrying closure, [`delete`](ModelStore::delete) at
//!   a version, or change several records all-or-nothing with
//!   [`commit`](ModelStore::commit) / [`update_many`](ModelStore::update_many).
//!
//! Every data-altering operation says "Alters data." in its documentation. Under
//! [`Blocking`](crate::Blocking) those run under the model type's class lock
//! ([`lock::class::<M>()`](crate::lock::class)), and so do reads (a short lookup under the
//! lock): the simplest model, and the seed's `alters_data` rule. Under `LockFree` nothing takes
//! a lock.
//!
//! # Consistency
//!
//! Each record sits in its own cell and a commit replaces it with one compare-and-swap; a
//! multi-record commit installs its records while a store-wide sequence number is odd, and
//! reads never return a record of a commit that is unfinished (or later undone). So a
//! [`ModelStore::get`] returns committed records only, and a [`ModelStore::snapshot`] (which
//! `filter` and `all` use) holds each multi-record commit wholly or not at all. Single-record
//! commits made *while* a snapshot is taken are each in it or not, independently: iteration
//! and filtering are weakly consistent (the `java.util.concurrent` sense). Change records
//! that must move together with [`ModelStore::commit`] / [`ModelStore::update_many`]. See
//! `docs/model.md` for the design and its costs.
//!
//! # Memory
//!
//! Under `LockFree` a replaced record is freed once no reader can still hold it (epoch
//! reclamation), and then kept by the thread that reclaimed it as a *spare*: its next write of
//! that model type builds its record in it instead of allocating. A thread keeps at most 128
//! spares per model type, until it reuses them or exits; so a replaced value's `Drop` runs
//! when its spare is reused or its thread exits, not when it is replaced. With many more
//! writing threads than cores, reclamation waits on descheduled threads and writes allocate
//! (see `docs/model.md`, "Where the lock-free update stops winning").
//!
//! # Async code
//!
//! Under `LockFree` no operation takes a lock (a commit may retry; reads and writes spin
//! briefly only while a multi-record commit installs its records), so the store can be used
//! directly from async tasks. Under `Blocking` operations take a thread lock: keep them
//! out of `.await` points and closures short. [`Apps::populate`] blocks concurrent callers
//! until the first one finishes: call it at startup.

pub(crate) mod backend;
mod error;
#[cfg(feature = "postgres")]
mod postgres;
mod record;
mod registry;
mod store;
mod store_error;

pub use error::{CommitError, DeleteError, LookupError, PopulateError, SaveError, UpdateError};
#[cfg(feature = "postgres")]
pub use postgres::{PgModelStore, PgModelStoreBuilder};
pub use record::{Draft, Model, Versioned};
pub use registry::{AppConfig, Apps, ModelMeta, Populated, Registrar};
pub use store::{Committed, ModelSnapshot, ModelStore, ModelStoreBuilder, Pinned};
pub use store_error::StoreError;
