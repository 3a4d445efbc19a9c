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
mod registry;
mod store;
mod store_error;

use std::fmt;
use std::ops::{Deref, DerefMut};

pub use error::{CommitError, DeleteError, LookupError, PopulateError, SaveError, UpdateError};
#[cfg(feature = "postgres")]
pub use postgres::{PgModelStore, PgModelStoreBuilder};
pub use registry::{AppConfig, Apps, ModelMeta, Populated, Registrar};
pub use store::{ModelSnapshot, ModelStore, ModelStoreBuilder, Pinned};
pub use store_error::StoreError;

/// A model type: plain data with an app label and a name, like a Django model class.
///
/// ```
/// #[derive(Clone, Debug)]
/// struct Article { title: String }
/// impl unlocked::model::Model for Article {
///     const APP_LABEL: &'static str = "blog";
///     const NAME: &'static str = "Article";
/// }
/// ```
pub trait Model: Clone + Send + Sync + 'static {
    /// The label of the app the model belongs to (an identifier, e.g. `"blog"`).
    const APP_LABEL: &'static str;
    /// The model's name (an identifier, e.g. `"Article"`).
    const NAME: &'static str;
}

/// A stored record: its primary key, its version and its value, immutable.
///
/// Versions start at 1 on insert and grow by one with every commit to the record. It
/// dereferences to the value; call [`edit`](Self::edit) for a [`Draft`] to change and save.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Versioned<M> {
    pk: u64,
    version: u64,
    value: M,
}

impl<M> Versioned<M> {
    /// The primary key.
    pub fn pk(&self) -> u64 {
        self.pk
    }

    /// The version: 1 after insert, one more after each commit.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The value.
    pub fn value(&self) -> &M {
        &self.value
    }

    /// A mutable copy of the value, remembering which version it was made from, to pass to
    /// [`ModelStore::save`].
    pub fn edit(&self) -> Draft<M>
    where
        M: Clone,
    {
        Draft {
            pk: self.pk,
            version: self.version,
            value: self.value.clone(),
        }
    }
}

impl<M> Deref for Versioned<M> {
    type Target = M;
    fn deref(&self) -> &M {
        &self.value
    }
}

impl<M: fmt::Debug> fmt::Debug for Versioned<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Versioned")
            .field("pk", &self.pk)
            .field("version", &self.version)
            .field("value", &self.value)
            .finish()
    }
}

/// A changed copy of a record, tied to the version it was read at. Dereferences mutably to
/// the value.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Draft<M> {
    pk: u64,
    version: u64,
    value: M,
}

impl<M> Draft<M> {
    /// The primary key of the record it came from.
    pub fn pk(&self) -> u64 {
        self.pk
    }

    /// The version it was read at.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The (possibly changed) value.
    pub fn value(&self) -> &M {
        &self.value
    }

    /// The value, mutably.
    pub fn value_mut(&mut self) -> &mut M {
        &mut self.value
    }

    /// Takes the value out.
    pub fn into_value(self) -> M {
        self.value
    }
}

impl<M> Deref for Draft<M> {
    type Target = M;
    fn deref(&self) -> &M {
        &self.value
    }
}

impl<M> DerefMut for Draft<M> {
    fn deref_mut(&mut self) -> &mut M {
        &mut self.value
    }
}

impl<M: fmt::Debug> fmt::Debug for Draft<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Draft")
            .field("pk", &self.pk)
            .field("version", &self.version)
            .field("value", &self.value)
            .finish()
    }
}
