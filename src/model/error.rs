//! Errors of the model component: one type per fallible operation.
//!
//! Errors of data-altering operations hand back what was rejected (a [`Draft`] or its value)
//! and carry the record as it is now, so the caller can merge and retry without a second read.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

use super::record::{Draft, Versioned};
use super::store_error::StoreError;

/// Why [`Apps::populate`](super::Apps::populate) failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PopulateError {
    /// `populate` was called again from inside a registration closure or a ready hook of a
    /// `populate` already running on this thread (Django: "populate() isn't reentrant").
    Reentrant,
    /// Two app configs with one label.
    DuplicateApp {
        /// The label registered twice.
        label: String,
    },
    /// Two models with one `app_label.ModelName` (model names compare case-insensitively, as
    /// in Django).
    DuplicateModel {
        /// The `app_label.ModelName` registered twice.
        label: String,
    },
    /// A model whose app label names no registered app.
    UnknownApp {
        /// The model's `app_label.ModelName`.
        model: String,
        /// The app label that was not registered.
        app_label: String,
    },
    /// An app label or model name that is not an identifier.
    InvalidLabel {
        /// The offending label.
        label: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The registration closure returned an error of its own; nothing was published.
    Registration {
        /// The closure's error, as text.
        message: String,
    },
    /// The registration closure panicked; nothing was published and `populate` may be called
    /// again.
    RegistrationPanicked {
        /// The panic message.
        message: String,
    },
    /// A ready hook panicked (now or in an earlier `populate`). Models stay registered, the
    /// remaining hooks were skipped and [`Apps::ready`](super::Apps::ready) stays `false`.
    ReadyHookPanicked {
        /// The panic message.
        message: String,
    },
}

impl fmt::Display for PopulateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PopulateError::Reentrant => f.write_str(
                "populate() isn't reentrant: it was called from inside a registration closure or \
                 ready hook of a populate() already running on this thread; register everything \
                 from the one closure instead",
            ),
            PopulateError::DuplicateApp { label } => write!(
                f,
                "app label `{label}` is registered twice; app labels must be unique"
            ),
            PopulateError::DuplicateModel { label } => write!(
                f,
                "model `{label}` is registered twice; give it another name or register it once"
            ),
            PopulateError::UnknownApp { model, app_label } => write!(
                f,
                "model `{model}` belongs to app `{app_label}`, which is not registered; register \
                 the app first with `Registrar::app(\"{app_label}\")`"
            ),
            PopulateError::InvalidLabel { label, reason } => {
                write!(f, "invalid label `{label}`: {reason}")
            }
            PopulateError::Registration { message } => {
                write!(f, "the registration closure failed: {message}")
            }
            PopulateError::RegistrationPanicked { message } => write!(
                f,
                "the registration closure panicked ({message}); nothing was registered, \
                 populate() may be called again"
            ),
            PopulateError::ReadyHookPanicked { message } => write!(
                f,
                "a ready hook panicked ({message}); models are registered but the registry is \
                 not ready and the remaining hooks will not run"
            ),
        }
    }
}

impl Error for PopulateError {}

/// Why a registry lookup ([`Apps::get_model`](super::Apps::get_model) and friends) failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LookupError {
    /// The registry is not populated yet (Django's `AppRegistryNotReady`): call
    /// [`Apps::populate`](super::Apps::populate) first.
    NotReady,
    /// No app has this label.
    NoSuchApp {
        /// The label looked up.
        app_label: String,
    },
    /// The app exists but has no model of this name.
    NoSuchModel {
        /// The app label.
        app_label: String,
        /// The model name looked up.
        model_name: String,
    },
    /// A label that is not of the form `app_label.ModelName`.
    BadLabel {
        /// The label given.
        label: String,
    },
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LookupError::NotReady => {
                f.write_str("the app registry isn't ready yet: call Apps::populate() first")
            }
            LookupError::NoSuchApp { app_label } => {
                write!(f, "no installed app with label `{app_label}`")
            }
            LookupError::NoSuchModel {
                app_label,
                model_name,
            } => write!(f, "app `{app_label}` doesn't have a `{model_name}` model"),
            LookupError::BadLabel { label } => write!(
                f,
                "`{label}` is not a model label: expected `app_label.ModelName`"
            ),
        }
    }
}

impl Error for LookupError {}

/// Why [`ModelStore::save`](super::ModelStore::save) did not commit. Hands the draft back.
#[non_exhaustive]
pub enum SaveError<M> {
    /// Another commit changed the record since the draft was read (Rails'
    /// `StaleObjectError`, django-concurrency's `RecordModifiedError`).
    Conflict {
        /// The draft that was not saved, unchanged.
        rejected: Draft<M>,
        /// The record as it is now: its version is newer than `rejected.version()`.
        current: Arc<Versioned<M>>,
    },
    /// The record was deleted since the draft was read (Django's `UpdateError` for sessions).
    NotFound {
        /// The draft that was not saved, unchanged.
        rejected: Draft<M>,
    },
    /// The storage failed (remote stores only: a database or connection error, corrupt stored
    /// data).
    Backend {
        /// The draft that was not saved, unchanged.
        rejected: Draft<M>,
        /// What failed.
        error: StoreError,
    },
}

impl<M> SaveError<M> {
    /// The draft that was not saved.
    pub fn into_rejected(self) -> Draft<M> {
        match self {
            SaveError::Conflict { rejected, .. }
            | SaveError::NotFound { rejected }
            | SaveError::Backend { rejected, .. } => rejected,
        }
    }

    /// The rejected draft, by reference.
    pub fn rejected(&self) -> &Draft<M> {
        match self {
            SaveError::Conflict { rejected, .. }
            | SaveError::NotFound { rejected }
            | SaveError::Backend { rejected, .. } => rejected,
        }
    }
}

impl<M> fmt::Debug for SaveError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SaveError::Conflict { rejected, current } => f
                .debug_struct("Conflict")
                .field("pk", &rejected.pk())
                .field("read_version", &rejected.version())
                .field("current_version", &current.version())
                .finish_non_exhaustive(),
            SaveError::NotFound { rejected } => f
                .debug_struct("NotFound")
                .field("pk", &rejected.pk())
                .finish_non_exhaustive(),
            SaveError::Backend { rejected, error } => f
                .debug_struct("Backend")
                .field("pk", &rejected.pk())
                .field("error", error)
                .finish_non_exhaustive(),
        }
    }
}

impl<M> fmt::Display for SaveError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SaveError::Conflict { rejected, current } => write!(
                f,
                "record {} was modified since it was read (read version {}, now version {}); \
                 merge your change into the current record and save again",
                rejected.pk(),
                rejected.version(),
                current.version()
            ),
            SaveError::NotFound { rejected } => write!(
                f,
                "record {} was deleted since it was read; insert it again if it should exist",
                rejected.pk()
            ),
            SaveError::Backend { rejected, error } => {
                write!(f, "record {} was not saved: {error}", rejected.pk())
            }
        }
    }
}

impl<M> Error for SaveError<M> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            SaveError::Backend { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Why [`ModelStore::update`](super::ModelStore::update) or
/// [`ModelStore::update_many`](super::ModelStore::update_many) did not commit. Nothing was
/// changed.
#[non_exhaustive]
pub enum UpdateError<M> {
    /// No record has this primary key (or it was deleted while the update retried).
    NotFound {
        /// The missing primary key.
        pk: u64,
    },
    /// Other commits to the same record(s) kept winning until the retry budget ran out.
    RetriesExhausted {
        /// How many times the closure ran.
        attempts: u32,
        /// The record (for `update_many`: the first record) as it was at the last attempt.
        current: Arc<Versioned<M>>,
    },
    /// The closure panicked. The panic was caught; stored data is untouched.
    Panicked {
        /// The primary key (for `update_many`: the first one).
        pk: u64,
        /// The panic message.
        message: String,
    },
    /// `update_many` was given one primary key twice.
    DuplicatePk {
        /// The repeated primary key.
        pk: u64,
    },
    /// The storage failed (remote stores only); nothing was changed unless the error is
    /// [`StoreError::InDoubt`].
    Backend {
        /// What failed.
        error: StoreError,
    },
}

impl<M> fmt::Debug for UpdateError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpdateError::NotFound { pk } => f.debug_struct("NotFound").field("pk", pk).finish(),
            UpdateError::RetriesExhausted { attempts, current } => f
                .debug_struct("RetriesExhausted")
                .field("attempts", attempts)
                .field("pk", &current.pk())
                .field("current_version", &current.version())
                .finish_non_exhaustive(),
            UpdateError::Panicked { pk, message } => f
                .debug_struct("Panicked")
                .field("pk", pk)
                .field("message", message)
                .finish(),
            UpdateError::DuplicatePk { pk } => {
                f.debug_struct("DuplicatePk").field("pk", pk).finish()
            }
            UpdateError::Backend { error } => {
                f.debug_struct("Backend").field("error", error).finish()
            }
        }
    }
}

impl<M> fmt::Display for UpdateError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpdateError::NotFound { pk } => write!(f, "no record with primary key {pk}"),
            UpdateError::RetriesExhausted { attempts, current } => write!(
                f,
                "record {} kept changing under the update: gave up after {attempts} attempts \
                 (now at version {}); raise the store's retry budget or reduce contention",
                current.pk(),
                current.version()
            ),
            UpdateError::Panicked { pk, message } => write!(
                f,
                "the update closure for record {pk} panicked ({message}); nothing was changed"
            ),
            UpdateError::DuplicatePk { pk } => {
                write!(f, "primary key {pk} is listed twice; list each record once")
            }
            UpdateError::Backend { error } => write!(f, "the update failed: {error}"),
        }
    }
}

impl<M> Error for UpdateError<M> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            UpdateError::Backend { error } => Some(error),
            _ => None,
        }
    }
}

/// Why [`ModelStore::delete`](super::ModelStore::delete) did not delete. Nothing was changed.
#[non_exhaustive]
pub enum DeleteError<M> {
    /// No record has this primary key (already deleted, or never inserted).
    NotFound {
        /// The missing primary key.
        pk: u64,
    },
    /// The record changed since the version given was read.
    Conflict {
        /// The version the caller read.
        expected: u64,
        /// The record as it is now.
        current: Arc<Versioned<M>>,
    },
    /// The storage failed (remote stores only).
    Backend {
        /// What failed.
        error: StoreError,
    },
}

impl<M> fmt::Debug for DeleteError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeleteError::NotFound { pk } => f.debug_struct("NotFound").field("pk", pk).finish(),
            DeleteError::Conflict { expected, current } => f
                .debug_struct("Conflict")
                .field("pk", &current.pk())
                .field("expected", expected)
                .field("current_version", &current.version())
                .finish_non_exhaustive(),
            DeleteError::Backend { error } => {
                f.debug_struct("Backend").field("error", error).finish()
            }
        }
    }
}

impl<M> fmt::Display for DeleteError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeleteError::NotFound { pk } => write!(f, "no record with primary key {pk}"),
            DeleteError::Conflict { expected, current } => write!(
                f,
                "record {} was modified since version {expected} was read (now version {}); \
                 re-read it and decide again",
                current.pk(),
                current.version()
            ),
            DeleteError::Backend { error } => write!(f, "the delete failed: {error}"),
        }
    }
}

impl<M> Error for DeleteError<M> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            DeleteError::Backend { error } => Some(error),
            _ => None,
        }
    }
}

/// Why [`ModelStore::commit`](super::ModelStore::commit) did not commit. Nothing was changed,
/// and every draft is handed back.
#[non_exhaustive]
pub enum CommitError<M> {
    /// A record changed (or was deleted) since its draft was read.
    Conflict {
        /// The primary key of the first record found changed.
        pk: u64,
        /// The version its draft was read at.
        expected: u64,
        /// The record as it is now; `None` if it was deleted.
        current: Option<Arc<Versioned<M>>>,
        /// Every draft of the commit, unchanged, in the order given.
        rejected: Vec<Draft<M>>,
    },
    /// Two drafts of one record in one commit.
    DuplicatePk {
        /// The repeated primary key.
        pk: u64,
        /// Every draft of the commit, unchanged, in the order given.
        rejected: Vec<Draft<M>>,
    },
    /// The storage failed (remote stores only); nothing was committed unless the error is
    /// [`StoreError::InDoubt`].
    Backend {
        /// What failed.
        error: StoreError,
        /// Every draft of the commit, unchanged, in the order given.
        rejected: Vec<Draft<M>>,
    },
}

impl<M> CommitError<M> {
    /// Every draft of the failed commit, in the order given.
    pub fn into_rejected(self) -> Vec<Draft<M>> {
        match self {
            CommitError::Conflict { rejected, .. }
            | CommitError::DuplicatePk { rejected, .. }
            | CommitError::Backend { rejected, .. } => rejected,
        }
    }
}

impl<M> fmt::Debug for CommitError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommitError::Conflict {
                pk,
                expected,
                current,
                rejected,
            } => f
                .debug_struct("Conflict")
                .field("pk", pk)
                .field("expected", expected)
                .field("current_version", &current.as_ref().map(|c| c.version()))
                .field("rejected", &rejected.len())
                .finish(),
            CommitError::DuplicatePk { pk, rejected } => f
                .debug_struct("DuplicatePk")
                .field("pk", pk)
                .field("rejected", &rejected.len())
                .finish(),
            CommitError::Backend { error, rejected } => f
                .debug_struct("Backend")
                .field("error", error)
                .field("rejected", &rejected.len())
                .finish(),
        }
    }
}

impl<M> fmt::Display for CommitError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommitError::Conflict {
                pk,
                expected,
                current: Some(current),
                ..
            } => write!(
                f,
                "record {pk} was modified since version {expected} was read (now version {}); \
                 nothing was committed",
                current.version()
            ),
            CommitError::Conflict {
                pk, current: None, ..
            } => write!(
                f,
                "record {pk} was deleted since it was read; nothing was committed"
            ),
            CommitError::DuplicatePk { pk, .. } => write!(
                f,
                "record {pk} appears twice in one commit; merge the drafts first"
            ),
            CommitError::Backend { error, .. } => {
                write!(f, "nothing was committed: {error}")
            }
        }
    }
}

impl<M> Error for CommitError<M> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            CommitError::Backend { error, .. } => Some(error),
            _ => None,
        }
    }
}
