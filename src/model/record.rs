//! The model vocabulary: [`Model`] (a model type) and its records, [`Versioned`] (as stored)
//! and [`Draft`] (a changed copy to save). The fields are visible to the whole `model`
//! component (`pub(super)`): the stores and back ends build and read records directly.

use std::fmt;
use std::ops::{Deref, DerefMut};

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
    pub(super) pk: u64,
    pub(super) version: u64,
    pub(super) value: M,
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
    /// [`ModelStore::save`](super::ModelStore::save).
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
    pub(super) pk: u64,
    pub(super) version: u64,
    pub(super) value: M,
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
